//! Host API for the ternary linear layer: path selection and launch of GEMV / tiled GEMM / cmma
//! GEMM with the fused epilogue `y = ((acc · s_x) · s_w) + b`.

use cubecl::prelude::*;
use cubecl::server::Handle;

use crate::activations::quantize_activations_as;
use crate::device::{cmma_available, grid_1d, plane_ops_available};
use crate::error::{Error, Result};
use crate::kernels::gemm_cmma::gemm_cmma_kernel;
use crate::kernels::gemm_cmma_tiled::{gemm_cmma_tiled_kernel, TILE_M, TILE_N, UNITS};
use crate::kernels::gemm_tiled::gemm_tiled_kernel;
use crate::kernels::gemv::gemv_kernel;
use crate::kernels::gemv_stream::gemv_stream_kernel;
use crate::raw_cuda::{fused_gemv_fits, raw_cuda_available, wgmma_available, RawLaunch};
use crate::tuning::TuningOverride;
use crate::types::{
    ActivationGranularity, FloatDtype, MatmulPath, PackedWeights, QuantizedActivations,
    WeightGranularity,
};
use crate::validate;

/// Largest batch (rows of `x`) the GEMV kernel takes.
pub const GEMV_MAX_M: usize = 16;

/// Largest batch the streaming GEMV kernel takes (more rows would spill its accumulators).
pub const GEMV_STREAM_MAX_M: usize = 4;

/// k-block lanes per GEMV cube (the cube has `4 · GEMV_K_LANES` units).
const GEMV_K_LANES: usize = 64;

/// Environment variable that forces the plane-shuffle reduction of the GEMV kernel even where the
/// runtime does not report plane ops (testing only: lavapipe runs them but does not report them).
pub const FORCE_PLANE_ENV: &str = "BITLINEAR_CUBECL_FORCE_PLANE_OPS";

fn use_plane_reduction<R: Runtime>(client: &ComputeClient<R>) -> bool {
    plane_ops_available(client) || std::env::var_os(FORCE_PLANE_ENV).is_some()
}

/// The concrete kernel [`MatmulPath::Auto`] (or a forced path) resolves to for `m` rows, or why a
/// forced path cannot run here.
pub fn resolve_path<R: Runtime>(
    client: &ComputeClient<R>,
    m: usize,
    path: MatmulPath,
) -> Result<MatmulPath> {
    match path {
        MatmulPath::Auto if m <= GEMV_MAX_M && raw_cuda_available(client) => {
            Ok(MatmulPath::Dp4aGemv)
        }
        MatmulPath::Auto if m <= GEMV_MAX_M => Ok(MatmulPath::Gemv),
        // Hopper: the wgmma kernel (1.3-1.9x the mma.sync one at every benchmark shape on an
        // H100, BENCHMARKS.md).
        MatmulPath::Auto if wgmma_available(client) && m.div_ceil(64) <= 65_535 => {
            Ok(MatmulPath::WgmmaGemm)
        }
        MatmulPath::Auto if raw_cuda_available(client) => Ok(MatmulPath::MmaGemm),
        // The 128×128 double-buffered kernel beat the 64×64 one on every shape timed on an
        // H200 (and passed the exact CUDA checks); per-group f32 output falls back inside.
        MatmulPath::Auto if cmma_available(client) => Ok(MatmulPath::CmmaTiledGemm),
        MatmulPath::Auto => Ok(MatmulPath::TiledGemm),
        MatmulPath::Gemv | MatmulPath::GemvPlane | MatmulPath::Dp4aGemv if m > GEMV_MAX_M => {
            Err(Error::PathUnavailable {
                path: path.name(),
                reason: format!("M = {m} exceeds GEMV_MAX_M = {GEMV_MAX_M}"),
            })
        }
        MatmulPath::Dp4aGemv | MatmulPath::MmaGemm if !raw_cuda_available(client) => {
            Err(Error::PathUnavailable {
                path: path.name(),
                reason: "the hand-written kernels need the CUDA runtime on sm >= 80".into(),
            })
        }
        MatmulPath::WgmmaGemm if !wgmma_available(client) => Err(Error::PathUnavailable {
            path: path.name(),
            reason: "the wgmma kernel needs the CUDA runtime on sm 90 (Hopper)".into(),
        }),
        // The smallest block shape has 64 activation rows.
        MatmulPath::WgmmaGemm if m.div_ceil(64) > 65_535 => Err(Error::PathUnavailable {
            path: path.name(),
            reason: format!("M = {m} exceeds the grid's 65535 tiles of 64 rows"),
        }),
        MatmulPath::MmaGemm if m.div_ceil(128) > 65_535 => Err(Error::PathUnavailable {
            path: path.name(),
            reason: format!("M = {m} exceeds the grid's 65535 tiles of 128 rows"),
        }),
        MatmulPath::CmmaGemm | MatmulPath::CmmaTiledGemm if !cmma_available(client) => {
            Err(Error::PathUnavailable {
                path: path.name(),
                reason: "the runtime reports no i8×i8→i32 16×16×16 cmma with 32-wide planes".into(),
            })
        }
        p => Ok(p),
    }
}

