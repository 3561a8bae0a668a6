//! BitLinear on CubeBackend (Wgpu, Cuda) with the CubeCL kernels of `bitlinear-cubecl`.
//!
//! Which path each operation takes (the kernels compute in f32; f16 and bf16 inputs are widened
//! exactly, outputs rounded once):
//!
//! | operation | kernel path | fallback ([`super::fallback::primitive`]) when |
//! |---|---|---|
//! | training forward | `quantize_activations_as` + device `pack_weights` (from the weight cast to f32) + `ternary_matmul_as`, in `x`'s float type (f32, f16 or bf16; the bias cast to it; `y` has `x`'s dtype) | `x` is of another type or one the runtime lacks (bf16 on Wgpu), the weight or bias is not a float; `M`, `K` or `N` is 0 |
//! | training forward, saving | same; keeps the int8 activation codes, their scales, the packed u32 weight words and the weight scales (in the weight's float type) | same |
//! | backward | in f32 (`dy` cast to it): `dx`: `ternary_grad_input` on the packed words (from 128 rows: a transient dense `s_w·Wq` + Burn's float matmul); `dW = (s_x·xq)ᵀ·dy`: `dequantize_activations` + Burn's float matmul; `dx` returned in `dy`'s type, `dW` in the weight's | the saved state came from the fallback forward (int8 weight codes) or `dy` is not a float |
//! | pack (deploy) | device `pack_weights` (no host round trip of the weight: a device-side finiteness check reads back one bool; only a non-finite weight is read back, to name its index) | not f32; `K` or `N` is 0 |
//! | deployed forward | `ternary_linear_as` (quantize + GEMV / tiled GEMM / cmma GEMM, fused scale and bias) in `x`'s float type, f32, f16 or bf16 (the bias cast to it, the weight scales to f32; `y` has `x`'s dtype) | `x` is of another type or one the runtime lacks (bf16 on Wgpu); packed words not 4-byte ints; `M` is 0 |
//! | deployed input grad | as the backward's `dx` | not a float; packed words not 4-byte ints; `M` is 0 |
//!
//! The packed words have bitlinear-core's layout (`[ceil(N/16), 16·ceil(K/16)]` u32, see
//! [`PackedShape::words_shape`]), so a deployed record saved on any backend loads on any other.
//!
//! What the kernel forward saves for backward ([`SavedQuant`], opaque to everything but this
//! file's backward): `x_codes` is an `[M, K]` `I8` view of the kernel's row-padded code buffer
//! (row stride `16·ceil(K/16)`, so reading it through Burn still gives the codes); `x_scales`
//! `[M, 1]` f32; `w_codes` holds the *packed* u32 words (`DType::U32`, 2 bits per weight,
//! instead of one int8 per weight); `w_scales` as [`QuantSpec::weight_scale_shape`]. The
//! backward tells the two layouts apart by `w_codes`' dtype.

use bitlinear_core::{ActivationGranularity, BitLinearError, WeightGranularity};
use bitlinear_cubecl as kernels;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{DType, Shape, Tensor};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};
use cubecl::server::Handle;
use cubecl::zspace::metadata::Metadata;

use super::fallback::primitive as fallback;
use crate::ops::{
    float, tensor, BitLinearBackend, BitLinearGrads, PackedShape, QuantSpec, SavedQuant,
};

/// Whether the backend's float type and every given tensor are f32 (the kernels' only float
/// type). Anything else goes through the tensor-op fallback.
fn all_f32<R: CubeRuntime, F: FloatElement>(tensors: &[Option<&CubeTensor<R>>]) -> bool {
    F::dtype() == DType::F32
        && tensors
            .iter()
            .flatten()
            .all(|t| t.dtype == DType::F32 && t.qparams.is_none())
}

/// The kernels' float type for a tensor of `dtype`, where they have one (f32, f16, bf16).
fn kernel_dtype(dtype: DType) -> Option<kernels::FloatDtype> {
    match dtype {
        DType::F32 => Some(kernels::FloatDtype::F32),
        DType::F16 => Some(kernels::FloatDtype::F16),
        DType::BF16 => Some(kernels::FloatDtype::BF16),
        _ => None,
    }
}

