//! The [`BitLinear`] module: a drop-in ternary replacement for `burn::nn::Linear`.

use bitlinear_core::{BitLinearError, PackedTernary, QuantType};
use burn::module::{Content, DisplaySettings, Module, ModuleDisplay, Param};
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Int, Tensor};

use crate::ops::{
    bitlinear_deployed, bitlinear_train, float, tensor, BitLinearBackend, PackedShape, QuantSpec,
};

/// A ternary (BitNet b1.58) linear layer: `y = (xq · Wqᵀ) · s_x · s_w + b`.
///
/// Created with [`crate::BitLinearConfig`] or [`BitLinear::from_linear`]. It has two states:
/// - **trainable** (after `init`/`from_linear`): holds the float weight `[d_input, d_output]`
///   (Burn's `Linear` layout); every forward quantizes it (absmean ternary) and the input
///   (absmax int8), and autodiff backends train it with the straight-through estimator;
/// - **deployed** (after [`BitLinear::deploy`]): holds 2-bit packed weights and their scales
///   only, and runs the fused integer kernel. Same type, so models deploy in place.
///
/// The record of a trainable layer has `weight` (and `bias`); a deployed one has
/// `packed_weight` (u32 words), `weight_scale` (and `bias`). Loading one into the other fails
/// with a missing-tensor error.
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct BitLinear<B: Backend> {
    /// Trainable float weight `[d_input, d_output]`; `None` once deployed.
    pub weight: Option<Param<Tensor<B, 2>>>,
    /// Deployed 2-bit ternary codes as u32 words (`DType::U32`), shaped
    /// [`PackedShape::words_shape`] in bitlinear-core's packed layout; `None` while trainable.
    pub packed_weight: Option<Param<Tensor<B, 2, Int>>>,
    /// Deployed absmean weight scales (1, `d_output`, or `d_output × groups` values, in
    /// bitlinear-core's order); `None` while trainable.
    pub weight_scale: Option<Param<Tensor<B, 1>>>,
    /// Bias `[d_output]`.
    pub bias: Option<Param<Tensor<B, 1>>>,
    /// Input features.
    pub d_input: usize,
    /// Output features.
    pub d_output: usize,
    /// Scale lower bound.
    pub eps: f32,
    /// Quantization type (not saved in records: it comes from the config).
    #[module(skip)]
    pub quant: QuantType,
}

/// Packed words and scales of a deployed layer.
type DeployedParams<B> = (Param<Tensor<B, 2, Int>>, Param<Tensor<B, 1>>);

impl<B: Backend> BitLinear<B> {
    pub(crate) fn from_parts(
        weight: Option<Param<Tensor<B, 2>>>,
        deployed: Option<DeployedParams<B>>,
        bias: Option<Param<Tensor<B, 1>>>,
        d_input: usize,
        d_output: usize,
        spec: QuantSpec,
    ) -> Self {
        let (packed_weight, weight_scale) = match deployed {
            Some((p, s)) => (Some(p), Some(s)),
            None => (None, None),
        };
        Self {
            weight,
            packed_weight,
            weight_scale,
            bias,
            d_input,
            d_output,
            eps: spec.eps,
            quant: spec.quant,
        }
    }

    /// A trainable BitLinear with the weight and bias of a Burn `Linear` (`[d_input, d_output]`
    /// layout, either `LinearLayout`). The values are copied into new, independent parameters.
    ///
    /// This is post-training ternarization: the layer computes with the ternarized weight
    /// from its first forward; fine-tune it to recover accuracy.
    pub fn from_linear(linear: &Linear<B>, spec: QuantSpec) -> Self {
        let w = linear.weight.val().detach();
        let [d_input, d_output] = w.dims();
        let bias = linear
            .bias
            .as_ref()
            .map(|b| Param::from_tensor(b.val().detach()));
        Self::from_parts(
            Some(Param::from_tensor(w)),
            None,
            bias,
            d_input,
            d_output,
            spec,
        )
    }

    /// The quantization spec (type and eps).
    pub fn spec(&self) -> QuantSpec {
        QuantSpec {
            quant: self.quant,
            eps: self.eps,
        }
    }

    /// Whether the layer holds packed weights (see [`BitLinear::deploy`]).
    pub fn is_deployed(&self) -> bool {
        self.packed_weight.is_some()
    }

    /// Shape of the packed weight (`n = d_output`, `k = d_input`).
    pub fn packed_shape(&self) -> PackedShape {
        PackedShape {
            n: self.d_output,
            k: self.d_input,
        }
    }

    /// Bytes held by the weight (f32 weight, or packed codes plus scales) and the bias.
    pub fn weight_bytes(&self) -> usize {
        let elems = |dims: &[usize]| dims.iter().product::<usize>();
        let bias = self
            .bias
            .as_ref()
            .map_or(0, |b| 4 * b.shape().num_elements());
        let weight = match (&self.weight, &self.packed_weight, &self.weight_scale) {
            (Some(w), _, _) => 4 * elems(&w.shape().dims::<2>()),
            (None, Some(p), Some(s)) => {
                4 * elems(&p.shape().dims::<2>()) + 4 * s.shape().num_elements()
            }
            _ => 0,
        };
        weight + bias
    }

