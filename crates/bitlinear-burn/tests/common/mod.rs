//! Shared helpers of the integration tests: random data and the f64 reference of the
//! BitLinear formulas (DEVELOPERS.md), written independently of the code under test.
#![allow(dead_code)]

use bitlinear_burn::QuantSpec;
use bitlinear_core::{ActivationGranularity, QuantType, WeightGranularity};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn random(rng: &mut StdRng, len: usize, scale: f32) -> Vec<f32> {
    (0..len)
        .map(|_| rng.random_range(-1.0f32..1.0) * scale)
        .collect()
}

pub fn spec(quant: &str) -> QuantSpec {
    QuantSpec {
        quant: quant.parse::<QuantType>().unwrap(),
        eps: 1e-6,
    }
}

/// The quantities of the formulas: codes as the f32 formulas define them, sums in f64.
pub struct Reference {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// `[m, k]` activation codes and `[m]` scales.
    pub xq: Vec<f64>,
    pub sx: Vec<f64>,
    /// `[n, k]` dequantized weight `s_w · Wq`.
    pub w_dq: Vec<f64>,
    pub bias: Option<Vec<f64>>,
}

impl Reference {
    /// `x: [m, k]`, `w_kn: [k, n]` (Burn layout), `bias: [n]`.
    pub fn new(
        x: &[f32],
        m: usize,
        w_kn: &[f32],
        k: usize,
        n: usize,
        bias: Option<&[f32]>,
        spec: QuantSpec,
    ) -> Self {
        let eps = spec.eps;
        // Activations: s_x = max(max|x|, eps) / 127, xq = clamp(round(x / s_x), -128, 127).
        let row_max: Vec<f32> = (0..m)
            .map(|r| {
                x[r * k..(r + 1) * k]
                    .iter()
                    .fold(0f32, |a, v| a.max(v.abs()))
            })
            .collect();
        let sx: Vec<f32> = match spec.quant.activations {
            ActivationGranularity::PerToken => row_max.iter().map(|a| a.max(eps) / 127.0).collect(),
            ActivationGranularity::PerTensor => {
                let a = row_max.iter().fold(0f32, |a, v| a.max(*v));
                vec![a.max(eps) / 127.0; m]
            }
        };
        let xq: Vec<f64> = (0..m * k)
            .map(|i| (x[i] / sx[i / k]).round_ties_even().clamp(-128.0, 127.0) as f64)
            .collect();
        // Weights in [n, k]: s_w = max(mean|W|, eps) over the granularity's cells.
        let w = |row: usize, col: usize| w_kn[col * n + row];
        let group = match spec.quant.weights {
            WeightGranularity::PerGroup(g) => g,
            _ => k,
        };
        let scale = |row: usize, col: usize| -> f32 {
            let (rows, cols) = match spec.quant.weights {
                WeightGranularity::PerTensor => (0..n, 0..k),
                WeightGranularity::PerChannel => (row..row + 1, 0..k),
                WeightGranularity::PerGroup(_) => {
                    let g0 = col / group * group;
                    (row..row + 1, g0..(g0 + group).min(k))
                }
            };
            let count = (rows.len() * cols.len()) as f64;
            let sum: f64 = rows
                .flat_map(|r| cols.clone().map(move |c| (r, c)))
                .map(|(r, c)| w(r, c).abs() as f64)
                .sum();
            ((sum / count) as f32).max(eps)
        };
        let mut w_dq = vec![0f64; n * k];
        for row in 0..n {
            for col in 0..k {
                let s = scale(row, col);
                let q = (w(row, col) / s).round_ties_even().clamp(-1.0, 1.0);
                w_dq[row * k + col] = q as f64 * s as f64;
            }
        }
        Self {
            m,
            k,
            n,
            xq,
            sx: sx.iter().map(|&s| s as f64).collect(),
            w_dq,
            bias: bias.map(|b| b.iter().map(|&v| v as f64).collect()),
        }
    }

    /// Fake-quant forward `x_dq · W_dqᵀ + b`, `[m, n]`.
    pub fn forward(&self) -> Vec<f64> {
        let (m, k, n) = (self.m, self.k, self.n);
        let mut y = vec![0f64; m * n];
        for r in 0..m {
            for c in 0..n {
                let mut acc = 0f64;
                for i in 0..k {
                    acc += self.xq[r * k + i] * self.sx[r] * self.w_dq[c * k + i];
                }
                y[r * n + c] = acc + self.bias.as_ref().map_or(0.0, |b| b[c]);
            }
        }
        y
    }