/// The kernels' float type for the activations `x` of a training forward (f32, f16 or bf16,
/// where the runtime has it), when the weight and bias are floats too (any of the three: the
/// weight is packed from f32, the bias follows `x`).
fn train_dtype<R: CubeRuntime>(
    x: &CubeTensor<R>,
    weight: &CubeTensor<R>,
    bias: Option<&CubeTensor<R>>,
) -> Option<kernels::FloatDtype> {
    let floats = [Some(weight), bias]
        .into_iter()
        .flatten()
        .all(|t| kernel_dtype(t.dtype).is_some() && t.qparams.is_none());
    kernel_dtype(x.dtype).filter(|d| floats && x.qparams.is_none() && d.supported(&x.client))
}

/// From this many rows of `dy` on, `dx` goes through a transient dense weight and Burn's float
/// matmul (tensor cores, autotuned); below it the packed-word kernel, which reads 2 bits per
/// weight and wins while the product is memory-bound.
const DX_DENSE_MIN_ROWS: usize = 128;

/// `dx = dy · (s_w·Wq)` (`[m, K]`) from contiguous `dy` (`[m, N]`) and the packed weights.
///
/// For large `m` the weights are dequantized to a temporary `[N, K]` f32 matrix that is freed
/// right after the matmul: nothing beyond the packed words is kept between forward and backward.
fn input_grad<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(
    grad: &CubeTensor<R>,
    m: usize,
    weights: &kernels::PackedWeights,
) -> CubeTensor<R> {
    let (k, n) = (weights.k, weights.n);
    if m < DX_DENSE_MIN_ROWS {
        let dx = kernels::ternary_grad_input(&grad.client, &grad.handle, m, weights)
            .unwrap_or_else(|e| kernel_refused("input gradient failed", e));
        return float_out(grad, dx, &[m, k]);
    }
    let dense = kernels::unpack_weights(&grad.client, weights, kernels::WeightLayout::OutputMajor)
        .unwrap_or_else(|e| kernel_refused("cannot dequantize the weights", e));
    let dense: Tensor<CubeBackend<R, F, I, BT>, 2> = tensor(float_out(grad, dense, &[n, k]));
    let dy: Tensor<CubeBackend<R, F, I, BT>, 2> = tensor(grad.clone());
    float(dy.matmul(dense))
}

/// `[rows, cols]` of a 2-D tensor.
fn dims2<R: CubeRuntime>(t: &CubeTensor<R>) -> [usize; 2] {
    let shape = t.meta.shape();
    assert_eq!(
        shape.num_dims(),
        2,
        "BitLinear (CubeCL): expected a 2-D tensor, got shape {shape:?}"
    );
    [shape[0], shape[1]]
}

fn act_granularity(spec: QuantSpec) -> kernels::ActivationGranularity {
    match spec.quant.activations {
        ActivationGranularity::PerToken => kernels::ActivationGranularity::PerToken,
        ActivationGranularity::PerTensor => kernels::ActivationGranularity::PerTensor,
    }
}

fn weight_granularity(spec: QuantSpec) -> kernels::WeightGranularity {
    match spec.quant.weights {
        WeightGranularity::PerTensor => kernels::WeightGranularity::PerTensor,
        WeightGranularity::PerChannel => kernels::WeightGranularity::PerChannel,
        WeightGranularity::PerGroup(g) => kernels::WeightGranularity::PerGroup(g),
    }
}

/// The kernels refuse only inputs the trait's callers have already checked (shapes, group
/// size), so a refusal here is a bug or a corrupt deployed layer: panic naming it, as Burn's
/// forward does for bad input.
fn kernel_refused(what: &str, e: kernels::Error) -> ! {
    panic!("BitLinear (CubeCL): {what}: {e}")
}

fn to_core_error(e: kernels::Error) -> BitLinearError {
    match e {
        kernels::Error::ZeroDim { name } => BitLinearError::ZeroDimension { name },
        kernels::Error::BadGroupSize(g) => BitLinearError::OutOfRange {
            name: "group_size",
            reason: format!("{g} must be a positive multiple of 16"),
        },
        other => BitLinearError::ShapeMismatch(other.to_string()),
    }
}

/// A contiguous f32 tensor over a kernel's output buffer.
fn float_out<R: CubeRuntime>(
    like: &CubeTensor<R>,
    handle: Handle,
    shape: &[usize],
) -> CubeTensor<R> {
    CubeTensor::new_contiguous(
        like.client.clone(),
        like.device.clone(),
        Shape::from(shape.to_vec()),
        handle,
        DType::F32,
    )
}

