//! The implementations being timed and the JSON they print.

use std::hint::black_box;

use bitlinear_core::{linear_into, Kernel, LinearOptions, PackedTernary, WeightGranularity};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::cli::{Args, Cache};
use crate::timing::median_us;

/// Bytes of distinct weights a cold run rotates over, so no copy stays in the 32 MiB L3. It was
/// 128 MiB until session 3: with the copies in one huge-page arena (`--weights arena`) part of
/// each 4 MB copy then still hit in the L3 (4096→4096 ran at 64 GB/s, twice the DRAM rate), so
/// the rotation is now 32× the L3.
const COLD_BYTES: usize = 1024 << 20;

/// How many distinct weight copies a case rotates over (see [`Cache`]).
pub(crate) fn copies(args: &Args, bytes_per_copy: usize) -> usize {
    match args.cache {
        Cache::Hot => 1,
        Cache::Cold => COLD_BYTES.div_ceil(bytes_per_copy).max(2),
    }
}

fn cache_name(c: Cache) -> &'static str {
    match c {
        Cache::Cold => "cold",
        Cache::Hot => "hot",
    }
}

/// Prints one result line. `gops` counts `2·m·k·n` operations per call for `op = "linear"` and
/// `6·m·k·n` for `op = "train-step"` (forward, `dx` and `dW` products).
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit(
    op: &str,
    imp: &str,
    m: usize,
    k: usize,
    n: usize,
    args: &Args,
    us: f64,
    extra: &str,
) {
    let products = if op == "train-step" { 3.0 } else { 1.0 };
    let gops = products * 2.0 * (m * k * n) as f64 / us / 1e3;
    println!(
        "{{\"op\":\"{op}\",\"impl\":\"{imp}\",\"m\":{m},\"k\":{k},\"n\":{n},\"threads\":{},\"cache\":\"{}\",\"median_us\":{us:.2},\"gops\":{gops:.1}{extra}}}",
        args.threads,
        cache_name(args.cache)
    );
}

/// Runs every requested implementation on every shape.
pub fn run_all(args: &Args) {
    let mut rng = StdRng::seed_from_u64(42);
    if args.impls.iter().any(|i| i == "membw") {
        membw(args);
    }
    if args.impls.iter().any(|i| i == "int8-peak") {
        crate::peak::int8_peak(args.threads);
    }
    if args.impls.iter().any(|i| i == "memory") {
        crate::memory::memory(args);
        // Memory needs no timing: skip the shape loop when nothing else was asked for.
        if args.impls.len() == 1 {
            return;
        }
    }
    for &k in &args.k {
        for &n in &args.n {
            let w: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            for &m in &args.m {
                let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
                let mut base_us = None;
                let mut core_us = None;
                // Baseline first so every other line can carry its ratio.
                if args.impls.iter().any(|i| i == "f32-matmul") {
                    let us = f32_matmul(args, &x, &w, m, k, n);
                    emit("linear", "f32-matmul", m, k, n, args, us, "");
                    base_us = Some(us);
                }
                for imp in &args.impls {
                    if let Some(kname) = imp.strip_prefix("bitlinear-") {
                        let kernel: Kernel = match kname.parse::<Kernel>() {
                            Ok(k) if k.is_supported() => k,
                            _ => {
                                eprintln!("skipping {imp}: not supported on this CPU");
                                continue;
                            }
                        };
                        let (us, packed_bytes) = bitlinear(args, kernel, &x, &w, m, k, n);
                        core_us = Some(us);
                        let gbps = packed_bytes as f64 / us / 1e3;
                        let ratio = base_us
                            .map(|b| format!(",\"speedup_vs_f32\":{:.2}", b / us))
                            .unwrap_or_default();
                        let arena = if args.arena {
                            ",\"weights\":\"arena\""
                        } else {
                            ""
                        };
                        let extra = format!(
                            ",\"packed_bytes\":{packed_bytes},\"weight_gbps\":{gbps:.1}{ratio}{arena}"
                        );
                        emit("linear", imp, m, k, n, args, us, &extra);
                    } else if !["f32-matmul", "membw", "int8-peak", "memory"]
                        .contains(&imp.as_str())
                        && !crate::burn_impls::IMPLS.contains(&imp.as_str())
                    {
                        eprintln!("skipping unknown impl `{imp}`");
                    }
                }
                crate::burn_impls::run_case(args, &x, &w, m, k, n, core_us);
            }
        }
    }
}

