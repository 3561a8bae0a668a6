//! Configuration enums and the device-resident quantized tensors exchanged by the API.

use cubecl::ir::FloatKind;
use cubecl::prelude::*;
use cubecl::server::Handle;

use crate::error::{Error, Result};

/// Granularity of the activation scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActivationGranularity {
    /// One scale per row (token): `s_x[m] = max(max|x[m, :]|, eps) / 127`.
    #[default]
    PerToken,
    /// One scale for the whole `[M, K]` tensor (still stored once per row, all equal).
    PerTensor,
}

/// Granularity of the weight scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightGranularity {
    /// One scale: `s_w = max(mean|W|, eps)`.
    #[default]
    PerTensor,
    /// One scale per output channel (`N` values).
    PerChannel,
    /// One scale per group of `G` consecutive inputs of each output, `N × ceil(K/G)` values,
    /// row-major `[n][g]`; `G` must be a positive multiple of 16. The last group of a row may be
    /// partial; its mean is over the inputs present.
    PerGroup(usize),
}

impl WeightGranularity {
    /// Number of f32 scales for a `K → N` layer.
    pub fn scale_count(self, k: usize, n: usize) -> usize {
        match self {
            Self::PerTensor => 1,
            Self::PerChannel => n,
            Self::PerGroup(g) => n * k.div_ceil(g.max(1)),
        }
    }

    /// Checks the group size (positive multiple of 16).
    pub fn validate(self) -> Result<()> {
        match self {
            Self::PerGroup(g) if g == 0 || g % 16 != 0 => Err(Error::BadGroupSize(g)),
            _ => Ok(()),
        }
    }

    pub(crate) fn tag(self) -> u32 {
        match self {
            Self::PerTensor => crate::kernels::common::GRAN_TENSOR,
            Self::PerChannel => crate::kernels::common::GRAN_CHANNEL,
            Self::PerGroup(_) => crate::kernels::common::GRAN_GROUP,
        }
    }

    /// `(group_size, groups_per_row)` as the kernels see them (`K` and 1 unless per group).
    pub(crate) fn groups(self, k: usize) -> (usize, usize) {
        match self {
            Self::PerGroup(g) => (g, k.div_ceil(g)),
            _ => (k.max(1), 1),
        }
    }
}

/// Float type of a layer's input `x`, bias and output `y` (the scales stay f32, and every
/// kernel computes in f32: inputs are widened exactly, each output is rounded once, to nearest
/// even).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FloatDtype {
    /// 32-bit IEEE float.
    #[default]
    F32,
    /// 16-bit IEEE float (`half::f16`).
    F16,
    /// bfloat16 (`half::bf16`); runtimes without it (Wgpu) fail to compile the kernels.
    BF16,
}

impl FloatDtype {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
        }
    }

    /// Whether `client`'s runtime computes in this type (f32 always; f16 and bf16 where the
    /// device reports them: Wgpu has no bf16).
    pub fn supported<R: Runtime>(self, client: &ComputeClient<R>) -> bool {
        let kind = match self {
            Self::F32 => return true,
            Self::F16 => FloatKind::F16,
            Self::BF16 => FloatKind::BF16,
        };
        client.properties().supports_type(kind)
    }

    /// An error where `client`'s runtime lacks this type.
    pub(crate) fn check<R: Runtime>(self, client: &ComputeClient<R>) -> Result<()> {
        if self.supported(client) {
            Ok(())
        } else {
            Err(Error::UnsupportedDtype(self))
        }
    }
}

/// Memory layout of a dense f32 weight matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightLayout {
    /// `[K, N]` = `[d_input, d_output]`, row-major: Burn's `Linear` layout (`y = x · W`).
    #[default]
    InputMajor,
    /// `[N, K]` = `[d_output, d_input]`, row-major: PyTorch's layout (`y = x · Wᵀ`).
    OutputMajor,
}

