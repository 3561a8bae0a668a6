//! Deploying a whole model in one call.
//!
//! Burn's `ModuleMapper` maps one tensor at a time and cannot change a module's structure
//! (here: drop the float weight, add packed words), so deployment goes through this trait.
//! [`BitLinear`] implements it; a model implements it by deploying its fields:
//!
//! ```
//! use bitlinear_burn::{BitLinear, BitLinearBackend, BitLinearConfig, Deploy};
//! use burn::prelude::*;
//!
//! #[derive(Module, Debug)]
//! struct Mlp<B: Backend> {
//!     fc1: BitLinear<B>,
//!     act: burn::nn::Relu,
//!     fc2: BitLinear<B>,
//! }
//!
//! impl<B: BitLinearBackend> Deploy for Mlp<B> {
//!     fn deploy(self) -> Self {
//!         Self { fc1: self.fc1.deploy(), act: self.act, fc2: self.fc2.deploy() }
//!     }
//!     fn validate(&self) -> Result<(), bitlinear_core::BitLinearError> {
//!         self.fc1.validate()?;
//!         self.fc2.validate()
//!     }
//! }
//!
//! type B = burn::backend::NdArray;
//! let dev = Default::default();
//! let mlp = Mlp::<B> {
//!     fc1: BitLinearConfig::new(8, 16).init(&dev),
//!     act: burn::nn::Relu::new(),
//!     fc2: BitLinearConfig::new(16, 4).init(&dev),
//! };
//! let mlp = Deploy::deploy(mlp);
//! assert!(mlp.fc1.is_deployed() && mlp.fc2.is_deployed());
//! ```
//!
//! Nested models compose: a field that is itself a model implementing `Deploy` is deployed by
//! calling its `deploy`. `Option<T>` and `Vec<T>` of deployable modules are covered below.

use bitlinear_core::BitLinearError;

use crate::module::BitLinear;
use crate::ops::BitLinearBackend;

/// A module that can switch every [`BitLinear`] it contains to packed, deployed form.
pub trait Deploy: Sized {
    /// Deploys every BitLinear inside (see [`BitLinear::deploy`]).
    fn deploy(self) -> Self;

    /// Checks every BitLinear inside (see [`BitLinear::validate`]); used by
    /// [`crate::load_safetensors`]. The default checks nothing.
    fn validate(&self) -> Result<(), BitLinearError> {
        Ok(())
    }
}

impl<B: BitLinearBackend> Deploy for BitLinear<B> {
    fn deploy(self) -> Self {
        BitLinear::deploy(self)
    }

    fn validate(&self) -> Result<(), BitLinearError> {
        BitLinear::validate(self)
    }
}

impl<T: Deploy> Deploy for Option<T> {
    fn deploy(self) -> Self {
        self.map(Deploy::deploy)
    }

    fn validate(&self) -> Result<(), BitLinearError> {
        self.as_ref().map_or(Ok(()), Deploy::validate)
    }
}

impl<T: Deploy> Deploy for Vec<T> {
    fn deploy(self) -> Self {
        self.into_iter().map(Deploy::deploy).collect()
    }

    fn validate(&self) -> Result<(), BitLinearError> {
        self.iter().try_for_each(Deploy::validate)
    }
}