/// Packed words of a deployed layer as the kernels see them, or `None` when their dtype is not
/// a 4-byte integer holding the words' bits (then the fallback unpacks them with tensor ops).
fn packed_weights<R: CubeRuntime>(
    packed: CubeTensor<R>,
    scales: CubeTensor<R>,
    shape: PackedShape,
    spec: QuantSpec,
) -> Option<kernels::PackedWeights> {
    if !matches!(packed.dtype, DType::U32 | DType::I32) {
        return None;
    }
    let packed = into_contiguous(packed);
    let scales = into_contiguous(scales);
    let words_shape = shape.words_shape();
    assert_eq!(
        dims2(&packed),
        words_shape,
        "BitLinear (CubeCL): packed words have shape {:?}, expected {words_shape:?} for {} → {}",
        packed.meta.shape(),
        shape.k,
        shape.n
    );
    let weights = kernels::PackedWeights::from_handles(
        packed.handle,
        scales.handle,
        shape.k,
        shape.n,
        weight_granularity(spec),
    )
    .unwrap_or_else(|e| kernel_refused("invalid packed weights", e));
    Some(weights)
}

/// `y` and the state saved for backward by [`train_forward`].
type TrainForward<R, F, I, BT> = (CubeTensor<R>, SavedQuant<CubeBackend<R, F, I, BT>>);

/// The kernel training forward on contiguous f32 operands: returns `y` and the saved state.
fn train_forward<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(
    x: CubeTensor<R>,
    weight: CubeTensor<R>,
    bias: Option<CubeTensor<R>>,
    spec: QuantSpec,
    dtype: kernels::FloatDtype,
) -> TrainForward<R, F, I, BT> {
    let x = into_contiguous(x);
    // The weight is quantized from f32 (a no-op cast for f32 weights); the bias follows x.
    let w_dtype = weight.dtype;
    let weight = into_contiguous(burn_cubecl::kernel::cast(weight, DType::F32));
    let bias = bias.map(|b| into_contiguous(burn_cubecl::kernel::cast(b, x.dtype)));
    let [m, k] = dims2(&x);
    let [wk, n] = dims2(&weight);
    assert_eq!(
        k, wk,
        "BitLinear (CubeCL): input has {k} features, the weight [K, N] has K = {wk}"
    );
    let client = &x.client;
    let acts = kernels::quantize_activations_as(
        client,
        &x.handle,
        m,
        k,
        act_granularity(spec),
        spec.eps,
        dtype,
    )
    .unwrap_or_else(|e| kernel_refused("cannot quantize the input", e));
    let weights = kernels::pack_weights(
        client,
        &weight.handle,
        k,
        n,
        kernels::WeightLayout::InputMajor,
        weight_granularity(spec),
        spec.eps,
    )
    .unwrap_or_else(|e| kernel_refused("cannot pack the weight", e));
    let y = kernels::ternary_matmul_as(
        client,
        &acts,
        &weights,
        bias.as_ref().map(|b| &b.handle),
        kernels::MatmulPath::Auto,
        dtype,
    )
    .unwrap_or_else(|e| kernel_refused("matmul failed", e));
    let y = CubeTensor::new_contiguous(
        x.client.clone(),
        x.device.clone(),
        Shape::from(vec![m, n]),
        y,
        x.dtype,
    );
    // The activation buffer is row-major int8 `[M, 16·ceil(K/16)]`: view its first K columns.
    let padded_k = kernels::words_per_row(k) * 4;
    let x_codes = CubeTensor::new(
        x.client.clone(),
        acts.codes,
        Metadata::new(Shape::from(vec![m, k]), vec![padded_k, 1]),
        x.device.clone(),
        DType::I8,
    );
    let words_shape = PackedShape { n, k }.words_shape();
    let saved = SavedQuant {
        x_codes,
        x_scales: float_out(&x, acts.scales, &[m, 1]),
        w_codes: CubeTensor::new_contiguous(
            x.client.clone(),
            x.device.clone(),
            Shape::from(words_shape.to_vec()),
            weights.packed,
            DType::U32,
        ),
        // In the weight's float type: the backward gives dW that type.
        w_scales: burn_cubecl::kernel::cast(
            float_out(&x, weights.scales, &spec.weight_scale_shape(n, k)),
            w_dtype,
        ),
    };
    (y, saved)
}

