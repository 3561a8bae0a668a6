//! Command-line parsing for `bitlinear-bench` (no dependency needed for a handful of flags).

use bitlinear_core::Kernel;

/// Usage text printed on a parse error.
pub const USAGE: &str = "usage: bitlinear-bench [--m 1,64] [--k 4096] [--n 4096] [--threads N] \
[--impl bitlinear-avx512vnni,f32-matmul,membw,int8-peak,memory,burn-linear-f32,\
burn-bitlinear-deployed,burn-linear-bf16,burn-bitlinear-deployed-bf16,burn-bitlinear-train-forward,\
burn-linear-train-step,burn-bitlinear-train-step] [--backend ndarray|wgpu|cuda] [--cache cold|hot] \
[--min-time SECONDS] [--weights separate|arena]";

/// The Burn backend the `burn-*` impls run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// burn-ndarray (CPU, `multi-threads` + `simd`; bitlinear-core's kernels for BitLinear).
    NdArray,
    /// Burn's Wgpu backend (CubeCL kernels for BitLinear).
    Wgpu,
    /// Burn's Cuda backend (CubeCL kernels; needs the `cuda` feature).
    Cuda,
}

/// Whether weights are re-read from DRAM (cold) or stay cache resident (hot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cache {
    /// Rotate over 1 GiB of distinct weight copies.
    Cold,
    /// One weight copy.
    Hot,
}

/// Parsed flags.
#[derive(Clone, Debug)]
pub struct Args {
    pub m: Vec<usize>,
    pub k: Vec<usize>,
    pub n: Vec<usize>,
    pub threads: usize,
    pub impls: Vec<String>,
    pub cache: Cache,
    pub min_time: f64,
    pub backend: BackendKind,
    /// Core-kernel weight copies in one huge-page arena (`bitlinear_core::colocate`) instead of
    /// one allocation each (`--weights arena`; default `separate`).
    pub arena: bool,
}

fn list(v: &str) -> Result<Vec<usize>, String> {
    v.split(',')
        .map(|s| s.trim().parse::<usize>().map_err(|e| format!("`{s}`: {e}")))
        .collect()
}

impl Args {
    /// Parses the flags (everything after the program name).
    pub fn parse(mut it: impl Iterator<Item = String>) -> Result<Self, String> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut a = Args {
            m: vec![1],
            k: vec![4096],
            n: vec![4096],
            threads,
            impls: Vec::new(),
            cache: Cache::Cold,
            min_time: 1.0,
            backend: BackendKind::NdArray,
            arena: false,
        };
        let mut backend_given = false;
        while let Some(flag) = it.next() {
            let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--m" => a.m = list(&val()?)?,
                "--k" => a.k = list(&val()?)?,
                "--n" => a.n = list(&val()?)?,
                "--threads" => a.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
                "--impl" => a.impls = val()?.split(',').map(|s| s.trim().to_string()).collect(),
                "--cache" => {
                    a.cache = match val()?.as_str() {
                        "cold" => Cache::Cold,
                        "hot" => Cache::Hot,
                        o => return Err(format!("--cache: `{o}` is not cold or hot")),
                    }
                }
                "--weights" => {
                    a.arena = match val()?.as_str() {
                        "arena" => true,
                        "separate" => false,
                        o => return Err(format!("--weights: `{o}` is not separate or arena")),
                    }
                }
                "--min-time" => {
                    a.min_time = val()?.parse().map_err(|e| format!("--min-time: {e}"))?
                }
                "--backend" => {
                    backend_given = true;
                    a.backend = match val()?.as_str() {
                        "ndarray" => BackendKind::NdArray,
                        "wgpu" => BackendKind::Wgpu,
                        "cuda" if cfg!(feature = "cuda") => BackendKind::Cuda,
                        "cuda" => {
                            return Err("--backend cuda: this binary was built without the `cuda` \
                                 feature (cargo build --release -p bitlinear-benches --features cuda)"
                                .into())
                        }
                        o => return Err(format!("--backend: `{o}` is not ndarray, wgpu or cuda")),
                    }
                }
                "-h" | "--help" => return Err("help".into()),
                o => return Err(format!("unknown flag `{o}`")),
            }
        }
        if a.threads == 0 || a.m.contains(&0) || a.k.contains(&0) || a.n.contains(&0) {
            return Err("threads, m, k and n must be positive".into());
        }
        if a.impls.is_empty() && backend_given {
            // Burn's Linear and BitLinear on that backend; on the CPU also the raw core kernel,
            // so the deployed layer's overhead over it is reported.
            if a.backend == BackendKind::NdArray {
                a.impls.push(format!("bitlinear-{}", Kernel::best().name()));
            }
            // The bf16 pair only where Burn computes in bf16 (CUDA).
            let bf16 = a.backend == BackendKind::Cuda;
            a.impls.extend(
                crate::burn_impls::IMPLS
                    .iter()
                    .filter(|s| bf16 || !s.ends_with("bf16"))
                    .map(|s| s.to_string()),
            );
        }
        if a.impls.is_empty() {
            a.impls = vec![
                format!("bitlinear-{}", Kernel::best().name()),
                "f32-matmul".into(),
            ];
        }
        Ok(a)
    }
}
