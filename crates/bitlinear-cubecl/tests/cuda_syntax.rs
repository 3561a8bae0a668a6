//! Every hand-written CUDA kernel source the host can launch (`raw_kernel_sources`: each block
//! configuration, each output store) parses as C++ against stand-ins for CUDA's headers
//! (`tests/cuda_syntax`), with `c++ -fsyntax-only`: no GPU and no CUDA toolkit needed, so a
//! typo or a misplaced `#if` in any configuration fails here rather than in NVRTC on a lent
//! GPU. The inline PTX is not checked (it is not assembled); the wgmma kernels' behaviour is
//! checked by their emulation (`tests/wgmma_emulation.rs`).
//!
//! Needs a C++ compiler (`$CXX`, else `c++`); without one the test says so and passes, unless
//! `BITLINEAR_REQUIRE_CXX=1` (set by `scripts/test.sh`), where it fails.

mod cxx;

use std::path::Path;
use std::process::Command;

#[test]
fn every_hand_written_kernel_configuration_parses() {
    let Some(cxx) = cxx::compiler_or_skip() else {
        return;
    };
    let stubs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cuda_syntax");
    let dir = std::env::temp_dir().join(format!("bitlinear-cuda-syntax-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sources = bitlinear_cubecl::raw_kernel_sources();
    // The four kernel files, each with every output store (f32, f16, bf16).
    for family in ["gemv_dp4a", "gemm_mma", "gemm_wgmma", "gemm_wgmma_ws"] {
        for out in 0..3 {
            let prefix = format!("bitlinear_{family}_gran1_bias1_raw0_out{out}_");
            assert!(
                sources.iter().any(|(name, _)| name.starts_with(&prefix)),
                "no {prefix}* source"
            );
        }
    }
    cxx::for_each_parallel(&sources, |(entry, source)| {
        let file = dir.join(format!("{entry}.cpp"));
        std::fs::write(&file, source).unwrap();
        let out = Command::new(&cxx)
            .args(["-std=c++20", "-fsyntax-only", "-Werror=return-type"])
            .arg(format!("-I{}", stubs.display()))
            .arg(&file)
            .output()
            .expect("run the C++ compiler");
        assert!(
            out.status.success(),
            "{entry} does not parse:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}