    /// `dx = dy · W_dq`, `[m, k]`.
    pub fn grad_x(&self, dy: &[f32]) -> Vec<f64> {
        let (m, k, n) = (self.m, self.k, self.n);
        let mut dx = vec![0f64; m * k];
        for r in 0..m {
            for i in 0..k {
                dx[r * k + i] = (0..n)
                    .map(|c| dy[r * n + c] as f64 * self.w_dq[c * k + i])
                    .sum();
            }
        }
        dx
    }

    /// `dW = (s_x · xq)ᵀ · dy`, `[k, n]` (Burn layout).
    pub fn grad_w(&self, dy: &[f32]) -> Vec<f64> {
        let (m, k, n) = (self.m, self.k, self.n);
        let mut dw = vec![0f64; k * n];
        for i in 0..k {
            for c in 0..n {
                dw[i * n + c] = (0..m)
                    .map(|r| self.sx[r] * self.xq[r * k + i] * dy[r * n + c] as f64)
                    .sum();
            }
        }
        dw
    }

    /// `db = Σ_rows dy`, `[n]`.
    pub fn grad_b(&self, dy: &[f32]) -> Vec<f64> {
        (0..self.n)
            .map(|c| (0..self.m).map(|r| dy[r * self.n + c] as f64).sum())
            .collect()
    }
}

/// Asserts `|got - want| ≤ tol · (1 + max|want|)` elementwise, naming the first failure.
pub fn assert_close(name: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{name}: length");
    let scale = 1.0 + want.iter().fold(0f64, |a, v| a.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (*g as f64 - w).abs();
        assert!(
            err <= tol * scale,
            "{name}[{i}]: got {g}, want {w} (err {err:e}, tol {:e})",
            tol * scale
        );
    }
}

/// Quantization types covering every weight granularity and both activation granularities.
pub const QUANTS: [&str; 4] = ["ai8pc_wpt", "ai8pc_wpc", "ai8pt_wpt", "ai8pc_wpg32"];

pub mod checks {
    //! Test bodies generic over the backend; each backend's test file runs them.
    use super::*;
    use bitlinear_burn::{BitLinear, BitLinearBackend, BitLinearConfig};
    use burn::module::Param;
    use burn::tensor::backend::{AutodiffBackend, Backend};
    use burn::tensor::{Tensor, TensorData};

