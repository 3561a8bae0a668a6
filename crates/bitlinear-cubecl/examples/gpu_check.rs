//! CUDA check: correctness of every kernel (including the forced tensor-core path) against the
//! CPU reference, then timings as JSON lines. Build with
//! `cargo build --release -p bitlinear-cubecl --features cuda --example gpu_check`;
//! run through `scripts/gpu-check.sh` on the GPU machine.
//!
//! Output: one JSON object per line. `{"op":"check",...}` lines carry `"ok"`; timing lines carry
//! `median_us` (median over batches of the per-iteration time of a synchronized batch).
//! Environment: `GPU_CHECK_QUICK=1` shortens the timings; `GPU_CHECK_SKIP_BENCH=1` skips them;
//! `GPU_CHECK_WGPU=1` runs on Wgpu instead of CUDA and `GPU_CHECK_TINY=1` uses tiny benchmark
//! sizes (both to validate the harness on lavapipe). `GPU_CHECK_PROFILE=1` (with
//! `GPU_CHECK_SKIP_CHECKS=1`) launches each variant twice with labels, for `ncu`.
//! Timed variants: the hand-written CUDA kernels against the default CubeCL ones
//! (`GPU_CHECK_NO_DP4A=1` / `GPU_CHECK_NO_MMA=1` leave the hand-written ones out);
//! `GPU_CHECK_ALL_VARIANTS=1` adds the CubeCL tuning variants compared in session 2;
//! `GPU_CHECK_SHAPES=4096x4096,8192x4096` (K x N) replaces the benchmark shapes of the timings;
//! `GPU_CHECK_READ_SWEEP=1` adds read floors with 1, 2, 8 and 16 vectors per unit;
//! `GPU_CHECK_ABLATE=1` adds wgmma configurations 32 and 11 leaving out their copies, wgmma
//! or decode (`wgmma_ablation_override`: wrong outputs, timed only) to show which one bounds
//! them. `GPU_CHECK_NO_BF16=1` leaves out the wgmma configurations' bf16-output variants.
//! The wgmma `Auto` lines (`wgmma`, `wgmma-bf16`) are autotuned (`GPU_CHECK_NO_AUTOTUNE=1`: not),
//! `wgmma-static` ones run the static choice; `"op":"autotune"` lines give each tuned shape's
//! choice and its candidates' times. Everything else runs with autotuning off.
//! Timing lines also carry `enqueue_us`, the host time to issue one call (no sync): where it is
//! close to `median_us` the figure is bound by CubeCL's launch path, not by the kernel; the
//! device-side kernel time then comes from the `ncu` step of scripts/gpu-check.sh. Every timing
//! line also carries `b2b_us`: the per-call time of calls run back to back, queued behind a
//! spin kernel (`gpu_check_support/back_to_back.rs`; for M ≤ 16 with `"op":"read_floor"` lines
//! giving the same for a read-only kernel over the packed bytes, above with `b2b_tops`);
//! `GPU_CHECK_NO_B2B=1` leaves it out. `"op":"host_cost"` lines: CubeCL's host time per task (an
//! allocation, an upload, a launch, a whole tiny call; `GPU_CHECK_NO_HOST_COSTS=1`: not timed).
//!
//! The parts (`gpu_check_support/`): `checks*` (correctness), `variants` (what is timed),
//! `bench` and `timing` (the timings), `back_to_back` and `read_floor` (the back-to-back
//! harness and the bandwidth floors), `host_costs` (CubeCL's host time per task), `profile`
//! (Nsight Compute labels), `common` (helpers).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "gpu_check_support/back_to_back.rs"]
mod back_to_back;
#[path = "gpu_check_support/bench.rs"]
mod bench;
#[path = "gpu_check_support/checks.rs"]
mod checks;
#[path = "gpu_check_support/checks_fused.rs"]
mod checks_fused;
#[path = "gpu_check_support/checks_half.rs"]
mod checks_half;
#[path = "gpu_check_support/common.rs"]
mod common;
#[path = "gpu_check_support/host_costs.rs"]
mod host_costs;
#[path = "gpu_check_support/profile.rs"]
mod profile;
#[path = "gpu_check_support/read_floor.rs"]
mod read_floor;
#[path = "gpu_check_support/timing.rs"]
mod timing;
#[path = "gpu_check_support/variants.rs"]
mod variants;

use bitlinear_cubecl::*;
use cubecl::cuda::{CudaDevice, CudaRuntime};
use cubecl::prelude::*;

use bench::bench;
use checks::{
    check_activations, check_autotuned, check_cmma_tiled, check_gemv_stream, check_grad_input,
    check_matmul, check_packing, print_autotune_choices, probe_wgmma,
};
use checks_fused::{check_fused_linear, check_fused_linear_configs};
use checks_half::check_half_outputs;
use common::{raw_check, report, Rng};
use profile::profile;
use variants::wgmma_configs_wanted;

