//! BitLinear on NdArray and Autodiff<NdArray> (bitlinear-core's CPU kernels).

mod common;

use bitlinear_burn::backends::fallback;
use bitlinear_burn::{
    from_safetensors_bytes, to_safetensors_bytes, BitLinear, BitLinearBackend, BitLinearConfig,
    Deploy, QuantSpec, RecordError,
};
use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Module, Param};
use burn::nn::{LinearConfig, Relu};
use burn::tensor::{DType, Int, Tensor, TensorData};
use common::checks::{self, to_vec};
use common::*;

type B = NdArray;
type AB = Autodiff<NdArray>;

fn dev() -> burn::backend::ndarray::NdArrayDevice {
    Default::default()
}

/// Shapes: M = 1 and many, K not a multiple of 16, N odd and tiny.
const SHAPES: [(usize, usize, usize); 5] = [
    (1, 64, 32),
    (3, 37, 5),
    (17, 100, 1),
    (64, 130, 33),
    (2, 16, 16),
];

#[test]
fn forward_matches_fake_quant_reference() {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        for quant in QUANTS {
            for bias in [true, false] {
                checks::forward_matches_reference::<B>(&dev(), m, k, n, quant, bias, i as u64);
                checks::forward_matches_reference::<AB>(&dev(), m, k, n, quant, bias, i as u64);
            }
        }
    }
}

#[test]
fn deployed_input_gradients_match_ste_formula() {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        for quant in QUANTS {
            checks::deployed_input_grad_matches_reference::<AB>(
                &dev(),
                m,
                k,
                n,
                quant,
                40 + i as u64,
            );
        }
    }
}

#[test]
fn gradients_match_ste_formulas() {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        for quant in QUANTS {
            for bias in [true, false] {
                checks::grads_match_reference::<AB>(&dev(), m, k, n, quant, bias, 100 + i as u64);
            }
        }
    }
}

#[test]
fn gradient_reaches_earlier_layers_through_a_deployed_layer() {
    let d = dev();
    let (layer, w, b) = checks::layer::<AB>(&d, 24, 9, "ai8pc_wpc", true, 5);
    let deployed = layer.deploy();
    let (m, k, n) = (4, 24, 9);
    let x = random(&mut rng(6), m * k, 1.0);
    let dy = random(&mut rng(7), m * n, 1.0);
    let xt = Tensor::<AB, 2>::from_data(TensorData::new(x.clone(), [m, k]), &d).require_grad();
    let g = Tensor::<AB, 2>::from_data(TensorData::new(dy.clone(), [m, n]), &d);
    let grads = deployed.forward(xt.clone()).mul(g).sum().backward();
    let reference = Reference::new(&x, m, &w, k, n, b.as_deref(), spec("ai8pc_wpc"));
    assert_close(
        "deployed dx",
        &to_vec(xt.grad(&grads).unwrap()),
        &reference.grad_x(&dy),
        1e-5,
    );
    assert!(
        deployed
            .weight_scale
            .as_ref()
            .unwrap()
            .grad(&grads)
            .is_none(),
        "scales are frozen"
    );
}

#[test]
fn deployed_equals_eval_bit_for_bit() {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        for quant in QUANTS {
            let diff = checks::deployed_matches_eval::<B>(&dev(), m, k, n, quant, 200 + i as u64);
            assert_eq!(
                diff, 0.0,
                "NdArray runs the same core kernel in both states ({quant})"
            );
        }
    }
}

#[test]
fn deployed_from_autodiff_model_matches_valid_model() {
    let (layer, _, _) = checks::layer::<AB>(&dev(), 40, 12, "ai8pc_wpt", true, 9);
    let x = Tensor::<B, 2>::from_data(
        TensorData::new(random(&mut rng(10), 5 * 40, 1.0), [5, 40]),
        &dev(),
    );
    let eval = to_vec(layer.valid().forward(x.clone()));
    let deployed = layer.deploy().valid();
    assert_eq!(to_vec(deployed.forward(x)), eval);
}

