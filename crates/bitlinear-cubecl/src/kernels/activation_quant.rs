//! Activation quantization: `[M, K]` floats (f32, f16 or bf16: the kernels are generic over the
//! input type and compute in f32) → int8 codes (four per little-endian `u32` word, rows
//! padded with zeros to a multiple of 16 codes) plus f32 scales, by absmax.

use cubecl::prelude::*;

use super::common::{linear_cube_pos, round_ties_even};

/// Largest finite f32; anything above (or NaN, which compares false) is non-finite.
const F32_MAX: f32 = 3.402_823_5e38;

/// Max of |x| over one row, reduced across the cube in shared memory. Non-finite values become
/// `inf` (+infinity, passed in at run time: CubeCL's CUDA backend prints an infinite literal as
/// the undefined identifier `inf`) so that the caller can spot them (NaN would not survive
/// comparisons).
#[cube]
fn row_absmax<F: Float>(
    x: &Array<F>,
    base: usize,
    k: usize,
    inf: f32,
    #[comptime] cube_size: usize,
) -> f32 {
    let unit = UNIT_POS as usize;
    let mut local = 0.0f32;
    let mut i = unit;
    while i < k {
        let a = f32::abs(f32::cast_from(x[base + i]));
        let mut a_or_inf = a;
        if !(a <= F32_MAX) {
            a_or_inf = inf;
        }
        if a_or_inf > local {
            local = a_or_inf;
        }
        i += cube_size;
    }
    let mut smem = SharedMemory::<f32>::new(cube_size);
    smem[unit] = local;
    sync_cube();
    let mut stride = (cube_size / 2).runtime();
    while stride > 0 {
        if unit < stride {
            let other = smem[unit + stride];
            if other > smem[unit] {
                smem[unit] = other;
            }
        }
        sync_cube();
        stride /= 2;
    }
    let result = smem[0];
    sync_cube();
    result
}

/// One cube per row: writes the row's absmax (`+inf` if the row holds NaN/Inf) to `out[row]`.
/// Used for per-tensor scales, before [`max_reduce_kernel()`].
#[cube(launch_unchecked)]
pub fn row_absmax_kernel<F: Float>(
    x: &Array<F>,
    out: &mut Array<f32>,
    m: usize,
    k: usize,
    inf: f32,
    #[comptime] cube_size: usize,
) {
    let row = linear_cube_pos();
    if row >= m {
        terminate!();
    }
    let amax = row_absmax::<F>(x, row * k, k, inf, cube_size);
    if UNIT_POS == 0 {
        out[row] = amax;
    }
}

/// One cube: `out[0] = max(values[..len])`.
#[cube(launch_unchecked)]
pub fn max_reduce_kernel(
    values: &Array<f32>,
    out: &mut Array<f32>,
    len: usize,
    inf: f32,
    #[comptime] cube_size: usize,
) {
    let amax = row_absmax::<f32>(values, 0, len, inf, cube_size);
    if UNIT_POS == 0 {
        out[0] = amax;
    }
}

/// One cube per row. Computes the row's scale `s = max(absmax, eps) / 127` (per token, in the same
/// pass) or uses `tensor_absmax[0]` (per tensor), then writes
/// `clamp(round_ties_even(x / s), -128, 127)` as int8 codes packed four per `u32` word.
/// Rows with NaN/Inf get scale `nonfinite` (NaN) and all-zero codes.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn quantize_rows_kernel<F: Float>(
    x: &Array<F>,
    tensor_absmax: &Array<f32>,
    codes: &mut Array<u32>,
    scales: &mut Array<f32>,
    m: usize,
    k: usize,
    words_per_row: usize,
    eps: f32,
    nonfinite: f32,
    inf: f32,
    #[comptime] per_tensor: bool,
    #[comptime] cube_size: usize,
) {
    let row = linear_cube_pos();
    if row >= m {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let base = row * k;
    let amax = if per_tensor {
        tensor_absmax[0]
    } else {
        row_absmax::<F>(x, base, k, inf, cube_size)
    };
    let finite = amax <= F32_MAX;
    let mut clamped = amax;
    if amax < eps {
        clamped = eps;
    }
    let mut s = clamped / 127.0;
    if !finite {
        s = nonfinite;
    }
    if unit == 0 {
        scales[row] = s;
    }
    let mut w = unit;
    while w < words_per_row {
        let mut word = 0u32;
        #[unroll]
        for j in 0..4u32 {
            let kk = w * 4 + j as usize;
            if finite && kk < k {
                let mut q = round_ties_even(f32::cast_from(x[base + kk]) / s);
                if q > 127.0 {
                    q = 127.0;
                }
                if q < -128.0 {
                    q = -128.0;
                }
                let qi = i32::cast_from(q);
                word |= (u32::cast_from(qi) & 255u32) << (8 * j);
            }
        }
        codes[row * words_per_row + w] = word;
        w += cube_size;
    }
}
