//! Every `wgmma` GEMM configuration the host can launch, the override that forces one, and the
//! ablation switch of the GPU check's diagnosis.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::tuning::TuningOverride;

use super::wgmma_config::WgmmaConfig;

/// The configurations [`wgmma_gemm_config_override`] selects from (1-based).
pub(super) const WGMMA_CONFIGS: [WgmmaConfig; 44] = [
    WgmmaConfig::new(1, 128, 1),
    WgmmaConfig::new(1, 256, 1),
    WgmmaConfig::new(1, 64, 1),
    WgmmaConfig::new(2, 128, 1),
    WgmmaConfig::new(1, 128, 2),
    // Weights decoded into shared memory.
    WgmmaConfig::new(1, 256, 1).weights_in_shared(),
    WgmmaConfig::new(1, 128, 2).weights_in_shared(),
    WgmmaConfig::new(1, 128, 1).weights_in_shared(),
    // Words by cp.async, deeper prefetch (10 and 11: `Auto`'s defaults since session 6).
    WgmmaConfig::new(1, 256, 1).words_copied(3),
    WgmmaConfig::new(1, 256, 1).words_copied(4),
    WgmmaConfig::new(1, 128, 1).words_copied(4),
    WgmmaConfig::new(1, 128, 1).words_copied(6),
    WgmmaConfig::new(1, 128, 2).words_copied(3),
    WgmmaConfig::new(1, 256, 1)
        .weights_in_shared()
        .words_copied(3),
    // Warp-specialized: producer warps and mbarriers (exact on the H100, slower than 10 in
    // session 6, when ptxas still serialized their wgmma for want of registers).
    WgmmaConfig::warp_specialized(1, 256, 6, 1),
    WgmmaConfig::warp_specialized(1, 256, 4, 1),
    WgmmaConfig::warp_specialized(1, 128, 8, 1),
    WgmmaConfig::warp_specialized(1, 256, 6, 2),
    // 256 weight rows × 128 activation rows: a third less L2 traffic per MAC than 128 × 256
    // (the packed weights are a quarter of the activations' bytes per row).
    WgmmaConfig::warp_specialized(2, 128, 6, 1),
    // The same two shapes with the activations by TMA.
    WgmmaConfig::warp_specialized(1, 256, 6, 1).with_tma(),
    WgmmaConfig::warp_specialized(2, 128, 6, 1).with_tma(),
    // And with the activations multicast in 2-block clusters (half the L2 reads of them).
    WgmmaConfig::warp_specialized(1, 256, 6, 1)
        .with_tma()
        .with_multicast(),
    WgmmaConfig::warp_specialized(2, 128, 6, 1)
        .with_tma()
        .with_multicast(),
    // 10 and 11 in stream-K (checked in CPU emulation only, so far).
    WgmmaConfig::new(1, 256, 1).words_copied(4).with_stream_k(),
    WgmmaConfig::new(1, 128, 1).words_copied(4).with_stream_k(),
    // 10 and 11 in stream-K over all tiles (CPU emulation only, so far).
    WgmmaConfig::new(1, 256, 1)
        .words_copied(4)
        .with_stream_k_all(),
    WgmmaConfig::new(1, 128, 1)
        .words_copied(4)
        .with_stream_k_all(),
    // 10 (3 stages ahead: 6 buffers fill the shared memory) and 11 with three fragment sets,
    // then both in stream-K over all tiles (CPU emulation only, so far).
    WgmmaConfig::new(1, 256, 1)
        .words_copied(3)
        .with_three_fragment_sets(),
    WgmmaConfig::new(1, 128, 1)
        .words_copied(4)
        .with_three_fragment_sets(),
    WgmmaConfig::new(1, 256, 1)
        .words_copied(3)
        .with_three_fragment_sets()
        .with_stream_k_all(),
    WgmmaConfig::new(1, 128, 1)
        .words_copied(4)
        .with_three_fragment_sets()
        .with_stream_k_all(),
    // 20 (warp-specialized, TMA) with three fragment sets: no block barrier on the path either.
    WgmmaConfig::warp_specialized(1, 256, 6, 1)
        .with_tma()
        .with_three_fragment_sets(),
    // For small M (17-64: batched decoding), 64 activation rows per block, three fragment sets,
    // stream-K over all tiles: at M = 64 and 4096 outputs the 128-row shapes make 32 blocks, half
    // of whose rows are padding, for 132 SMs.
    WgmmaConfig::new(1, 64, 1)
        .words_copied(4)
        .with_three_fragment_sets()
        .with_stream_k_all(),
    // 17's shape (128 activation rows, 8 stages) with TMA and three fragment sets: for M = 512,
    // where 256-row blocks leave SMs idle.
    WgmmaConfig::warp_specialized(1, 128, 8, 1)
        .with_tma()
        .with_three_fragment_sets(),
    // 20 and 32 in stream-K over all tiles: one block per SM runs a sequence of tiles and parts
    // of tiles; its producers fill the next one's stages while the consumers store this one's.
    WgmmaConfig::warp_specialized(1, 256, 6, 1)
        .with_tma()
        .with_stream_k_all(),
    WgmmaConfig::warp_specialized(1, 256, 6, 1)
        .with_tma()
        .with_three_fragment_sets()
        .with_stream_k_all(),
    // 34 in stream-K over all tiles.
    WgmmaConfig::warp_specialized(1, 128, 8, 1)
        .with_tma()
        .with_three_fragment_sets()
        .with_stream_k_all(),
    // 32 with the activations multicast in 2-block clusters: half the activation reads from L2
    // (4 TB/s of L2 → SM traffic at 4096², M = 2048; session 8's times per stage make L2 an
    // unlikely bound, BENCHMARKS.md: this tests it). 22, the same without the third fragment
    // set, last ran while its wgmma were serialized (session 6).
    WgmmaConfig::warp_specialized(1, 256, 6, 1)
        .with_tma()
        .with_three_fragment_sets()
        .with_multicast(),
    // 32 as a persistent grid: each block's producers load the next tile's first stages while
    // its consumers store this tile's outputs. Session 8's times fit ~13 µs per 256-row tile
    // besides ~0.77 µs per stage (BENCHMARKS.md): if that fixed part is the prologue and
    // epilogue, overlapping them shows here, without stream-K's split tiles and fix-ups (35, 36).
    WgmmaConfig::warp_specialized(1, 256, 6, 1)
        .with_tma()
        .with_three_fragment_sets()
        .persistent(),
    // 10 and 11 as persistent grids (gemm_wgmma.cu copies the next tile's first stages before
    // it stores this one's outputs). 11's: at M = 512 its 344 tiles of 4096→11008 take 3 waves.
    WgmmaConfig::new(1, 256, 1).words_copied(4).persistent(),
    WgmmaConfig::new(1, 128, 1).words_copied(4).persistent(),
    // 32 in hybrid stream-K (session 14, CPU emulation only so far): whole tiles for all waves
    // but the last full one, whose tiles and the partial wave's are split by k-steps over one
    // block per SM. For wave quantization at large M, with fewer split tiles than 36 (every tile
    // split: on the H200 from 2% faster to 52% slower than 32, 5% slower at 2560→6912, M = 2048):
    // 2560→6912 at M = 2048 is 432 tiles, 3.27 waves run as 4 (1.09x torch, the GEMM point still
    // missed there), of which 42 splits 168; 4096→11008 is 5.21 waves. Where the tiles make
    // fewer than two waves (4096², M = 2048) it splits every tile, as 36 does.
    WgmmaConfig::warp_specialized(1, 256, 6, 1)
        .with_tma()
        .with_three_fragment_sets()
        .with_stream_k(),
    // 21 (256 weight rows × 128 activation rows, TMA) in stream-K over all tiles (session 14,
    // CPU emulation only so far): at M = 512 its 64 tiles of 4096² would leave half the SMs
    // idle. Per 128-deep stage a block takes in 24 KB for 4.2 M MAC, against 36 KB for 32 and
    // 20 KB for 2.1 M with 11: a third less shared-memory fill per MAC than 32 (BENCHMARKS.md,
    // session 14: the copies alone fill ~70 GB/s per SM).
    WgmmaConfig::warp_specialized(2, 128, 6, 1)
        .with_tma()
        .with_stream_k_all(),
    // 256 weight rows × 64 activation rows (two slabs per warpgroup), the words by cp.async 4
    // stages ahead, three fragment sets (session 16, CPU emulation only so far): at 4096²,
    // M = 512 as many tiles as 11 (128: one wave on an H100), each taking in 16 KB per 128-deep
    // stage for 2.1 M MAC against 11's 20 KB (the activations are 4 bytes per 2-bit weight's
    // byte), for twice 11's decode per MAC. 11's copies and wgmma add up there (session 14).
    WgmmaConfig::new(2, 64, 1)
        .words_copied(4)
        .with_three_fragment_sets(),
];