#[test]
fn transposed_input_is_handled() {
    checks::transposed_input::<B>(&dev(), 6, 48, 10);
    checks::transposed_input::<AB>(&dev(), 6, 48, 10);
}

#[test]
fn rank_3_and_rank_1_inputs() {
    let (layer, _, _) = checks::layer::<B>(&dev(), 20, 7, "ai8pc_wpt", true, 11);
    let x = random(&mut rng(12), 2 * 3 * 20, 1.0);
    let flat = to_vec(layer.forward(Tensor::<B, 2>::from_data(
        TensorData::new(x.clone(), [6, 20]),
        &dev(),
    )));
    let y3 = layer.forward(Tensor::<B, 3>::from_data(
        TensorData::new(x.clone(), [2, 3, 20]),
        &dev(),
    ));
    assert_eq!(y3.dims(), [2, 3, 7]);
    assert_eq!(to_vec(y3), flat);
    let y1 = layer.forward(Tensor::<B, 1>::from_data(
        TensorData::new(x[..20].to_vec(), [20]),
        &dev(),
    ));
    assert_eq!(y1.dims(), [7]);
    assert_eq!(to_vec(y1), flat[..7].to_vec());
    let deployed = layer.deploy();
    let y3 = deployed.forward(Tensor::<B, 3>::from_data(
        TensorData::new(x, [2, 3, 20]),
        &dev(),
    ));
    assert_eq!(to_vec(y3), flat);
}

#[test]
#[should_panic(expected = "input's last dimension is 19, expected d_input = 20")]
fn wrong_last_dimension_panics() {
    let layer = BitLinearConfig::new(20, 4).init::<B>(&dev());
    layer.forward(Tensor::<B, 2>::zeros([3, 19], &dev()));
}

#[test]
#[should_panic(expected = "input's last dimension is 19, expected d_input = 20")]
fn wrong_last_dimension_panics_when_deployed() {
    let layer = BitLinearConfig::new(20, 4).init::<B>(&dev()).deploy();
    layer.forward(Tensor::<B, 3>::zeros([2, 3, 19], &dev()));
}

#[test]
fn empty_batch_gives_empty_output() {
    let layer = BitLinearConfig::new(20, 4).init::<AB>(&dev());
    let y = layer.forward(Tensor::<AB, 3>::zeros([0, 5, 20], &dev()));
    assert_eq!(y.dims(), [0, 5, 4]);
    let y = layer
        .deploy()
        .forward(Tensor::<AB, 2>::zeros([0, 20], &dev()));
    assert_eq!(y.dims(), [0, 4]);
}

/// Documented result: a row holding NaN or ±Inf gives NaN outputs; other rows are unaffected
/// with per-token activations; with per-tensor activations every row is NaN.
#[test]
fn non_finite_rows_give_nan_rows() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let (layer, _, _) = checks::layer::<B>(&dev(), 16, 5, "ai8pc_wpt", true, 13);
        let mut x = random(&mut rng(14), 3 * 16, 1.0);
        let clean = to_vec(layer.forward(Tensor::<B, 2>::from_data(
            TensorData::new(x.clone(), [3, 16]),
            &dev(),
        )));
        x[16 + 3] = bad;
        let input = Tensor::<B, 2>::from_data(TensorData::new(x.clone(), [3, 16]), &dev());
        let check = |y: Vec<f32>, what: &str| {
            assert!(
                y[5..10].iter().all(|v| v.is_nan()),
                "{what}: row 1 must be NaN for {bad}: {y:?}"
            );
            assert_eq!(y[..5], clean[..5], "{what}: row 0 unaffected");
            assert_eq!(y[10..], clean[10..], "{what}: row 2 unaffected");
        };
        check(to_vec(layer.forward(input.clone())), "trainable");
        check(
            to_vec(fallback::deployed_forward::<B>(
                input.clone(),
                layer.clone().deploy().packed_weight.unwrap().val(),
                layer.clone().deploy().weight_scale.unwrap().val(),
                layer.bias.as_ref().map(|b| b.val()),
                layer.packed_shape(),
                layer.spec(),
            )),
            "fallback",
        );
        let deployed = layer.deploy();
        check(to_vec(deployed.forward(input.clone())), "deployed");
        let (per_tensor, _, _) = checks::layer::<B>(&dev(), 16, 5, "ai8pt_wpt", true, 13);
        assert!(
            to_vec(per_tensor.forward(input)).iter().all(|v| v.is_nan()),
            "per tensor: all NaN"
        );
    }
}

