//! Quantization semantics: ternary weights by absmean, int8 activations by absmax.
//!
//! These functions *define* what every kernel computes (see DEVELOPERS.md):
//! - weights: `s_w = max(mean|W|, eps)`, `Wq = clamp(round(W / s_w), -1, 1)`;
//! - activations: `s_x = max(max|x|, eps) / 127`, `xq = clamp(round(x / s_x), -128, 127)`;
//! - `round` is round-half-to-even ([`f32::round_ties_even`]), as `torch.round`.

use std::fmt;
use std::str::FromStr;

use rayon::prelude::*;

use crate::error::{BitLinearError, Result};
use crate::simd_quant;

/// Default epsilon of the original BitLinear layer, guarding all-zero inputs.
pub const DEFAULT_EPS: f32 = 1e-6;

/// Group size used when a quantization type says `wpg` without a number.
pub const DEFAULT_GROUP_SIZE: usize = 128;

/// Largest K the i32 accumulators are guaranteed not to overflow for
/// (|xq| ≤ 128 and kernels accumulate biased codes ≤ 2, so 256·K must fit in i32).
pub const MAX_K: usize = (i32::MAX as usize) / 256;

/// How many activation scales a batch gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ActivationGranularity {
    /// One absmax scale per token (row of the `[M, K]` input). The BitNet default.
    #[default]
    PerToken,
    /// One absmax scale for the whole `[M, K]` input.
    PerTensor,
}

/// How many weight scales a `[N, K]` ternary weight gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WeightGranularity {
    /// One absmean scale for the whole matrix. The BitNet default.
    #[default]
    PerTensor,
    /// One absmean scale per output channel (row of the `[N, K]` weight).
    PerChannel,
    /// One absmean scale per output channel and per group of this many consecutive input
    /// columns. The group size must be a positive multiple of 16 (the packed block width).
    PerGroup(usize),
}

impl WeightGranularity {
    /// Checks the parameters of the granularity (group size positive and a multiple of 16).
    pub fn validate(&self) -> Result<()> {
        if let WeightGranularity::PerGroup(g) = *self {
            if g == 0 || g % 16 != 0 {
                return Err(BitLinearError::OutOfRange {
                    name: "group_size",
                    reason: format!("{g} is not a positive multiple of 16"),
                });
            }
        }
        Ok(())
    }

    /// Number of groups along K (1 unless per group).
    pub fn groups(&self, k: usize) -> usize {
        match *self {
            WeightGranularity::PerGroup(g) => k.div_ceil(g),
            _ => 1,
        }
    }

    /// Number of scales a `[n, k]` weight carries.
    pub fn num_scales(&self, n: usize, k: usize) -> usize {
        match *self {
            WeightGranularity::PerTensor => 1,
            WeightGranularity::PerChannel => n,
            WeightGranularity::PerGroup(_) => n * self.groups(k),
        }
    }

    /// Index into the scale vector for output row `row` and input column `col`.
    #[inline]
    pub fn scale_index(&self, row: usize, col: usize, k: usize) -> usize {
        match *self {
            WeightGranularity::PerTensor => 0,
            WeightGranularity::PerChannel => row,
            WeightGranularity::PerGroup(g) => row * k.div_ceil(g) + col / g,
        }
    }
}

/// A combination of activation and weight quantization, named as in the original library
/// (`ai8pc_wpt`: activations int8 per token, weights ternary per tensor).
///
/// Accepted string forms: activations `ai8pc` or `ai8ptk` (per token) and `ai8pt` (per tensor);
/// weights `wpt` (per tensor), `wpc` (per channel), `wpg` (per group of
/// [`DEFAULT_GROUP_SIZE`]) and `wpg<N>` (per group of N). `QuantType::to_string` gives the
/// canonical form (`ai8pc`, `ai8pt`, `wpg<N>`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QuantType {
    /// Activation scale granularity.
    pub activations: ActivationGranularity,
    /// Weight scale granularity.
    pub weights: WeightGranularity,
}

impl QuantType {
    /// The BitNet b1.58 default: `ai8pc_wpt`.
    pub const BITNET: QuantType = QuantType {
        activations: ActivationGranularity::PerToken,
        weights: WeightGranularity::PerTensor,
    };

    /// Creates a quantization type, validating the group size.
    pub fn new(activations: ActivationGranularity, weights: WeightGranularity) -> Result<Self> {
        weights.validate()?;
        Ok(Self {
            activations,
            weights,
        })
    }

