//! The Hopper wgmma GEMMs (`src/kernels/cuda/gemm_wgmma.cu` and `gemm_wgmma_ws.cu`) run on the
//! CPU: their source compiled as C++ with `tests/wgmma_emu/emu.cpp`, which models the few
//! instructions they use (cp.async and wgmma, completing only when a wait retires their commit
//! group or, for copies tracked by an mbarrier, later in another thread; mbarriers; the swizzled
//! shared-memory operand and the register fragments as measured exact on an H100); a deadlock
//! fails after 120 s. Every block shape the host
//! launches, against an exact reference, on shapes with partial blocks in M, N and K, under
//! AddressSanitizer: index arithmetic, tails and the pipeline's in-flight hazards are checked
//! here, without a GPU.
//!
//! `BITLINEAR_EMU_ONLY=<substring>` runs only the code shapes that contain it (in their file
//! name and flags, as `{:?}` prints them).
//!
//! Needs a C++20 compiler (`$CXX`, else `c++`); without one the test says so and passes, unless
//! `BITLINEAR_REQUIRE_CXX=1` (set by `.ci/run`), where it fails.

mod cxx;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Compiles the emulation of one configuration of the kernel file `file` into `out`.
fn build(cxx: &str, out: &Path, file: &str, flags: &[(&str, usize)], raw: bool) {
    cxx::build_emulation(cxx, out, file, "wgmma_emu/emu.cpp", flags, raw);
}

/// Runs one emulation build on every test problem.
fn run_shapes(exe: &Path, file: &str, shape: &[(&str, usize)], raw: bool) {
    // M: 1, partial and whole blocks; K: 1, odd, one 32-step, several stages with a partial last
    // one; N: below, at and across the block's weight rows (up to 256), several blocks of them.
    let problems = [
        (1, 1, 1, 1),
        (3, 15, 7, 2),
        (33, 100, 65, 3),
        (64, 32, 64, 4),
        (130, 300, 200, 5),
        (100, 200, 520, 8),
        (257, 1040, 129, 6),
        (256, 4100, 33, 7),
        // 7 stages: a stream-K block's next tile starts in the buffer its last wgmma read
        // (blocks of 4 whole tiles each over all 12, on 3 SMs).
        (300, 800, 700, 9),
        // Hybrid stream-K (24, 42): 8 tiles of 256 x 128 on 3 SMs, 3 whole, the last 5 split
        // in runs of ~8 of their 25 k-steps, across tiles. (Small: every configuration runs
        // every problem, and the emulation is most of CI's time.)
        (300, 520, 400, 5),
    ];
    cxx::run_emulation(exe, &format!("{file} {shape:?}, raw {raw}"), &problems);
}

/// A fresh scratch folder for one test's builds, named by `tag` and this process.
fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bitlinear-wgmma-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A configuration's flags with one block per SM: blocks per SM change only the compiler's
/// register budget, so every configuration of one code shape builds the same emulation.
fn one_block_per_sm(flags: &mut Vec<(&'static str, usize)>) {
    flags.retain(|(key, _)| *key != "BL_MINB");
    flags.push(("BL_MINB", 1));
}

#[test]
fn wgmma_kernel_matches_the_reference_in_cpu_emulation() {
    let Some(cxx) = cxx::compiler_or_skip() else {
        return;
    };
    let dir = scratch_dir("emu");
    // One build per code shape.
    let mut shapes = bitlinear_cubecl::wgmma_kernel_flags();
    assert!(!shapes.is_empty());
    for (_, flags) in &mut shapes {
        one_block_per_sm(flags);
    }
    shapes.sort();
    shapes.dedup();
    // BITLINEAR_EMU_ONLY=<substring>: only the code shapes whose file and flags contain it
    // (e.g. `gemm_wgmma_ws`, or `BL_FRAGS", 3`), to iterate on one kernel.
    if let Ok(only) = std::env::var("BITLINEAR_EMU_ONLY") {
        shapes.retain(|shape| format!("{shape:?}").contains(&only));
        assert!(
            !shapes.is_empty(),
            "BITLINEAR_EMU_ONLY={only} matches no code shape"
        );
    }
    // Every (code shape, output kind) is a separate build and run: spread them over the cores.
    let jobs: Vec<_> = shapes
        .iter()
        .enumerate()
        .flat_map(|(i, shape)| [true, false].map(|raw| (i, shape, raw)))
        .collect();
    cxx::for_each_parallel(&jobs, |&(i, (file, shape), raw)| {
        let exe = dir.join(format!("emu_{i}_{raw}"));
        build(&cxx, &exe, file, shape, raw);
        run_shapes(&exe, file, shape, raw);
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// The diagnostic launches (`wgmma_ablation_override`: copies, wgmma or decode left out) of the
/// two kernels the GPU check ablates (32, 11) still finish: their outputs are wrong by design,
/// but a hand-off they broke would hang the GPU check's timing process until its time limit.
/// Each run must exit by itself (any exit code) without a sanitizer report.
#[test]
fn ablated_kernels_finish_in_cpu_emulation() {
    let Some(cxx) = cxx::compiler_or_skip() else {
        return;
    };
    let dir = scratch_dir("ablate");
    let shapes = bitlinear_cubecl::wgmma_kernel_flags();
    let mut jobs = vec![];
    for config in [32, 11] {
        let (file, mut flags) = shapes[config - 1].clone();
        one_block_per_sm(&mut flags);
        // The masks the GPU check times: no copies, no wgmma, no decode, the wgmma alone, the
        // copies alone.
        for mask in [1, 2, 4, 5, 6] {
            let mut flags = flags.clone();
            flags.push(("BL_ABLATE", mask));
            jobs.push((config, file, flags));
        }
    }
    cxx::for_each_parallel(&jobs, |(config, file, flags)| {
        let mask = flags.last().unwrap().1;
        let exe = dir.join(format!("ablate_{config}_{mask}"));
        build(&cxx, &exe, file, flags, true);
        for (m, k, n, seed) in [(130, 300, 200, 5), (300, 800, 700, 9)] {
            let mut child = Command::new(&exe)
                .args([m, k, n, seed].map(|v: usize| v.to_string()))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run the emulation");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while child.try_wait().unwrap().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("config {config}, BL_ABLATE {mask}, M={m} K={k} N={n}: hung");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !stderr.contains("Sanitizer"),
                "config {config}, BL_ABLATE {mask}, M={m} K={k} N={n}: {stderr}"
            );
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}
