//! Packed format: exact pack → unpack, size accounting, and validation of raw bytes.

use bitlinear_core::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

#[test]
fn pack_unpack_roundtrip_any_shape() {
    let mut rng = StdRng::seed_from_u64(1);
    for &(n, k) in &[
        (1, 1),
        (1, 17),
        (15, 3),
        (16, 16),
        (17, 33),
        (33, 255),
        (64, 257),
        (7, 1000),
    ] {
        let codes: Vec<i8> = (0..n * k).map(|_| rng.random_range(-1i8..=1)).collect();
        let tw = TernaryWeights {
            n,
            k,
            codes,
            scales: vec![0.5; n],
            granularity: WeightGranularity::PerChannel,
        };
        let p = PackedTernary::pack(&tw);
        assert_eq!(p.unpack(), tw);
        let q = PackedTernary::from_u32_words(
            n,
            k,
            tw.granularity,
            tw.scales.clone(),
            &p.to_u32_words(),
        )
        .unwrap();
        assert_eq!(q, p);
    }
}

#[test]
fn bytes_per_weight_is_a_quarter_plus_scales() {
    let p = PackedTernary::quantize(
        &vec![0.3; 4096 * 4096],
        4096,
        4096,
        WeightGranularity::PerTensor,
        1e-6,
    )
    .unwrap();
    assert_eq!(p.code_bytes(), 4096 * 4096 / 4);
    assert!((p.bytes_per_weight() - 0.25).abs() < 1e-6);
    let p = PackedTernary::quantize(
        &vec![0.3; 5 * 17],
        5,
        17,
        WeightGranularity::PerTensor,
        1e-6,
    )
    .unwrap();
    // Padded to one 16×32 tile pair: 2 blocks of 64 bytes + one scale.
    assert_eq!(p.total_bytes(), 2 * 64 + 4);
}

#[test]
fn corrupt_bytes_are_rejected() {
    let p = PackedTernary::quantize(
        &[0.3, -0.5, 0.0, 0.9, 0.1],
        1,
        5,
        WeightGranularity::PerTensor,
        1e-6,
    )
    .unwrap();
    let good = p.as_bytes().to_vec();
    let sc = p.scales().to_vec();
    let g = WeightGranularity::PerTensor;
    assert!(PackedTernary::from_bytes(1, 5, g, sc.clone(), &good).is_ok());
    // Truncated.
    let e = PackedTernary::from_bytes(1, 5, g, sc.clone(), &good[..63]).unwrap_err();
    assert!(matches!(e, BitLinearError::LengthMismatch { .. }), "{e}");
    // Code 3 somewhere.
    let mut bad = good.clone();
    bad[0] |= 0b11;
    let e = PackedTernary::from_bytes(1, 5, g, sc.clone(), &bad).unwrap_err();
    assert!(e.to_string().contains("code 3"), "{e}");
    // A nonzero weight in the padding (row 3 does not exist).
    let mut bad = good.clone();
    bad[12] = 0b1010_1010;
    let e = PackedTernary::from_bytes(1, 5, g, sc.clone(), &bad).unwrap_err();
    assert!(e.to_string().contains("padding"), "{e}");
    // Bad scales.
    for s in [f32::NAN, -1.0, 0.0, f32::INFINITY] {
        assert!(PackedTernary::from_bytes(1, 5, g, vec![s], &good).is_err());
    }
    assert!(PackedTernary::from_bytes(1, 5, g, vec![], &good).is_err());
    assert!(PackedTernary::from_bytes(0, 5, g, sc.clone(), &good).is_err());
    assert!(PackedTernary::from_bytes(1, 5, WeightGranularity::PerGroup(8), sc, &good).is_err());
}

