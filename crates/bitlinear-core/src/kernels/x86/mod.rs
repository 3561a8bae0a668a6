//! x86-64 kernels, one file per instruction set.

pub(crate) mod avx2;
pub(crate) mod avx512vnni;
pub(crate) mod avxvnni;
