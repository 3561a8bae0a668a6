//! Host API for int8 activation quantization and dequantization.

use cubecl::prelude::*;
use cubecl::server::Handle;

use crate::device::{grid_1d, grid_for_elements};
use crate::error::Result;
use crate::kernels::activation_quant::{
    max_reduce_kernel, quantize_rows_kernel, quantize_short_rows_kernel, row_absmax_kernel,
};
use crate::kernels::dequant::dequant_activations_kernel;
use crate::types::{words_per_row, ActivationGranularity, FloatDtype, QuantizedActivations};
use crate::validate;

/// Units per cube of the row kernels.
const ROW_CUBE: usize = 256;

/// Most words (of four inputs) each unit of the per-token kernel holds in registers: rows of up
/// to `4 · 8 · ROW_CUBE` = 8192 inputs are read once; longer rows take the two-pass kernel.
const MAX_WORDS_PER_UNIT: usize = 8;

/// Words per unit of [`quantize_short_rows_kernel()`] for rows of `words` words (a power of two,
/// so that few kernel variants are compiled), or `None` when the row is too long for it.
fn short_row_words_per_unit(words: usize) -> Option<usize> {
    let per_unit = words.div_ceil(ROW_CUBE).next_power_of_two();
    (per_unit <= MAX_WORDS_PER_UNIT).then_some(per_unit)
}

/// Quantizes f32 activations `x` (row-major `[M, K]`, contiguous) to int8 by absmax:
/// `s = max(absmax, eps) / 127`, `q = clamp(round_ties_even(x / s), -128, 127)`, per row or per
/// tensor. Per token, rows of up to 8192 inputs are read from memory once (held in registers);
/// longer rows are read twice (absmax, then codes), and per tensor adds one absmax pass.
/// Rows with NaN/Inf get a NaN scale (per tensor: every row) and zero codes, so their outputs
/// are NaN. `M = 0` returns empty buffers.
pub fn quantize_activations<R: Runtime>(
    client: &ComputeClient<R>,
    x: &Handle,
    m: usize,
    k: usize,
    granularity: ActivationGranularity,
    eps: f32,
) -> Result<QuantizedActivations> {
    quantize_activations_as(client, x, m, k, granularity, eps, FloatDtype::F32)
}

/// [`quantize_activations`] of `x` in `dtype` (f16/bf16 values are widened to f32 exactly, so the
/// codes and scales equal those of the same values in f32).
pub fn quantize_activations_as<R: Runtime>(
    client: &ComputeClient<R>,
    x: &Handle,
    m: usize,
    k: usize,
    granularity: ActivationGranularity,
    eps: f32,
    dtype: FloatDtype,
) -> Result<QuantizedActivations> {
    dtype.check(client)?;
    match dtype {
        FloatDtype::F32 => quantize_typed::<f32, R>(client, x, m, k, granularity, eps),
        FloatDtype::F16 => quantize_typed::<half::f16, R>(client, x, m, k, granularity, eps),
        FloatDtype::BF16 => quantize_typed::<half::bf16, R>(client, x, m, k, granularity, eps),
    }
}

fn quantize_typed<F: Float, R: Runtime>(
    client: &ComputeClient<R>,
    x: &Handle,
    m: usize,
    k: usize,
    granularity: ActivationGranularity,
    eps: f32,
) -> Result<QuantizedActivations> {
    validate::positive("k", k)?;
    let elems = validate::mul(m, k, "M·K")?;
    validate::bytes("x", x, elems * size_of::<F>())?;
    let wpr = words_per_row(k);
    let codes = client.empty((m * wpr * 4).max(4));
    let scales = client.empty((m * 4).max(4));
    if m == 0 {
        return Ok(QuantizedActivations {
            codes,
            scales,
            m,
            k,
        });
    }
    let per_tensor = granularity == ActivationGranularity::PerTensor;
    match short_row_words_per_unit(wpr) {
        Some(words_per_unit) if !per_tensor => {
            // SAFETY: `x` holds `m·k` values (checked above), `codes` `m·wpr` words and `scales`
            // `m` values (allocated here); the kernel reads a row's inputs only below `k`, writes
            // its words only below `wpr`, and leaves cubes past `m` at once.
            unsafe {
                quantize_short_rows_kernel::launch_unchecked::<F, R>(
                    client,
                    grid_1d(m),
                    CubeDim::new_1d(ROW_CUBE as u32),
                    ArrayArg::from_raw_parts(x.clone(), elems),
                    ArrayArg::from_raw_parts(codes.clone(), m * wpr),
                    ArrayArg::from_raw_parts(scales.clone(), m),
                    m,
                    k,
                    wpr,
                    eps,
                    f32::NAN,
                    f32::INFINITY,
                    words_per_unit,
                    ROW_CUBE,
                );
            }
        }
        _ => quantize_two_pass::<F, R>(client, x, &codes, &scales, m, k, per_tensor, eps),
    }
    Ok(QuantizedActivations {
        codes,
        scales,
        m,
        k,
    })
}