/// Host-only queries (`GPU_CHECK_ONLY=wgmma_config_count|wgmma_config_file|dump_sources`),
/// else the checks and timings on CUDA (or Wgpu with `GPU_CHECK_WGPU=1`).
fn main() {
    // GPU_CHECK_ONLY=wgmma_config_count prints how many wgmma configurations there are (host
    // only: gpu-check.sh checks each in its own process).
    if std::env::var("GPU_CHECK_ONLY").as_deref() == Ok("wgmma_config_count") {
        println!("{}", wgmma_kernel_flags().len());
        return;
    }
    // GPU_CHECK_ONLY=wgmma_config_file GPU_CHECK_WGMMA_CONFIGS=n prints the kernel file of
    // configuration n (host only: gpu-check.sh skips a file's configurations after one hung).
    if std::env::var("GPU_CHECK_ONLY").as_deref() == Ok("wgmma_config_file") {
        let flags = wgmma_kernel_flags();
        let n: usize = std::env::var("GPU_CHECK_WGMMA_CONFIGS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        println!(
            "{}",
            flags
                .get(n.wrapping_sub(1))
                .map_or("none", |(file, _)| *file)
        );
        return;
    }
    // GPU_CHECK_ONLY=dump_sources GPU_CHECK_DUMP_DIR=dir writes every hand-written kernel
    // configuration's complete source to dir/<entry>.cu (host only), for
    // scripts/ptxas_report.py: registers, spills and wgmma serialization, per configuration.
    if std::env::var("GPU_CHECK_ONLY").as_deref() == Ok("dump_sources") {
        let dir = std::env::var("GPU_CHECK_DUMP_DIR").unwrap_or_else(|_| "kernel_sources".into());
        std::fs::create_dir_all(&dir).expect("create the dump folder");
        let sources = raw_kernel_sources();
        for (entry, source) in &sources {
            std::fs::write(format!("{dir}/{entry}.cu"), source).expect("write a kernel source");
        }
        println!("{} kernel sources in {dir}", sources.len());
        return;
    }
    // GPU_CHECK_WGPU=1 runs the checks on Wgpu (lavapipe) to validate this harness without a GPU.
    if std::env::var("GPU_CHECK_WGPU").is_ok() {
        run::<cubecl::wgpu::WgpuRuntime>(&Default::default(), "wgpu");
    } else {
        run::<CudaRuntime>(&CudaDevice::default(), "cuda");
    }
}