#[test]
fn non_finite_weights_fail_to_deploy() {
    let (mut layer, mut w, _) = checks::layer::<B>(&dev(), 16, 5, "ai8pc_wpt", true, 15);
    w[7] = f32::NAN;
    layer.weight = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(w, [16, 5]),
        &dev(),
    )));
    let err = layer.try_deploy().unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
}

#[test]
#[should_panic(expected = "must be > 0")]
fn zero_input_features_rejected_at_init() {
    BitLinearConfig::new(0, 4).init::<B>(&dev());
}

#[test]
#[should_panic(expected = "unknown quantization type")]
fn bad_quant_type_rejected_at_init() {
    BitLinearConfig::new(4, 4)
        .with_quant("ai4_wpt".into())
        .init::<B>(&dev());
}

/// The generic fallback (used by Wgpu/Cuda) agrees with the core path on NdArray.
#[test]
fn fallback_matches_core_path() {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        for quant in QUANTS {
            let (layer, _, _) = checks::layer::<B>(&dev(), k, n, quant, true, 300 + i as u64);
            let x = Tensor::<B, 2>::from_data(
                TensorData::new(random(&mut rng(i as u64), m * k, 2.0), [m, k]),
                &dev(),
            );
            let bias = layer.bias.as_ref().map(|b| b.val());
            let core = to_vec(layer.forward(x.clone()));
            let want: Vec<f64> = core.iter().map(|&v| v as f64).collect();
            let (train, saved) = fallback::forward::<B>(
                x.clone(),
                layer.weight.as_ref().unwrap().val(),
                bias.clone(),
                layer.spec(),
                true,
            );
            assert_close(
                &format!("fallback train {quant}"),
                &to_vec(train),
                &want,
                1e-5,
            );
            let (x_codes, _, w_codes, _) = saved.unwrap();
            assert_eq!((x_codes.dtype(), w_codes.dtype()), (DType::I8, DType::I8));
            let deployed = layer.clone().deploy();
            let packed = deployed.packed_weight.as_ref().unwrap().val();
            assert_eq!(packed.dtype(), DType::U32);
            let y = fallback::deployed_forward::<B>(
                x,
                packed.clone(),
                deployed.weight_scale.as_ref().unwrap().val(),
                bias,
                layer.packed_shape(),
                layer.spec(),
            );
            assert_close(
                &format!("fallback deployed {quant}"),
                &to_vec(y),
                &want,
                1e-5,
            );
            // Unpacking on the device reproduces the codes of the host packer exactly.
            let codes = to_vec(fallback::unpack_codes::<B>(packed, layer.packed_shape()));
            let w_nk = layer.weight.as_ref().unwrap().val().transpose();
            let (want_codes, _) = fallback::quantize_weight_nk::<B>(w_nk, layer.spec());
            assert_eq!(codes, to_vec(want_codes), "unpack {quant} k={k} n={n}");
        }
    }
}

