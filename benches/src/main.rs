//! `bitlinear-bench`: times ternary linear layers against an f32 baseline in the same run and
//! prints one JSON object per line.
//!
//! ```text
//! bitlinear-bench --m 1,64,512 --k 4096 --n 4096 --threads 2 --cache cold
//! ```
//! Flags: `--m`, `--k`, `--n` (comma lists), `--threads` (rayon and baseline threads; default
//! all cores), `--impl` (comma list; default the best detected kernel plus the baselines),
//! `--cache cold|hot` (cold, the default, rotates over distinct weight copies totalling at least
//! 1 GiB (128 MiB before session 3) so weights stream from DRAM; hot keeps one copy), `--min-time` seconds per case,
//! `--weights separate|arena` (the core kernel's weight copies each in its own allocation, the
//! default, or all in one huge-page arena, `bitlinear_core::colocate`, as a deployed model would).
//! Impl names: `bitlinear-<kernel>` for any supported kernel (`bitlinear-avx512vnni`, ...),
//! `f32-matmul` (the `gemm` crate on rayon), `membw` (streaming read bandwidth, once),
//! `int8-peak` (the CPU's measured `vpdpbusd` rate: the GEMM ceiling), `memory` (static bytes of
//! each layer form, see `memory.rs`), and through Burn on `--backend ndarray|wgpu|cuda` (default
//! ndarray): `burn-linear-f32`, `burn-bitlinear-deployed`, `burn-bitlinear-train-forward`,
//! `burn-linear-train-step`, `burn-bitlinear-train-step` (see `burn_impls.rs`). With `--backend`
//! and no `--impl`, the Burn impls run (on ndarray also the best core kernel).
//!
//! ```text
//! bitlinear-bench --backend ndarray --threads 2 --m 1 --k 4096 --n 4096
//! bitlinear-bench --backend cuda --m 1,2048 --k 4096 --n 4096   # built with --features cuda
//! ```

mod burn_impls;
mod cases;
mod cli;
mod memory;
mod peak;
mod timing;

fn main() {
    let args = match cli::Args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", cli::USAGE);
            std::process::exit(2);
        }
    };
    // burn-ndarray's matmul runs on matrixmultiply's own thread pool, sized from this variable
    // (else the physical core count, at most 4): make it follow --threads like everything else.
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        std::env::set_var("MATMUL_NUM_THREADS", args.threads.to_string());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .expect("pool");
    pool.install(|| cases::run_all(&args));
}
