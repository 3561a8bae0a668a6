//! Median wall-clock timing with warm-up.

use std::time::Instant;

/// Runs `f(i)` for warm-up, then until `min_time` seconds (at least 10, at most 100 000 calls),
/// and returns the median duration in microseconds. `i` counts calls, for rotating inputs.
pub fn median_us(min_time: f64, mut f: impl FnMut(usize)) -> f64 {
    let mut i = 0;
    let warm = Instant::now();
    while i < 3 || (warm.elapsed().as_secs_f64() < min_time * 0.1 && i < 1000) {
        f(i);
        i += 1;
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    while samples.len() < 10
        || (start.elapsed().as_secs_f64() < min_time && samples.len() < 100_000)
    {
        let t = Instant::now();
        f(i);
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        i += 1;
    }
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[samples.len() / 2]
}
