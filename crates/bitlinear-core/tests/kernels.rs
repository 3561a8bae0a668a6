//! Every kernel this CPU supports vs the naive reference, on randomized shapes and values.
//! Integer results must match exactly; float outputs too (same operation order).

use bitlinear_core::*;
use rand::{rngs::StdRng, Rng, SeedableRng};

/// Shapes covering M = 1 and many, K not a multiple of 4/16/32/64/256, N odd and tiny.
fn shapes(rng: &mut StdRng) -> Vec<(usize, usize, usize)> {
    let mut v = vec![
        (1, 1, 1),
        (1, 3, 1),
        (1, 15, 7),
        (2, 17, 3),
        (3, 33, 17),
        (17, 100, 31),
        (64, 257, 33),
        (65, 300, 5),
        (1, 1023, 65),
        (130, 513, 47),
        (5, 4097, 9),
        (1, 2560, 129),
    ];
    for _ in 0..12 {
        let m = *[1usize, 2, 3, 7, 17, 33, 64, 80]
            .get(rng.random_range(0..8))
            .unwrap();
        v.push((m, rng.random_range(1..700), rng.random_range(1..90)));
    }
    v
}

fn random_weights(rng: &mut StdRng, n: usize, k: usize, style: usize) -> Vec<f32> {
    (0..n * k)
        .map(|_| match style {
            0 => 1.0,                                   // all +1
            1 => -1.0,                                  // all -1
            2 => 0.0,                                   // all zero (scale = eps)
            _ => rng.random_range(-1.0f32..1.0) * 0.05, // mixed
        })
        .collect()
}

fn random_activations(rng: &mut StdRng, m: usize, k: usize) -> Vec<f32> {
    (0..m * k)
        .map(|i| {
            if i % 13 == 0 {
                // Integer values exercise round-half-to-even ties.
                rng.random_range(-16i32..=16) as f32
            } else {
                rng.random_range(-3.0f32..3.0)
            }
        })
        .collect()
}

fn granularities() -> [WeightGranularity; 4] {
    [
        WeightGranularity::PerTensor,
        WeightGranularity::PerChannel,
        WeightGranularity::PerGroup(16),
        WeightGranularity::PerGroup(64),
    ]
}

#[test]
fn every_supported_kernel_matches_reference() {
    let mut rng = StdRng::seed_from_u64(0xB17);
    let kernels = Kernel::supported();
    println!("testing kernels: {kernels:?}");
    assert!(kernels.contains(&Kernel::Scalar));
    for (case, (m, k, n)) in shapes(&mut rng).into_iter().enumerate() {
        let style = case % 5;
        let gran = granularities()[case % 4];
        let w = random_weights(&mut rng, n, k, style.min(3));
        let tw = quantize_weights(&w, n, k, gran, DEFAULT_EPS).unwrap();
        let packed = PackedTernary::pack(&tw);
        let act = if case % 3 == 0 {
            ActivationGranularity::PerTensor
        } else {
            ActivationGranularity::PerToken
        };
        let x = random_activations(&mut rng, m, k);
        let xq = quantize_activations(&x, m, k, act, DEFAULT_EPS).unwrap();
        let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let want_int = reference::int_matmul(&xq, &tw);
        let want = reference::linear(&xq, &tw, Some(&bias));
        for &kern in &kernels {
            let got_int = int_matmul(&xq, &packed, Some(kern)).unwrap();
            assert_eq!(
                got_int, want_int,
                "int mismatch: kernel {kern}, m={m} k={k} n={n}"
            );
            let mut got = vec![f32::NAN; m * n];
            linear_quantized_into(&xq, &packed, Some(&bias), Some(kern), &mut got).unwrap();
            assert_eq!(
                got, want,
                "float mismatch: kernel {kern}, m={m} k={k} n={n} {gran:?}"
            );
            let opts = LinearOptions {
                activations: act,
                eps: DEFAULT_EPS,
                kernel: Some(kern),
            };
            let fused = linear(&x, m, &packed, Some(&bias), &opts).unwrap();
            assert_eq!(
                fused, want,
                "fused mismatch: kernel {kern}, m={m} k={k} n={n}"
            );
        }
    }
}

#[test]
fn extreme_activation_codes_do_not_overflow() {
    // All activations -128 against all +1 and all -1 weights: the largest magnitudes.
    let (m, k, n) = (3, 4099, 19);
    for sign in [1i8, -1] {
        let tw = TernaryWeights {
            n,
            k,
            codes: vec![sign; n * k],
            scales: vec![1.0],
            granularity: WeightGranularity::PerTensor,
        };
        let packed = PackedTernary::pack(&tw);
        let codes = vec![-128i8; m * k];
        let xq = QuantizedActivations::from_codes(&codes, m, k, &[1.0; 3]).unwrap();
        let want = reference::int_matmul(&xq, &tw);
        assert_eq!(want[0], -128 * k as i32 * sign as i32);
        for kern in Kernel::supported() {
            assert_eq!(
                int_matmul(&xq, &packed, Some(kern)).unwrap(),
                want,
                "kernel {kern}"
            );
        }
    }
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let mut rng = StdRng::seed_from_u64(7);
    let (m, k, n) = (70, 1000, 333);
    let w = random_weights(&mut rng, n, k, 3);
    let packed =
        PackedTernary::quantize(&w, n, k, WeightGranularity::PerTensor, DEFAULT_EPS).unwrap();
    let x = random_activations(&mut rng, m, k);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let three = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let opts = LinearOptions::default();
    let a = one.install(|| linear(&x, m, &packed, None, &opts).unwrap());
    let b = three.install(|| linear(&x, m, &packed, None, &opts).unwrap());
    assert_eq!(a, b);
}

