//! The kernels' CUDA C sources and how one configuration's complete source is assembled:
//! its `#define`s, its entry point's name, the output store every kernel shares, then the
//! kernel's own file. Each configuration is a `#define` prefix of the same file, compiled once
//! by NVRTC and cached by its entry name.

use crate::types::FloatDtype;

use super::gemv_config::{fused_gemv_fits, gemv_flags, FUSED_GEMV_CONFIG, GEMV_CONFIGS};
use super::mma_config::mma_gemm_kernel_flags;
use super::wgmma_configs::WGMMA_CONFIGS;

/// The output store every kernel shares, prepended to each after its `#define`s.
pub(super) const EPILOGUE_SOURCE: &str = include_str!("../kernels/cuda/epilogue.cuh");
/// The dp4a GEMV, on activation codes or fused with their quantization.
pub(super) const GEMV_SOURCE: &str = include_str!("../kernels/cuda/gemv_dp4a.cu");
/// The `mma.sync` GEMM (sm 80-89).
pub(super) const GEMM_SOURCE: &str = include_str!("../kernels/cuda/gemm_mma.cu");
/// What both `wgmma` kernels share: parameters, PTX wrappers, the decode, descriptors.
pub(super) const WGMMA_COMMON_SOURCE: &str = include_str!("../kernels/cuda/wgmma_common.cuh");
/// The `wgmma` GEMM whose warps all copy, a block barrier closing each stage.
pub(super) const WGMMA_SOURCE: &str = include_str!("../kernels/cuda/gemm_wgmma.cu");
/// The warp-specialized `wgmma` GEMM: producer warps, mbarriers, consumer warpgroups.
pub(super) const WGMMA_WS_SOURCE: &str = include_str!("../kernels/cuda/gemm_wgmma_ws.cu");

/// The flags of the shared output store (`epilogue.cuh`).
pub(super) fn epilogue_flags(
    per_channel: bool,
    has_bias: bool,
    raw: bool,
    out: FloatDtype,
) -> Vec<(&'static str, usize)> {
    let out = match out {
        FloatDtype::F32 => 0,
        FloatDtype::F16 => 1,
        FloatDtype::BF16 => 2,
    };
    vec![
        ("BL_GRAN", per_channel as usize),
        ("BL_BIAS", has_bias as usize),
        ("BL_RAW", raw as usize),
        ("BL_OUT", out),
    ]
}

