//! `#[cube]` kernels. Each file holds one kernel family; host-side launching and validation live
//! in the crate's `linear`, `activations`, `weights` and `grad` modules. `cuda/` holds the
//! hand-written CUDA C kernels (see `raw_cuda/`: their tasks, configurations and launches).
//! Kernels only import the CubeCL prelude (see the notes on Burn's `Tensor` name clash).

// Kernel bodies are CubeCL DSL: only the operators it expands are usable (no `clamp`,
// `is_multiple_of`, `partial_cmp`), and `!(a <= b)` is deliberate to catch NaN.
#![allow(
    clippy::manual_clamp,
    clippy::manual_is_multiple_of,
    clippy::neg_cmp_op_on_partial_ord
)]

pub mod activation_quant;
pub mod backward;
pub mod common;
pub mod dequant;
pub mod gemm_cmma;
pub mod gemm_cmma_tiled;
pub mod gemm_tiled;
pub mod gemv;
pub mod gemv_stream;
pub mod weight_pack;
