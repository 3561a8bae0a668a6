//! BitLinear on Wgpu (Mesa lavapipe in CI) and Autodiff<Wgpu>: the CubeBackend implementation.
//! Shapes are small: lavapipe is a software rasterizer.

mod common;

use bitlinear_burn::{from_safetensors_bytes, to_safetensors_bytes, BitLinearConfig};
use burn::backend::{Autodiff, Wgpu};
use burn::tensor::{DType, Tensor, TensorData};
use common::checks::{self, to_vec};
use common::*;

type B = Wgpu;
type AB = Autodiff<Wgpu>;

fn dev() -> burn::backend::wgpu::WgpuDevice {
    Default::default()
}

const SHAPES: [(usize, usize, usize); 2] = [(1, 40, 17), (5, 33, 9)];

#[test]
fn forward_matches_fake_quant_reference() {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        for quant in QUANTS {
            checks::forward_matches_reference::<B>(&dev(), m, k, n, quant, true, i as u64);
        }
    }
    checks::forward_matches_reference::<AB>(&dev(), 3, 20, 6, "ai8pc_wpt", false, 9);
}

/// Gradient shapes: the last has enough rows for `dx` to take the dense-matmul path.
const GRAD_SHAPES: [(usize, usize, usize); 3] = [(1, 40, 17), (5, 33, 9), (130, 21, 11)];

#[test]
fn gradients_match_ste_formulas() {
    for (i, &(m, k, n)) in GRAD_SHAPES.iter().enumerate() {
        for quant in QUANTS {
            checks::grads_match_reference::<AB>(&dev(), m, k, n, quant, i == 0, 100 + i as u64);
        }
    }
}

#[test]
fn deployed_input_gradients_match_ste_formula() {
    for (i, &(m, k, n)) in GRAD_SHAPES.iter().enumerate() {
        checks::deployed_input_grad_matches_reference::<AB>(
            &dev(),
            m,
            k,
            n,
            "ai8pc_wpt",
            40 + i as u64,
        );
    }
    checks::deployed_input_grad_matches_reference::<AB>(&dev(), 130, 40, 17, "ai8pc_wpc", 50);
}

#[test]
fn deployed_equals_eval() {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        for quant in QUANTS {
            checks::deployed_matches_eval::<B>(&dev(), m, k, n, quant, 200 + i as u64);
        }
    }
}

#[test]
fn transposed_input_is_handled() {
    checks::transposed_input::<B>(&dev(), 4, 24, 5);
}

#[test]
fn rank_3_input_and_nan_rows() {
    let (layer, _, _) = checks::layer::<B>(&dev(), 16, 5, "ai8pc_wpt", true, 11);
    let mut x = random(&mut rng(12), 2 * 2 * 16, 1.0);
    let clean = to_vec(layer.forward(Tensor::<B, 3>::from_data(
        TensorData::new(x.clone(), [2, 2, 16]),
        &dev(),
    )));
    x[16] = f32::NAN;
    for layer in [layer.clone(), layer.deploy()] {
        let y = layer.forward(Tensor::<B, 3>::from_data(
            TensorData::new(x.clone(), [2, 2, 16]),
            &dev(),
        ));
        assert_eq!(y.dims(), [2, 2, 5]);
        let y = to_vec(y);
        assert!(
            y[5..10].iter().all(|v| v.is_nan()),
            "row with NaN gives NaN: {y:?}"
        );
        let (got, want): (Vec<f32>, Vec<f64>) = y
            .iter()
            .zip(&clean)
            .enumerate()
            .filter(|(i, _)| !(5..10).contains(i))
            .map(|(_, (g, c))| (*g, *c as f64))
            .unzip();
        assert_close("other rows", &got, &want, 1e-5);
    }
}

#[test]
fn deployed_record_round_trips_bit_identically() {
    let layer = BitLinearConfig::new(40, 9).init::<B>(&dev()).deploy();
    assert_eq!(
        layer.packed_weight.as_ref().unwrap().val().dtype(),
        DType::U32
    );
    let bytes = to_safetensors_bytes(&layer).unwrap();
    let loaded = from_safetensors_bytes(
        BitLinearConfig::new(40, 9).init::<B>(&dev()).deploy(),
        bytes,
    )
    .unwrap();
    let x = Tensor::<B, 2>::from_data(
        TensorData::new(random(&mut rng(3), 2 * 40, 1.0), [2, 40]),
        &dev(),
    );
    let (a, b) = (to_vec(loaded.forward(x.clone())), to_vec(layer.forward(x)));
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}
