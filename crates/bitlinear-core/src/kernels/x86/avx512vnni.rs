//! AVX-512 VNNI kernel: one zmm holds a decoded sub-vector (16 rows × 4 columns) and
//! `vpdpbusd` with the 4 matching activation bytes broadcast adds 64 products per instruction.

use std::arch::x86_64::*;

use crate::kernels::TileKernel;
use crate::packed::BLOCK_BYTES;

/// The AVX-512 VNNI kernel.
pub(crate) struct Avx512Vnni;

impl TileKernel for Avx512Vnni {
    const MAX_ROWS: usize = 16;

    unsafe fn dot_tile<const MR: usize>(
        w: *const u8,
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
                1 => positional::<1, 2>(w, nblocks, x, x_stride, acc),
                2 => positional::<2, 1>(w, nblocks, x, x_stride, acc),
                4 => positional::<4, 1>(w, nblocks, x, x_stride, acc),
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
    w: *const u8,
    b: usize,
    x: *const i8,
    x_stride: usize,
) {
    let mask = _mm512_set1_epi8(3);
    // SAFETY: block b < nblocks is readable (contract); unaligned load is fine anyway.
    let v = unsafe { _mm512_loadu_si512(w.add(b * BLOCK_BYTES) as *const _) };
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
    w: *const u8,
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

/// Blocks per accumulation chunk of [`positional`]: each accumulator gains at most
/// 4 · (2 << 6) · 128 = 2^16 per block, so 2^14 blocks stay below 2^30.
const POSITIONAL_CHUNK: usize = 1 << 14;

/// Few-row kernel that skips the shifts of the decode: sub-vector `s` is masked in place
/// (`v & (3 << 2s)` = `code << 2s`, at most 128, still a valid unsigned operand), multiplied
/// into its own accumulator, and the accumulator is shifted back by `2s` at the end (exact:
/// it is a multiple of `4^s`). One AND per sub-vector instead of a shift and an AND.
///
/// # Safety
/// See [`TileKernel::dot_tile`]; additionally U ∈ {1, 2}.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn positional<const MR: usize, const U: usize>(
    w: *const u8,
    nblocks: usize,
    x: *const i8,
    x_stride: usize,
    acc: *mut i32,
) {
    let masks = [
        _mm512_set1_epi8(0b0000_0011),
        _mm512_set1_epi8(0b0000_1100),
        _mm512_set1_epi8(0b0011_0000),
        _mm512_set1_epi8(0b1100_0000u8 as i8),
    ];
    let mut total = [_mm512_setzero_si512(); MR];
    let mut start = 0;
    while start < nblocks {
        let end = (start + POSITIONAL_CHUNK).min(nblocks);
        // sums[u][r][s]: set u (consecutive blocks alternate), row r, sub-vector s.
        let mut sums = [[[_mm512_setzero_si512(); 4]; MR]; U];
        let mut b = start;
        // SAFETY (all calls): every block index used is < end ≤ nblocks.
        while b + U <= end {
            for (u, set) in sums.iter_mut().enumerate() {
                unsafe { positional_block::<MR>(set, &masks, w, b + u, x, x_stride) };
            }
            b += U;
        }
        while b < end {
            unsafe { positional_block::<MR>(&mut sums[0], &masks, w, b, x, x_stride) };
            b += 1;
        }
        for set in &sums {
            for (r, row_sums) in set.iter().enumerate() {
                total[r] = _mm512_add_epi32(total[r], row_sums[0]);
                total[r] = _mm512_add_epi32(total[r], _mm512_srai_epi32::<2>(row_sums[1]));
                total[r] = _mm512_add_epi32(total[r], _mm512_srai_epi32::<4>(row_sums[2]));
                total[r] = _mm512_add_epi32(total[r], _mm512_srai_epi32::<6>(row_sums[3]));
            }
        }
        start = end;
    }
    for (r, t) in total.iter().enumerate() {
        // SAFETY: acc holds MR * 16 i32 (contract).
        unsafe {
            let p = acc.add(r * 16) as *mut __m512i;
            _mm512_storeu_si512(
                p as *mut _,
                _mm512_add_epi32(_mm512_loadu_si512(p as *const _), *t),
            );
        }
    }
}

/// Adds block `b` to one set of per-sub-vector accumulators of [`positional`].
///
/// # Safety
/// As [`positional`], with `b < nblocks`.
#[inline(always)]
unsafe fn positional_block<const MR: usize>(
    sums: &mut [[__m512i; 4]; MR],
    masks: &[__m512i; 4],
    w: *const u8,
    b: usize,
    x: *const i8,
    x_stride: usize,
) {
    // SAFETY: block b < nblocks is readable (contract).
    let v = unsafe { _mm512_loadu_si512(w.add(b * BLOCK_BYTES) as *const _) };
    let d = [
        _mm512_and_si512(v, masks[0]),
        _mm512_and_si512(v, masks[1]),
        _mm512_and_si512(v, masks[2]),
        _mm512_and_si512(v, masks[3]),
    ];
    for (r, row_sums) in sums.iter_mut().enumerate() {
        // SAFETY: row r has 16 * nblocks readable bytes; we read 4 × 4 of block b's 16.
        let xr = unsafe { x.add(r * x_stride + b * 16) } as *const i32;
        for (s, sum) in row_sums.iter_mut().enumerate() {
            let xb = _mm512_set1_epi32(unsafe { xr.add(s).read_unaligned() });
            *sum = _mm512_dpbusd_epi32(*sum, d[s], xb);
        }
    }
}
