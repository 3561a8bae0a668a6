//! The GEMV plane-shuffle reduction, forced on lavapipe (which runs plane ops but does not report
//! them), checked for exact integer results. A separate binary because the switch is process-wide.

mod support;

use bitlinear_cubecl::*;
use cubecl::prelude::*;
use cubecl::wgpu::{WgpuDevice, WgpuRuntime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn gemv_with_plane_reduction_is_exact() {
    // SAFETY of set_var: this binary has a single test, so no other thread reads the environment.
    std::env::set_var(FORCE_PLANE_ENV, "1");
    let c = WgpuRuntime::client(&WgpuDevice::default());
    let mut rng = StdRng::seed_from_u64(11);
    for &m in &[1usize, 3, 16] {
        for &k in &[1usize, 17, 300, 1100] {
            for &n in &[1usize, 7, 65] {
                let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                let acts = quantize_activations(
                    &c,
                    &c.create_from_slice(f32::as_bytes(&x)),
                    m,
                    k,
                    ActivationGranularity::PerToken,
                    DEFAULT_EPS,
                )
                .unwrap();
                let (xq, _) = support::quantize_acts(&x, m, k, false, DEFAULT_EPS);
                let t: Vec<i8> = (0..n * k).map(|_| rng.random_range(-1i8..=1)).collect();
                let w = PackedWeights::from_handles(
                    c.create_from_slice(u32::as_bytes(&support::pack(&t, n, k))),
                    c.create_from_slice(f32::as_bytes(&[1.0])),
                    k,
                    n,
                    WeightGranularity::PerTensor,
                )
                .unwrap();
                let got = i32::from_bytes(
                    &c.read_one(ternary_matmul_i32(&c, &acts, &w, MatmulPath::GemvPlane).unwrap())
                        .unwrap(),
                )
                .to_vec();
                let want: Vec<i32> = (0..m * n)
                    .map(|i| support::acc_range(&xq, &t, k, i / n, i % n, 0, k))
                    .collect();
                assert_eq!(got, want, "m={m} k={k} n={n}");
            }
        }
    }
}
