//! Argument checks shared by the host functions.

use cubecl::server::Handle;

use crate::error::{Error, Result};

/// `Err(ZeroDim)` when `value == 0`.
pub(crate) fn positive(name: &'static str, value: usize) -> Result<()> {
    if value == 0 {
        Err(Error::ZeroDim { name })
    } else {
        Ok(())
    }
}

/// `Err(BufferTooSmall)` when the handle holds fewer than `expected` bytes.
pub(crate) fn bytes(name: &'static str, handle: &Handle, expected: usize) -> Result<()> {
    let actual = handle.size_in_used();
    if actual < expected as u64 {
        Err(Error::BufferTooSmall {
            name,
            expected: expected as u64,
            actual,
        })
    } else {
        Ok(())
    }
}

/// `a * b`, or `Err(TooLarge)`.
pub(crate) fn mul(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_mul(b)
        .ok_or_else(|| Error::TooLarge(what.to_string()))
}
