//! NEON dot-product kernel: `sdot vd.4s, vn.16b, vm.4b[s]` multiplies a decoded quarter block
//! (4 rows × 4 columns) by activation group `s` taken straight from the loaded 16 bytes.
//!
//! `vdotq_laneq_s32` is still unstable (`stdarch_neon_dotprod`) on our toolchain, so the
//! instruction is emitted with `asm!`; it is pure register arithmetic.

use std::arch::aarch64::*;
use std::arch::asm;

use crate::kernels::TileKernel;
use crate::packed::BLOCK_BYTES;

/// The NEON dotprod kernel.
pub(crate) struct NeonDot;

impl TileKernel for NeonDot {
    const MAX_ROWS: usize = 4;

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

macro_rules! sdot_lane {
    ($acc:expr, $a:expr, $b:expr, $lane:literal) => {
        // SAFETY: register-only arithmetic; dotprod is enabled on the enclosing function.
        unsafe {
            asm!(
                concat!("sdot {acc:v}.4s, {a:v}.16b, {b:v}.4b[", $lane, "]"),
                acc = inout(vreg) $acc,
                a = in(vreg) $a,
                b = in(vreg) $b,
                options(pure, nomem, nostack, preserves_flags)
            )
        }
    };
}

/// # Safety
/// See [`TileKernel::dot_tile`].
#[target_feature(enable = "neon,dotprod")]
unsafe fn inner<const MR: usize>(
    w: *const u8,
    nblocks: usize,
    x: *const i8,
    x_stride: usize,
    acc: *mut i32,
) {
    let mask = vdupq_n_u8(3);
    let mut sums = [[vdupq_n_s32(0); 4]; MR];
    for b in 0..nblocks {
        // SAFETY: block b < nblocks is readable (contract).
        let p = unsafe { w.add(b * BLOCK_BYTES) };
        let v = unsafe {
            [
                vld1q_u8(p),
                vld1q_u8(p.add(16)),
                vld1q_u8(p.add(32)),
                vld1q_u8(p.add(48)),
            ]
        };
        let mut xv = [vdupq_n_s8(0); MR];
        for (r, xr) in xv.iter_mut().enumerate() {
            // SAFETY: row r has 16 * nblocks readable bytes (contract).
            *xr = unsafe { vld1q_s8(x.add(r * x_stride + b * 16)) };
        }
        for q in 0..4 {
            let d0 = vreinterpretq_s8_u8(vandq_u8(v[q], mask));
            let d1 = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8::<2>(v[q]), mask));
            let d2 = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8::<4>(v[q]), mask));
            let d3 = vreinterpretq_s8_u8(vshrq_n_u8::<6>(v[q]));
            for r in 0..MR {
                let mut a = sums[r][q];
                sdot_lane!(a, d0, xv[r], "0");
                sdot_lane!(a, d1, xv[r], "1");
                sdot_lane!(a, d2, xv[r], "2");
                sdot_lane!(a, d3, xv[r], "3");
                sums[r][q] = a;
            }
        }
    }
    for (r, row_sums) in sums.iter().enumerate() {
        for (q, s) in row_sums.iter().enumerate() {
            // SAFETY: acc holds MR * 16 i32 (contract).
            unsafe {
                let p = acc.add(r * 16 + q * 4);
                vst1q_s32(p, vaddq_s32(vld1q_s32(p), *s));
            }
        }
    }
}
