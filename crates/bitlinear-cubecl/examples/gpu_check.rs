//! CUDA check: correctness of every kernel (including the forced tensor-core path) against the
//! CPU reference, then timings as JSON lines. Build with
//! `cargo build --release -p bitlinear-cubecl --features cuda --example gpu_check`;
//! run through `scripts/gpu-check.sh` on the GPU machine.
//!
//! Output: one JSON object per line. `{"op":"check",...}` lines carry `"ok"`; timing lines carry
//! `median_us` (median over batches of the per-iteration time of a synchronized batch).
//! Environment: `GPU_CHECK_QUICK=1` shortens the timings; `GPU_CHECK_SKIP_BENCH=1` skips them;
//! `GPU_CHECK_WGPU=1` runs on Wgpu instead of CUDA and `GPU_CHECK_TINY=1` uses tiny benchmark
//! sizes (both to validate the harness on lavapipe). `GPU_CHECK_PROFILE=1` (with
//! `GPU_CHECK_SKIP_CHECKS=1`) launches each variant twice with labels, for `ncu`.
//! Timed variants: the hand-written CUDA kernels against the default CubeCL ones
//! (`GPU_CHECK_NO_DP4A=1` / `GPU_CHECK_NO_MMA=1` leave the hand-written ones out);
//! `GPU_CHECK_ALL_VARIANTS=1` adds the CubeCL tuning variants compared in session 2;
//! `GPU_CHECK_SHAPES=4096x4096,8192x4096` (K x N) replaces the benchmark shapes of the timings;
//! `GPU_CHECK_READ_SWEEP=1` adds read floors with 1, 2, 8 and 16 vectors per unit;
//! `GPU_CHECK_ABLATE=1` adds wgmma configurations 32 and 11 leaving out their copies, wgmma
//! or decode (`wgmma_ablation_override`: wrong outputs, timed only) to show which one bounds
//! them. `GPU_CHECK_NO_BF16=1` leaves out the wgmma configurations' bf16-output variants.
//! The wgmma `Auto` lines (`wgmma`, `wgmma-bf16`) are autotuned (`GPU_CHECK_NO_AUTOTUNE=1`: not),
//! `wgmma-static` ones run the static choice; `"op":"autotune"` lines give each tuned shape's
//! choice and its candidates' times. Everything else runs with autotuning off.
//! Timing lines also carry `enqueue_us`, the host time to issue one call (no sync): where it is
//! close to `median_us` the figure is bound by CubeCL's launch path, not by the kernel; the
//! device-side kernel time then comes from the `ncu` step of scripts/gpu-check.sh. Every timing
//! line also carries `b2b_us`: the per-call time of calls run back to back, queued behind a
//! spin kernel (`gpu_check_support/back_to_back.rs`; for M ≤ 16 with `"op":"read_floor"` lines
//! giving the same for a read-only kernel over the packed bytes, above with `b2b_tops`);
//! `GPU_CHECK_NO_B2B=1` leaves it out.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "gpu_check_support/back_to_back.rs"]
mod back_to_back;

use std::time::Instant;

use back_to_back::BackToBack;
use bitlinear_cubecl::*;
use cubecl::cuda::{CudaDevice, CudaRuntime};
use cubecl::prelude::*;
use cubecl::server::Handle;
use support::Gran;

const EPS: f32 = DEFAULT_EPS;

/// Small deterministic generator (xorshift64*), so the binary needs no RNG crate.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform() * scale).collect()
    }
    fn ternary(&mut self, len: usize) -> Vec<i8> {
        (0..len).map(|_| (self.next_u64() % 3) as i8 - 1).collect()
    }
}

fn upload_f32<R: Runtime>(c: &ComputeClient<R>, v: &[f32]) -> Handle {
    c.create_from_slice(f32::as_bytes(v))
}
fn read_f32<R: Runtime>(c: &ComputeClient<R>, h: Handle) -> Vec<f32> {
    f32::from_bytes(&c.read_one(h).unwrap()).to_vec()
}
fn read_i32<R: Runtime>(c: &ComputeClient<R>, h: Handle) -> Vec<i32> {
    i32::from_bytes(&c.read_one(h).unwrap()).to_vec()
}
fn read_u32<R: Runtime>(c: &ComputeClient<R>, h: Handle) -> Vec<u32> {
    u32::from_bytes(&c.read_one(h).unwrap()).to_vec()
}
fn sync<R: Runtime>(c: &ComputeClient<R>) {
    cubecl::future::block_on(c.sync()).expect("device sync failed");
}
fn to_api(g: Gran) -> WeightGranularity {
    match g {
        Gran::Tensor => WeightGranularity::PerTensor,
        Gran::Channel => WeightGranularity::PerChannel,
        Gran::Group(s) => WeightGranularity::PerGroup(s),
    }
}

fn report(name: &str, result: std::result::Result<(), String>) -> bool {
    match &result {
        Ok(()) => println!(r#"{{"op":"check","name":"{name}","ok":true}}"#),
        Err(e) => println!(
            r#"{{"op":"check","name":"{name}","ok":false,"detail":"{}"}}"#,
            e.replace('"', "'")
        ),
    }
    result.is_ok()
}

fn activation_codes<R: Runtime>(c: &ComputeClient<R>, acts: &QuantizedActivations) -> Vec<i8> {
    let words = read_u32(c, acts.codes.clone());
    let wpr = acts.words_per_row();
    let mut out = vec![0i8; acts.m * acts.k];
    for r in 0..acts.m {
        for kk in 0..acts.k {
            out[r * acts.k + kk] = words[r * wpr + kk / 4].to_le_bytes()[kk % 4] as i8;
        }
    }
    out
}

fn check_activations<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
    for &(m, k) in &[(1, 1), (3, 15), (16, 17), (33, 100), (130, 300), (7, 4096)] {
        for per_tensor in [false, true] {
            let x = rng.vec(m * k, 3.0);
            let g = if per_tensor {
                ActivationGranularity::PerTensor
            } else {
                ActivationGranularity::PerToken
            };
            let acts = quantize_activations(c, &upload_f32(c, &x), m, k, g, EPS)
                .map_err(|e| e.to_string())?;
            let (codes, scales) = support::quantize_acts(&x, m, k, per_tensor, EPS);
            if read_f32(c, acts.scales.clone()) != scales {
                return Err(format!("scales differ m={m} k={k} pt={per_tensor}"));
            }
            if activation_codes(c, &acts) != codes {
                return Err(format!("codes differ m={m} k={k} pt={per_tensor}"));
            }
        }
    }
    Ok(())
}

fn check_packing<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
    for &(k, n) in &[(1, 1), (15, 7), (17, 33), (300, 65), (1000, 130)] {
        for gran in [Gran::Tensor, Gran::Channel, Gran::Group(32)] {
            let w_nk = rng.vec(n * k, 0.05);
            let w_kn: Vec<f32> = (0..k * n).map(|i| w_nk[(i % n) * k + i / n]).collect();
            let pw = pack_weights(
                c,
                &upload_f32(c, &w_kn),
                k,
                n,
                WeightLayout::InputMajor,
                to_api(gran),
                EPS,
            )
            .map_err(|e| e.to_string())?;
            let s = read_f32(c, pw.scales.clone());
            let want_s = support::absmean_scales(&w_nk, n, k, gran, EPS);
            if s.iter().zip(&want_s).any(|(a, b)| (a - b).abs() > 1e-5 * b) {
                return Err(format!("scales differ k={k} n={n} {gran:?}"));
            }
            let t = support::ternarize(&w_nk, n, k, gran, &s);
            if read_u32(c, pw.packed.clone()) != support::pack(&t, n, k) {
                return Err(format!("packed words differ k={k} n={n} {gran:?}"));
            }
        }
    }
    Ok(())
}

fn random_packed<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
    n: usize,
    k: usize,
    gran: Gran,
) -> (Vec<i8>, Vec<f32>, PackedWeights) {
    let t = rng.ternary(n * k);
    let sw: Vec<f32> = (0..gran.count(n, k))
        .map(|_| 0.01 + 0.1 * rng.uniform().abs())
        .collect();
    let packed = c.create_from_slice(u32::as_bytes(&support::pack(&t, n, k)));
    let w = PackedWeights::from_handles(packed, upload_f32(c, &sw), k, n, to_api(gran)).unwrap();
    (t, sw, w)
}