    pub fn to_vec<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
    }

    /// A layer with random weights and bias, plus the raw values.
    pub fn layer<B: Backend>(
        dev: &B::Device,
        k: usize,
        n: usize,
        quant: &str,
        bias: bool,
        seed: u64,
    ) -> (BitLinear<B>, Vec<f32>, Option<Vec<f32>>) {
        let mut r = rng(seed);
        let w = random(&mut r, k * n, 0.5);
        let b = bias.then(|| random(&mut r, n, 0.3));
        let mut layer = BitLinearConfig::new(k, n)
            .with_bias(bias)
            .with_quant(quant.to_string())
            .init::<B>(dev);
        layer.weight = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(w.clone(), [k, n]),
            dev,
        )));
        layer.bias = b
            .clone()
            .map(|b| Param::from_tensor(Tensor::from_data(TensorData::new(b, [n]), dev)));
        (layer, w, b)
    }

    /// Training-mode forward equals the fake-quant reference `x_dq · W_dqᵀ + b`.
    pub fn forward_matches_reference<B: BitLinearBackend>(
        dev: &B::Device,
        m: usize,
        k: usize,
        n: usize,
        quant: &str,
        bias: bool,
        seed: u64,
    ) {
        let (layer, w, b) = layer::<B>(dev, k, n, quant, bias, seed);
        let x = random(&mut rng(seed + 1), m * k, 2.0);
        let y = layer.forward(Tensor::<B, 2>::from_data(
            TensorData::new(x.clone(), [m, k]),
            dev,
        ));
        assert_eq!(y.dims(), [m, n]);
        let reference = Reference::new(&x, m, &w, k, n, b.as_deref(), spec(quant));
        assert_close(
            &format!("forward {quant} m={m} k={k} n={n}"),
            &to_vec(y),
            &reference.forward(),
            1e-5,
        );
    }

    /// Autodiff gradients equal the straight-through formulas computed in f64.
    pub fn grads_match_reference<B: AutodiffBackend + BitLinearBackend>(
        dev: &B::Device,
        m: usize,
        k: usize,
        n: usize,
        quant: &str,
        bias: bool,
        seed: u64,
    ) {
        let (layer, w, b) = layer::<B>(dev, k, n, quant, bias, seed);
        let mut r = rng(seed + 2);
        let x = random(&mut r, m * k, 2.0);
        let dy = random(&mut r, m * n, 1.0);
        let xt = Tensor::<B, 2>::from_data(TensorData::new(x.clone(), [m, k]), dev).require_grad();
        let g = Tensor::<B, 2>::from_data(TensorData::new(dy.clone(), [m, n]), dev);
        // loss = Σ y ⊙ G, so dL/dy = G.
        let grads = layer.forward(xt.clone()).mul(g).sum().backward();
        let reference = Reference::new(&x, m, &w, k, n, b.as_deref(), spec(quant));
        let tag = format!("{quant} m={m} k={k} n={n}");
        assert_close(
            &format!("dx {tag}"),
            &to_vec(xt.grad(&grads).expect("dx")),
            &reference.grad_x(&dy),
            1e-5,
        );
        let dw = layer.weight.as_ref().unwrap().grad(&grads).expect("dW");
        assert_eq!(dw.dims(), [k, n]);
        assert_close(
            &format!("dW {tag}"),
            &to_vec(dw),
            &reference.grad_w(&dy),
            1e-5,
        );
        if bias {
            let db = layer.bias.as_ref().unwrap().grad(&grads).expect("db");
            assert_close(
                &format!("db {tag}"),
                &to_vec(db),
                &reference.grad_b(&dy),
                1e-5,
            );
        }
    }

    /// A deployed layer on an autodiff backend still passes gradients to its input:
    /// `dx = dy · (s_w·Wq)`, as the trainable layer's straight-through estimator.
    pub fn deployed_input_grad_matches_reference<B: AutodiffBackend + BitLinearBackend>(
        dev: &B::Device,
        m: usize,
        k: usize,
        n: usize,
        quant: &str,
        seed: u64,
    ) {
        let (layer, w, b) = layer::<B>(dev, k, n, quant, true, seed);
        let layer = layer.deploy();
        let mut r = rng(seed + 2);
        let x = random(&mut r, m * k, 2.0);
        let dy = random(&mut r, m * n, 1.0);
        let xt = Tensor::<B, 2>::from_data(TensorData::new(x.clone(), [m, k]), dev).require_grad();
        let g = Tensor::<B, 2>::from_data(TensorData::new(dy.clone(), [m, n]), dev);
        let grads = layer.forward(xt.clone()).mul(g).sum().backward();
        let reference = Reference::new(&x, m, &w, k, n, b.as_deref(), spec(quant));
        assert_close(
            &format!("deployed dx {quant} m={m} k={k} n={n}"),
            &to_vec(xt.grad(&grads).expect("dx")),
            &reference.grad_x(&dy),
            1e-5,
        );
    }

    /// Deployed output equals the trainable (eval) output; returns the largest difference.
    pub fn deployed_matches_eval<B: BitLinearBackend>(
        dev: &B::Device,
        m: usize,
        k: usize,
        n: usize,
        quant: &str,
        seed: u64,
    ) -> f32 {
        let (layer, _, _) = layer::<B>(dev, k, n, quant, true, seed);
        let x = Tensor::<B, 2>::from_data(
            TensorData::new(random(&mut rng(seed + 3), m * k, 3.0), [m, k]),
            dev,
        );
        let eval = to_vec(layer.forward(x.clone()));
        let deployed = layer.deploy();
        assert!(deployed.is_deployed() && deployed.weight.is_none());
        deployed
            .validate()
            .expect("freshly deployed weights are valid");
        let got = to_vec(deployed.forward(x));
        let want: Vec<f64> = eval.iter().map(|&v| v as f64).collect();
        assert_close(&format!("deployed vs eval {quant}"), &got, &want, 1e-5);
        got.iter()
            .zip(&eval)
            .fold(0f32, |a, (g, e)| a.max((g - e).abs()))
    }

    /// A transposed (non-contiguous) input gives the same result as its contiguous copy, in
    /// both states.
    pub fn transposed_input<B: BitLinearBackend>(dev: &B::Device, m: usize, k: usize, n: usize) {
        let (layer, _, _) = layer::<B>(dev, k, n, "ai8pc_wpt", true, 7);
        let x_km = random(&mut rng(8), k * m, 1.0);
        let view = Tensor::<B, 2>::from_data(TensorData::new(x_km, [k, m]), dev).transpose();
        let copy = Tensor::<B, 2>::from_data(view.clone().into_data(), dev);
        let a = to_vec(layer.forward(view.clone()));
        let b = to_vec(layer.forward(copy.clone()));
        assert_eq!(a, b, "trainable: transposed view vs contiguous copy");
        let deployed = layer.deploy();
        assert_eq!(
            to_vec(deployed.forward(view)),
            to_vec(deployed.forward(copy)),
            "deployed: transposed view vs copy"
        );
    }
}
