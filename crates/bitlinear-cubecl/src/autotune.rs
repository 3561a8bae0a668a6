//! Autotuning of the hand-written GEMMs' block configuration: the first launch of a problem
//! shape times each candidate configuration on the device it runs on and keeps the fastest for
//! every later launch of that shape in the process, as Burn's `autotune` does for its float
//! matmul. Every candidate computes the same result (exact integers, the same epilogue), so a
//! tuned launch differs from an untuned one only in speed.
//!
//! Why measure instead of choosing by a model: which block shape wins depends on the waves of
//! tiles the GPU's SM count makes, on the clocks of the device (H100 or H200) and on costs the
//! H100 measurements of sessions 6 and 8 could not separate (BENCHMARKS.md); the fastest
//! configuration was 2-10% faster than the static choice at 4 of 8 benchmark points there.
//!
//! `BITLINEAR_AUTOTUNE=0` (or `off`, `false`) in the environment, or [`set_autotune`], turns it
//! off: the static choice (a model of the H100 and H200 measurements) then runs. A forced
//! configuration (the hidden overrides of benchmarks and tests) is never tuned.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use cubecl::prelude::*;

use crate::types::FloatDtype;

/// Environment variable that turns autotuning off (`0`, `off`, `false`, `no`).
pub const AUTOTUNE_ENV: &str = "BITLINEAR_AUTOTUNE";

/// 0: follow the environment; 1: on; 2: off.
static SWITCH: AtomicU8 = AtomicU8::new(0);

/// Turns autotuning on (`Some(true)`) or off (`Some(false)`) for the whole process, or back to
/// what [`AUTOTUNE_ENV`] says (`None`: on unless it says off). Off, every launch takes the
/// static choice; the choices already made stay cached and apply again once it is back on
/// ([`clear_autotune_cache`] forgets them).
pub fn set_autotune(on: Option<bool>) {
    SWITCH.store(
        match on {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        },
        Ordering::Relaxed,
    );
}

/// Whether launches take the tuned choice (timing the candidates of a shape not tuned yet).
pub fn autotune_enabled() -> bool {
    match SWITCH.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => env_allows(std::env::var(AUTOTUNE_ENV).ok().as_deref()),
    }
}

/// What the environment variable's value means: anything but an explicit "off" keeps it on.
fn env_allows(value: Option<&str>) -> bool {
    !matches!(
        value.map(|v| v.trim().to_ascii_lowercase()).as_deref(),
        Some("0" | "off" | "false" | "no")
    )
}

/// The tuned problem: which kernel family on which kind of device (its multiprocessor count:
/// two different GPUs in one process tune apart), the activation rows rounded up to a power of
/// two (a model sees batches of many sizes; neighbours share a choice, as in Burn's autotune
/// keys), the outputs and inputs exactly (a layer's shape is fixed), and the epilogue's variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TuneKey {
    pub family: &'static str,
    pub sms: u32,
    pub m_bucket: usize,
    pub n: usize,
    pub k: usize,
    /// Per-channel scales, bias, raw i32 output, output dtype: the epilogue's flags.
    pub epilogue: (bool, bool, bool, FloatDtype),
}

impl TuneKey {
    /// The key of `m` rows: `m` rounded up to a power of two.
    pub(crate) fn bucket(m: usize) -> usize {
        m.max(1).next_power_of_two()
    }
}

/// One tuned choice, for reports: the key's fields and the configuration chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct AutotuneChoice {
    /// The kernel family (`wgmma`, `mma`).
    pub family: &'static str,
    /// Activation rows, rounded up to a power of two.
    pub m_bucket: usize,
    /// Outputs.
    pub n: usize,
    /// Inputs.
    pub k: usize,
    /// The configuration chosen (the family's override numbering).
    pub config: usize,
    /// Each candidate's measured microseconds per launch (`None`: it failed to run).
    pub timings_us: Vec<(usize, Option<f64>)>,
}

fn cache() -> &'static Mutex<HashMap<TuneKey, AutotuneChoice>> {
    static CACHE: OnceLock<Mutex<HashMap<TuneKey, AutotuneChoice>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// Every choice made so far in this process, sorted by family and shape.
pub fn autotune_choices() -> Vec<AutotuneChoice> {
    let mut v: Vec<_> = cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    v.sort_by(|a, b| (a.family, a.m_bucket, a.n, a.k).cmp(&(b.family, b.m_bucket, b.n, b.k)));
    v
}

