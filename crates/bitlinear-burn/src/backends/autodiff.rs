//! BitLinear under `Autodiff<B>`: the training forward is one tracked operation whose custom
//! backward applies the straight-through estimator (DEVELOPERS.md):
//! `dx = dy·(s_w·Wq)`, `dW = dyᵀ·(s_x·xq)`, `db = Σ dy`.
//!
//! The backward state holds the int8 activation codes and ternary weight codes (one byte per
//! value) plus their scales, as produced by the inner backend's forward; no f32 copy of the
//! input or of the weight is kept.

use bitlinear_core::BitLinearError;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::Tensor;

use crate::ops::{
    float, tensor, BitLinearBackend, BitLinearGrads, PackedShape, QuantSpec, SavedQuant,
};

/// Backward of the training forward; `N` = 2 (x, W) or 3 (x, W, b).
#[derive(Debug)]
struct TrainBackward<const N: usize>;

/// State of [`TrainBackward`]: what the inner forward saved, the spec and `N` (outputs).
#[derive(Debug)]
struct TrainState<B: BitLinearBackend> {
    saved: SavedQuant<B>,
    spec: QuantSpec,
}

impl<B: BitLinearBackend> Clone for TrainState<B> {
    fn clone(&self) -> Self {
        Self {
            saved: self.saved.clone(),
            spec: self.spec,
        }
    }
}

impl<B: BitLinearBackend, const N: usize> Backward<B, N> for TrainBackward<N> {
    type State = TrainState<B>;

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let parents = ops.parents;
        let need_bias = N == 3 && parents[N - 1].is_some();
        let bias_grad = need_bias.then(|| {
            let dy: Tensor<B, 2> = tensor(grad.clone());
            let n = dy.dims()[1];
            float(dy.sum_dim(0).reshape([n]))
        });
        let BitLinearGrads { x, weight } = B::bitlinear_backward(
            grad,
            ops.state.saved,
            ops.state.spec,
            parents[0].is_some(),
            parents[1].is_some(),
        );
        if let (Some(node), Some(g)) = (&parents[0], x) {
            grads.register::<B>(node.id, g);
        }
        if let (Some(node), Some(g)) = (&parents[1], weight) {
            grads.register::<B>(node.id, g);
        }
        if let (Some(node), Some(g)) = (parents.get(2).and_then(|p| p.as_ref()), bias_grad) {
            grads.register::<B>(node.id, g);
        }
    }
}

/// Backward of the deployed forward: only the input receives a gradient.
#[derive(Debug)]
struct DeployedBackward;

#[derive(Debug)]
struct DeployedState<B: BitLinearBackend> {
    packed: IntTensor<B>,
    scales: FloatTensor<B>,
    shape: PackedShape,
    spec: QuantSpec,
}

impl<B: BitLinearBackend> Clone for DeployedState<B> {
    fn clone(&self) -> Self {
        Self {
            packed: self.packed.clone(),
            scales: self.scales.clone(),
            shape: self.shape,
            spec: self.spec,
        }
    }
}

impl<B: BitLinearBackend> Backward<B, 1> for DeployedBackward {
    type State = DeployedState<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        if let [Some(node)] = &ops.parents {
            let s = ops.state;
            let dx = B::bitlinear_deployed_input_grad(grad, s.packed, s.scales, s.shape, s.spec);
            grads.register::<B>(node.id, dx);
        }
    }
}

fn untracked<B: BitLinearBackend, C: CheckpointStrategy>(
    t: FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    <Autodiff<B, C> as AutodiffBackend>::from_inner(t)
}

