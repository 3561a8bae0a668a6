//! Packed ternary GEMV for small batches (M ≤ 16): streams the packed weights once, decoding the
//! 2-bit codes in registers and accumulating in i32.
//!
//! One cube per tile of 16 output rows. Unit `u` handles quarter `q = u % 4` of each 64-byte block
//! (one 16-byte `Vector<u32, 4>` = 4 output rows × 16 inputs) for the k-blocks
//! `kb ≡ u / 4 (mod k_lanes)`, so a cube streams `k_lanes` consecutive blocks per step, coalesced.
//! The 16 activation codes of a block are decoded once and reused for the 4 rows.
//! Partial sums are reduced across the `k_lanes` with plane shuffles (when the runtime reports
//! plane ops) and a shared-memory tree.

use cubecl::prelude::*;

use super::common::{linear_cube_pos, signed_byte, GRAN_CHANNEL, GRAN_GROUP};

/// Sums `value` over the `k_lanes` units that share a row slot, leaving the total in lane 0's slot
/// `smem[slot * k_lanes]`. Caller syncs before reading it.
#[cube]
fn reduce_over_lanes<E: Numeric>(
    smem: &mut SharedMemory<E>,
    value: E,
    slot: usize,
    kl: usize,
    #[comptime] k_lanes: usize,
    #[comptime] use_plane: bool,
) {
    let mut v = value;
    // Units u = kl*4 + q: a plane of P lanes holds P/4 consecutive kl for each q.
    let mut kl_per_plane = 1usize;
    if use_plane {
        let mut offset = 4u32;
        while offset < PLANE_DIM {
            v += plane_shuffle_xor(v, offset);
            offset *= 2;
        }
        kl_per_plane = (PLANE_DIM / 4) as usize;
    }
    smem[slot * k_lanes + kl] = v;
    sync_cube();
    let mut stride = (k_lanes / 2).runtime();
    while stride >= kl_per_plane && stride > 0 {
        if kl < stride && kl % kl_per_plane == 0 {
            smem[slot * k_lanes + kl] =
                smem[slot * k_lanes + kl] + smem[slot * k_lanes + kl + stride];
        }
        sync_cube();
        stride /= 2;
    }
}

/// GEMV kernel; see the module docs. `out` is `[rows_m, n]` f32; with `raw` the exact i32
/// accumulators go to `out_raw` instead (scales and bias ignored).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn gemv_kernel<NV: Size, O: Float>(
    codes: &Array<Vector<u32, NV>>,
    packed: &Array<Vector<u32, NV>>,
    x_scales: &Array<f32>,
    w_scales: &Array<f32>,
    bias: &Array<O>,
    out: &mut Array<O>,
    out_raw: &mut Array<i32>,
    n: usize,
    blocks_k: usize,
    groups_per_row: usize,
    blocks_per_group: usize,
    #[comptime] rows_m: usize,
    #[comptime] k_lanes: usize,
    #[comptime] gran: u32,
    #[comptime] has_bias: bool,
    #[comptime] raw: bool,
    #[comptime] use_plane: bool,
) {
    let tile = linear_cube_pos();
    let unit = UNIT_POS as usize;
    let q = unit % 4;
    let kl = unit / 4;
    let per_group = comptime!(gran == GRAN_GROUP && !raw);

    let mut acc_i = Array::<i32>::new(comptime!(rows_m * 4));
    let mut acc_f = Array::<f32>::new(comptime!(rows_m * 4));
    #[unroll]
    for i in 0..rows_m * 4 {
        acc_i[i] = 0;
        acc_f[i] = 0.0;
    }
    let mut xs = Array::<i32>::new(16usize);

    let mut kb = kl;
    while kb < blocks_k {
        let wv = packed[(tile * blocks_k + kb) * 4 + q];
        #[unroll]
        for mi in 0..rows_m {
            let xv = codes[mi * blocks_k + kb];
            let mut xsum = 0i32;
            #[unroll]
            for s in 0..4usize {
                let xw = xv[s];
                #[unroll]
                for j in 0..4usize {
                    let v = signed_byte(xw, j as u32);
                    xs[s * 4 + j] = v;
                    xsum += v;
                }
            }
            #[unroll]
            for r in 0..4usize {
                let w = wv[r];
                // Σ x·code − Σ x = Σ x·(code − 1): one multiply-add per weight.
                let mut dot = 0i32;
                #[unroll]
                for s in 0..4usize {
                    #[unroll]
                    for j in 0..4usize {
                        let code = i32::cast_from((w >> (8 * j as u32 + 2 * s as u32)) & 3u32);
                        dot += xs[s * 4 + j] * code;
                    }
                }
                let block_sum = dot - xsum;
                if per_group {
                    let nn = tile * 16 + q * 4 + r;
                    let mut sc = 0.0f32;
                    if nn < n {
                        sc = w_scales[nn * groups_per_row + kb / blocks_per_group];
                    }
                    acc_f[mi * 4 + r] += f32::cast_from(block_sum) * sc;
                } else {
                    acc_i[mi * 4 + r] += block_sum;
                }
            }
        }
        kb += k_lanes;
    }

    // Reduce across k lanes, one batch row at a time (bounded shared memory).
    let row_in_tile = unit;
    let nn_out = tile * 16 + row_in_tile;
    if per_group {
        let mut smem = SharedMemory::<f32>::new(comptime!(16 * k_lanes));
        #[unroll]
        for mi in 0..rows_m {
            #[unroll]
            for r in 0..4usize {
                reduce_over_lanes::<f32>(
                    &mut smem,
                    acc_f[mi * 4 + r],
                    q * 4 + r,
                    kl,
                    k_lanes,
                    use_plane,
                );
            }
            if row_in_tile < 16 && nn_out < n {
                let mut y = smem[row_in_tile * k_lanes] * x_scales[mi];
                if has_bias {
                    y += f32::cast_from(bias[nn_out]);
                }
                out[mi * n + nn_out] = O::cast_from(y);
            }
            sync_cube();
        }
    } else {
        let mut smem = SharedMemory::<i32>::new(comptime!(16 * k_lanes));
        #[unroll]
        for mi in 0..rows_m {
            #[unroll]
            for r in 0..4usize {
                reduce_over_lanes::<i32>(
                    &mut smem,
                    acc_i[mi * 4 + r],
                    q * 4 + r,
                    kl,
                    k_lanes,
                    use_plane,
                );
            }
            if row_in_tile < 16 && nn_out < n {
                let total = smem[row_in_tile * k_lanes];
                if raw {
                    out_raw[mi * n + nn_out] = total;
                } else {
                    let mut sw = w_scales[0];
                    if gran == GRAN_CHANNEL {
                        sw = w_scales[nn_out];
                    }
                    let mut y = (f32::cast_from(total) * x_scales[mi]) * sw;
                    if has_bias {
                        y += f32::cast_from(bias[nn_out]);
                    }
                    out[mi * n + nn_out] = O::cast_from(y);
                }
            }
            sync_cube();
        }
    }
}
