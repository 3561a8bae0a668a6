//! AVX-VNNI kernel (VEX-encoded 256-bit `vpdpbusd`): like the AVX-512 kernel with each
//! 64-byte block split into two ymm halves (rows 0–7 and 8–15).

use std::arch::x86_64::*;

use crate::kernels::TileKernel;
use crate::packed::BLOCK_BYTES;

/// The AVX-VNNI kernel.
pub(crate) struct AvxVnni;

impl TileKernel for AvxVnni {
    const MAX_ROWS: usize = 4;

    unsafe fn dot_tile<const MR: usize>(
        w: *const u8,
        nblocks: usize,
        x: *const i8,
        x_stride: usize,
        acc: *mut i32,
    ) {
        // SAFETY: forwarded caller contract.
        unsafe {
            match MR {
                1 => inner::<1, 2>(w, nblocks, x, x_stride, acc),
                2 => inner::<2, 1>(w, nblocks, x, x_stride, acc),
                4 => inner::<4, 1>(w, nblocks, x, x_stride, acc),
                _ => unreachable!("MR must be 1, 2 or 4"),
            }
        }
    }
}

/// # Safety
/// See [`TileKernel::dot_tile`]; additionally A ∈ {1, 2}.
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn inner<const MR: usize, const A: usize>(
    w: *const u8,
    nblocks: usize,
    x: *const i8,
    x_stride: usize,
    acc: *mut i32,
) {
    let mask = _mm256_set1_epi8(3);
    let mut sums = [[[_mm256_setzero_si256(); A]; 2]; MR];
    for b in 0..nblocks {
        // SAFETY: block b < nblocks is readable (contract).
        let (v0, v1) = unsafe {
            let p = w.add(b * BLOCK_BYTES) as *const __m256i;
            (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
        };
        for s in 0..4 {
            let sh = _mm_cvtsi32_si128(2 * s as i32);
            let d0 = _mm256_and_si256(_mm256_srl_epi16(v0, sh), mask);
            let d1 = _mm256_and_si256(_mm256_srl_epi16(v1, sh), mask);
            for (r, row_sums) in sums.iter_mut().enumerate() {
                // SAFETY: row r has 16 * nblocks readable bytes (contract).
                let xr = unsafe { x.add(r * x_stride + b * 16 + 4 * s) } as *const i32;
                let xb = _mm256_set1_epi32(unsafe { xr.read_unaligned() });
                row_sums[0][s % A] = _mm256_dpbusd_avx_epi32(row_sums[0][s % A], d0, xb);
                row_sums[1][s % A] = _mm256_dpbusd_avx_epi32(row_sums[1][s % A], d1, xb);
            }
        }
    }
    for (r, row_sums) in sums.iter().enumerate() {
        for (h, half) in row_sums.iter().enumerate() {
            let mut t = half[0];
            for s in &half[1..] {
                t = _mm256_add_epi32(t, *s);
            }
            // SAFETY: acc holds MR * 16 i32 (contract).
            unsafe {
                let p = acc.add(r * 16 + h * 8) as *mut __m256i;
                _mm256_storeu_si256(p, _mm256_add_epi32(_mm256_loadu_si256(p), t));
            }
        }
    }
}
