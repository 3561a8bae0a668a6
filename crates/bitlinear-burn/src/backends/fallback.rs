//! BitLinear built from Burn tensor operations only: correct on every backend, used where no
//! dedicated kernel exists (today: CubeBackend, i.e. Wgpu and Cuda; NdArray's backward).
//!
//! It reproduces bitlinear-core's semantics: absmax int8 activations, absmean ternary
//! weights, round half to even (Burn's `round`), and an integer product. The product runs as
//! a float matmul of integer-valued tensors, which is exact while every partial sum stays
//! below 2^24 (|xq| ≤ 128, so K ≤ 131072). Scales multiply in core's order, so outputs match
//! the CPU kernels to float rounding.

use bitlinear_core::{ActivationGranularity, BitLinearError, PackedTernary, WeightGranularity};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, ElementConversion, Int, IntDType, Tensor, TensorData};

use crate::ops::{PackedShape, QuantSpec};

/// Activations quantized by absmax, as float tensors holding integers.
pub struct QuantizedInput<B: Backend> {
    /// `[M, K]` codes in [-128, 127]; zero on rows with non-finite input.
    pub codes: Tensor<B, 2>,
    /// `[M, 1]` scales; NaN on rows with non-finite input (per tensor: on every row).
    pub scales: Tensor<B, 2>,
}

/// `s_x = max(max|x|, eps) / 127`, `xq = clamp(round(x / s_x), -128, 127)` for `x: [M, K]`.
pub fn quantize_input<B: Backend>(x: Tensor<B, 2>, spec: QuantSpec) -> QuantizedInput<B> {
    let [m, k] = x.dims();
    let bad_rows = x.clone().is_finite().bool_not().any_dim(1);
    let absmax = abs(x.clone()).max_dim(1);
    let (absmax, bad_rows) = match spec.quant.activations {
        ActivationGranularity::PerToken => (absmax, bad_rows),
        ActivationGranularity::PerTensor => (
            absmax.max_dim(0).expand([m, 1]),
            bad_rows.any_dim(0).expand([m, 1]),
        ),
    };
    let scales = absmax
        .clamp_min(spec.eps)
        .div_scalar(127.0)
        .mask_fill(bad_rows.clone(), f32::NAN);
    let codes = x
        .div(scales.clone())
        .round()
        .clamp(-128.0, 127.0)
        .mask_fill(bad_rows.expand([m, k]), 0.0);
    QuantizedInput { codes, scales }
}

/// Ternary weights by absmean, from the `[N, K]` (core layout) weight: codes in {-1, 0, 1}
/// as floats, and scales shaped as [`QuantSpec::weight_scale_shape`].
pub fn quantize_weight_nk<B: Backend>(
    w: Tensor<B, 2>,
    spec: QuantSpec,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let [n, k] = w.dims();
    let abs = abs(w.clone());
    let scales = match spec.quant.weights {
        WeightGranularity::PerTensor => abs.mean().reshape([1, 1]),
        WeightGranularity::PerChannel => abs.mean_dim(1),
        WeightGranularity::PerGroup(g) => {
            let groups = k.div_ceil(g);
            let sums = pad_cols(abs, groups * g)
                .reshape([n, groups, g])
                .sum_dim(2)
                .reshape([n, groups]);
            // The last group may be shorter than g: divide by the true count.
            let counts: Vec<f32> = (0..groups)
                .map(|i| (k.min((i + 1) * g) - i * g) as f32)
                .collect();
            let counts =
                Tensor::<B, 2>::from_data(TensorData::new(counts, [1, groups]), &sums.device());
            sums.div(counts)
        }
    }
    .clamp_min(spec.eps);
    let codes = w
        .div(expand_weight_scales(scales.clone(), n, k, spec))
        .round()
        .clamp(-1.0, 1.0);
    (codes, scales)
}

/// `|t|` without `Tensor::abs`: burn-ndarray 0.21's SIMD unary ops (`abs`, `recip`) write a
/// shared, permuted input (e.g. a transposed view) back in the wrong element order.
fn abs<B: Backend, const D: usize>(t: Tensor<B, D>) -> Tensor<B, D> {
    t.clone().max_pair(t.neg())
}

