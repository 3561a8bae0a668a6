//! Hand-written CUDA C kernels (`kernels/cuda/*.cu`) launched through CubeCL's own CUDA server.
//!
//! CubeCL 0.10 exposes neither `dp4a` nor `mma.sync` / `wgmma` on register fragments, and its
//! `cmma` lowers to WMMA from shared memory. The kernels that need those instructions (the
//! packed GEMV, also fused with the activation quantization, and the tensor-core GEMMs) are
//! written in CUDA C; this module is their host side:
//! - [`task`]: a kernel as a CubeCL task (NVRTC, cache, launch on the runtime's stream);
//! - [`sources`]: one configuration's complete source (`#define`s, entry name, shared epilogue);
//! - [`gemv_config`], [`mma_config`], [`wgmma_config`], [`wgmma_configs`]: each family's block
//!   configurations; [`wgmma_schedule`]: which one a problem gets, and the stream-K split;
//! - [`launch`]: one validated launch of each family; [`stream_k_counters`]: the stream-K
//!   kernels' tile counters, kept zeroed between launches.

mod gemv_config;
mod launch;
mod mma_config;
mod sources;
mod stream_k_counters;
mod task;
mod wgmma_config;
mod wgmma_configs;
mod wgmma_schedule;

use cubecl::prelude::*;

pub use gemv_config::{
    dp4a_fused_gemv_config, dp4a_gemv_config_count, dp4a_gemv_config_override,
    dp4a_gemv_kernel_flags, fused_gemv_fits, fused_linear_widen,
};
pub(crate) use launch::RawLaunch;
pub use mma_config::{mma_gemm_kernel_flags, mma_gemm_warp_tiles_override};
pub use sources::raw_kernel_sources;
pub use wgmma_configs::{wgmma_ablation_override, wgmma_gemm_config_override, wgmma_kernel_flags};

/// Whether the hand-written CUDA kernels can run on this client: the CUDA runtime on sm ≥ 80
/// (`cp.async`, which the GEMM uses; `dp4a` and `mma.sync` s8 exist from sm 61 / 75). False on
/// every other runtime (Wgpu, lavapipe), where the portable CubeCL kernels run instead.
pub fn raw_cuda_available<R: Runtime>(client: &ComputeClient<R>) -> bool {
    R::name(client) == "cuda" && client.properties().features.copy_async
}

/// Whether the `wgmma` kernel can run on this client: the hand-written kernels run
/// ([`raw_cuda_available`]) on the Hopper family, sm 90 (compiled as `sm_90a` by the runtime).
/// CubeCL reports Hopper as the arch with tensor-memory copies (TMA) but without the im2col-wide
/// mode of sm ≥ 100, which has no `wgmma`.
pub fn wgmma_available<R: Runtime>(client: &ComputeClient<R>) -> bool {
    use cubecl::ir::features::Tma;
    let tma = client.properties().features.tma;
    raw_cuda_available(client) && tma.contains(Tma::Base) && !tma.contains(Tma::Im2colWide)
}