/// Full forward of a deployed ternary layer: quantizes `x` (row-major f32 `[M, K]`) to int8 and
/// returns f32 `[M, N]` = `((acc · s_x) · s_w) + b` (per-group: `(Σ_g acc_g · s_w[n][g]) · s_x + b`)
/// with `acc` the exact i32 dot products. `bias`, if any, is `N` f32. `M = 0` gives an empty
/// output; `K`, `N` must match `weights`.
#[allow(clippy::too_many_arguments)]
pub fn ternary_linear<R: Runtime>(
    client: &ComputeClient<R>,
    x: &Handle,
    m: usize,
    k: usize,
    weights: &PackedWeights,
    bias: Option<&Handle>,
    act_granularity: ActivationGranularity,
    eps: f32,
    path: MatmulPath,
) -> Result<Handle> {
    ternary_linear_as(
        client,
        x,
        m,
        k,
        weights,
        bias,
        act_granularity,
        eps,
        path,
        FloatDtype::F32,
    )
}

/// [`ternary_linear`] with `x`, the bias and `y` in `dtype` (f32, f16 or bf16; the weight scales
/// stay f32). The arithmetic is the f32 layer's on the widened inputs, each output rounded once
/// to `dtype`, so `y` equals the f32 layer's output rounded to `dtype`.
#[allow(clippy::too_many_arguments)]
pub fn ternary_linear_as<R: Runtime>(
    client: &ComputeClient<R>,
    x: &Handle,
    m: usize,
    k: usize,
    weights: &PackedWeights,
    bias: Option<&Handle>,
    act_granularity: ActivationGranularity,
    eps: f32,
    path: MatmulPath,
    dtype: FloatDtype,
) -> Result<Handle> {
    weights.validate()?;
    if k != weights.k {
        return Err(Error::ShapeMismatch(format!(
            "x has K = {k}, weights have K = {}",
            weights.k
        )));
    }
    // The whole layer in one launch where the dp4a GEMV runs with per-token activations and
    // per-tensor or per-channel weight scales (its prologue reads x in `dtype`).
    let fusable = act_granularity == ActivationGranularity::PerToken
        && !matches!(weights.granularity, WeightGranularity::PerGroup(_))
        && fused_gemv_fits(m, k)
        && FUSED_OFF.get().is_none()
        && matches!(path, MatmulPath::Auto | MatmulPath::Dp4aGemv)
        && resolve_path(client, m, path)? == MatmulPath::Dp4aGemv;
    if fusable {
        dtype.check(client)?;
        return fused_linear(client, x, m, k, weights, bias, eps, dtype);
    }
    let acts = quantize_activations_as(client, x, m, k, act_granularity, eps, dtype)?;
    ternary_matmul_as(client, &acts, weights, bias, path, dtype)
}

