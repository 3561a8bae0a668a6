//! Dequantization back to f32: int8 activations (`s_x · xq`, for `dW = dyᵀ · (s_x·xq)`) and
//! packed ternary weights (`s_w · Wq`, for tests and float fallbacks).

use cubecl::prelude::*;

use super::common::{linear_cube_pos, signed_byte, ternary_at};
use super::weight_pack::weight_scale;

/// One unit per element: `out[m, k] = codes[m, k] * scales[m or 0]`, row-major `[M, K]`.
#[cube(launch_unchecked)]
pub fn dequant_activations_kernel(
    codes: &Array<u32>,
    scales: &Array<f32>,
    out: &mut Array<f32>,
    m: usize,
    k: usize,
    words_per_row: usize,
) {
    let pos = linear_cube_pos() * CUBE_DIM as usize + UNIT_POS as usize;
    if pos >= m * k {
        terminate!();
    }
    let row = pos / k;
    let kk = pos % k;
    let word = codes[row * words_per_row + kk / 4];
    let v = signed_byte(word, (kk % 4) as u32);
    out[pos] = f32::cast_from(v) * scales[row];
}

/// One unit per element: dequantized weight `s_w(n, k) · Wq[n, k]`, written as `[K, N]`
/// (`input_major`, Burn's layout) or `[N, K]`.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn unpack_weights_kernel(
    packed: &Array<u32>,
    scales: &Array<f32>,
    out: &mut Array<f32>,
    k: usize,
    n: usize,
    blocks_k: usize,
    group_size: usize,
    groups_per_row: usize,
    #[comptime] gran: u32,
    #[comptime] input_major: bool,
) {
    let pos = linear_cube_pos() * CUBE_DIM as usize + UNIT_POS as usize;
    if pos >= n * k {
        terminate!();
    }
    let mut kk = pos % k;
    let mut nn = pos / k;
    if input_major {
        kk = pos / n;
        nn = pos % n;
    }
    let word = packed[((nn / 16) * blocks_k + kk / 16) * 16 + nn % 16];
    let kl = (kk % 16) as u32;
    let t = ternary_at(word, 8 * (kl % 4) + 2 * (kl / 4));
    let sc = weight_scale(scales, nn, kk, group_size, groups_per_row, gran);
    out[pos] = f32::cast_from(t) * sc;
}