/// Expands weight scales (shaped as [`QuantSpec::weight_scale_shape`]) to something that
/// broadcasts against the `[N, K]` weight.
pub fn expand_weight_scales<B: Backend>(
    scales: Tensor<B, 2>,
    n: usize,
    k: usize,
    spec: QuantSpec,
) -> Tensor<B, 2> {
    match spec.quant.weights {
        WeightGranularity::PerGroup(g) => {
            let groups = k.div_ceil(g);
            scales
                .reshape([n, groups, 1])
                .repeat_dim(2, g)
                .reshape([n, groups * g])
                .slice([0..n, 0..k])
        }
        _ => scales,
    }
}

/// Zero-pads the columns of `t: [R, C]` to `cols`.
fn pad_cols<B: Backend>(t: Tensor<B, 2>, cols: usize) -> Tensor<B, 2> {
    let [r, c] = t.dims();
    if cols == c {
        return t;
    }
    let zeros = Tensor::zeros([r, cols - c], &t.device());
    Tensor::cat(vec![t, zeros], 1)
}

/// `y = (xq · Wqᵀ) · s_x · s_w + b` from quantized operands (`w_codes: [N, K]`).
pub fn quantized_matmul<B: Backend>(
    x: QuantizedInput<B>,
    w_codes: Tensor<B, 2>,
    w_scales: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
    spec: QuantSpec,
) -> Tensor<B, 2> {
    let [m, k] = x.codes.dims();
    let [n, _] = w_codes.dims();
    let y = match spec.quant.weights {
        // Integer products, then `(acc · s_x) · s_w`, in bitlinear-core's order.
        WeightGranularity::PerTensor | WeightGranularity::PerChannel => x
            .codes
            .matmul(w_codes.transpose())
            .mul(x.scales)
            .mul(w_scales.reshape([1, -1]).expand([1, n])),
        // One integer product per group (a batched matmul), scaled per group and summed.
        WeightGranularity::PerGroup(g) => {
            let groups = k.div_ceil(g);
            let xg = pad_cols(x.codes, groups * g)
                .reshape([m, groups, g])
                .swap_dims(0, 1);
            let wg = pad_cols(w_codes, groups * g)
                .reshape([n, groups, g])
                .swap_dims(0, 1)
                .swap_dims(1, 2);
            let s = w_scales.transpose().reshape([groups, 1, n]);
            xg.matmul(wg)
                .mul(s)
                .sum_dim(0)
                .reshape([m, n])
                .mul(x.scales)
        }
    };
    match bias {
        Some(b) => y.add(b.unsqueeze_dim(0)),
        None => y,
    }
}

/// Training forward (`x: [M, K]`, `weight: [K, N]` Burn layout, `bias: [N]`). With `save`,
/// also returns the int8 activation codes, their scales, the int8 weight codes (`[N, K]`) and
/// the weight scales for the backward.
#[allow(clippy::type_complexity)]
pub fn forward<B: Backend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
    spec: QuantSpec,
    save: bool,
) -> (
    Tensor<B, 2>,
    Option<(
        Tensor<B, 2, Int>,
        Tensor<B, 2>,
        Tensor<B, 2, Int>,
        Tensor<B, 2>,
    )>,
) {
    let xq = quantize_input(x, spec);
    let (w_codes, w_scales) = quantize_weight_nk(weight.transpose(), spec);
    let saved = save.then(|| {
        (
            xq.codes.clone().cast(IntDType::I8),
            xq.scales.clone(),
            w_codes.clone().cast(IntDType::I8),
            w_scales.clone(),
        )
    });
    (quantized_matmul(xq, w_codes, w_scales, bias, spec), saved)
}

/// Straight-through backward: `dx = dy · (s_w·Wq)` and `dW = (s_x·xq)ᵀ · dy` (`[K, N]`).
#[allow(clippy::too_many_arguments)]
pub fn backward<B: Backend>(
    grad: Tensor<B, 2>,
    x_codes: Tensor<B, 2, Int>,
    x_scales: Tensor<B, 2>,
    w_codes: Tensor<B, 2, Int>,
    w_scales: Tensor<B, 2>,
    spec: QuantSpec,
    need_x: bool,
    need_weight: bool,
) -> (Option<Tensor<B, 2>>, Option<Tensor<B, 2>>) {
    let dw = need_weight.then(|| {
        x_codes
            .float()
            .mul(x_scales)
            .transpose()
            .matmul(grad.clone())
    });
    let dx = need_x.then(|| {
        let [n, k] = w_codes.dims();
        let w = w_codes
            .float()
            .mul(expand_weight_scales(w_scales, n, k, spec));
        grad.matmul(w)
    });
    (dx, dw)
}

