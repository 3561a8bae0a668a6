//! The `mma.sync` GEMM (`src/kernels/cuda/gemm_mma.cu`, the tensor-core path of CUDA sm 80-89:
//! A100, L4, RTX 30/40) runs on the CPU: its source compiled as C++ with
//! `tests/mma_emu/mma_emu.cpp`, which models `cp.async` groups (landing when committed or at the
//! wait that retires them, by a coin toss), `ldmatrix.x4` and `mma.sync` m16n8k32 s8 with the
//! fragment layouts of the PTX ISA, warp and block barriers, and stale shared memory. Both block
//! tilings the host launches (128 and 256 rows), raw i32 and f32 outputs, M, K and N across and
//! inside whole blocks and stages, against an exact reference (integer accumulators, the f32
//! epilogue bit for bit), under AddressSanitizer. Before this, only the GPU check on a lent GPU
//! ran this kernel.
//!
//! Needs a C++20 compiler (`$CXX`, else `c++`); without one the test says so and passes, unless
//! `BITLINEAR_REQUIRE_CXX=1` (set by `scripts/test.sh`), where it fails.

mod cxx;

use bitlinear_cubecl::mma_gemm_kernel_flags;

#[test]
fn mma_gemm_matches_the_reference_in_cpu_emulation() {
    let Some(cxx) = cxx::compiler_or_skip() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("bitlinear-mma-emu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // M: one row, partial and whole 128/256-row blocks; K: below one k-block, odd, within one
    // 64-deep stage, several stages with a partial last one, 17 stages (the 3-stage pipeline
    // wraps around many times); N: one, odd, across 128-row blocks and 16-row tiles.
    let problems: [cxx::Problem; 7] = [
        (1, 1, 1, 1),
        (1, 16, 1, 2),
        (3, 15, 7, 3),
        (130, 100, 129, 4),
        (256, 64, 128, 5),
        (257, 300, 200, 6),
        (33, 1040, 260, 7),
    ];
    let jobs: Vec<_> = mma_gemm_kernel_flags()
        .into_iter()
        .flat_map(|flags| [true, false].map(|raw| (flags.clone(), raw)))
        .collect();
    cxx::for_each_parallel(&jobs, |(flags, raw)| {
        let name: String = flags
            .iter()
            .map(|(key, value)| format!("{key}{value}"))
            .collect();
        let exe = dir.join(format!("mma_{name}_{raw}"));
        cxx::build_emulation(
            &cxx,
            &exe,
            "gemm_mma.cu",
            "mma_emu/mma_emu.cpp",
            flags,
            *raw,
        );
        cxx::run_emulation(&exe, &format!("{flags:?}, raw {raw}"), &problems);
    });
    let _ = std::fs::remove_dir_all(&dir);
}
