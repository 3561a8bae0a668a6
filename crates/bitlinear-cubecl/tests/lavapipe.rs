//! Every kernel against the naive CPU reference in `support`, on Wgpu (Mesa lavapipe in CI).

// `%` instead of `is_multiple_of` keeps the workspace MSRV (1.85).
#![allow(clippy::manual_is_multiple_of)]

mod support;

use bitlinear_cubecl::*;
use cubecl::prelude::*;
use cubecl::server::Handle;
use cubecl::wgpu::{WgpuDevice, WgpuRuntime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::Gran;

type R = WgpuRuntime;

const MS: [usize; 5] = [1, 3, 16, 33, 130];
const KS: [usize; 5] = [1, 15, 17, 100, 300];
const NS: [usize; 4] = [1, 7, 33, 65];
const EPS: f32 = DEFAULT_EPS;

fn client() -> ComputeClient<R> {
    R::client(&WgpuDevice::default())
}

fn upload_f32(c: &ComputeClient<R>, v: &[f32]) -> Handle {
    c.create_from_slice(f32::as_bytes(v))
}

fn read_f32(c: &ComputeClient<R>, h: Handle) -> Vec<f32> {
    f32::from_bytes(&c.read_one(h).unwrap()).to_vec()
}

fn read_u32(c: &ComputeClient<R>, h: Handle) -> Vec<u32> {
    u32::from_bytes(&c.read_one(h).unwrap()).to_vec()
}

fn read_i32(c: &ComputeClient<R>, h: Handle) -> Vec<i32> {
    i32::from_bytes(&c.read_one(h).unwrap()).to_vec()
}

fn random_vec(rng: &mut StdRng, len: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|_| rng.random_range(-1.0f32..1.0) * scale)
        .collect()
}

fn to_api(g: Gran) -> WeightGranularity {
    match g {
        Gran::Tensor => WeightGranularity::PerTensor,
        Gran::Channel => WeightGranularity::PerChannel,
        Gran::Group(s) => WeightGranularity::PerGroup(s),
    }
}

/// Unpacks device activation codes to `[m][k]` i8 (dropping the row padding).
fn activation_codes(c: &ComputeClient<R>, acts: &QuantizedActivations) -> Vec<i8> {
    let words = read_u32(c, acts.codes.clone());
    let wpr = acts.words_per_row();
    let mut out = vec![0i8; acts.m * acts.k];
    for r in 0..acts.m {
        for kk in 0..wpr * 4 {
            let b = words[r * wpr + kk / 4].to_le_bytes()[kk % 4] as i8;
            if kk < acts.k {
                out[r * acts.k + kk] = b;
            } else {
                assert_eq!(b, 0, "row padding must hold zero codes");
            }
        }
    }
    out
}

/// Random ternary weights `[n][k]` plus positive scales, uploaded in packed form by the CPU
/// reference packer.
fn random_packed(
    c: &ComputeClient<R>,
    rng: &mut StdRng,
    n: usize,
    k: usize,
    gran: Gran,
) -> (Vec<i8>, Vec<f32>, PackedWeights) {
    let t: Vec<i8> = (0..n * k).map(|_| rng.random_range(-1i8..=1)).collect();
    let sw: Vec<f32> = (0..gran.count(n, k))
        .map(|_| rng.random_range(0.01f32..0.2))
        .collect();
    let packed = c.create_from_slice(u32::as_bytes(&support::pack(&t, n, k)));
    let w = PackedWeights::from_handles(packed, upload_f32(c, &sw), k, n, to_api(gran)).unwrap();
    (t, sw, w)
}

fn assert_close(got: &[f32], want: &[f32], mag: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for i in 0..got.len() {
        let tol = 2e-5 * mag[i] + 1e-6;
        assert!(
            (got[i] - want[i]).abs() <= tol,
            "{what}: element {i}: got {}, want {} (tol {tol})",
            got[i],
            want[i]
        );
    }
}

