//! Hidden tuning overrides for benchmarks and tests (cube sizes, k-steps): each holds one of a
//! few valid values or nothing, meaning the kernel's default. Every valid value computes the
//! same result, so tests running concurrently are unaffected by another test's override.

use std::sync::atomic::{AtomicUsize, Ordering};

/// One process-wide override restricted to `allowed` values.
pub(crate) struct TuningOverride {
    /// 0 = no override (no valid value is 0).
    value: AtomicUsize,
    allowed: &'static [usize],
}

impl TuningOverride {
    /// An unset override accepting the given (nonzero) values.
    pub(crate) const fn new(allowed: &'static [usize]) -> Self {
        Self {
            value: AtomicUsize::new(0),
            allowed,
        }
    }

    /// Forces `value` when it is allowed; anything else (0 included) restores the default.
    pub(crate) fn set(&self, value: usize) {
        let value = if self.allowed.contains(&value) {
            value
        } else {
            0
        };
        self.value.store(value, Ordering::Relaxed);
    }

    /// The forced value, if any.
    pub(crate) fn get(&self) -> Option<usize> {
        match self.value.load(Ordering::Relaxed) {
            0 => None,
            v => Some(v),
        }
    }
}
