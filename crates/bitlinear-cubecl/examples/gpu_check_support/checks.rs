//! Correctness checks of each kernel against the CPU reference: activation quantization, weight
//! packing, every matmul path on random shapes, autotuned launches, the wgmma probe, the input
//! gradient, the cmma tiled GEMM and the streaming GEMV.

use bitlinear_cubecl::*;
use cubecl::prelude::*;

use crate::common::{
    activation_codes, mismatches, random_packed, read_f32, read_i32, read_u32, to_api, upload_f32,
    Rng, EPS,
};
use crate::support::{self, Gran};

pub(crate) fn check_activations<R: Runtime>(
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

pub(crate) fn check_packing<R: Runtime>(
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

pub(crate) fn check_matmul<R: Runtime>(
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
        // Below 1024 rows, 256-row blocks with two fragment sets (20; 258 tiles, the last rows
        // padding).
        cases.push((600, 300, 11008));
        // The default's small-M choice (33: M <= 64, K and N >= 4096).
        cases.push((48, 4100, 4100));
    }
    check_cases(c, rng, path, &cases, |case| Gran::ALL[case % 5])
}

/// [`check_matmul`]'s comparisons on the given `(m, k, n)` cases: the i32 accumulators exact,
/// the f32 outputs (with bias; the weight granularity `gran(case)` of the 1-based case, the
/// activation scales varying by case) to rounding, against the CPU reference.
pub(crate) fn check_cases<R: Runtime>(
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
pub(crate) fn check_autotuned<R: Runtime>(
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
pub(crate) fn print_autotune_choices() {
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

/// Probes of the wgmma GEMM's layout on shapes that isolate one loop each (one k-step of 32, one
/// 128-wide stage, several stages, then partial blocks), raw i32 output, reported one line each
/// whatever the outcome: a failing run then says where the layout breaks.
pub(crate) fn probe_wgmma<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
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

pub(crate) fn check_grad_input<R: Runtime>(
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

/// The large-tile tensor-core GEMM on awkward shapes (edge tiles in M, N and K) and the benchmark
/// shapes, at every k-step: exact i32 against the reference, and the f32 epilogue for per-tensor
/// and per-channel scales (per-group runs the 64×64 kernel; checked too, through the fallback).
#[allow(clippy::needless_range_loop, clippy::manual_is_multiple_of)]
pub(crate) fn check_cmma_tiled<R: Runtime>(
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
pub(crate) fn check_gemv_stream<R: Runtime>(
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
