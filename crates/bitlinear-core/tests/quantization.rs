//! Quantization vs hand-computed cases of the formulas in DEVELOPERS.md.

use bitlinear_core::*;

#[test]
fn weights_per_tensor_absmean_and_ties_round_to_even() {
    // mean|W| = (0.5 + 1.5 + 2.5 + 0.25 + 0 + 3.25) / 6 = 8 / 6
    let w = [0.5f32, -1.5, 2.5, 0.25, 0.0, -3.25];
    let t = quantize_weights(&w, 2, 3, WeightGranularity::PerTensor, 1e-6).unwrap();
    let s = 8.0f32 / 6.0;
    assert!((t.scales[0] - s).abs() < 1e-7);
    // 0.5/1.333 = 0.375 → 0; -1.5/1.333 = -1.125 → -1; 2.5/1.333 → 1 (clamped); 0.1875 → 0.
    assert_eq!(t.codes, vec![0, -1, 1, 0, 0, -1]);
}

#[test]
fn weight_exact_half_rounds_to_even_zero() {
    // mean|W| = 1, so W/s = 0.5 exactly: half to even gives 0 (f32::round would give 1).
    let w = [0.5f32, 1.5, 1.0, 1.0];
    let t = quantize_weights(&w, 1, 4, WeightGranularity::PerTensor, 1e-6).unwrap();
    assert_eq!(t.scales[0], 1.0);
    assert_eq!(t.codes, vec![0, 1, 1, 1]); // 1.5 → 2 → clamped to 1
}

#[test]
fn all_zero_weights_use_eps() {
    let t = quantize_weights(&[0.0; 8], 2, 4, WeightGranularity::PerChannel, 1e-3).unwrap();
    assert_eq!(t.scales, vec![1e-3, 1e-3]);
    assert!(t.codes.iter().all(|&c| c == 0));
}

#[test]
fn per_channel_and_per_group_scales() {
    // Row 0 mean|.| = 1, row 1 mean|.| = 3.
    let mut w = vec![1.0f32; 32];
    w.extend(vec![-3.0f32; 16]);
    w.extend(vec![3.0f32; 16]);
    let t = quantize_weights(&w, 2, 32, WeightGranularity::PerChannel, 1e-6).unwrap();
    assert_eq!(t.scales, vec![1.0, 3.0]);
    let g = quantize_weights(&w, 2, 32, WeightGranularity::PerGroup(16), 1e-6).unwrap();
    assert_eq!(g.scales, vec![1.0, 1.0, 3.0, 3.0]);
    assert_eq!(&g.codes[32..48], &[-1i8; 16]);
    // A partial last group: K = 40 with groups of 16 → 3 groups, the last of 8 columns.
    let w40: Vec<f32> = (0..40).map(|i| if i < 32 { 1.0 } else { 2.0 }).collect();
    let p = quantize_weights(&w40, 1, 40, WeightGranularity::PerGroup(16), 1e-6).unwrap();
    assert_eq!(p.scales, vec![1.0, 1.0, 2.0]);
}

#[test]
fn activations_per_token_absmax_with_ties() {
    // absmax 127 → s_x = 1, so integer inputs map to themselves; 2.5 → 2 and -0.5 → -0 (ties).
    let x = [127.0f32, 2.5, -0.5, 3.5, -127.0, 0.0, 0.0, 0.0];
    let q = quantize_activations(&x, 2, 4, ActivationGranularity::PerToken, 1e-6).unwrap();
    assert_eq!(q.scales(), &[1.0, 1.0]);
    assert_eq!(q.row(0), &[127, 2, 0, 4]);
    // Row 1: absmax 127 too.
    assert_eq!(q.row(1), &[-127, 0, 0, 0]);
}

#[test]
fn activations_all_zero_row_uses_eps() {
    let q = quantize_activations(&[0.0; 5], 1, 5, ActivationGranularity::PerToken, 1e-6).unwrap();
    assert_eq!(q.scales()[0], 1e-6 / 127.0);
    assert!(q.row(0).iter().all(|&c| c == 0));
}

#[test]
fn activations_per_tensor_share_one_scale() {
    let x = [1.0f32, -2.0, 254.0, 0.5];
    let q = quantize_activations(&x, 2, 2, ActivationGranularity::PerTensor, 1e-6).unwrap();
    assert_eq!(q.scales(), &[2.0, 2.0]);
    // 1/2 = 0.5 → 0 (tie to even), -2/2 = -1, 127, 0.25 → 0.
    assert_eq!(q.row(0), &[0, -1]);
    assert_eq!(q.row(1), &[127, 0]);
}

