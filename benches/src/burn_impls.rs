//! BitLinear timed through Burn, against Burn's own `nn::Linear` on the same backend in the
//! same run.
//!
//! Impls (JSON `impl` field):
//! - `burn-linear-f32`: `Linear` forward (the baseline of `burn-bitlinear-deployed`).
//! - `burn-bitlinear-deployed`: deployed (2-bit packed) `BitLinear` forward.
//! - `burn-bitlinear-train-forward`: forward of a training-mode (f32 weight) `BitLinear` on the
//!   inner backend: quantizes the weight on every call, as an un-deployed layer does.
//! - `burn-linear-train-step`: forward + backward of `Linear` on `Autodiff<B>` (the baseline of
//!   `burn-bitlinear-train-step`).
//! - `burn-bitlinear-train-step`: forward + backward (straight-through estimator) of a trainable
//!   `BitLinear` on `Autodiff<B>`.
//! - `burn-linear-bf16`: `Linear` forward with bf16 weight, bias and input (the baseline of
//!   `burn-bitlinear-deployed-bf16`; backends with bf16: CUDA).
//! - `burn-bitlinear-deployed-bf16`: the deployed `BitLinear` on a bf16 input, with a bf16 bias:
//!   its kernels read and write bf16.
//!
//! A train step is `layer.forward(x).sum().backward()` with `x` requiring a gradient, so both
//! layers compute `dx`, `dW` and `db` (no optimizer step). Every timed call ends with
//! `B::sync(device)`, so GPU figures include the kernels' completion, after a warm-up that also
//! covers kernel compilation and, with the `cuda` feature, Burn's matmul autotuning.
//! `--cache cold` rotates over layer copies (1 GiB of weights in total; 128 MiB before session
//! 3), as the core impls do; `--cache hot` keeps one copy.
//!
//! Backends (`--backend`): `ndarray` (burn-ndarray with `multi-threads` and `simd`, threads
//! from `--threads`), `wgpu`, `cuda` (with the `cuda` feature, Burn's `autotune` on).

use bitlinear_burn::{BitLinear, BitLinearBackend, PackedShape, QuantSpec};
use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};

use crate::cases::{copies, emit};
use crate::cli::{Args, BackendKind};
use crate::timing::median_us;

/// The impl names this file provides.
pub const IMPLS: [&str; 7] = [
    "burn-linear-f32",
    "burn-bitlinear-deployed",
    "burn-linear-bf16",
    "burn-bitlinear-deployed-bf16",
    "burn-bitlinear-train-forward",
    "burn-linear-train-step",
    "burn-bitlinear-train-step",
];

/// Extra untimed calls before timing: first launches compile kernels and autotune matmuls.
const WARMUP_CALLS: usize = 3;

fn wants(args: &Args, imp: &str) -> bool {
    args.impls.iter().any(|i| i == imp)
}

/// Runs the requested Burn impls on one shape. `x` is `[m, k]`, `w` any `k·n` values (read
/// as Burn's `[k, n]` weight); `core_us` is the raw bitlinear-core kernel's time in this run,
/// if one was measured (the deployed layer's overhead is reported against it).
#[allow(clippy::too_many_arguments)]
pub fn run_case(
    args: &Args,
    x: &[f32],
    w: &[f32],
    m: usize,
    k: usize,
    n: usize,
    core_us: Option<f64>,
) {
    if !IMPLS.iter().any(|imp| wants(args, imp)) {
        return;
    }
    let case = Case {
        args,
        x,
        w,
        m,
        k,
        n,
        core_us,
    };
    match args.backend {
        BackendKind::NdArray => case.run::<burn::backend::NdArray>(&Default::default()),
        BackendKind::Wgpu => case.run::<burn::backend::Wgpu>(&Default::default()),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => case.run::<burn::backend::Cuda>(&Default::default()),
        #[cfg(not(feature = "cuda"))]
        BackendKind::Cuda => unreachable!("--backend cuda is refused without the cuda feature"),
    }
}

struct Case<'a> {
    args: &'a Args,
    x: &'a [f32],
    w: &'a [f32],
    m: usize,
    k: usize,
    n: usize,
    core_us: Option<f64>,
}

/// Bytes each layer's backward keeps beyond its parameters, from what its backward state
/// holds (computed, not measured).
struct SavedBytes {
    /// Per-input data: f32 `x` for `Linear`; int8 codes + one f32 scale per row for BitLinear.
    activations: usize,
    /// Copies of the weight made for backward: none for `Linear` (its matmul keeps a reference
    /// to the parameter); the quantized weight for BitLinear (int8 codes on NdArray, 2-bit
    /// packed words on the CubeCL backends) plus its scale(s).
    weight: usize,
}

