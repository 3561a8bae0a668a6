//! [`BitLinearConfig`]: the layer's hyper-parameters, in Burn's `Config` style.

use bitlinear_core::{BitLinearError, QuantType};
use burn::config::Config;
use burn::module::{Initializer, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::module::BitLinear;
use crate::ops::QuantSpec;

/// Configuration to create a [`BitLinear`] layer with [`BitLinearConfig::init`].
///
/// ```
/// use bitlinear_burn::BitLinearConfig;
/// type B = burn::backend::NdArray;
///
/// let layer = BitLinearConfig::new(64, 32).with_bias(false).init::<B>(&Default::default());
/// let y = layer.forward(burn::tensor::Tensor::<B, 2>::ones([3, 64], &Default::default()));
/// assert_eq!(y.dims(), [3, 32]);
/// ```
#[derive(Config, Debug)]
pub struct BitLinearConfig {
    /// The size of the input features.
    pub d_input: usize,
    /// The size of the output features.
    pub d_output: usize,
    /// If a bias is added after the ternary product (initialized to zero, as the original layer).
    #[config(default = true)]
    pub bias: bool,
    /// Lower bound of every activation and weight scale, guarding all-zero inputs.
    #[config(default = 1e-6)]
    pub eps: f32,
    /// Quantization type in the original library's notation (parsed by
    /// [`bitlinear_core::QuantType`]): `ai8pc_wpt` = int8 activations per token (row), ternary
    /// weights with one absmean scale per tensor; `wpc` per output channel, `wpg<N>` per group
    /// of N input columns; `ai8pt` per-tensor activations.
    #[config(default = "String::from(\"ai8pc_wpt\")")]
    pub quant: String,
    /// Initializer of the weight (the original layer's Xavier uniform by default).
    #[config(default = "Initializer::XavierUniform{gain:1.0}")]
    pub initializer: Initializer,
}

impl BitLinearConfig {
    /// Sets the quantization type from its typed form.
    pub fn with_quant_type(mut self, quant: QuantType) -> Self {
        self.quant = quant.to_string();
        self
    }

    /// The parsed quantization type, or the parse error.
    pub fn quant_type(&self) -> Result<QuantType, BitLinearError> {
        self.quant.parse()
    }

    /// The quantization spec (type and eps), validated.
    pub fn spec(&self) -> Result<QuantSpec, BitLinearError> {
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(BitLinearError::OutOfRange {
                name: "eps",
                reason: format!("{} is not a positive finite number", self.eps),
            });
        }
        Ok(QuantSpec {
            quant: self.quant_type()?,
            eps: self.eps,
        })
    }

    /// Initializes a new trainable [`BitLinear`] layer.
    ///
    /// # Panics
    /// On a zero dimension, an unknown quantization type or a non-positive eps.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BitLinear<B> {
        assert!(
            self.d_input > 0 && self.d_output > 0,
            "BitLinearConfig: d_input ({}) and d_output ({}) must be > 0",
            self.d_input,
            self.d_output
        );
        let spec = self
            .spec()
            .unwrap_or_else(|e| panic!("BitLinearConfig: {e}"));
        let weight = self.initializer.init_with(
            [self.d_input, self.d_output],
            Some(self.d_input),
            Some(self.d_output),
            device,
        );
        let bias = self
            .bias
            .then(|| Param::from_tensor(Tensor::zeros([self.d_output], device)));
        BitLinear::from_parts(Some(weight), None, bias, self.d_input, self.d_output, spec)
    }
}
