//! Activation quantization: `[M, K]` floats (f32, f16 or bf16: the kernels are generic over the
//! input type and compute in f32) → int8 codes (four per little-endian `u32` word, rows
//! padded with zeros to a multiple of 16 codes) plus f32 scales, by absmax.

use cubecl::prelude::*;

use super::common::{linear_cube_pos, round_ties_even};

/// Largest finite f32; anything above (or NaN, which compares false) is non-finite.
const F32_MAX: f32 = 3.402_823_5e38;

/// `a` (an absolute value), or `inf` if it is NaN or infinite.
#[cube]
fn finite_or_inf(a: f32, inf: f32) -> f32 {
    let mut out = a;
    if !(a <= F32_MAX) {
        out = inf;
    }
    out
}

/// The larger of two absolute values (neither is NaN: see [`finite_or_inf()`]).
#[cube]
fn larger(a: f32, b: f32) -> f32 {
    let mut out = a;
    if b > a {
        out = b;
    }
    out
}

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
    // Four loads per step, all issued before their values are used: a row of 4096 inputs takes
    // 4 memory round trips per unit instead of 16 (one cube per row: latency-bound at small M).
    while i + 3 * cube_size < k {
        let v0 = f32::cast_from(x[base + i]);
        let v1 = f32::cast_from(x[base + i + cube_size]);
        let v2 = f32::cast_from(x[base + i + 2 * cube_size]);
        let v3 = f32::cast_from(x[base + i + 3 * cube_size]);
        let a0 = finite_or_inf(f32::abs(v0), inf);
        let a1 = finite_or_inf(f32::abs(v1), inf);
        let a2 = finite_or_inf(f32::abs(v2), inf);
        let a3 = finite_or_inf(f32::abs(v3), inf);
        local = larger(local, larger(larger(a0, a1), larger(a2, a3)));
        i += 4 * cube_size;
    }
    while i < k {
        let a = finite_or_inf(f32::abs(f32::cast_from(x[base + i])), inf);
        local = larger(local, a);
        i += cube_size;
    }
    cube_absmax(local, cube_size)
}

/// The largest of the cube's `local` absolute values (non-NaN, see [`finite_or_inf()`]), by a
/// tree in shared memory; every unit gets it.
#[cube]
fn cube_absmax(local: f32, #[comptime] cube_size: usize) -> f32 {
    let unit = UNIT_POS as usize;
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
    let s = row_scale(amax, eps, nonfinite);
    if unit == 0 {
        scales[row] = s;
    }
    let mut w = unit;
    while w < words_per_row {
        let kk = w * 4;
        let mut word = 0u32;
        if finite && kk + 3 < k {
            // A whole word: its four loads issued together, before any is used.
            let v0 = f32::cast_from(x[base + kk]);
            let v1 = f32::cast_from(x[base + kk + 1]);
            let v2 = f32::cast_from(x[base + kk + 2]);
            let v3 = f32::cast_from(x[base + kk + 3]);
            word = code_word(v0, v1, v2, v3, s);
        } else if finite {
            // The row's last, partial word (zero codes past K).
            #[unroll]
            for j in 0..4u32 {
                if kk + (j as usize) < k {
                    word |= code_byte(f32::cast_from(x[base + kk + j as usize]), s) << (8 * j);
                }
            }
        }
        codes[row * words_per_row + w] = word;
        w += cube_size;
    }
}

/// Per-token quantization of rows short enough to stay in registers: one cube per row, each unit
/// holding the `4 · words_per_unit` inputs of its words `unit, unit + cube_size, …` (so a row
/// may span up to `4 · words_per_unit · cube_size` inputs, padding included). Same results as
/// [`quantize_rows_kernel()`] per token, with the row read from memory once, all of a unit's
/// loads issued before any is used (one memory round trip per row instead of two passes of
/// dependent steps: that kernel took ~10 µs for one row of 8192 inputs on an H200), and the
/// codes built from registers.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
pub fn quantize_short_rows_kernel<F: Float>(
    x: &Array<F>,
    codes: &mut Array<u32>,
    scales: &mut Array<f32>,
    m: usize,
    k: usize,
    words_per_row: usize,
    eps: f32,
    nonfinite: f32,
    inf: f32,
    #[comptime] words_per_unit: usize,
    #[comptime] cube_size: usize,
) {
    let row = linear_cube_pos();
    if row >= m {
        terminate!();
    }
    let unit = UNIT_POS as usize;
    let base = row * k;
    // Inputs past K (the row's padding words) read as zero: their codes are zero.
    let mut vals = Array::<f32>::new(comptime!(words_per_unit * 4));
    #[unroll]
    for r in 0..words_per_unit {
        let kk = (unit + r * cube_size) * 4;
        #[unroll]
        for j in 0..4u32 {
            let at = kk + j as usize;
            let mut v = 0.0f32;
            if at < k {
                v = f32::cast_from(x[base + at]);
            }
            vals[r * 4 + j as usize] = v;
        }
    }
    let mut local = 0.0f32;
    #[unroll]
    for i in 0..comptime!(words_per_unit * 4) {
        local = larger(local, finite_or_inf(f32::abs(vals[i]), inf));
    }
    let amax = cube_absmax(local, cube_size);
    let finite = amax <= F32_MAX;
    let s = row_scale(amax, eps, nonfinite);
    if unit == 0 {
        scales[row] = s;
    }
    #[unroll]
    for r in 0..words_per_unit {
        let w = unit + r * cube_size;
        if w < words_per_row {
            let mut word = 0u32;
            if finite {
                word = code_word(
                    vals[r * 4],
                    vals[r * 4 + 1],
                    vals[r * 4 + 2],
                    vals[r * 4 + 3],
                    s,
                );
            }
            codes[row * words_per_row + w] = word;
        }
    }
}

/// The scale of a row of absmax `amax`: `max(amax, eps) / 127`, or `nonfinite` if `amax` is not
/// finite (the row holds NaN/Inf).
#[cube]
fn row_scale(amax: f32, eps: f32, nonfinite: f32) -> f32 {
    let mut clamped = amax;
    if amax < eps {
        clamped = eps;
    }
    let mut s = clamped / 127.0;
    if !(amax <= F32_MAX) {
        s = nonfinite;
    }
    s
}

/// Four consecutive inputs' codes in one little-endian word (the first in the low byte).
#[cube]
fn code_word(v0: f32, v1: f32, v2: f32, v3: f32, s: f32) -> u32 {
    code_byte(v0, s) | (code_byte(v1, s) << 8) | (code_byte(v2, s) << 16) | (code_byte(v3, s) << 24)
}

/// `clamp(round_ties_even(v / s), -128, 127)` as an int8 code in the low byte.
#[cube]
fn code_byte(v: f32, s: f32) -> u32 {
    let mut q = round_ties_even(v / s);
    if q > 127.0 {
        q = 127.0;
    }
    if q < -128.0 {
        q = -128.0;
    }
    u32::cast_from(i32::cast_from(q)) & 255u32
}
