//! # bitlinear-burn
//!
//! [`BitLinear`]: a ternary (BitNet b1.58, 1.58-bit) linear layer for Burn that reads like
//! `burn::nn::Linear`. Train it with autodiff (straight-through estimator, custom fused
//! backward), convert existing `Linear` layers with [`BitLinear::from_linear`], then
//! [`BitLinear::deploy`] it to 2-bit packed weights run by integer kernels.
//!
//! ```
//! use bitlinear_burn::BitLinearConfig;
//! use burn::backend::{Autodiff, NdArray};
//! use burn::tensor::{Distribution, Tensor};
//!
//! type B = Autodiff<NdArray>;
//! let dev = Default::default();
//! let layer = BitLinearConfig::new(32, 8).init::<B>(&dev);
//! let x = Tensor::<B, 3>::random([2, 5, 32], Distribution::Default, &dev);
//! let grads = layer.forward(x).sum().backward();
//! assert!(layer.weight.as_ref().unwrap().grad(&grads).is_some());
//!
//! let deployed = layer.valid().deploy(); // inference: packed weights, integer kernel
//! let y = deployed.forward(Tensor::<NdArray, 2>::ones([1, 32], &dev));
//! assert_eq!(y.dims(), [1, 8]);
//! # use burn::module::AutodiffModule;
//! ```
//!
//! Semantics (DEVELOPERS.md): `s_w = max(mean|W|, eps)`, `Wq = clamp(round(W/s_w), -1, 1)`;
//! `s_x = max(max|x|, eps)/127`, `xq = clamp(round(x/s_x), -128, 127)` per token;
//! `y = (xq·Wqᵀ)·s_x·s_w + b`; backward `dx = dy·(s_w·Wq)`, `dW = dyᵀ·(s_x·xq)`, `db = Σdy`.
//!
//! Backends: NdArray (bitlinear-core's SIMD kernels), CubeBackend (Wgpu, Cuda: the
//! bitlinear-cubecl kernels, see [`backends`]' `cube` module for which op runs where),
//! `Autodiff<_>` of either. Any other
//! backend can implement [`BitLinearBackend`] with [`backends::fallback::primitive`].
//! Whole models deploy through the [`Deploy`] trait; checkpoints go through burn-store's
//! safetensors ([`save_safetensors`], [`load_safetensors`]). On CUDA the GEMM's block
//! configuration is autotuned on the first call of each shape, as Burn's own matmul is
//! ([`set_autotune`] turns it off).

#![warn(missing_docs)]

pub mod backends;
mod config;
mod deploy;
mod module;
mod ops;
mod record;

pub use bitlinear_core::{BitLinearError, QuantType};
/// Autotuning of the GPU GEMM's block configuration on CUDA (on by default; see
/// bitlinear-cubecl's `autotune` docs): turned off or on, and the choices made.
pub use bitlinear_cubecl::{
    autotune_choices, autotune_enabled, clear_autotune_cache, set_autotune, AutotuneChoice,
    AUTOTUNE_ENV,
};
pub use config::BitLinearConfig;
pub use deploy::Deploy;
pub use module::BitLinear;
pub use ops::{
    bitlinear_deployed, bitlinear_train, BitLinearBackend, BitLinearGrads, PackedShape, QuantSpec,
    SavedQuant,
};
pub use record::{
    from_safetensors_bytes, load_safetensors, save_safetensors, to_safetensors_bytes, RecordError,
};
