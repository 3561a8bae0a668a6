//! The 2-bit packed ternary format shared by every kernel (CPU and GPU).
//!
//! Layout ("16×16 tiles"): the `[N, K]` weight is cut into tiles of 16 output rows and blocks
//! of 16 input columns. Block `(t, kb)` (index `t * blocks_k + kb`) is 64 bytes; byte `b` of it
//! belongs to row `n = 16 t + b / 4` and holds four 2-bit codes: bits `2s..2s+1` (s = 0..3) hold
//! column `k = 16 kb + 4 s + b % 4`. A code is `w + 1` ∈ {0, 1, 2}; padding (n ≥ N or k ≥ K)
//! holds 1, i.e. weight 0, so padding never changes a result.
//!
//! Why this layout: decoding sub-vector `s` of a block is one shift and one mask, and yields
//! 16 rows × 4 consecutive columns — exactly the operand of one `vpdpbusd` (or NEON `sdot`)
//! with 4 activation bytes broadcast. A tile's blocks are contiguous, so each thread streams
//! memory linearly, and read as little-endian u32 words (word = one row's 16 columns) the
//! same bytes are coalesced GPU loads.

use std::sync::Arc;

use crate::error::{BitLinearError, Result};
use crate::quant::{quantize_weights, TernaryWeights, WeightGranularity};

/// Output rows per tile.
pub const TILE_N: usize = 16;
/// Input columns per block.
pub const BLOCK_K: usize = 16;
/// Bytes per block (16 × 16 two-bit codes).
pub const BLOCK_BYTES: usize = 64;

/// One 64-byte block of 256 two-bit codes, cache-line aligned.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedBlock(pub [u8; BLOCK_BYTES]);

/// The byte of a block where code 1 (weight 0) fills all four slots.
const ZERO_BYTE: u8 = 0b0101_0101;

/// Little-endian u32 words of packed codes owned by someone else (e.g. a framework tensor that
/// a model keeps anyway), which [`PackedTernary::from_shared_words`] runs on without a copy.
pub trait SharedWords: Send + Sync {
    /// The words; must return the same slice on every call.
    fn words(&self) -> &[u32];
}

/// Where the codes live: packed here, or in a shared word buffer.
#[derive(Clone)]
enum Codes {
    Owned(Vec<PackedBlock>),
    Shared(Arc<dyn SharedWords>),
}

impl Codes {
    fn bytes(&self) -> &[u8] {
        match self {
            // SAFETY: PackedBlock is repr(C) over [u8; 64] with no padding between elements
            // (size 64 == alignment 64), so the Vec's storage is len * 64 initialized bytes.
            Codes::Owned(blocks) => unsafe {
                std::slice::from_raw_parts(blocks.as_ptr() as *const u8, blocks.len() * BLOCK_BYTES)
            },
            Codes::Shared(words) => {
                let w = words.words();
                // SAFETY: any u32 slice is readable as 4× as many initialized bytes (u8 has
                // alignment 1); on a little-endian target they are the words' LE bytes
                // (`from_shared_words` copies on big-endian targets).
                unsafe { std::slice::from_raw_parts(w.as_ptr() as *const u8, w.len() * 4) }
            }
        }
    }
}

/// Ternary weights packed 2 bits per weight, plus their scales.
#[derive(Clone)]
pub struct PackedTernary {
    n: usize,
    k: usize,
    granularity: WeightGranularity,
    scales: Vec<f32>,
    codes: Codes,
}

impl std::fmt::Debug for PackedTernary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedTernary")
            .field("n", &self.n)
            .field("k", &self.k)
            .field("granularity", &self.granularity)
            .field("scales", &self.scales.len())
            .field("shared", &matches!(self.codes, Codes::Shared(_)))
            .finish()
    }
}

/// Equal when shapes, granularity, scales and every code byte are equal (wherever they live).
impl PartialEq for PackedTernary {
    fn eq(&self, other: &Self) -> bool {
        self.n == other.n
            && self.k == other.k
            && self.granularity == other.granularity
            && self.scales == other.scales
            && self.as_bytes() == other.as_bytes()
    }
}

impl PackedTernary {
    /// Quantizes a row-major `[n, k]` f32 weight and packs it.
    pub fn quantize(
        w: &[f32],
        n: usize,
        k: usize,
        granularity: WeightGranularity,
        eps: f32,
    ) -> Result<Self> {
        Ok(Self::pack(&quantize_weights(w, n, k, granularity, eps)?))
    }

