//! Portable packed ternary GEMM (no tensor cores): 64×64 output tile per cube of 16×16 units,
//! 4×4 outputs per unit, one 16-wide k-block per step. Activation codes and weight codes are
//! decoded to i32 while loading the shared-memory tiles; accumulation is exact i32.

use cubecl::prelude::*;

use super::common::{signed_byte, ternary_at, GRAN_CHANNEL, GRAN_GROUP};

/// Shared tile row stride (16 + 1 to spread banks).
const LDS: usize = 17;

/// Tiled GEMM kernel: `out[m, n] = epilogue(Σ_k xq[m, k] · wq[n, k])`. Launch with
/// `CubeDim::new_2d(16, 16)` and `CubeCount::Static(ceil(N/64), ceil(M/64), 1)`.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn gemm_tiled_kernel<O: Float>(
    codes: &Array<u32>,
    packed: &Array<u32>,
    x_scales: &Array<f32>,
    w_scales: &Array<f32>,
    bias: &Array<O>,
    out: &mut Array<O>,
    out_raw: &mut Array<i32>,
    m: usize,
    n: usize,
    blocks_k: usize,
    groups_per_row: usize,
    blocks_per_group: usize,
    #[comptime] gran: u32,
    #[comptime] has_bias: bool,
    #[comptime] raw: bool,
) {
    let per_group = comptime!(gran == GRAN_GROUP && !raw);
    let tx = UNIT_POS_X as usize;
    let ty = UNIT_POS_Y as usize;
    let unit = ty * 16 + tx;
    let m0 = CUBE_POS_Y as usize * 64;
    let n0 = CUBE_POS_X as usize * 64;
    let words_per_row = blocks_k * 4;

    let mut a_s = SharedMemory::<i32>::new(64 * LDS);
    let mut b_s = SharedMemory::<i32>::new(64 * LDS);
    let mut acc_i = Array::<i32>::new(16usize);
    let mut acc_f = Array::<f32>::new(16usize);
    #[unroll]
    for i in 0..16usize {
        acc_i[i] = 0;
        acc_f[i] = 0.0;
    }

    let load_row = unit / 4;
    let load_part = unit % 4;
    for kb in 0..blocks_k {
        // A: 64 rows × 4 words; unit → (row, word), 4 codes each.
        let mm = m0 + load_row;
        let mut xw = 0u32;
        if mm < m {
            xw = codes[mm * words_per_row + kb * 4 + load_part];
        }
        #[unroll]
        for j in 0..4usize {
            a_s[load_row * LDS + load_part * 4 + j] = signed_byte(xw, j as u32);
        }
        // B: 64 output rows × 1 word; unit → (row, s), the 4 codes k = 4s + j.
        let nn = n0 + load_row;
        // 0x5555_5555: 16 zero weights (code 1), for rows past N.
        let mut ww = 0x5555_5555u32;
        if nn < n {
            ww = packed[((nn / 16) * blocks_k + kb) * 16 + nn % 16];
        }
        #[unroll]
        for j in 0..4usize {
            b_s[load_row * LDS + load_part * 4 + j] =
                ternary_at(ww, 8 * j as u32 + 2 * load_part as u32);
        }
        sync_cube();

        #[unroll]
        for kk in 0..16usize {
            let mut a = Array::<i32>::new(4usize);
            let mut b = Array::<i32>::new(4usize);
            #[unroll]
            for i in 0..4usize {
                a[i] = a_s[(ty * 4 + i) * LDS + kk];
                b[i] = b_s[(tx * 4 + i) * LDS + kk];
            }
            #[unroll]
            for i in 0..4usize {
                #[unroll]
                for j in 0..4usize {
                    acc_i[i * 4 + j] += a[i] * b[j];
                }
            }
        }
        sync_cube();

        if per_group {
            // Exact per-group integer sums, then scaled: Σ_g (acc_g as f32) · s_w[n][g].
            if (kb + 1) % blocks_per_group == 0 || kb + 1 == blocks_k {
                let g = kb / blocks_per_group;
                #[unroll]
                for j in 0..4usize {
                    let nj = n0 + tx * 4 + j;
                    let mut sc = 0.0f32;
                    if nj < n {
                        sc = w_scales[nj * groups_per_row + g];
                    }
                    #[unroll]
                    for i in 0..4usize {
                        acc_f[i * 4 + j] += f32::cast_from(acc_i[i * 4 + j]) * sc;
                        acc_i[i * 4 + j] = 0;
                    }
                }
            }
        }
    }

    #[unroll]
    for i in 0..4usize {
        let mi = m0 + ty * 4 + i;
        #[unroll]
        for j in 0..4usize {
            let nj = n0 + tx * 4 + j;
            if mi < m && nj < n {
                if raw {
                    out_raw[mi * n + nj] = acc_i[i * 4 + j];
                } else {
                    let mut y = acc_f[i * 4 + j] * x_scales[mi];
                    if !per_group {
                        let mut sw = w_scales[0];
                        if gran == GRAN_CHANNEL {
                            sw = w_scales[nj];
                        }
                        y = (f32::cast_from(acc_i[i * 4 + j]) * x_scales[mi]) * sw;
                    }
                    if has_bias {
                        y += f32::cast_from(bias[nj]);
                    }
                    out[mi * n + nj] = O::cast_from(y);
                }
            }
        }
    }
}
