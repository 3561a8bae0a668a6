//! BitLinear on CubeBackend (Wgpu, Cuda).
//!
//! Every operation currently forwards to the generic tensor-op implementation
//! ([`super::fallback::primitive`]): correct, but it unpacks weights to float and multiplies in
//! float. The CubeCL kernels of `bitlinear-cubecl` replace these calls one by one; each call
//! below is the single place to swap.

use bitlinear_core::BitLinearError;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};

use super::fallback::primitive as fallback;
use crate::ops::{BitLinearBackend, BitLinearGrads, PackedShape, QuantSpec, SavedQuant};

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
        fallback::forward::<Self>(x, weight, bias, spec)
    }

    fn bitlinear_forward_saving(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: QuantSpec,
    ) -> (FloatTensor<Self>, SavedQuant<Self>) {
        fallback::forward_saving::<Self>(x, weight, bias, spec)
    }

    fn bitlinear_backward(
        grad: FloatTensor<Self>,
        saved: SavedQuant<Self>,
        spec: QuantSpec,
        need_x: bool,
        need_weight: bool,
    ) -> BitLinearGrads<Self> {
        fallback::backward::<Self>(grad, saved, spec, need_x, need_weight)
    }

    fn bitlinear_pack(
        weight: FloatTensor<Self>,
        spec: QuantSpec,
    ) -> Result<(IntTensor<Self>, FloatTensor<Self>), BitLinearError> {
        fallback::pack::<Self>(weight, spec)
    }

    fn bitlinear_deployed_forward(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        shape: PackedShape,
        spec: QuantSpec,
    ) -> FloatTensor<Self> {
        fallback::deployed_forward::<Self>(x, packed, scales, bias, shape, spec)
    }

    fn bitlinear_deployed_input_grad(
        grad: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        shape: PackedShape,
        spec: QuantSpec,
    ) -> FloatTensor<Self> {
        fallback::deployed_input_grad::<Self>(grad, packed, scales, shape, spec)
    }
}
