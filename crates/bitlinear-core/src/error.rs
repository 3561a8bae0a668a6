//! The error type shared by every fallible operation of the crate.

use thiserror::Error;

/// Everything that can go wrong when quantizing, packing or running a ternary linear layer.
///
/// Each variant names the offending quantity so the message alone explains the problem.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BitLinearError {
    /// A dimension that must be positive was zero.
    #[error("dimension `{name}` must be > 0")]
    ZeroDimension {
        /// Name of the dimension (`k`, `n`, ...).
        name: &'static str,
    },
    /// A buffer's length does not match the shape it is claimed to have.
    #[error("`{name}` has length {actual}, expected {expected}")]
    LengthMismatch {
        /// Name of the buffer.
        name: &'static str,
        /// The length implied by the shape.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// Two shapes that must agree do not.
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    /// A parameter is outside the range it supports.
    #[error("parameter `{name}` out of range: {reason}")]
    OutOfRange {
        /// Name of the parameter.
        name: &'static str,
        /// Why the value was rejected.
        reason: String,
    },
    /// Weights contain NaN or infinity, which have no ternary representation.
    #[error("weights contain a non-finite value at index {index}")]
    NonFiniteWeight {
        /// Flat index of the first non-finite weight.
        index: usize,
    },
    /// Packed data is malformed (corrupt checkpoint bytes, wrong code values).
    #[error("corrupt packed weights: {0}")]
    CorruptPacked(String),
    /// A quantization-type string could not be parsed.
    #[error("unknown quantization type `{0}`; expected `<activations>_<weights>` with activations one of ai8pc, ai8ptk, ai8pt and weights one of wpt, wpc, wpg, wpg<N>")]
    UnknownQuantType(String),
    /// A kernel was requested that this CPU (or this build) cannot run.
    #[error("kernel `{0}` is not supported on this CPU")]
    UnsupportedKernel(String),
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, BitLinearError>;