#[test]
fn bad_inputs_give_typed_errors() {
    let g = WeightGranularity::PerTensor;
    assert_eq!(
        quantize_weights(&[], 1, 0, g, 1e-6).unwrap_err(),
        BitLinearError::ZeroDimension { name: "k" }
    );
    assert_eq!(
        quantize_weights(&[], 0, 4, g, 1e-6).unwrap_err(),
        BitLinearError::ZeroDimension { name: "n" }
    );
    assert!(matches!(
        quantize_weights(&[1.0; 5], 2, 3, g, 1e-6).unwrap_err(),
        BitLinearError::LengthMismatch { .. }
    ));
    assert!(matches!(
        quantize_weights(&[1.0, f32::NAN], 1, 2, g, 1e-6).unwrap_err(),
        BitLinearError::NonFiniteWeight { index: 1 }
    ));
    assert!(quantize_weights(&[1.0; 4], 1, 4, g, -1.0).is_err());
    assert!(quantize_weights(&[1.0; 4], 1, 4, g, f32::NAN).is_err());
    let w = PackedTernary::quantize(&[1.0; 8], 2, 4, g, 1e-6).unwrap();
    let opts = LinearOptions::default();
    // Wrong activation length.
    let e = linear(&[1.0; 7], 2, &w, None, &opts).unwrap_err();
    assert!(matches!(e, BitLinearError::ShapeMismatch(_)), "{e}");
    // Wrong bias length.
    let e = linear(&[1.0; 8], 2, &w, Some(&[0.0; 3]), &opts).unwrap_err();
    assert!(
        matches!(e, BitLinearError::LengthMismatch { name: "bias", .. }),
        "{e}"
    );
    // Empty batch: an empty result, not an error.
    assert!(linear(&[], 0, &w, None, &opts).unwrap().is_empty());
    // Output buffer of the wrong size.
    let mut out = vec![0.0; 3];
    assert!(linear_into(&[1.0; 8], 2, &w, None, &opts, &mut out).is_err());
    // K mismatch between pre-quantized activations and weights.
    let xq = quantize_activations(&[1.0; 10], 2, 5, ActivationGranularity::PerToken, 1e-6).unwrap();
    assert!(int_matmul(&xq, &w, None).is_err());
    // Unknown kernel name.
    assert!("avx9000".parse::<Kernel>().is_err());
    assert_eq!("avx512vnni".parse::<Kernel>().unwrap(), Kernel::Avx512Vnni);
}

#[test]
fn input_major_packing_matches_transpose_then_pack() {
    let mut rng = StdRng::seed_from_u64(9);
    for &(k, n) in &[(1, 1), (17, 5), (64, 33), (100, 16), (300, 47), (1024, 257)] {
        for gran in [
            WeightGranularity::PerTensor,
            WeightGranularity::PerChannel,
            WeightGranularity::PerGroup(32),
        ] {
            let w_kn: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let mut w_nk = vec![0f32; n * k];
            for r in 0..k {
                for c in 0..n {
                    w_nk[c * k + r] = w_kn[r * n + c];
                }
            }
            let want = quantize_weights(&w_nk, n, k, gran, 1e-6).unwrap();
            let mut codes = vec![7i8; n * k];
            let got =
                PackedTernary::quantize_input_major(&w_kn, k, n, gran, 1e-6, Some(&mut codes))
                    .unwrap();
            if gran == WeightGranularity::PerTensor {
                // Summed in another order: equal to f64 rounding, so equal as f32 here.
                let rel = (got.scales()[0] - want.scales[0]).abs() / want.scales[0];
                assert!(rel <= f32::EPSILON, "{rel}");
            }
            if got.scales() == want.scales.as_slice() {
                assert_eq!(got, PackedTernary::pack(&want), "k={k} n={n} {gran:?}");
                assert_eq!(codes, want.codes);
            }
            assert_eq!(got.unpack().codes, codes);
        }
    }
    // Errors as quantize_weights.
    assert!(PackedTernary::quantize_input_major(
        &[1.0, f32::NAN],
        2,
        1,
        WeightGranularity::PerTensor,
        1e-6,
        None
    )
    .is_err());
    assert!(PackedTernary::quantize_input_major(
        &[1.0; 3],
        2,
        2,
        WeightGranularity::PerTensor,
        1e-6,
        None
    )
    .is_err());
    assert!(PackedTernary::quantize_input_major(
        &[1.0; 4],
        2,
        2,
        WeightGranularity::PerTensor,
        1e-6,
        Some(&mut [0i8; 3])
    )
    .is_err());
}

/// Validation reads interior blocks a word at a time and re-checks only suspicious or padded
/// blocks: a code 3 anywhere, and a nonzero weight anywhere in the padding, must still be found
/// and named at the right row and column.
#[test]
fn corruption_anywhere_is_found_and_located() {
    let mut rng = StdRng::seed_from_u64(7);
    let g = WeightGranularity::PerTensor;
    for &(n, k) in &[(40, 70), (32, 64), (17, 300), (64, 1024)] {
        let w: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let p = PackedTernary::quantize(&w, n, k, g, 1e-6).unwrap();
        let good = p.as_bytes().to_vec();
        let sc = p.scales().to_vec();
        assert!(PackedTernary::from_u32_words(n, k, g, sc.clone(), &p.to_u32_words()).is_ok());
        for _ in 0..50 {
            // Byte b of block (t, kb), field s: row 16t + b/4, column 16kb + 4s + b%4.
            let i = rng.random_range(0..good.len());
            let s = rng.random_range(0..4);
            let (blk, b) = (i / 64, i % 64);
            let (t, kb) = (blk / p.blocks_k(), blk % p.blocks_k());
            let (row, col) = (16 * t + b / 4, 16 * kb + 4 * s + b % 4);
            let mut bad = good.clone();
            bad[i] |= 0b11 << (2 * s);
            let e = PackedTernary::from_bytes(n, k, g, sc.clone(), &bad).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("code 3") || msg.contains("padding"),
                "{n}x{k}: {msg}"
            );
            assert!(
                msg.contains(&format!("row {row}, column {col}")),
                "{n}x{k}: expected row {row}, column {col}: {msg}"
            );
            if row >= n || col >= k {
                // A padding field set to 0 (weight -1) instead of 3.
                let mut bad = good.clone();
                bad[i] &= !(0b11 << (2 * s));
                let e = PackedTernary::from_bytes(n, k, g, sc.clone(), &bad).unwrap_err();
                assert!(e.to_string().contains("padding"), "{e}");
                assert!(
                    e.to_string().contains(&format!("row {row}, column {col}")),
                    "{e}"
                );
            }
        }
    }
}