#[allow(clippy::needless_range_loop)]
/// f16 and bf16 layers (`ternary_linear_as`) on every path that runs here: each output must be
/// the f32 layer's output on the same values rounded once to that type, bit for bit.
fn check_half_outputs<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
    // The hand-written CUDA kernels first: the CubeCL paths' f16 outputs are also checked on
    // lavapipe, theirs only here, and a run cut short by its time limit should have done them.
    // Each path with its wgmma configuration (0: `Auto`'s); stream-K (24, 26) stores its
    // shared tiles through its own code, so it is checked besides the default.
    let mut paths = vec![];
    if wgmma_available(c) {
        paths.extend([0, 24, 26].map(|config| (MatmulPath::WgmmaGemm, config)));
    }
    if raw_cuda_available(c) {
        paths.extend([(MatmulPath::Dp4aGemv, 0), (MatmulPath::MmaGemm, 0)]);
    }
    paths.extend([(MatmulPath::Gemv, 0), (MatmulPath::TiledGemm, 0)]);
    if cmma_available(c) {
        paths.push((MatmulPath::CmmaGemm, 0));
    }
    for dtype in [FloatDtype::F16, FloatDtype::BF16] {
        if !dtype.supported(c) {
            return Err(format!("{dtype:?} is not supported on this device"));
        }
    }
    for &(path, config) in &paths {
        wgmma_gemm_config_override(config);
        for dtype in [FloatDtype::F16, FloatDtype::BF16] {
            let narrow = |v: f32| -> (u16, f32) {
                match dtype {
                    FloatDtype::F16 => {
                        let h = half::f16::from_f32(v);
                        (h.to_bits(), h.to_f32())
                    }
                    _ => {
                        let h = half::bf16::from_f32(v);
                        (h.to_bits(), h.to_f32())
                    }
                }
            };
            let ms: &[usize] = if matches!(path, MatmulPath::Gemv | MatmulPath::Dp4aGemv) {
                &[1, 2, 5, 16]
            } else {
                &[17, 130, 257]
            };
            for &m in ms {
                for (k, n, gran) in [(100, 33, Gran::Channel), (1040, 200, Gran::Tensor)] {
                    // Inputs and bias representable in `dtype`: the f32 layer sees the same values.
                    let x: Vec<f32> = rng
                        .vec(m * k, 2.0)
                        .into_iter()
                        .map(|v| narrow(v).1)
                        .collect();
                    let bias: Vec<f32> = rng.vec(n, 0.5).into_iter().map(|v| narrow(v).1).collect();
                    let bits = |v: &[f32]| -> Vec<u16> { v.iter().map(|&x| narrow(x).0).collect() };
                    let (_, _, w) = random_packed(c, rng, n, k, gran);
                    let ag = ActivationGranularity::PerToken;
                    let y32 = ternary_linear(
                        c,
                        &upload_f32(c, &x),
                        m,
                        k,
                        &w,
                        Some(&upload_f32(c, &bias)),
                        ag,
                        EPS,
                        path,
                    )
                    .map_err(|e| e.to_string())?;
                    let yh = ternary_linear_as(
                        c,
                        &c.create_from_slice(u16::as_bytes(&bits(&x))),
                        m,
                        k,
                        &w,
                        Some(&c.create_from_slice(u16::as_bytes(&bits(&bias)))),
                        ag,
                        EPS,
                        path,
                        dtype,
                    )
                    .map_err(|e| e.to_string())?;
                    let want = bits(&read_f32(c, y32));
                    let got = u16::from_bytes(&c.read_one(yh).unwrap()).to_vec();
                    if got != want {
                        let i = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
                        return Err(format!(
                            "{dtype:?} {path:?} (wgmma config {config}) m={m} k={k} n={n}: \
                             element {i} bits {:#06x}, want {:#06x} (of {} elements)",
                            got.get(i).copied().unwrap_or(0),
                            want.get(i).copied().unwrap_or(0),
                            want.len()
                        ));
                    }
                }
            }
            // Progress, one line per path: this check compiles some 50 kernels, so a run cut
            // short by its time limit still says which paths were exact.
            println!(
                r#"{{"op":"progress","check":"half_outputs","dtype":"{dtype:?}","path":"{path:?}","wgmma_config":{config},"ok":true}}"#
            );
        }
    }
    Ok(())
}

fn check_matmul<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
    path: MatmulPath,
) -> std::result::Result<(), String> {
    let ms: &[usize] = if path == MatmulPath::Gemv {
        &[1, 2, 3, 4, 16]
    } else if path == MatmulPath::GemvPlane {
        &[1, 3, 16]
    } else if path == MatmulPath::Dp4aGemv {
        &[1, 2, 3, 5, 8, 9, 16]
    } else if path == MatmulPath::WgmmaGemm {
        // Also whole 64/128/256-row blocks.
        &[1, 3, 16, 33, 64, 130, 256, 257]
    } else {
        &[1, 3, 16, 33, 130, 257]
    };
    // The hand-written kernels also on a K that takes several steps of every loop (257 k-blocks).
    let ks: &[usize] = if matches!(
        path,
        MatmulPath::Dp4aGemv | MatmulPath::MmaGemm | MatmulPath::WgmmaGemm
    ) {
        &[1, 15, 17, 100, 300, 1040, 4100]
    } else {
        &[1, 15, 17, 100, 300, 1040]
    };
    let mut cases: Vec<(usize, usize, usize)> = vec![];
    for &m in ms {
        for &k in ks {
            for &n in &[1usize, 7, 33, 65, 200] {
                cases.push((m, k, n));
            }
        }
    }
    if path == MatmulPath::WgmmaGemm {
        // More than two waves of 128 x 256 tiles on an H100's 132 SMs (297): stream-K's whole
        // tiles and its shared ones in one launch; by default the warp-specialized kernel (32).
        cases.push((2100, 300, 4100));
        // The default's small-M choice (33: M <= 64, K and N >= 4096).
        cases.push((48, 4100, 4100));
    }
    check_cases(c, rng, path, &cases, |case| Gran::ALL[case % 5])
}

/// [`check_matmul`]'s comparisons on the given `(m, k, n)` cases: the i32 accumulators exact,
/// the f32 outputs (with bias; the weight granularity `gran(case)` of the 1-based case, the
/// activation scales varying by case) to rounding, against the CPU reference.
fn check_cases<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
    path: MatmulPath,
    cases: &[(usize, usize, usize)],
    gran: impl Fn(usize) -> Gran,
) -> std::result::Result<(), String> {
    for (case, &(m, k, n)) in cases.iter().enumerate() {
        let case = case + 1;
        let gran = gran(case);
        let per_tensor = case % 3 == 0;
        let x = rng.vec(m * k, 1.5);
        let xh = upload_f32(c, &x);
        let (t, sw, w) = random_packed(c, rng, n, k, gran);
        let bias = rng.vec(n, 0.5);
        let ag = if per_tensor {
            ActivationGranularity::PerTensor
        } else {
            ActivationGranularity::PerToken
        };
        let acts = quantize_activations(c, &xh, m, k, ag, EPS).map_err(|e| e.to_string())?;
        let (xq, sx) = support::quantize_acts(&x, m, k, per_tensor, EPS);
        let acc = read_i32(
            c,
            ternary_matmul_i32(c, &acts, &w, path).map_err(|e| e.to_string())?,
        );
        let want: Vec<i32> = (0..m * n)
            .map(|i| support::acc_range(&xq, &t, k, i / n, i % n, 0, k))
            .collect();
        if acc != want {
            return Err(format!(
                "i32 accumulator differs m={m} k={k} n={n}: {}",
                mismatches(&acc, &want, n)
            ));
        }
        let bh = upload_f32(c, &bias);
        let y = read_f32(
            c,
            ternary_matmul(c, &acts, &w, Some(&bh), path).map_err(|e| e.to_string())?,
        );
        let (want, mag) = support::linear(&xq, &sx, &t, &sw, Some(&bias), m, n, k, gran);
        for i in 0..m * n {
            if (y[i] - want[i]).abs() > 2e-5 * mag[i] + 1e-6 {
                return Err(format!(
                    "output differs m={m} k={k} n={n} {gran:?} at {i}: {} vs {}",
                    y[i], want[i]
                ));
            }
        }
    }
    Ok(())
}

/// The wgmma GEMM with autotuning on (`Auto`'s choice timed among its candidates on the first
/// launch of each shape): the tuned launches exact, as [`check_matmul`] requires, and a choice
/// recorded for each tuned shape (printed as `"op":"autotune"` lines). Two shapes, one above
/// and one within the small-M candidates, so each candidate compiles for two epilogues at most.
fn check_autotuned<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
    clear_autotune_cache();
    set_autotune(Some(true));
    const CASES: [(usize, usize, usize); 2] = [(2100, 300, 4100), (48, 4100, 4100)];
    // Per-channel and per-tensor scales (per-group ones never reach the wgmma kernel).
    let r = check_cases(c, rng, MatmulPath::WgmmaGemm, &CASES, |case| {
        Gran::ALL[case % 2]
    });
    set_autotune(Some(false));
    r?;
    let choices = autotune_choices();
    print_autotune_choices();
    for (m, k, n) in CASES {
        let tuned = choices
            .iter()
            .filter(|t| t.family == "wgmma" && t.n == n && t.k == k.next_multiple_of(16))
            .filter(|t| t.m_bucket == m.next_power_of_two())
            .count();
        // The i32 and the f32 launch of the case: two epilogues, two tuned keys.
        if tuned != 2 {
            return Err(format!(
                "{tuned} tuned choices for m={m} k={k} n={n}, want 2"
            ));
        }
    }
    Ok(())
}

