//! `#[cube]` kernels. Each file holds one kernel family; host-side launching and validation live
//! in the crate's `launch` module. Kernels only import the CubeCL prelude (see the notes on Burn's
//! `Tensor` name clash).

pub mod activation_quant;
pub mod backward;
pub mod common;
pub mod dequant;
pub mod gemm_cmma;
pub mod gemm_tiled;
pub mod gemv;
pub mod weight_pack;