#[test]
fn saved_state_is_int8() {
    let (layer, _, _) = checks::layer::<B>(&dev(), 32, 8, "ai8pc_wpt", true, 16);
    let x = Tensor::<B, 2>::ones([4, 32], &dev());
    let (_, saved) = B::bitlinear_forward_saving(
        x.into_primitive().tensor(),
        layer
            .weight
            .as_ref()
            .unwrap()
            .val()
            .into_primitive()
            .tensor(),
        None,
        layer.spec(),
    );
    let x_codes: Tensor<B, 2, Int> = Tensor::from_primitive(saved.x_codes);
    let w_codes: Tensor<B, 2, Int> = Tensor::from_primitive(saved.w_codes);
    assert_eq!((x_codes.dtype(), x_codes.dims()), (DType::I8, [4, 32]));
    assert_eq!((w_codes.dtype(), w_codes.dims()), (DType::I8, [8, 32]));
    assert!(x_codes
        .into_data()
        .convert::<i32>()
        .to_vec::<i32>()
        .unwrap()
        .iter()
        .all(|&c| c == 127));
}

#[test]
fn from_linear_keeps_weights_and_bias() {
    let linear = LinearConfig::new(30, 11).init::<AB>(&dev());
    let spec = QuantSpec::default();
    let bit = BitLinear::from_linear(&linear, spec);
    assert_eq!((bit.d_input, bit.d_output), (30, 11));
    assert_eq!(
        to_vec(bit.weight.as_ref().unwrap().val()),
        to_vec(linear.weight.val())
    );
    assert_eq!(
        to_vec(bit.bias.as_ref().unwrap().val()),
        to_vec(linear.bias.as_ref().unwrap().val())
    );
    let x = random(&mut rng(17), 2 * 30, 1.0);
    let w = to_vec(linear.weight.val());
    let b = to_vec(linear.bias.as_ref().unwrap().val());
    let y = to_vec(bit.forward(Tensor::<AB, 2>::from_data(
        TensorData::new(x.clone(), [2, 30]),
        &dev(),
    )));
    assert_close(
        "from_linear forward",
        &y,
        &Reference::new(&x, 2, &w, 30, 11, Some(&b), spec).forward(),
        1e-5,
    );
}

#[derive(Module, Debug)]
struct Mlp<B: burn::tensor::backend::Backend> {
    fc1: BitLinear<B>,
    act: Relu,
    fc2: BitLinear<B>,
}

impl<B: BitLinearBackend> Deploy for Mlp<B> {
    fn deploy(self) -> Self {
        Self {
            fc1: self.fc1.deploy(),
            act: self.act,
            fc2: self.fc2.deploy(),
        }
    }
    fn validate(&self) -> Result<(), bitlinear_core::BitLinearError> {
        self.fc1.validate()?;
        self.fc2.validate()
    }
}

impl<B: BitLinearBackend> Mlp<B> {
    fn new(dev: &B::Device, hidden: usize) -> Self {
        Self {
            fc1: BitLinearConfig::new(24, hidden)
                .with_quant("ai8pc_wpc".into())
                .init(dev),
            act: Relu::new(),
            fc2: BitLinearConfig::new(hidden, 5).with_bias(false).init(dev),
        }
    }
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.fc2.forward(self.act.forward(self.fc1.forward(x)))
    }
}

fn input(m: usize) -> Tensor<B, 2> {
    Tensor::from_data(
        TensorData::new(random(&mut rng(18), m * 24, 1.0), [m, 24]),
        &dev(),
    )
}

#[test]
fn trained_record_round_trips() {
    let model = Mlp::<B>::new(&dev(), 40);
    let bytes = to_safetensors_bytes(&model).unwrap();
    let loaded = from_safetensors_bytes(Mlp::<B>::new(&dev(), 40), bytes).unwrap();
    assert_eq!(
        to_vec(loaded.forward(input(6))),
        to_vec(model.forward(input(6)))
    );
}