fn bitlinear(
    args: &Args,
    kernel: Kernel,
    x: &[f32],
    w: &[f32],
    m: usize,
    k: usize,
    n: usize,
) -> (f64, usize) {
    let base =
        PackedTernary::quantize(w, n, k, WeightGranularity::PerTensor, 1e-6).expect("quantize");
    let bytes = base.total_bytes();
    let copies: Vec<PackedTernary> = (0..copies(args, bytes))
        .map(|c| distinct_copy(&base, c))
        .collect();
    let ws = if args.arena {
        // All copies in one huge-page arena, as a deployed model would hold its layers.
        bitlinear_core::colocate(&copies.iter().collect::<Vec<_>>()).expect("arena")
    } else {
        copies
    };
    let opts = LinearOptions {
        kernel: Some(kernel),
        ..Default::default()
    };
    let mut out = vec![0f32; m * n];
    let us = median_us(args.min_time, |i| {
        linear_into(black_box(x), m, &ws[i % ws.len()], None, &opts, &mut out).expect("linear");
        black_box(&out);
    });
    (us, bytes)
}

/// Copy `c` of `base` with the weights of a pseudo-random half of its 64-byte blocks negated
/// (codes 0 ↔ 2 in every field: `0xAAAAAAAA − word`, padding codes unchanged). Identical copies
/// let the machine serve one physical copy for all of them (pages deduplicated below the
/// guest, seen here: separate identical copies of 8192→28672 streamed at 54 GB/s against a
/// 32 GB/s read bandwidth), which a cold run must not allow. Same cost per call.
fn distinct_copy(base: &PackedTernary, c: usize) -> PackedTernary {
    let mut words = base.to_u32_words();
    for (b, block) in words.chunks_mut(16).enumerate() {
        let h = (b as u64 ^ ((c as u64) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        if (h >> 63) == 1 {
            for w in block {
                *w = 0xAAAA_AAAA - *w;
            }
        }
    }
    PackedTernary::from_u32_words(
        base.n(),
        base.k(),
        base.granularity(),
        base.scales().to_vec(),
        &words,
    )
    .expect("negated codes stay valid")
}

fn f32_matmul(args: &Args, x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> f64 {
    // w is [n, k] row-major; y = x · wᵀ. The `gemm` crate (faer's kernels) has fast GEMV and
    // GEMM paths and runs on rayon with the same thread count as bitlinear.
    // Distinct copies (one element per 4 KiB page negated per copy), for the reason given at
    // `distinct_copy`.
    let ws: Vec<Vec<f32>> = (0..copies(args, n * k * 4))
        .map(|c| {
            let mut v = w.to_vec();
            for i in (c % 1024..v.len()).step_by(1024) {
                v[i] = -v[i];
            }
            v
        })
        .collect();
    let mut out = vec![0f32; m * n];
    median_us(args.min_time, |i| {
        let wi = &ws[i % ws.len()];
        // SAFETY: dst is m×n (row stride n), lhs m×k (row stride k), rhs k×n read as the
        // transpose of the [n, k] weight (column stride k, row stride 1).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                wi.as_ptr(),
                k as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(args.threads),
            );
        }
        black_box(&out);
    })
}

/// Streaming read bandwidth over 512 MiB with the configured threads: the GEMV floor.
fn membw(args: &Args) {
    use rayon::prelude::*;
    let words = (512usize << 20) / 8;
    let buf: Vec<u64> = (0..words as u64).collect();
    let us = median_us(args.min_time.max(0.5), |_| {
        // One contiguous stream per thread (as the GEMV's row-group tasks read), folded with
        // 8 independent lanes so the loop vectorizes and never waits on an add chain.
        let per_thread = words.div_ceil(args.threads);
        let s: u64 = buf
            .par_chunks(per_thread)
            .map(|c| {
                let mut acc = [0u64; 8];
                for v in c.chunks_exact(8) {
                    for (a, &x) in acc.iter_mut().zip(v) {
                        *a ^= x;
                    }
                }
                acc.iter().fold(0, |a, &b| a ^ b)
            })
            .reduce(|| 0, |a, b| a ^ b);
        black_box(s);
    });
    let gbps = (words * 8) as f64 / us / 1e3;
    println!(
        "{{\"op\":\"membw\",\"impl\":\"read\",\"bytes\":{},\"threads\":{},\"median_us\":{us:.1},\"gbps\":{gbps:.1}}}",
        words * 8,
        args.threads
    );
}
