//! Host side of the hand-written CUDA kernels (`kernels/cuda/*.cu`): the dp4a GEMV (also fused
//! with the activation quantization) and the `mma.sync` tensor-core GEMM. Each configuration (rows per block, scale granularity, bias,
//! raw i32 output) is a `#define` prefix of the same source, compiled once by NVRTC and cached.

use std::sync::atomic::{AtomicUsize, Ordering};

use cubecl::ir::{ElemType, StorageType, UIntKind};
use cubecl::prelude::*;
use cubecl::server::{Handle, TensorMapBinding, TensorMapMeta};
use cubecl::zspace::metadata::Metadata;
use cubecl::zspace::{Shape, Strides};

use crate::autotune::{time_launches, tuned_choice, TuneKey};
use crate::linear::GEMV_MAX_M;
use crate::raw_cuda::RawCudaKernel;
use crate::tuning::TuningOverride;
use crate::types::FloatDtype;

/// The output store every kernel shares, prepended to each after its `#define`s.
const EPILOGUE_SOURCE: &str = include_str!("kernels/cuda/epilogue.cuh");
const GEMV_SOURCE: &str = include_str!("kernels/cuda/gemv_dp4a.cu");
const GEMM_SOURCE: &str = include_str!("kernels/cuda/gemm_mma.cu");
const WGMMA_COMMON_SOURCE: &str = include_str!("kernels/cuda/wgmma_common.cuh");
const WGMMA_SOURCE: &str = include_str!("kernels/cuda/gemm_wgmma.cu");
const WGMMA_WS_SOURCE: &str = include_str!("kernels/cuda/gemm_wgmma_ws.cu");

/// Largest number of activation rows one GEMV block handles (more rows: more blocks in `y`).
const GEMV_ROWS_PER_BLOCK: usize = 8;

/// Shape of the dp4a GEMV's blocks: warps per tile, k-blocks each lane loads before computing,
/// four accumulators per output (only taken for up to 2 rows), minimum blocks per SM (on codes,
/// and fused with the quantization), tiles of 16 output rows per block.
#[derive(Debug, Clone, Copy)]
struct GemvConfig {
    warps: usize,
    unroll: usize,
    split: bool,
    min_blocks: usize,
    /// Fused, the prologue's registers (43-50 per thread by ptxas 13.0 without a cap, beside
    /// the first weights in flight) would leave 5 blocks of 256 threads per SM, one short of a
    /// single wave at 4096→11008 (688 blocks on 132 SMs), where the previous prologue's 40 fit
    /// 6: the fused forms of 1 and 8 ask for 1536 threads per SM (40 registers; ptxas spills 4
    /// to 8 bytes in the prologue).
    fused_min_blocks: usize,
    /// On codes with one activation row per block, at least this many blocks per SM: the
    /// round's copy of the codes into shared memory left ptxas 13.0 free to take 44 registers
    /// (per-tensor scale) where 40 fit with no spill, which would be 5 blocks of 256 threads per
    /// SM instead of 6, a second wave at 4096→11008 (688 blocks on 132 SMs); 3 of 512 threads
    /// for two tiles per block (50 registers uncapped: 2 blocks, 528 tiles per wave).
    min_blocks_one_row: usize,
    tiles: usize,
}

/// The block shape the configurations below start from: 8 warps per tile, 4 k-blocks per lane
/// before computing, no 4-accumulator split, one tile per block, no blocks-per-SM request.
const GEMV_BASE: GemvConfig = GemvConfig {
    warps: 8,
    unroll: 4,
    split: false,
    min_blocks: 0,
    fused_min_blocks: 0,
    min_blocks_one_row: 0,
    tiles: 1,
};

/// The configurations [`dp4a_gemv_config_override`] selects from (1-based); the first is the
/// default on activation codes ([`FUSED_GEMV_CONFIG`] fused). It has no 4-accumulator split: on
/// an H100 it was as fast as the split at three of the four benchmark shapes and 4-23% faster at
/// 4096→11008 (device times, BENCHMARKS.md; on an H200 in session 13 the split was 3-6% faster
/// at three shapes and 2% slower at 2560→6912).
const GEMV_CONFIGS: [GemvConfig; 9] = [
    GemvConfig {
        fused_min_blocks: 6,
        min_blocks_one_row: 6,
        ..GEMV_BASE
    },
    GemvConfig {
        split: true,
        min_blocks: 6,
        fused_min_blocks: 6,
        ..GEMV_BASE
    },
    GemvConfig {
        split: true,
        ..GEMV_BASE
    },
    GemvConfig {
        warps: 4,
        unroll: 8,
        split: true,
        ..GEMV_BASE
    },
    GemvConfig {
        warps: 4,
        unroll: 8,
        ..GEMV_BASE
    },
    // The default asked for 6 and 8 resident blocks per SM (at most 40 and 32 registers): at
    // 4096->11008 the grid is 688 blocks, which fits one wave on 132 SMs only from 6 blocks per
    // SM on (not measured yet; the split version at 6 was slower, with more live registers).
    // Since session 11 the default asks for 6 too at one row per block (`min_blocks_one_row`).
    GemvConfig {
        min_blocks: 6,
        fused_min_blocks: 6,
        ..GEMV_BASE
    },
    GemvConfig {
        min_blocks: 8,
        fused_min_blocks: 8,
        ..GEMV_BASE
    },
    // Two and four tiles per block (512 and 1024 threads): the fused layer's blocks each read
    // the whole input row from L2 to quantize it, as many bytes as their tile's packed weights,
    // so one tile per block doubles the kernel's L2 reads; and a quarter of the blocks to
    // launch. Four tiles ask for 2 blocks per SM (at most 32 registers), else 1024-thread
    // blocks would run one per SM. Not measured yet.
    GemvConfig {
        fused_min_blocks: 3,
        min_blocks_one_row: 3,
        tiles: 2,
        ..GEMV_BASE
    },
    GemvConfig {
        min_blocks: 2,
        fused_min_blocks: 2,
        tiles: 4,
        ..GEMV_BASE
    },
];

/// The block configuration (1-based, as [`dp4a_gemv_config_override`]) of the fused quantize +
/// GEMV: two tiles per block. Each block quantizes the whole input row, so two tiles halve those
/// L2 reads and the blocks. On an H200 (session 13, device time at M = 1) the fused layer took
/// 9.74 µs instead of 11.46 at 4096→11008, 6.24 instead of 6.90 at 4096², 6.50 instead of 7.54
/// at 2560→6912, and 7-13% less back to back; on codes alone, two tiles were slower (7.63
/// µs against 6.75 at 4096→11008), so the GEMV on codes keeps configuration 1.
const FUSED_GEMV_CONFIG: usize = 8;

static GEMV_CONFIG: TuningOverride = TuningOverride::new(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);

/// Forces one of the dp4a GEMV's block configurations (1..=9; 0 restores the defaults: 1 on
/// codes, [`FUSED_GEMV_CONFIG`] fused). For
/// benchmarks and tests: every configuration computes the same result.
#[doc(hidden)]
pub fn dp4a_gemv_config_override(config: usize) {
    GEMV_CONFIG.set(config);
}

