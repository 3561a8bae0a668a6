//! AVX-512 VNNI kernel: one zmm holds a decoded sub-vector (16 rows × 4 columns) and
//! `vpdpbusd` with the 4 matching activation bytes broadcast adds 64 products per instruction.

use std::arch::x86_64::*;

use crate::kernels::TileKernel;
use crate::packed::PackedBlock;

/// The AVX-512 VNNI kernel.
pub(crate) struct Avx512Vnni;

impl TileKernel for Avx512Vnni {
    const MAX_ROWS: usize = 16;

    unsafe fn dot_tile<const MR: usize>(
        w: *const PackedBlock,
        nblocks: usize,
        x: *const i8,
        x_stride: usize,
        acc: *mut i32,
    ) {
        // Few rows: split each row's accumulator (A ways within a block, U ways across
        // consecutive blocks) so independent vpdpbusd chains hide the instruction's latency.
        // SAFETY: forwarded caller contract; MR matches the first const parameter.
        unsafe {
            match MR {
                1 => inner::<1, 4, 2>(w, nblocks, x, x_stride, acc),
                2 => inner::<2, 2, 2>(w, nblocks, x, x_stride, acc),
                4 => inner::<4, 2, 1>(w, nblocks, x, x_stride, acc),
                8 => inner::<8, 1, 1>(w, nblocks, x, x_stride, acc),
                16 => inner::<16, 1, 1>(w, nblocks, x, x_stride, acc),
                _ => unreachable!("MR must be 1, 2, 4, 8 or 16"),
            }
        }
    }
}

/// Adds block `b`'s products to one set of accumulators.
///
/// # Safety
/// As [`inner`], with `b < nblocks`.
#[inline(always)]
unsafe fn block<const MR: usize, const A: usize>(
    sums: &mut [[__m512i; A]; MR],
    w: *const PackedBlock,
    b: usize,
    x: *const i8,
    x_stride: usize,
) {
    let mask = _mm512_set1_epi8(3);
    // SAFETY: block b < nblocks is readable (contract); unaligned load is fine anyway.
    let v = unsafe { _mm512_loadu_si512(w.add(b) as *const _) };
    let d = [
        _mm512_and_si512(v, mask),
        _mm512_and_si512(_mm512_srli_epi16::<2>(v), mask),
        _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask),
        _mm512_and_si512(_mm512_srli_epi16::<6>(v), mask),
    ];
    for (r, row_sums) in sums.iter_mut().enumerate() {
        // SAFETY: row r has 16 * nblocks readable bytes; we read 4 × 4 of block b's 16.
        let xr = unsafe { x.add(r * x_stride + b * 16) } as *const i32;
        for (s, ds) in d.iter().enumerate() {
            let xb = _mm512_set1_epi32(unsafe { xr.add(s).read_unaligned() });
            row_sums[s % A] = _mm512_dpbusd_epi32(row_sums[s % A], *ds, xb);
        }
    }
}

/// # Safety
/// See [`TileKernel::dot_tile`]; additionally A ∈ {1, 2, 4} and U ∈ {1, 2}.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn inner<const MR: usize, const A: usize, const U: usize>(
    w: *const PackedBlock,
    nblocks: usize,
    x: *const i8,
    x_stride: usize,
    acc: *mut i32,
) {
    let mut sums = [[[_mm512_setzero_si512(); A]; MR]; U];
    let mut b = 0;
    // SAFETY (all calls): b + u < nblocks.
    while b + U <= nblocks {
        for (u, set) in sums.iter_mut().enumerate() {
            unsafe { block::<MR, A>(set, w, b + u, x, x_stride) };
        }
        b += U;
    }
    while b < nblocks {
        unsafe { block::<MR, A>(&mut sums[0], w, b, x, x_stride) };
        b += 1;
    }
    for r in 0..MR {
        let mut t = _mm512_setzero_si512();
        for set in &sums {
            for s in &set[r] {
                t = _mm512_add_epi32(t, *s);
            }
        }
        // SAFETY: acc holds MR * 16 i32 (contract).
        unsafe {
            let p = acc.add(r * 16) as *mut __m512i;
            _mm512_storeu_si512(
                p as *mut _,
                _mm512_add_epi32(_mm512_loadu_si512(p as *const _), t),
            );
        }
    }
}
