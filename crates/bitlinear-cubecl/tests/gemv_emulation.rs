//! The dp4a GEMV (`src/kernels/cuda/gemv_dp4a.cu`) runs on the CPU: its source compiled as C++
//! with `tests/gemv_emu/gemv_emu.cpp`, which models dp4a, warp shuffles, block barriers and the
//! fused prologue's cp.async copies (landing only at the wait, into shared memory left full of
//! garbage). Every block configuration the host can launch, with 1, 2, 3 and 8 activation rows
//! per block, and the fused quantize + GEMV at several K (f32 inputs; f16 and bf16 for two
//! block shapes), against an exact reference (integer accumulators, and the f32 epilogue bit
//! for bit), under AddressSanitizer. Before this, only the GPU check on a lent GPU ran this
//! kernel.
//!
//! Needs a C++20 compiler (`$CXX`, else `c++`); without one the test says so and passes, unless
//! `BITLINEAR_REQUIRE_CXX=1` (set by `scripts/test.sh`), where it fails.

mod cxx;

use std::path::Path;

use bitlinear_cubecl::{dp4a_fused_gemv_config, dp4a_gemv_config_count, dp4a_gemv_kernel_flags};
use cxx::Problem;

/// A kernel configuration's `#define`s.
type Flags = Vec<(&'static str, usize)>;

/// Compiles the emulation of one kernel configuration into `out`.
fn build(cxx: &str, out: &Path, flags: &[(&str, usize)], raw: bool) {
    cxx::build_emulation(
        cxx,
        out,
        "gemv_dp4a.cu",
        "gemv_emu/gemv_emu.cpp",
        flags,
        raw,
    );
}

/// The flags of `config` with `rows` per block; blocks per SM only change the compiler's register
/// budget, so they are dropped (configurations differing only there build the same emulation).
fn code_shape(config: usize, rows: usize, fused_kp: Option<usize>) -> Flags {
    let mut flags = dp4a_gemv_kernel_flags(config, rows, fused_kp);
    flags.retain(|(key, _)| *key != "BL_MINB");
    flags.push(("BL_MINB", 0));
    flags
}

#[test]
fn dp4a_gemv_matches_the_reference_in_cpu_emulation() {
    let Some(cxx) = cxx::compiler_or_skip() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("bitlinear-gemv-emu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // (flags, raw, problems): the two-launch GEMV on codes, then the fused layer, whose codes
    // per row (BL_KP) are fixed when it is compiled, so each K is a build of its own.
    let mut jobs: Vec<(Flags, bool, Vec<Problem>)> = vec![];
    let configs = 1..=dp4a_gemv_config_count();
    let mut shapes: Vec<_> = configs
        .clone()
        .flat_map(|c| [1, 2, 3, 8].map(|rows| (code_shape(c, rows, None), rows)))
        .collect();
    shapes.sort();
    shapes.dedup();
    for (flags, r) in shapes {
        // M: one row, whole and partial blocks of rows; K: 1, odd, one round of k-blocks, two
        // and three rounds (256 k-blocks each, the codes copied into shared memory anew per
        // round) with a partial last one; N: below, at and across 16-row tiles.
        let problems = vec![
            (1, 1, 1, 1),
            (1, 15, 7, 2),
            (r, 100, 33, 3),
            (r + 1, 260, 17, 4),
            (2 * r + 1, 1040, 50, 5),
            (r, 4100, 20, 6),
            (1, 8200, 17, 7),
        ];
        for raw in [true, false] {
            jobs.push((flags.clone(), raw, problems.clone()));
        }
    }
    // 1 and 2 rows per block (the fused layer's default bounds), and 8 (`fused_linear_widen`).
    let mut fused: Vec<_> = configs
        .flat_map(|c| {
            [1, 2]
                .into_iter()
                .flat_map(move |rows| {
                    [13usize, 100, 1028]
                        .map(|k| (code_shape(c, rows, Some(16 * k.div_ceil(16))), k))
                })
                .chain([(code_shape(c, 8, Some(112)), 100)])
        })
        .collect();
    // The fused prologue on f16 (BL_X 1) and bf16 (2) inputs (f32 outputs, which the reference
    // checks): the default fused block shape and one tile per block, at 1 and 2 rows, with a K
    // of whole 16-byte copies (104) and two without (13, 1028: the elements loaded one by one).
    for x in [1, 2] {
        for config in [1, dp4a_fused_gemv_config()] {
            for rows in [1, 2] {
                for k in [13usize, 104, 1028] {
                    let mut flags = code_shape(config, rows, Some(16 * k.div_ceil(16)));
                    flags.push(("BL_X", x));
                    fused.push((flags, k));
                }
            }
        }
    }
    fused.sort();
    fused.dedup();
    for (flags, k) in fused {
        let r = flags.iter().find(|(key, _)| *key == "BL_MR").unwrap().1;
        // Odd seeds put a NaN or an infinity in the last row, and seed 3 starts the input 4
        // bytes into its buffer (a view: 4-byte copies even where K is a multiple of 4; see
        // gemv_emu.cpp).
        let problems = vec![
            (1, k, 1, 1),
            (r, k, 33, 2),
            (2 * r + 1, k, 50, 3),
            (r + 1, k, 17, 5),
        ];
        // The integer accumulators check the codes alone once per K; the f32 epilogue (every
        // configuration) checks the codes and the scales.
        if flags.contains(&("BL_WARPS", 8)) && flags.contains(&("BL_SPLIT", 0)) && r == 1 {
            jobs.push((flags.clone(), true, problems.clone()));
        }
        jobs.push((flags, false, problems));
    }
    cxx::for_each_parallel(&jobs, |(flags, raw, problems)| {
        let name: String = flags
            .iter()
            .map(|(key, value)| format!("{key}{value}"))
            .collect();
        let exe = dir.join(format!("gemv_{name}_{raw}"));
        build(&cxx, &exe, flags, *raw);
        cxx::run_emulation(&exe, &format!("{flags:?}, raw {raw}"), problems);
    });
    let _ = std::fs::remove_dir_all(&dir);
}