    /// Packs unpacked ternary weights (codes must be in {-1, 0, 1}).
    pub fn pack(w: &TernaryWeights) -> Self {
        let tiles_n = w.n.div_ceil(TILE_N);
        let blocks_k = w.k.div_ceil(BLOCK_K);
        let mut blocks = vec![PackedBlock([ZERO_BYTE; BLOCK_BYTES]); tiles_n * blocks_k];
        for row in 0..w.n {
            let (t, r) = (row / TILE_N, row % TILE_N);
            for col in 0..w.k {
                let (kb, c) = (col / BLOCK_K, col % BLOCK_K);
                let (s, j) = (c / 4, c % 4);
                let code = (w.codes[row * w.k + col].clamp(-1, 1) + 1) as u8;
                let byte = &mut blocks[t * blocks_k + kb].0[r * 4 + j];
                *byte = (*byte & !(3 << (2 * s))) | (code << (2 * s));
            }
        }
        Self {
            n: w.n,
            k: w.k,
            granularity: w.granularity,
            scales: w.scales.clone(),
            codes: Codes::Owned(blocks),
        }
    }

    /// Assembles validated parts (crate-internal constructors only).
    pub(crate) fn from_parts(
        n: usize,
        k: usize,
        granularity: WeightGranularity,
        scales: Vec<f32>,
        blocks: Vec<PackedBlock>,
    ) -> Self {
        Self {
            n,
            k,
            granularity,
            scales,
            codes: Codes::Owned(blocks),
        }
    }

    /// Rebuilds packed weights from their raw bytes (e.g. a checkpoint), validating everything:
    /// dimensions, lengths, scale values, code values and padding.
    pub fn from_bytes(
        n: usize,
        k: usize,
        granularity: WeightGranularity,
        scales: Vec<f32>,
        bytes: &[u8],
    ) -> Result<Self> {
        check_header(n, k, granularity, &scales, bytes.len())?;
        let blocks: Vec<PackedBlock> = bytes
            .chunks_exact(BLOCK_BYTES)
            .map(|c| PackedBlock(c.try_into().expect("chunk of 64")))
            .collect();
        let p = Self {
            n,
            k,
            granularity,
            scales,
            codes: Codes::Owned(blocks),
        };
        p.validate_codes()?;
        Ok(p)
    }

    /// Like [`Self::from_u32_words`], but runs on the caller's words in place instead of
    /// copying them (validated once, here): the packed weights then cost no memory beyond the
    /// buffer the caller holds anyway. On a big-endian target the words are copied.
    pub fn from_shared_words(
        n: usize,
        k: usize,
        granularity: WeightGranularity,
        scales: Vec<f32>,
        words: Arc<dyn SharedWords>,
    ) -> Result<Self> {
        if cfg!(target_endian = "big") {
            return Self::from_u32_words(n, k, granularity, scales, words.words());
        }
        check_header(n, k, granularity, &scales, words.words().len() * 4)?;
        let p = Self {
            n,
            k,
            granularity,
            scales,
            codes: Codes::Shared(words),
        };
        p.validate_codes()?;
        Ok(p)
    }

    /// Like [`Self::from_bytes`] from little-endian u32 words (the GPU and checkpoint form).
    pub fn from_u32_words(
        n: usize,
        k: usize,
        granularity: WeightGranularity,
        scales: Vec<f32>,
        words: &[u32],
    ) -> Result<Self> {
        let mut bytes = Vec::with_capacity(words.len() * 4);
        for w in words {
            bytes.extend_from_slice(&w.to_le_bytes());
        }
        Self::from_bytes(n, k, granularity, scales, &bytes)
    }

    fn validate_codes(&self) -> Result<()> {
        let blocks_k = self.blocks_k();
        // Fast pass, 8 bytes at a time: a field holds code 3 iff both of its bits are set.
        // Only blocks that may fail (code 3 seen, or overlapping the padding) are re-read
        // field by field below, so a checkpoint of any size validates at memory speed.
        let edge_tile = !self.n.is_multiple_of(TILE_N);
        let edge_block = !self.k.is_multiple_of(BLOCK_K);
        let tiles = self.tiles_n();
        for (i, blk) in self.as_bytes().chunks_exact(BLOCK_BYTES).enumerate() {
            let (t, kb) = (i / blocks_k, i % blocks_k);
            let pads = (edge_tile && t + 1 == tiles) || (edge_block && kb + 1 == blocks_k);
            let has_three = blk.chunks_exact(8).any(|c| {
                let v = u64::from_le_bytes(c.try_into().expect("8 bytes"));
                v & (v >> 1) & 0x5555_5555_5555_5555 != 0
            });
            if pads || has_three {
                self.validate_block(t, kb, blk)?;
            }
        }
        Ok(())
    }

