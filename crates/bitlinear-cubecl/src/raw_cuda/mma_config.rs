//! The `mma.sync` GEMM's tilings (`gemm_mma.cu`, the sm 80-89 tensor-core path).

use crate::tuning::TuningOverride;

/// The mma GEMM's 16-row mma tiles per warp it can be launched with (128- and 256-row blocks).
pub(super) const GEMM_WARP_TILINGS: [usize; 2] = [4, 8];

pub(super) static GEMM_WARP_TILES: TuningOverride = TuningOverride::new(&GEMM_WARP_TILINGS);

/// Forces the 16-row mma tiles per warp of the mma GEMM (4: 128-row blocks, 3 stages; 8: 256-row
/// blocks, 2 stages; 0 restores the default). For benchmarks and tests: both compute the same
/// result.
#[doc(hidden)]
pub fn mma_gemm_warp_tiles_override(tiles: usize) {
    GEMM_WARP_TILES.set(tiles);
}

/// Default 16-row mma tiles per warp of the mma GEMM.
pub(super) const GEMM_WARP_TILES_DEFAULT: usize = 4;

/// The `#define`s of each mma GEMM tiling the host can launch (`gemm_mma.cu`'s own, before the
/// epilogue's): what its CPU emulation test compiles.
#[doc(hidden)]
pub fn mma_gemm_kernel_flags() -> Vec<Vec<(&'static str, usize)>> {
    GEMM_WARP_TILINGS
        .iter()
        .map(|&tiles| vec![("BL_WM_TILES", tiles)])
        .collect()
}