/// How many configurations [`dp4a_gemv_config_override`] selects from.
#[doc(hidden)]
pub fn dp4a_gemv_config_count() -> usize {
    GEMV_CONFIGS.len()
}

/// The mma GEMM's 16-row mma tiles per warp it can be launched with (128- and 256-row blocks).
const GEMM_WARP_TILINGS: [usize; 2] = [4, 8];

static GEMM_WARP_TILES: TuningOverride = TuningOverride::new(&GEMM_WARP_TILINGS);

/// Forces the 16-row mma tiles per warp of the mma GEMM (4: 128-row blocks, 3 stages; 8: 256-row
/// blocks, 2 stages; 0 restores the default). For benchmarks and tests: both compute the same
/// result.
#[doc(hidden)]
pub fn mma_gemm_warp_tiles_override(tiles: usize) {
    GEMM_WARP_TILES.set(tiles);
}

/// Default 16-row mma tiles per warp of the mma GEMM.
const GEMM_WARP_TILES_DEFAULT: usize = 4;

/// The `#define`s of each mma GEMM tiling the host can launch (`gemm_mma.cu`'s own, before the
/// epilogue's): what its CPU emulation test compiles.
#[doc(hidden)]
pub fn mma_gemm_kernel_flags() -> Vec<Vec<(&'static str, usize)>> {
    GEMM_WARP_TILINGS
        .iter()
        .map(|&tiles| vec![("BL_WM_TILES", tiles)])
        .collect()
}

/// Block shape of the wgmma GEMM: warpgroups per block, 64-row weight slabs per warpgroup,
/// activation rows per block (the wgmma's N; accumulators per thread = slabs × rows / 2),
/// blocks per SM asked of the compiler (2 caps the registers at 128 per thread), where the
/// decoded weights go (registers, or shared memory with `a_smem`), whether the packed words
/// travel by cp.async with the activations (`w_cp`), the prefetch distance in stages, and the
/// producer warps of the warp-specialized kernel (`gemm_wgmma_ws.cu`; 0: `gemm_wgmma.cu`,
/// where every warp copies and a block barrier closes each stage).
#[derive(Debug, Clone, Copy)]
struct WgmmaConfig {
    warpgroups: usize,
    slabs: usize,
    rows: usize,
    min_blocks: usize,
    a_smem: bool,
    w_cp: bool,
    distance: usize,
    producers: usize,
    /// The warp-specialized kernel's activations by TMA (one tensor-map copy per stage).
    tma: bool,
    /// TMA multicast in clusters of 2 blocks along the weight rows (each loads half a stage).
    mcast: bool,
    /// Stream-K (`BL_SK`, with `w_cp`): the last waves' tiles split by k-steps over one block
    /// per SM ([`stream_k_split`]).
    stream_k: bool,
    /// Stream-K over all tiles (`BL_SK_ALL`): one block per SM, each a run of whole tiles and
    /// at most two parts, so tiles end at different times on different SMs.
    stream_k_all: bool,
    /// Register fragment sets (`BL_FRAGS`): 2, or 3 (with `w_cp`) to keep two wgmma groups in
    /// flight while the next stage is decoded.
    frags: usize,
    /// With `stream_k_all`: whole tiles only (`BL_SK_WHOLE`), a persistent grid of one block
    /// per SM running its share of the tiles one after another, nothing split.
    whole_tiles: bool,
}

impl WgmmaConfig {
    const fn new(slabs: usize, rows: usize, min_blocks: usize) -> Self {
        Self {
            warpgroups: 2,
            slabs,
            rows,
            min_blocks,
            a_smem: false,
            w_cp: false,
            distance: 2,
            producers: 0,
            tma: false,
            mcast: false,
            stream_k: false,
            stream_k_all: false,
            frags: 2,
            whole_tiles: false,
        }
    }

    /// The same shape (with `w_cp`) with three fragment sets: stage s + 1 is decoded while
    /// stages s - 1 and s may both be in the tensor pipe (`BL_FRAGS`, `gemm_wgmma.cu` and
    /// `gemm_wgmma_ws.cu`).
    const fn with_three_fragment_sets(mut self) -> Self {
        self.frags = 3;
        self
    }

    /// The same shape (with `w_cp`) in stream-K: whole tiles for all waves but the last full
    /// one, the rest split evenly by k-steps over one block per SM.
    const fn with_stream_k(mut self) -> Self {
        self.stream_k = true;
        self
    }

    /// The same shape in stream-K over all its tiles (see `stream_k_all`).
    const fn with_stream_k_all(mut self) -> Self {
        self.stream_k = true;
        self.stream_k_all = true;
        self
    }

    /// The same shape as a persistent grid: one block per SM (or per tile, if fewer) runs a
    /// run of whole tiles (stream-K's schedule over all tiles, its runs cut at tile bounds).
    const fn persistent(mut self) -> Self {
        self.stream_k = true;
        self.stream_k_all = true;
        self.whole_tiles = true;
        self
    }

    /// The same TMA shape with each stage multicast from halves loaded by a 2-block cluster.
    const fn with_multicast(mut self) -> Self {
        self.mcast = true;
        self
    }

    /// Blocks per cluster along the weight rows (the grid's x is a multiple of it).
    const fn cluster(self) -> usize {
        if self.mcast {
            2
        } else {
            1
        }
    }

    /// The same warp-specialized shape with the activations loaded by TMA.
    const fn with_tma(mut self) -> Self {
        self.tma = true;
        self
    }

    /// The warp-specialized kernel: `producers` warps copy into `stages` buffers of `rows`
    /// activation rows (and the words), two warpgroups of `slabs` × 64 weight rows consume them.
    const fn warp_specialized(slabs: usize, rows: usize, stages: usize, producers: usize) -> Self {
        let mut c = Self::new(slabs, rows, 1);
        c.w_cp = true;
        c.distance = stages - 2;
        c.producers = producers;
        c
    }

    /// Threads per block: the consumer warpgroups, and in the warp-specialized kernel a
    /// producer warpgroup (of which `producers` warps copy).
    const fn threads(self) -> usize {
        128 * self.warpgroups + if self.producers > 0 { 128 } else { 0 }
    }

    /// The same shape with the decoded weights in shared memory.
    const fn weights_in_shared(mut self) -> Self {
        self.a_smem = true;
        self
    }

    /// The same shape with the packed words copied into shared memory with the activations,
    /// `distance` (≥ 3) stages ahead.
    const fn words_copied(mut self, distance: usize) -> Self {
        self.w_cp = true;
        self.distance = distance;
        self
    }

    /// Weight rows per block.
    const fn weight_rows(self) -> usize {
        64 * self.slabs * self.warpgroups
    }

    /// Shared-memory buffers: the prefetch distance plus the stages whose wgmma may still read
    /// theirs (the warp-specialized kernel: its stages).
    const fn stages(self) -> usize {
        if self.producers > 0 {
            self.distance + 2
        } else {
            self.distance + self.frags
        }
    }

