//! The CubeCL kernel path of BitLinear on Wgpu (Mesa lavapipe in CI): that the kernels are the
//! path taken, their results against the f64 formulas, batch sizes reaching both the GEMV
//! (M ≤ 16) and the tiled GEMM (M > 16; cmma needs CUDA), device packing against
//! bitlinear-core's, and records crossing between NdArray and Wgpu.
//! Shapes stay small: lavapipe is a software rasterizer.

mod common;

use bitlinear_burn::{
    from_safetensors_bytes, to_safetensors_bytes, BitLinear, BitLinearBackend, BitLinearConfig,
    BitLinearError,
};
use burn::backend::{Autodiff, NdArray, Wgpu};
use burn::module::Param;
use burn::tensor::{DType, Int, Tensor, TensorData, TensorPrimitive};
use common::checks::{self, to_vec};
use common::*;

type B = Wgpu;
type AB = Autodiff<Wgpu>;

fn dev() -> burn::backend::wgpu::WgpuDevice {
    Default::default()
}

/// M > 16 takes the tiled GEMM; K and N are not multiples of 16 or of the 64-wide tiles.
const GEMM_SHAPE: (usize, usize, usize) = (20, 70, 21);

fn int_values<Bk: burn::tensor::backend::Backend>(t: Tensor<Bk, 2, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().to_vec::<i64>().unwrap()
}

#[test]
fn training_forward_takes_the_kernel_path_and_saves_int8_and_packed_codes() {
    let (m, k, n) = (3, 37, 10);
    let quant = "ai8pc_wpt";
    let (layer, w, b) = checks::layer::<B>(&dev(), k, n, quant, true, 1);
    let x = random(&mut rng(2), m * k, 2.0);
    let xt = Tensor::<B, 2>::from_data(TensorData::new(x.clone(), [m, k]), &dev());
    let prim = |t: Tensor<B, 2>| t.into_primitive().tensor();
    let bias = layer.bias.as_ref().unwrap().val();
    let (y, saved) = B::bitlinear_forward_saving(
        prim(xt),
        prim(layer.weight.as_ref().unwrap().val()),
        Some(bias.into_primitive().tensor()),
        spec(quant),
    );
    // The kernel path keeps 2-bit packed words for backward; the fallback keeps int8 codes.
    assert_eq!(saved.w_codes.dtype, DType::U32, "kernel path taken");
    assert_eq!(saved.x_codes.dtype, DType::I8);
    let reference = Reference::new(&x, m, &w, k, n, b.as_deref(), spec(quant));
    let y: Tensor<B, 2> = Tensor::from_primitive(TensorPrimitive::Float(y));
    assert_close("kernel forward", &to_vec(y), &reference.forward(), 1e-5);
    // The saved codes read through Burn (a strided view of the padded buffer) are exact.
    let codes = int_values(Tensor::<B, 2, Int>::from_primitive(saved.x_codes));
    let want: Vec<i64> = reference.xq.iter().map(|&v| v as i64).collect();
    assert_eq!(codes, want, "saved int8 activation codes");
    let scales: Tensor<B, 2> = Tensor::from_primitive(TensorPrimitive::Float(saved.x_scales));
    assert_eq!(scales.dims(), [m, 1]);
    let scales = to_vec(scales);
    for (got, want) in scales.iter().zip(&reference.sx) {
        assert_eq!(*got as f64, *want, "activation scale");
    }
}

#[test]
fn forward_matches_reference_on_gemv_and_tiled_gemm_batches() {
    let (m, k, n) = GEMM_SHAPE;
    for (i, quant) in QUANTS.iter().enumerate() {
        checks::forward_matches_reference::<B>(&dev(), m, k, n, quant, i % 2 == 0, 300 + i as u64);
    }
    // M = 16 is the largest GEMV batch; M = 17 the smallest tiled one.
    checks::forward_matches_reference::<B>(&dev(), 16, 48, 5, "ai8pc_wpc", true, 310);
    checks::forward_matches_reference::<B>(&dev(), 17, 48, 5, "ai8pc_wpc", true, 311);
}