/// Quantizes and packs a `[K, N]` weight on the host with bitlinear-core (exact, run once at
/// deploy time), returning the u32 words and the flat scales on the weight's device.
pub fn pack<B: Backend>(
    weight: Tensor<B, 2>,
    spec: QuantSpec,
) -> Result<(Tensor<B, 2, Int>, Tensor<B, 1>), BitLinearError> {
    let [k, n] = weight.dims();
    let device = weight.device();
    let data = weight.into_data().convert::<f32>();
    let values = data
        .as_slice::<f32>()
        .map_err(|e| BitLinearError::ShapeMismatch(format!("weight data: {e:?}")))?;
    // Straight from the [K, N] layout: the same routine as NdArray's training forward, so a
    // deployed layer reproduces its eval output exactly.
    let packed =
        PackedTernary::quantize_input_major(values, k, n, spec.quant.weights, spec.eps, None)?;
    Ok(packed_to_tensors(&packed, &device))
}

/// The u32 word tensor (`DType::U32`) and flat scale tensor of packed weights.
pub fn packed_to_tensors<B: Backend>(
    packed: &PackedTernary,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 1>) {
    let shape = PackedShape {
        n: packed.n(),
        k: packed.k(),
    }
    .words_shape();
    let words = TensorData::new(packed.to_u32_words(), shape);
    let scales = TensorData::new(packed.scales().to_vec(), [packed.scales().len()]);
    (
        Tensor::from_data(words, (device, DType::U32)),
        Tensor::from_data(scales, device),
    )
}

/// Unpacks u32 words (any int dtype holding the same bits) to `[N, K]` float codes in
/// {-1, 0, 1}, with tensor operations on the device.
pub fn unpack_codes<B: Backend>(packed: Tensor<B, 2, Int>, shape: PackedShape) -> Tensor<B, 2> {
    let [tiles, row_words] = packed.dims();
    let blocks = row_words / 16;
    let device = packed.device();
    // Column c of a block sits in byte c % 4 of its row's word, at bits 2·(c / 4).
    let shifts: Vec<i64> = (0..16)
        .map(|c| (8 * (c % 4) + 2 * (c / 4)) as i64)
        .collect();
    let shifts =
        Tensor::<B, 1, Int>::from_data(TensorData::new(shifts, [16]), (&device, packed.dtype()))
            .reshape([1, 1, 1, 16])
            .expand([tiles, blocks, 16, 16]);
    packed
        .reshape([tiles, blocks, 16, 1])
        .expand([tiles, blocks, 16, 16])
        .bitwise_right_shift(shifts)
        .bitwise_and_scalar(3.elem())
        .float()
        .sub_scalar(1.0)
        .swap_dims(1, 2)
        .reshape([tiles * 16, blocks * 16])
        .slice([0..shape.n, 0..shape.k])
}

/// Weight scales from their flat (core) order to [`QuantSpec::weight_scale_shape`].
pub fn shape_scales<B: Backend>(
    scales: Tensor<B, 1>,
    shape: PackedShape,
    spec: QuantSpec,
) -> Tensor<B, 2> {
    scales.reshape(spec.weight_scale_shape(shape.n, shape.k))
}

/// Deployed forward from packed words: unpack on the device, then [`quantized_matmul`].
pub fn deployed_forward<B: Backend>(
    x: Tensor<B, 2>,
    packed: Tensor<B, 2, Int>,
    scales: Tensor<B, 1>,
    bias: Option<Tensor<B, 1>>,
    shape: PackedShape,
    spec: QuantSpec,
) -> Tensor<B, 2> {
    let codes = unpack_codes(packed, shape);
    quantized_matmul(
        quantize_input(x, spec),
        codes,
        shape_scales(scales, shape, spec),
        bias,
        spec,
    )
}