#[test]
fn lavapipe_has_no_cmma_and_falls_back_to_tiled() {
    let c = client();
    assert!(
        !cmma_available(&c),
        "lavapipe unexpectedly reports int8 cmma"
    );
    assert_eq!(
        resolve_path(&c, 33, MatmulPath::Auto).unwrap(),
        MatmulPath::TiledGemm
    );
    assert_eq!(
        resolve_path(&c, 2048, MatmulPath::Auto).unwrap(),
        MatmulPath::TiledGemm
    );
    assert_eq!(
        resolve_path(&c, 1, MatmulPath::Auto).unwrap(),
        MatmulPath::Gemv
    );
    assert_eq!(
        resolve_path(&c, 16, MatmulPath::Auto).unwrap(),
        MatmulPath::Gemv
    );
    assert!(matches!(
        resolve_path(&c, 64, MatmulPath::CmmaGemm),
        Err(Error::PathUnavailable { .. })
    ));
    // And a forced cmma launch is refused cleanly rather than launched.
    let mut rng = StdRng::seed_from_u64(7);
    let (_, _, w) = random_packed(&c, &mut rng, 7, 17, Gran::Tensor);
    let x = upload_f32(&c, &random_vec(&mut rng, 64 * 17, 1.0));
    let r = ternary_linear(
        &c,
        &x,
        64,
        17,
        &w,
        None,
        ActivationGranularity::PerToken,
        EPS,
        MatmulPath::CmmaGemm,
    );
    assert!(matches!(r, Err(Error::PathUnavailable { .. })), "{r:?}");
}

/// The hand-written CUDA kernels never run off CUDA: Auto picks the CubeCL kernels and forcing
/// them is refused with an error, with nothing launched.
#[test]
fn lavapipe_has_no_raw_cuda_kernels_and_falls_back_to_cubecl() {
    let c = client();
    assert!(!raw_cuda_available(&c));
    assert!(!wgmma_available(&c));
    for m in [1, 4, 16, 17, 512] {
        let p = resolve_path(&c, m, MatmulPath::Auto).unwrap();
        assert!(
            !matches!(
                p,
                MatmulPath::Dp4aGemv | MatmulPath::MmaGemm | MatmulPath::WgmmaGemm
            ),
            "M = {m}: {p:?}"
        );
    }
    for (m, path) in [
        (1, MatmulPath::Dp4aGemv),
        (64, MatmulPath::MmaGemm),
        (64, MatmulPath::WgmmaGemm),
    ] {
        let r = resolve_path(&c, m, path);
        assert!(matches!(r, Err(Error::PathUnavailable { .. })), "{r:?}");
    }
    // M above the GEMV limit is refused for the dp4a GEMV for that reason, wherever it runs.
    match resolve_path(&c, 17, MatmulPath::Dp4aGemv) {
        Err(Error::PathUnavailable { reason, .. }) => assert!(reason.contains("GEMV_MAX_M")),
        r => panic!("{r:?}"),
    }
    let mut rng = StdRng::seed_from_u64(8);
    let (_, _, w) = random_packed(&c, &mut rng, 9, 33, Gran::Channel);
    let x = upload_f32(&c, &random_vec(&mut rng, 2 * 33, 1.0));
    let r = ternary_linear(
        &c,
        &x,
        2,
        33,
        &w,
        None,
        ActivationGranularity::PerToken,
        EPS,
        MatmulPath::Dp4aGemv,
    );
    assert!(matches!(r, Err(Error::PathUnavailable { .. })), "{r:?}");
}

/// Quantizes `x` (`m` rows of `k`) on the device, per tensor or per token, and requires the
/// reference's scales bit for bit (NaN where the reference has NaN) and its codes.
fn check_quantization(c: &ComputeClient<R>, x: &[f32], m: usize, k: usize, per_tensor: bool) {
    let gran = if per_tensor {
        ActivationGranularity::PerTensor
    } else {
        ActivationGranularity::PerToken
    };
    let acts = quantize_activations(c, &upload_f32(c, x), m, k, gran, EPS).unwrap();
    let (codes, scales) = support::quantize_acts(x, m, k, per_tensor, EPS);
    let got = read_f32(c, acts.scales.clone());
    let same = got.len() == scales.len()
        && got
            .iter()
            .zip(&scales)
            .all(|(a, b)| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()));
    assert!(
        same,
        "scales m={m} k={k} pt={per_tensor}: {got:?} vs {scales:?}"
    );
    assert_eq!(
        activation_codes(c, &acts),
        codes,
        "codes m={m} k={k} pt={per_tensor}"
    );
}