#[test]
fn gradients_match_ste_formulas_on_tiled_batches() {
    let (m, k, n) = GEMM_SHAPE;
    for (i, quant) in QUANTS.iter().enumerate() {
        checks::grads_match_reference::<AB>(&dev(), m, k, n, quant, i % 2 == 1, 400 + i as u64);
    }
}

#[test]
fn deployed_equals_eval_on_tiled_batches() {
    let (m, k, n) = GEMM_SHAPE;
    for (i, quant) in QUANTS.iter().enumerate() {
        checks::deployed_matches_eval::<B>(&dev(), m, k, n, quant, 500 + i as u64);
    }
}

#[test]
fn sliced_input_with_a_buffer_offset_is_read_correctly() {
    let (k, n) = (64, 9);
    let (layer, _, _) = checks::layer::<B>(&dev(), k, n, "ai8pc_wpt", true, 21);
    let big = Tensor::<B, 2>::from_data(
        TensorData::new(random(&mut rng(22), 8 * k, 1.0), [8, k]),
        &dev(),
    );
    let view = big.slice([4..7, 0..k]);
    let copy = Tensor::<B, 2>::from_data(view.clone().into_data(), &dev());
    assert_eq!(
        to_vec(layer.forward(view.clone())),
        to_vec(layer.forward(copy.clone()))
    );
    let deployed = layer.deploy();
    assert_eq!(
        to_vec(deployed.forward(view)),
        to_vec(deployed.forward(copy))
    );
}

#[test]
fn deployed_input_gradient_matches_the_formula() {
    let (m, k, n) = (4, 45, 11);
    for (i, quant) in QUANTS.iter().enumerate() {
        let seed = 600 + i as u64;
        let (layer, w, b) = checks::layer::<AB>(&dev(), k, n, quant, true, seed);
        let deployed = layer.deploy();
        let mut r = rng(seed + 1);
        let x = random(&mut r, m * k, 1.0);
        let dy = random(&mut r, m * n, 1.0);
        let xt =
            Tensor::<AB, 2>::from_data(TensorData::new(x.clone(), [m, k]), &dev()).require_grad();
        let g = Tensor::<AB, 2>::from_data(TensorData::new(dy.clone(), [m, n]), &dev());
        let grads = deployed.forward(xt.clone()).mul(g).sum().backward();
        let reference = Reference::new(&x, m, &w, k, n, b.as_deref(), spec(quant));
        assert_close(
            &format!("deployed dx {quant}"),
            &to_vec(xt.grad(&grads).expect("dx")),
            &reference.grad_x(&dy),
            1e-5,
        );
    }
}

/// A layer with the given weight on backend `Bk`.
fn layer_with<Bk: BitLinearBackend>(
    dev: &Bk::Device,
    w: &[f32],
    b: &[f32],
    k: usize,
    n: usize,
    quant: &str,
) -> BitLinear<Bk> {
    let mut layer = BitLinearConfig::new(k, n)
        .with_quant(quant.to_string())
        .init::<Bk>(dev);
    layer.weight = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(w.to_vec(), [k, n]),
        dev,
    )));
    layer.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(b.to_vec(), [n]),
        dev,
    )));
    layer
}

