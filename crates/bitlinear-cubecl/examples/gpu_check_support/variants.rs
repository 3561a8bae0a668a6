//! The timed variants: each matmul path and configuration (override, dtype, autotuning) as a
//! named launch, and the shapes they are timed on.

use bitlinear_cubecl::*;

/// `GPU_CHECK_NO_FUSED=1` (set by the script when the fused check failed): every timed
/// `ternary_linear` takes the two-launch path.
pub(crate) fn no_fused() -> bool {
    std::env::var("GPU_CHECK_NO_FUSED").is_ok()
}

/// `GPU_CHECK_NO_FUSED_CONFIGS=1` (set by the script when `fused_linear_configs` failed): the
/// fused layer is timed in its default configuration only.
pub(crate) fn no_fused_configs() -> bool {
    no_fused() || std::env::var("GPU_CHECK_NO_FUSED_CONFIGS").is_ok()
}

/// One kernel configuration to time (path plus the hidden tuning overrides).
pub(crate) struct Variant {
    pub(crate) name: &'static str,
    pub(crate) path: MatmulPath,
    /// Streaming-GEMV cube size (0: heuristic).
    pub(crate) units: usize,
    /// Streaming-GEMV blocks loaded per step (0: default).
    pub(crate) depth: usize,
    /// Tensor-core GEMM k-blocks per step (0: default).
    pub(crate) k_blocks: usize,
    /// Large-tile tensor-core GEMM k-blocks per stage (0: default).
    pub(crate) tiled_k_blocks: usize,
    /// dp4a GEMV block configuration (0: default).
    pub(crate) dp4a_config: usize,
    /// mma GEMM 16-row tiles per warp (0: default).
    pub(crate) mma_tiles: usize,
    /// wgmma GEMM block shape (0: default).
    pub(crate) wgmma_config: usize,
    /// Work the wgmma kernel leaves out (`wgmma_ablation_override`; wrong outputs: timed,
    /// never checked).
    pub(crate) ablation: usize,
    /// `ternary_linear` without the fused quantize + GEMV (two launches).
    pub(crate) unfused: bool,
    pub(crate) linear_too: bool,
    /// Type of the output (bf16 halves the output bytes: what torch bf16 writes).
    pub(crate) dtype: FloatDtype,
    /// Autotuning on (`Auto`'s choice timed among its candidates on the first launch of each
    /// shape); off, the static choice runs. Only `Auto` variants are ever tuned.
    pub(crate) autotune: bool,
}

