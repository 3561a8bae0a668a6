//! What the CPU checks of the hand-written CUDA kernels share (`wgmma_emulation.rs`,
//! `cuda_syntax.rs`): the host C++ compiler, and their builds spread over the cores.

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