#[test]
fn device_packing_equals_core_packing_and_records_cross_backends() {
    let (m, k, n) = (5, 50, 19);
    let nd_dev = Default::default();
    for (i, quant) in QUANTS.iter().enumerate() {
        let mut r = rng(700 + i as u64);
        let w = random(&mut r, k * n, 0.5);
        let b = random(&mut r, n, 0.3);
        let x = random(&mut r, m * k, 2.0);
        let on_nd = layer_with::<NdArray>(&nd_dev, &w, &b, k, n, quant).deploy();
        let on_gpu = layer_with::<B>(&dev(), &w, &b, k, n, quant).deploy();
        // Same words (bitlinear-core's layout) and scales from host and device packing.
        assert_eq!(
            int_values(on_gpu.packed_weight.as_ref().unwrap().val()),
            int_values(on_nd.packed_weight.as_ref().unwrap().val()),
            "packed words {quant}"
        );
        let gpu_scales = to_vec(on_gpu.weight_scale.as_ref().unwrap().val());
        let nd_scales: Vec<f64> = to_vec(on_nd.weight_scale.as_ref().unwrap().val())
            .iter()
            .map(|&v| v as f64)
            .collect();
        assert_close(
            &format!("weight scales {quant}"),
            &gpu_scales,
            &nd_scales,
            1e-6,
        );

        // A record deployed on one backend loads and runs on the other.
        let x_nd = Tensor::<NdArray, 2>::from_data(TensorData::new(x.clone(), [m, k]), &nd_dev);
        let x_gpu = Tensor::<B, 2>::from_data(TensorData::new(x.clone(), [m, k]), &dev());
        let y_nd = to_vec(on_nd.forward(x_nd.clone()));
        let nd_to_gpu = from_safetensors_bytes(
            BitLinearConfig::new(k, n)
                .with_quant(quant.to_string())
                .init::<B>(&dev())
                .deploy(),
            to_safetensors_bytes(&on_nd).unwrap(),
        )
        .unwrap();
        let gpu_to_nd = from_safetensors_bytes(
            BitLinearConfig::new(k, n)
                .with_quant(quant.to_string())
                .init::<NdArray>(&nd_dev)
                .deploy(),
            to_safetensors_bytes(&on_gpu).unwrap(),
        )
        .unwrap();
        let want: Vec<f64> = y_nd.iter().map(|&v| v as f64).collect();
        let tag = format!("{quant} m={m} k={k} n={n}");
        assert_close(
            &format!("NdArray record on Wgpu {tag}"),
            &to_vec(nd_to_gpu.forward(x_gpu.clone())),
            &want,
            1e-5,
        );
        assert_close(
            &format!("Wgpu record on NdArray {tag}"),
            &to_vec(gpu_to_nd.forward(x_nd)),
            &want,
            1e-5,
        );
        assert_close(
            &format!("Wgpu deployed vs NdArray deployed {tag}"),
            &to_vec(on_gpu.forward(x_gpu)),
            &want,
            1e-5,
        );
    }
}

#[test]
fn device_packing_refuses_non_finite_weights_like_core() {
    let (k, n) = (20, 6);
    let mut w = random(&mut rng(800), k * n, 0.5);
    // Burn layout [k, n]: row 3, column 2, i.e. core's [n, k] index 2·k + 3.
    w[3 * n + 2] = f32::INFINITY;
    w[7 * n + 4] = f32::NAN;
    let b = vec![0.0; n];
    let gpu = layer_with::<B>(&dev(), &w, &b, k, n, "ai8pc_wpt").try_deploy();
    let nd = layer_with::<NdArray>(&Default::default(), &w, &b, k, n, "ai8pc_wpt").try_deploy();
    // Wgpu names the first non-finite weight in bitlinear-core's [N, K] order.
    assert_eq!(
        gpu.err(),
        Some(BitLinearError::NonFiniteWeight { index: 2 * k + 3 })
    );
    // NdArray refuses it too (its index is left to its own implementation).
    assert!(matches!(
        nd.err(),
        Some(BitLinearError::NonFiniteWeight { .. })
    ));
}

/// Whether the Vulkan device computes in f16 (else the f16 tests say they are skipped).
fn f16_supported() -> bool {
    use cubecl::Runtime;
    let client = cubecl::wgpu::WgpuRuntime::client(&dev());
    let ok = bitlinear_cubecl::FloatDtype::F16.supported(&client);
    if !ok {
        eprintln!("skipped: this Vulkan device has no f16 arithmetic");
    }
    ok
}

/// The values rounded to f16 (and back): inputs both dtypes see exactly.
fn round_f16(v: Vec<f32>) -> Vec<f32> {
    v.into_iter()
        .map(|x| burn::tensor::f16::from_f32(x).to_f32())
        .collect()
}