/// Quantizes `x` per token inside the dp4a GEMV (same arithmetic as [`crate::quantize_activations`])
/// and returns `y`: one launch for the whole layer, `x`, the bias and `y` in `dtype`. The caller
/// checked that the kernel applies (see `ternary_linear_as`) and runs `dtype`, and validated the
/// weights against `k`.
#[allow(clippy::too_many_arguments)]
fn fused_linear<R: Runtime>(
    client: &ComputeClient<R>,
    x: &Handle,
    m: usize,
    k: usize,
    weights: &PackedWeights,
    bias: Option<&Handle>,
    eps: f32,
    dtype: FloatDtype,
) -> Result<Handle> {
    let n = weights.n;
    let size = dtype.size();
    validate::bytes("x", x, validate::mul(m, k, "M·K")? * size)?;
    if let Some(b) = bias {
        validate::bytes("bias", b, n * size)?;
    }
    let out = client.empty(validate::mul(m, n, "M·N")? * size);
    let dummy = client.empty(4);
    let launch = RawLaunch {
        codes: x,
        packed: &weights.packed,
        x_scales: &dummy,
        w_scales: &weights.scales,
        bias: bias.unwrap_or(&dummy),
        out: &out,
        out_raw: &dummy,
        m,
        n,
        blocks_k: k.div_ceil(16),
        per_channel: weights.granularity == WeightGranularity::PerChannel,
        has_bias: bias.is_some(),
        raw: false,
        out_dtype: dtype,
        fused: Some((k, eps)),
    };
    // SAFETY: shapes and buffer sizes validated above (the weights by the caller);
    // resolve_path checked the runtime.
    unsafe { launch.gemv(client) };
    Ok(out)
}

static FUSED_OFF: TuningOverride = TuningOverride::new(&[1]);

/// `true` turns the fused quantize + GEMV of [`ternary_linear`] off (two launches instead), to
/// time both; `false` restores the default. Both compute the same result.
#[doc(hidden)]
pub fn fused_linear_off(off: bool) {
    FUSED_OFF.set(off as usize);
}

/// `y = epilogue(xq · Wqᵀ)` from already-quantized activations; f32 `[M, N]`.
pub fn ternary_matmul<R: Runtime>(
    client: &ComputeClient<R>,
    acts: &QuantizedActivations,
    weights: &PackedWeights,
    bias: Option<&Handle>,
    path: MatmulPath,
) -> Result<Handle> {
    ternary_matmul_as(client, acts, weights, bias, path, FloatDtype::F32)
}

/// [`ternary_matmul`] with the bias and the output `y` in `dtype` (the epilogue computes in f32
/// and rounds each output once).
pub fn ternary_matmul_as<R: Runtime>(
    client: &ComputeClient<R>,
    acts: &QuantizedActivations,
    weights: &PackedWeights,
    bias: Option<&Handle>,
    path: MatmulPath,
    dtype: FloatDtype,
) -> Result<Handle> {
    dtype.check(client)?;
    match dtype {
        FloatDtype::F32 => launch_matmul::<f32, R>(client, acts, weights, bias, path, false, dtype),
        FloatDtype::F16 => {
            launch_matmul::<half::f16, R>(client, acts, weights, bias, path, false, dtype)
        }
        FloatDtype::BF16 => {
            launch_matmul::<half::bf16, R>(client, acts, weights, bias, path, false, dtype)
        }
    }
}

/// The exact i32 accumulators `acc[m, n] = Σ_k xq[m, k] · wq[n, k]` as i32 `[M, N]` (scales and
/// bias ignored, groups summed). Exposes the integer core of every path for testing.
pub fn ternary_matmul_i32<R: Runtime>(
    client: &ComputeClient<R>,
    acts: &QuantizedActivations,
    weights: &PackedWeights,
    path: MatmulPath,
) -> Result<Handle> {
    launch_matmul::<f32, R>(client, acts, weights, None, path, true, FloatDtype::F32)
}

static CMMA_K_BLOCKS: TuningOverride = TuningOverride::new(&[1, 2, 4]);