    /// Field-by-field check of one block, naming the first bad weight.
    fn validate_block(&self, t: usize, kb: usize, blk: &[u8]) -> Result<()> {
        for (b, &byte) in blk.iter().enumerate() {
            for s in 0..4 {
                let code = (byte >> (2 * s)) & 3;
                let row = t * TILE_N + b / 4;
                let col = kb * BLOCK_K + 4 * s + b % 4;
                if code == 3 {
                    return Err(BitLinearError::CorruptPacked(format!(
                        "invalid 2-bit code 3 at row {row}, column {col}"
                    )));
                }
                if (row >= self.n || col >= self.k) && code != 1 {
                    return Err(BitLinearError::CorruptPacked(format!(
                        "padding at row {row}, column {col} holds a nonzero weight"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Unpacks to one `i8` per weight (exact inverse of [`Self::pack`]).
    pub fn unpack(&self) -> TernaryWeights {
        let mut codes = vec![0i8; self.n * self.k];
        for row in 0..self.n {
            for col in 0..self.k {
                codes[row * self.k + col] = self.code(row, col);
            }
        }
        TernaryWeights {
            n: self.n,
            k: self.k,
            codes,
            scales: self.scales.clone(),
            granularity: self.granularity,
        }
    }

    /// The ternary weight at `(row, col)`.
    #[inline]
    pub fn code(&self, row: usize, col: usize) -> i8 {
        let (t, r) = (row / TILE_N, row % TILE_N);
        let (kb, c) = (col / BLOCK_K, col % BLOCK_K);
        let byte = self.as_bytes()[(t * self.blocks_k() + kb) * BLOCK_BYTES + r * 4 + c % 4];
        ((byte >> (2 * (c / 4))) & 3) as i8 - 1
    }

    /// Output features.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Input features.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Scale granularity.
    pub fn granularity(&self) -> WeightGranularity {
        self.granularity
    }
    /// Weight scales (see [`WeightGranularity::scale_index`]).
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }
    /// Number of 16-row tiles.
    pub fn tiles_n(&self) -> usize {
        self.n.div_ceil(TILE_N)
    }
    /// Number of 16-column blocks per tile.
    pub fn blocks_k(&self) -> usize {
        self.k.div_ceil(BLOCK_K)
    }
    /// K rounded up to a multiple of 16.
    pub fn k_padded(&self) -> usize {
        self.blocks_k() * BLOCK_K
    }
    /// The packed codes as raw bytes, tile-major blocks of [`BLOCK_BYTES`] (not necessarily
    /// aligned: they may live in a shared u32 buffer).
    pub fn as_bytes(&self) -> &[u8] {
        self.codes.bytes()
    }
    /// The packed codes as little-endian u32 words (16 per block; word = one row, 16 columns).
    pub fn to_u32_words(&self) -> Vec<u32> {
        self.as_bytes()
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect()
    }
    /// Bytes of packed codes (padding included).
    pub fn code_bytes(&self) -> usize {
        self.as_bytes().len()
    }
    /// Bytes of codes plus f32 scales.
    pub fn total_bytes(&self) -> usize {
        self.code_bytes() + self.scales.len() * 4
    }
    /// Bytes per weight, scales and padding included (0.25 for large aligned shapes).
    pub fn bytes_per_weight(&self) -> f64 {
        self.total_bytes() as f64 / (self.n * self.k) as f64
    }
}

/// Dimension, length and scale checks shared by the raw-bytes constructors.
fn check_header(
    n: usize,
    k: usize,
    granularity: WeightGranularity,
    scales: &[f32],
    code_bytes: usize,
) -> Result<()> {
    if n == 0 {
        return Err(BitLinearError::ZeroDimension { name: "n" });
    }
    if k == 0 {
        return Err(BitLinearError::ZeroDimension { name: "k" });
    }
    granularity.validate()?;
    let expected = packed_len_bytes(n, k);
    if code_bytes != expected {
        return Err(BitLinearError::LengthMismatch {
            name: "packed weight bytes",
            expected,
            actual: code_bytes,
        });
    }
    let ns = granularity.num_scales(n, k);
    if scales.len() != ns {
        return Err(BitLinearError::LengthMismatch {
            name: "weight scales",
            expected: ns,
            actual: scales.len(),
        });
    }
    if let Some(i) = scales.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(BitLinearError::CorruptPacked(format!(
            "weight scale {i} is {}, expected a positive finite number",
            scales[i]
        )));
    }
    Ok(())
}

/// Bytes of packed codes for an `[n, k]` weight.
pub fn packed_len_bytes(n: usize, k: usize) -> usize {
    n.div_ceil(TILE_N) * k.div_ceil(BLOCK_K) * BLOCK_BYTES
}