/// Forgets every tuned choice: the next launch of each shape tunes again.
pub fn clear_autotune_cache() {
    cache().lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// The cached choice for `key`, if any.
pub(crate) fn cached_choice(key: &TuneKey) -> Option<usize> {
    cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .map(|c| c.config)
}

/// The cached choice for `key`, or else the fastest of `candidates` by `measure` (microseconds
/// per launch, `None` where a candidate failed), cached. Rounds of measurements take turns
/// over the candidates and each keeps its best round, so a slow moment of the device does not
/// fall on one candidate only. Ties and failures go to the earliest candidate; if every
/// candidate fails, the first is kept (its own launch then reports the error). The cache's
/// lock is not held while measuring: the launches may take it again.
pub(crate) fn choose(
    key: TuneKey,
    candidates: &[usize],
    rounds: usize,
    mut measure: impl FnMut(usize) -> Option<f64>,
) -> usize {
    if let Some(config) = cached_choice(&key) {
        return config;
    }
    let mut unique: Vec<usize> = Vec::with_capacity(candidates.len());
    for &c in candidates {
        if !unique.contains(&c) {
            unique.push(c);
        }
    }
    let mut best: Vec<Option<f64>> = vec![None; unique.len()];
    let mut failed = vec![false; unique.len()];
    for _ in 0..rounds.max(1) {
        for (i, &c) in unique.iter().enumerate() {
            // A candidate that failed once is not run again.
            if failed[i] {
                continue;
            }
            match measure(c).filter(|t| t.is_finite() && *t >= 0.0) {
                Some(t) => best[i] = Some(best[i].map_or(t, |b: f64| b.min(t))),
                None => failed[i] = true,
            }
        }
    }
    let config = unique
        .iter()
        .zip(&best)
        .filter_map(|(&c, t)| t.map(|t| (c, t)))
        .fold(None, |acc: Option<(usize, f64)>, (c, t)| match acc {
            Some((_, bt)) if bt <= t => acc,
            _ => Some((c, t)),
        })
        .map_or_else(|| unique.first().copied().unwrap_or(0), |(c, _)| c);
    let choice = AutotuneChoice {
        family: key.family,
        m_bucket: key.m_bucket,
        n: key.n,
        k: key.k,
        config,
        timings_us: unique.iter().copied().zip(best).collect(),
    };
    cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, choice);
    config
}

/// The configuration a launch of `key` takes: `default` where autotuning is off (what was
/// tuned stays cached for later), else the cached choice, else the fastest of `default` and
/// `candidates` by `measure` now ([`choose`], two rounds).
pub(crate) fn tuned_choice(
    key: TuneKey,
    default: usize,
    candidates: &[usize],
    measure: impl FnMut(usize) -> Option<f64>,
) -> usize {
    if !autotune_enabled() {
        return default;
    }
    if let Some(config) = cached_choice(&key) {
        return config;
    }
    let mut order = vec![default];
    order.extend_from_slice(candidates);
    choose(key, &order, 2, measure)
}