/// Which matmul kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatmulPath {
    /// On CUDA sm ≥ 80 the hand-written kernels ([`MatmulPath::Dp4aGemv`] for `M ≤ 16`, else
    /// [`MatmulPath::WgmmaGemm`] on Hopper and [`MatmulPath::MmaGemm`] on other GPUs); elsewhere the CubeCL GEMV for `M ≤ 16`, else the `cmma` GEMM
    /// where available, else the tiled GEMM.
    #[default]
    Auto,
    /// Force the GEMV kernels (`M ≤` [`crate::GEMV_MAX_M`]): the streaming kernel for
    /// `M ≤` [`crate::GEMV_STREAM_MAX_M`], else the plane-reduction kernel.
    Gemv,
    /// Force the original plane-reduction GEMV (4 rows per unit) for any `M ≤`
    /// [`crate::GEMV_MAX_M`]; kept to compare against the streaming kernel.
    GemvPlane,
    /// Force the portable shared-memory tiled GEMM.
    TiledGemm,
    /// Force the int8 tensor-core (`cmma`) GEMM; an error where unsupported.
    CmmaGemm,
    /// Force the large-tile int8 tensor-core GEMM (128×128 block tile, 8 planes, double-buffered
    /// shared memory); an error where `cmma` is unsupported. Per-group weight scales run the
    /// [`MatmulPath::CmmaGemm`] kernel instead. What `Auto` picks for M > 16 where cmma exists
    /// but the hand-written CUDA kernels do not run.
    CmmaTiledGemm,
    /// Force the hand-written CUDA GEMV (`dp4a`, one per 4 weights; `M ≤` [`crate::GEMV_MAX_M`]);
    /// an error off CUDA sm ≥ 80 ([`crate::raw_cuda_available`]). Per-group weight scales run
    /// [`MatmulPath::Gemv`] instead. What `Auto` picks for M ≤ 16 where it can run.
    Dp4aGemv,
    /// Force the hand-written CUDA tensor-core GEMM (`mma.sync` m16n8k32 s8 on register-decoded
    /// weights, 128×128 tiles, 3-stage `cp.async` pipeline); an error off CUDA sm ≥ 80.
    /// Per-group weight scales run [`MatmulPath::CmmaGemm`] instead. What `Auto` picks for
    /// M > 16 on CUDA sm ≥ 80 other than Hopper.
    MmaGemm,
    /// Force the hand-written Hopper GEMM (`wgmma` m64nNk32 s8, asynchronous warpgroup MMA,
    /// with the weights decoded into its register operand and the activations in swizzled
    /// shared memory); an error off CUDA sm 90 ([`crate::wgmma_available`]). Per-group weight
    /// scales run [`MatmulPath::CmmaGemm`] instead. What `Auto` picks for M > 16 on Hopper.
    WgmmaGemm,
}

impl MatmulPath {
    /// Short stable name, used in errors and benchmark output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Gemv => "gemv",
            Self::GemvPlane => "gemv-plane",
            Self::TiledGemm => "tiled-gemm",
            Self::CmmaGemm => "cmma-gemm",
            Self::CmmaTiledGemm => "cmma-tiled-gemm",
            Self::Dp4aGemv => "dp4a-gemv",
            Self::MmaGemm => "mma-gemm",
            Self::WgmmaGemm => "wgmma-gemm",
        }
    }
}

/// Int8 activations on the device.
///
/// `codes`: `M × words_per_row` little-endian `u32` words, 4 int8 codes per word (byte `j` of
/// word `w` is column `4w + j`), each row zero-padded to `16 · ceil(K/16)` codes. Byte for byte
/// this is a row-major `i8` array `[M, 16·ceil(K/16)]`. `scales`: `M` f32 (per-tensor scales
/// are repeated on every row). A row containing NaN/Inf has scale NaN and zero codes.
#[derive(Debug, Clone)]
pub struct QuantizedActivations {
    /// Packed int8 codes (see the type docs).
    pub codes: Handle,
    /// One f32 scale per row.
    pub scales: Handle,
    /// Rows.
    pub m: usize,
    /// Columns (inputs).
    pub k: usize,
}

impl QuantizedActivations {
    /// `u32` words per row: `4 · ceil(K/16)`.
    pub fn words_per_row(&self) -> usize {
        words_per_row(self.k)
    }
}

/// `u32` words per activation row for `k` inputs.
pub fn words_per_row(k: usize) -> usize {
    k.div_ceil(16) * 4
}

/// Packed ternary weights on the device, in the layout shared with bitlinear-core.
///
/// `packed`: `ceil(N/16) · ceil(K/16)` blocks of 16 `u32` words; block `(t, kb)` starts at word
/// `(t · ceil(K/16) + kb) · 16`; word `w` of a block is output row `16t + w`; bits `8j+2s..8j+2s+1`
/// hold `code = w + 1` for input `16kb + 4s + j`; padding holds code 1 (weight 0).
/// `scales`: see [`WeightGranularity`].
#[derive(Debug, Clone)]
pub struct PackedWeights {
    /// Packed 2-bit codes.
    pub packed: Handle,
    /// f32 scales.
    pub scales: Handle,
    /// Inputs.
    pub k: usize,
    /// Outputs.
    pub n: usize,
    /// Scale granularity.
    pub granularity: WeightGranularity,
}

impl PackedWeights {
    /// Wraps existing handles (e.g. loaded from a checkpoint), checking shapes and byte sizes.
    pub fn from_handles(
        packed: Handle,
        scales: Handle,
        k: usize,
        n: usize,
        granularity: WeightGranularity,
    ) -> Result<Self> {
        let w = Self {
            packed,
            scales,
            k,
            n,
            granularity,
        };
        w.validate()?;
        Ok(w)
    }

    /// Number of packed `u32` words: `ceil(N/16) · ceil(K/16) · 16`.
    pub fn word_count(&self) -> usize {
        packed_word_count(self.k, self.n)
    }

    /// Checks dimensions, group size and buffer sizes.
    pub fn validate(&self) -> Result<()> {
        crate::validate::positive("k", self.k)?;
        crate::validate::positive("n", self.n)?;
        self.granularity.validate()?;
        crate::validate::bytes("packed", &self.packed, self.word_count() * 4)?;
        crate::validate::bytes(
            "weight scales",
            &self.scales,
            self.granularity.scale_count(self.k, self.n) * 4,
        )
    }
}

/// Number of packed `u32` words for a `K → N` layer.
pub fn packed_word_count(k: usize, n: usize) -> usize {
    n.div_ceil(16) * k.div_ceil(16) * 16
}