impl Variant {
    const fn new(name: &'static str, path: MatmulPath, units: usize, k_blocks: usize) -> Self {
        Self {
            name,
            path,
            units,
            depth: 0,
            k_blocks,
            tiled_k_blocks: 0,
            dp4a_config: 0,
            mma_tiles: 0,
            wgmma_config: 0,
            ablation: 0,
            unfused: false,
            linear_too: false,
            dtype: FloatDtype::F32,
            autotune: false,
        }
    }
    /// The same variant with autotuning on, unless `GPU_CHECK_NO_AUTOTUNE` is set (the script
    /// sets it when the `wgmma_gemm_autotuned` check failed) or `GPU_CHECK_PROFILE` is: the
    /// tuner's own launches would shift the join of ncu's rows to the announced launches.
    pub(crate) fn tuned(mut self) -> Self {
        self.autotune = std::env::var("GPU_CHECK_NO_AUTOTUNE").is_err()
            && std::env::var("GPU_CHECK_PROFILE").is_err();
        self
    }
    /// The same kernel writing bf16 outputs.
    const fn bf16(mut self, name: &'static str) -> Self {
        self.name = name;
        self.dtype = FloatDtype::BF16;
        self
    }
    const fn dp4a(name: &'static str, config: usize) -> Self {
        let mut v = Self::new(name, MatmulPath::Dp4aGemv, 0, 0);
        v.dp4a_config = config;
        v
    }
    const fn mma(name: &'static str, tiles: usize) -> Self {
        let mut v = Self::new(name, MatmulPath::MmaGemm, 0, 0);
        v.mma_tiles = tiles;
        v
    }
    const fn wgmma(name: &'static str, config: usize) -> Self {
        let mut v = Self::new(name, MatmulPath::WgmmaGemm, 0, 0);
        v.wgmma_config = config;
        v
    }
    /// The same wgmma configuration leaving out the work `mask` names (diagnosis only).
    const fn ablated(mut self, mask: usize) -> Self {
        self.ablation = mask;
        self
    }
    const fn gemv_depth(name: &'static str, units: usize, depth: usize) -> Self {
        let mut v = Self::new(name, MatmulPath::Gemv, units, 0);
        v.depth = depth;
        v
    }
    const fn tiled(name: &'static str, tiled_k_blocks: usize) -> Self {
        let mut v = Self::new(name, MatmulPath::CmmaTiledGemm, 0, 0);
        v.tiled_k_blocks = tiled_k_blocks;
        v
    }
    pub(crate) fn apply(&self) {
        gemv_stream_units_override(self.units);
        gemv_stream_depth_override(self.depth);
        cmma_k_blocks_override(self.k_blocks);
        cmma_tiled_k_blocks_override(self.tiled_k_blocks);
        dp4a_gemv_config_override(self.dp4a_config);
        mma_gemm_warp_tiles_override(self.mma_tiles);
        wgmma_gemm_config_override(self.wgmma_config);
        wgmma_ablation_override(self.ablation);
        fused_linear_off(self.unfused || no_fused());
        set_autotune(Some(self.autotune));
    }
    pub(crate) fn reset() {
        set_autotune(Some(false));
        fused_linear_off(no_fused());
        dp4a_gemv_config_override(0);
        mma_gemm_warp_tiles_override(0);
        wgmma_gemm_config_override(0);
        wgmma_ablation_override(0);
        gemv_stream_units_override(0);
        gemv_stream_depth_override(0);
        cmma_k_blocks_override(0);
        cmma_tiled_k_blocks_override(0);
    }
}

/// The wgmma configurations `GPU_CHECK_WGMMA_CONFIGS` (e.g. `15,19`) names, if set: only those
/// are checked by `wgmma_gemm_configs` and timed besides the default.
pub(crate) fn wgmma_configs_wanted() -> Option<Vec<usize>> {
    let list = std::env::var("GPU_CHECK_WGMMA_CONFIGS").ok()?;
    Some(
        list.split(',')
            .filter_map(|c| c.trim().parse().ok())
            .collect(),
    )
}

/// Variants timed side by side for `m` rows: the default first (also timed with activation
/// quantization), then the previous kernel and tuning alternatives.
pub(crate) fn variants(m: usize, cmma_ok: bool, raw_ok: bool, wgmma_ok: bool) -> Vec<Variant> {
    let mut v = all_variants(m, cmma_ok, raw_ok, wgmma_ok);
    if let Some(wanted) = wgmma_configs_wanted() {
        v.retain(|v| v.wgmma_config == 0 || wanted.contains(&v.wgmma_config));
    }
    v
}