#[test]
fn activation_quantization_matches_reference() {
    let c = client();
    let mut rng = StdRng::seed_from_u64(1);
    for &m in &MS {
        for &k in &KS {
            for per_tensor in [false, true] {
                // Mix of magnitudes, including a near-zero row to exercise eps.
                let mut x = random_vec(&mut rng, m * k, 3.0);
                if m > 2 {
                    for v in &mut x[k..2 * k] {
                        *v *= 1e-9;
                    }
                }
                check_quantization(&c, &x, m, k, per_tensor);
            }
        }
    }
}

/// Long rows, with a ragged end: per token, rows of up to 8192 inputs take the kernel that holds
/// a row in registers (1, 2, 4 and 8 words per unit: K = 1024, 1025, 2049, 4100 and 8192), longer
/// ones (8193) and every per-tensor row the two-pass kernel (its four-loads-per-step absmax pass,
/// K > 3 · 256 from each unit's start, and its whole-word pass). Exact against the reference,
/// and a NaN or infinity anywhere in a row (inside the four-load steps or in the tail) gives
/// that row a NaN scale and zero codes.
#[test]
fn long_rows_quantize_like_the_reference() {
    let c = client();
    let mut rng = StdRng::seed_from_u64(11);
    for &k in &[1023usize, 1024, 1025, 2049, 4100, 5003, 8192, 8193] {
        for (m, bad) in [
            (1, None),
            (3, Some((1usize, 7usize, f32::NAN))),
            (3, Some((2, k - 2, f32::NEG_INFINITY))),
        ] {
            let mut x = random_vec(&mut rng, m * k, 2.0);
            // Each row's largest magnitude somewhere at random (any skipped input shows), the
            // first row's at its very end (the tail step must see it).
            for row in 0..m {
                let at = if row == 0 {
                    k - 1
                } else {
                    rng.random_range(0..k)
                };
                x[row * k + at] = if row % 2 == 0 { 9.5 } else { -9.5 };
            }
            if let Some((row, col, v)) = bad {
                x[row * k + col] = v;
            }
            for per_tensor in [false, true] {
                check_quantization(&c, &x, m, k, per_tensor);
            }
        }
    }
}

#[test]
fn activation_ties_round_to_even() {
    let c = client();
    // absmax 127 → s = 1, so x/s is exact and .5 cases are true ties.
    let x = [
        127.0f32, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5, 3.49, -3.51,
    ];
    let acts = quantize_activations(
        &c,
        &upload_f32(&c, &x),
        1,
        x.len(),
        ActivationGranularity::PerToken,
        EPS,
    )
    .unwrap();
    let got = activation_codes(&c, &acts);
    let want: Vec<i8> = x.iter().map(|v| v.round_ties_even() as i8).collect();
    assert_eq!(got, want);
}

#[test]
fn nonfinite_rows_get_nan_scale_and_nan_outputs() {
    let c = client();
    let (m, k, n) = (3, 20, 7);
    let mut rng = StdRng::seed_from_u64(3);
    let mut x = random_vec(&mut rng, m * k, 1.0);
    x[k + 5] = f32::NAN;
    x[2 * k + 1] = f32::INFINITY;
    let xh = upload_f32(&c, &x);
    let acts = quantize_activations(&c, &xh, m, k, ActivationGranularity::PerToken, EPS).unwrap();
    let s = read_f32(&c, acts.scales.clone());
    assert!(s[0].is_finite() && s[1].is_nan() && s[2].is_nan(), "{s:?}");
    let codes = activation_codes(&c, &acts);
    assert!(codes[k..].iter().all(|&v| v == 0));
    let (_, _, w) = random_packed(&c, &mut rng, n, k, Gran::Channel);
    for path in [MatmulPath::Gemv, MatmulPath::TiledGemm] {
        let y = read_f32(
            &c,
            ternary_linear(
                &c,
                &xh,
                m,
                k,
                &w,
                None,
                ActivationGranularity::PerToken,
                EPS,
                path,
            )
            .unwrap(),
        );
        assert!(y[..n].iter().all(|v| v.is_finite()), "{path:?}");
        assert!(y[n..].iter().all(|v| v.is_nan()), "{path:?}: {y:?}");
    }
    // Per tensor: one bad value poisons every row.
    let acts = quantize_activations(&c, &xh, m, k, ActivationGranularity::PerTensor, EPS).unwrap();
    assert!(read_f32(&c, acts.scales).iter().all(|v| v.is_nan()));
}