/// Words lent from a buffer that starts 4 bytes past a 64-byte boundary (as a framework's u32
/// tensor may): the kernels must give the same exact results as on owned, aligned blocks.
struct OffsetWords {
    buf: Vec<u32>,
    offset: usize,
    len: usize,
}

impl SharedWords for OffsetWords {
    fn words(&self) -> &[u32] {
        &self.buf[self.offset..self.offset + self.len]
    }
}

#[test]
fn shared_words_run_in_place_on_every_kernel() {
    let mut rng = StdRng::seed_from_u64(11);
    for &(m, n, k) in &[(1, 33, 70), (3, 17, 300), (17, 40, 1000), (64, 16, 16)] {
        let w: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let owned = PackedTernary::quantize(&w, n, k, WeightGranularity::PerChannel, 1e-6).unwrap();
        let words = owned.to_u32_words();
        // Find an offset whose start is not 64-byte aligned.
        let mut buf = vec![0u32; words.len() + 16];
        let offset = (0..16)
            .find(|&o| (buf[o..].as_ptr() as usize) % 64 == 4)
            .expect("some word offset is 4 mod 64");
        buf[offset..offset + words.len()].copy_from_slice(&words);
        let shared_words = std::sync::Arc::new(OffsetWords {
            buf,
            offset,
            len: words.len(),
        });
        let start = shared_words.words().as_ptr() as usize;
        let shared = PackedTernary::from_shared_words(
            n,
            k,
            WeightGranularity::PerChannel,
            owned.scales().to_vec(),
            shared_words,
        )
        .unwrap();
        // Zero-copy: the codes are read where the caller keeps them.
        assert_eq!(shared.as_bytes().as_ptr() as usize, start);
        assert_eq!(shared, owned);
        for kernel in Kernel::supported() {
            let opts = LinearOptions {
                kernel: Some(kernel),
                ..Default::default()
            };
            let want = linear(&x, m, &owned, None, &opts).unwrap();
            let got = linear(&x, m, &shared, None, &opts).unwrap();
            assert_eq!(got, want, "{kernel:?} m={m} n={n} k={k}");
        }
    }
    // Validation still applies to lent words.
    let bad = std::sync::Arc::new(OffsetWords {
        buf: vec![u32::MAX; 16],
        offset: 0,
        len: 16,
    });
    let e = PackedTernary::from_shared_words(1, 5, WeightGranularity::PerTensor, vec![1.0], bad)
        .unwrap_err();
    assert!(e.to_string().contains("code 3"), "{e}");
}

/// Input-major packing (the training forward's path) names the first non-finite weight, in
/// the input's `[k, n]` order, for every granularity and wherever the bad value sits.
#[test]
fn input_major_packing_rejects_non_finite_weights() {
    let (k, n) = (70, 130);
    for g in [
        WeightGranularity::PerTensor,
        WeightGranularity::PerChannel,
        WeightGranularity::PerGroup(32),
    ] {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for index in [0, 77, k * n / 2 + 5, k * n - 1] {
                let mut w: Vec<f32> = (0..k * n).map(|i| ((i % 13) as f32 - 6.0) / 6.0).collect();
                w[index] = bad;
                let e = PackedTernary::quantize_input_major(&w, k, n, g, 1e-6, None).unwrap_err();
                assert_eq!(e, BitLinearError::NonFiniteWeight { index }, "{g:?} {bad}");
            }
        }
        // Huge but finite weights are fine (the f64 sums cannot overflow).
        let w = vec![f32::MAX; k * n];
        assert!(PackedTernary::quantize_input_major(&w, k, n, g, 1e-6, None).is_ok());
    }
}