    /// Dynamic shared memory: the activation stages, two decoded weight tiles per warpgroup and
    /// slab with `a_smem`, the word stages with `w_cp` (512 bytes per 16-row tile), two
    /// mbarriers per stage in the warp-specialized kernel, and 1 KB to align them to the
    /// 128-byte swizzle's 1024 bytes.
    const fn shared_bytes(self) -> usize {
        let weights = if self.a_smem {
            2 * self.warpgroups * self.slabs * 64 * 128
        } else {
            0
        };
        let words = if self.w_cp {
            self.stages() * self.weight_rows() / 16 * 512
        } else {
            0
        };
        let barriers = if self.producers > 0 {
            16 * self.stages()
        } else {
            0
        };
        // Stream-K's flag: this block counted last on a shared tile.
        let flag = if self.stream_k { 16 } else { 0 };
        self.stages() * self.rows * 128 + weights + words + barriers + flag + 1024
    }

    /// The kernel's own part of the source: the generated wgmma wrapper, the shared header and
    /// the kernel file.
    fn body(self) -> String {
        let source = if self.producers > 0 {
            WGMMA_WS_SOURCE
        } else {
            WGMMA_SOURCE
        };
        format!(
            "{}{WGMMA_COMMON_SOURCE}{source}",
            wgmma_fn(self.rows, self.a_smem)
        )
    }

    /// The kernel family (its entry point's prefix) and source file.
    fn kernel(self) -> (&'static str, &'static str) {
        if self.producers > 0 {
            ("gemm_wgmma_ws", "gemm_wgmma_ws.cu")
        } else {
            ("gemm_wgmma", "gemm_wgmma.cu")
        }
    }

    /// The `#define`s the kernel source is compiled with for this shape.
    fn flags(self) -> Vec<(&'static str, usize)> {
        if self.producers > 0 {
            return vec![
                ("BL_WGS", self.warpgroups),
                ("BL_SLABS", self.slabs),
                ("BL_BM", self.rows),
                ("BL_MINB", self.min_blocks),
                ("BL_STAGES", self.stages()),
                ("BL_PRODUCERS", self.producers),
                ("BL_TMA", self.tma as usize),
                ("BL_MCAST", self.mcast as usize),
            ]
            .into_iter()
            .chain(self.stream_k.then_some(("BL_SK", 1)))
            .chain(self.stream_k_all.then_some(("BL_SK_ALL", 1)))
            .chain(self.whole_tiles.then_some(("BL_SK_WHOLE", 1)))
            .chain((self.frags != 2).then_some(("BL_FRAGS", self.frags)))
            .collect();
        }
        let mut flags = vec![
            ("BL_WGS", self.warpgroups),
            ("BL_SLABS", self.slabs),
            ("BL_BM", self.rows),
            ("BL_MINB", self.min_blocks),
            ("BL_A_SMEM", self.a_smem as usize),
            ("BL_W_CP", self.w_cp as usize),
            ("BL_DIST", self.distance),
        ];
        // Only where set: the other kernels keep their names.
        if self.stream_k {
            flags.push(("BL_SK", 1));
        }
        // The kernel is the same; the name (and the emulation's split) differ.
        if self.stream_k_all {
            flags.push(("BL_SK_ALL", 1));
        }
        if self.whole_tiles {
            flags.push(("BL_SK_WHOLE", 1));
        }
        if self.frags != 2 {
            flags.push(("BL_FRAGS", self.frags));
        }
        flags
    }
}

/// Dynamic shared memory one block may reserve on sm 90 (227 KB).
const SM90_MAX_DYNAMIC_SHARED: usize = 227 * 1024;

/// The configurations [`wgmma_gemm_config_override`] selects from (1-based).
const WGMMA_CONFIGS: [WgmmaConfig; 43] = [
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
];