/// Forces the k-blocks of 16 per step of the tensor-core GEMM (1, 2 or 4; 0 restores the
/// default 4). For benchmarks: every valid value computes the same result.
#[doc(hidden)]
pub fn cmma_k_blocks_override(k_blocks: usize) {
    CMMA_K_BLOCKS.set(k_blocks);
}

static CMMA_TILED_K_BLOCKS: TuningOverride = TuningOverride::new(&[2, 4, 8]);

/// Forces the k-blocks of 16 per stage of the large-tile tensor-core GEMM
/// ([`MatmulPath::CmmaTiledGemm`]: 2, 4 or 8; 0 restores the default 2). For benchmarks and
/// tests: every valid value computes the same result.
#[doc(hidden)]
pub fn cmma_tiled_k_blocks_override(k_blocks: usize) {
    CMMA_TILED_K_BLOCKS.set(k_blocks);
}

static GEMV_STREAM_UNITS: TuningOverride = TuningOverride::new(&[64, 128, 256]);

/// Forces the cube size of the streaming GEMV (64, 128 or 256; 0 restores the heuristic).
/// For tests and benchmarks: every valid size computes the same result.
#[doc(hidden)]
pub fn gemv_stream_units_override(units: usize) {
    GEMV_STREAM_UNITS.set(units);
}

static GEMV_STREAM_DEPTH: TuningOverride = TuningOverride::new(&[1, 2, 4]);

/// Forces how many k-blocks each unit of the streaming GEMV loads before computing (1, 2 or 4;
/// 0 restores the default, [`GEMV_STREAM_DEPTH_DEFAULT`]). For tests and benchmarks: every
/// valid depth computes the same result.
#[doc(hidden)]
pub fn gemv_stream_depth_override(depth: usize) {
    GEMV_STREAM_DEPTH.set(depth);
}

/// Blocks in flight per unit of the streaming GEMV by default.
const GEMV_STREAM_DEPTH_DEFAULT: usize = 1;

/// `(units per block, cube size)` of the streaming GEMV for `m` rows: units read 64/`lpb` bytes
/// per block; the cube is sized so that the grid fills the device about once (split-K inside the
/// cube when there are few tiles), but never larger than the blocks available to it.
fn gemv_stream_shape<R: Runtime>(
    client: &ComputeClient<R>,
    m: usize,
    tiles: usize,
    blocks_k: usize,
) -> (usize, usize) {
    let lpb = match m {
        1 => 1,
        2 => 2,
        _ => 4,
    };
    let sms = client
        .properties()
        .hardware
        .num_streaming_multiprocessors
        .unwrap_or(16) as usize;
    // About 1024 resident units per SM at this kernel's register use.
    let want = (sms * 1024 / tiles.max(1)).max(1);
    let mut units = 64usize;
    while units < 256 && units * 2 <= want && units * 2 <= (blocks_k * lpb).next_power_of_two() {
        units *= 2;
    }
    (lpb, GEMV_STREAM_UNITS.get().unwrap_or(units))
}

