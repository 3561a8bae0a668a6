//! The backend extension trait: BitLinear's training forward, its straight-through backward,
//! weight packing and the deployed forward, each one backend operation.
//!
//! Shapes at this level are always 2-D (`x: [M, K]`); [`crate::BitLinear`] flattens any rank.
//! Weight layouts: the trained weight is Burn's `[K, N]` (`[d_input, d_output]`, as
//! `burn::nn::Linear`); the codes saved for backward and the packed words follow
//! bitlinear-core's `[N, K]` (PyTorch) layout.

use bitlinear_core::{BitLinearError, QuantType, WeightGranularity};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Int, Tensor, TensorPrimitive};

/// What a BitLinear layer quantizes and how: the quantization type and the epsilon guarding
/// all-zero inputs (both from [`crate::BitLinearConfig`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantSpec {
    /// Activation and weight scale granularity.
    pub quant: QuantType,
    /// Lower bound of every scale (`s = max(stat, eps)`), default 1e-6.
    pub eps: f32,
}

impl Default for QuantSpec {
    fn default() -> Self {
        Self {
            quant: QuantType::BITNET,
            eps: bitlinear_core::DEFAULT_EPS,
        }
    }
}

impl QuantSpec {
    /// Number of weight scale groups along K (1 unless per group).
    pub fn weight_groups(&self, k: usize) -> usize {
        self.quant.weights.groups(k)
    }

    /// Shape of the weight scales as saved for backward: `[N, groups]` for per-channel and
    /// per-group scales, `[1, 1]` for one per-tensor scale.
    pub fn weight_scale_shape(&self, n: usize, k: usize) -> [usize; 2] {
        match self.quant.weights {
            WeightGranularity::PerTensor => [1, 1],
            WeightGranularity::PerChannel => [n, 1],
            WeightGranularity::PerGroup(_) => [n, self.weight_groups(k)],
        }
    }
}

/// Dimensions of a deployed (packed) weight: `n = d_output` rows of `k = d_input` columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedShape {
    /// Output features.
    pub n: usize,
    /// Input features.
    pub k: usize,
}

impl PackedShape {
    /// Shape of the packed u32 word tensor: one row per tile of 16 output features, 16 words
    /// per 16-column block (bitlinear-core's layout, read as little-endian u32 words).
    pub fn words_shape(&self) -> [usize; 2] {
        let tiles = self.n.div_ceil(bitlinear_core::TILE_N);
        let blocks = self.k.div_ceil(bitlinear_core::BLOCK_K);
        [tiles, blocks * bitlinear_core::TILE_N]
    }
}

/// What the training forward keeps for the straight-through backward: int8 activations and
/// ternary weight codes (one byte per value) plus their scales, never f32 copies.
#[derive(Debug)]
pub struct SavedQuant<B: Backend> {
    /// `xq`: `[M, K]` int8 activation codes (`DType::I8`; zero on rows with non-finite input).
    pub x_codes: IntTensor<B>,
    /// `s_x`: `[M, 1]` activation scales (NaN on rows with non-finite input).
    pub x_scales: FloatTensor<B>,
    /// `Wq`: the ternary weight codes, in one of two forms told apart by dtype: `[N, K]` int8
    /// codes in {-1, 0, 1} (`DType::I8`; NdArray and the fallback), or the 2-bit packed u32
    /// words of bitlinear-core's layout (`DType::U32`; CubeBackend, 4x smaller).
    pub w_codes: IntTensor<B>,
    /// `s_w`: weight scales, shaped as [`QuantSpec::weight_scale_shape`].
    pub w_scales: FloatTensor<B>,
}

impl<B: Backend> Clone for SavedQuant<B> {
    fn clone(&self) -> Self {
        Self {
            x_codes: self.x_codes.clone(),
            x_scales: self.x_scales.clone(),
            w_codes: self.w_codes.clone(),
            w_scales: self.w_scales.clone(),
        }
    }
}

/// Gradients of the straight-through estimator with respect to the input and the weight.
#[derive(Debug)]
pub struct BitLinearGrads<B: Backend> {
    /// `dx = dy · (s_w·Wq)`, `[M, K]`, when requested.
    pub x: Option<FloatTensor<B>>,
    /// `dW = (s_x·xq)ᵀ · dy`, `[K, N]` (Burn layout), when requested.
    pub weight: Option<FloatTensor<B>>,
}