/// The checks (each, or `GPU_CHECK_ONLY`'s one), then the timings or the profile; exits 1 if a
/// check failed.
fn run<R: Runtime>(device: &R::Device, backend: &str) {
    let c = R::client(device);
    let props = c.properties();
    let cmma_ok = cmma_available(&c);
    println!(
        r#"{{"op":"device","backend":"{backend}","plane_size":{},"sms":{},"max_shared":{},"cmma_i8":{cmma_ok},"plane_ops":{}}}"#,
        props.hardware.plane_size_max,
        props.hardware.num_streaming_multiprocessors.unwrap_or(0),
        props.hardware.max_shared_memory_size,
        plane_ops_available(&c)
    );
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut ok = true;
    // Every check and timing runs the static choice unless it turns autotuning on itself
    // (`wgmma_gemm_autotuned`, the tuned `Auto` variants): tuning each of the checks' hundreds
    // of shapes would compile and time every candidate for each.
    set_autotune(Some(false));
    // GPU_CHECK_ONLY=<name> runs one check (a kernel that fails to JIT-compile poisons the
    // CubeCL server, so the script runs each check in its own process); GPU_CHECK_SKIP_CHECKS=1
    // runs none. GPU_CHECK_NO_CMMA=1 keeps the tensor-core path out of the timings.
    let only = std::env::var("GPU_CHECK_ONLY").ok();
    let skip_checks = std::env::var("GPU_CHECK_SKIP_CHECKS").is_ok();
    let want = |name: &str| !skip_checks && only.as_deref().is_none_or(|o| o == name);
    if want("quantize_activations") {
        ok &= report("quantize_activations", check_activations(&c, &mut rng));
    }
    if want("pack_weights") {
        ok &= report("pack_weights", check_packing(&c, &mut rng));
    }
    if want("gemv") {
        ok &= report("gemv", check_matmul(&c, &mut rng, MatmulPath::Gemv));
    }
    if want("dp4a_gemv") {
        let r = raw_check(&c, || check_matmul(&c, &mut rng, MatmulPath::Dp4aGemv));
        ok &= report("dp4a_gemv", r);
    }
    if want("dp4a_gemv_configs") {
        let r = raw_check(&c, || {
            (2..=dp4a_gemv_config_count()).try_for_each(|config| {
                dp4a_gemv_config_override(config);
                let r = check_matmul(&c, &mut rng, MatmulPath::Dp4aGemv)
                    .map_err(|e| format!("config {config}: {e}"));
                dp4a_gemv_config_override(0);
                r
            })
        });
        ok &= report("dp4a_gemv_configs", r);
    }
    if want("mma_gemm_256") {
        let r = raw_check(&c, || {
            mma_gemm_warp_tiles_override(8);
            let r = check_matmul(&c, &mut rng, MatmulPath::MmaGemm);
            mma_gemm_warp_tiles_override(0);
            r
        });
        ok &= report("mma_gemm_256", r);
    }
    if want("fused_linear") {
        let r = raw_check(&c, || check_fused_linear(&c, &mut rng));
        ok &= report("fused_linear", r);
    }
    if want("fused_linear_configs") {
        let r = raw_check(&c, || check_fused_linear_configs(&c, &mut rng));
        ok &= report("fused_linear_configs", r);
    }
    if want("wgmma_probe") {
        let r = if wgmma_available(&c) {
            probe_wgmma(&c, &mut rng)
        } else {
            Err("the wgmma kernel does not run here".into())
        };
        ok &= report("wgmma_probe", r);
    }
    if want("wgmma_gemm") {
        let r = if wgmma_available(&c) {
            check_matmul(&c, &mut rng, MatmulPath::WgmmaGemm)
        } else {
            Err("the wgmma kernel does not run here".into())
        };
        ok &= report("wgmma_gemm", r);
    }
    if want("wgmma_gemm_autotuned") {
        let r = if wgmma_available(&c) {
            check_autotuned(&c, &mut rng)
        } else {
            Err("the wgmma kernel does not run here".into())
        };
        ok &= report("wgmma_gemm_autotuned", r);
    }
    if want("half_outputs") {
        ok &= report("half_outputs", check_half_outputs(&c, &mut rng));
        // Also after an early error return, which leaves its configuration forced.
        wgmma_gemm_config_override(0);
    }
    if want("wgmma_gemm_configs") {
        let r = if wgmma_available(&c) {
            let configs = wgmma_configs_wanted()
                .unwrap_or_else(|| (1..=wgmma_kernel_flags().len()).collect());
            configs.into_iter().try_for_each(|config| {
                wgmma_gemm_config_override(config);
                let r = check_matmul(&c, &mut rng, MatmulPath::WgmmaGemm)
                    .map_err(|e| format!("config {config}: {e}"));
                wgmma_gemm_config_override(0);
                r
            })
        } else {
            Err("the wgmma kernel does not run here".into())
        };
        ok &= report("wgmma_gemm_configs", r);
    }
    if want("mma_gemm") {
        let r = raw_check(&c, || check_matmul(&c, &mut rng, MatmulPath::MmaGemm));
        ok &= report("mma_gemm", r);
    }
    if want("gemv_plane") {
        ok &= report(
            "gemv_plane",
            check_matmul(&c, &mut rng, MatmulPath::GemvPlane),
        );
    }
    if want("gemv_stream") {
        ok &= report("gemv_stream", check_gemv_stream(&c, &mut rng));
    }
    if want("tiled_gemm") {
        ok &= report(
            "tiled_gemm",
            check_matmul(&c, &mut rng, MatmulPath::TiledGemm),
        );
    }
    if want("cmma_gemm") {
        let r = if cmma_ok {
            check_matmul(&c, &mut rng, MatmulPath::CmmaGemm)
        } else {
            Err("cmma i8 not available on this device".into())
        };
        ok &= report("cmma_gemm", r);
    }
    if want("cmma_gemm_k4") {
        // The same checks with 4 and 1 k-blocks per step (per-group falls back where needed).
        let r = if cmma_ok {
            cmma_k_blocks_override(4);
            let r4 = check_matmul(&c, &mut rng, MatmulPath::CmmaGemm);
            cmma_k_blocks_override(1);
            let r1 = check_matmul(&c, &mut rng, MatmulPath::CmmaGemm);
            cmma_k_blocks_override(0);
            r4.and(r1)
        } else {
            Err("cmma i8 not available on this device".into())
        };
        ok &= report("cmma_gemm_k4", r);
    }
    if want("cmma_tiled_gemm") {
        let r = if cmma_ok {
            check_cmma_tiled(&c, &mut rng)
        } else {
            Err("cmma i8 not available on this device".into())
        };
        ok &= report("cmma_tiled_gemm", r);
    }
    if want("grad_input") {
        ok &= report("grad_input", check_grad_input(&c, &mut rng));
    }
    let cmma_ok = cmma_ok && std::env::var("GPU_CHECK_NO_CMMA").is_err();
    let _ = c.flush();
    if std::env::var("GPU_CHECK_PROFILE").is_ok() {
        profile(&c, &mut rng, cmma_ok);
    } else if std::env::var("GPU_CHECK_SKIP_BENCH").is_err() && only.is_none() {
        bench(
            &c,
            &mut rng,
            std::env::var("GPU_CHECK_QUICK").is_ok(),
            cmma_ok,
            backend,
        );
        // What the tuned `Auto` variants chose for each shape, and each candidate's time.
        print_autotune_choices();
    }
    println!(r#"{{"op":"summary","all_checks_ok":{ok}}}"#);
    if !ok {
        std::process::exit(1);
    }
}