/// Microseconds per call of `launch` on the device: one call to warm up (its kernel compiles on
/// the first launch), one to size a batch of about a millisecond (2-20 calls), then the batch,
/// each between device syncs. `None` if a sync reports an error (a launch that failed).
pub(crate) fn time_launches<R: Runtime>(
    client: &ComputeClient<R>,
    mut launch: impl FnMut(),
) -> Option<f64> {
    let sync = || cubecl::future::block_on(client.sync()).is_ok();
    launch();
    if !sync() {
        return None;
    }
    let t = Instant::now();
    launch();
    if !sync() {
        return None;
    }
    let one = t.elapsed().as_secs_f64();
    let reps = ((1e-3 / one.max(1e-7)) as usize).clamp(2, 20);
    let t = Instant::now();
    for _ in 0..reps {
        launch();
    }
    if !sync() {
        return None;
    }
    Some(t.elapsed().as_secs_f64() / reps as f64 * 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> TuneKey {
        TuneKey {
            family: "test",
            sms: 132,
            m_bucket: 512,
            n,
            k: 4096,
            epilogue: (true, false, false, FloatDtype::F32),
        }
    }

    #[test]
    fn picks_the_fastest_and_caches_it() {
        let times = [(10, 30.0), (11, 20.0), (32, 25.0)];
        let mut calls = 0;
        let got = choose(key(1001), &[10, 11, 32], 2, |c| {
            calls += 1;
            times.iter().find(|t| t.0 == c).map(|t| t.1)
        });
        assert_eq!(got, 11);
        assert_eq!(calls, 6, "two rounds over three candidates");
        // Cached: no measurement the second time, the same choice.
        let again = choose(key(1001), &[10, 11, 32], 2, |_| panic!("measured again"));
        assert_eq!(again, 11);
        let report = autotune_choices()
            .into_iter()
            .find(|c| c.n == 1001)
            .unwrap();
        assert_eq!(report.config, 11);
        assert_eq!(report.timings_us.len(), 3);
    }

    #[test]
    fn keeps_each_candidates_best_round() {
        // 10 is slow in round 1 only (a busy device), and then the fastest.
        let mut round = [0usize; 2];
        let got = choose(key(1002), &[10, 11], 2, |c| {
            let i = usize::from(c == 11);
            round[i] += 1;
            Some(match (c, round[i]) {
                (10, 1) => 50.0,
                (10, _) => 18.0,
                _ => 20.0,
            })
        });
        assert_eq!(got, 10);
    }

    #[test]
    fn failures_are_skipped_and_all_failing_keeps_the_first() {
        let mut runs = Vec::new();
        let got = choose(key(1003), &[10, 11, 32], 2, |c| {
            runs.push(c);
            match c {
                11 => None,
                10 => Some(f64::NAN),
                _ => Some(40.0),
            }
        });
        assert_eq!(got, 32, "NaN and failures are not timings");
        assert_eq!(
            runs,
            vec![10, 11, 32, 32],
            "a failed candidate is not run again"
        );
        let got = choose(key(1004), &[33, 11], 1, |_| None);
        assert_eq!(got, 33);
    }

    #[test]
    fn duplicate_candidates_run_once_and_ties_go_to_the_earliest() {
        let mut calls = Vec::new();
        let got = choose(key(1005), &[11, 10, 11], 1, |c| {
            calls.push(c);
            Some(20.0)
        });
        assert_eq!(calls, vec![11, 10]);
        assert_eq!(got, 11);
    }

    /// The timing on a real runtime (Wgpu; lavapipe in CI): real launches between syncs, a
    /// positive time per launch, warm-up and probe calls before a batch of 2-20.
    #[test]
    fn times_real_launches_on_wgpu() {
        use cubecl::wgpu::{WgpuDevice, WgpuRuntime};
        let client = WgpuRuntime::client(&WgpuDevice::default());
        let x: Vec<f32> = (0..4096).map(|i| (i % 17) as f32 - 8.0).collect();
        let handle = client.create_from_slice(f32::as_bytes(&x));
        let mut calls = 0;
        let t = time_launches(&client, || {
            calls += 1;
            crate::quantize_activations(
                &client,
                &handle,
                4,
                1024,
                crate::ActivationGranularity::PerToken,
                1e-6,
            )
            .expect("a valid quantization");
        });
        let t = t.expect("the syncs succeed");
        assert!(t > 0.0 && t.is_finite(), "{t}");
        assert!((4..=22).contains(&calls), "{calls} calls");
    }

    /// The only test that sets the process-wide switch (the others call `choose` directly).
    #[test]
    fn off_takes_the_static_choice_even_once_tuned() {
        let times = |c: usize| Some(if c == 35 { 10.0 } else { 30.0 });
        set_autotune(Some(false));
        assert_eq!(tuned_choice(key(1006), 32, &[10, 35], times), 32);
        assert!(
            cached_choice(&key(1006)).is_none(),
            "nothing tuned while off"
        );
        set_autotune(Some(true));
        assert_eq!(tuned_choice(key(1006), 32, &[10, 35], times), 35);
        set_autotune(Some(false));
        assert_eq!(tuned_choice(key(1006), 32, &[10, 35], times), 32);
        set_autotune(Some(true));
        let cached = tuned_choice(key(1006), 32, &[10, 35], |_| panic!("measured again"));
        assert_eq!(cached, 35);
        set_autotune(None);
    }

    #[test]
    fn buckets_are_powers_of_two() {
        assert_eq!(TuneKey::bucket(0), 1);
        assert_eq!(TuneKey::bucket(1), 1);
        assert_eq!(TuneKey::bucket(513), 1024);
        assert_eq!(TuneKey::bucket(2048), 2048);
    }

    #[test]
    fn the_environment_turns_it_off_only_explicitly() {
        for off in ["0", "off", "OFF", "false", " no "] {
            assert!(!env_allows(Some(off)), "{off}");
        }
        for on in [None, Some("1"), Some("on"), Some("")] {
            assert!(env_allows(on), "{on:?}");
        }
    }
}
