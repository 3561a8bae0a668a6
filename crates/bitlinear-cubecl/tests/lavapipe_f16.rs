//! The layer in f16 (`ternary_linear_as` with `FloatDtype::F16`) on Wgpu (Mesa lavapipe in CI):
//! its output must be exactly the f32 layer's output on the same (f16) values, rounded once to
//! f16, on every CubeCL path, granularity and batch shape; bf16, which Wgpu lacks, is refused.

mod support;

use bitlinear_cubecl::*;
use cubecl::prelude::*;
use cubecl::server::Handle;
use cubecl::wgpu::{WgpuDevice, WgpuRuntime};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::Gran;

type R = WgpuRuntime;

fn client() -> ComputeClient<R> {
    R::client(&WgpuDevice::default())
}

fn upload<T: CubeElement>(c: &ComputeClient<R>, v: &[T]) -> Handle {
    c.create_from_slice(T::as_bytes(v))
}

fn to_api(g: Gran) -> WeightGranularity {
    match g {
        Gran::Tensor => WeightGranularity::PerTensor,
        Gran::Channel => WeightGranularity::PerChannel,
        Gran::Group(s) => WeightGranularity::PerGroup(s),
    }
}

/// Random values already representable in f16, as f16 and as f32.
fn f16_values(rng: &mut StdRng, len: usize, scale: f32) -> (Vec<f16>, Vec<f32>) {
    let h: Vec<f16> = (0..len)
        .map(|_| f16::from_f32(rng.random_range(-1.0f32..1.0) * scale))
        .collect();
    let f = h.iter().map(|v| v.to_f32()).collect();
    (h, f)
}

#[test]
fn f16_layer_is_the_f32_layer_rounded_once() {
    let c = client();
    if !FloatDtype::F16.supported(&c) {
        eprintln!("skipped: this Vulkan device has no f16 arithmetic");
        return;
    }
    let mut rng = StdRng::seed_from_u64(16);
    let mut case = 0usize;
    // Few shapes: every kernel configuration compiles twice (f32 and f16) on lavapipe.
    for m in [1usize, 3, 33] {
        for k in [100usize, 300] {
            for n in [7usize, 65] {
                case += 1;
                let gran = [Gran::Tensor, Gran::Channel, Gran::Group(32)][case % 3];
                let per_tensor = case.is_multiple_of(4);
                let with_bias = case % 2 == 1;
                let ag = if per_tensor {
                    ActivationGranularity::PerTensor
                } else {
                    ActivationGranularity::PerToken
                };
                let (x16, x32) = f16_values(&mut rng, m * k, 3.0);
                let (b16, b32) = f16_values(&mut rng, n, 0.5);
                let t: Vec<i8> = (0..n * k).map(|_| rng.random_range(-1i8..=1)).collect();
                let sw: Vec<f32> = (0..gran.count(n, k))
                    .map(|_| rng.random_range(0.01f32..0.2))
                    .collect();
                let packed = upload(&c, &support::pack(&t, n, k));
                let w = PackedWeights::from_handles(packed, upload(&c, &sw), k, n, to_api(gran))
                    .unwrap();
                let (xh16, xh32) = (upload(&c, &x16), upload(&c, &x32));
                let (bh16, bh32) = (upload(&c, &b16), upload(&c, &b32));
                let mut paths = vec![MatmulPath::Auto, MatmulPath::TiledGemm];
                if m <= GEMV_MAX_M {
                    paths.extend([MatmulPath::Gemv, MatmulPath::GemvPlane]);
                }
                for path in paths {
                    let what = format!(
                        "m={m} k={k} n={n} {gran:?} pt={per_tensor} bias={with_bias} {path:?}"
                    );
                    let run = |x, b, dtype| {
                        let b = with_bias.then_some(b);
                        ternary_linear_as(&c, x, m, k, &w, b, ag, DEFAULT_EPS, path, dtype).unwrap()
                    };
                    let y32 = run(&xh32, &bh32, FloatDtype::F32);
                    let y16 = run(&xh16, &bh16, FloatDtype::F16);
                    let y32 = f32::from_bytes(&c.read_one(y32).unwrap()).to_vec();
                    let y16 = f16::from_bytes(&c.read_one(y16).unwrap()).to_vec();
                    assert_eq!(y16.len(), m * n, "{what}: length");
                    for (i, (&got, &want)) in y16.iter().zip(&y32).enumerate() {
                        assert_eq!(
                            got.to_bits(),
                            f16::from_f32(want).to_bits(),
                            "{what}: element {i}: f16 {got} vs f32 {want}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn f16_buffers_are_sized_in_f16_and_bf16_is_refused_where_missing() {
    let c = client();
    if !FloatDtype::F16.supported(&c) {
        eprintln!("skipped: this Vulkan device has no f16 arithmetic");
        return;
    }
    let (m, k, n) = (2, 32, 16);
    let t: Vec<i8> = vec![1; n * k];
    let w = PackedWeights::from_handles(
        upload(&c, &support::pack(&t, n, k)),
        upload(&c, &[0.1f32]),
        k,
        n,
        WeightGranularity::PerTensor,
    )
    .unwrap();
    let x = upload(&c, &vec![f16::ONE; m * k]);
    let run = |x: &Handle, bias: Option<&Handle>, dtype| {
        ternary_linear_as(
            &c,
            x,
            m,
            k,
            &w,
            bias,
            ActivationGranularity::PerToken,
            DEFAULT_EPS,
            MatmulPath::Auto,
            dtype,
        )
    };
    // An f16 input holds half the bytes of an f32 one: as f32 it is too small.
    assert!(matches!(
        run(&x, None, FloatDtype::F32),
        Err(Error::BufferTooSmall { name: "x", .. })
    ));
    let short_bias = upload(&c, &vec![f16::ONE; n - 1]);
    assert!(matches!(
        run(&x, Some(&short_bias), FloatDtype::F16),
        Err(Error::BufferTooSmall { name: "bias", .. })
    ));
    // All-ones rows: every output is K · s_w = 3.2 (to f16 rounding).
    let y = run(&x, None, FloatDtype::F16).unwrap();
    let y = f16::from_bytes(&c.read_one(y).unwrap()).to_vec();
    assert!(y.iter().all(|v| *v == f16::from_f32(3.2)), "{y:?}");
    if !FloatDtype::BF16.supported(&c) {
        assert_eq!(
            run(&x, None, FloatDtype::BF16).unwrap_err(),
            Error::UnsupportedDtype(FloatDtype::BF16)
        );
    }
}
