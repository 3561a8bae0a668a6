//! Weight quantization (absmean, ternary) and packing into the shared 2-bit block layout.
//!
//! Packed layout (same as the CPU crate): `tiles_n = ceil(N/16)`, `blocks_k = ceil(K/16)`; block
//! `(t, kb)` is 16 words at word offset `(t * blocks_k + kb) * 16`; word `w` holds output row
//! `n = 16t + w`; bits `8j+2s..8j+2s+1` hold `code = w_ternary + 1` of `k = 16kb + 4s + j`;
//! padding holds code 1.

use cubecl::prelude::*;

use super::common::{linear_cube_pos, round_ties_even, GRAN_CHANNEL, GRAN_GROUP};

/// Index of element `(kk, nn)` of the f32 weight in either layout.
#[cube]
fn weight_index(kk: usize, nn: usize, k: usize, n: usize, #[comptime] input_major: bool) -> usize {
    let mut idx = nn * k + kk;
    if input_major {
        idx = kk * n + nn;
    }
    idx
}

/// One unit per segment `(n, g)` (`N × groups_per_row` segments, a segment is the `group_size`
/// inputs `g*G .. min((g+1)G, K)` of output `n`). Sums |W| in ascending `k` order. With `finalize`
/// it writes `max(sum / count, eps)` (NaN propagates), else the raw sum.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn absmean_segments_kernel(
    w: &Array<f32>,
    out: &mut Array<f32>,
    k: usize,
    n: usize,
    group_size: usize,
    groups_per_row: usize,
    eps: f32,
    #[comptime] input_major: bool,
    #[comptime] finalize: bool,
) {
    let seg = linear_cube_pos() * CUBE_DIM as usize + UNIT_POS as usize;
    if seg >= n * groups_per_row {
        terminate!();
    }
    let nn = seg / groups_per_row;
    let g = seg % groups_per_row;
    let k0 = g * group_size;
    let mut k1 = k0 + group_size;
    if k1 > k {
        k1 = k;
    }
    let mut sum = 0.0f32;
    let mut kk = k0;
    while kk < k1 {
        sum += f32::abs(w[weight_index(kk, nn, k, n, input_major)]);
        kk += 1;
    }
    if finalize {
        let mean = sum / f32::cast_from(k1 - k0);
        let mut s = mean;
        if mean < eps {
            s = eps;
        }
        out[seg] = s;
    } else {
        out[seg] = sum;
    }
}

/// One cube: `out[0] = max(sum(values[..len]) / divisor, eps)` (NaN propagates).
#[cube(launch_unchecked)]
pub fn mean_reduce_kernel(
    values: &Array<f32>,
    out: &mut Array<f32>,
    len: usize,
    divisor: f32,
    eps: f32,
    #[comptime] cube_size: usize,
) {
    let unit = UNIT_POS as usize;
    let mut local = 0.0f32;
    let mut i = unit;
    while i < len {
        local += values[i];
        i += cube_size;
    }
    let mut smem = SharedMemory::<f32>::new(cube_size);
    smem[unit] = local;
    sync_cube();
    let mut stride = (cube_size / 2).runtime();
    while stride > 0 {
        if unit < stride {
            smem[unit] = smem[unit] + smem[unit + stride];
        }
        sync_cube();
        stride /= 2;
    }
    if unit == 0 {
        let mean = smem[0] / divisor;
        let mut s = mean;
        if mean < eps {
            s = eps;
        }
        out[0] = s;
    }
}

/// Scale of weight `(nn, kk)` for the given granularity.
#[cube]
pub fn weight_scale(
    scales: &Array<f32>,
    nn: usize,
    kk: usize,
    group_size: usize,
    groups_per_row: usize,
    #[comptime] gran: u32,
) -> f32 {
    let mut idx = 0usize;
    if gran == GRAN_CHANNEL {
        idx = nn;
    } else if gran == GRAN_GROUP {
        idx = nn * groups_per_row + kk / group_size;
    }
    scales[idx]
}

/// One unit per packed word: quantizes 16 weights of one output row with
/// `clamp(round_ties_even(W / s), -1, 1)` (NaN → 0) and writes their 2-bit codes.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn pack_weights_kernel(
    w: &Array<f32>,
    scales: &Array<f32>,
    packed: &mut Array<u32>,
    k: usize,
    n: usize,
    blocks_k: usize,
    total_words: usize,
    group_size: usize,
    groups_per_row: usize,
    #[comptime] gran: u32,
    #[comptime] input_major: bool,
) {
    let pos = linear_cube_pos() * CUBE_DIM as usize + UNIT_POS as usize;
    if pos >= total_words {
        terminate!();
    }
    let block = pos / 16;
    let row = pos % 16;
    let tile = block / blocks_k;
    let kb = block % blocks_k;
    let nn = tile * 16 + row;
    let mut word = 0u32;
    #[unroll]
    for s in 0..4u32 {
        #[unroll]
        for j in 0..4u32 {
            let kk = kb * 16 + (4 * s + j) as usize;
            let mut code = 1u32;
            if nn < n && kk < k {
                let sc = weight_scale(scales, nn, kk, group_size, groups_per_row, gran);
                let q = round_ties_even(w[weight_index(kk, nn, k, n, input_major)] / sc);
                if q >= 1.0 {
                    code = 2u32;
                } else if q <= -1.0 {
                    code = 0u32;
                }
            }
            word |= code << (8 * j + 2 * s);
        }
    }
    packed[pos] = word;
}
