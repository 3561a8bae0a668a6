//! Fast ternarization and packing straight from an input-major `[K, N]` weight (Burn's
//! `Linear` layout), in parallel: the training forward re-packs the weight at every step, so
//! this must cost far less than the product itself.
//!
//! Same formulas as [`crate::quantize_weights`]; per-channel and per-group scales are bit-identical
//! to it (same f64 summation order), the per-tensor scale agrees to f64 rounding (the sum runs
//! in another element order).

use rayon::prelude::*;

use crate::error::{BitLinearError, Result};
use crate::packed::{PackedBlock, PackedTernary, BLOCK_K, TILE_N};
use crate::quant::{check_dims, check_eps, WeightGranularity};

/// Σ|v| in f64, in 4096-element chunks reduced in order (deterministic for a given slice).
pub(crate) fn abs_sum(v: &[f32]) -> f64 {
    const CHUNK: usize = 4096;
    let chunk_sum = |c: &[f32]| -> f64 {
        // Eight lanes vectorize; their fixed order keeps the result deterministic.
        let mut lanes = [0f64; 8];
        let exact = c.chunks_exact(8);
        let rest = exact.remainder();
        for e in exact {
            for i in 0..8 {
                lanes[i] += e[i].abs() as f64;
            }
        }
        lanes.iter().sum::<f64>() + rest.iter().map(|v| v.abs() as f64).sum::<f64>()
    };
    if v.len() >= 16 * CHUNK {
        let parts: Vec<f64> = v.par_chunks(CHUNK).map(chunk_sum).collect();
        parts.iter().sum()
    } else {
        v.chunks(CHUNK).map(chunk_sum).sum()
    }
}

/// Absmean scales of an input-major `[k, n]` weight, in [`WeightGranularity::scale_index`] order,
/// or `None` when a weight is NaN or ±Inf.
///
/// Every weight enters one f64 sum of magnitudes, and finite f32 values cannot overflow an f64
/// sum, so a non-finite sum is exactly "some weight is not finite": the check costs no extra
/// pass over the weights (`max(eps)` would hide a NaN, so sums are checked before it).
fn scales_kn(
    w: &[f32],
    k: usize,
    n: usize,
    granularity: WeightGranularity,
    eps: f32,
) -> Option<Vec<f32>> {
    let mean = |sum: f64, len: usize| ((sum / len as f64) as f32).max(eps);
    let (groups, group_len) = match granularity {
        WeightGranularity::PerTensor => {
            let sum = abs_sum(w);
            return sum.is_finite().then(|| vec![mean(sum, w.len())]);
        }
        WeightGranularity::PerChannel => (1, k),
        WeightGranularity::PerGroup(g) => (k.div_ceil(g), g),
    };
    // Column sums over each group's rows, in increasing k as `quantize_weights` does.
    const COLS: usize = 64;
    let mut scales = vec![0f32; n * groups];
    let col_chunks: Vec<(usize, Vec<f32>, bool)> = (0..n.div_ceil(COLS))
        .into_par_iter()
        .map(|c| {
            let (c0, c1) = (c * COLS, ((c + 1) * COLS).min(n));
            let mut out = vec![0f32; (c1 - c0) * groups];
            let mut finite = true;
            for g in 0..groups {
                let (k0, k1) = (g * group_len, ((g + 1) * group_len).min(k));
                let mut sums = [0f64; COLS];
                for row in k0..k1 {
                    for (s, v) in sums.iter_mut().zip(&w[row * n + c0..row * n + c1]) {
                        *s += v.abs() as f64;
                    }
                }
                for j in 0..c1 - c0 {
                    finite &= sums[j].is_finite();
                    out[j * groups + g] = mean(sums[j], k1 - k0);
                }
            }
            (c0, out, finite)
        })
        .collect();
    for (c0, out, finite) in col_chunks {
        if !finite {
            return None;
        }
        scales[c0 * groups..c0 * groups + out.len()].copy_from_slice(&out);
    }
    Some(scales)
}

impl PackedTernary {
    /// Ternarizes and packs an input-major weight (row-major `[k, n]`, i.e. Burn's
    /// `[d_input, d_output]`) in parallel, without transposing it first.
    ///
    /// When `codes_nk` is given (length `n * k`), also writes the ternary codes in `[n, k]`
    /// order (what a straight-through backward keeps). Errors like [`crate::quantize_weights`].
    pub fn quantize_input_major(
        w: &[f32],
        k: usize,
        n: usize,
        granularity: WeightGranularity,
        eps: f32,
        codes_nk: Option<&mut [i8]>,
    ) -> Result<Self> {
        if n == 0 {
            return Err(BitLinearError::ZeroDimension { name: "n" });
        }
        check_dims(k, n, w.len(), "weight")?;
        if k == 0 {
            return Err(BitLinearError::ZeroDimension { name: "k" });
        }
        granularity.validate()?;
        check_eps(eps)?;
        if let Some(c) = &codes_nk {
            if c.len() != n * k {
                return Err(BitLinearError::LengthMismatch {
                    name: "codes",
                    expected: n * k,
                    actual: c.len(),
                });
            }
        }
        // The scale sums double as the finiteness check; the position of the first bad
        // weight is searched only when there is one.
        let Some(scales) = scales_kn(w, k, n, granularity, eps) else {
            let index = w
                .iter()
                .position(|v| !v.is_finite())
                .expect("a non-finite weight");
            return Err(BitLinearError::NonFiniteWeight { index });
        };
        let (tiles, blocks_k) = (n.div_ceil(TILE_N), k.div_ceil(BLOCK_K));
        let mut blocks = vec![PackedBlock([0b0101_0101; 64]); tiles * blocks_k];
        // Work goes by 16-row blocks of K so every thread reads whole contiguous rows of W
        // (walking a tile's column instead strides by N and thrashes the TLB). Block (t, kb)
        // lives at t * blocks_k + kb: different kb never share a block.
        let out = SharedWrites {
            blocks: blocks.as_mut_ptr(),
            codes: codes_nk.map_or(std::ptr::null_mut(), |c| c.as_mut_ptr()),
        };
        let out = &out;
        let scales_ref = &scales;
        (0..blocks_k).into_par_iter().for_each(|kb| {
            let job = RowBlockJob {
                w,
                k,
                n,
                kb,
                blocks_k,
                granularity,
                scales: scales_ref,
            };
            // SAFETY: kb < blocks_k and the buffers are sized for (tiles × blocks_k) blocks and
            // n × k codes; this task alone writes block column kb and code columns 16kb..16kb+16.
            unsafe { pack_row_block(&job, out) };
        });
        Ok(PackedTernary::from_parts(n, k, granularity, scales, blocks))
    }
}