    /// Every supported combination, with the default group size for per-group weights.
    pub fn all() -> Vec<QuantType> {
        let acts = [
            ActivationGranularity::PerToken,
            ActivationGranularity::PerTensor,
        ];
        let weights = [
            WeightGranularity::PerTensor,
            WeightGranularity::PerChannel,
            WeightGranularity::PerGroup(DEFAULT_GROUP_SIZE),
        ];
        acts.iter()
            .flat_map(|&a| {
                weights.iter().map(move |&w| QuantType {
                    activations: a,
                    weights: w,
                })
            })
            .collect()
    }
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = match self.activations {
            ActivationGranularity::PerToken => "ai8pc",
            ActivationGranularity::PerTensor => "ai8pt",
        };
        match self.weights {
            WeightGranularity::PerTensor => write!(f, "{a}_wpt"),
            WeightGranularity::PerChannel => write!(f, "{a}_wpc"),
            WeightGranularity::PerGroup(g) => write!(f, "{a}_wpg{g}"),
        }
    }
}

impl FromStr for QuantType {
    type Err = BitLinearError;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let unknown = || BitLinearError::UnknownQuantType(s.to_string());
        let (a, w) = lower.rsplit_once('_').ok_or_else(unknown)?;
        let activations = match a {
            "ai8pc" | "ai8ptk" => ActivationGranularity::PerToken,
            "ai8pt" => ActivationGranularity::PerTensor,
            _ => return Err(unknown()),
        };
        let weights = match w {
            "wpt" => WeightGranularity::PerTensor,
            "wpc" => WeightGranularity::PerChannel,
            "wpg" => WeightGranularity::PerGroup(DEFAULT_GROUP_SIZE),
            _ => {
                let g = w.strip_prefix("wpg").ok_or_else(unknown)?;
                WeightGranularity::PerGroup(g.parse().map_err(|_| unknown())?)
            }
        };
        QuantType::new(activations, weights)
    }
}

/// Ternary weights, unpacked: one `i8` in {-1, 0, 1} per weight plus the scales.
#[derive(Clone, Debug, PartialEq)]
pub struct TernaryWeights {
    /// Output features (rows).
    pub n: usize,
    /// Input features (columns).
    pub k: usize,
    /// Row-major `[n, k]` codes in {-1, 0, 1}.
    pub codes: Vec<i8>,
    /// Scales, laid out as [`WeightGranularity::scale_index`] says.
    pub scales: Vec<f32>,
    /// Scale granularity.
    pub granularity: WeightGranularity,
}

impl TernaryWeights {
    /// The dequantized weight `s_w · Wq`, row-major `[n, k]`.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.n * self.k);
        for row in 0..self.n {
            for col in 0..self.k {
                let s = self.scales[self.granularity.scale_index(row, col, self.k)];
                out.push(self.codes[row * self.k + col] as f32 * s);
            }
        }
        out
    }
}

pub(crate) fn check_dims(m: usize, k: usize, len: usize, name: &'static str) -> Result<()> {
    if k == 0 {
        return Err(BitLinearError::ZeroDimension { name: "k" });
    }
    if k > MAX_K {
        return Err(BitLinearError::OutOfRange {
            name: "k",
            reason: format!("{k} exceeds the i32-accumulator limit {MAX_K}"),
        });
    }
    let expected = m.checked_mul(k).ok_or_else(|| BitLinearError::OutOfRange {
        name,
        reason: "shape overflows usize".into(),
    })?;
    if len != expected {
        return Err(BitLinearError::LengthMismatch {
            name,
            expected,
            actual: len,
        });
    }
    Ok(())
}

