//! What the CPU checks of the hand-written CUDA kernels share (`wgmma_emulation.rs`,
//! `gemv_emulation.rs`, `mma_emulation.rs`, `cuda_syntax.rs`): the host C++ compiler, the emulations' build, and
//! their builds spread over the cores.

use std::path::Path;
use std::process::Command;

/// The C++ compiler (`$CXX`, else `c++`), or `None` after saying the test is skipped. Where
/// `BITLINEAR_REQUIRE_CXX` is set (by `scripts/test.sh`), a missing compiler fails instead.
pub fn compiler_or_skip() -> Option<String> {
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let runs = Command::new(&cxx)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if runs {
        return Some(cxx);
    }
    assert!(
        std::env::var("BITLINEAR_REQUIRE_CXX").is_err(),
        "BITLINEAR_REQUIRE_CXX is set but no C++ compiler runs"
    );
    eprintln!("skipped: no C++ compiler (set CXX)");
    None
}

/// Runs `job` on every item, on as many threads as there are cores (a panic fails the caller).
pub fn for_each_parallel<T: Sync>(items: &[T], job: impl Fn(&T) + Sync) {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(item) =
                    items.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    job(item);
                }
            });
        }
    });
}

/// Compiles the CPU emulation `harness` (a path under `tests/`) of the kernel file `kernel` (in
/// `src/kernels/cuda/`) with one configuration's `flags` into `out`, under AddressSanitizer:
/// raw i32 outputs, else the f32 epilogue with per-channel scales and a bias. (Not used by
/// `cuda_syntax.rs`.)
#[allow(dead_code)]
pub fn build_emulation(
    cxx: &str,
    out: &Path,
    kernel: &str,
    harness: &str,
    flags: &[(&str, usize)],
    raw: bool,
) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let kernel = dir.join("src/kernels/cuda").join(kernel);
    let status = Command::new(cxx)
        .args(["-std=c++20", "-O1", "-pthread", "-fsanitize=address"])
        .arg(format!("-DBL_KERNEL=\"{}\"", kernel.display()))
        .args(flags.iter().map(|(key, value)| format!("-D{key}={value}")))
        .arg(format!("-DBL_RAW={}", raw as u8))
        .arg(format!("-DBL_GRAN={}", !raw as u8))
        .arg("-DBL_BIAS=1")
        .arg(format!("-I{}", dir.join("tests/wgmma_emu").display()))
        .arg(dir.join("tests").join(harness))
        .arg("-o")
        .arg(out)
        .status()
        .expect("run the C++ compiler");
    assert!(
        status.success(),
        "emulation of {} {flags:?} (raw {raw}) failed to compile",
        kernel.display()
    );
}

/// One run of an emulation build: `(M, K, N, seed)`.
#[allow(dead_code)]
pub type Problem = (usize, usize, usize, u64);

/// Runs the emulation build `exe` on each problem (`exe M K N seed`): a run that fails (an
/// output off the reference, an AddressSanitizer report, a deadlock) fails the test with its
/// output, named by `what` (the build's kernel, flags and outputs). (Not used by
/// `cuda_syntax.rs`.)
#[allow(dead_code)]
pub fn run_emulation(exe: &Path, what: &str, problems: &[Problem]) {
    for &(m, k, n, seed) in problems {
        let out = Command::new(exe)
            .args([m, k, n].map(|v| v.to_string()))
            .arg(seed.to_string())
            .output()
            .expect("run the emulation");
        assert!(
            out.status.success(),
            "{what}, M={m} K={k} N={n} seed {seed}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