impl<B: BitLinearBackend, C: CheckpointStrategy> BitLinearBackend for Autodiff<B, C> {
    fn bitlinear_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: QuantSpec,
    ) -> FloatTensor<Self> {
        let inner_bias = bias.as_ref().map(|b| b.primitive.clone());
        macro_rules! run {
            ($prep:expr) => {
                match $prep.compute_bound().stateful() {
                    OpsKind::Tracked(prep) => {
                        let (y, saved) = B::bitlinear_forward_saving(
                            x.primitive,
                            weight.primitive,
                            inner_bias,
                            spec,
                        );
                        prep.finish(TrainState { saved, spec }, y)
                    }
                    OpsKind::UnTracked(prep) => prep.finish(B::bitlinear_forward(
                        x.primitive,
                        weight.primitive,
                        inner_bias,
                        spec,
                    )),
                }
            };
        }
        match &bias {
            Some(b) => run!(TrainBackward::<3>.prepare::<C>([
                x.node.clone(),
                weight.node.clone(),
                b.node.clone()
            ])),
            None => run!(TrainBackward::<2>.prepare::<C>([x.node.clone(), weight.node.clone()])),
        }
    }

    fn bitlinear_forward_saving(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        spec: QuantSpec,
    ) -> (FloatTensor<Self>, SavedQuant<Self>) {
        let (y, s) = B::bitlinear_forward_saving(
            x.primitive,
            weight.primitive,
            bias.map(|b| b.primitive),
            spec,
        );
        let saved = SavedQuant {
            x_codes: s.x_codes,
            x_scales: untracked::<B, C>(s.x_scales),
            w_codes: s.w_codes,
            w_scales: untracked::<B, C>(s.w_scales),
        };
        (untracked::<B, C>(y), saved)
    }

    fn bitlinear_backward(
        grad: FloatTensor<Self>,
        saved: SavedQuant<Self>,
        spec: QuantSpec,
        need_x: bool,
        need_weight: bool,
    ) -> BitLinearGrads<Self> {
        let saved = SavedQuant {
            x_codes: saved.x_codes,
            x_scales: saved.x_scales.primitive,
            w_codes: saved.w_codes,
            w_scales: saved.w_scales.primitive,
        };
        let g = B::bitlinear_backward(grad.primitive, saved, spec, need_x, need_weight);
        BitLinearGrads {
            x: g.x.map(untracked::<B, C>),
            weight: g.weight.map(untracked::<B, C>),
        }
    }

    fn bitlinear_pack(
        weight: FloatTensor<Self>,
        spec: QuantSpec,
    ) -> Result<(IntTensor<Self>, FloatTensor<Self>), BitLinearError> {
        let (words, scales) = B::bitlinear_pack(weight.primitive, spec)?;
        Ok((words, untracked::<B, C>(scales)))
    }

    fn bitlinear_deployed_forward(
        x: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
        shape: PackedShape,
        spec: QuantSpec,
    ) -> FloatTensor<Self> {
        // Packed weights and their scales are constants. A trainable bias gets its gradient
        // through a regular tracked add; otherwise it is fused into the kernel's epilogue.
        let bias_tracked = bias.as_ref().is_some_and(|b| b.is_tracked());
        let fused_bias = if bias_tracked {
            None
        } else {
            bias.as_ref().map(|b| b.primitive.clone())
        };
        let prep = DeployedBackward
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful();
        let y = match prep {
            OpsKind::Tracked(prep) => {
                let state = DeployedState {
                    packed: packed.clone(),
                    scales: scales.primitive.clone(),
                    shape,
                    spec,
                };
                let y = B::bitlinear_deployed_forward(
                    x.primitive,
                    packed,
                    scales.primitive,
                    fused_bias,
                    shape,
                    spec,
                );
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::bitlinear_deployed_forward(
                x.primitive,
                packed,
                scales.primitive,
                fused_bias,
                shape,
                spec,
            )),
        };
        match bias {
            Some(b) if bias_tracked => {
                float(tensor::<Self, 2>(y).add(tensor::<Self, 1>(b).unsqueeze_dim(0)))
            }
            _ => y,
        }
    }

    fn bitlinear_deployed_input_grad(
        grad: FloatTensor<Self>,
        packed: IntTensor<Self>,
        scales: FloatTensor<Self>,
        shape: PackedShape,
        spec: QuantSpec,
    ) -> FloatTensor<Self> {
        untracked::<B, C>(B::bitlinear_deployed_input_grad(
            grad.primitive,
            packed,
            scales.primitive,
            shape,
            spec,
        ))
    }
}