/// `dx = dy · (s_w·Wq)` from packed words.
pub fn deployed_input_grad<B: Backend>(
    grad: Tensor<B, 2>,
    packed: Tensor<B, 2, Int>,
    scales: Tensor<B, 1>,
    shape: PackedShape,
    spec: QuantSpec,
) -> Tensor<B, 2> {
    let codes = unpack_codes(packed, shape);
    let s = expand_weight_scales(shape_scales(scales, shape, spec), shape.n, shape.k, spec);
    grad.matmul(codes.mul(s))
}

/// The trait operations of [`crate::BitLinearBackend`] on primitives, built from the functions
/// above. A backend without dedicated kernels implements the trait by calling these.
pub mod primitive {
    use bitlinear_core::BitLinearError;
    use burn::tensor::backend::Backend;
    use burn::tensor::ops::{FloatTensor, IntTensor};
    use burn::tensor::Tensor;

    use crate::ops::{float, tensor, BitLinearGrads, PackedShape, QuantSpec, SavedQuant};

    /// See [`crate::BitLinearBackend::bitlinear_forward`].
    pub fn forward<B: Backend>(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: Option<FloatTensor<B>>,
        spec: QuantSpec,
    ) -> FloatTensor<B> {
        float(super::forward::<B>(tensor(x), tensor(weight), bias.map(tensor), spec, false).0)
    }

    /// See [`crate::BitLinearBackend::bitlinear_forward_saving`].
    pub fn forward_saving<B: Backend>(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        bias: Option<FloatTensor<B>>,
        spec: QuantSpec,
    ) -> (FloatTensor<B>, SavedQuant<B>) {
        let (y, saved) =
            super::forward::<B>(tensor(x), tensor(weight), bias.map(tensor), spec, true);
        let (x_codes, x_scales, w_codes, w_scales) = saved.expect("saving forward");
        let saved = SavedQuant {
            x_codes: x_codes.into_primitive(),
            x_scales: float(x_scales),
            w_codes: w_codes.into_primitive(),
            w_scales: float(w_scales),
        };
        (float(y), saved)
    }

    /// See [`crate::BitLinearBackend::bitlinear_backward`].
    pub fn backward<B: Backend>(
        grad: FloatTensor<B>,
        saved: SavedQuant<B>,
        spec: QuantSpec,
        need_x: bool,
        need_weight: bool,
    ) -> BitLinearGrads<B> {
        let (dx, dw) = super::backward::<B>(
            tensor(grad),
            Tensor::from_primitive(saved.x_codes),
            tensor(saved.x_scales),
            Tensor::from_primitive(saved.w_codes),
            tensor(saved.w_scales),
            spec,
            need_x,
            need_weight,
        );
        BitLinearGrads {
            x: dx.map(float),
            weight: dw.map(float),
        }
    }

    /// See [`crate::BitLinearBackend::bitlinear_pack`].
    pub fn pack<B: Backend>(
        weight: FloatTensor<B>,
        spec: QuantSpec,
    ) -> Result<(IntTensor<B>, FloatTensor<B>), BitLinearError> {
        let (words, scales) = super::pack::<B>(tensor(weight), spec)?;
        Ok((words.into_primitive(), float(scales)))
    }

    /// See [`crate::BitLinearBackend::bitlinear_deployed_forward`].
    pub fn deployed_forward<B: Backend>(
        x: FloatTensor<B>,
        packed: IntTensor<B>,
        scales: FloatTensor<B>,
        bias: Option<FloatTensor<B>>,
        shape: PackedShape,
        spec: QuantSpec,
    ) -> FloatTensor<B> {
        float(super::deployed_forward::<B>(
            tensor(x),
            Tensor::from_primitive(packed),
            tensor(scales),
            bias.map(tensor),
            shape,
            spec,
        ))
    }

    /// See [`crate::BitLinearBackend::bitlinear_deployed_input_grad`].
    pub fn deployed_input_grad<B: Backend>(
        grad: FloatTensor<B>,
        packed: IntTensor<B>,
        scales: FloatTensor<B>,
        shape: PackedShape,
        spec: QuantSpec,
    ) -> FloatTensor<B> {
        float(super::deployed_input_grad::<B>(
            tensor(grad),
            Tensor::from_primitive(packed),
            tensor(scales),
            shape,
            spec,
        ))
    }
}