/// A backend that runs BitLinear layers.
///
/// Implemented for NdArray (bitlinear-core's CPU kernels), for CubeBackend (Wgpu, Cuda), for
/// `Autodiff<B>` of any implementor (custom straight-through backward), and available to any
/// other backend through the generic functions of [`crate::backends::fallback`].
pub trait BitLinearBackend: Backend {
    /// Training-mode forward: `y = (xq · Wqᵀ) · s_x · s_w + b` with `x: [M, K]`, the float
    /// weight `[K, N]` quantized on the fly, `bias: [N]`; returns `[M, N]`.
    ///
    /// Rows of `x` holding NaN or ±Inf give NaN outputs (per-tensor activations: all rows).
    fn bitlinear_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: QuantSpec,
    ) -> FloatTensor<Self>;

    /// [`Self::bitlinear_forward`], also returning what the backward needs. Not differentiable
    /// itself: autodiff backends call their inner backend's version.
    fn bitlinear_forward_saving(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: QuantSpec,
    ) -> (FloatTensor<Self>, SavedQuant<Self>);

    /// The straight-through backward of [`Self::bitlinear_forward_saving`] given `dy: [M, N]`
    /// (the bias gradient `Σ dy` is left to the caller).
    fn bitlinear_backward(
        grad: FloatTensor<Self>,
        saved: SavedQuant<Self>,
        spec: QuantSpec,
        need_x: bool,
        need_weight: bool,
    ) -> BitLinearGrads<Self>;

    /// Quantizes and packs a `[K, N]` float weight: returns the packed u32 words
    /// (`DType::U32`, shaped [`PackedShape::words_shape`]) and the weight scales (flat, in
    /// bitlinear-core's order).
    /// Errors on weights with NaN/±Inf (they have no ternary value) or an invalid spec.
    fn bitlinear_pack(
        weight: FloatTensor<Self>,
        spec: QuantSpec,
    ) -> Result<(IntTensor<Self>, FloatTensor<Self>), BitLinearError>;

    /// Deployed forward from packed weights: same result as [`Self::bitlinear_forward`] on the
    /// weight that was packed, to float rounding. `x: [M, K]`, returns `[M, N]`.
    fn bitlinear_deployed_forward(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        shape: PackedShape,
        spec: QuantSpec,
    ) -> FloatTensor<Self>;

    /// Input gradient through a deployed layer, `dx = dy · (s_w·Wq)`: lets a model with frozen
    /// deployed layers still train the layers before them.
    fn bitlinear_deployed_input_grad(
        grad: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        shape: PackedShape,
        spec: QuantSpec,
    ) -> FloatTensor<Self>;
}

pub(crate) fn float<B: Backend, const D: usize>(t: Tensor<B, D>) -> FloatTensor<B> {
    t.into_primitive().tensor()
}

pub(crate) fn tensor<B: Backend, const D: usize>(p: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

/// Training-mode BitLinear on a 2-D input (`x: [M, K]`, `weight: [K, N]`, `bias: [N]`).
pub fn bitlinear_train<B: BitLinearBackend>(
    x: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    bias: Option<Tensor<B, 1>>,
    spec: QuantSpec,
) -> Tensor<B, 2> {
    tensor(B::bitlinear_forward(
        float(x),
        float(weight),
        bias.map(float),
        spec,
    ))
}

/// Deployed BitLinear on a 2-D input (`x: [M, K]`), from packed words and scales.
pub fn bitlinear_deployed<B: BitLinearBackend>(
    x: Tensor<B, 2>,
    packed: Tensor<B, 2, Int>,
    scales: Tensor<B, 1>,
    bias: Option<Tensor<B, 1>>,
    shape: PackedShape,
    spec: QuantSpec,
) -> Tensor<B, 2> {
    tensor(B::bitlinear_deployed_forward(
        float(x),
        packed.into_primitive(),
        float(scales),
        bias.map(float),
        shape,
        spec,
    ))
}
