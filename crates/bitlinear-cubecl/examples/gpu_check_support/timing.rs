//! How the timings are taken: synchronized batches after warm-up, the calls per back-to-back
//! batch, and the activation rows (M) to time.

use std::time::Instant;

use cubecl::prelude::*;

use crate::common::sync;

/// Median per-iteration microseconds of `batches` synchronized batches sized to ~`target_ms`:
/// `(wall, enqueue)`. `wall` runs from the first call of a batch to the end of its sync;
/// `enqueue` only until the last call returned (host launch cost). When `wall ≈ enqueue`, the
/// host launch path, not the kernel, bounds the figure.
pub(crate) fn time_us<R: Runtime>(
    c: &ComputeClient<R>,
    quick: bool,
    mut f: impl FnMut(usize),
) -> (f64, f64) {
    for i in 0..3 {
        f(i);
    }
    sync(c);
    let t0 = Instant::now();
    f(3);
    sync(c);
    let one = t0.elapsed().as_secs_f64().max(1e-6);
    let target = if quick { 0.01 } else { 0.03 };
    let iters = ((target / one) as usize).clamp(1, 2000);
    let batches = if quick { 5 } else { 11 };
    let mut wall = Vec::with_capacity(batches);
    let mut enqueue = Vec::with_capacity(batches);
    let mut counter = 4;
    for _ in 0..batches {
        let t = Instant::now();
        for _ in 0..iters {
            f(counter);
            counter += 1;
        }
        let e = t.elapsed().as_secs_f64();
        sync(c);
        wall.push(t.elapsed().as_secs_f64() / iters as f64 * 1e6);
        enqueue.push(e / iters as f64 * 1e6);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    (median(wall), median(enqueue))
}

/// Calls and batches of a back-to-back timing of a product that takes `us` per synchronized
/// call: ~8 ms of calls per batch, at least 16 and at most `max_calls`, over 5 batches.
pub(crate) fn gemm_b2b_calls(us: f64, max_calls: usize) -> (usize, usize) {
    let calls = (8000.0 / us.max(1.0)) as usize;
    (calls.clamp(16, max_calls.max(16)), 5)
}

/// The batch sizes to time: `GPU_CHECK_MS` (comma list, e.g. `1` for the GEMV only) or `default`.
pub(crate) fn batch_sizes(default: &[usize]) -> Vec<usize> {
    std::env::var("GPU_CHECK_MS")
        .ok()
        .and_then(|v| v.split(',').map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}
