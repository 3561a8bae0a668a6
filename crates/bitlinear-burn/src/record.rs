//! Saving and loading models with BitLinear layers through burn-store's safetensors format.
//!
//! The legacy Burn recorders convert integer tensors to i32 and overflow on packed u32 words,
//! so deployed models must go through burn-store, which keeps `U32` exactly. Loading is strict:
//! a tensor the model expects but the file lacks, a tensor the model does not use, a shape or
//! dtype mismatch, or corrupt packed codes is an error. A trainable record does not load into a
//! deployed model, nor the reverse.

use std::path::Path;

use bitlinear_core::BitLinearError;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn_store::{ModuleSnapshot, SafetensorsStore};

use crate::deploy::Deploy;

/// Why a checkpoint could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The store failed: I/O, a malformed file, a missing tensor, a shape or dtype mismatch.
    #[error("safetensors checkpoint: {0}")]
    Store(String),
    /// The file holds tensors the model has no place for (e.g. a trainable `weight` offered to
    /// a deployed layer).
    #[error("checkpoint does not match the model, unused tensors: {0:?}")]
    Unused(Vec<String>),
    /// The tensors loaded but do not form valid BitLinear weights.
    #[error("invalid BitLinear weights in checkpoint: {0}")]
    Invalid(#[from] BitLinearError),
}

/// Saves every parameter of `model` to a safetensors file.
pub fn save_safetensors<B: Backend, M: Module<B>>(
    model: &M,
    path: impl AsRef<Path>,
) -> Result<(), RecordError> {
    let mut store = SafetensorsStore::from_file(path.as_ref().to_path_buf()).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| RecordError::Store(e.to_string()))
}

/// Loads a safetensors file saved by [`save_safetensors`] into `model` (built from the same
/// configuration, and deployed or not as the saved one was), then validates it.
pub fn load_safetensors<B: Backend, M: Module<B> + Deploy>(
    model: M,
    path: impl AsRef<Path>,
) -> Result<M, RecordError> {
    apply(
        model,
        SafetensorsStore::from_file(path.as_ref().to_path_buf()),
    )
}

/// [`save_safetensors`] to bytes in memory.
pub fn to_safetensors_bytes<B: Backend, M: Module<B>>(model: &M) -> Result<Vec<u8>, RecordError> {
    let mut store = SafetensorsStore::from_bytes(None);
    model
        .save_into(&mut store)
        .map_err(|e| RecordError::Store(e.to_string()))?;
    store
        .get_bytes()
        .map_err(|e| RecordError::Store(e.to_string()))
}

/// [`load_safetensors`] from bytes in memory.
pub fn from_safetensors_bytes<B: Backend, M: Module<B> + Deploy>(
    model: M,
    bytes: Vec<u8>,
) -> Result<M, RecordError> {
    apply(model, SafetensorsStore::from_bytes(Some(bytes)))
}

fn apply<B: Backend, M: Module<B> + Deploy>(
    mut model: M,
    store: SafetensorsStore,
) -> Result<M, RecordError> {
    let mut store = store.validate(true).allow_partial(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| RecordError::Store(e.to_string()))?;
    if !result.errors.is_empty() {
        return Err(RecordError::Store(format!("{:?}", result.errors)));
    }
    if !result.unused.is_empty() {
        return Err(RecordError::Unused(result.unused));
    }
    model.validate()?;
    Ok(model)
}