/// Ternarizes a row-major `[n, k]` weight (PyTorch layout) by absmean.
///
/// Errors on zero dimensions, a length mismatch, an invalid group size, a negative or
/// non-finite `eps`, or a non-finite weight (it has no ternary value).
pub fn quantize_weights(
    w: &[f32],
    n: usize,
    k: usize,
    granularity: WeightGranularity,
    eps: f32,
) -> Result<TernaryWeights> {
    if n == 0 {
        return Err(BitLinearError::ZeroDimension { name: "n" });
    }
    check_dims(n, k, w.len(), "weight")?;
    granularity.validate()?;
    check_eps(eps)?;
    if let Some(index) = w.iter().position(|v| !v.is_finite()) {
        return Err(BitLinearError::NonFiniteWeight { index });
    }
    let groups = granularity.groups(k);
    let group_len = match granularity {
        WeightGranularity::PerGroup(g) => g,
        _ => k,
    };
    let mut scales = vec![0f32; granularity.num_scales(n, k)];
    match granularity {
        WeightGranularity::PerTensor => {
            // f64 sum: the mean over millions of weights must not drift with the order.
            let sum = crate::weight_pack::abs_sum(w);
            scales[0] = ((sum / w.len() as f64) as f32).max(eps);
        }
        _ => {
            for row in 0..n {
                for g in 0..groups {
                    let lo = g * group_len;
                    let hi = (lo + group_len).min(k);
                    let seg = &w[row * k + lo..row * k + hi];
                    let sum: f64 = seg.iter().map(|v| v.abs() as f64).sum();
                    scales[row * groups + g] = ((sum / seg.len() as f64) as f32).max(eps);
                }
            }
        }
    }
    let mut codes = vec![0i8; n * k];
    for row in 0..n {
        for col in 0..k {
            let s = scales[granularity.scale_index(row, col, k)];
            codes[row * k + col] = ternarize(w[row * k + col], s);
        }
    }
    Ok(TernaryWeights {
        n,
        k,
        codes,
        scales,
        granularity,
    })
}

/// `clamp(round_ties_even(v / s), -1, 1)`.
#[inline]
pub fn ternarize(v: f32, s: f32) -> i8 {
    (v / s).round_ties_even().clamp(-1.0, 1.0) as i8
}

pub(crate) fn check_eps(eps: f32) -> Result<()> {
    if !(eps.is_finite() && eps > 0.0) {
        return Err(BitLinearError::OutOfRange {
            name: "eps",
            reason: format!("{eps} is not a positive finite number"),
        });
    }
    Ok(())
}

/// Int8 activations ready for the kernels: rows padded with zeros to [`Self::row_stride`] bytes.
///
/// A row whose input held NaN or ±Inf gets scale NaN and zero codes, so every output of that
/// row is NaN (per tensor: every row). That is the documented result of non-finite inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedActivations {
    m: usize,
    k: usize,
    k_padded: usize,
    stride: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
}

/// Row stride of the padded activation buffer: K rounded up to whole cache lines, made an odd
/// number of lines so the 16 rows a kernel reads at once never alias to the same L1 sets
/// (a 4096-byte stride would put them all in one set and thrash an 8-way L1).
pub(crate) fn row_stride(k: usize) -> usize {
    let lines = k.div_ceil(64);
    (lines | 1) * 64
}

impl QuantizedActivations {
    /// An empty buffer to be filled by [`quantize_activations_into`].
    pub fn empty() -> Self {
        Self {
            m: 0,
            k: 0,
            k_padded: 0,
            stride: 0,
            codes: Vec::new(),
            scales: Vec::new(),
        }
    }

    /// Wraps pre-quantized activations: row-major `[m, k]` int8 codes and one scale per row.
    pub fn from_codes(codes: &[i8], m: usize, k: usize, scales: &[f32]) -> Result<Self> {
        check_dims(m, k, codes.len(), "activation codes")?;
        if scales.len() != m {
            return Err(BitLinearError::LengthMismatch {
                name: "activation scales",
                expected: m,
                actual: scales.len(),
            });
        }
        let k_padded = k.div_ceil(16) * 16;
        let stride = row_stride(k);
        let mut padded = vec![0i8; m * stride];
        for row in 0..m {
            padded[row * stride..row * stride + k].copy_from_slice(&codes[row * k..][..k]);
        }
        Ok(Self {
            m,
            k,
            k_padded,
            stride,
            codes: padded,
            scales: scales.to_vec(),
        })
    }

    /// Rows.
    pub fn m(&self) -> usize {
        self.m
    }
    /// Logical columns.
    pub fn k(&self) -> usize {
        self.k
    }
    /// `k` rounded up to 16 (the packed block width).
    pub fn k_padded(&self) -> usize {
        self.k_padded
    }
    /// Row stride of [`Self::codes_padded`] in bytes (≥ `k_padded`).
    pub fn row_stride(&self) -> usize {
        self.stride
    }
    /// Row-major `[m, row_stride]` codes, zero in the padding.
    pub fn codes_padded(&self) -> &[i8] {
        &self.codes
    }
    /// The codes of one row, without padding.
    pub fn row(&self, r: usize) -> &[i8] {
        &self.codes[r * self.stride..r * self.stride + self.k]
    }
    /// One scale per row (all equal for per-tensor quantization).
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }
    /// Dequantized `[m, k]` activations `s_x · xq`.
    pub fn dequantize(&self) -> Vec<f32> {
        (0..self.m)
            .flat_map(|r| self.row(r).iter().map(move |&c| c as f32 * self.scales[r]))
            .collect()
    }
}