#[test]
fn deployed_record_round_trips_bit_identically() {
    let model = Deploy::deploy(Mlp::<B>::new(&dev(), 40));
    let bytes = to_safetensors_bytes(&model).unwrap();
    let fresh = Deploy::deploy(Mlp::<B>::new(&dev(), 40));
    assert_ne!(
        to_vec(fresh.forward(input(6))),
        to_vec(model.forward(input(6))),
        "fresh model differs"
    );
    let loaded = from_safetensors_bytes(fresh, bytes).unwrap();
    assert_eq!(
        loaded.fc1.packed_weight.as_ref().unwrap().val().dtype(),
        DType::U32
    );
    let (a, b) = (
        to_vec(loaded.forward(input(6))),
        to_vec(model.forward(input(6))),
    );
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn deployed_record_round_trips_through_a_file() {
    let dir = std::env::temp_dir().join(format!("bitlinear-burn-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mlp.safetensors");
    let model = Deploy::deploy(Mlp::<B>::new(&dev(), 40));
    bitlinear_burn::save_safetensors(&model, &path).unwrap();
    let loaded =
        bitlinear_burn::load_safetensors(Deploy::deploy(Mlp::<B>::new(&dev(), 40)), &path).unwrap();
    assert_eq!(
        to_vec(loaded.forward(input(3))),
        to_vec(model.forward(input(3)))
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn trained_record_into_deployed_model_is_an_error() {
    let bytes = to_safetensors_bytes(&Mlp::<B>::new(&dev(), 40)).unwrap();
    let err = from_safetensors_bytes(Deploy::deploy(Mlp::<B>::new(&dev(), 40)), bytes).unwrap_err();
    assert!(err.to_string().contains("packed_weight"), "{err}");
}

#[test]
fn deployed_record_into_trained_model_is_an_error() {
    let bytes = to_safetensors_bytes(&Deploy::deploy(Mlp::<B>::new(&dev(), 40))).unwrap();
    let err = from_safetensors_bytes(Mlp::<B>::new(&dev(), 40), bytes).unwrap_err();
    assert!(err.to_string().contains("weight"), "{err}");
}

#[test]
fn mismatched_shapes_are_an_error() {
    for deployed in [false, true] {
        let prep = |m: Mlp<B>| if deployed { Deploy::deploy(m) } else { m };
        let bytes = to_safetensors_bytes(&prep(Mlp::<B>::new(&dev(), 40))).unwrap();
        let err = from_safetensors_bytes(prep(Mlp::<B>::new(&dev(), 48)), bytes).unwrap_err();
        assert!(
            matches!(err, RecordError::Store(_)),
            "deployed={deployed}: {err}"
        );
        assert!(err.to_string().to_lowercase().contains("shape"), "{err}");
    }
}

#[test]
fn corrupt_packed_codes_are_an_error() {
    let mut model = Deploy::deploy(Mlp::<B>::new(&dev(), 40));
    let packed = model.fc1.packed_weight.take().unwrap().val();
    let dims = packed.dims();
    let mut words = packed.into_data().to_vec::<u32>().unwrap();
    words[0] |= 0b11; // code 3 does not exist
    model.fc1.packed_weight = Some(Param::initialized(
        burn::module::ParamId::new(),
        Tensor::from_data(TensorData::new(words, dims), (&dev(), DType::U32)),
    ));
    let bytes = to_safetensors_bytes(&model).unwrap();
    let err = from_safetensors_bytes(Deploy::deploy(Mlp::<B>::new(&dev(), 40)), bytes).unwrap_err();
    assert!(matches!(err, RecordError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("invalid 2-bit code"), "{err}");
}

#[test]
fn weight_memory_shrinks_about_16x() {
    let layer = BitLinearConfig::new(256, 256)
        .with_bias(false)
        .init::<B>(&dev());
    let f32_bytes = layer.weight_bytes();
    let deployed = layer.deploy();
    assert_eq!(f32_bytes, 256 * 256 * 4);
    assert_eq!(deployed.weight_bytes(), 256 * 256 / 4 + 4);
}