/// A kernel's entry point: `bitlinear_<family>_<flag><value>...` (each configuration its own).
pub(super) fn entry_name(family: &str, flags: &[(&'static str, usize)]) -> String {
    let mut name = format!("bitlinear_{family}");
    for (key, value) in flags {
        name.push_str(&format!(
            "_{}{value}",
            key.trim_start_matches("BL_").to_lowercase()
        ));
    }
    name
}

/// A kernel's `#define`s, in order.
pub(super) type Flags = Vec<(&'static str, usize)>;

/// The complete source of every hand-written kernel configuration the host can launch, paired
/// with its entry name: each GEMV block configuration (1, 2 and 8 rows, fused where it applies),
/// both mma tilings and every wgmma configuration with one epilogue, and the first of each
/// family and the fused GEMV's default with every epilogue (raw, per-tensor, per-channel with a
/// bias; f32, f16, bf16: the fused prologue reads its input in the output's type). For the
/// syntax check of the sources on the host (`tests/cuda_syntax.rs`).
#[doc(hidden)]
pub fn raw_kernel_sources() -> Vec<(String, String)> {
    let mut epilogues = vec![epilogue_flags(false, false, true, FloatDtype::F32)];
    for out in [FloatDtype::F32, FloatDtype::F16, FloatDtype::BF16] {
        epilogues.push(epilogue_flags(false, false, false, out));
        epilogues.push(epilogue_flags(true, true, false, out));
    }
    let main_epilogue = epilogue_flags(true, true, false, FloatDtype::F32);
    // (family, the kernel's own flags, its body)
    let mut kernels: Vec<(&str, Flags, String)> = Vec::new();
    // Kernels built with every epilogue besides the first of each family.
    let mut every_epilogue = Vec::new();
    for (index, config) in GEMV_CONFIGS.into_iter().enumerate() {
        for rows in [1, 2, 8] {
            kernels.push((
                "gemv_dp4a",
                gemv_flags(rows, config, None),
                GEMV_SOURCE.into(),
            ));
            if fused_gemv_fits(rows, 1024) {
                let flags = gemv_flags(rows, config, Some(1024));
                if index + 1 == FUSED_GEMV_CONFIG && rows == 1 {
                    every_epilogue.push(flags.clone());
                }
                kernels.push(("gemv_dp4a", flags, GEMV_SOURCE.into()));
            }
        }
    }
    for flags in mma_gemm_kernel_flags() {
        kernels.push(("gemm_mma", flags, GEMM_SOURCE.into()));
    }
    for config in WGMMA_CONFIGS {
        kernels.push((config.kernel().0, config.flags(), config.body()));
    }
    // The diagnostic variants (`wgmma_ablation_override`) of the default large-M shape (32,
    // warp-specialized) and of 11 (gemm_wgmma.cu).
    for ablated in [WGMMA_CONFIGS[32 - 1], WGMMA_CONFIGS[11 - 1]] {
        for mask in [1, 2, 4, 7] {
            let mut flags = ablated.flags();
            flags.push(("BL_ABLATE", mask));
            kernels.push((ablated.kernel().0, flags, ablated.body()));
        }
    }
    let mut sources = Vec::new();
    let mut first_of_family = std::collections::HashSet::new();
    for (family, own, body) in kernels {
        let all = if first_of_family.insert(family) || every_epilogue.contains(&own) {
            epilogues.clone()
        } else {
            vec![main_epilogue.clone()]
        };
        for epilogue in all {
            let mut flags = epilogue;
            flags.extend_from_slice(&own);
            let entry = entry_name(family, &flags);
            let source = kernel_source(&entry, &flags, &body);
            sources.push((entry, source));
        }
    }
    sources
}

/// A kernel's whole source: `flags` as `#define`s, `BL_ENTRY` (the entry point's name), the
/// output store every kernel shares, then `body`.
pub(super) fn kernel_source(entry: &str, flags: &[(&str, usize)], body: &str) -> String {
    let mut text = String::new();
    for (key, value) in flags {
        text.push_str(&format!("#define {key} {value}\n"));
    }
    format!("{text}#define BL_ENTRY {entry}\n{EPILOGUE_SOURCE}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry name stands for one source (the launch cache relies on it): no two
    /// configurations give the same name with different sources, and each source defines its
    /// entry point.
    #[test]
    fn entry_names_identify_their_sources() {
        let mut seen = std::collections::HashMap::new();
        for (entry, source) in raw_kernel_sources() {
            assert!(
                source.contains(&format!("#define BL_ENTRY {entry}\n")),
                "{entry}"
            );
            if let Some(previous) = seen.insert(entry.clone(), source.clone()) {
                assert_eq!(previous, source, "{entry} names two sources");
            }
        }
        assert!(seen.len() > WGMMA_CONFIGS.len() + GEMV_CONFIGS.len());
    }

    /// Flags, then the entry point, then the shared output store, then the kernel's own part.
    #[test]
    fn kernel_source_defines_the_flags_before_the_code() {
        let s = kernel_source("k_gran1", &[("BL_GRAN", 1), ("BL_MR", 8)], "BODY");
        assert!(s.starts_with("#define BL_GRAN 1\n#define BL_MR 8\n#define BL_ENTRY k_gran1\n"));
        assert!(s.ends_with("BODY"));
        let store = s.find("bl_store").expect("the epilogue is in");
        assert!(store < s.find("BODY").unwrap());
    }
}
