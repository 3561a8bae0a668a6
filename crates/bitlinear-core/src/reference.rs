//! Naive reference implementations: the test oracle every kernel is checked against.
//!
//! Straight loops over unpacked `i8` weights, with the same float operation order as the
//! driver's epilogue, so optimized kernels must match them exactly.

use crate::quant::{QuantizedActivations, TernaryWeights, WeightGranularity};

/// `xq · Wqᵀ` in i32: `[m, n]`.
pub fn int_matmul(xq: &QuantizedActivations, w: &TernaryWeights) -> Vec<i32> {
    let mut out = vec![0i32; xq.m() * w.n];
    for r in 0..xq.m() {
        let x = xq.row(r);
        for c in 0..w.n {
            let wr = &w.codes[c * w.k..(c + 1) * w.k];
            out[r * w.n + c] = x.iter().zip(wr).map(|(&a, &b)| a as i32 * b as i32).sum();
        }
    }
    out
}

/// The float output `y = (xq · Wqᵀ) · s_x · s_w + b` (per group: `(Σ_g acc_g · s_w[g]) · s_x + b`).
pub fn linear(xq: &QuantizedActivations, w: &TernaryWeights, bias: Option<&[f32]>) -> Vec<f32> {
    let mut out = vec![0f32; xq.m() * w.n];
    for r in 0..xq.m() {
        let x = xq.row(r);
        let s_x = xq.scales()[r];
        for c in 0..w.n {
            let wr = &w.codes[c * w.k..(c + 1) * w.k];
            let dot = |lo: usize, hi: usize| -> i32 {
                (lo..hi).map(|i| x[i] as i32 * wr[i] as i32).sum()
            };
            let mut y = match w.granularity {
                WeightGranularity::PerGroup(g) => {
                    let groups = w.k.div_ceil(g);
                    let mut f = 0f32;
                    for gi in 0..groups {
                        let d = dot(gi * g, ((gi + 1) * g).min(w.k));
                        f += d as f32 * w.scales[c * groups + gi];
                    }
                    f * s_x
                }
                WeightGranularity::PerTensor => (dot(0, w.k) as f32 * s_x) * w.scales[0],
                WeightGranularity::PerChannel => (dot(0, w.k) as f32 * s_x) * w.scales[c],
            };
            if let Some(b) = bias {
                y += b[c];
            }
            out[r * w.n + c] = y;
        }
    }
    out
}