#[test]
fn non_finite_activations_give_nan_rows() {
    let x = [
        1.0f32,
        f32::NAN,
        2.0,
        3.0,
        1.0,
        1.0,
        f32::INFINITY,
        0.0,
        1.0,
    ];
    let q = quantize_activations(&x, 3, 3, ActivationGranularity::PerToken, 1e-6).unwrap();
    assert!(q.scales()[0].is_nan());
    assert!(q.scales()[1].is_finite());
    assert!(q.scales()[2].is_nan());
    let w = PackedTernary::quantize(&[1.0; 6], 2, 3, WeightGranularity::PerTensor, 1e-6).unwrap();
    let y = linear(&x, 3, &w, None, &LinearOptions::default()).unwrap();
    assert!(y[0].is_nan() && y[1].is_nan());
    assert!(y[2].is_finite() && y[3].is_finite());
    assert!(y[4].is_nan() && y[5].is_nan());
    // Per tensor, one bad value poisons every row.
    let opts = LinearOptions {
        activations: ActivationGranularity::PerTensor,
        ..Default::default()
    };
    let y = linear(&x, 3, &w, None, &opts).unwrap();
    assert!(y.iter().all(|v| v.is_nan()));
}

#[test]
fn long_rows_quantize_like_the_scalar_formula() {
    // Exercises the vectorized absmax/round paths (length not a multiple of the lane count).
    let x: Vec<f32> = (0..1001)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37)
        .collect();
    let q = quantize_activations(&x, 1, 1001, ActivationGranularity::PerToken, 1e-6).unwrap();
    let absmax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let s = absmax / 127.0;
    assert_eq!(q.scales()[0], s);
    for (i, &v) in x.iter().enumerate() {
        let want = (v / s).round_ties_even().clamp(-128.0, 127.0) as i8;
        assert_eq!(q.row(0)[i], want, "index {i}");
    }
}

#[test]
fn quant_type_strings() {
    let t: QuantType = "ai8pc_wpt".parse().unwrap();
    assert_eq!(t, QuantType::BITNET);
    assert_eq!(t.to_string(), "ai8pc_wpt");
    let t: QuantType = "AI8PT_WPC".parse().unwrap();
    assert_eq!(t.activations, ActivationGranularity::PerTensor);
    assert_eq!(t.weights, WeightGranularity::PerChannel);
    assert_eq!(
        "ai8ptk_wpg".parse::<QuantType>().unwrap().weights,
        WeightGranularity::PerGroup(128)
    );
    assert_eq!(
        "ai8pc_wpg64".parse::<QuantType>().unwrap().weights,
        WeightGranularity::PerGroup(64)
    );
    for bad in [
        "",
        "ai8pc",
        "ai4pc_wpt",
        "ai8pc_wxx",
        "ai8pc_wpg0",
        "ai8pc_wpg10",
        "ai8pc_wpgx",
    ] {
        assert!(bad.parse::<QuantType>().is_err(), "{bad} should not parse");
    }
    for t in QuantType::all() {
        assert_eq!(t.to_string().parse::<QuantType>().unwrap(), t);
    }
    assert_eq!(QuantType::all().len(), 6);
}

#[test]
fn absmax_finds_the_largest_magnitude_and_any_non_finite_value() {
    // Long rows (vectorized), the extreme value at every kind of position, signed zeros and
    // subnormals included.
    let k = 1037;
    for pos in [0, 1, 15, 16, 511, 1024, 1036] {
        for extreme in [-7.5f32, 7.5, f32::MIN_POSITIVE / 4.0, -0.0] {
            let mut x: Vec<f32> = (0..k)
                .map(|i| {
                    if extreme.abs() >= 1.0 {
                        ((i % 7) as f32 - 3.0) * 0.5
                    } else {
                        0.0
                    }
                })
                .collect();
            x[pos] = extreme;
            let q = quantize_activations(&x, 1, k, ActivationGranularity::PerToken, 1e-30).unwrap();
            let absmax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
            assert_eq!(
                q.scales()[0],
                absmax.max(1e-30) / 127.0,
                "pos {pos} {extreme}"
            );
        }
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut x = vec![1.0f32; k];
            x[pos] = bad;
            let q = quantize_activations(&x, 1, k, ActivationGranularity::PerToken, 1e-6).unwrap();
            assert!(q.scales()[0].is_nan(), "pos {pos} {bad}");
            assert!(q.row(0).iter().all(|&c| c == 0));
        }
    }
}