pub(super) static WGMMA_CONFIG: TuningOverride = TuningOverride::new(&[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
    27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
]);

/// Forces one of the wgmma GEMM's block shapes (weight rows × activation rows: 1: 128 × 128,
/// 2: 128 × 256, 3: 128 × 64, 4: 256 × 128, 5: 128 × 128 at 2 blocks per SM; 6, 7, 8: 2, 5 and
/// 1 with the decoded weights in shared memory; 9, 10: 2 with the packed words copied with the
/// activations, 3 and 4 stages ahead; 11, 12: 1 so, 4 and 6 ahead; 13: 5 so, 3 ahead; 14: 6 so,
/// 3 ahead; 15-18: warp-specialized, 128 × 256 with 6 and 4 stages, 128 × 128 with 8, and
/// 128 × 256 with 6 stages and 2 producer warps, 19: 256 × 128 with 6 stages; 20, 21: 15 and 19
/// with the activations by TMA; 22, 23: 20 and 21 multicast in 2-block clusters; 24, 25: 10 and
/// 11 in stream-K; 26, 27: 10 and 11 in stream-K over all tiles; 28, 29: 10 (3 stages ahead)
/// and 11 with three fragment sets (two wgmma groups in flight during the decode); 30, 31: 28
/// and 29 in stream-K over all tiles; 32: 20 with three fragment sets; 33: 128 × 64 with three
/// fragment sets in stream-K over all tiles; 34: 17 with TMA and three fragment sets; 35, 36,
/// 37: 20, 32 and 34 in stream-K over all tiles; 38: 32 multicast in 2-block clusters; 39, 40,
/// 41: 32, 10 and 11 as persistent grids of whole tiles; 42: 32 in stream-K over the last
/// waves only; 43: 21 in stream-K over all tiles; 44: 256 × 64 with the words copied 4 stages
/// ahead and three fragment sets; 0 restores the default).
/// For benchmarks and tests: every shape computes the same result.
#[doc(hidden)]
pub fn wgmma_gemm_config_override(config: usize) {
    WGMMA_CONFIG.set(config);
}