static WGMMA_CONFIG: TuningOverride = TuningOverride::new(&[
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26,
    27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
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
/// waves only; 43: 21 in stream-K over all tiles; 0 restores the default).
/// For benchmarks and tests: every shape computes the same result.
#[doc(hidden)]
pub fn wgmma_gemm_config_override(config: usize) {
    WGMMA_CONFIG.set(config);
}

/// The work the wgmma kernels leave out (`BL_ABLATE` in `gemm_wgmma_ws.cu` and `gemm_wgmma.cu`:
/// a bit mask, 1: the copies, 2: the wgmma, 4: the decode), 0: none. Not a [`TuningOverride`]:
/// with any bit set the outputs are wrong by design.
static WGMMA_ABLATION: AtomicUsize = AtomicUsize::new(0);

/// Makes every later launch of the wgmma kernels (but the shapes with the decoded weights in
/// shared memory) leave out the work `mask` names (1: the copies, 2: the wgmma, 4: the decode;
/// 0 restores it), to see which one bounds the kernel. For the GPU check's diagnosis only: **the outputs are wrong** while a bit is set,
/// for every launch in the process.
#[doc(hidden)]
pub fn wgmma_ablation_override(mask: usize) {
    WGMMA_ABLATION.store(mask & 7, Ordering::Relaxed);
}

/// Time per activation row of a 256-row block relative to a 128-row one (H100, M = 2048, the
/// four benchmark shapes: 0.74-0.93, BENCHMARKS.md): the larger block streams its weights once
/// for twice the rows.
const WGMMA_ROWS_256_COST: f64 = 0.8;

/// How a stream-K launch splits `tiles` block tiles of `ksteps` k-steps on `sms`
/// multiprocessors: `(whole, blocks, shared)`: the first `whole` blocks compute one tile each,
/// then `blocks` blocks split the k-steps of the last `shared` tiles evenly (at least one each).
/// The shared tiles are the partial last wave and the full wave before it (all tiles if there
/// are fewer than `sms`), so each stream-K block computes between one and two tiles' worth and
/// the last wave is as full as the others; none when the tiles fill whole waves. With `all`,
/// every tile is shared.
fn stream_k_split(tiles: usize, ksteps: usize, sms: usize, all: bool) -> (usize, usize, usize) {
    let sms = sms.max(1);
    let shared = match tiles % sms {
        _ if all => tiles,
        0 => 0,
        rest if tiles < sms => rest,
        rest => rest + sms,
    };
    (tiles - shared, sms.min(shared * ksteps), shared)
}

/// The default wgmma configuration (1-based index into [`WGMMA_CONFIGS`]) for `m` activation
/// rows, `n` outputs and `k` inputs on `sms` multiprocessors, by what the H100 measured
/// (BENCHMARKS.md, session 8, the four benchmark shapes):
/// - `m` ≤ [`WGMMA_SMALL_M`] with `k` and `n` ≥ [`WGMMA_SMALL_M_MIN_SIZE`] (where it was
///   measured): 64-row blocks, three fragment sets, stream-K over all tiles (33). At M = 64
///   the 128-row blocks make as few blocks as there are 128-row weight tiles (32 at 4096
///   outputs, for 132 SMs), half their rows padding:
///   33 took 18.1, 23.1 and 72.9 µs against 24.1, 24.3 and 87.8 for 11 at 4096→4096,
///   4096→11008 and 8192→28672. With fewer k-steps per tile to spread (2560→6912) its
///   fix-up costs more than it saves: 21.6 µs against 17.5.
/// - Else 256 activation rows per block unless that leaves so few blocks that more waves of
///   128-row blocks finish sooner (e.g. 4096 outputs at M = 512: 64 blocks of 256 rows leave
///   half of an H100 idle). The 128-row blocks take the packed words by cp.async with the
///   activations, 4 stages ahead (11: 4-18% faster than 2 stages in flight, session 6).
/// - The 256-row blocks: from [`WGMMA_LARGE_M`] rows the warp-specialized kernel with the
///   activations by TMA and three fragment sets (32: 75.0, 216.5 and 867 µs against 85.1,
///   226.8 and 923 for 10 at M = 2048, 4096→4096, 4096→11008 and 8192→28672; 114.0 against
///   111.5 at 2560→6912); below, 10 (as 11, the 256-row shape), which 32 did not beat at
///   M = 512 (and once took 172 µs at 4096→11008 there, unexplained).
fn wgmma_default_config(m: usize, n: usize, k: usize, sms: usize) -> usize {
    const ROWS_64_STREAM_K: usize = 33;
    const ROWS_128: usize = 11;
    const ROWS_256: usize = 10;
    const ROWS_256_WARP_SPECIALIZED: usize = 32;
    if m <= WGMMA_SMALL_M && k.min(n) >= WGMMA_SMALL_M_MIN_SIZE {
        return ROWS_64_STREAM_K;
    }
    let cost = |index: usize, per_row: f64| {
        let c = WGMMA_CONFIGS[index - 1];
        let blocks = n.div_ceil(c.weight_rows()) * m.div_ceil(c.rows);
        (blocks.div_ceil(sms.max(1)) * c.rows) as f64 * per_row
    };
    if cost(ROWS_256, WGMMA_ROWS_256_COST) >= cost(ROWS_128, 1.0) {
        ROWS_128
    } else if m >= WGMMA_LARGE_M {
        ROWS_256_WARP_SPECIALIZED
    } else {
        ROWS_256
    }
}

/// The wgmma configurations autotuning times above [`WGMMA_SMALL_M`] rows (besides the static
/// choice), each checked exact on an H100 (session 8) and the fastest at one or more benchmark
/// points there: 256-row
/// blocks (10), 128-row blocks (11), warp-specialized with TMA (20) and three fragment sets
/// (32), and those in stream-K over all tiles (35, 36). On an H200 (session 13) the tuner chose
/// 20 at M = 2048 at every benchmark shape, and 11, 20, 32 or 35 at M = 512; the persistent
/// grids (39, 40) and the multicast (38), exact there, beat none of these anywhere.
const WGMMA_TUNE: &[usize] = &[10, 11, 20, 32, 35, 36];

/// The wgmma configurations autotuning times up to [`WGMMA_SMALL_M`] rows: 64-row blocks in
/// stream-K (33) and 128-row blocks with two and three fragment sets (11, 29), the fastest at
/// M = 64 on an H100 (session 8) among those checked exact there.
const WGMMA_TUNE_SMALL_M: &[usize] = &[33, 11, 29];

/// Most activation rows for which [`wgmma_default_config`] takes the 64-row stream-K blocks.
const WGMMA_SMALL_M: usize = 64;

/// Fewest inputs and outputs for which [`wgmma_default_config`] takes the 64-row stream-K
/// blocks.
const WGMMA_SMALL_M_MIN_SIZE: usize = 4096;

/// Fewest activation rows for which [`wgmma_default_config`] takes the warp-specialized kernel
/// for 256-row blocks.
const WGMMA_LARGE_M: usize = 1024;

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

/// The `bl_wgmma` device function of `gemm_wgmma.cu` for `n` activation rows, as one `#define`
/// line: `wgmma.mma_async` m64n`n`k32 s8·s8→s32 with the weight fragment in 4 registers (or,
/// with `a_smem`, through a second shared-memory descriptor), the activations through a
/// shared-memory descriptor, and its `n / 2` accumulators, which the instruction adds to
/// (scale-d = 1: they start at zero).
fn wgmma_fn(n: usize, a_smem: bool) -> String {
    let acc = n / 2;
    let d: Vec<String> = (0..acc).map(|i| format!("%{i}")).collect();
    let outs: Vec<String> = (0..acc).map(|i| format!("\"+r\"(d[{i}])")).collect();
    // The A operand's parameter, its place in the instruction, and its input constraints; then
    // the scale and the activations' descriptor follow.
    let (a_param, a_operand, a_inputs, next) = if a_smem {
        (
            "unsigned long long desc_a".to_string(),
            format!("%{acc}"),
            "\"l\"(desc_a)".to_string(),
            acc + 1,
        )
    } else {
        (
            "const unsigned int (&a)[4]".to_string(),
            format!("{{%{}, %{}, %{}, %{}}}", acc, acc + 1, acc + 2, acc + 3),
            "\"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3])".to_string(),
            acc + 4,
        )
    };
    format!(
        "#define BL_WGMMA_FN static __device__ __forceinline__ void bl_wgmma(int (&d)[{acc}], \
         {a_param}, unsigned long long desc) {{ asm volatile(\"{{\\n.reg .pred p;\\nsetp.ne.b32 \
         p, %{scale}, 0;\\nwgmma.mma_async.sync.aligned.m64n{n}k32.s32.s8.s8 {{{d}}}, \
         {a_operand}, %{desc}, p;\\n}}\\n\" : {outs} : {a_inputs}, \"r\"(1), \"l\"(desc)); }}\n",
        d = d.join(", "),
        outs = outs.join(", "),
        scale = next,
        desc = next + 1,
    )
}

/// The flags of the shared output store (`epilogue.cuh`).
fn epilogue_flags(
    per_channel: bool,
    has_bias: bool,
    raw: bool,
    out: FloatDtype,
) -> Vec<(&'static str, usize)> {
    let out = match out {
        FloatDtype::F32 => 0,
        FloatDtype::F16 => 1,
        FloatDtype::BF16 => 2,
    };
    vec![
        ("BL_GRAN", per_channel as usize),
        ("BL_BIAS", has_bias as usize),
        ("BL_RAW", raw as usize),
        ("BL_OUT", out),
    ]
}

/// The dp4a GEMV's own flags for `rows` activation rows per block, a block configuration, and,
/// when fused, the bytes of each quantized row in shared memory.
fn gemv_flags(
    rows: usize,
    config: GemvConfig,
    fused_kp: Option<usize>,
) -> Vec<(&'static str, usize)> {
    let min_blocks = match fused_kp {
        Some(_) => config.fused_min_blocks,
        None if rows == 1 => config.min_blocks.max(config.min_blocks_one_row),
        None => config.min_blocks,
    };
    vec![
        ("BL_MR", rows),
        // Four accumulators per output save a shift per 4 weights; affordable in registers for
        // up to 2 rows.
        ("BL_SPLIT", (config.split && rows <= 2) as usize),
        ("BL_WARPS", config.warps),
        ("BL_UNROLL", config.unroll),
        ("BL_MINB", min_blocks),
        ("BL_TILES", config.tiles),
        ("BL_FUSED", fused_kp.is_some() as usize),
        // Bytes per quantized row in shared memory (0 when not fused).
        ("BL_KP", fused_kp.unwrap_or(0)),
    ]
}

/// The dp4a GEMV's own flags (no epilogue) for block configuration `config` (1-based, as
/// [`dp4a_gemv_config_override`]), `rows` activation rows per block, and, when fused, `kp`
/// codes per quantized row (16 · ⌈K / 16⌉): what its CPU emulation builds
/// (`tests/gemv_emulation.rs`).
#[doc(hidden)]
pub fn dp4a_gemv_kernel_flags(
    config: usize,
    rows: usize,
    fused_kp: Option<usize>,
) -> Vec<(&'static str, usize)> {
    gemv_flags(rows, GEMV_CONFIGS[config - 1], fused_kp)
}

/// A kernel's entry point: `bitlinear_<family>_<flag><value>...` (each configuration its own).
fn entry_name(family: &str, flags: &[(&'static str, usize)]) -> String {
    let mut name = format!("bitlinear_{family}");
    for (key, value) in flags {
        name.push_str(&format!(
            "_{}{value}",
            key.trim_start_matches("BL_").to_lowercase()
        ));
    }
    name
}

/// A kernel's `#define`s, in order.
type Flags = Vec<(&'static str, usize)>;

/// The complete source of every hand-written kernel configuration the host can launch, paired
/// with its entry name: each GEMV block configuration (1, 2 and 8 rows, fused where it applies),
/// both mma tilings and every wgmma configuration with one epilogue, and the first of each
/// family with every epilogue (raw, per-tensor, per-channel with a bias; f32, f16, bf16). For
/// the syntax check of the sources on the host (`tests/cuda_syntax.rs`).
#[doc(hidden)]
pub fn raw_kernel_sources() -> Vec<(String, String)> {
    let mut epilogues = vec![epilogue_flags(false, false, true, FloatDtype::F32)];
    for out in [FloatDtype::F32, FloatDtype::F16, FloatDtype::BF16] {
        epilogues.push(epilogue_flags(false, false, false, out));
        epilogues.push(epilogue_flags(true, true, false, out));
    }
    let main_epilogue = epilogue_flags(true, true, false, FloatDtype::F32);
    // (family, the kernel's own flags, its body)
    let mut kernels: Vec<(&str, Flags, String)> = Vec::new();
    for config in GEMV_CONFIGS {
        for rows in [1, 2, 8] {
            kernels.push((
                "gemv_dp4a",
                gemv_flags(rows, config, None),
                GEMV_SOURCE.into(),
            ));
            if fused_gemv_fits(rows, 1024) {
                let flags = gemv_flags(rows, config, Some(1024));
                kernels.push(("gemv_dp4a", flags, GEMV_SOURCE.into()));
            }
        }
    }
    for flags in mma_gemm_kernel_flags() {
        kernels.push(("gemm_mma", flags, GEMM_SOURCE.into()));
    }
    for config in WGMMA_CONFIGS {
        kernels.push((config.kernel().0, config.flags(), config.body()));
    }
    // The diagnostic variants (`wgmma_ablation_override`) of the default large-M shape (32,
    // warp-specialized) and of 11 (gemm_wgmma.cu).
    for ablated in [WGMMA_CONFIGS[32 - 1], WGMMA_CONFIGS[11 - 1]] {
        for mask in [1, 2, 4, 7] {
            let mut flags = ablated.flags();
            flags.push(("BL_ABLATE", mask));
            kernels.push((ablated.kernel().0, flags, ablated.body()));
        }
    }
    let mut sources = Vec::new();
    let mut first_of_family = std::collections::HashSet::new();
    for (family, own, body) in kernels {
        let all = if first_of_family.insert(family) {
            epilogues.clone()
        } else {
            vec![main_epilogue.clone()]
        };
        for epilogue in all {
            let mut flags = epilogue;
            flags.extend_from_slice(&own);
            let entry = entry_name(family, &flags);
            let source = kernel_source(&entry, &flags, &body);
            sources.push((entry, source));
        }
    }
    sources
}

/// A kernel's whole source: `flags` as `#define`s, `BL_ENTRY` (the entry point's name), the
/// output store every kernel shares, then `body`.
fn kernel_source(entry: &str, flags: &[(&str, usize)], body: &str) -> String {
    let mut text = String::new();
    for (key, value) in flags {
        text.push_str(&format!("#define {key} {value}\n"));
    }
    format!("{text}#define BL_ENTRY {entry}\n{EPILOGUE_SOURCE}{body}")
}

/// The buffers and sizes of one launch, already validated by the caller.
pub(crate) struct RawLaunch<'a> {
    pub codes: &'a Handle,
    pub packed: &'a Handle,
    pub x_scales: &'a Handle,
    pub w_scales: &'a Handle,
    pub bias: &'a Handle,
    pub out: &'a Handle,
    pub out_raw: &'a Handle,
    pub m: usize,
    pub n: usize,
    pub blocks_k: usize,
    /// Per-channel weight scales, else per tensor (per-group scales never reach these kernels).
    pub per_channel: bool,
    pub has_bias: bool,
    pub raw: bool,
    /// Type of `bias` and `out` (`BL_OUT` in `epilogue.cuh`).
    pub out_dtype: FloatDtype,
    /// `Some((k, eps))`: `codes` is the f32 input `[M, K]`, quantized per token inside the
    /// GEMV (see [`fused_gemv_fits`]).
    pub fused: Option<(usize, f32)>,
}

/// Bytes of static shared memory the fused GEMV may take for its input rows: each row's f32
/// copy and int8 codes, 5 bytes per input (the rest of the 48 KiB of static shared memory a
/// block may declare holds the reductions: up to 4 KiB with four tiles per block).
const FUSED_SHARED_BYTES: usize = 40 * 1024;

/// Shared-memory bytes per input of each row the fused GEMV quantizes: the f32 copy and the code.
const FUSED_BYTES_PER_INPUT: usize = 5;

/// Largest `K` the fused quantize + GEMV takes: every block quantizes the whole input row, so
/// its prologue grows with `K`. On an H100 fusing saved 9-14 µs per layer (one launch less) up
/// to K = 4096, and cost 3 µs at 8192→28672, where the kernel is bound by the device, not the
/// host.
const FUSED_MAX_K: usize = 4096;

/// Most activation rows the fused quantize + GEMV takes. Every block quantizes all its rows, so
/// the L2 traffic of the prologue is `M` times the packed weight bytes: on an H100 (wall time of
/// the layer) fusing saved 10-14 µs at M = 1 and 2 except 4096→11008 M = 2 (+1.5 µs), was even
/// to 2x slower at M = 4, and 2-3x slower at M = 16.
const FUSED_MAX_M: usize = 2;

static FUSED_WIDE: TuningOverride = TuningOverride::new(&[1]);

/// `true` lifts the fused layer's bounds [`FUSED_MAX_M`] and [`FUSED_MAX_K`] (set from session
/// 8's prologue, a loop of loads per element) to the kernel's own limit, its shared memory (and
/// `m ≤` [`GEMV_MAX_M`]): for the GPU check to time the session-10 prologue where those bounds
/// were measured, e.g. 8192→28672 at M = 1. `false` restores them. Either computes the same
/// result.
#[doc(hidden)]
pub fn fused_linear_widen(wide: bool) {
    FUSED_WIDE.set(wide as usize);
}

/// Whether the fused quantize + GEMV kernel takes `m` rows of `k` inputs: `m ≤`
/// [`FUSED_MAX_M`], `k ≤` [`FUSED_MAX_K`] (unless [`fused_linear_widen`]), and one block's
/// rows fit its static shared memory (the kernel's own limit). Public for the GPU check, which
/// times the fused layer only where it is one launch.
#[doc(hidden)]
pub fn fused_gemv_fits(m: usize, k: usize) -> bool {
    match FUSED_WIDE.get() {
        Some(_) => fused_fits_within(m, k, GEMV_MAX_M, usize::MAX),
        None => fused_fits_within(m, k, FUSED_MAX_M, FUSED_MAX_K),
    }
}

/// [`fused_gemv_fits`] with the bounds `max_m` and `max_k`.
fn fused_fits_within(m: usize, k: usize, max_m: usize, max_k: usize) -> bool {
    (1..=max_m).contains(&m)
        && k <= max_k
        && gemv_rows_per_block(m) * 16 * k.div_ceil(16) * FUSED_BYTES_PER_INPUT
            <= FUSED_SHARED_BYTES
}

/// Activation rows per GEMV block: all of them up to [`GEMV_ROWS_PER_BLOCK`], else split evenly.
fn gemv_rows_per_block(m: usize) -> usize {
    if m <= GEMV_ROWS_PER_BLOCK {
        m
    } else {
        m.div_ceil(m.div_ceil(GEMV_ROWS_PER_BLOCK))
    }
}

impl RawLaunch<'_> {
    fn buffers(&self) -> [&Handle; 7] {
        [
            self.codes,
            self.packed,
            self.x_scales,
            self.w_scales,
            self.bias,
            self.out,
            self.out_raw,
        ]
    }

    fn scalars(&self) -> Vec<u64> {
        vec![self.m as u64, self.n as u64, self.blocks_k as u64]
    }

    /// The GEMV's scalars: those of the GEMM plus `k` and the bits of `eps` (fused only).
    fn gemv_scalars(&self) -> Vec<u64> {
        let (k, eps) = self.fused.unwrap_or((0, 0.0));
        let mut s = self.scalars();
        s.extend([k as u64, eps.to_bits() as u64]);
        s
    }

    /// The kernel of this launch's configuration plus `extra` flags: named
    /// `bitlinear_<family>_<flag><value>...` on every launch, its source assembled only the
    /// first time that name is seen ([`kernel_source`]; `body` is the kernel's own part).
    fn kernel(
        &self,
        family: &str,
        extra: &[(&'static str, usize)],
        body: impl FnOnce() -> String,
        cube_dim: CubeDim,
    ) -> RawCudaKernel {
        let mut flags = epilogue_flags(self.per_channel, self.has_bias, self.raw, self.out_dtype);
        flags.extend_from_slice(extra);
        let name = entry_name(family, &flags);
        let entry = name.clone();
        RawCudaKernel::cached(name, || kernel_source(&entry, &flags, &body()), cube_dim)
    }

    /// Packed GEMV with dp4a, `m ≤ 16`: one block (256 threads by default) per 16 output rows
    /// (or per 2 or 4 tiles of them, with as many times the threads) and per
    /// [`GEMV_ROWS_PER_BLOCK`] activation rows.
    ///
    /// # Safety
    /// Buffers must match the shapes (validated by `launch_matmul`); CUDA runtime only.
    pub(crate) unsafe fn gemv<R: Runtime>(&self, client: &ComputeClient<R>) {
        let rows = gemv_rows_per_block(self.m);
        let default = if self.fused.is_some() {
            FUSED_GEMV_CONFIG
        } else {
            1
        };
        let config = GEMV_CONFIGS[GEMV_CONFIG.get().unwrap_or(default) - 1];
        let fused_kp = self.fused.map(|_| 16 * self.blocks_k);
        let kernel = self.kernel(
            "gemv_dp4a",
            &gemv_flags(rows, config, fused_kp),
            || GEMV_SOURCE.to_string(),
            CubeDim::new_1d((32 * config.warps * config.tiles) as u32),
        );
        let blocks = self.n.div_ceil(16).div_ceil(config.tiles);
        let count = CubeCount::Static(blocks as u32, self.m.div_ceil(rows) as u32, 1);
        unsafe { kernel.launch(client, count, &self.buffers(), self.gemv_scalars()) };
    }

    /// Tensor-core GEMM (`mma.sync` m16n8k32 s8): 128×128 output tiles by default (256×128 with
    /// 8 warp tiles), 256 threads each.
    ///
    /// # Safety
    /// As [`Self::gemv`]; sm ≥ 80.
    pub(crate) unsafe fn gemm<R: Runtime>(&self, client: &ComputeClient<R>) {
        let tiles = GEMM_WARP_TILES.get().unwrap_or_else(|| {
            let sms = client.properties().hardware.num_streaming_multiprocessors;
            self.tuned(
                client,
                sms.unwrap_or(0),
                "mma",
                GEMM_WARP_TILES_DEFAULT,
                &GEMM_WARP_TILINGS,
                |t| {
                    // SAFETY: as this function's (the same launch with another block shape).
                    unsafe { self.gemm_with(client, t) }
                },
            )
        });
        unsafe { self.gemm_with(client, tiles) };
    }

    /// [`Self::gemm`] with `tiles` 16-row mma tiles per warp (4 or 8).
    ///
    /// # Safety
    /// As [`Self::gemm`].
    unsafe fn gemm_with<R: Runtime>(&self, client: &ComputeClient<R>, tiles: usize) {
        let block_rows = 32 * tiles;
        let kernel = self.kernel(
            "gemm_mma",
            &[("BL_WM_TILES", tiles)],
            || GEMM_SOURCE.to_string(),
            CubeDim::new_1d(256),
        );
        let count = CubeCount::Static(
            self.n.div_ceil(128) as u32,
            self.m.div_ceil(block_rows) as u32,
            1,
        );
        unsafe { kernel.launch(client, count, &self.buffers(), self.scalars()) };
    }

    /// The TMA tensor map of the activation codes for the warp-specialized wgmma kernel: `[M,
    /// 16 · blocks_k]` bytes, row-major; boxes of `rows` rows × 128 bytes in the 128-byte
    /// swizzle (the layout the kernel's wgmma descriptors read), zeros past the edges.
    fn activation_tensor_map(&self, rows: usize) -> TensorMapBinding {
        let row_bytes = 16 * self.blocks_k;
        let storage = StorageType::Scalar(ElemType::UInt(UIntKind::U8));
        TensorMapBinding {
            binding: self.codes.clone().binding(),
            map: TensorMapMeta {
                format: TensorMapFormat::Tiled(TiledArgs {
                    tile_size: Shape::from(vec![rows, 128]),
                }),
                metadata: Metadata::new(vec![self.m, row_bytes], vec![row_bytes, 1]),
                elem_stride: Strides::new(&[1, 1]),
                interleave: TensorMapInterleave::None,
                swizzle: TensorMapSwizzle::B128,
                prefetch: TensorMapPrefetch::None,
                oob_fill: OobFill::Zero,
                storage_ty: storage,
            },
        }
    }

    /// Tensor-core GEMM on Hopper's warpgroup MMA (`wgmma` m64nNk32 s8, weights as the register
    /// operand): blocks of 64 weight rows per warpgroup × 64-256 activation rows.
    ///
    /// # Safety
    /// As [`Self::gemv`]; sm 90 ([`crate::wgmma_available`]).
    pub(crate) unsafe fn wgmma_gemm<R: Runtime>(&self, client: &ComputeClient<R>) {
        let index = WGMMA_CONFIG.get().unwrap_or_else(|| {
            let sms = client.properties().hardware.num_streaming_multiprocessors;
            let k = 16 * self.blocks_k;
            let default = wgmma_default_config(self.m, self.n, k, sms.unwrap_or(132) as usize);
            let sms = sms.unwrap_or(0);
            if WGMMA_ABLATION.load(Ordering::Relaxed) != 0 {
                // Diagnosis: the ablated kernel is timed as asked, never tuned.
                return default;
            }
            let candidates = if self.m <= WGMMA_SMALL_M {
                WGMMA_TUNE_SMALL_M
            } else {
                WGMMA_TUNE
            };
            self.tuned(client, sms, "wgmma", default, candidates, |c| {
                // SAFETY: as this function's (the same launch with another block shape).
                unsafe { self.wgmma_gemm_with(client, c) }
            })
        });
        unsafe { self.wgmma_gemm_with(client, index) };
    }

    /// The configuration of this launch's problem (`default` first among `candidates`) as
    /// autotuned ([`crate::autotune`]): `default` where autotuning is off, else the cached
    /// choice, else each candidate timed through `launch` now (on this launch's own buffers:
    /// every candidate computes the same outputs). `sms`: the device's multiprocessors (0 if
    /// unknown), which the caller has already read.
    fn tuned<R: Runtime>(
        &self,
        client: &ComputeClient<R>,
        sms: u32,
        family: &'static str,
        default: usize,
        candidates: &[usize],
        launch: impl Fn(usize),
    ) -> usize {
        let key = TuneKey {
            family,
            sms,
            m_bucket: TuneKey::bucket(self.m),
            n: self.n,
            k: 16 * self.blocks_k,
            epilogue: (self.per_channel, self.has_bias, self.raw, self.out_dtype),
        };
        tuned_choice(key, default, candidates, |c| {
            time_launches(client, || launch(c))
        })
    }

    /// [`Self::wgmma_gemm`] with configuration `index` (1-based into [`WGMMA_CONFIGS`]).
    ///
    /// # Safety
    /// As [`Self::wgmma_gemm`].
    unsafe fn wgmma_gemm_with<R: Runtime>(&self, client: &ComputeClient<R>, index: usize) {
        let config = WGMMA_CONFIGS[index - 1];
        // Checked for every configuration by a unit test.
        debug_assert!(config.shared_bytes() <= SM90_MAX_DYNAMIC_SHARED);
        let (family, _) = config.kernel();
        let mut flags = config.flags();
        let ablation = WGMMA_ABLATION.load(Ordering::Relaxed);
        // (Every kernel but the shared-memory-fragment shapes, which have no such switches.)
        let ablated = ablation != 0 && !config.a_smem;
        let mut shared = config.shared_bytes();
        if ablated {
            flags.push(("BL_ABLATE", ablation));
            // One block per SM, as the kernel it is compared with: with less work it may need
            // fewer registers, and two blocks would fit (11 without its wgmma: 46).
            shared = SM90_MAX_DYNAMIC_SHARED;
        }
        let kernel = self
            .kernel(
                family,
                &flags,
                || config.body(),
                CubeDim::new_1d(config.threads() as u32),
            )
            .with_dynamic_shared(shared);
        let kernel = if config.tma {
            // Multicast: each block of a cluster loads half of every stage.
            kernel.with_tensor_map(self.activation_tensor_map(config.rows / config.cluster()))
        } else {
            kernel
        };
        // Whole clusters: a block past the last weight rows computes on zero words and stores
        // nothing.
        let blocks_n = self
            .n
            .div_ceil(config.weight_rows())
            .next_multiple_of(config.cluster());
        let blocks_m = self.m.div_ceil(config.rows);
        if config.stream_k {
            let sms = client.properties().hardware.num_streaming_multiprocessors;
            // The kernel's stages: 8 k-blocks of 16 inputs (BL_KB_STAGE).
            let ksteps = self.blocks_k.div_ceil(8);
            let sms = sms.unwrap_or(132) as usize;
            let tiles = blocks_n * blocks_m;
            let (whole, blocks, shared) = if config.whole_tiles {
                // Every block's run starts at a tile's first k-step (`BL_SK_WHOLE`).
                (0, sms.min(tiles), 0)
            } else {
                stream_k_split(tiles, ksteps, sms, config.stream_k_all)
            };
            // Two partial tiles per stream-K block (i32, one per consumer thread and
            // accumulator), and one counter per shared tile, zeroed; whole tiles need neither.
            let tile_ints = 128 * config.warpgroups * config.slabs * config.rows / 2;
            let partial_bytes = if shared > 0 {
                2 * blocks * tile_ints * 4
            } else {
                4
            };
            let partials = client.empty(partial_bytes);
            let counters = client.create_from_slice(&vec![0u8; 4 * shared.max(1)]);
            let mut buffers = self.buffers().to_vec();
            buffers.extend([&partials, &counters]);
            let mut scalars = self.scalars();
            scalars.extend([whole as u64, blocks as u64]);
            let count = CubeCount::Static((whole + blocks) as u32, 1, 1);
            unsafe { kernel.launch(client, count, &buffers, scalars) };
            return;
        }
        let count = CubeCount::Static(blocks_n as u32, blocks_m as u32, 1);
        // The wgmma kernels' parameters end with the two stream-K counts, unused here.
        let mut scalars = self.scalars();
        scalars.extend([0, 0]);
        unsafe { kernel.launch(client, count, &self.buffers(), scalars) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_gemv_fits_its_bounds() {
        // Widened, the shared memory alone bounds it (8192 inputs of one row: 40 KiB).
        let wide = |m, k| fused_fits_within(m, k, GEMV_MAX_M, usize::MAX);
        assert!(wide(1, 8192) && wide(8, 1024) && wide(16, 1024));
        assert!(!wide(1, 8193) && !wide(8, 1025) && !wide(GEMV_MAX_M + 1, 16));
        assert!(fused_gemv_fits(1, FUSED_MAX_K));
        assert!(fused_gemv_fits(FUSED_MAX_M, FUSED_MAX_K));
        assert!(!fused_gemv_fits(1, FUSED_MAX_K + 1));
        assert!(!fused_gemv_fits(FUSED_MAX_M + 1, 16));
        assert!(!fused_gemv_fits(0, 16));
        // The largest fused block's rows fit the shared memory the kernel declares.
        assert!(
            gemv_rows_per_block(FUSED_MAX_M) * FUSED_MAX_K * FUSED_BYTES_PER_INPUT
                <= FUSED_SHARED_BYTES
        );
    }

    /// The fused GEMV's static shared memory (its declarations in gemv_dp4a.cu: the f32 and
    /// int8 rows, the scales, the per-warp maxima and the reduction) stays within the 48 KiB a
    /// block may declare, in every configuration, at the largest fused problem.
    #[test]
    fn fused_gemv_static_shared_memory_fits() {
        let rows = gemv_rows_per_block(FUSED_MAX_M);
        let kp = 16 * FUSED_MAX_K.div_ceil(16);
        for config in GEMV_CONFIGS {
            let warps = config.warps * config.tiles;
            let bytes = rows * kp * FUSED_BYTES_PER_INPUT
                + rows * 4
                + rows * warps * 4
                + warps * rows * 16 * 4;
            assert!(bytes <= 48 * 1024, "{config:?}: {bytes} bytes");
        }
    }

    /// The generated wgmma wrapper names every accumulator once, then the 4 fragment registers,
    /// the scale and the descriptor, in operand order.
    #[test]
    fn wgmma_wrapper_lists_its_operands_in_order() {
        for n in [64, 128, 256] {
            for a_smem in [false, true] {
                let f = wgmma_fn(n, a_smem);
                let acc = n / 2;
                // The operands after the accumulators: the fragment's 4 registers or A's
                // descriptor, then the scale and B's descriptor.
                let after = if a_smem { acc + 1 } else { acc + 4 };
                assert!(f.starts_with("#define BL_WGMMA_FN "));
                assert_eq!(f.matches('\n').count(), 1, "one line");
                assert!(f.contains(&format!("m64n{n}k32.s32.s8.s8")));
                assert!(f.contains(&format!("int (&d)[{acc}]")));
                assert_eq!(f.matches("\"+r\"(d[").count(), acc);
                assert!(f.contains(&format!("\"+r\"(d[{}])", acc - 1)));
                assert!(f.contains("{%0, %1, "));
                assert!(f.contains(&format!("setp.ne.b32 p, %{after}, 0;")));
                assert!(f.contains(&format!(", %{}, p;", after + 1)));
                if a_smem {
                    assert!(f.contains(&format!("}}, %{acc}, %{}, p;", after + 1)));
                    assert!(f.contains("\"l\"(desc_a), \"r\"(1), \"l\"(desc)"));
                } else {
                    assert!(f.contains(&format!(
                        "}}, {{%{}, %{}, %{}, %{}}}, %{}, p;",
                        acc,
                        acc + 1,
                        acc + 2,
                        acc + 3,
                        after + 1
                    )));
                    assert!(f.contains("\"r\"(a[3]), \"r\"(1), \"l\"(desc)"));
                }
            }
        }
    }

    /// Stream-K leaves whole waves of whole tiles alone and spreads the rest over one block
    /// per SM, each with at least one k-step.
    #[test]
    fn stream_k_split_fills_the_last_wave() {
        // 4096->11008, M = 2048, 128 x 256 tiles: 688 = 5 waves + 28; the last two waves shared.
        assert_eq!(stream_k_split(688, 32, 132, false), (528, 132, 160));
        // Fewer tiles than SMs: all shared.
        assert_eq!(stream_k_split(64, 32, 132, false), (0, 132, 64));
        // Whole waves: nothing shared, unless all are.
        assert_eq!(stream_k_split(264, 32, 132, false), (264, 0, 0));
        assert_eq!(stream_k_split(264, 32, 132, true), (0, 132, 264));
        // Fewer units than SMs: one block per unit.
        assert_eq!(stream_k_split(5, 1, 132, false), (0, 5, 5));
        for tiles in 1..300 {
            for ksteps in [1, 2, 3, 32] {
                for sms in [1, 2, 7, 132] {
                    let (whole, blocks, shared) = stream_k_split(tiles, ksteps, sms, false);
                    let (_, all_blocks, all_shared) = stream_k_split(tiles, ksteps, sms, true);
                    assert_eq!(all_shared, tiles);
                    assert_eq!(all_blocks, sms.min(tiles * ksteps));
                    assert_eq!(whole + shared, tiles);
                    assert_eq!(whole % sms, 0);
                    assert!(blocks <= sms && blocks <= shared * ksteps);
                    assert_eq!(blocks == 0, shared == 0);
                    // At most two tiles' worth of k-steps per stream-K block, unless there are
                    // fewer units than blocks would take (then one each).
                    assert!(shared == 0 || shared * ksteps <= 2 * sms * ksteps);
                }
            }
        }
    }

    /// On an H100 (132 SMs), the configurations measured fastest at the benchmark shapes
    /// (session 8; `wgmma_default_config`'s doc has the figures).
    #[test]
    fn wgmma_default_config_follows_the_measurements() {
        for (m, k, n, want) in [
            (64, 4096, 4096, 33),
            (64, 4096, 11008, 33),
            (64, 8192, 28672, 33),
            (64, 2560, 6912, 11),
            (17, 4096, 4096, 33),
            (65, 4096, 4096, 11),
            (64, 4096, 1024, 11),
            (512, 4096, 4096, 11),
            (512, 4096, 11008, 11),
            (512, 8192, 28672, 10),
            (512, 2560, 6912, 10),
            (2048, 4096, 4096, 32),
            (2048, 4096, 11008, 32),
            (2048, 8192, 28672, 32),
            (2048, 2560, 6912, 32),
        ] {
            assert_eq!(
                wgmma_default_config(m, n, k, 132),
                want,
                "M = {m}, K = {k}, N = {n}"
            );
        }
        // Tiny problems and a missing SM count still pick a valid shape.
        for m in [17, 100, 5000] {
            assert!((1..=WGMMA_CONFIGS.len()).contains(&wgmma_default_config(m, 1, 16, 0)));
        }
    }

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

    /// An entry name stands for one source (the launch cache relies on it): no two
    /// configurations give the same name with different sources, and each source defines its
    /// entry point.
    #[test]
    fn entry_names_identify_their_sources() {
        let mut seen = std::collections::HashMap::new();
        for (entry, source) in raw_kernel_sources() {
            assert!(
                source.contains(&format!("#define BL_ENTRY {entry}\n")),
                "{entry}"
            );
            if let Some(previous) = seen.insert(entry.clone(), source.clone()) {
                assert_eq!(previous, source, "{entry} names two sources");
            }
        }
        assert!(seen.len() > WGMMA_CONFIGS.len() + GEMV_CONFIGS.len());
    }

    /// Flags, then the entry point, then the shared output store, then the kernel's own part.
    #[test]
    fn kernel_source_defines_the_flags_before_the_code() {
        let s = kernel_source("k_gran1", &[("BL_GRAN", 1), ("BL_MR", 8)], "BODY");
        assert!(s.starts_with("#define BL_GRAN 1\n#define BL_MR 8\n#define BL_ENTRY k_gran1\n"));
        assert!(s.ends_with("BODY"));
        let store = s.find("bl_store").expect("the epilogue is in");
        assert!(store < s.find("BODY").unwrap());
    }

    #[test]
    fn rows_per_block_split_evenly() {
        assert_eq!(gemv_rows_per_block(1), 1);
        assert_eq!(gemv_rows_per_block(8), 8);
        assert_eq!(gemv_rows_per_block(9), 5);
        assert_eq!(gemv_rows_per_block(16), 8);
    }
}