pub(crate) fn all_variants(m: usize, cmma_ok: bool, raw_ok: bool, wgmma_ok: bool) -> Vec<Variant> {
    let main = |mut v: Variant| {
        v.linear_too = true;
        v
    };
    if m <= GEMV_MAX_M && std::env::var("GPU_CHECK_NO_STREAM").is_ok() {
        vec![main(Variant::new(
            "gemv-plane",
            MatmulPath::GemvPlane,
            0,
            0,
        ))]
    } else if m <= GEMV_MAX_M {
        // The CubeCL variants (cube sizes, depths) were compared in session 2; the hand-written
        // dp4a kernel is timed against the default CubeCL one. GPU_CHECK_NO_DP4A=1 (set by the
        // script when its check failed) leaves it out.
        let mut v = vec![];
        if raw_ok && std::env::var("GPU_CHECK_NO_DP4A").is_err() {
            v.push(main(Variant::new("dp4a", MatmulPath::Dp4aGemv, 0, 0)));
            // bf16 in and out (the layer fused too: its prologue reads bf16).
            v.push(main(
                Variant::new("dp4a", MatmulPath::Dp4aGemv, 0, 0).bf16("dp4a-bf16"),
            ));
            // The full layer in two launches (quantize, then the GEMV), against the fused one.
            let mut two = main(Variant::new("dp4a-2launch", MatmulPath::Dp4aGemv, 0, 0));
            two.unfused = true;
            v.push(two);
            // Block shapes (see src/raw_cuda/gemv_config.rs): 6 blocks/SM asked (with the 4-accumulator
            // split); the split alone; 4 warps × 8 loads in flight, with and without it.
            if std::env::var("GPU_CHECK_NO_DP4A_CONFIGS").is_err() {
                v.push(Variant::dp4a("dp4a-minb6", 2));
                v.push(Variant::dp4a("dp4a-split", 3));
                v.push(Variant::dp4a("dp4a-w4u8", 4));
                v.push(Variant::dp4a("dp4a-w4u8-nosplit", 5));
                v.push(Variant::dp4a("dp4a-minb6-nosplit", 6));
                v.push(Variant::dp4a("dp4a-minb8-nosplit", 7));
                // Two and four tiles per block: the fused layer's prologue reads x once per
                // block, so a half and a quarter of its L2 reads (timed as a layer too).
                // As layers only where the fused forms passed their check.
                let layer_too = |v: Variant| if no_fused_configs() { v } else { main(v) };
                v.push(layer_too(Variant::dp4a("dp4a-t2", 8)));
                // One tile per block: the fused layer's default before session 13.
                v.push(layer_too(Variant::dp4a("dp4a-t1", 1)));
                v.push(layer_too(Variant::dp4a("dp4a-t4", 9)));
            }
        }
        v.push(main(Variant::new("gemv", MatmulPath::Gemv, 0, 0)));
        if std::env::var("GPU_CHECK_ALL_VARIANTS").is_ok() {
            v.extend([
                Variant::new("gemv-plane", MatmulPath::GemvPlane, 0, 0),
                Variant::new("gemv-u64", MatmulPath::Gemv, 64, 0),
                Variant::new("gemv-u128", MatmulPath::Gemv, 128, 0),
                Variant::new("gemv-u256", MatmulPath::Gemv, 256, 0),
                Variant::gemv_depth("gemv-d2", 0, 2),
                Variant::gemv_depth("gemv-d4", 0, 4),
                Variant::gemv_depth("gemv-u128-d2", 128, 2),
                Variant::gemv_depth("gemv-u128-d4", 128, 4),
            ]);
        }
        v
    } else if std::env::var("GPU_CHECK_ALL_VARIANTS").is_err() {
        // The hand-written mma.sync GEMM against the best CubeCL cmma kernel.
        let mut v = vec![];
        // The Hopper wgmma kernel and its block shapes (GPU_CHECK_NO_WGMMA=1, set by the script
        // when its check failed, leaves them out).
        if wgmma_ok && std::env::var("GPU_CHECK_NO_WGMMA").is_err() {
            // `Auto` autotuned (what a user runs), and its static choice without the tuning.
            v.push(main(Variant::wgmma("wgmma", 0).tuned()));
            v.push(Variant::wgmma("wgmma-static", 0));
            // bf16 outputs, as torch bf16 writes (half the output bytes of f32); Auto's also
            // as a layer, bf16 in and out, as torch's `F.linear` is timed.
            v.push(main(Variant::wgmma("wgmma", 0).tuned().bf16("wgmma-bf16")));
            v.push(Variant::wgmma("wgmma-static", 0).bf16("wgmma-static-bf16"));
            if std::env::var("GPU_CHECK_NO_WGMMA_CONFIGS").is_err() {
                v.push(Variant::wgmma("wgmma-128", 1));
                v.push(Variant::wgmma("wgmma-256", 2));
                v.push(Variant::wgmma("wgmma-w256", 4));
                v.push(Variant::wgmma("wgmma-128x2", 5));
                // Weights decoded into shared memory instead of registers.
                v.push(Variant::wgmma("wgmma-ss-256", 6));
                v.push(Variant::wgmma("wgmma-ss-128x2", 7));
                v.push(Variant::wgmma("wgmma-ss-128", 8));
                // Packed words by cp.async with the activations, deeper prefetch.
                v.push(Variant::wgmma("wgmma-cp3-256", 9));
                v.push(Variant::wgmma("wgmma-cp4-256", 10));
                v.push(Variant::wgmma("wgmma-cp4-128", 11));
                v.push(Variant::wgmma("wgmma-cp6-128", 12));
                v.push(Variant::wgmma("wgmma-cp3-128x2", 13));
                v.push(Variant::wgmma("wgmma-ss-cp3-256", 14));
                // Warp-specialized: producer warps, mbarriers, no block barrier.
                v.push(Variant::wgmma("wgmma-ws6-256", 15));
                v.push(Variant::wgmma("wgmma-ws4-256", 16));
                v.push(Variant::wgmma("wgmma-ws8-128", 17));
                v.push(Variant::wgmma("wgmma-ws6-256-p2", 18));
                v.push(Variant::wgmma("wgmma-ws6-w256", 19));
                // The same with the activations by TMA.
                v.push(Variant::wgmma("wgmma-ws6-256-tma", 20));
                v.push(Variant::wgmma("wgmma-ws6-w256-tma", 21));
                v.push(Variant::wgmma("wgmma-ws6-256-mcast", 22));
                v.push(Variant::wgmma("wgmma-ws6-w256-mcast", 23));
                // Stream-K: the last waves' tiles split by k-steps over one block per SM.
                v.push(Variant::wgmma("wgmma-sk-256", 24));
                v.push(Variant::wgmma("wgmma-sk-128", 25));
                v.push(Variant::wgmma("wgmma-ska-256", 26));
                v.push(Variant::wgmma("wgmma-ska-128", 27));
                // Three fragment sets: two wgmma groups in flight during the decode.
                v.push(Variant::wgmma("wgmma-f3-256", 28));
                v.push(Variant::wgmma("wgmma-f3-128", 29));
                v.push(Variant::wgmma("wgmma-f3-ska-256", 30));
                v.push(Variant::wgmma("wgmma-f3-ska-128", 31));
                v.push(Variant::wgmma("wgmma-f3-ws6-256-tma", 32));
                v.push(Variant::wgmma("wgmma-f3-ska-64", 33));
                v.push(Variant::wgmma("wgmma-f3-ws8-128-tma", 34));
                v.push(Variant::wgmma("wgmma-ska-ws6-256-tma", 35));
                v.push(Variant::wgmma("wgmma-f3-ska-ws6-256-tma", 36));
                v.push(Variant::wgmma("wgmma-f3-ska-ws8-128-tma", 37));
                v.push(Variant::wgmma("wgmma-f3-ws6-256-mcast", 38));
                v.push(Variant::wgmma("wgmma-f3-ws6-256-persistent", 39));
                v.push(Variant::wgmma("wgmma-cp4-256-persistent", 40));
                v.push(Variant::wgmma("wgmma-cp4-128-persistent", 41));
                v.push(Variant::wgmma("wgmma-f3-sk-ws6-256-tma", 42));
                v.push(Variant::wgmma("wgmma-ska-ws6-w256-tma", 43));
                v.push(Variant::wgmma("wgmma-f3-cp4-w256-64", 44));
                // What bounds 32 and 11 (GPU_CHECK_ABLATE=1): the same launch without the
                // copies, the wgmma, the decode, or with the wgmma alone (no copies, no
                // decode), or the copies alone. Wrong outputs: timed only.
                if std::env::var("GPU_CHECK_ABLATE").is_ok() {
                    let ablated = |name, config, mask| Variant::wgmma(name, config).ablated(mask);
                    v.extend([
                        ablated("wgmma-32-ablate-no-copy", 32, 1),
                        ablated("wgmma-32-ablate-no-wgmma", 32, 2),
                        ablated("wgmma-32-ablate-no-decode", 32, 4),
                        ablated("wgmma-32-ablate-wgmma-only", 32, 5),
                        ablated("wgmma-32-ablate-copy-only", 32, 6),
                        ablated("wgmma-11-ablate-no-copy", 11, 1),
                        ablated("wgmma-11-ablate-no-wgmma", 11, 2),
                        ablated("wgmma-11-ablate-no-decode", 11, 4),
                        ablated("wgmma-11-ablate-wgmma-only", 11, 5),
                        ablated("wgmma-11-ablate-copy-only", 11, 6),
                    ]);
                }
                // GPU_CHECK_NO_BF16=1 leaves these out (the K sweep: f32 outputs only).
                if std::env::var("GPU_CHECK_NO_BF16").is_err() {
                    // bf16 outputs of the configurations `Auto` picks or may pick next: torch bf16
                    // writes bf16, so these are the like-for-like figures (half the output bytes).
                    v.extend([
                        Variant::wgmma("wgmma-f3-ws6-256-tma", 32)
                            .bf16("wgmma-f3-ws6-256-tma-bf16"),
                        Variant::wgmma("wgmma-f3-ska-64", 33).bf16("wgmma-f3-ska-64-bf16"),
                        Variant::wgmma("wgmma-cp4-128", 11).bf16("wgmma-cp4-128-bf16"),
                        Variant::wgmma("wgmma-ska-ws6-256-tma", 35)
                            .bf16("wgmma-ska-ws6-256-tma-bf16"),
                        Variant::wgmma("wgmma-f3-ska-ws6-256-tma", 36)
                            .bf16("wgmma-f3-ska-ws6-256-tma-bf16"),
                        Variant::wgmma("wgmma-f3-ws6-256-persistent", 39)
                            .bf16("wgmma-f3-ws6-256-persistent-bf16"),
                        Variant::wgmma("wgmma-cp4-256-persistent", 40)
                            .bf16("wgmma-cp4-256-persistent-bf16"),
                        Variant::wgmma("wgmma-cp4-128-persistent", 41)
                            .bf16("wgmma-cp4-128-persistent-bf16"),
                    ]);
                    v.push(Variant::wgmma("wgmma-f3-256", 28).bf16("wgmma-f3-256-bf16"));
                    v.push(Variant::wgmma("wgmma-sk-256", 24).bf16("wgmma-sk-256-bf16"));
                    v.push(Variant::wgmma("wgmma-ska-256", 26).bf16("wgmma-ska-256-bf16"));
                    v.push(Variant::wgmma("wgmma-cp4-256", 10).bf16("wgmma-cp4-256-bf16"));
                    v.push(Variant::wgmma("wgmma-ws6-w256", 19).bf16("wgmma-ws6-w256-bf16"));
                    v.push(Variant::wgmma("wgmma-ws6-256", 15).bf16("wgmma-ws6-256-bf16"));
                }
            }
        }
        if raw_ok && std::env::var("GPU_CHECK_NO_MMA").is_err() {
            v.push(main(Variant::new("mma", MatmulPath::MmaGemm, 0, 0)));
            if std::env::var("GPU_CHECK_NO_MMA_256").is_err() {
                v.push(Variant::mma("mma-256", 8));
            }
        }
        if cmma_ok && std::env::var("GPU_CHECK_NO_CMMA_TILED").is_err() {
            v.push(main(Variant::tiled("cmma-tiled", 0)));
        }
        v
    } else {
        let mut v = vec![];
        if cmma_ok {
            v.push(main(Variant::new("cmma", MatmulPath::CmmaGemm, 0, 0)));
            v.push(Variant::new("cmma-k4", MatmulPath::CmmaGemm, 0, 4));
            // GPU_CHECK_NO_CMMA_TILED=1 (set by the script when its check failed) leaves it out.
            if std::env::var("GPU_CHECK_NO_CMMA_TILED").is_err() {
                v.push(Variant::tiled("cmma-tiled", 0));
                v.push(Variant::tiled("cmma-tiled-k2", 2));
                v.push(Variant::tiled("cmma-tiled-k8", 8));
            }
        }
        v.push(Variant::new("tiled", MatmulPath::TiledGemm, 0, 0));
        v
    }
}

/// `GPU_CHECK_SHAPES=KxN,...`: shapes replacing the benchmark ones in the timings and the
/// profile (e.g. a K sweep at one N).
pub(crate) fn custom_shapes() -> Option<Vec<(usize, usize)>> {
    std::env::var("GPU_CHECK_SHAPES").ok().map(|list| {
        list.split(',')
            .filter_map(|s| {
                let (k, n) = s.trim().split_once('x')?;
                Some((k.parse().ok()?, n.parse().ok()?))
            })
            .collect()
    })
}
