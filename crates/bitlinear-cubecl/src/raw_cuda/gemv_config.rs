//! The dp4a GEMV's block configurations (`gemv_dp4a.cu`), the `#define`s of each, and the
//! bounds within which the GEMV also quantizes its activation rows itself (the fused layer).

use crate::linear::GEMV_MAX_M;
use crate::tuning::TuningOverride;

/// Largest number of activation rows one GEMV block handles (more rows: more blocks in `y`).
pub(super) const GEMV_ROWS_PER_BLOCK: usize = 8;

/// Shape of the dp4a GEMV's blocks: warps per tile, k-blocks each lane loads before computing,
/// four accumulators per output (only taken for up to 2 rows), minimum blocks per SM (on codes,
/// and fused with the quantization), tiles of 16 output rows per block.
#[derive(Debug, Clone, Copy)]
pub(super) struct GemvConfig {
    pub(super) warps: usize,
    pub(super) unroll: usize,
    pub(super) split: bool,
    pub(super) min_blocks: usize,
    /// Fused, the prologue's registers (43-50 per thread by ptxas 13.0 without a cap, beside
    /// the first weights in flight) would leave 5 blocks of 256 threads per SM, one short of a
    /// single wave at 4096→11008 (688 blocks on 132 SMs), where the previous prologue's 40 fit
    /// 6: the fused forms of 1 and 8 ask for 1536 threads per SM (40 registers; ptxas spills 4
    /// to 8 bytes in the prologue).
    pub(super) fused_min_blocks: usize,
    /// On codes with one activation row per block, at least this many blocks per SM: the
    /// round's copy of the codes into shared memory left ptxas 13.0 free to take 44 registers
    /// (per-tensor scale) where 40 fit with no spill, which would be 5 blocks of 256 threads per
    /// SM instead of 6, a second wave at 4096→11008 (688 blocks on 132 SMs); 3 of 512 threads
    /// for two tiles per block (50 registers uncapped: 2 blocks, 528 tiles per wave).
    pub(super) min_blocks_one_row: usize,
    pub(super) tiles: usize,
}

/// The block shape the configurations below start from: 8 warps per tile, 4 k-blocks per lane
/// before computing, no 4-accumulator split, one tile per block, no blocks-per-SM request.
pub(super) const GEMV_BASE: GemvConfig = GemvConfig {
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
pub(super) const GEMV_CONFIGS: [GemvConfig; 9] = [
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
pub(super) const FUSED_GEMV_CONFIG: usize = 8;

pub(super) static GEMV_CONFIG: TuningOverride = TuningOverride::new(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);

/// Forces one of the dp4a GEMV's block configurations (1..=9; 0 restores the defaults: 1 on
/// codes, [`FUSED_GEMV_CONFIG`] fused). For
/// benchmarks and tests: every configuration computes the same result.
#[doc(hidden)]
pub fn dp4a_gemv_config_override(config: usize) {
    GEMV_CONFIG.set(config);
}

/// The fused layer's default block configuration ([`FUSED_GEMV_CONFIG`]), for the emulation
/// test.
#[doc(hidden)]
pub fn dp4a_fused_gemv_config() -> usize {
    FUSED_GEMV_CONFIG
}

/// How many configurations [`dp4a_gemv_config_override`] selects from.
#[doc(hidden)]
pub fn dp4a_gemv_config_count() -> usize {
    GEMV_CONFIGS.len()
}

/// The dp4a GEMV's own flags for `rows` activation rows per block, a block configuration, and,
/// when fused, the bytes of each quantized row in shared memory.
pub(super) fn gemv_flags(
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

/// Bytes of static shared memory the fused GEMV may take for its input rows: each row's copy
/// (f32 at most) and int8 codes, 5 bytes per input (the rest of the 48 KiB of static shared
/// memory a block may declare holds the reductions: up to 4 KiB with four tiles per block).
pub(super) const FUSED_SHARED_BYTES: usize = 40 * 1024;

/// Shared-memory bytes per input of each row the fused GEMV quantizes: the copy (f32; f16 and
/// bf16 take 2 of these 4 bytes) and the code.
pub(super) const FUSED_BYTES_PER_INPUT: usize = 5;

/// Largest `K` the fused quantize + GEMV takes: every block quantizes the whole input row, so
/// its prologue grows with `K`. On an H100 fusing saved 9-14 µs per layer (one launch less) up
/// to K = 4096, and cost 3 µs at 8192→28672, where the kernel is bound by the device, not the
/// host.
pub(super) const FUSED_MAX_K: usize = 4096;

/// Most activation rows the fused quantize + GEMV takes. Every block quantizes all its rows, so
/// the L2 traffic of the prologue is `M` times the packed weight bytes: on an H100 (wall time of
/// the layer) fusing saved 10-14 µs at M = 1 and 2 except 4096→11008 M = 2 (+1.5 µs), was even
/// to 2x slower at M = 4, and 2-3x slower at M = 16.
pub(super) const FUSED_MAX_M: usize = 2;

pub(super) static FUSED_WIDE: TuningOverride = TuningOverride::new(&[1]);

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
pub(super) fn fused_fits_within(m: usize, k: usize, max_m: usize, max_k: usize) -> bool {
    (1..=max_m).contains(&m)
        && k <= max_k
        && gemv_rows_per_block(m) * 16 * k.div_ceil(16) * FUSED_BYTES_PER_INPUT
            <= FUSED_SHARED_BYTES
}

/// Activation rows per GEMV block: all of them up to [`GEMV_ROWS_PER_BLOCK`], else split evenly.
pub(super) fn gemv_rows_per_block(m: usize) -> usize {
    if m <= GEMV_ROWS_PER_BLOCK {
        m
    } else {
        m.div_ceil(m.div_ceil(GEMV_ROWS_PER_BLOCK))
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

    /// The fused GEMV's static shared memory (its declarations in gemv_dp4a.cu: the input
    /// (f32 at most) and int8 rows, the scales, the per-warp maxima and the reduction) stays
    /// within the 48 KiB a block may declare, in every configuration, at the largest fused
    /// problem.
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

    #[test]
    fn rows_per_block_split_evenly() {
        assert_eq!(gemv_rows_per_block(1), 1);
        assert_eq!(gemv_rows_per_block(8), 8);
        assert_eq!(gemv_rows_per_block(9), 5);
        assert_eq!(gemv_rows_per_block(16), 8);
    }
}
