//! # bitlinear-core
//!
//! Ternary (BitNet b1.58) linear layers on the CPU, with no deep-learning framework attached:
//! quantization ([`quant`]), the 2-bit packed weight format ([`packed`]), and integer kernels
//! for every common SIMD instruction set, chosen at run time ([`Kernel`]) and parallelized with
//! rayon ([`linear()`]).
//!
//! ```
//! use bitlinear_core::{linear, LinearOptions, PackedTernary, WeightGranularity};
//!
//! let (m, k, n) = (2, 64, 32);
//! let w: Vec<f32> = (0..n * k).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
//! let x: Vec<f32> = (0..m * k).map(|i| (i as f32).sin()).collect();
//! let packed = PackedTernary::quantize(&w, n, k, WeightGranularity::PerTensor, 1e-6).unwrap();
//! let y = linear(&x, m, &packed, None, &LinearOptions::default()).unwrap();
//! assert_eq!(y.len(), m * n);
//! assert!(packed.bytes_per_weight() < 0.5);
//! ```
//!
//! The formulas are those of DEVELOPERS.md: `s_w = max(mean|W|, eps)`,
//! `Wq = clamp(round(W/s_w), -1, 1)`, `s_x = max(max|x|, eps)/127`,
//! `xq = clamp(round(x/s_x), -128, 127)`, `y = (xq · Wqᵀ) · s_x · s_w + b`, with
//! round-half-to-even and exact i32 accumulation.

#![warn(missing_docs)]

pub mod arena;
pub mod error;
pub mod kernels;
pub mod linear;
pub mod packed;
pub mod quant;
pub mod reference;
mod simd_quant;
mod weight_pack;
mod work_runs;

pub use arena::colocate;
pub use error::{BitLinearError, Result};
pub use kernels::{Kernel, KERNEL_ENV};
pub use linear::{int_matmul, linear, linear_into, linear_quantized_into, LinearOptions};
pub use packed::{PackedBlock, PackedTernary, SharedWords, BLOCK_BYTES, BLOCK_K, TILE_N};
pub use quant::{
    quantize_activations, quantize_activations_into, quantize_weights, ActivationGranularity,
    QuantType, QuantizedActivations, TernaryWeights, WeightGranularity, DEFAULT_EPS,
    DEFAULT_GROUP_SIZE,
};
