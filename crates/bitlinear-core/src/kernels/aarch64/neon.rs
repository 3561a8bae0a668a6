//! Baseline NEON kernel (no dot product): `smull`/`smull2` of a decoded quarter block with the
//! activation group duplicated, i16 sums over the 4 sub-vectors (≤ 4·256, no overflow), then
//! `sadalp` into i32 pairs that are folded at the end.

use std::arch::aarch64::*;

use crate::kernels::TileKernel;
use crate::packed::BLOCK_BYTES;

/// The baseline NEON kernel.
pub(crate) struct Neon;

impl TileKernel for Neon {
    const MAX_ROWS: usize = 2;

    unsafe fn dot_tile<const MR: usize>(
        w: *const u8,
        nblocks: usize,
        x: *const i8,
        x_stride: usize,
        acc: *mut i32,
    ) {
        // SAFETY: forwarded caller contract.
        unsafe { inner::<MR>(w, nblocks, x, x_stride, acc) }
    }
}

#[inline(always)]
fn decode(v: uint8x16_t, s: usize) -> int8x16_t {
    // SAFETY: NEON is baseline on AArch64.
    unsafe {
        let mask = vdupq_n_u8(3);
        let sh = match s {
            0 => v,
            1 => vshrq_n_u8::<2>(v),
            2 => vshrq_n_u8::<4>(v),
            _ => vshrq_n_u8::<6>(v),
        };
        vreinterpretq_s8_u8(vandq_u8(sh, mask))
    }
}

#[inline(always)]
fn group(xv: int8x16_t, s: usize) -> int8x16_t {
    // SAFETY: NEON is baseline on AArch64.
    unsafe {
        let u = vreinterpretq_u32_s8(xv);
        let g = match s {
            0 => vdupq_laneq_u32::<0>(u),
            1 => vdupq_laneq_u32::<1>(u),
            2 => vdupq_laneq_u32::<2>(u),
            _ => vdupq_laneq_u32::<3>(u),
        };
        vreinterpretq_s8_u32(g)
    }
}

/// # Safety
/// See [`TileKernel::dot_tile`].
#[target_feature(enable = "neon")]
unsafe fn inner<const MR: usize>(
    w: *const u8,
    nblocks: usize,
    x: *const i8,
    x_stride: usize,
    acc: *mut i32,
) {
    // lo: [row0 k01, row0 k23, row1 k01, row1 k23] of each quarter; hi: rows 2 and 3.
    let mut lo = [[vdupq_n_s32(0); 4]; MR];
    let mut hi = [[vdupq_n_s32(0); 4]; MR];
    for b in 0..nblocks {
        // SAFETY: block b < nblocks is readable (contract).
        let p = unsafe { w.add(b * BLOCK_BYTES) };
        let mut xv = [vdupq_n_s8(0); MR];
        for (r, xr) in xv.iter_mut().enumerate() {
            // SAFETY: row r has 16 * nblocks readable bytes (contract).
            *xr = unsafe { vld1q_s8(x.add(r * x_stride + b * 16)) };
        }
        for q in 0..4 {
            let v = unsafe { vld1q_u8(p.add(16 * q)) };
            let mut plo = [vdupq_n_s16(0); MR];
            let mut phi = [vdupq_n_s16(0); MR];
            for s in 0..4 {
                let d = decode(v, s);
                for r in 0..MR {
                    let g = group(xv[r], s);
                    plo[r] = vaddq_s16(plo[r], vmull_s8(vget_low_s8(d), vget_low_s8(g)));
                    phi[r] = vaddq_s16(phi[r], vmull_high_s8(d, g));
                }
            }
            for r in 0..MR {
                lo[r][q] = vpadalq_s16(lo[r][q], plo[r]);
                hi[r][q] = vpadalq_s16(hi[r][q], phi[r]);
            }
        }
    }
    for r in 0..MR {
        for q in 0..4 {
            // SAFETY: acc holds MR * 16 i32 (contract).
            unsafe {
                let p = acc.add(r * 16 + q * 4);
                vst1q_s32(p, vaddq_s32(vld1q_s32(p), vpaddq_s32(lo[r][q], hi[r][q])));
            }
        }
    }
}
