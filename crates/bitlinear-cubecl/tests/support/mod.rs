//! Naive CPU reference of the BitLinear semantics, written independently of the kernels.
#![allow(dead_code)]

/// Per-row (or per-tensor) absmax int8 quantization: returns codes `[m][k]` and `m` scales.
pub fn quantize_acts(
    x: &[f32],
    m: usize,
    k: usize,
    per_tensor: bool,
    eps: f32,
) -> (Vec<i8>, Vec<f32>) {
    let absmax = |row: &[f32]| -> f32 {
        let mut a = 0.0f32;
        for &v in row {
            if !v.is_finite() {
                return f32::INFINITY;
            }
            a = a.max(v.abs());
        }
        a
    };
    let tensor_max = if per_tensor { absmax(x) } else { 0.0 };
    let mut codes = vec![0i8; m * k];
    let mut scales = vec![0f32; m];
    for r in 0..m {
        let row = &x[r * k..(r + 1) * k];
        let amax = if per_tensor { tensor_max } else { absmax(row) };
        if !amax.is_finite() {
            scales[r] = f32::NAN;
            continue;
        }
        let s = amax.max(eps) / 127.0;
        scales[r] = s;
        for c in 0..k {
            codes[r * k + c] = (row[c] / s).round_ties_even().clamp(-128.0, 127.0) as i8;
        }
    }
    (codes, scales)
}

/// Packs ternary weights `t[n][k]` ∈ {-1,0,1} into the shared block layout.
pub fn pack(t: &[i8], n: usize, k: usize) -> Vec<u32> {
    let (tiles_n, blocks_k) = (n.div_ceil(16), k.div_ceil(16));
    let mut out = vec![0u32; tiles_n * blocks_k * 16];
    for tile in 0..tiles_n {
        for kb in 0..blocks_k {
            for w in 0..16 {
                let nn = tile * 16 + w;
                let mut word = 0u32;
                for kl in 0..16 {
                    let kk = kb * 16 + kl;
                    let code = if nn < n && kk < k {
                        (t[nn * k + kk] + 1) as u32
                    } else {
                        1
                    };
                    let (s, j) = (kl / 4, kl % 4);
                    word |= code << (8 * j + 2 * s);
                }
                out[(tile * blocks_k + kb) * 16 + w] = word;
            }
        }
    }
    out
}

/// Scale-granularity description for the reference.
#[derive(Clone, Copy, Debug)]
pub enum Gran {
    Tensor,
    Channel,
    Group(usize),
}

impl Gran {
    /// Every granularity the kernels take, in the order tests rotate through them.
    pub const ALL: [Gran; 5] = [
        Gran::Tensor,
        Gran::Channel,
        Gran::Group(16),
        Gran::Group(32),
        Gran::Group(64),
    ];

    pub fn count(self, n: usize, k: usize) -> usize {
        match self {
            Gran::Tensor => 1,
            Gran::Channel => n,
            Gran::Group(g) => n * k.div_ceil(g),
        }
    }
    pub fn index(self, nn: usize, kk: usize, k: usize) -> usize {
        match self {
            Gran::Tensor => 0,
            Gran::Channel => nn,
            Gran::Group(g) => nn * k.div_ceil(g) + kk / g,
        }
    }
}

/// Absmean scales of `w` given as `[n][k]` (sequential f32 sums in ascending k; per tensor in f64).
pub fn absmean_scales(w_nk: &[f32], n: usize, k: usize, gran: Gran, eps: f32) -> Vec<f32> {
    match gran {
        Gran::Tensor => {
            let s: f64 = w_nk.iter().map(|v| v.abs() as f64).sum();
            vec![((s / (n * k) as f64) as f32).max(eps)]
        }
        Gran::Channel => (0..n)
            .map(|nn| {
                let mut s = 0f32;
                for kk in 0..k {
                    s += w_nk[nn * k + kk].abs();
                }
                (s / k as f32).max(eps)
            })
            .collect(),
        Gran::Group(g) => {
            let gpr = k.div_ceil(g);
            let mut out = Vec::with_capacity(n * gpr);
            for nn in 0..n {
                for gi in 0..gpr {
                    let (k0, k1) = (gi * g, ((gi + 1) * g).min(k));
                    let mut s = 0f32;
                    for kk in k0..k1 {
                        s += w_nk[nn * k + kk].abs();
                    }
                    out.push((s / (k1 - k0) as f32).max(eps));
                }
            }
            out
        }
    }
}

/// Ternary codes `[n][k]` of `w_nk` with the given scales.
pub fn ternarize(w_nk: &[f32], n: usize, k: usize, gran: Gran, scales: &[f32]) -> Vec<i8> {
    let mut t = vec![0i8; n * k];
    for nn in 0..n {
        for kk in 0..k {
            let s = scales[gran.index(nn, kk, k)];
            t[nn * k + kk] = (w_nk[nn * k + kk] / s).round_ties_even().clamp(-1.0, 1.0) as i8;
        }
    }
    t
}

/// Exact i32 accumulators over `k0..k1`.
pub fn acc_range(xq: &[i8], t: &[i8], k: usize, mm: usize, nn: usize, k0: usize, k1: usize) -> i32 {
    (k0..k1)
        .map(|kk| xq[mm * k + kk] as i32 * t[nn * k + kk] as i32)
        .sum()
}

/// Float output and a magnitude bound (for the tolerance) per element, `[m][n]`.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    xq: &[i8],
    sx: &[f32],
    t: &[i8],
    sw: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
    gran: Gran,
) -> (Vec<f32>, Vec<f32>) {
    let mut y = vec![0f32; m * n];
    let mut mag = vec![0f32; m * n];
    for mm in 0..m {
        for nn in 0..n {
            let b = bias.map_or(0.0, |b| b[nn]);
            let abs_sum: f32 = (0..k).map(|kk| (xq[mm * k + kk] as f32).abs()).sum();
            let max_sw = (0..k)
                .map(|kk| sw[gran.index(nn, kk, k)])
                .fold(0f32, f32::max);
            mag[mm * n + nn] = abs_sum * sx[mm] * max_sw + b.abs();
            y[mm * n + nn] = match gran {
                Gran::Group(g) => {
                    let mut s = 0f32;
                    for gi in 0..k.div_ceil(g) {
                        let acc = acc_range(xq, t, k, mm, nn, gi * g, ((gi + 1) * g).min(k));
                        s += acc as f32 * sw[nn * k.div_ceil(g) + gi];
                    }
                    s * sx[mm] + b
                }
                _ => {
                    let acc = acc_range(xq, t, k, mm, nn, 0, k);
                    (acc as f32 * sx[mm]) * sw[gran.index(nn, 0, k)] + b
                }
            };
        }
    }
    (y, mag)
}