/// The matmul with the float epilogue in `O` (`dtype`, the same type), or the raw i32
/// accumulators with `raw`.
#[allow(clippy::too_many_arguments)]
fn launch_matmul<O: Float, R: Runtime>(
    client: &ComputeClient<R>,
    acts: &QuantizedActivations,
    weights: &PackedWeights,
    bias: Option<&Handle>,
    path: MatmulPath,
    raw: bool,
    dtype: FloatDtype,
) -> Result<Handle> {
    debug_assert_eq!(size_of::<O>(), dtype.size());
    weights.validate()?;
    validate::positive("k", acts.k)?;
    if acts.k != weights.k {
        return Err(Error::ShapeMismatch(format!(
            "activations have K = {}, weights have K = {}",
            acts.k, weights.k
        )));
    }
    let (m, k, n) = (acts.m, weights.k, weights.n);
    let wpr = acts.words_per_row();
    validate::bytes("codes", &acts.codes, validate::mul(m, wpr * 4, "M·K")?)?;
    validate::bytes("activation scales", &acts.scales, m * 4)?;
    if let Some(b) = bias {
        validate::bytes("bias", b, n * size_of::<O>())?;
    }
    let out_elems = validate::mul(m, n, "M·N")?;
    let path = resolve_path(client, m, path)?;
    if m == 0 {
        return Ok(client.empty(0));
    }

    let out = client.empty(out_elems * if raw { 4 } else { size_of::<O>() });
    let dummy = || client.empty(4);
    let (f_out, raw_out) = if raw {
        (dummy(), out.clone())
    } else {
        (out.clone(), dummy())
    };
    let bias_h = bias.cloned().unwrap_or_else(dummy);
    let has_bias = bias.is_some() && !raw;
    let blocks_k = k.div_ceil(16);
    let tiles_n = n.div_ceil(16);
    let words = weights.word_count();
    let (group_size, groups_per_row) = weights.granularity.groups(k);
    let blocks_per_group = group_size.div_ceil(16);
    let gran = weights.granularity.tag();
    let n_scales = weights.granularity.scale_count(k, n);

    let codes_arg = || unsafe { ArrayArg::from_raw_parts(acts.codes.clone(), m * wpr) };
    let packed_arg = || unsafe { ArrayArg::from_raw_parts(weights.packed.clone(), words) };
    let xs_arg = || unsafe { ArrayArg::from_raw_parts(acts.scales.clone(), m) };
    let ws_arg = || unsafe { ArrayArg::from_raw_parts(weights.scales.clone(), n_scales) };
    let bias_arg =
        || unsafe { ArrayArg::from_raw_parts(bias_h.clone(), if has_bias { n } else { 1 }) };
    let out_arg =
        || unsafe { ArrayArg::from_raw_parts(f_out.clone(), if raw { 1 } else { out_elems }) };
    let raw_arg =
        || unsafe { ArrayArg::from_raw_parts(raw_out.clone(), if raw { out_elems } else { 1 }) };
    let tiles_grid = CubeCount::Static(n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1);

    // Per-group f32 output needs per-group accumulation, which the large-tile cmma kernel and
    // the hand-written kernels lack: their CubeCL counterparts run instead.
    let per_group = gran == crate::kernels::common::GRAN_GROUP && !raw;
    let path = match path {
        MatmulPath::CmmaTiledGemm | MatmulPath::MmaGemm | MatmulPath::WgmmaGemm if per_group => {
            MatmulPath::CmmaGemm
        }
        MatmulPath::Dp4aGemv if per_group => MatmulPath::Gemv,
        p => p,
    };
    let path = match path {
        MatmulPath::Gemv if m > GEMV_STREAM_MAX_M => MatmulPath::GemvPlane,
        p => p,
    };
    let raw_launch = || RawLaunch {
        codes: &acts.codes,
        packed: &weights.packed,
        x_scales: &acts.scales,
        w_scales: &weights.scales,
        bias: &bias_h,
        out: &f_out,
        out_raw: &raw_out,
        m,
        n,
        blocks_k,
        per_channel: gran == crate::kernels::common::GRAN_CHANNEL,
        has_bias,
        raw,
        out_dtype: dtype,
        fused: None,
    };
    match path {
        // SAFETY (both): shapes and buffer sizes validated above; resolve_path checked the
        // runtime.
        MatmulPath::Dp4aGemv => unsafe { raw_launch().gemv(client) },
        MatmulPath::MmaGemm => unsafe { raw_launch().gemm(client) },
        MatmulPath::WgmmaGemm => unsafe { raw_launch().wgmma_gemm(client) },
        MatmulPath::Gemv => {
            let (lpb, units) = gemv_stream_shape(client, m, tiles_n, blocks_k);
            // Per-group scales flush after every block: one block per step.
            let depth = if gran == crate::kernels::common::GRAN_GROUP && !raw {
                1
            } else {
                GEMV_STREAM_DEPTH.get().unwrap_or(GEMV_STREAM_DEPTH_DEFAULT)
            };
            unsafe {
                gemv_stream_kernel::launch_unchecked::<O, R>(
                    client,
                    grid_1d(tiles_n),
                    CubeDim::new_1d(units as u32),
                    4usize,
                    codes_arg(),
                    packed_arg(),
                    xs_arg(),
                    ws_arg(),
                    bias_arg(),
                    out_arg(),
                    raw_arg(),
                    n,
                    blocks_k,
                    groups_per_row,
                    blocks_per_group,
                    m,
                    lpb,
                    units,
                    depth,
                    gran,
                    has_bias,
                    raw,
                );
            }
        }
        MatmulPath::GemvPlane => unsafe {
            gemv_kernel::launch_unchecked::<O, R>(
                client,
                grid_1d(tiles_n),
                CubeDim::new_1d((4 * GEMV_K_LANES) as u32),
                4usize,
                codes_arg(),
                packed_arg(),
                xs_arg(),
                ws_arg(),
                bias_arg(),
                out_arg(),
                raw_arg(),
                n,
                blocks_k,
                groups_per_row,
                blocks_per_group,
                m,
                GEMV_K_LANES,
                gran,
                has_bias,
                raw,
                use_plane_reduction(client),
            );
        },
        MatmulPath::TiledGemm => unsafe {
            gemm_tiled_kernel::launch_unchecked::<O, R>(
                client,
                tiles_grid,
                CubeDim::new_2d(16, 16),
                codes_arg(),
                packed_arg(),
                xs_arg(),
                ws_arg(),
                bias_arg(),
                out_arg(),
                raw_arg(),
                m,
                n,
                blocks_k,
                groups_per_row,
                blocks_per_group,
                gran,
                has_bias,
                raw,
            );
        },
        MatmulPath::CmmaGemm => {
            // k-blocks of 16 per step (default 4: 1.3-2.2x faster than 2 on an H200, same
            // results; or the override), fewer where a weight group would straddle a step.
            let mut kbs = CMMA_K_BLOCKS.get().unwrap_or(4);
            if let WeightGranularity::PerGroup(_) = weights.granularity {
                while blocks_per_group % kbs != 0 {
                    kbs /= 2;
                }
            }
            unsafe {
                gemm_cmma_kernel::launch_unchecked::<O, R>(
                    client,
                    tiles_grid,
                    CubeDim::new_2d(32, 4),
                    codes_arg(),
                    packed_arg(),
                    xs_arg(),
                    ws_arg(),
                    bias_arg(),
                    out_arg(),
                    raw_arg(),
                    m,
                    n,
                    blocks_k,
                    groups_per_row,
                    blocks_per_group,
                    kbs,
                    gran,
                    has_bias,
                    raw,
                );
            }
        }
        MatmulPath::CmmaTiledGemm => {
            // Default K-step 2 k-blocks (32): fastest in 7 of 8 H200 timings (M = 512, 2048).
            let kbs = CMMA_TILED_K_BLOCKS.get().unwrap_or(2);
            // Activations as 16-byte vectors: one per row and k-block.
            let codes_vec_arg =
                unsafe { ArrayArg::from_raw_parts(acts.codes.clone(), m * wpr * 4) };
            unsafe {
                gemm_cmma_tiled_kernel::launch_unchecked::<O, R>(
                    client,
                    CubeCount::Static(n.div_ceil(TILE_N) as u32, m.div_ceil(TILE_M) as u32, 1),
                    CubeDim::new_2d(32, (UNITS / 32) as u32),
                    codes_vec_arg,
                    packed_arg(),
                    xs_arg(),
                    ws_arg(),
                    bias_arg(),
                    out_arg(),
                    raw_arg(),
                    m,
                    n,
                    blocks_k,
                    kbs,
                    gran,
                    has_bias,
                    raw,
                );
            }
        }
        MatmulPath::Auto => unreachable!("resolve_path never returns Auto"),
    }
    Ok(out)
}
