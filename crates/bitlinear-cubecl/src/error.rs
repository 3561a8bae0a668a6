//! Errors returned by the host-side API instead of launching a kernel on bad input.

/// Why an operation was refused. Nothing is launched when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A dimension that must be positive is zero (e.g. `K = 0` or `N = 0`).
    #[error("dimension `{name}` must be positive")]
    ZeroDim {
        /// Name of the dimension.
        name: &'static str,
    },
    /// A buffer holds fewer bytes than the shape requires.
    #[error("buffer `{name}` holds {actual} bytes, expected at least {expected}")]
    BufferTooSmall {
        /// Which argument.
        name: &'static str,
        /// Bytes required by the shape.
        expected: u64,
        /// Bytes in the handle.
        actual: u64,
    },
    /// Group size for per-group scales is zero or not a multiple of 16.
    #[error("group size {0} must be a positive multiple of 16")]
    BadGroupSize(usize),
    /// A forced kernel path cannot run with these inputs or on this device.
    #[error("kernel path {path} unavailable: {reason}")]
    PathUnavailable {
        /// The path requested.
        path: &'static str,
        /// Why it cannot run.
        reason: String,
    },
    /// The runtime has no arithmetic in this float type (e.g. bf16 on Wgpu).
    #[error("float type {0:?} is not supported by this runtime")]
    UnsupportedDtype(crate::types::FloatDtype),
    /// Activation and weight shapes disagree.
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    /// A size computation overflowed (shape too large for the device's addressing).
    #[error("shape too large: {0}")]
    TooLarge(String),
}

/// Result alias of this crate.
pub type Result<T> = core::result::Result<T, Error>;
