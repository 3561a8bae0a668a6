//! CubeCL GPU kernels for ternary (BitNet b1.58) linear layers, generic over the CubeCL runtime.
//!
//! - [`quantize_activations`]: f32 `[M, K]` → int8 codes (per token or per tensor, absmax).
//! - [`pack_weights`]: f32 weight (`[K, N]` Burn layout or `[N, K]`) → ternary 2-bit packed
//!   blocks + absmean scales, on the device, in the layout shared with bitlinear-core.
//! - [`ternary_linear`] / [`ternary_matmul`]: packed GEMV (M ≤ 16), int8 tensor-core GEMM
//!   (`cmma`, CUDA), or a portable tiled GEMM, with a fused scale/bias epilogue, f32 output.
//!   On CUDA sm ≥ 80, hand-written CUDA kernels take over (a `dp4a` GEMV and an `mma.sync`
//!   tensor-core GEMM, see [`MatmulPath`]), compiled by the same runtime.
//! - [`ternary_grad_input`]: `dx = dy · (s_w ⊙ Wq)` from packed codes for training.
//! - Autotuning ([`set_autotune`], [`autotune_choices`]): on CUDA the hand-written GEMMs' block
//!   configuration is timed on the first launch of each shape and the fastest kept.
//!
//! Every function works on a [`cubecl::prelude::ComputeClient`] and raw
//! [`cubecl::server::Handle`]s (contiguous, row-major), so Burn's `CubeTensor`s can be passed
//! through. Shapes are checked; bad input returns an [`Error`] and launches nothing.

mod activations;
mod autotune;
mod device;
mod error;
mod grad;
pub mod kernels;
mod linear;
mod raw_cuda;
mod tuning;
mod types;
mod validate;
mod weights;

pub use activations::{dequantize_activations, quantize_activations, quantize_activations_as};
pub use autotune::{
    autotune_choices, autotune_enabled, clear_autotune_cache, set_autotune, AutotuneChoice,
    AUTOTUNE_ENV,
};
pub use device::{cmma_available, plane_ops_available};
pub use error::{Error, Result};
pub use grad::ternary_grad_input;
pub use linear::{
    cmma_k_blocks_override, cmma_tiled_k_blocks_override, fused_linear_off,
    gemv_stream_depth_override, gemv_stream_units_override, resolve_path, ternary_linear,
    ternary_linear_as, ternary_matmul, ternary_matmul_as, ternary_matmul_i32, FORCE_PLANE_ENV,
    GEMV_MAX_M, GEMV_STREAM_MAX_M,
};
pub use raw_cuda::{
    dp4a_fused_gemv_config, dp4a_gemv_config_count, dp4a_gemv_config_override,
    dp4a_gemv_kernel_flags, fused_gemv_fits, fused_linear_widen, mma_gemm_kernel_flags,
    mma_gemm_warp_tiles_override, raw_cuda_available, raw_kernel_sources, wgmma_ablation_override,
    wgmma_available, wgmma_gemm_config_override, wgmma_kernel_flags,
};
pub use types::{
    packed_word_count, words_per_row, ActivationGranularity, FloatDtype, MatmulPath, PackedWeights,
    QuantizedActivations, WeightGranularity, WeightLayout,
};
pub use weights::{pack_weights, unpack_weights};

/// Default `eps` of the activation and weight scales.
pub const DEFAULT_EPS: f32 = 1e-6;