/// One `"op":"autotune"` line per tuned shape: the configuration chosen and every candidate's
/// time per launch.
fn print_autotune_choices() {
    for t in autotune_choices() {
        let times: Vec<String> = t
            .timings_us
            .iter()
            .map(|(c, us)| match us {
                Some(us) => format!(r#""{c}":{us:.2}"#),
                None => format!(r#""{c}":null"#),
            })
            .collect();
        println!(
            r#"{{"op":"autotune","family":"{}","m_bucket":{},"n":{},"k":{},"config":{},"timings_us":{{{}}}}}"#,
            t.family,
            t.m_bucket,
            t.n,
            t.k,
            t.config,
            times.join(",")
        );
    }
}

/// How many of `got` differ from `want` (`[M, N]`), with the first few as `(m, n) got/want`: what
/// a layout bug needs to be located from one run.
fn mismatches(got: &[i32], want: &[i32], n: usize) -> String {
    let bad: Vec<usize> = (0..want.len())
        .filter(|&i| got.get(i) != Some(&want[i]))
        .collect();
    let first: Vec<String> = bad
        .iter()
        .take(6)
        .map(|&i| {
            format!(
                "({},{}) {}/{}",
                i / n,
                i % n,
                got.get(i).copied().unwrap_or(0),
                want[i]
            )
        })
        .collect();
    format!(
        "{} of {} differ, first: {}",
        bad.len(),
        want.len(),
        first.join(" ")
    )
}

/// Probes of the wgmma GEMM's layout on shapes that isolate one loop each (one k-step of 32, one
/// 128-wide stage, several stages, then partial blocks), raw i32 output, reported one line each
/// whatever the outcome: a failing run then says where the layout breaks.
fn probe_wgmma<R: Runtime>(c: &ComputeClient<R>, rng: &mut Rng) -> std::result::Result<(), String> {
    let mut all_ok = true;
    for (m, k, n) in [
        (64, 32, 64),
        (64, 128, 64),
        (64, 256, 128),
        (128, 1024, 128),
        (256, 512, 128),
        (130, 300, 200),
    ] {
        let x = rng.vec(m * k, 1.5);
        let xh = upload_f32(c, &x);
        let (t, _, w) = random_packed(c, rng, n, k, Gran::Tensor);
        let acts = quantize_activations(c, &xh, m, k, ActivationGranularity::PerToken, EPS)
            .map_err(|e| e.to_string())?;
        let (xq, _) = support::quantize_acts(&x, m, k, false, EPS);
        let got = read_i32(
            c,
            ternary_matmul_i32(c, &acts, &w, MatmulPath::WgmmaGemm).map_err(|e| e.to_string())?,
        );
        let want: Vec<i32> = (0..m * n)
            .map(|i| support::acc_range(&xq, &t, k, i / n, i % n, 0, k))
            .collect();
        let ok = got == want;
        all_ok &= ok;
        println!(
            r#"{{"op":"probe","what":"wgmma","m":{m},"k":{k},"n":{n},"ok":{ok},"detail":"{}"}}"#,
            mismatches(&got, &want, n)
        );
    }
    if all_ok {
        Ok(())
    } else {
        Err("see the probe lines".into())
    }
}

/// The fused quantize + dp4a GEMV of `ternary_linear` (one launch), default configuration: see
/// [`check_fused_linear_cases`].
fn check_fused_linear<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
    let (ms, ks, ns) = (
        &[1usize, 2, 3, 8, 9, 16][..],
        &[1usize, 15, 17, 100, 300, 1040, 4100][..],
        &[1usize, 7, 33, 200][..],
    );
    check_fused_linear_cases(c, rng, ms, ks, ns)
}

/// The fused layer with two and four tiles per block (GEMV configurations 8, 9), then 1 and 9
/// with the bounds on M and K lifted (`fused_linear_widen`: up to 16 rows, as many inputs as
/// shared memory holds), on fewer cases than [`check_fused_linear`] (each K is a kernel of its
/// own: NVRTC's compiles must fit the check's time limit). Its own check, so that a failure here
/// keeps only these out of the timings (`GPU_CHECK_NO_FUSED_CONFIGS`).
fn check_fused_linear_configs<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
    let (ms, ks, ns) = (
        &[1usize, 2, 3, 9][..],
        &[15usize, 100, 1040, 4100][..],
        &[7usize, 200][..],
    );
    [(8, false), (9, false), (0, true), (9, true)]
        .into_iter()
        .try_for_each(|(config, wide)| {
            dp4a_gemv_config_override(config);
            fused_linear_widen(wide);
            let r = check_fused_linear_cases(c, rng, ms, ks, ns)
                .map_err(|e| format!("config {config}, widened {wide}: {e}"));
            fused_linear_widen(false);
            dp4a_gemv_config_override(0);
            r
        })
}