    /// Checks that the layer's tensors agree with its dimensions and, when deployed, that the
    /// packed codes and scales are valid (no invalid 2-bit code, zero padding, positive finite
    /// scales). Reads deployed weights back to the host; run it after loading a checkpoint.
    pub fn validate(&self) -> Result<(), BitLinearError> {
        let mismatch = |what: &str, expected: &[usize], got: &[usize]| {
            BitLinearError::ShapeMismatch(format!(
                "{what} has shape {got:?}, expected {expected:?}"
            ))
        };
        if let Some(b) = &self.bias {
            let dims = b.shape().dims::<1>();
            if dims != [self.d_output] {
                return Err(mismatch("bias", &[self.d_output], &dims));
            }
        }
        match (&self.weight, &self.packed_weight, &self.weight_scale) {
            (Some(w), None, None) => {
                let dims = w.shape().dims::<2>();
                if dims != [self.d_input, self.d_output] {
                    return Err(mismatch("weight", &[self.d_input, self.d_output], &dims));
                }
                Ok(())
            }
            (None, Some(p), Some(s)) => {
                let expected = self.packed_shape().words_shape();
                let dims = p.shape().dims::<2>();
                if dims != expected {
                    return Err(mismatch("packed_weight", &expected, &dims));
                }
                let words = p.val().into_data().convert::<u32>();
                let words = words.as_slice::<u32>().map_err(|e| {
                    BitLinearError::CorruptPacked(format!("packed_weight data: {e:?}"))
                })?;
                let scales = s
                    .val()
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .map_err(|e| {
                        BitLinearError::CorruptPacked(format!("weight_scale data: {e:?}"))
                    })?;
                PackedTernary::from_u32_words(
                    self.d_output,
                    self.d_input,
                    self.quant.weights,
                    scales,
                    words,
                )
                .map(|_| ())
            }
            _ => Err(BitLinearError::ShapeMismatch(
                "BitLinear must hold either `weight` (trainable) or `packed_weight` and \
                 `weight_scale` (deployed)"
                    .into(),
            )),
        }
    }
}

impl<B: BitLinearBackend> BitLinear<B> {
    /// Applies the layer to `input: [..., d_input]`, returning `[..., d_output]`.
    ///
    /// - Trainable: quantizes input and weight on the fly (differentiable with the
    ///   straight-through estimator on autodiff backends).
    /// - Deployed: the fused integer kernel on packed weights; equals the trainable output
    ///   (eval) to float rounding, bit-identically on NdArray.
    ///
    /// Rows (tokens) holding NaN or ±Inf give NaN outputs (all rows with per-tensor
    /// activations). An input with no rows gives an output with no rows.
    ///
    /// # Panics
    /// If the last dimension is not `d_input`.
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        let dims = input.dims();
        let k = dims[D - 1];
        assert!(
            k == self.d_input,
            "BitLinear: input's last dimension is {k}, expected d_input = {} (input shape {dims:?})",
            self.d_input
        );
        let m: usize = dims[..D - 1].iter().product();
        let mut out_dims = dims;
        out_dims[D - 1] = self.d_output;
        if m == 0 {
            return Tensor::zeros(out_dims, &input.device());
        }
        let x = input.reshape([m, k]);
        let bias = self.bias.as_ref().map(|b| b.val());
        let y = match (&self.weight, &self.packed_weight, &self.weight_scale) {
            (Some(w), _, _) => bitlinear_train(x, w.val(), bias, self.spec()),
            (None, Some(p), Some(s)) => {
                bitlinear_deployed(x, p.val(), s.val(), bias, self.packed_shape(), self.spec())
            }
            _ => panic!("BitLinear: neither a trainable weight nor packed weights are present"),
        };
        y.reshape(out_dims)
    }

    /// Quantizes and packs the weight, drops the float weight, and switches the layer to the
    /// fused integer path. A deployed layer is returned unchanged.
    ///
    /// # Panics
    /// If the weight holds NaN or ±Inf (see [`BitLinear::try_deploy`]).
    pub fn deploy(self) -> Self {
        self.try_deploy()
            .unwrap_or_else(|e| panic!("BitLinear::deploy: {e}"))
    }

    /// [`BitLinear::deploy`], returning an error instead of panicking.
    pub fn try_deploy(self) -> Result<Self, BitLinearError> {
        let Some(weight) = &self.weight else {
            return Ok(self);
        };
        let (words, scales) = B::bitlinear_pack(float(weight.val()), self.spec())?;
        let words: Tensor<B, 2, Int> = Tensor::from_primitive(words);
        debug_assert_eq!(words.dtype(), DType::U32);
        let scales: Tensor<B, 1> = tensor(scales);
        let deployed = (
            Param::initialized(burn::module::ParamId::new(), words),
            Param::from_tensor(scales).set_require_grad(false),
        );
        let spec = self.spec();
        Ok(Self::from_parts(
            None,
            Some(deployed),
            self.bias,
            self.d_input,
            self.d_output,
            spec,
        ))
    }
}

impl<B: Backend> ModuleDisplay for BitLinear<B> {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        DisplaySettings::new()
            .with_new_line_after_attribute(false)
            .optional()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        content
            .add("d_input", &self.d_input)
            .add("d_output", &self.d_output)
            .add("bias", &self.bias.is_some())
            .add("quant", &self.quant.to_string())
            .add("deployed", &self.is_deployed())
            .optional()
    }
}