#[test]
fn forcing_an_unsupported_kernel_is_an_error() {
    let tw = quantize_weights(&[0.5; 32], 2, 16, WeightGranularity::PerTensor, 1e-6).unwrap();
    let packed = PackedTernary::pack(&tw);
    let xq =
        quantize_activations(&[1.0; 16], 1, 16, ActivationGranularity::PerToken, 1e-6).unwrap();
    for kern in Kernel::ALL {
        let r = int_matmul(&xq, &packed, Some(kern));
        if kern.is_supported() {
            assert!(r.is_ok());
        } else {
            assert!(
                matches!(r, Err(BitLinearError::UnsupportedKernel(_))),
                "{kern}: {r:?}"
            );
        }
    }
}

#[test]
fn very_long_k_stays_exact() {
    // K beyond 2^14 blocks: the few-row AVX-512 kernel folds its accumulators in chunks.
    let (k, n) = (16384 * 16 + 40, 3);
    let mut rng = StdRng::seed_from_u64(11);
    for m in [1usize, 2, 3] {
        let codes: Vec<i8> = (0..n * k)
            .map(|i| {
                if i % 7 == 0 {
                    0
                } else if i % 2 == 0 {
                    1
                } else {
                    -1
                }
            })
            .collect();
        let tw = TernaryWeights {
            n,
            k,
            codes,
            scales: vec![1.0],
            granularity: WeightGranularity::PerTensor,
        };
        let packed = PackedTernary::pack(&tw);
        let x: Vec<i8> = (0..m * k)
            .map(|i| {
                if i % 3 == 0 {
                    -128
                } else {
                    rng.random_range(-128i32..=127) as i8
                }
            })
            .collect();
        let xq = QuantizedActivations::from_codes(&x, m, k, &vec![1.0; m]).unwrap();
        let want = reference::int_matmul(&xq, &tw);
        for kern in Kernel::supported() {
            assert_eq!(
                int_matmul(&xq, &packed, Some(kern)).unwrap(),
                want,
                "kernel {kern}, m={m}"
            );
        }
    }
}

#[test]
fn few_row_calls_match_reference_on_any_pool() {
    // M ≤ 4 from `linear` splits the work before quantizing and lets the threads claim chunks
    // of tiles: check it on pools of several sizes, every kernel and weight granularity, with
    // N giving uneven chunk counts and K spanning one to several tiles per chunk.
    let mut rng = StdRng::seed_from_u64(0x5917);
    let pools: Vec<rayon::ThreadPool> = [2, 3, 4]
        .iter()
        .map(|&t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
        })
        .collect();
    let shapes = [
        (1, 1024, 1024),
        (1, 4100, 33),
        (2, 300, 517),
        (3, 257, 1001),
        (4, 2048, 47),
        (1, 64, 4096),
    ];
    for (case, &(m, k, n)) in shapes.iter().enumerate() {
        let gran = granularities()[case % 4];
        let w = random_weights(&mut rng, n, k, 3);
        let tw = quantize_weights(&w, n, k, gran, DEFAULT_EPS).unwrap();
        let packed = PackedTernary::pack(&tw);
        let mut x = random_activations(&mut rng, m, k);
        if m > 1 {
            x[k + 5] = f32::INFINITY; // row 1 is non-finite: NaN outputs, others unaffected
        }
        let bias: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        for act in [
            ActivationGranularity::PerToken,
            ActivationGranularity::PerTensor,
        ] {
            let xq = quantize_activations(&x, m, k, act, DEFAULT_EPS).unwrap();
            let want = reference::linear(&xq, &tw, Some(&bias));
            for pool in &pools {
                for kern in Kernel::supported() {
                    let opts = LinearOptions {
                        activations: act,
                        eps: DEFAULT_EPS,
                        kernel: Some(kern),
                    };
                    let got = pool.install(|| linear(&x, m, &packed, Some(&bias), &opts).unwrap());
                    // NaN != NaN: compare bit patterns.
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "kernel {kern}, {} threads, m={m} k={k} n={n} {gran:?} {act:?}",
                        pool.current_num_threads()
                    );
                }
            }
        }
    }
}

#[test]
fn nested_calls_from_rayon_tasks_agree() {
    // Layers run from inside rayon tasks (one per sequence, say): a thread waiting in one
    // call's join may run another call; each must get its own activation buffer.
    let mut rng = StdRng::seed_from_u64(11);
    let (k, n) = (1024, 1024);
    let w = random_weights(&mut rng, n, k, 3);
    let packed =
        PackedTernary::quantize(&w, n, k, WeightGranularity::PerTensor, DEFAULT_EPS).unwrap();
    let opts = LinearOptions::default();
    for m in [1, 2, 9, 64] {
        let xs: Vec<Vec<f32>> = (0..16)
            .map(|_| random_activations(&mut rng, m, k))
            .collect();
        let want: Vec<Vec<f32>> = xs
            .iter()
            .map(|x| linear(x, m, &packed, None, &opts).unwrap())
            .collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let got: Vec<Vec<f32>> = pool.install(|| {
            use rayon::prelude::*;
            xs.par_iter()
                .map(|x| linear(x, m, &packed, None, &opts).unwrap())
                .collect()
        });
        assert_eq!(got, want, "m={m}");
    }
}