/// Rows too long for [`quantize_short_rows_kernel()`], and per-tensor scales: the absmax first
/// (per tensor: of every row, then of those), then the codes in a second pass over `x`.
#[allow(clippy::too_many_arguments)]
fn quantize_two_pass<F: Float, R: Runtime>(
    client: &ComputeClient<R>,
    x: &Handle,
    codes: &Handle,
    scales: &Handle,
    m: usize,
    k: usize,
    per_tensor: bool,
    eps: f32,
) {
    let elems = m * k;
    let wpr = words_per_row(k);
    let absmax = client.empty(4);
    // SAFETY (all): as [`quantize_typed`]'s; `row_max` holds `m` values, `absmax` one.
    if per_tensor {
        let row_max = client.empty(m * 4);
        unsafe {
            row_absmax_kernel::launch_unchecked::<F, R>(
                client,
                grid_1d(m),
                CubeDim::new_1d(ROW_CUBE as u32),
                ArrayArg::from_raw_parts(x.clone(), elems),
                ArrayArg::from_raw_parts(row_max.clone(), m),
                m,
                k,
                f32::INFINITY,
                ROW_CUBE,
            );
            max_reduce_kernel::launch_unchecked::<R>(
                client,
                CubeCount::Static(1, 1, 1),
                CubeDim::new_1d(ROW_CUBE as u32),
                ArrayArg::from_raw_parts(row_max, m),
                ArrayArg::from_raw_parts(absmax.clone(), 1),
                m,
                f32::INFINITY,
                ROW_CUBE,
            );
        }
    }
    unsafe {
        quantize_rows_kernel::launch_unchecked::<F, R>(
            client,
            grid_1d(m),
            CubeDim::new_1d(ROW_CUBE as u32),
            ArrayArg::from_raw_parts(x.clone(), elems),
            ArrayArg::from_raw_parts(absmax, 1),
            ArrayArg::from_raw_parts(codes.clone(), m * wpr),
            ArrayArg::from_raw_parts(scales.clone(), m),
            m,
            k,
            wpr,
            eps,
            f32::NAN,
            f32::INFINITY,
            per_tensor,
            ROW_CUBE,
        );
    }
}

/// Dequantizes int8 activations to f32 `[M, K]` (`s_x[m] · xq[m, k]`), e.g. for the weight
/// gradient `dW = dyᵀ · (s_x·xq)`, which the caller computes with a float matmul.
pub fn dequantize_activations<R: Runtime>(
    client: &ComputeClient<R>,
    acts: &QuantizedActivations,
) -> Result<Handle> {
    validate::positive("k", acts.k)?;
    let (m, k) = (acts.m, acts.k);
    let elems = validate::mul(m, k, "M·K")?;
    let wpr = acts.words_per_row();
    validate::bytes("codes", &acts.codes, m * wpr * 4)?;
    validate::bytes("activation scales", &acts.scales, m * 4)?;
    let out = client.empty((elems * 4).max(4));
    if elems == 0 {
        return Ok(out);
    }
    unsafe {
        dequant_activations_kernel::launch_unchecked::<R>(
            client,
            grid_for_elements(elems, 256),
            CubeDim::new_1d(256),
            ArrayArg::from_raw_parts(acts.codes.clone(), m * wpr),
            ArrayArg::from_raw_parts(acts.scales.clone(), m),
            ArrayArg::from_raw_parts(out.clone(), elems),
            m,
            k,
            wpr,
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row's words fit its units' registers (at most [`MAX_WORDS_PER_UNIT`] each, a power of
    /// two) until the row passes 8192 inputs; past that the two-pass kernel takes it.
    #[test]
    fn short_rows_get_enough_registers_up_to_8192_inputs() {
        for words in 1..=3000usize {
            match short_row_words_per_unit(words) {
                Some(per_unit) => {
                    assert!(per_unit.is_power_of_two() && per_unit <= MAX_WORDS_PER_UNIT);
                    assert!(
                        per_unit * ROW_CUBE >= words,
                        "{words} words, {per_unit} per unit"
                    );
                    // The fewest that fit, rounded up to a power of two.
                    assert!(per_unit == 1 || (per_unit / 2) * ROW_CUBE < words);
                }
                None => assert!(words > MAX_WORDS_PER_UNIT * ROW_CUBE, "{words} words"),
            }
        }
        assert_eq!(short_row_words_per_unit(words_per_row(8192)), Some(8));
        assert_eq!(short_row_words_per_unit(words_per_row(8193)), None);
    }
}