/// Quantizes row-major `[m, k]` activations to int8 by absmax.
pub fn quantize_activations(
    x: &[f32],
    m: usize,
    k: usize,
    granularity: ActivationGranularity,
    eps: f32,
) -> Result<QuantizedActivations> {
    let mut q = QuantizedActivations::empty();
    quantize_activations_into(x, m, k, granularity, eps, &mut q)?;
    Ok(q)
}

/// Like [`quantize_activations`], reusing the buffers of `out`.
pub fn quantize_activations_into(
    x: &[f32],
    m: usize,
    k: usize,
    granularity: ActivationGranularity,
    eps: f32,
    out: &mut QuantizedActivations,
) -> Result<()> {
    check_dims(m, k, x.len(), "activations")?;
    check_eps(eps)?;
    let stride = row_stride(k);
    out.m = m;
    out.k = k;
    out.k_padded = k.div_ceil(16) * 16;
    out.stride = stride;
    out.codes.clear();
    out.codes.resize(m * stride, 0);
    out.scales.clear();
    out.scales.resize(m, 0.0);
    let parallel = quantizes_in_parallel(m, k);
    // The scales hold each row's absmax until they are turned into scales (no allocation:
    // at M = 1 one would cost a good part of the quantization).
    let absmax = |(s, row): (&mut f32, &[f32])| *s = simd_quant::absmax(row);
    if parallel {
        out.scales
            .par_iter_mut()
            .zip(x.par_chunks_exact(k))
            .for_each(absmax);
    } else {
        out.scales
            .iter_mut()
            .zip(x.chunks_exact(k))
            .for_each(absmax);
    }
    match granularity {
        ActivationGranularity::PerToken => {
            for s in out.scales.iter_mut() {
                *s = activation_scale(*s, eps);
            }
        }
        ActivationGranularity::PerTensor => {
            // NaN marks a non-finite row and must win over any finite maximum.
            let max = out.scales.iter().fold(0f32, |m, &a| {
                if a.is_nan() || m.is_nan() {
                    f32::NAN
                } else {
                    m.max(a)
                }
            });
            out.scales.fill(activation_scale(max, eps));
        }
    }
    let out_scales = &out.scales;
    let quantize = |((s, codes), row): ((&f32, &mut [i8]), &[f32])| {
        // Non-finite rows keep zero codes; their NaN scale makes their outputs NaN. (A finite
        // scale means every row it covers is finite: absmax is NaN for a non-finite row, and
        // the scale of a NaN absmax is NaN.)
        if s.is_finite() {
            simd_quant::quantize_row(row, *s, &mut codes[..k]);
        }
    };
    if parallel {
        out_scales
            .par_iter()
            .zip(out.codes.par_chunks_mut(stride))
            .zip(x.par_chunks_exact(k))
            .for_each(quantize);
    } else {
        out_scales
            .iter()
            .zip(out.codes.chunks_mut(stride))
            .zip(x.chunks_exact(k))
            .for_each(quantize);
    }
    Ok(())
}

/// Whether [`quantize_activations_into`] splits `[m, k]` activations across rayon threads:
/// large batches do; one row is too little work to split.
pub(crate) fn quantizes_in_parallel(m: usize, k: usize) -> bool {
    m > 1 && m * k >= 1 << 15
}

/// `max(absmax, eps) / 127`; NaN (a non-finite input) stays NaN.
#[inline]
pub fn activation_scale(absmax: f32, eps: f32) -> f32 {
    if absmax.is_nan() {
        f32::NAN
    } else {
        absmax.max(eps) / 127.0
    }
}

/// `clamp(round_ties_even(v / s), -128, 127)`.
#[inline]
pub fn quantize_activation_value(v: f32, s: f32) -> i8 {
    (v / s).round_ties_even().clamp(-128.0, 127.0) as i8
}
