//! Portable scalar kernel. Also the model the SIMD kernels follow, line for line.

use super::TileKernel;
use crate::packed::BLOCK_BYTES;

/// The scalar kernel.
pub(crate) struct Scalar;

impl TileKernel for Scalar {
    const MAX_ROWS: usize = 4;

    unsafe fn dot_tile<const MR: usize>(
        w: *const u8,
        nblocks: usize,
        x: *const i8,
        x_stride: usize,
        acc: *mut i32,
    ) {
        for b in 0..nblocks {
            // SAFETY: b < nblocks; the caller guarantees `nblocks` blocks at `w`.
            let blk = unsafe { &*(w.add(b * BLOCK_BYTES) as *const [u8; BLOCK_BYTES]) };
            for r in 0..MR {
                // SAFETY: row r holds 16 * nblocks bytes (caller contract).
                let xr = unsafe { std::slice::from_raw_parts(x.add(r * x_stride + b * 16), 16) };
                for (byte_idx, &byte) in blk.iter().enumerate() {
                    let (row, j) = (byte_idx / 4, byte_idx % 4);
                    let mut sum = 0i32;
                    for s in 0..4 {
                        let code = ((byte >> (2 * s)) & 3) as i32;
                        sum += code * xr[4 * s + j] as i32;
                    }
                    // SAFETY: r < MR and row < 16, inside the MR * 16 accumulators.
                    unsafe { *acc.add(r * 16 + row) += sum };
                }
            }
        }
    }
}