/// The work the wgmma kernels leave out (`BL_ABLATE` in `gemm_wgmma_ws.cu` and `gemm_wgmma.cu`:
/// a bit mask, 1: the copies, 2: the wgmma, 4: the decode), 0: none. Not a [`TuningOverride`]:
/// with any bit set the outputs are wrong by design.
pub(super) static WGMMA_ABLATION: AtomicUsize = AtomicUsize::new(0);

/// Makes every later launch of the wgmma kernels (but the shapes with the decoded weights in
/// shared memory) leave out the work `mask` names (1: the copies, 2: the wgmma, 4: the decode;
/// 0 restores it), to see which one bounds the kernel. For the GPU check's diagnosis only: **the outputs are wrong** while a bit is set,
/// for every launch in the process.
#[doc(hidden)]
pub fn wgmma_ablation_override(mask: usize) {
    WGMMA_ABLATION.store(mask & 7, Ordering::Relaxed);
}

/// The source file (in `src/kernels/cuda`) and `#define`s of each wgmma GEMM configuration, in
/// override order (1-based: entry `i - 1` is [`wgmma_gemm_config_override`]`(i)`): what its
/// CPU emulation test compiles.
#[doc(hidden)]
pub fn wgmma_kernel_flags() -> Vec<(&'static str, Vec<(&'static str, usize)>)> {
    WGMMA_CONFIGS
        .iter()
        .map(|c| (c.kernel().1, c.flags()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw_cuda::wgmma_config::SM90_MAX_DYNAMIC_SHARED;

    /// Every wgmma configuration fits one block's shared memory on sm 90, two where it asks for
    /// two blocks per SM, and has a prefetch distance its kernel accepts.
    #[test]
    fn wgmma_configs_fit_shared_memory() {
        for c in WGMMA_CONFIGS {
            assert!(
                c.min_blocks * c.shared_bytes() <= SM90_MAX_DYNAMIC_SHARED,
                "{c:?}: {} bytes",
                c.shared_bytes()
            );
            if c.producers > 0 {
                // What gemm_wgmma_ws.cu accepts, and at least 200 registers per thread.
                assert!(
                    matches!(c.slabs, 1 | 2) && c.warpgroups == 2 && !c.a_smem && c.w_cp,
                    "{c:?}"
                );
                assert!(
                    matches!(c.rows, 128 | 256) && matches!(c.producers, 1 | 2),
                    "{c:?}"
                );
                // The consumers' registers after the producers' setmaxnreg (at most 64 each):
                // what launch gives (168 at 384 threads) plus what the producers free.
                let launch = 65_536 / c.threads() / 8 * 8;
                let consumer_regs = (launch + (launch - 64) * 128 / (128 * c.warpgroups)) / 8 * 8;
                assert!(c.stages() >= 3 && consumer_regs >= 200, "{c:?}");
                assert!(!c.mcast || c.tma, "multicast needs TMA: {c:?}");
                assert!(
                    !(c.mcast && c.stream_k),
                    "stream-K without multicast: {c:?}"
                );
            } else if c.tma || c.mcast {
                panic!("TMA only in the warp-specialized kernel: {c:?}");
            } else {
                assert!(
                    if c.w_cp {
                        c.distance >= 3
                    } else {
                        c.distance == 2
                    },
                    "{c:?}"
                );
                // What BL_FRAGS accepts in gemm_wgmma.cu.
                assert!(
                    c.frags == 2 || (c.frags == 3 && c.w_cp && !c.a_smem),
                    "{c:?}"
                );
            }
            assert!(matches!(c.frags, 2 | 3), "{c:?}");
            assert_eq!(c.weight_rows() / 16 * 32 % (128 * c.warpgroups), 0, "{c:?}");
        }
        assert_eq!(WGMMA_CONFIGS.len(), wgmma_kernel_flags().len());
    }
}