/// A deployed layer given an f16 input runs the kernels in f16 (x, bias and y in f16, each
/// output rounded once): its outputs are exactly the f32 outputs on the same values rounded to
/// f16, on the GEMV and the tiled GEMM, and come back as f16.
#[test]
fn deployed_forward_on_f16_input_is_the_f32_output_rounded_once() {
    use burn::tensor::f16;
    if !f16_supported() {
        return;
    }
    let (k, n) = (70, 21);
    for (i, quant) in QUANTS.iter().enumerate() {
        let mut r = rng(700 + i as u64);
        let w = random(&mut r, k * n, 0.2);
        // A bias representable in f16: its cast to the input's type is exact.
        let b = round_f16(random(&mut r, n, 0.5));
        let layer = layer_with::<B>(&dev(), &w, &b, k, n, quant).deploy();
        for m in [1, 20] {
            let x = round_f16(random(&mut r, m * k, 2.0));
            let data = TensorData::new(x.clone(), [m, k]);
            let y32 = to_vec(layer.forward(Tensor::<B, 2>::from_data(data.clone(), &dev())));
            let x16 = Tensor::<B, 2>::from_data(data, (&dev(), DType::F16));
            assert_eq!(x16.dtype(), DType::F16);
            let y16 = layer.forward(x16);
            assert_eq!(y16.dtype(), DType::F16, "{quant} m={m}");
            let y16 = to_vec(y16);
            for (j, (a, e)) in y16.iter().zip(&y32).enumerate() {
                assert_eq!(
                    f16::from_f32(*a).to_bits(),
                    f16::from_f32(*e).to_bits(),
                    "{quant} m={m} element {j}: f16 {a} vs f32 {e}"
                );
                assert_eq!(*a, f16::from_f32(*e).to_f32(), "{quant} m={m} element {j}");
            }
        }
    }
}

/// Training on an f16 input (f32 weight): the kernel forward gives exactly the f32 output on the
/// same values rounded once to f16; the backward, in f32, gives `dx` as the f32 `dx` rounded to
/// f16 and `dW` (f32, the weight's type) equal to the f32 one, on the GEMV and the tiled GEMM
/// and, from 128 rows, the dense `dx`.
#[test]
fn training_on_f16_input_is_the_f32_step_rounded_once() {
    use burn::tensor::f16;
    if !f16_supported() {
        return;
    }
    let (k, n) = (70, 21);
    let to_f16_bits =
        |v: &[f32]| -> Vec<u16> { v.iter().map(|x| f16::from_f32(*x).to_bits()).collect() };
    for (i, quant) in QUANTS.iter().enumerate() {
        let mut r = rng(800 + i as u64);
        let w = random(&mut r, k * n, 0.2);
        let b = round_f16(random(&mut r, n, 0.5));
        let layer = layer_with::<AB>(&dev(), &w, &b, k, n, quant);
        for m in [3, 20, 130] {
            let x = round_f16(random(&mut r, m * k, 2.0));
            let dy = round_f16(random(&mut r, m * n, 1.0));
            let step = |dtype: DType| {
                let xt =
                    Tensor::<AB, 2>::from_data(TensorData::new(x.clone(), [m, k]), (&dev(), dtype))
                        .require_grad();
                let g = Tensor::<AB, 2>::from_data(
                    TensorData::new(dy.clone(), [m, n]),
                    (&dev(), dtype),
                );
                let y = layer.forward(xt.clone());
                assert_eq!(y.dtype(), dtype, "{quant} m={m}");
                let grads = y.clone().mul(g).sum().backward();
                let dx = xt.grad(&grads).expect("dx");
                assert_eq!(dx.dtype(), dtype, "{quant} m={m}");
                let dw = layer.weight.as_ref().unwrap().grad(&grads).expect("dW");
                assert_eq!(dw.dtype(), DType::F32, "{quant} m={m}");
                (to_vec(y.inner()), to_vec(dx), to_vec(dw))
            };
            let (y32, dx32, dw32) = step(DType::F32);
            let (y16, dx16, dw16) = step(DType::F16);
            let what = format!("{quant} m={m}");
            assert_eq!(to_f16_bits(&y16), to_f16_bits(&y32), "{what}: y");
            assert!(
                y16.iter().all(|v| f16::from_f32(*v).to_f32() == *v),
                "{what}: y is f16"
            );
            assert_eq!(to_f16_bits(&dx16), to_f16_bits(&dx32), "{what}: dx");
            assert_eq!(dw16, dw32, "{what}: dW");
        }
    }
}