/// Output pointers shared by the row-block tasks (each writes a disjoint part).
struct SharedWrites {
    blocks: *mut PackedBlock,
    codes: *mut i8,
}
// SAFETY: tasks write disjoint blocks and code columns (see `quantize_input_major`).
unsafe impl Sync for SharedWrites {}

/// One 16-row block of K: the share of one task in [`PackedTernary::quantize_input_major`].
struct RowBlockJob<'a> {
    w: &'a [f32],
    k: usize,
    n: usize,
    kb: usize,
    blocks_k: usize,
    granularity: WeightGranularity,
    scales: &'a [f32],
}

/// Packs rows `16 kb..16 kb + 16` of W, choosing the widest vector ISA so the division and
/// round-half-to-even vectorize.
///
/// # Safety
/// `out.blocks` addresses `ceil(n/16) * blocks_k` blocks and `out.codes` is null or addresses
/// `n * k` codes; no other thread writes block column `kb` or code columns of this row block.
unsafe fn pack_row_block(job: &RowBlockJob, out: &SharedWrites) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: CPU support checked; the rest is the caller's contract.
            return unsafe { pack_row_block_avx512(job, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { pack_row_block_avx2(job, out) };
        }
    }
    // SAFETY: the caller's contract.
    unsafe { pack_row_block_generic(job, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn pack_row_block_avx512(job: &RowBlockJob, out: &SharedWrites) {
    // SAFETY: forwarded contract.
    unsafe { pack_row_block_generic(job, out) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_row_block_avx2(job: &RowBlockJob, out: &SharedWrites) {
    // SAFETY: forwarded contract.
    unsafe { pack_row_block_generic(job, out) }
}

#[inline(always)]
unsafe fn pack_row_block_generic(job: &RowBlockJob, out: &SharedWrites) {
    let (k, n, kb) = (job.k, job.n, job.kb);
    let tiles = n.div_ceil(TILE_N);
    // One scale per output column for this row block (groups are multiples of 16 rows).
    let row0 = kb * BLOCK_K;
    let col_scale: Vec<f32> = match job.granularity {
        WeightGranularity::PerTensor => vec![job.scales[0]; n],
        _ => (0..n)
            .map(|c| job.scales[job.granularity.scale_index(c, row0, k)])
            .collect(),
    };
    // The packed word of column `col` in this row block: byte b holds rows b, b+4, b+8, b+12
    // (2 bits each). Padding columns and rows keep code 1 (weight 0).
    let mut words = vec![0x5555_5555u32; tiles * TILE_N];
    let mut q = vec![0i8; n];
    let rows = (row0 + BLOCK_K).min(k) - row0;
    // Codes of this row block by column, so each column's 16 codes are written in one run.
    let mut by_col = if out.codes.is_null() {
        Vec::new()
    } else {
        vec![0i8; n * BLOCK_K]
    };
    for row in row0..row0 + rows {
        let src = &job.w[row * n..(row + 1) * n];
        for ((d, &v), &s) in q.iter_mut().zip(src).zip(&col_scale) {
            let t = (v / s).round_ties_even().clamp(-1.0, 1.0);
            // SAFETY: weights were checked finite and scales are ≥ eps > 0, so `t` is a
            // finite integer in [-1, 1] (the saturating `as` cast would block vectorization).
            *d = unsafe { t.to_int_unchecked::<i32>() } as i8;
        }
        let c = row % BLOCK_K;
        let shift = 8 * (c % 4) + 2 * (c / 4);
        let clear = !(3u32 << shift);
        for (wd, &v) in words.iter_mut().zip(&q) {
            *wd = (*wd & clear) | (((v + 1) as u32) << shift);
        }
        if !by_col.is_empty() {
            for (col, &v) in q.iter().enumerate() {
                by_col[col * BLOCK_K + c] = v;
            }
        }
    }
    if !by_col.is_empty() {
        for col in 0..n {
            // SAFETY: col < n and row0 + rows ≤ k: inside the n × k buffer; code columns
            // row0..row0+rows belong to this task.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    by_col.as_ptr().add(col * BLOCK_K),
                    out.codes.add(col * k + row0),
                    rows,
                )
            };
        }
    }
    for t in 0..tiles {
        // SAFETY: t < tiles and kb < blocks_k: block (t, kb) exists and belongs to this task;
        // 16 words are exactly its 64 bytes (little-endian, as the format defines).
        unsafe {
            let dst = out.blocks.add(t * job.blocks_k + kb) as *mut u8;
            for (j, wd) in words[t * TILE_N..(t + 1) * TILE_N].iter().enumerate() {
                std::ptr::copy_nonoverlapping(wd.to_le_bytes().as_ptr(), dst.add(4 * j), 4);
            }
        }
    }
}
