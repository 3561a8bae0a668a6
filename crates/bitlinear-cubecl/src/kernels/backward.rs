//! Training backward for the input: `dx = dy · (s_w ⊙ Wq)` with `dy` f32 `[M, N]` and the
//! weights read from the packed codes (no f32 copy of the weight), `dx` f32 `[M, K]`.
//!
//! Cube of 16×16 units, 64(m) × 64(k) output tile, 4×4 per unit; each step consumes one tile of
//! 16 output rows `n`: `dy[64, 16]` and the 4 packed blocks covering the cube's 64 inputs,
//! dequantized into shared memory.

use cubecl::prelude::*;

use super::common::ternary_at;
use super::weight_pack::weight_scale;

/// Launch with `CubeDim::new_2d(16, 16)`, `CubeCount::Static(ceil(K/64), ceil(M/64), 1)`.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn grad_input_kernel(
    dy: &Array<f32>,
    packed: &Array<u32>,
    w_scales: &Array<f32>,
    dx: &mut Array<f32>,
    m: usize,
    n: usize,
    k: usize,
    blocks_k: usize,
    group_size: usize,
    groups_per_row: usize,
    #[comptime] gran: u32,
) {
    let tx = UNIT_POS_X as usize;
    let ty = UNIT_POS_Y as usize;
    let unit = ty * 16 + tx;
    let m0 = CUBE_POS_Y as usize * 64;
    let k0 = CUBE_POS_X as usize * 64;
    let kb0 = k0 / 16;
    let tiles_n = n.div_ceil(16usize);

    let mut dy_s = SharedMemory::<f32>::new(64usize * 17);
    let mut w_s = SharedMemory::<f32>::new(16usize * 65);
    let mut acc = Array::<f32>::new(16usize);
    #[unroll]
    for i in 0..16usize {
        acc[i] = 0.0;
    }

    for t in 0usize..tiles_n {
        #[unroll]
        for e in 0..4usize {
            let idx = unit + e * 256;
            let row = idx / 16;
            let col = idx % 16;
            let mm = m0 + row;
            let nn = t * 16 + col;
            let mut v = 0.0f32;
            if mm < m && nn < n {
                v = dy[mm * n + nn];
            }
            dy_s[row * 17 + col] = v;
        }
        // 4 blocks × 16 words, 4 units per word: unit → (block b, row w, part s).
        let wi = unit / 4;
        let s = unit % 4;
        let b = wi / 16;
        let w = wi % 16;
        let kb = kb0 + b;
        let nn = t * 16 + w;
        let mut word = 0x5555_5555u32;
        if kb < blocks_k {
            word = packed[(t * blocks_k + kb) * 16 + w];
        }
        #[unroll]
        for j in 0..4usize {
            let kk = kb * 16 + s * 4 + j;
            let mut v = 0.0f32;
            if nn < n && kk < k {
                let sc = weight_scale(w_scales, nn, kk, group_size, groups_per_row, gran);
                v = f32::cast_from(ternary_at(word, 8 * j as u32 + 2 * s as u32)) * sc;
            }
            w_s[w * 65 + b * 16 + s * 4 + j] = v;
        }
        sync_cube();
        #[unroll]
        for nl in 0..16usize {
            #[unroll]
            for i in 0..4usize {
                let a = dy_s[(ty * 4 + i) * 17 + nl];
                #[unroll]
                for j in 0..4usize {
                    acc[i * 4 + j] += a * w_s[nl * 65 + tx * 4 + j];
                }
            }
        }
        sync_cube();
    }

    #[unroll]
    for i in 0..4usize {
        let mi = m0 + ty * 4 + i;
        #[unroll]
        for j in 0..4usize {
            let kj = k0 + tx * 4 + j;
            if mi < m && kj < k {
                dx[mi * k + kj] = acc[i * 4 + j];
            }
        }
    }
}