impl Case<'_> {
    fn saved_bytes_linear(&self) -> SavedBytes {
        SavedBytes {
            activations: self.m * self.k * 4,
            weight: 0,
        }
    }

    fn saved_bytes_bitlinear(&self, spec: QuantSpec) -> SavedBytes {
        let (m, k, n) = (self.m, self.k, self.n);
        let scales = spec.quant.weights.num_scales(n, k) * 4;
        match self.args.backend {
            // bitlinear-core's int8 codes, one byte per value.
            BackendKind::NdArray => SavedBytes {
                activations: m * k + m * 4,
                weight: n * k + scales,
            },
            // The CubeCL kernels' row-padded int8 codes and packed u32 words.
            BackendKind::Wgpu | BackendKind::Cuda => {
                let [rows, cols] = PackedShape { n, k }.words_shape();
                SavedBytes {
                    activations: m * k.div_ceil(16) * 16 + m * 4,
                    weight: rows * cols * 4 + scales,
                }
            }
        }
    }

    fn backend_json(&self) -> String {
        let name = match self.args.backend {
            BackendKind::NdArray => "ndarray",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        };
        format!(",\"backend\":\"{name}\"")
    }

    /// Times `f(i)` followed by a device sync, after a warm-up.
    fn time<B: Backend>(&self, device: &B::Device, mut f: impl FnMut(usize)) -> f64 {
        for i in 0..WARMUP_CALLS {
            f(i);
        }
        B::sync(device).expect("device sync");
        median_us(self.args.min_time, |i| {
            f(i);
            B::sync(device).expect("device sync");
        })
    }

    /// `count` Burn `Linear` layers holding distinct copies of the weight (and a zero bias).
    fn linears<B: Backend>(&self, device: &B::Device, count: usize) -> Vec<Linear<B>> {
        (0..count)
            .map(|_| {
                let mut layer = LinearConfig::new(self.k, self.n).init::<B>(device);
                layer.weight = Param::from_tensor(Tensor::from_data(
                    TensorData::new(self.w.to_vec(), [self.k, self.n]),
                    device,
                ));
                layer
            })
            .collect()
    }

    fn input<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(self.x.to_vec(), [self.m, self.k]), device)
    }

    fn run<B: BitLinearBackend>(&self, device: &B::Device) {
        type AD<B> = burn::backend::Autodiff<B>;
        let (m, k, n) = (self.m, self.k, self.n);
        let spec = QuantSpec::default();
        let be = self.backend_json();
        let f32_copies = copies(self.args, k * n * 4);

        let mut linear_us = None;
        if wants(self.args, "burn-linear-f32") {
            let layers = self.linears::<B>(device, f32_copies);
            let x = self.input::<B>(device);
            let us = self.time::<B>(device, |i| {
                let _ = layers[i % layers.len()].forward(x.clone());
            });
            emit("linear", "burn-linear-f32", m, k, n, self.args, us, &be);
            linear_us = Some(us);
        }
        if wants(self.args, "burn-bitlinear-deployed") {
            let packed_bytes = PackedShape { n, k }.words_shape().iter().product::<usize>() * 4
                + spec.quant.weights.num_scales(n, k) * 4;
            // Each copy is deployed from its own float weight, so the packed words are distinct.
            let layers: Vec<BitLinear<B>> = self
                .linears::<B>(device, copies(self.args, packed_bytes))
                .iter()
                .map(|l| BitLinear::from_linear(l, spec).deploy())
                .collect();
            let x = self.input::<B>(device);
            let us = self.time::<B>(device, |i| {
                let _ = layers[i % layers.len()].forward(x.clone());
            });
            let gbps = packed_bytes as f64 / us / 1e3;
            let mut extra =
                format!("{be},\"packed_bytes\":{packed_bytes},\"weight_gbps\":{gbps:.1}");
            if let Some(b) = linear_us {
                extra += &format!(",\"speedup_vs_burn_f32\":{:.2}", b / us);
            }
            if let (Some(c), BackendKind::NdArray) = (self.core_us, self.args.backend) {
                extra += &format!(",\"overhead_vs_core\":{:.3}", us / c - 1.0);
            }
            emit(
                "linear",
                "burn-bitlinear-deployed",
                m,
                k,
                n,
                self.args,
                us,
                &extra,
            );
        }

        let mut linear_bf16_us = None;
        if wants(self.args, "burn-linear-bf16") {
            let layers: Vec<Linear<B>> = self
                .linears::<B>(device, copies(self.args, k * n * 2))
                .into_iter()
                .map(|mut l| {
                    l.weight = l.weight.map(|w| w.cast(DType::BF16));
                    l.bias = l.bias.map(|b| b.map(|b| b.cast(DType::BF16)));
                    l
                })
                .collect();
            let x = self.input::<B>(device).cast(DType::BF16);
            let us = self.time::<B>(device, |i| {
                let _ = layers[i % layers.len()].forward(x.clone());
            });
            emit("linear", "burn-linear-bf16", m, k, n, self.args, us, &be);
            linear_bf16_us = Some(us);
        }
        if wants(self.args, "burn-bitlinear-deployed-bf16") {
            let packed_bytes = PackedShape { n, k }.words_shape().iter().product::<usize>() * 4
                + spec.quant.weights.num_scales(n, k) * 4;
            let layers: Vec<BitLinear<B>> = self
                .linears::<B>(device, copies(self.args, packed_bytes))
                .iter()
                .map(|l| {
                    let mut layer = BitLinear::from_linear(l, spec).deploy();
                    layer.bias = layer.bias.map(|b| b.map(|b| b.cast(DType::BF16)));
                    layer
                })
                .collect();
            let x = self.input::<B>(device).cast(DType::BF16);
            let us = self.time::<B>(device, |i| {
                let _ = layers[i % layers.len()].forward(x.clone());
            });
            let mut extra = be.clone();
            if let Some(b) = linear_bf16_us {
                extra += &format!(",\"speedup_vs_burn_bf16\":{:.2}", b / us);
            }
            emit(
                "linear",
                "burn-bitlinear-deployed-bf16",
                m,
                k,
                n,
                self.args,
                us,
                &extra,
            );
        }

        if wants(self.args, "burn-bitlinear-train-forward") {
            let layers: Vec<BitLinear<B>> = self
                .linears::<B>(device, f32_copies)
                .iter()
                .map(|l| BitLinear::from_linear(l, spec))
                .collect();
            let x = self.input::<B>(device);
            let us = self.time::<B>(device, |i| {
                let _ = layers[i % layers.len()].forward(x.clone());
            });
            let mut extra = be.clone();
            if let Some(b) = linear_us {
                extra += &format!(",\"speedup_vs_burn_f32\":{:.2}", b / us);
            }
            emit(
                "linear",
                "burn-bitlinear-train-forward",
                m,
                k,
                n,
                self.args,
                us,
                &extra,
            );
        }

        let mut linear_step_us = None;
        if wants(self.args, "burn-linear-train-step") {
            let layers = self.linears::<AD<B>>(device, f32_copies);
            let x = self.input::<AD<B>>(device).require_grad();
            let us = self.time::<B>(device, |i| {
                let _ = layers[i % layers.len()].forward(x.clone()).sum().backward();
            });
            let saved = self.saved_bytes_linear();
            let extra = format!(
                "{be},\"saved_activation_bytes\":{},\"saved_weight_bytes\":{}",
                saved.activations, saved.weight
            );
            emit(
                "train-step",
                "burn-linear-train-step",
                m,
                k,
                n,
                self.args,
                us,
                &extra,
            );
            linear_step_us = Some(us);
        }
        if wants(self.args, "burn-bitlinear-train-step") {
            let layers: Vec<BitLinear<AD<B>>> = self
                .linears::<AD<B>>(device, f32_copies)
                .iter()
                .map(|l| BitLinear::from_linear(l, spec))
                .collect();
            let x = self.input::<AD<B>>(device).require_grad();
            let us = self.time::<B>(device, |i| {
                let _ = layers[i % layers.len()].forward(x.clone()).sum().backward();
            });
            let saved = self.saved_bytes_bitlinear(spec);
            let linear_saved = self.saved_bytes_linear();
            let mut extra = format!(
                "{be},\"saved_activation_bytes\":{},\"saved_weight_bytes\":{},\"linear_saved_activation_bytes\":{}",
                saved.activations, saved.weight, linear_saved.activations
            );
            if let Some(b) = linear_step_us {
                extra += &format!(",\"time_vs_burn_linear\":{:.3}", us / b);
            }
            emit(
                "train-step",
                "burn-bitlinear-train-step",
                m,
                k,
                n,
                self.args,
                us,
                &extra,
            );
        }
    }
}
