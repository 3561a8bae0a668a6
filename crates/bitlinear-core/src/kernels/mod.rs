//! Micro-kernels, one per instruction set, and their run-time selection.
//!
//! Every kernel implements `TileKernel`: the integer dot products of `MR` activation rows
//! with one 16-row tile of packed weights over a range of 16-column blocks. Blocking,
//! threading, bias correction and the float epilogue are written once, in `crate::linear`.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use crate::error::{BitLinearError, Result};

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
pub(crate) mod scalar;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

/// Environment variable that forces a kernel for the whole process (e.g. `BITLINEAR_KERNEL=avx2`).
pub const KERNEL_ENV: &str = "BITLINEAR_KERNEL";

/// A CPU kernel implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Portable scalar code: the test oracle's twin, runs everywhere.
    Scalar,
    /// x86-64 AVX2 (`vpmaddubsw` + `vpmaddwd`).
    Avx2,
    /// x86-64 AVX-VNNI, the 256-bit VEX form of `vpdpbusd`.
    AvxVnni,
    /// x86-64 AVX-512 VNNI (+BW), 512-bit `vpdpbusd` with embedded broadcast.
    Avx512Vnni,
    /// AArch64 NEON (`smull` + `sadalp`).
    Neon,
    /// AArch64 NEON dot product (`sdot` by element).
    NeonDotprod,
}

impl Kernel {
    /// Every kernel, fastest first within each architecture.
    pub const ALL: [Kernel; 6] = [
        Kernel::Avx512Vnni,
        Kernel::AvxVnni,
        Kernel::Avx2,
        Kernel::NeonDotprod,
        Kernel::Neon,
        Kernel::Scalar,
    ];

    /// Short lowercase name, as accepted by [`Kernel::from_str`] and [`KERNEL_ENV`].
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2 => "avx2",
            Kernel::AvxVnni => "avxvnni",
            Kernel::Avx512Vnni => "avx512vnni",
            Kernel::Neon => "neon",
            Kernel::NeonDotprod => "neondot",
        }
    }

    /// Whether this CPU can run the kernel (checked at run time).
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::AvxVnni => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("avxvnni")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512Vnni => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "aarch64")]
            Kernel::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[cfg(target_arch = "aarch64")]
            Kernel::NeonDotprod => {
                std::arch::is_aarch64_feature_detected!("neon")
                    && std::arch::is_aarch64_feature_detected!("dotprod")
            }
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Kernels this CPU supports, fastest first.
    pub fn supported() -> Vec<Kernel> {
        Kernel::ALL
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }

    /// The fastest kernel this CPU supports.
    pub fn best() -> Kernel {
        Kernel::supported()[0]
    }

    /// The kernel used when none is given: [`KERNEL_ENV`] if set, else [`Kernel::best`].
    /// Decided once per process. Errors if the variable names an unknown or unsupported kernel.
    pub fn active() -> Result<Kernel> {
        static ACTIVE: OnceLock<Result<Kernel>> = OnceLock::new();
        ACTIVE
            .get_or_init(|| match std::env::var(KERNEL_ENV) {
                Ok(name) if !name.trim().is_empty() => {
                    let k: Kernel = name.parse()?;
                    k.check_supported()?;
                    Ok(k)
                }
                _ => Ok(Kernel::best()),
            })
            .clone()
    }

    /// `Ok` if supported, else [`BitLinearError::UnsupportedKernel`].
    pub fn check_supported(self) -> Result<()> {
        if self.is_supported() {
            Ok(())
        } else {
            Err(BitLinearError::UnsupportedKernel(self.name().to_string()))
        }
    }
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kernel {
    type Err = BitLinearError;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        Kernel::ALL
            .into_iter()
            .find(|k| k.name() == s || (s == "neondotprod" && *k == Kernel::NeonDotprod))
            .ok_or_else(|| BitLinearError::UnsupportedKernel(format!("{s} (unknown name)")))
    }
}

/// The integer core of one instruction set.
///
/// `dot_tile::<MR>` adds to `acc[r * 16 + j]` (r < MR, j < 16) the *biased* dot product
/// `Σ_k code(j, k) · x_r[k]` over `nblocks` blocks, where `code = w + 1` ∈ {0, 1, 2}; the caller
/// subtracts `Σ_k x_r[k]` to obtain `Σ_k w · x`. (Unsigned codes let x86 use `vpdpbusd`, whose
/// first operand is unsigned.)
pub(crate) trait TileKernel {
    /// Largest row count the driver may pass as `MR` (a power of two, or 24).
    const MAX_ROWS: usize;

    /// # Safety
    /// - the CPU supports the kernel's instruction set;
    /// - `w` points to `nblocks` readable blocks of `BLOCK_BYTES` bytes each (any alignment:
    ///   kernels only use unaligned loads, so codes can live in a framework-owned u32 buffer);
    /// - for each r < MR, `x + r * x_stride` points to `16 * nblocks` readable bytes;
    /// - `acc` points to `MR * 16` writable i32;
    /// - `MR` is 1, 2, 4, 8, 16 or 24 and at most `MAX_ROWS`.
    unsafe fn dot_tile<const MR: usize>(
        w: *const u8,
        nblocks: usize,
        x: *const i8,
        x_stride: usize,
        acc: *mut i32,
    );
}
