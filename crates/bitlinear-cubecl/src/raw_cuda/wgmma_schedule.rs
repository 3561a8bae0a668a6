//! Which `wgmma` configuration a problem gets (the static choice, and the candidates the tuner
//! times), and how a stream-K launch spreads the tiles over the multiprocessors.

use super::wgmma_configs::WGMMA_CONFIGS;

/// Time per activation row of a 256-row warp-specialized block (20, 32) relative to a 128-row
/// one (11), per wave of blocks: 0.54-0.62 on an H100 (session 16) and 0.66-0.72 on an H200
/// (session 13) at the four benchmark shapes, M = 512 and 2048 (BENCHMARKS.md). The larger
/// block streams its weights once for twice the rows. The higher end, so that 11 keeps the
/// shapes where the two are close (4096², M = 512).
pub(super) const WGMMA_ROWS_256_COST: f64 = 0.7;

/// How a stream-K launch splits `tiles` block tiles of `ksteps` k-steps on `sms`
/// multiprocessors: `(whole, blocks, shared)`: the first `whole` blocks compute one tile each,
/// then `blocks` blocks split the k-steps of the last `shared` tiles evenly (at least one each).
/// The shared tiles are the partial last wave and the full wave before it (all tiles if there
/// are fewer than `sms`), so each stream-K block computes between one and two tiles' worth and
/// the last wave is as full as the others; none when the tiles fill whole waves. With `all`,
/// every tile is shared.
pub(super) fn stream_k_split(
    tiles: usize,
    ksteps: usize,
    sms: usize,
    all: bool,
) -> (usize, usize, usize) {
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
/// rows, `n` outputs and `k` inputs on `sms` multiprocessors: the static choice, taken where
/// autotuning is off and timed first where it is on. By what the H100 and H200 measured
/// (BENCHMARKS.md, sessions 8, 13 and 16, the four benchmark shapes):
/// - `m` ≤ [`WGMMA_SMALL_M`] with `k` and `n` ≥ [`WGMMA_SMALL_M_MIN_SIZE`] (where it was
///   measured): 64-row blocks, three fragment sets, stream-K over all tiles (33). At M = 64
///   the 128-row blocks make as few blocks as there are 128-row weight tiles (32 at 4096
///   outputs, for 132 SMs), half their rows padding:
///   33 took 18.1, 23.1 and 72.9 µs against 24.1, 24.3 and 87.8 for 11 at 4096→4096,
///   4096→11008 and 8192→28672 (H100, session 8). With fewer k-steps per tile to spread
///   (2560→6912) its fix-up costs more than it saves: 21.6 µs against 17.5.
/// - Else 256 activation rows per block unless that leaves so few blocks that more waves of
///   128-row blocks finish sooner ([`WGMMA_ROWS_256_COST`]; e.g. 4096 outputs at M = 512: 64
///   blocks of 256 rows leave half of an H100 idle, and 11 took 24.9 µs against 26.6 for 20).
///   The 128-row blocks take the packed words by cp.async with the activations, 4 stages
///   ahead (11: 4-18% faster than 2 stages in flight, session 6).
/// - The 256-row blocks are the warp-specialized kernel with the activations by TMA: from
///   [`WGMMA_LARGE_M`] rows with three fragment sets (32), below with two (20). At M = 512,
///   20 took 20.1, 52.5 and 191.9 µs at 2560→6912, 4096→11008 and 8192→28672 on an H100
///   (session 16) against 25.7, 70.0 and 256.5 for the cp.async kernels chosen before (10, 11,
///   10); on an H200 (session 13) 24.0, 63.4 and 230.6 against 24.9, 69.5 and 253.7. 32 was
///   within 4% of 20 at every point at M = 512 and 2048 on both.
pub(super) fn wgmma_default_config(m: usize, n: usize, k: usize, sms: usize) -> usize {
    const ROWS_64_STREAM_K: usize = 33;
    const ROWS_128: usize = 11;
    const ROWS_256: usize = 20;
    const ROWS_256_THREE_FRAGMENT_SETS: usize = 32;
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
        ROWS_256_THREE_FRAGMENT_SETS
    } else {
        ROWS_256
    }
}

/// The wgmma configurations autotuning times above [`WGMMA_SMALL_M`] rows (besides the static
/// choice), each exact on an H100 and an H200 and chosen by the tuner at one or more benchmark
/// points there: 128-row blocks (11), warp-specialized with TMA (20) and three fragment sets
/// (32), and 20 in stream-K over all tiles (35). The tuner chose only these at M = 512 and 2048
/// on an H200 (session 13) and an H100 (session 16); 10 (256-row cp.async blocks) and 36 (32 in
/// stream-K) were timed as candidates there and never chosen, nor were 21, 42 and 43 faster
/// than these anywhere on the H100 (session 16), nor the persistent grids (39, 40) and the
/// multicast (38) on the H200.
pub(super) const WGMMA_TUNE: &[usize] = &[11, 20, 32, 35];

/// The wgmma configurations autotuning times up to [`WGMMA_SMALL_M`] rows: 64-row blocks in
/// stream-K (33) and 128-row blocks with two and three fragment sets (11, 29), the fastest at
/// M = 64 on an H100 (session 8) among those checked exact there.
pub(super) const WGMMA_TUNE_SMALL_M: &[usize] = &[33, 11, 29];

/// Most activation rows for which [`wgmma_default_config`] takes the 64-row stream-K blocks.
pub(super) const WGMMA_SMALL_M: usize = 64;

/// Fewest inputs and outputs for which [`wgmma_default_config`] takes the 64-row stream-K
/// blocks.
pub(super) const WGMMA_SMALL_M_MIN_SIZE: usize = 4096;

/// Fewest activation rows for which [`wgmma_default_config`] takes three fragment sets (32)
/// rather than two (20) for 256-row blocks.
pub(super) const WGMMA_LARGE_M: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

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
    /// (sessions 8 and 16; `wgmma_default_config`'s doc has the figures).
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
            (512, 4096, 11008, 20),
            (512, 8192, 28672, 20),
            (512, 2560, 6912, 20),
            (1023, 4096, 4096, 20),
            // The GPU check's case for 20 (`check_matmul`).
            (600, 300, 11008, 20),
            (2100, 300, 4100, 32),
            (1024, 4096, 4096, 32),
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
}
