//! AArch64 kernels, one file per instruction set.

pub(crate) mod neon;
pub(crate) mod neon_dot;
