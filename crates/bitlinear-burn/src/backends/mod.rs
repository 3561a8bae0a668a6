//! Implementations of [`crate::BitLinearBackend`], one file per backend.

mod autodiff;
mod cube;
pub mod fallback;
mod ndarray;