/// Whether a shape has a zero dimension (the kernels refuse those; the fallback handles them).
fn degenerate(dims: &[usize]) -> bool {
    dims.contains(&0)
}

impl<R, F, I, BT> BitLinearBackend for CubeBackend<R, F, I, BT>
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn bitlinear_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: QuantSpec,
    ) -> FloatTensor<Self> {
        let dtype = train_dtype(&x, &weight, bias.as_ref());
        let Some(dtype) = dtype.filter(|_| !degenerate(&[dims2(&x), dims2(&weight)].concat()))
        else {
            return fallback::forward::<Self>(x, weight, bias, spec);
        };
        train_forward::<R, F, I, BT>(x, weight, bias, spec, dtype).0
    }

    fn bitlinear_forward_saving(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: QuantSpec,
    ) -> (FloatTensor<Self>, SavedQuant<Self>) {
        let dtype = train_dtype(&x, &weight, bias.as_ref());
        let Some(dtype) = dtype.filter(|_| !degenerate(&[dims2(&x), dims2(&weight)].concat()))
        else {
            return fallback::forward_saving::<Self>(x, weight, bias, spec);
        };
        train_forward(x, weight, bias, spec, dtype)
    }

    fn bitlinear_backward(
        grad: FloatTensor<Self>,
        saved: SavedQuant<Self>,
        spec: QuantSpec,
        need_x: bool,
        need_weight: bool,
    ) -> BitLinearGrads<Self> {
        // Only the kernel forward saves packed u32 words; the fallback saves int8 codes.
        if saved.w_codes.dtype != DType::U32
            || kernel_dtype(grad.dtype).is_none()
            || grad.qparams.is_some()
        {
            return fallback::backward::<Self>(grad, saved, spec, need_x, need_weight);
        }
        // The kernels and the float matmuls here run in f32; dx goes back in dy's type (x's),
        // dW in the weight's, which the saved weight scales carry.
        let (x_dtype, w_dtype) = (grad.dtype, saved.w_scales.dtype);
        let grad = into_contiguous(burn_cubecl::kernel::cast(grad, DType::F32));
        let [m, n] = dims2(&grad);
        let [xm, k] = dims2(&saved.x_codes);
        assert_eq!(
            m, xm,
            "BitLinear (CubeCL): dy has {m} rows, the saved input {xm}"
        );
        let client = grad.client.clone();

        let dx = need_x.then(|| {
            let scales = burn_cubecl::kernel::cast(saved.w_scales.clone(), DType::F32);
            let weights = kernels::PackedWeights::from_handles(
                into_contiguous(saved.w_codes.clone()).handle,
                into_contiguous(scales).handle,
                k,
                n,
                weight_granularity(spec),
            )
            .unwrap_or_else(|e| kernel_refused("saved packed weights", e));
            burn_cubecl::kernel::cast(input_grad::<R, F, I, BT>(&grad, m, &weights), x_dtype)
        });

        let weight = need_weight.then(|| {
            // The codes view must still be the kernel's padded row-major buffer.
            let padded_k = kernels::words_per_row(k) * 4;
            assert_eq!(
                saved.x_codes.meta.strides()[..],
                [padded_k, 1][..],
                "BitLinear (CubeCL): saved activation codes were re-laid out"
            );
            let acts = kernels::QuantizedActivations {
                codes: saved.x_codes.handle.clone(),
                scales: into_contiguous(saved.x_scales.clone()).handle,
                m,
                k,
            };
            let x_dq = kernels::dequantize_activations(&client, &acts)
                .unwrap_or_else(|e| kernel_refused("cannot dequantize the input", e));
            let x_dq: Tensor<Self, 2> = tensor(float_out(&grad, x_dq, &[m, k]));
            let dy: Tensor<Self, 2> = tensor(grad.clone());
            // dW = (s_x·xq)ᵀ · dy in Burn's [K, N] layout, with Burn's float matmul.
            burn_cubecl::kernel::cast(float(x_dq.transpose().matmul(dy)), w_dtype)
        });
        BitLinearGrads { x: dx, weight }
    }

    fn bitlinear_pack(
        weight: FloatTensor<Self>,
        spec: QuantSpec,
    ) -> Result<(IntTensor<Self>, FloatTensor<Self>), BitLinearError> {
        if !all_f32::<R, F>(&[Some(&weight)]) || degenerate(&dims2(&weight)) {
            return fallback::pack::<Self>(weight, spec);
        }
        let [k, n] = dims2(&weight);
        // NaN/±Inf weights have no ternary value: refuse them as bitlinear-core does. The check
        // runs on the device; only one bool (and, on error, one index) comes back.
        let w: Tensor<Self, 2> = tensor(weight.clone());
        if w.clone()
            .is_finite()
            .bool_not()
            .any()
            .into_scalar()
            .elem::<bool>()
        {
            // Error path only: read the [K, N] weight back to report core's flat [N, K] index
            // of the first non-finite value.
            let data = w.into_data().convert::<f32>();
            let values = data.as_slice::<f32>().expect("f32 data");
            let index = values
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_finite())
                .map(|(i, _)| (i % n) * k + i / n)
                .min()
                .unwrap_or(0);
            return Err(BitLinearError::NonFiniteWeight { index });
        }
        let weight = into_contiguous(weight);
        let packed = kernels::pack_weights(
            &weight.client,
            &weight.handle,
            k,
            n,
            kernels::WeightLayout::InputMajor,
            weight_granularity(spec),
            spec.eps,
        )
        .map_err(to_core_error)?;
        let count = packed.granularity.scale_count(k, n);
        let words = CubeTensor::new_contiguous(
            weight.client.clone(),
            weight.device.clone(),
            Shape::from(PackedShape { n, k }.words_shape().to_vec()),
            packed.packed,
            DType::U32,
        );
        Ok((words, float_out(&weight, packed.scales, &[count])))
    }

    fn bitlinear_deployed_forward(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        shape: PackedShape,
        spec: QuantSpec,
    ) -> FloatTensor<Self> {
        let [m, k] = dims2(&x);
        // The kernels run in x's float type; the bias follows it, the weight scales are f32.
        let dtype =
            kernel_dtype(x.dtype).filter(|dtype| x.qparams.is_none() && dtype.supported(&x.client));
        let floats = [Some(&scales), bias.as_ref()]
            .into_iter()
            .flatten()
            .all(|t| kernel_dtype(t.dtype).is_some() && t.qparams.is_none());
        let (Some(dtype), true, false) = (dtype, floats, m == 0) else {
            return fallback::deployed_forward::<Self>(x, packed, scales, bias, shape, spec);
        };
        let scales_f32 = burn_cubecl::kernel::cast(scales.clone(), DType::F32);
        let Some(weights) = packed_weights(packed.clone(), scales_f32, shape, spec) else {
            return fallback::deployed_forward::<Self>(x, packed, scales, bias, shape, spec);
        };
        let bias = bias.map(|b| burn_cubecl::kernel::cast(b, x.dtype));
        let x = into_contiguous(x);
        let bias = bias.map(into_contiguous);
        let y = kernels::ternary_linear_as(
            &x.client,
            &x.handle,
            m,
            k,
            &weights,
            bias.as_ref().map(|b| &b.handle),
            act_granularity(spec),
            spec.eps,
            kernels::MatmulPath::Auto,
            dtype,
        )
        .unwrap_or_else(|e| kernel_refused("deployed forward failed", e));
        CubeTensor::new_contiguous(
            x.client.clone(),
            x.device.clone(),
            Shape::from(vec![m, shape.n]),
            y,
            x.dtype,
        )
    }

    fn bitlinear_deployed_input_grad(
        grad: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        shape: PackedShape,
        spec: QuantSpec,
    ) -> FloatTensor<Self> {
        let [m, _] = dims2(&grad);
        let floats = [&grad, &scales]
            .iter()
            .all(|t| kernel_dtype(t.dtype).is_some() && t.qparams.is_none());
        if !floats || m == 0 {
            return fallback::deployed_input_grad::<Self>(grad, packed, scales, shape, spec);
        }
        let scales_f32 = burn_cubecl::kernel::cast(scales.clone(), DType::F32);
        let Some(weights) = packed_weights(packed.clone(), scales_f32, shape, spec) else {
            return fallback::deployed_input_grad::<Self>(grad, packed, scales, shape, spec);
        };
        // Computed in f32, returned in dy's type.
        let dtype = grad.dtype;
        let grad = into_contiguous(burn_cubecl::kernel::cast(grad, DType::F32));
        burn_cubecl::kernel::cast(input_grad::<R, F, I, BT>(&grad, m, &weights), dtype)
    }
}