/// The fused layer in the GEMV configuration set now, on every `(m, k, n)` of the lists: against
/// the CPU reference, and bit for bit against the two-launch path (quantize, then the same
/// GEMV); a row holding NaN gives a NaN row and leaves the other rows exact. Per-group weights
/// go through the fallback.
#[allow(clippy::needless_range_loop)]
fn check_fused_linear_cases<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
    ms: &[usize],
    ks: &[usize],
    ns: &[usize],
) -> std::result::Result<(), String> {
    let mut case = 0;
    for &m in ms {
        for &k in ks {
            for &n in ns {
                case += 1;
                let gran = [Gran::Tensor, Gran::Channel, Gran::Group(32)][case % 3];
                let mut x = rng.vec(m * k, 1.5);
                // Every fifth case: one row holds a NaN.
                let nan_row = (case % 5 == 0 && m > 1).then_some(m / 2);
                if let Some(r) = nan_row {
                    x[r * k + k / 2] = f32::NAN;
                }
                let xh = upload_f32(c, &x);
                let (t, sw, w) = random_packed(c, rng, n, k, gran);
                let bias = rng.vec(n, 0.5);
                let bh = upload_f32(c, &bias);
                let b = (case % 2 == 0).then_some(&bh);
                let run = |off: bool| {
                    fused_linear_off(off);
                    let y = ternary_linear(
                        c,
                        &xh,
                        m,
                        k,
                        &w,
                        b,
                        ActivationGranularity::PerToken,
                        EPS,
                        MatmulPath::Dp4aGemv,
                    );
                    fused_linear_off(false);
                    y.map(|h| read_f32(c, h)).map_err(|e| e.to_string())
                };
                let fused = run(false)?;
                let two = run(true)?;
                let (xq, sx) = support::quantize_acts(&x, m, k, false, EPS);
                let bias_ref = (case % 2 == 0).then_some(&bias[..]);
                let (want, mag) = support::linear(&xq, &sx, &t, &sw, bias_ref, m, n, k, gran);
                for i in 0..m * n {
                    let ctx = format!("m={m} k={k} n={n} {gran:?} at {i}");
                    if Some(i / n) == nan_row {
                        if !fused[i].is_nan() {
                            return Err(format!("NaN row not NaN {ctx}: {}", fused[i]));
                        }
                        continue;
                    }
                    if fused[i].to_bits() != two[i].to_bits() {
                        return Err(format!(
                            "fused {} vs two launches {} {ctx}",
                            fused[i], two[i]
                        ));
                    }
                    if (fused[i] - want[i]).abs() > 2e-5 * mag[i] + 1e-6 {
                        return Err(format!(
                            "output {} vs reference {} {ctx}",
                            fused[i], want[i]
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

fn check_grad_input<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
    for &(m, k, n) in &[(1, 1, 1), (3, 17, 7), (33, 300, 65), (130, 100, 200)] {
        for gran in [Gran::Tensor, Gran::Group(32)] {
            let (t, sw, w) = random_packed(c, rng, n, k, gran);
            let dy = rng.vec(m * n, 1.0);
            let dx = read_f32(
                c,
                ternary_grad_input(c, &upload_f32(c, &dy), m, &w).map_err(|e| e.to_string())?,
            );
            for mm in 0..m {
                for kk in 0..k {
                    let (mut want, mut mag) = (0f64, 0f64);
                    for nn in 0..n {
                        let term = dy[mm * n + nn] as f64
                            * t[nn * k + kk] as f64
                            * sw[gran.index(nn, kk, k)] as f64;
                        want += term;
                        mag += term.abs();
                    }
                    if (dx[mm * k + kk] as f64 - want).abs() > 1e-5 * mag + 1e-7 {
                        return Err(format!(
                            "dx differs m={m} k={k} n={n} {gran:?} at [{mm},{kk}]"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Large-buffer copy, 16 bytes per unit, for the device's practical bandwidth.
#[cube(launch_unchecked)]
fn copy_kernel<NV: Size>(
    input: &Array<Vector<u32, NV>>,
    output: &mut Array<Vector<u32, NV>>,
    len: usize,
) {
    let pos = (CUBE_POS_Y as usize * CUBE_COUNT_X as usize + CUBE_POS_X as usize)
        * CUBE_DIM as usize
        + UNIT_POS as usize;
    if pos < len {
        output[pos] = input[pos];
    }
}

/// Read-only pass over `len` 16-byte vectors, `loads` per unit (strided by the grid): the time
/// any kernel needs to stream those bytes once, its launch and ramp included. Writes only when
/// the xor of everything it read equals a value it never does, so no load is dropped.
#[cube(launch_unchecked)]
fn read_kernel<NV: Size>(
    input: &Array<Vector<u32, NV>>,
    output: &mut Array<u32>,
    len: usize,
    #[comptime] loads: usize,
) {
    let units = CUBE_COUNT_X as usize * CUBE_DIM as usize;
    let pos = CUBE_POS_X as usize * CUBE_DIM as usize + UNIT_POS as usize;
    let mut acc = 0u32;
    #[unroll]
    for i in 0..loads {
        let p = pos + i * units;
        if p < len {
            let v = input[p];
            acc ^= v[0] ^ v[1] ^ v[2] ^ v[3];
        }
    }
    if acc == 0x9E37_79B9u32 {
        output[0] = acc;
    }
}

/// Vectors each unit of the read floor loads: 4 (the floor every table quotes), and with
/// `GPU_CHECK_READ_SWEEP=1` also 1, 2, 8 and 16 (more blocks with fewer loads each, or fewer
/// with more), to see whether any read of the same bytes beats that floor (`read-floor-l<n>`).
fn read_floor_loads() -> Vec<usize> {
    if std::env::var("GPU_CHECK_READ_SWEEP").is_ok() {
        vec![4, 1, 2, 8, 16]
    } else {
        vec![4]
    }
}

/// The read floor's name for `loads` vectors per unit (the default keeps its old name).
fn read_floor_name(loads: usize) -> String {
    match loads {
        4 => "read-floor".to_string(),
        _ => format!("read-floor-l{loads}"),
    }
}

/// Launches [`read_kernel`] over the `vecs` 16-byte vectors of `input`, `loads` per unit.
///
/// # Safety
/// `input` holds at least `vecs` vectors and `sink` one u32.
unsafe fn launch_read<R: Runtime>(
    c: &ComputeClient<R>,
    input: &Handle,
    sink: &Handle,
    vecs: usize,
    loads: usize,
) {
    unsafe {
        read_kernel::launch_unchecked::<R>(
            c,
            CubeCount::Static(vecs.div_ceil(loads * 256) as u32, 1, 1),
            CubeDim::new_1d(256),
            4usize,
            ArrayArg::from_raw_parts(input.clone(), vecs),
            ArrayArg::from_raw_parts(sink.clone(), 1),
            vecs,
            loads,
        );
    }
}

/// Median per-iteration microseconds of `batches` synchronized batches sized to ~`target_ms`:
/// `(wall, enqueue)`. `wall` runs from the first call of a batch to the end of its sync;
/// `enqueue` only until the last call returned (host launch cost). When `wall ≈ enqueue`, the
/// host launch path, not the kernel, bounds the figure.
fn time_us<R: Runtime>(c: &ComputeClient<R>, quick: bool, mut f: impl FnMut(usize)) -> (f64, f64) {
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
fn gemm_b2b_calls(us: f64, max_calls: usize) -> (usize, usize) {
    let calls = (8000.0 / us.max(1.0)) as usize;
    (calls.clamp(16, max_calls.max(16)), 5)
}

/// Random valid packed words (codes 0..=2) for timing.
fn random_words(rng: &mut Rng, count: usize) -> Vec<u32> {
    (0..count)
        .map(|_| {
            let r = rng.next_u64();
            let mut w = 0u32;
            for i in 0..16 {
                w |= ((((r >> (4 * i)) & 0xF) % 3) as u32) << (2 * i);
            }
            w
        })
        .collect()
}

/// The batch sizes to time: `GPU_CHECK_MS` (comma list, e.g. `1` for the GEMV only) or `default`.
fn batch_sizes(default: &[usize]) -> Vec<usize> {
    std::env::var("GPU_CHECK_MS")
        .ok()
        .and_then(|v| v.split(',').map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// Runs a check of the hand-written CUDA kernels, or fails it where they cannot run.
fn raw_check<R: Runtime>(
    c: &ComputeClient<R>,
    check: impl FnOnce() -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    if raw_cuda_available(c) {
        check()
    } else {
        Err("the hand-written CUDA kernels do not run here".into())
    }
}

/// `GPU_CHECK_NO_FUSED=1` (set by the script when the fused check failed): every timed
/// `ternary_linear` takes the two-launch path.
fn no_fused() -> bool {
    std::env::var("GPU_CHECK_NO_FUSED").is_ok()
}

/// `GPU_CHECK_NO_FUSED_CONFIGS=1` (set by the script when `fused_linear_configs` failed): the
/// fused layer is timed in its default configuration only.
fn no_fused_configs() -> bool {
    no_fused() || std::env::var("GPU_CHECK_NO_FUSED_CONFIGS").is_ok()
}

/// One kernel configuration to time (path plus the hidden tuning overrides).
struct Variant {
    name: &'static str,
    path: MatmulPath,
    /// Streaming-GEMV cube size (0: heuristic).
    units: usize,
    /// Streaming-GEMV blocks loaded per step (0: default).
    depth: usize,
    /// Tensor-core GEMM k-blocks per step (0: default).
    k_blocks: usize,
    /// Large-tile tensor-core GEMM k-blocks per stage (0: default).
    tiled_k_blocks: usize,
    /// dp4a GEMV block configuration (0: default).
    dp4a_config: usize,
    /// mma GEMM 16-row tiles per warp (0: default).
    mma_tiles: usize,
    /// wgmma GEMM block shape (0: default).
    wgmma_config: usize,
    /// Work the wgmma kernel leaves out (`wgmma_ablation_override`; wrong outputs: timed,
    /// never checked).
    ablation: usize,
    /// `ternary_linear` without the fused quantize + GEMV (two launches).
    unfused: bool,
    linear_too: bool,
    /// Type of the output (bf16 halves the output bytes: what torch bf16 writes).
    dtype: FloatDtype,
    /// Autotuning on (`Auto`'s choice timed among its candidates on the first launch of each
    /// shape); off, the static choice runs. Only `Auto` variants are ever tuned.
    autotune: bool,
}

impl Variant {
    const fn new(name: &'static str, path: MatmulPath, units: usize, k_blocks: usize) -> Self {
        Self {
            name,
            path,
            units,
            depth: 0,
            k_blocks,
            tiled_k_blocks: 0,
            dp4a_config: 0,
            mma_tiles: 0,
            wgmma_config: 0,
            ablation: 0,
            unfused: false,
            linear_too: false,
            dtype: FloatDtype::F32,
            autotune: false,
        }
    }
    /// The same variant with autotuning on, unless `GPU_CHECK_NO_AUTOTUNE` is set (the script
    /// sets it when the `wgmma_gemm_autotuned` check failed) or `GPU_CHECK_PROFILE` is: the
    /// tuner's own launches would shift the join of ncu's rows to the announced launches.
    fn tuned(mut self) -> Self {
        self.autotune = std::env::var("GPU_CHECK_NO_AUTOTUNE").is_err()
            && std::env::var("GPU_CHECK_PROFILE").is_err();
        self
    }
    /// The same kernel writing bf16 outputs.
    const fn bf16(mut self, name: &'static str) -> Self {
        self.name = name;
        self.dtype = FloatDtype::BF16;
        self
    }
    const fn dp4a(name: &'static str, config: usize) -> Self {
        let mut v = Self::new(name, MatmulPath::Dp4aGemv, 0, 0);
        v.dp4a_config = config;
        v
    }
    const fn mma(name: &'static str, tiles: usize) -> Self {
        let mut v = Self::new(name, MatmulPath::MmaGemm, 0, 0);
        v.mma_tiles = tiles;
        v
    }
    const fn wgmma(name: &'static str, config: usize) -> Self {
        let mut v = Self::new(name, MatmulPath::WgmmaGemm, 0, 0);
        v.wgmma_config = config;
        v
    }
    /// The same wgmma configuration leaving out the work `mask` names (diagnosis only).
    const fn ablated(mut self, mask: usize) -> Self {
        self.ablation = mask;
        self
    }
    const fn gemv_depth(name: &'static str, units: usize, depth: usize) -> Self {
        let mut v = Self::new(name, MatmulPath::Gemv, units, 0);
        v.depth = depth;
        v
    }
    const fn tiled(name: &'static str, tiled_k_blocks: usize) -> Self {
        let mut v = Self::new(name, MatmulPath::CmmaTiledGemm, 0, 0);
        v.tiled_k_blocks = tiled_k_blocks;
        v
    }
    fn apply(&self) {
        gemv_stream_units_override(self.units);
        gemv_stream_depth_override(self.depth);
        cmma_k_blocks_override(self.k_blocks);
        cmma_tiled_k_blocks_override(self.tiled_k_blocks);
        dp4a_gemv_config_override(self.dp4a_config);
        mma_gemm_warp_tiles_override(self.mma_tiles);
        wgmma_gemm_config_override(self.wgmma_config);
        wgmma_ablation_override(self.ablation);
        fused_linear_off(self.unfused || no_fused());
        set_autotune(Some(self.autotune));
    }
    fn reset() {
        set_autotune(Some(false));
        fused_linear_off(no_fused());
        dp4a_gemv_config_override(0);
        mma_gemm_warp_tiles_override(0);
        wgmma_gemm_config_override(0);
        wgmma_ablation_override(0);
        gemv_stream_units_override(0);
        gemv_stream_depth_override(0);
        cmma_k_blocks_override(0);
        cmma_tiled_k_blocks_override(0);
    }
}

/// The wgmma configurations `GPU_CHECK_WGMMA_CONFIGS` (e.g. `15,19`) names, if set: only those
/// are checked by `wgmma_gemm_configs` and timed besides the default.
fn wgmma_configs_wanted() -> Option<Vec<usize>> {
    let list = std::env::var("GPU_CHECK_WGMMA_CONFIGS").ok()?;
    Some(
        list.split(',')
            .filter_map(|c| c.trim().parse().ok())
            .collect(),
    )
}

/// Variants timed side by side for `m` rows: the default first (also timed with activation
/// quantization), then the previous kernel and tuning alternatives.
fn variants(m: usize, cmma_ok: bool, raw_ok: bool, wgmma_ok: bool) -> Vec<Variant> {
    let mut v = all_variants(m, cmma_ok, raw_ok, wgmma_ok);
    if let Some(wanted) = wgmma_configs_wanted() {
        v.retain(|v| v.wgmma_config == 0 || wanted.contains(&v.wgmma_config));
    }
    v
}

fn all_variants(m: usize, cmma_ok: bool, raw_ok: bool, wgmma_ok: bool) -> Vec<Variant> {
    let main = |mut v: Variant| {
        v.linear_too = true;
        v
    };
    if m <= GEMV_MAX_M && std::env::var("GPU_CHECK_NO_STREAM").is_ok() {
        vec![main(Variant::new(
            "gemv-plane",
            MatmulPath::GemvPlane,
            0,
            0,
        ))]
    } else if m <= GEMV_MAX_M {
        // The CubeCL variants (cube sizes, depths) were compared in session 2; the hand-written
        // dp4a kernel is timed against the default CubeCL one. GPU_CHECK_NO_DP4A=1 (set by the
        // script when its check failed) leaves it out.
        let mut v = vec![];
        if raw_ok && std::env::var("GPU_CHECK_NO_DP4A").is_err() {
            v.push(main(Variant::new("dp4a", MatmulPath::Dp4aGemv, 0, 0)));
            // The full layer in two launches (quantize, then the GEMV), against the fused one.
            let mut two = main(Variant::new("dp4a-2launch", MatmulPath::Dp4aGemv, 0, 0));
            two.unfused = true;
            v.push(two);
            // Block shapes (see src/raw_cuda/gemv_config.rs): 6 blocks/SM asked (with the 4-accumulator
            // split); the split alone; 4 warps × 8 loads in flight, with and without it.
            if std::env::var("GPU_CHECK_NO_DP4A_CONFIGS").is_err() {
                v.push(Variant::dp4a("dp4a-minb6", 2));
                v.push(Variant::dp4a("dp4a-split", 3));
                v.push(Variant::dp4a("dp4a-w4u8", 4));
                v.push(Variant::dp4a("dp4a-w4u8-nosplit", 5));
                v.push(Variant::dp4a("dp4a-minb6-nosplit", 6));
                v.push(Variant::dp4a("dp4a-minb8-nosplit", 7));
                // Two and four tiles per block: the fused layer's prologue reads x once per
                // block, so a half and a quarter of its L2 reads (timed as a layer too).
                // As layers only where the fused forms passed their check.
                let layer_too = |v: Variant| if no_fused_configs() { v } else { main(v) };
                v.push(layer_too(Variant::dp4a("dp4a-t2", 8)));
                // One tile per block: the fused layer's default before session 13.
                v.push(layer_too(Variant::dp4a("dp4a-t1", 1)));
                v.push(layer_too(Variant::dp4a("dp4a-t4", 9)));
            }
        }
        v.push(main(Variant::new("gemv", MatmulPath::Gemv, 0, 0)));
        if std::env::var("GPU_CHECK_ALL_VARIANTS").is_ok() {
            v.extend([
                Variant::new("gemv-plane", MatmulPath::GemvPlane, 0, 0),
                Variant::new("gemv-u64", MatmulPath::Gemv, 64, 0),
                Variant::new("gemv-u128", MatmulPath::Gemv, 128, 0),
                Variant::new("gemv-u256", MatmulPath::Gemv, 256, 0),
                Variant::gemv_depth("gemv-d2", 0, 2),
                Variant::gemv_depth("gemv-d4", 0, 4),
                Variant::gemv_depth("gemv-u128-d2", 128, 2),
                Variant::gemv_depth("gemv-u128-d4", 128, 4),
            ]);
        }
        v
    } else if std::env::var("GPU_CHECK_ALL_VARIANTS").is_err() {
        // The hand-written mma.sync GEMM against the best CubeCL cmma kernel.
        let mut v = vec![];
        // The Hopper wgmma kernel and its block shapes (GPU_CHECK_NO_WGMMA=1, set by the script
        // when its check failed, leaves them out).
        if wgmma_ok && std::env::var("GPU_CHECK_NO_WGMMA").is_err() {
            // `Auto` autotuned (what a user runs), and its static choice without the tuning.
            v.push(main(Variant::wgmma("wgmma", 0).tuned()));
            v.push(Variant::wgmma("wgmma-static", 0));
            // bf16 outputs, as torch bf16 writes (half the output bytes of f32).
            v.push(Variant::wgmma("wgmma", 0).tuned().bf16("wgmma-bf16"));
            v.push(Variant::wgmma("wgmma-static", 0).bf16("wgmma-static-bf16"));
            if std::env::var("GPU_CHECK_NO_WGMMA_CONFIGS").is_err() {
                v.push(Variant::wgmma("wgmma-128", 1));
                v.push(Variant::wgmma("wgmma-256", 2));
                v.push(Variant::wgmma("wgmma-w256", 4));
                v.push(Variant::wgmma("wgmma-128x2", 5));
                // Weights decoded into shared memory instead of registers.
                v.push(Variant::wgmma("wgmma-ss-256", 6));
                v.push(Variant::wgmma("wgmma-ss-128x2", 7));
                v.push(Variant::wgmma("wgmma-ss-128", 8));
                // Packed words by cp.async with the activations, deeper prefetch.
                v.push(Variant::wgmma("wgmma-cp3-256", 9));
                v.push(Variant::wgmma("wgmma-cp4-256", 10));
                v.push(Variant::wgmma("wgmma-cp4-128", 11));
                v.push(Variant::wgmma("wgmma-cp6-128", 12));
                v.push(Variant::wgmma("wgmma-cp3-128x2", 13));
                v.push(Variant::wgmma("wgmma-ss-cp3-256", 14));
                // Warp-specialized: producer warps, mbarriers, no block barrier.
                v.push(Variant::wgmma("wgmma-ws6-256", 15));
                v.push(Variant::wgmma("wgmma-ws4-256", 16));
                v.push(Variant::wgmma("wgmma-ws8-128", 17));
                v.push(Variant::wgmma("wgmma-ws6-256-p2", 18));
                v.push(Variant::wgmma("wgmma-ws6-w256", 19));
                // The same with the activations by TMA.
                v.push(Variant::wgmma("wgmma-ws6-256-tma", 20));
                v.push(Variant::wgmma("wgmma-ws6-w256-tma", 21));
                v.push(Variant::wgmma("wgmma-ws6-256-mcast", 22));
                v.push(Variant::wgmma("wgmma-ws6-w256-mcast", 23));
                // Stream-K: the last waves' tiles split by k-steps over one block per SM.
                v.push(Variant::wgmma("wgmma-sk-256", 24));
                v.push(Variant::wgmma("wgmma-sk-128", 25));
                v.push(Variant::wgmma("wgmma-ska-256", 26));
                v.push(Variant::wgmma("wgmma-ska-128", 27));
                // Three fragment sets: two wgmma groups in flight during the decode.
                v.push(Variant::wgmma("wgmma-f3-256", 28));
                v.push(Variant::wgmma("wgmma-f3-128", 29));
                v.push(Variant::wgmma("wgmma-f3-ska-256", 30));
                v.push(Variant::wgmma("wgmma-f3-ska-128", 31));
                v.push(Variant::wgmma("wgmma-f3-ws6-256-tma", 32));
                v.push(Variant::wgmma("wgmma-f3-ska-64", 33));
                v.push(Variant::wgmma("wgmma-f3-ws8-128-tma", 34));
                v.push(Variant::wgmma("wgmma-ska-ws6-256-tma", 35));
                v.push(Variant::wgmma("wgmma-f3-ska-ws6-256-tma", 36));
                v.push(Variant::wgmma("wgmma-f3-ska-ws8-128-tma", 37));
                v.push(Variant::wgmma("wgmma-f3-ws6-256-mcast", 38));
                v.push(Variant::wgmma("wgmma-f3-ws6-256-persistent", 39));
                v.push(Variant::wgmma("wgmma-cp4-256-persistent", 40));
                v.push(Variant::wgmma("wgmma-cp4-128-persistent", 41));
                v.push(Variant::wgmma("wgmma-f3-sk-ws6-256-tma", 42));
                v.push(Variant::wgmma("wgmma-ska-ws6-w256-tma", 43));
                // What bounds 32 and 11 (GPU_CHECK_ABLATE=1): the same launch without the
                // copies, the wgmma, the decode, or with the wgmma alone (no copies, no
                // decode), or the copies alone. Wrong outputs: timed only.
                if std::env::var("GPU_CHECK_ABLATE").is_ok() {
                    let ablated = |name, config, mask| Variant::wgmma(name, config).ablated(mask);
                    v.extend([
                        ablated("wgmma-32-ablate-no-copy", 32, 1),
                        ablated("wgmma-32-ablate-no-wgmma", 32, 2),
                        ablated("wgmma-32-ablate-no-decode", 32, 4),
                        ablated("wgmma-32-ablate-wgmma-only", 32, 5),
                        ablated("wgmma-32-ablate-copy-only", 32, 6),
                        ablated("wgmma-11-ablate-no-copy", 11, 1),
                        ablated("wgmma-11-ablate-no-wgmma", 11, 2),
                        ablated("wgmma-11-ablate-no-decode", 11, 4),
                        ablated("wgmma-11-ablate-wgmma-only", 11, 5),
                        ablated("wgmma-11-ablate-copy-only", 11, 6),
                    ]);
                }
                // GPU_CHECK_NO_BF16=1 leaves these out (the K sweep: f32 outputs only).
                if std::env::var("GPU_CHECK_NO_BF16").is_err() {
                    // bf16 outputs of the configurations `Auto` picks or may pick next: torch bf16
                    // writes bf16, so these are the like-for-like figures (half the output bytes).
                    v.extend([
                        Variant::wgmma("wgmma-f3-ws6-256-tma", 32)
                            .bf16("wgmma-f3-ws6-256-tma-bf16"),
                        Variant::wgmma("wgmma-f3-ska-64", 33).bf16("wgmma-f3-ska-64-bf16"),
                        Variant::wgmma("wgmma-cp4-128", 11).bf16("wgmma-cp4-128-bf16"),
                        Variant::wgmma("wgmma-ska-ws6-256-tma", 35)
                            .bf16("wgmma-ska-ws6-256-tma-bf16"),
                        Variant::wgmma("wgmma-f3-ska-ws6-256-tma", 36)
                            .bf16("wgmma-f3-ska-ws6-256-tma-bf16"),
                        Variant::wgmma("wgmma-f3-ws6-256-persistent", 39)
                            .bf16("wgmma-f3-ws6-256-persistent-bf16"),
                        Variant::wgmma("wgmma-cp4-256-persistent", 40)
                            .bf16("wgmma-cp4-256-persistent-bf16"),
                        Variant::wgmma("wgmma-cp4-128-persistent", 41)
                            .bf16("wgmma-cp4-128-persistent-bf16"),
                    ]);
                    v.push(Variant::wgmma("wgmma-f3-256", 28).bf16("wgmma-f3-256-bf16"));
                    v.push(Variant::wgmma("wgmma-sk-256", 24).bf16("wgmma-sk-256-bf16"));
                    v.push(Variant::wgmma("wgmma-ska-256", 26).bf16("wgmma-ska-256-bf16"));
                    v.push(Variant::wgmma("wgmma-cp4-256", 10).bf16("wgmma-cp4-256-bf16"));
                    v.push(Variant::wgmma("wgmma-ws6-w256", 19).bf16("wgmma-ws6-w256-bf16"));
                    v.push(Variant::wgmma("wgmma-ws6-256", 15).bf16("wgmma-ws6-256-bf16"));
                }
            }
        }
        if raw_ok && std::env::var("GPU_CHECK_NO_MMA").is_err() {
            v.push(main(Variant::new("mma", MatmulPath::MmaGemm, 0, 0)));
            if std::env::var("GPU_CHECK_NO_MMA_256").is_err() {
                v.push(Variant::mma("mma-256", 8));
            }
        }
        if cmma_ok && std::env::var("GPU_CHECK_NO_CMMA_TILED").is_err() {
            v.push(main(Variant::tiled("cmma-tiled", 0)));
        }
        v
    } else {
        let mut v = vec![];
        if cmma_ok {
            v.push(main(Variant::new("cmma", MatmulPath::CmmaGemm, 0, 0)));
            v.push(Variant::new("cmma-k4", MatmulPath::CmmaGemm, 0, 4));
            // GPU_CHECK_NO_CMMA_TILED=1 (set by the script when its check failed) leaves it out.
            if std::env::var("GPU_CHECK_NO_CMMA_TILED").is_err() {
                v.push(Variant::tiled("cmma-tiled", 0));
                v.push(Variant::tiled("cmma-tiled-k2", 2));
                v.push(Variant::tiled("cmma-tiled-k8", 8));
            }
        }
        v.push(Variant::new("tiled", MatmulPath::TiledGemm, 0, 0));
        v
    }
}

/// `GPU_CHECK_SHAPES=KxN,...`: shapes replacing the benchmark ones in the timings and the
/// profile (e.g. a K sweep at one N).
fn custom_shapes() -> Option<Vec<(usize, usize)>> {
    std::env::var("GPU_CHECK_SHAPES").ok().map(|list| {
        list.split(',')
            .filter_map(|s| {
                let (k, n) = s.trim().split_once('x')?;
                Some((k.parse().ok()?, n.parse().ok()?))
            })
            .collect()
    })
}

/// `GPU_CHECK_PROFILE=1`: a few launches of every variant, each kernel launch announced by a
/// `{"op":"launch",...}` line in launch order, for `ncu` (device-side kernel durations; see
/// scripts/gpu-check.sh, which joins ncu's rows to these lines by order).
fn profile<R: Runtime>(c: &ComputeClient<R>, rng: &mut Rng, cmma_ok: bool) {
    let mut index = 0usize;
    let mut announce = |what: &str, m: usize, k: usize, n: usize| {
        println!(r#"{{"op":"launch","index":{index},"what":"{what}","m":{m},"k":{k},"n":{n}}}"#);
        index += 1;
    };
    let shapes = custom_shapes()
        .unwrap_or_else(|| vec![(4096, 4096), (4096, 11008), (8192, 28672), (2560, 6912)]);
    for &(k, n) in &shapes {
        let words = packed_word_count(k, n);
        let host = random_words(rng, words);
        let w = PackedWeights::from_handles(
            c.create_from_slice(u32::as_bytes(&host)),
            upload_f32(c, &[0.05]),
            k,
            n,
            WeightGranularity::PerTensor,
        )
        .unwrap();
        // The floor any kernel reaches on these bytes (launch and ramp included).
        let vecs = words / 4;
        let sink = c.empty(4);
        for loads in read_floor_loads() {
            for _ in 0..2 {
                announce(&read_floor_name(loads), 1, k, n);
                unsafe { launch_read(c, &w.packed, &sink, vecs, loads) };
                sync(c);
            }
        }
        for &m in &batch_sizes(&[1, 512, 2048]) {
            let x = upload_f32(c, &rng.vec(m * k, 1.0));
            announce("quantize", m, k, n);
            let acts =
                quantize_activations(c, &x, m, k, ActivationGranularity::PerToken, EPS).unwrap();
            sync(c);
            for v in variants(m, cmma_ok, raw_cuda_available(c), wgmma_available(c)) {
                if v.path == MatmulPath::TiledGemm && m > 512 {
                    continue;
                }
                v.apply();
                for _ in 0..2 {
                    announce(v.name, m, k, n);
                    let _ = ternary_matmul_as(c, &acts, &w, None, v.path, v.dtype).unwrap();
                    sync(c);
                }
                Variant::reset();
            }
            // The fused quantize + GEMV: the whole layer in one kernel (elsewhere `ternary_linear`
            // takes two, which would shift the join of ncu's rows to these lines), with its
            // default (two tiles per block since session 13), one and four tiles per block; where
            // only its bounds on M and K keep it out (e.g. 8192→28672 at M = 1), widened, with
            // the default and four tiles.
            let narrow = fused_gemv_fits(m, k);
            fused_linear_widen(true);
            let wide = fused_gemv_fits(m, k);
            fused_linear_widen(false);
            let fused_configs: &[(&str, usize)] = if narrow {
                &[
                    ("fused-linear", 0),
                    ("fused-linear-t1", 1),
                    ("fused-linear-t4", 9),
                ]
            } else if wide {
                &[("fused-linear-wide", 0), ("fused-linear-t4-wide", 9)]
            } else {
                &[]
            };
            for &(name, config) in fused_configs {
                if !raw_cuda_available(c) || no_fused() || (config != 0 && no_fused_configs()) {
                    continue;
                }
                dp4a_gemv_config_override(config);
                fused_linear_widen(!narrow);
                for _ in 0..2 {
                    announce(name, m, k, n);
                    let _ = ternary_linear(
                        c,
                        &x,
                        m,
                        k,
                        &w,
                        None,
                        ActivationGranularity::PerToken,
                        EPS,
                        MatmulPath::Dp4aGemv,
                    )
                    .unwrap();
                    sync(c);
                }
                fused_linear_widen(false);
                dp4a_gemv_config_override(0);
            }
        }
    }
}

/// The large-tile tensor-core GEMM on awkward shapes (edge tiles in M, N and K) and the benchmark
/// shapes, at every k-step: exact i32 against the reference, and the f32 epilogue for per-tensor
/// and per-channel scales (per-group runs the 64×64 kernel; checked too, through the fallback).
#[allow(clippy::needless_range_loop, clippy::manual_is_multiple_of)]
fn check_cmma_tiled<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
    let mut cases: Vec<(usize, usize, usize)> = vec![];
    for &m in &[1usize, 33, 130, 257] {
        for &k in &[1usize, 100, 1040, 4097] {
            for &n in &[7usize, 65, 200] {
                cases.push((m, k, n));
            }
        }
    }
    cases.extend_from_slice(&[(512, 4096, 4096), (128, 8192, 28672), (200, 2560, 6912)]);
    let mut case = 0usize;
    for kbs in [0usize, 2, 8] {
        cmma_tiled_k_blocks_override(kbs);
        for &(m, k, n) in &cases {
            // The large shapes once (default k-step) to keep the check short.
            if m * k * n > 1 << 26 && kbs != 0 {
                continue;
            }
            case += 1;
            // Large shapes: a sample of the outputs (every 53rd, the last row and the last
            // column) against the scalar reference, per tensor or per channel.
            let large = m * k * n > 1 << 26;
            let gran = if large {
                [Gran::Tensor, Gran::Channel][case % 2]
            } else {
                [Gran::Tensor, Gran::Channel, Gran::Group(64)][case % 3]
            };
            let per_tensor = case % 2 == 0;
            let x = rng.vec(m * k, 1.5);
            let (t, sw, w) = random_packed(c, rng, n, k, gran);
            let ag = if per_tensor {
                ActivationGranularity::PerTensor
            } else {
                ActivationGranularity::PerToken
            };
            let acts = quantize_activations(c, &upload_f32(c, &x), m, k, ag, EPS)
                .map_err(|e| e.to_string())?;
            let (xq, sx) = support::quantize_acts(&x, m, k, per_tensor, EPS);
            let path = MatmulPath::CmmaTiledGemm;
            let acc = read_i32(
                c,
                ternary_matmul_i32(c, &acts, &w, path).map_err(|e| e.to_string())?,
            );
            let bias = rng.vec(n, 0.5);
            let bh = upload_f32(c, &bias);
            let y = read_f32(
                c,
                ternary_matmul(c, &acts, &w, Some(&bh), path).map_err(|e| e.to_string())?,
            );
            let fail = |what: &str, i: usize| {
                cmma_tiled_k_blocks_override(0);
                Err(format!(
                    "{what} differs kbs={kbs} m={m} k={k} n={n} {gran:?} at [{}, {}]",
                    i / n,
                    i % n
                ))
            };
            if large {
                for i in 0..m * n {
                    if i % 53 != 0 && i / n != m - 1 && i % n != n - 1 {
                        continue;
                    }
                    let want = support::acc_range(&xq, &t, k, i / n, i % n, 0, k);
                    if acc[i] != want {
                        return fail("i32 accumulator", i);
                    }
                    let s = if matches!(gran, Gran::Tensor) {
                        sw[0]
                    } else {
                        sw[i % n]
                    };
                    let yf = (want as f32 * sx[i / n]) * s + bias[i % n];
                    let mag = (want as f32 * sx[i / n] * s).abs() + bias[i % n].abs();
                    if (y[i] - yf).abs() > 2e-5 * mag + 1e-6 {
                        return fail("output", i);
                    }
                }
                continue;
            }
            for i in 0..m * n {
                if acc[i] != support::acc_range(&xq, &t, k, i / n, i % n, 0, k) {
                    return fail("i32 accumulator", i);
                }
            }
            let (want, mag) = support::linear(&xq, &sx, &t, &sw, Some(&bias), m, n, k, gran);
            for i in 0..m * n {
                if (y[i] - want[i]).abs() > 2e-5 * mag[i] + 1e-6 {
                    return fail("output", i);
                }
            }
        }
    }
    cmma_tiled_k_blocks_override(0);
    Ok(())
}

/// The streaming GEMV at every forced cube size, long rows (several accumulator flushes per
/// unit), extreme values (largest partial sums) and a realistic 4096 → 4096 layer: exact i32.
#[allow(clippy::needless_range_loop)]
fn check_gemv_stream<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
    let cases: &[(usize, usize, bool)] = &[
        (4096, 4096, false),
        (20000, 33, false),
        (20000, 33, true),
        (8192, 300, true),
    ];
    for (units, depth) in [
        (0usize, 0usize),
        (64, 1),
        (128, 1),
        (256, 1),
        (0, 2),
        (64, 4),
    ] {
        gemv_stream_units_override(units);
        gemv_stream_depth_override(depth);
        for m in 1..=GEMV_STREAM_MAX_M {
            for &(k, n, extreme) in cases {
                if m > 1 && k * n > 1 << 22 {
                    continue;
                }
                let x: Vec<f32> = if extreme {
                    (0..m * k)
                        .map(|i| if i % 5 == 0 { -1.0 } else { 1.0 })
                        .collect()
                } else {
                    rng.vec(m * k, 1.0)
                };
                let t: Vec<i8> = if extreme {
                    (0..n * k)
                        .map(|i| if i % 7 == 0 { -1 } else { 1 })
                        .collect()
                } else {
                    rng.ternary(n * k)
                };
                let acts = quantize_activations(
                    c,
                    &upload_f32(c, &x),
                    m,
                    k,
                    ActivationGranularity::PerToken,
                    EPS,
                )
                .map_err(|e| e.to_string())?;
                let (xq, _) = support::quantize_acts(&x, m, k, false, EPS);
                let packed = c.create_from_slice(u32::as_bytes(&support::pack(&t, n, k)));
                let w = PackedWeights::from_handles(
                    packed,
                    upload_f32(c, &[1.0]),
                    k,
                    n,
                    WeightGranularity::PerTensor,
                )
                .map_err(|e| e.to_string())?;
                let acc = read_i32(
                    c,
                    ternary_matmul_i32(c, &acts, &w, MatmulPath::Gemv)
                        .map_err(|e| e.to_string())?,
                );
                for i in 0..m * n {
                    if acc[i] != support::acc_range(&xq, &t, k, i / n, i % n, 0, k) {
                        gemv_stream_units_override(0);
                        gemv_stream_depth_override(0);
                        return Err(format!(
                            "units={units} depth={depth} m={m} k={k} n={n} extreme={extreme}: differs at {i}"
                        ));
                    }
                }
            }
        }
    }
    gemv_stream_units_override(0);
    gemv_stream_depth_override(0);
    Ok(())
}

fn bench<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
    quick: bool,
    cmma_ok: bool,
    backend: &str,
) {
    // Device copy bandwidth: 512 MiB read + 512 MiB written per iteration.
    // GPU_CHECK_TINY=1: tiny sizes, to exercise this harness on lavapipe.
    let tiny = std::env::var("GPU_CHECK_TINY").is_ok();
    let bytes = if tiny { 4usize << 20 } else { 512usize << 20 };
    let src = c.empty(bytes);
    let dst = c.empty(bytes);
    let vecs = bytes / 16;
    let (us, _) = time_us(c, quick, |_| unsafe {
        copy_kernel::launch_unchecked::<R>(
            c,
            {
                let cubes = vecs / 256;
                CubeCount::Static(cubes.min(65_535) as u32, cubes.div_ceil(65_535) as u32, 1)
            },
            CubeDim::new_1d(256),
            4usize,
            ArrayArg::from_raw_parts(src.clone(), bytes / 4),
            ArrayArg::from_raw_parts(dst.clone(), bytes / 4),
            vecs,
        )
    });
    let copy_gbps = 2.0 * bytes as f64 / us / 1e3;
    println!(
        r#"{{"op":"copy","impl":"cubecl-copy","backend":"{backend}","bytes":{bytes},"median_us":{us:.2},"gbps":{copy_gbps:.1}}}"#
    );
    drop((src, dst));

    let custom = custom_shapes();
    let shapes: &[(usize, usize)] = if let Some(custom) = &custom {
        custom
    } else if tiny {
        &[(256, 512)]
    } else {
        &[(4096, 4096), (4096, 11008), (8192, 28672), (2560, 6912)]
    };
    let ms = batch_sizes(if tiny { &[1, 64] } else { &[1, 512, 2048] });
    let ms = &ms[..];
    // Every size is also timed back to back: at M ≤ 16 that is the device-bound figure of a
    // model's consecutive layers; at M = 512 and 2048 it is the kernel's throughput with CubeCL's
    // host launch path (12–28 µs per call) off the critical path, as torch's is measured
    // (`GPU_CHECK_NO_B2B=1`: not at all).
    let back_to_back = if std::env::var("GPU_CHECK_NO_B2B").is_err() {
        let b2b = BackToBack::new(c);
        if b2b.is_none() {
            println!(
                r#"{{"op":"error","what":"back-to-back timing: the spin kernel does not slow down with its iteration count"}}"#
            );
        }
        b2b
    } else {
        None
    };
    let (b2b_calls, b2b_batches) = if quick { (200, 5) } else { (400, 9) };
    for &(k, n) in shapes {
        let words = packed_word_count(k, n);
        let packed_bytes = words * 4;
        // Rotate weight copies so GEMV reads from DRAM, not L2 (≥ 256 MiB in rotation).
        let copies = if tiny {
            2
        } else {
            ((256usize << 20) / packed_bytes).clamp(2, 64)
        };
        let host = random_words(rng, words);
        let weights: Vec<PackedWeights> = (0..copies)
            .map(|_| {
                PackedWeights::from_handles(
                    c.create_from_slice(u32::as_bytes(&host)),
                    upload_f32(c, &[0.05]),
                    k,
                    n,
                    WeightGranularity::PerTensor,
                )
                .unwrap()
            })
            .collect();
        // The floor of streaming these bytes back to back: a read-only kernel per copy (the
        // GEMV's reference, so only where a GEMV size is timed).
        if let Some(b2b) = back_to_back
            .as_ref()
            .filter(|_| ms.iter().any(|&m| m <= GEMV_MAX_M))
        {
            let vecs = words / 4;
            let sink = c.empty(4);
            for loads in read_floor_loads() {
                let read = |i: usize| unsafe {
                    launch_read(c, &weights[i % copies].packed, &sink, vecs, loads)
                };
                let t = b2b.time(b2b_calls, b2b_batches, 20.0, read);
                let gbps = packed_bytes as f64 / t.per_call_us / 1e3;
                println!(
                    r#"{{"op":"read_floor","impl":"{}","backend":"{backend}","m":1,"k":{k},"n":{n},"b2b_us":{:.2},"b2b_host_bound":{},"b2b_gbps":{gbps:.1},"b2b_copy_frac":{:.3},"weight_copies":{copies}}}"#,
                    read_floor_name(loads),
                    t.per_call_us,
                    t.host_bound,
                    gbps / copy_gbps
                );
            }
        }
        for &m in ms {
            let x = upload_f32(c, &rng.vec(m * k, 1.0));
            let acts =
                quantize_activations(c, &x, m, k, ActivationGranularity::PerToken, EPS).unwrap();
            for v in variants(m, cmma_ok, raw_cuda_available(c), wgmma_available(c)) {
                v.apply();
                // Kernel only (pre-quantized activations) and, for the main variants, the full
                // layer (with the activation-quantization launch).
                let ops: &[(&str, bool)] = if v.linear_too {
                    &[("matmul", false), ("linear", true)]
                } else {
                    &[("matmul", false)]
                };
                for &(op, full) in ops {
                    let mut call = |i: usize| {
                        let w = &weights[i % copies];
                        let _ = if full {
                            ternary_linear(
                                c,
                                &x,
                                m,
                                k,
                                w,
                                None,
                                ActivationGranularity::PerToken,
                                EPS,
                                v.path,
                            )
                        } else {
                            ternary_matmul_as(c, &acts, w, None, v.path, v.dtype)
                        }
                        .unwrap();
                    };
                    let (us, enqueue_us) = time_us(c, quick, &mut call);
                    let gbps = packed_bytes as f64 / us / 1e3;
                    let tops = 2.0 * (m * k * n) as f64 / us / 1e6;
                    let b2b = match &back_to_back {
                        Some(b2b) if m <= GEMV_MAX_M => {
                            let t = b2b.time(b2b_calls, b2b_batches, enqueue_us, &mut call);
                            let gbps = packed_bytes as f64 / t.per_call_us / 1e3;
                            format!(
                                r#","b2b_us":{:.2},"b2b_host_bound":{},"b2b_gbps":{gbps:.1},"b2b_copy_frac":{:.3}"#,
                                t.per_call_us,
                                t.host_bound,
                                gbps / copy_gbps
                            )
                        }
                        Some(b2b) => {
                            // Products of 20 µs to 1 ms: enough calls for ~8 ms of device time
                            // per batch.
                            let (calls, batches) = gemm_b2b_calls(us, b2b_calls);
                            let t = b2b.time(calls, batches, enqueue_us, &mut call);
                            format!(
                                r#","b2b_us":{:.2},"b2b_host_bound":{},"b2b_tops":{:.2},"b2b_calls":{calls}"#,
                                t.per_call_us,
                                t.host_bound,
                                2.0 * (m * k * n) as f64 / t.per_call_us / 1e6
                            )
                        }
                        None => String::new(),
                    };
                    // Ablated launches compute wrong outputs: marked, so no summary takes them
                    // for the fastest.
                    let ablation = match v.ablation {
                        0 => String::new(),
                        mask => format!(r#","ablation":{mask}"#),
                    };
                    println!(
                        r#"{{"op":"{op}","impl":"bitlinear-{backend}-{}","backend":"{backend}","m":{m},"k":{k},"n":{n},"median_us":{us:.2},"enqueue_us":{enqueue_us:.2},"host_bound":{},"gbps":{gbps:.1},"copy_frac":{:.3},"tops":{tops:.2},"weight_copies":{copies}{b2b}{ablation}}}"#,
                        v.name,
                        enqueue_us > 0.9 * us,
                        gbps / copy_gbps
                    );
                }
                Variant::reset();
            }
        }
    }
}

fn main() {
    // GPU_CHECK_ONLY=wgmma_config_count prints how many wgmma configurations there are (host
    // only: gpu-check.sh checks each in its own process).
    if std::env::var("GPU_CHECK_ONLY").as_deref() == Ok("wgmma_config_count") {
        println!("{}", wgmma_kernel_flags().len());
        return;
    }
    // GPU_CHECK_ONLY=wgmma_config_file GPU_CHECK_WGMMA_CONFIGS=n prints the kernel file of
    // configuration n (host only: gpu-check.sh skips a file's configurations after one hung).
    if std::env::var("GPU_CHECK_ONLY").as_deref() == Ok("wgmma_config_file") {
        let flags = wgmma_kernel_flags();
        let n: usize = std::env::var("GPU_CHECK_WGMMA_CONFIGS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        println!(
            "{}",
            flags
                .get(n.wrapping_sub(1))
                .map_or("none", |(file, _)| *file)
        );
        return;
    }
    // GPU_CHECK_ONLY=dump_sources GPU_CHECK_DUMP_DIR=dir writes every hand-written kernel
    // configuration's complete source to dir/<entry>.cu (host only), for
    // scripts/ptxas_report.py: registers, spills and wgmma serialization, per configuration.
    if std::env::var("GPU_CHECK_ONLY").as_deref() == Ok("dump_sources") {
        let dir = std::env::var("GPU_CHECK_DUMP_DIR").unwrap_or_else(|_| "kernel_sources".into());
        std::fs::create_dir_all(&dir).expect("create the dump folder");
        let sources = raw_kernel_sources();
        for (entry, source) in &sources {
            std::fs::write(format!("{dir}/{entry}.cu"), source).expect("write a kernel source");
        }
        println!("{} kernel sources in {dir}", sources.len());
        return;
    }
    // GPU_CHECK_WGPU=1 runs the checks on Wgpu (lavapipe) to validate this harness without a GPU.
    if std::env::var("GPU_CHECK_WGPU").is_ok() {
        run::<cubecl::wgpu::WgpuRuntime>(&Default::default(), "wgpu");
    } else {
        run::<CudaRuntime>(&CudaDevice::default(), "cuda");
    }
}

fn run<R: Runtime>(device: &R::Device, backend: &str) {
    let c = R::client(device);
    let props = c.properties();
    let cmma_ok = cmma_available(&c);
    println!(
        r#"{{"op":"device","backend":"{backend}","plane_size":{},"sms":{},"max_shared":{},"cmma_i8":{cmma_ok},"plane_ops":{}}}"#,
        props.hardware.plane_size_max,
        props.hardware.num_streaming_multiprocessors.unwrap_or(0),
        props.hardware.max_shared_memory_size,
        plane_ops_available(&c)
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ok = true;
    // Every check and timing runs the static choice unless it turns autotuning on itself
    // (`wgmma_gemm_autotuned`, the tuned `Auto` variants): tuning each of the checks' hundreds
    // of shapes would compile and time every candidate for each.
    set_autotune(Some(false));
    // GPU_CHECK_ONLY=<name> runs one check (a kernel that fails to JIT-compile poisons the
    // CubeCL server, so the script runs each check in its own process); GPU_CHECK_SKIP_CHECKS=1
    // runs none. GPU_CHECK_NO_CMMA=1 keeps the tensor-core path out of the timings.
    let only = std::env::var("GPU_CHECK_ONLY").ok();
    let skip_checks = std::env::var("GPU_CHECK_SKIP_CHECKS").is_ok();
    let want = |name: &str| !skip_checks && only.as_deref().is_none_or(|o| o == name);
    if want("quantize_activations") {
        ok &= report("quantize_activations", check_activations(&c, &mut rng));
    }
    if want("pack_weights") {
        ok &= report("pack_weights", check_packing(&c, &mut rng));
    }
    if want("gemv") {
        ok &= report("gemv", check_matmul(&c, &mut rng, MatmulPath::Gemv));
    }
    if want("dp4a_gemv") {
        let r = raw_check(&c, || check_matmul(&c, &mut rng, MatmulPath::Dp4aGemv));
        ok &= report("dp4a_gemv", r);
    }
    if want("dp4a_gemv_configs") {
        let r = raw_check(&c, || {
            (2..=dp4a_gemv_config_count()).try_for_each(|config| {
                dp4a_gemv_config_override(config);
                let r = check_matmul(&c, &mut rng, MatmulPath::Dp4aGemv)
                    .map_err(|e| format!("config {config}: {e}"));
                dp4a_gemv_config_override(0);
                r
            })
        });
        ok &= report("dp4a_gemv_configs", r);
    }
    if want("mma_gemm_256") {
        let r = raw_check(&c, || {
            mma_gemm_warp_tiles_override(8);
            let r = check_matmul(&c, &mut rng, MatmulPath::MmaGemm);
            mma_gemm_warp_tiles_override(0);
            r
        });
        ok &= report("mma_gemm_256", r);
    }
    if want("fused_linear") {
        let r = raw_check(&c, || check_fused_linear(&c, &mut rng));
        ok &= report("fused_linear", r);
    }
    if want("fused_linear_configs") {
        let r = raw_check(&c, || check_fused_linear_configs(&c, &mut rng));
        ok &= report("fused_linear_configs", r);
    }
    if want("wgmma_probe") {
        let r = if wgmma_available(&c) {
            probe_wgmma(&c, &mut rng)
        } else {
            Err("the wgmma kernel does not run here".into())
        };
        ok &= report("wgmma_probe", r);
    }
    if want("wgmma_gemm") {
        let r = if wgmma_available(&c) {
            check_matmul(&c, &mut rng, MatmulPath::WgmmaGemm)
        } else {
            Err("the wgmma kernel does not run here".into())
        };
        ok &= report("wgmma_gemm", r);
    }
    if want("wgmma_gemm_autotuned") {
        let r = if wgmma_available(&c) {
            check_autotuned(&c, &mut rng)
        } else {
            Err("the wgmma kernel does not run here".into())
        };
        ok &= report("wgmma_gemm_autotuned", r);
    }
    if want("half_outputs") {
        ok &= report("half_outputs", check_half_outputs(&c, &mut rng));
        // Also after an early error return, which leaves its configuration forced.
        wgmma_gemm_config_override(0);
    }
    if want("wgmma_gemm_configs") {
        let r = if wgmma_available(&c) {
            let configs = wgmma_configs_wanted()
                .unwrap_or_else(|| (1..=wgmma_kernel_flags().len()).collect());
            configs.into_iter().try_for_each(|config| {
                wgmma_gemm_config_override(config);
                let r = check_matmul(&c, &mut rng, MatmulPath::WgmmaGemm)
                    .map_err(|e| format!("config {config}: {e}"));
                wgmma_gemm_config_override(0);
                r
            })
        } else {
            Err("the wgmma kernel does not run here".into())
        };
        ok &= report("wgmma_gemm_configs", r);
    }
    if want("mma_gemm") {
        let r = raw_check(&c, || check_matmul(&c, &mut rng, MatmulPath::MmaGemm));
        ok &= report("mma_gemm", r);
    }
    if want("gemv_plane") {
        ok &= report(
            "gemv_plane",
            check_matmul(&c, &mut rng, MatmulPath::GemvPlane),
        );
    }
    if want("gemv_stream") {
        ok &= report("gemv_stream", check_gemv_stream(&c, &mut rng));
    }
    if want("tiled_gemm") {
        ok &= report(
            "tiled_gemm",
            check_matmul(&c, &mut rng, MatmulPath::TiledGemm),
        );
    }
    if want("cmma_gemm") {
        let r = if cmma_ok {
            check_matmul(&c, &mut rng, MatmulPath::CmmaGemm)
        } else {
            Err("cmma i8 not available on this device".into())
        };
        ok &= report("cmma_gemm", r);
    }
    if want("cmma_gemm_k4") {
        // The same checks with 4 and 1 k-blocks per step (per-group falls back where needed).
        let r = if cmma_ok {
            cmma_k_blocks_override(4);
            let r4 = check_matmul(&c, &mut rng, MatmulPath::CmmaGemm);
            cmma_k_blocks_override(1);
            let r1 = check_matmul(&c, &mut rng, MatmulPath::CmmaGemm);
            cmma_k_blocks_override(0);
            r4.and(r1)
        } else {
            Err("cmma i8 not available on this device".into())
        };
        ok &= report("cmma_gemm_k4", r);
    }
    if want("cmma_tiled_gemm") {
        let r = if cmma_ok {
            check_cmma_tiled(&c, &mut rng)
        } else {
            Err("cmma i8 not available on this device".into())
        };
        ok &= report("cmma_tiled_gemm", r);
    }
    if want("grad_input") {
        ok &= report("grad_input", check_grad_input(&c, &mut rng));
    }
    let cmma_ok = cmma_ok && std::env::var("GPU_CHECK_NO_CMMA").is_err();
    let _ = c.flush();
    if std::env::var("GPU_CHECK_PROFILE").is_ok() {
        profile(&c, &mut rng, cmma_ok);
    } else if std::env::var("GPU_CHECK_SKIP_BENCH").is_err() && only.is_none() {
        bench(
            &c,
            &mut rng,
            std::env::var("GPU_CHECK_QUICK").is_ok(),
            cmma_ok,
            backend,
        );
        // What the tuned `Auto` variants chose for each shape, and each candidate's time.
        print_autotune_choices();
    }
    println!(r#"{{"op":"summary","all_checks_ok":{ok}}}"#);
    if !ok {
        std::process::exit(1);
    }
}
