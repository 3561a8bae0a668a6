//! AVX2 kernel: `vpmaddubsw` (u8 codes × i8 activations → i16 pairs, no saturation since
//! |2·2·128| ≤ 512) summed over the 4 sub-vectors of a block in i16, then `vpmaddwd` to i32.

use std::arch::x86_64::*;

use crate::kernels::TileKernel;
use crate::packed::BLOCK_BYTES;

/// The AVX2 kernel.
pub(crate) struct Avx2;

impl TileKernel for Avx2 {
    const MAX_ROWS: usize = 2;

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
                1 => inner::<1>(w, nblocks, x, x_stride, acc),
                2 => inner::<2>(w, nblocks, x, x_stride, acc),
                _ => unreachable!("MR must be 1 or 2"),
            }
        }
    }
}

/// # Safety
/// See [`TileKernel::dot_tile`].
#[target_feature(enable = "avx2")]
unsafe fn inner<const MR: usize>(
    w: *const u8,
    nblocks: usize,
    x: *const i8,
    x_stride: usize,
    acc: *mut i32,
) {
    let mask = _mm256_set1_epi8(3);
    let ones = _mm256_set1_epi16(1);
    let mut sums = [[_mm256_setzero_si256(); 2]; MR];
    for b in 0..nblocks {
        // SAFETY: block b < nblocks is readable (contract).
        let (v0, v1) = unsafe {
            let p = w.add(b * BLOCK_BYTES) as *const __m256i;
            (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
        };
        // i16 partial sums of this block: 4 sub-vectors × 512 at most, far from overflow.
        let mut part = [[_mm256_setzero_si256(); 2]; MR];
        for s in 0..4 {
            let sh = _mm_cvtsi32_si128(2 * s as i32);
            let d0 = _mm256_and_si256(_mm256_srl_epi16(v0, sh), mask);
            let d1 = _mm256_and_si256(_mm256_srl_epi16(v1, sh), mask);
            for (r, p) in part.iter_mut().enumerate() {
                // SAFETY: row r has 16 * nblocks readable bytes (contract).
                let xr = unsafe { x.add(r * x_stride + b * 16 + 4 * s) } as *const i32;
                let xb = _mm256_set1_epi32(unsafe { xr.read_unaligned() });
                p[0] = _mm256_add_epi16(p[0], _mm256_maddubs_epi16(d0, xb));
                p[1] = _mm256_add_epi16(p[1], _mm256_maddubs_epi16(d1, xb));
            }
        }
        for (s, p) in sums.iter_mut().zip(&part) {
            s[0] = _mm256_add_epi32(s[0], _mm256_madd_epi16(p[0], ones));
            s[1] = _mm256_add_epi32(s[1], _mm256_madd_epi16(p[1], ones));
        }
    }
    for (r, row_sums) in sums.iter().enumerate() {
        for (h, t) in row_sums.iter().enumerate() {
            // SAFETY: acc holds MR * 16 i32 (contract).
            unsafe {
                let p = acc.add(r * 16 + h * 8) as *mut __m256i;
                _mm256_storeu_si256(p, _mm256_add_epi32(_mm256_loadu_si256(p), *t));
            }
        }
    }
}