#[test]
fn weight_packing_matches_reference() {
    let c = client();
    let mut rng = StdRng::seed_from_u64(2);
    for &k in &KS {
        for &n in &NS {
            for gran in Gran::ALL {
                for layout in [WeightLayout::InputMajor, WeightLayout::OutputMajor] {
                    let w_nk = random_vec(&mut rng, n * k, 0.05);
                    let dense: Vec<f32> = match layout {
                        WeightLayout::OutputMajor => w_nk.clone(),
                        WeightLayout::InputMajor => {
                            (0..k * n).map(|i| w_nk[(i % n) * k + i / n]).collect()
                        }
                    };
                    let pw =
                        pack_weights(&c, &upload_f32(&c, &dense), k, n, layout, to_api(gran), EPS)
                            .unwrap();
                    let got_s = read_f32(&c, pw.scales.clone());
                    let want_s = support::absmean_scales(&w_nk, n, k, gran, EPS);
                    for (g, w) in got_s.iter().zip(&want_s) {
                        assert!(
                            (g - w).abs() <= 1e-5 * w,
                            "scale {g} vs {w} ({gran:?} k={k} n={n})"
                        );
                    }
                    if !matches!(gran, Gran::Tensor) {
                        assert_eq!(got_s, want_s, "sequential sums must be bit-identical");
                    }
                    // Codes from the device's own scales: exact word equality.
                    let t = support::ternarize(&w_nk, n, k, gran, &got_s);
                    let words = read_u32(&c, pw.packed.clone());
                    assert_eq!(
                        words,
                        support::pack(&t, n, k),
                        "{gran:?} {layout:?} k={k} n={n}"
                    );
                    // Unpacking returns s_w ⊙ Wq exactly, in both layouts.
                    for out_layout in [WeightLayout::InputMajor, WeightLayout::OutputMajor] {
                        let dq = read_f32(&c, unpack_weights(&c, &pw, out_layout).unwrap());
                        for nn in 0..n {
                            for kk in 0..k {
                                let want = t[nn * k + kk] as f32 * got_s[gran.index(nn, kk, k)];
                                let idx = match out_layout {
                                    WeightLayout::InputMajor => kk * n + nn,
                                    WeightLayout::OutputMajor => nn * k + kk,
                                };
                                assert_eq!(dq[idx], want);
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn integer_accumulation_is_exact_on_every_path() {
    let c = client();
    let mut rng = StdRng::seed_from_u64(4);
    for &m in &MS {
        for &k in &KS {
            for &n in &NS {
                let x = random_vec(&mut rng, m * k, 2.0);
                let acts = quantize_activations(
                    &c,
                    &upload_f32(&c, &x),
                    m,
                    k,
                    ActivationGranularity::PerToken,
                    EPS,
                )
                .unwrap();
                let xq = activation_codes(&c, &acts);
                let (t, _, w) = random_packed(&c, &mut rng, n, k, Gran::Tensor);
                let want: Vec<i32> = (0..m * n)
                    .map(|i| support::acc_range(&xq, &t, k, i / n, i % n, 0, k))
                    .collect();
                let mut paths = vec![MatmulPath::TiledGemm, MatmulPath::Auto];
                if m <= GEMV_MAX_M {
                    paths.push(MatmulPath::Gemv);
                    paths.push(MatmulPath::GemvPlane);
                }
                for path in paths {
                    let got = read_i32(&c, ternary_matmul_i32(&c, &acts, &w, path).unwrap());
                    assert_eq!(got, want, "m={m} k={k} n={n} {path:?}");
                }
            }
        }
    }
}

#[test]
fn extreme_codes_accumulate_exactly() {
    // All activations at -128/127 and all weights ±1: the largest |acc| per k.
    let c = client();
    let (m, k, n) = (3, 300, 33);
    let x: Vec<f32> = (0..m * k)
        .map(|i| if i % 3 == 0 { -1.0 } else { 127.0 / 128.0 })
        .collect();
    let acts = quantize_activations(
        &c,
        &upload_f32(&c, &x),
        m,
        k,
        ActivationGranularity::PerTensor,
        EPS,
    )
    .unwrap();
    let xq = activation_codes(&c, &acts);
    assert!(xq.contains(&-127) || xq.contains(&-128));
    let t: Vec<i8> = (0..n * k)
        .map(|i| if i % 2 == 0 { -1 } else { 1 })
        .collect();
    let w = PackedWeights::from_handles(
        c.create_from_slice(u32::as_bytes(&support::pack(&t, n, k))),
        upload_f32(&c, &[1.0]),
        k,
        n,
        WeightGranularity::PerTensor,
    )
    .unwrap();
    let want: Vec<i32> = (0..m * n)
        .map(|i| support::acc_range(&xq, &t, k, i / n, i % n, 0, k))
        .collect();
    for path in [
        MatmulPath::Gemv,
        MatmulPath::GemvPlane,
        MatmulPath::TiledGemm,
    ] {
        assert_eq!(
            read_i32(&c, ternary_matmul_i32(&c, &acts, &w, path).unwrap()),
            want,
            "{path:?}"
        );
    }
}

#[test]
fn linear_outputs_match_reference() {
    let c = client();
    let mut rng = StdRng::seed_from_u64(5);
    let mut case = 0usize;
    for &m in &MS {
        for &k in &KS {
            for &n in &NS {
                case += 1;
                // Rotate granularities, bias and activation modes over the grid.
                let gran = Gran::ALL[case % 5];
                let per_tensor = case % 3 == 0;
                let with_bias = case % 2 == 0;
                let x = random_vec(&mut rng, m * k, 1.5);
                let xh = upload_f32(&c, &x);
                let (t, sw, w) = random_packed(&c, &mut rng, n, k, gran);
                let bias = random_vec(&mut rng, n, 0.5);
                let bh = upload_f32(&c, &bias);
                let ag = if per_tensor {
                    ActivationGranularity::PerTensor
                } else {
                    ActivationGranularity::PerToken
                };
                let (xq, sx) = support::quantize_acts(&x, m, k, per_tensor, EPS);
                let (want, mag) = support::linear(
                    &xq,
                    &sx,
                    &t,
                    &sw,
                    with_bias.then_some(&bias[..]),
                    m,
                    n,
                    k,
                    gran,
                );
                let mut paths = vec![MatmulPath::Auto, MatmulPath::TiledGemm];
                if m <= GEMV_MAX_M {
                    paths.push(MatmulPath::Gemv);
                    paths.push(MatmulPath::GemvPlane);
                }
                for path in paths {
                    let y =
                        ternary_linear(&c, &xh, m, k, &w, with_bias.then_some(&bh), ag, EPS, path)
                            .unwrap();
                    let what = format!(
                        "m={m} k={k} n={n} {gran:?} pt={per_tensor} bias={with_bias} {path:?}"
                    );
                    assert_close(&read_f32(&c, y), &want, &mag, &what);
                }
            }
        }
    }
}

#[test]
fn grad_input_matches_reference() {
    let c = client();
    let mut rng = StdRng::seed_from_u64(6);
    for (i, (&m, (&k, &n))) in MS.iter().zip(KS.iter().zip(NS.iter().cycle())).enumerate() {
        for extra in [0usize, 1] {
            let (k, n) = if extra == 1 { (k + 70, n + 20) } else { (k, n) };
            let gran = [Gran::Tensor, Gran::Channel, Gran::Group(32)][(i + extra) % 3];
            let (t, sw, w) = random_packed(&c, &mut rng, n, k, gran);
            let dy = random_vec(&mut rng, m * n, 1.0);
            let dx = read_f32(
                &c,
                ternary_grad_input(&c, &upload_f32(&c, &dy), m, &w).unwrap(),
            );
            for mm in 0..m {
                for kk in 0..k {
                    let mut want = 0f64;
                    let mut mag = 0f64;
                    for nn in 0..n {
                        let term = dy[mm * n + nn] as f64
                            * t[nn * k + kk] as f64
                            * sw[gran.index(nn, kk, k)] as f64;
                        want += term;
                        mag += term.abs();
                    }
                    let got = dx[mm * k + kk] as f64;
                    assert!(
                        (got - want).abs() <= 1e-5 * mag + 1e-7,
                        "m={m} k={k} n={n} {gran:?} [{mm},{kk}]: {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn dequantized_activations_match_reference() {
    let c = client();
    let mut rng = StdRng::seed_from_u64(8);
    for &(m, k) in &[(1usize, 1usize), (3, 17), (33, 100), (130, 300)] {
        let x = random_vec(&mut rng, m * k, 4.0);
        let acts = quantize_activations(
            &c,
            &upload_f32(&c, &x),
            m,
            k,
            ActivationGranularity::PerToken,
            EPS,
        )
        .unwrap();
        let (xq, sx) = support::quantize_acts(&x, m, k, false, EPS);
        let got = read_f32(&c, dequantize_activations(&c, &acts).unwrap());
        let want: Vec<f32> = (0..m * k).map(|i| xq[i] as f32 * sx[i / k]).collect();
        assert_eq!(got, want, "m={m} k={k}");
    }
}

#[test]
fn bad_shapes_are_refused() {
    let c = client();
    let x = upload_f32(&c, &[1.0; 64]);
    let q = quantize_activations(&c, &x, 2, 0, ActivationGranularity::PerToken, EPS);
    assert!(matches!(q, Err(Error::ZeroDim { name: "k" })), "{q:?}");
    let q = quantize_activations(&c, &x, 5, 16, ActivationGranularity::PerToken, EPS);
    assert!(matches!(q, Err(Error::BufferTooSmall { .. })), "{q:?}");
    let p = pack_weights(
        &c,
        &x,
        9,
        8,
        WeightLayout::InputMajor,
        WeightGranularity::PerTensor,
        EPS,
    );
    assert!(matches!(p, Err(Error::BufferTooSmall { .. })), "{p:?}");
    let p = pack_weights(
        &c,
        &x,
        8,
        4,
        WeightLayout::InputMajor,
        WeightGranularity::PerGroup(8),
        EPS,
    );
    assert!(matches!(p, Err(Error::BadGroupSize(8))), "{p:?}");
    let p = pack_weights(
        &c,
        &x,
        8,
        0,
        WeightLayout::InputMajor,
        WeightGranularity::PerTensor,
        EPS,
    );
    assert!(matches!(p, Err(Error::ZeroDim { name: "n" })), "{p:?}");

    let mut rng = StdRng::seed_from_u64(9);
    let (_, _, w) = random_packed(&c, &mut rng, 4, 16, Gran::Channel);
    // Wrong K, short bias, too short packed buffer, GEMV forced with M > 16.
    let r = ternary_linear(
        &c,
        &x,
        4,
        15,
        &w,
        None,
        ActivationGranularity::PerToken,
        EPS,
        MatmulPath::Auto,
    );
    assert!(matches!(r, Err(Error::ShapeMismatch(_))), "{r:?}");
    let short = upload_f32(&c, &[0.0; 3]);
    let r = ternary_linear(
        &c,
        &x,
        4,
        16,
        &w,
        Some(&short),
        ActivationGranularity::PerToken,
        EPS,
        MatmulPath::Auto,
    );
    assert!(
        matches!(r, Err(Error::BufferTooSmall { name: "bias", .. })),
        "{r:?}"
    );
    let r = PackedWeights::from_handles(
        short.clone(),
        w.scales.clone(),
        16,
        4,
        WeightGranularity::PerChannel,
    );
    assert!(
        matches!(r, Err(Error::BufferTooSmall { name: "packed", .. })),
        "{r:?}"
    );
    let big = upload_f32(&c, &[0.5; 17 * 16]);
    let r = ternary_linear(
        &c,
        &big,
        17,
        16,
        &w,
        None,
        ActivationGranularity::PerToken,
        EPS,
        MatmulPath::Gemv,
    );
    assert!(matches!(r, Err(Error::PathUnavailable { .. })), "{r:?}");
    let r = ternary_grad_input(&c, &short, 2, &w);
    assert!(
        matches!(r, Err(Error::BufferTooSmall { name: "dy", .. })),
        "{r:?}"
    );
}

#[test]
fn empty_batch_gives_empty_output() {
    let c = client();
    let mut rng = StdRng::seed_from_u64(10);
    let (_, _, w) = random_packed(&c, &mut rng, 7, 17, Gran::Tensor);
    let x = upload_f32(&c, &[0.0; 1]);
    for path in [MatmulPath::Auto, MatmulPath::TiledGemm, MatmulPath::Gemv] {
        let y = ternary_linear(
            &c,
            &x,
            0,
            17,
            &w,
            None,
            ActivationGranularity::PerToken,
            EPS,
            path,
        )
        .unwrap();
        assert_eq!(y.size_in_used(), 0, "{path:?}");
    }
    let dx = ternary_grad_input(&c, &x, 0, &w).unwrap();
    assert_eq!(dx.size_in_used(), 0);
}

#[test]
fn streaming_gemv_is_exact_for_every_batch_and_long_rows() {
    // The streaming GEMV for M = 1..=4 (1, 2 and 4 units per block), K long enough for several
    // accumulator flushes per unit (and a split over few and many k slots), all granularities;
    // extreme activations (±127/-128) with all-±1 weights give the largest partial sums.
    let c = client();
    let mut rng = StdRng::seed_from_u64(12);
    // Cube size 64 forces many blocks (several flushes) per unit; 0 restores the heuristic. Any
    // valid size gives exact results, so other tests running meanwhile are unaffected.
    // Depth 2 and 4 (blocks loaded per step) with the tail of K not a multiple of the step.
    for (units, depth) in [(64usize, 1usize), (0, 1), (64, 2), (0, 4)] {
        gemv_stream_units_override(units);
        gemv_stream_depth_override(depth);
        for m in 1..=GEMV_STREAM_MAX_M {
            for &(k, n) in &[(16usize, 16usize), (33, 5), (4100, 17), (20000, 17)] {
                for extreme in [false, true] {
                    let x: Vec<f32> = if extreme {
                        (0..m * k)
                            .map(|i| if i % 5 == 0 { -1.0 } else { 1.0 })
                            .collect()
                    } else {
                        random_vec(&mut rng, m * k, 1.0)
                    };
                    let acts = quantize_activations(
                        &c,
                        &upload_f32(&c, &x),
                        m,
                        k,
                        ActivationGranularity::PerToken,
                        EPS,
                    )
                    .unwrap();
                    let xq = activation_codes(&c, &acts);
                    let t: Vec<i8> = if extreme {
                        (0..n * k)
                            .map(|i| if i % 7 == 0 { -1 } else { 1 })
                            .collect()
                    } else {
                        (0..n * k).map(|_| rng.random_range(-1i8..=1)).collect()
                    };
                    let w = PackedWeights::from_handles(
                        c.create_from_slice(u32::as_bytes(&support::pack(&t, n, k))),
                        upload_f32(&c, &[1.0]),
                        k,
                        n,
                        WeightGranularity::PerTensor,
                    )
                    .unwrap();
                    let want: Vec<i32> = (0..m * n)
                        .map(|i| support::acc_range(&xq, &t, k, i / n, i % n, 0, k))
                        .collect();
                    let got = read_i32(
                        &c,
                        ternary_matmul_i32(&c, &acts, &w, MatmulPath::Gemv).unwrap(),
                    );
                    assert_eq!(
                        got, want,
                        "m={m} k={k} n={n} extreme={extreme} depth={depth}"
                    );
                }
                for gran in [Gran::Channel, Gran::Group(16), Gran::Group(48)] {
                    let x = random_vec(&mut rng, m * k, 1.0);
                    let (t, sw, w) = random_packed(&c, &mut rng, n, k, gran);
                    let bias = random_vec(&mut rng, n, 0.5);
                    let (xq, sx) = support::quantize_acts(&x, m, k, false, EPS);
                    let (want, mag) =
                        support::linear(&xq, &sx, &t, &sw, Some(&bias[..]), m, n, k, gran);
                    let y = ternary_linear(
                        &c,
                        &upload_f32(&c, &x),
                        m,
                        k,
                        &w,
                        Some(&upload_f32(&c, &bias)),
                        ActivationGranularity::PerToken,
                        EPS,
                        MatmulPath::Gemv,
                    )
                    .unwrap();
                    assert_close(
                        &read_f32(&c, y),
                        &want,
                        &mag,
                        &format!("m={m} k={k} n={n} {gran:?} depth={depth}"),
                    );
                }
            }
        }
    }
    gemv_stream_units_override(0);
    gemv_stream_depth_override(0);
}
