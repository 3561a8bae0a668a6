//! One launch of a hand-written kernel: its validated buffers and sizes, and how each kernel
//! family (dp4a GEMV, `mma.sync` GEMM, `wgmma` GEMM) picks its configuration (override,
//! autotuned or static), builds its grid and launches.

use std::sync::atomic::Ordering;

use cubecl::ir::{ElemType, StorageType, UIntKind};
use cubecl::prelude::*;
use cubecl::server::{Handle, TensorMapBinding, TensorMapMeta};
use cubecl::zspace::metadata::Metadata;
use cubecl::zspace::{Shape, Strides};

use crate::autotune::{time_launches, tuned_choice, TuneKey};
use crate::types::FloatDtype;

use super::gemv_config::{
    gemv_flags, gemv_rows_per_block, FUSED_GEMV_CONFIG, GEMV_CONFIG, GEMV_CONFIGS,
};
use super::mma_config::{GEMM_WARP_TILES, GEMM_WARP_TILES_DEFAULT, GEMM_WARP_TILINGS};
use super::sources::{entry_name, epilogue_flags, kernel_source, GEMM_SOURCE, GEMV_SOURCE};
use super::stream_k_counters::zeroed_counters;
use super::task::RawCudaKernel;
use super::wgmma_config::SM90_MAX_DYNAMIC_SHARED;
use super::wgmma_configs::{WGMMA_ABLATION, WGMMA_CONFIG, WGMMA_CONFIGS};
use super::wgmma_schedule::{
    stream_k_split, wgmma_default_config, WGMMA_SMALL_M, WGMMA_TUNE, WGMMA_TUNE_SMALL_M,
};

/// The buffers and sizes of one launch, already validated by the caller.
pub(crate) struct RawLaunch<'a> {
    pub codes: &'a Handle,
    pub packed: &'a Handle,
    pub x_scales: &'a Handle,
    pub w_scales: &'a Handle,
    pub bias: &'a Handle,
    pub out: &'a Handle,
    pub out_raw: &'a Handle,
    pub m: usize,
    pub n: usize,
    pub blocks_k: usize,
    /// Per-channel weight scales, else per tensor (per-group scales never reach these kernels).
    pub per_channel: bool,
    pub has_bias: bool,
    pub raw: bool,
    /// Type of `bias` and `out` (`BL_OUT` in `epilogue.cuh`).
    pub out_dtype: FloatDtype,
    /// `Some((k, eps))`: `codes` is the f32 input `[M, K]`, quantized per token inside the
    /// GEMV (see [`super::fused_gemv_fits`]).
    pub fused: Option<(usize, f32)>,
}

impl RawLaunch<'_> {
    fn buffers(&self) -> [&Handle; 7] {
        [
            self.codes,
            self.packed,
            self.x_scales,
            self.w_scales,
            self.bias,
            self.out,
            self.out_raw,
        ]
    }

    fn scalars(&self) -> Vec<u64> {
        vec![self.m as u64, self.n as u64, self.blocks_k as u64]
    }

    /// The GEMV's scalars: those of the GEMM plus `k` and the bits of `eps` (fused only).
    fn gemv_scalars(&self) -> Vec<u64> {
        let (k, eps) = self.fused.unwrap_or((0, 0.0));
        let mut s = self.scalars();
        s.extend([k as u64, eps.to_bits() as u64]);
        s
    }

    /// The kernel of this launch's configuration plus `extra` flags: named
    /// `bitlinear_<family>_<flag><value>...` on every launch, its source assembled only the
    /// first time that name is seen ([`kernel_source`]; `body` is the kernel's own part).
    fn kernel(
        &self,
        family: &str,
        extra: &[(&'static str, usize)],
        body: impl FnOnce() -> String,
        cube_dim: CubeDim,
    ) -> RawCudaKernel {
        let mut flags = epilogue_flags(self.per_channel, self.has_bias, self.raw, self.out_dtype);
        flags.extend_from_slice(extra);
        let name = entry_name(family, &flags);
        let entry = name.clone();
        RawCudaKernel::cached(name, || kernel_source(&entry, &flags, &body()), cube_dim)
    }

    /// Packed GEMV with dp4a, `m ≤ 16`: one block (256 threads by default) per 16 output rows
    /// (or per 2 or 4 tiles of them, with as many times the threads) and per
    /// [`super::gemv_config::GEMV_ROWS_PER_BLOCK`] activation rows.
    ///
    /// # Safety
    /// Buffers must match the shapes (validated by `launch_matmul`); CUDA runtime only.
    pub(crate) unsafe fn gemv<R: Runtime>(&self, client: &ComputeClient<R>) {
        let rows = gemv_rows_per_block(self.m);
        let default = if self.fused.is_some() {
            FUSED_GEMV_CONFIG
        } else {
            1
        };
        let config = GEMV_CONFIGS[GEMV_CONFIG.get().unwrap_or(default) - 1];
        let fused_kp = self.fused.map(|_| 16 * self.blocks_k);
        let kernel = self.kernel(
            "gemv_dp4a",
            &gemv_flags(rows, config, fused_kp),
            || GEMV_SOURCE.to_string(),
            CubeDim::new_1d((32 * config.warps * config.tiles) as u32),
        );
        let blocks = self.n.div_ceil(16).div_ceil(config.tiles);
        let count = CubeCount::Static(blocks as u32, self.m.div_ceil(rows) as u32, 1);
        unsafe { kernel.launch(client, count, &self.buffers(), self.gemv_scalars()) };
    }

    /// Tensor-core GEMM (`mma.sync` m16n8k32 s8): 128×128 output tiles by default (256×128 with
    /// 8 warp tiles), 256 threads each.
    ///
    /// # Safety
    /// As [`Self::gemv`]; sm ≥ 80.
    pub(crate) unsafe fn gemm<R: Runtime>(&self, client: &ComputeClient<R>) {
        let tiles = GEMM_WARP_TILES.get().unwrap_or_else(|| {
            let sms = client.properties().hardware.num_streaming_multiprocessors;
            self.tuned(
                client,
                sms.unwrap_or(0),
                "mma",
                GEMM_WARP_TILES_DEFAULT,
                &GEMM_WARP_TILINGS,
                |t| {
                    // SAFETY: as this function's (the same launch with another block shape).
                    unsafe { self.gemm_with(client, t) }
                },
            )
        });
        unsafe { self.gemm_with(client, tiles) };
    }

    /// [`Self::gemm`] with `tiles` 16-row mma tiles per warp (4 or 8).
    ///
    /// # Safety
    /// As [`Self::gemm`].
    unsafe fn gemm_with<R: Runtime>(&self, client: &ComputeClient<R>, tiles: usize) {
        let block_rows = 32 * tiles;
        let kernel = self.kernel(
            "gemm_mma",
            &[("BL_WM_TILES", tiles)],
            || GEMM_SOURCE.to_string(),
            CubeDim::new_1d(256),
        );
        let count = CubeCount::Static(
            self.n.div_ceil(128) as u32,
            self.m.div_ceil(block_rows) as u32,
            1,
        );
        unsafe { kernel.launch(client, count, &self.buffers(), self.scalars()) };
    }

    /// The TMA tensor map of the activation codes for the warp-specialized wgmma kernel: `[M,
    /// 16 · blocks_k]` bytes, row-major; boxes of `rows` rows × 128 bytes in the 128-byte
    /// swizzle (the layout the kernel's wgmma descriptors read), zeros past the edges.
    fn activation_tensor_map(&self, rows: usize) -> TensorMapBinding {
        let row_bytes = 16 * self.blocks_k;
        let storage = StorageType::Scalar(ElemType::UInt(UIntKind::U8));
        TensorMapBinding {
            binding: self.codes.clone().binding(),
            map: TensorMapMeta {
                format: TensorMapFormat::Tiled(TiledArgs {
                    tile_size: Shape::from(vec![rows, 128]),
                }),
                metadata: Metadata::new(vec![self.m, row_bytes], vec![row_bytes, 1]),
                elem_stride: Strides::new(&[1, 1]),
                interleave: TensorMapInterleave::None,
                swizzle: TensorMapSwizzle::B128,
                prefetch: TensorMapPrefetch::None,
                oob_fill: OobFill::Zero,
                storage_ty: storage,
            },
        }
    }

    /// Tensor-core GEMM on Hopper's warpgroup MMA (`wgmma` m64nNk32 s8, weights as the register
    /// operand): blocks of 64 weight rows per warpgroup × 64-256 activation rows.
    ///
    /// # Safety
    /// As [`Self::gemv`]; sm 90 ([`crate::wgmma_available`]).
    pub(crate) unsafe fn wgmma_gemm<R: Runtime>(&self, client: &ComputeClient<R>) {
        let index = WGMMA_CONFIG.get().unwrap_or_else(|| {
            let sms = client.properties().hardware.num_streaming_multiprocessors;
            let k = 16 * self.blocks_k;
            let default = wgmma_default_config(self.m, self.n, k, sms.unwrap_or(132) as usize);
            let sms = sms.unwrap_or(0);
            if WGMMA_ABLATION.load(Ordering::Relaxed) != 0 {
                // Diagnosis: the ablated kernel is timed as asked, never tuned.
                return default;
            }
            let candidates = if self.m <= WGMMA_SMALL_M {
                WGMMA_TUNE_SMALL_M
            } else {
                WGMMA_TUNE
            };
            self.tuned(client, sms, "wgmma", default, candidates, |c| {
                // SAFETY: as this function's (the same launch with another block shape).
                unsafe { self.wgmma_gemm_with(client, c) }
            })
        });
        unsafe { self.wgmma_gemm_with(client, index) };
    }

    /// The configuration of this launch's problem (`default` first among `candidates`) as
    /// autotuned ([`crate::autotune`]): `default` where autotuning is off, else the cached
    /// choice, else each candidate timed through `launch` now (on this launch's own buffers:
    /// every candidate computes the same outputs). `sms`: the device's multiprocessors (0 if
    /// unknown), which the caller has already read.
    fn tuned<R: Runtime>(
        &self,
        client: &ComputeClient<R>,
        sms: u32,
        family: &'static str,
        default: usize,
        candidates: &[usize],
        launch: impl Fn(usize),
    ) -> usize {
        let key = TuneKey {
            family,
            sms,
            m_bucket: TuneKey::bucket(self.m),
            n: self.n,
            k: 16 * self.blocks_k,
            epilogue: (self.per_channel, self.has_bias, self.raw, self.out_dtype),
        };
        tuned_choice(key, default, candidates, |c| {
            time_launches(client, || launch(c))
        })
    }

    /// [`Self::wgmma_gemm`] with configuration `index` (1-based into [`WGMMA_CONFIGS`]).
    ///
    /// # Safety
    /// As [`Self::wgmma_gemm`].
    unsafe fn wgmma_gemm_with<R: Runtime>(&self, client: &ComputeClient<R>, index: usize) {
        let config = WGMMA_CONFIGS[index - 1];
        // Checked for every configuration by a unit test.
        debug_assert!(config.shared_bytes() <= SM90_MAX_DYNAMIC_SHARED);
        let (family, _) = config.kernel();
        let mut flags = config.flags();
        let ablation = WGMMA_ABLATION.load(Ordering::Relaxed);
        // (Every kernel but the shared-memory-fragment shapes, which have no such switches.)
        let ablated = ablation != 0 && !config.a_smem;
        let mut shared = config.shared_bytes();
        if ablated {
            flags.push(("BL_ABLATE", ablation));
            // One block per SM, as the kernel it is compared with: with less work it may need
            // fewer registers, and two blocks would fit (11 without its wgmma: 46).
            shared = SM90_MAX_DYNAMIC_SHARED;
        }
        let kernel = self
            .kernel(
                family,
                &flags,
                || config.body(),
                CubeDim::new_1d(config.threads() as u32),
            )
            .with_dynamic_shared(shared);
        let kernel = if config.tma {
            // Multicast: each block of a cluster loads half of every stage.
            kernel.with_tensor_map(self.activation_tensor_map(config.rows / config.cluster()))
        } else {
            kernel
        };
        // Whole clusters: a block past the last weight rows computes on zero words and stores
        // nothing.
        let blocks_n = self
            .n
            .div_ceil(config.weight_rows())
            .next_multiple_of(config.cluster());
        let blocks_m = self.m.div_ceil(config.rows);
        if config.stream_k {
            let sms = client.properties().hardware.num_streaming_multiprocessors;
            // The kernel's stages: 8 k-blocks of 16 inputs (BL_KB_STAGE).
            let ksteps = self.blocks_k.div_ceil(8);
            let sms = sms.unwrap_or(132) as usize;
            let tiles = blocks_n * blocks_m;
            let (whole, blocks, shared) = if config.whole_tiles {
                // Every block's run starts at a tile's first k-step (`BL_SK_WHOLE`).
                (0, sms.min(tiles), 0)
            } else {
                stream_k_split(tiles, ksteps, sms, config.stream_k_all)
            };
            // Two partial tiles per stream-K block (i32, one per consumer thread and
            // accumulator), and one counter per shared tile, zeroed; whole tiles need neither.
            let tile_ints = 128 * config.warpgroups * config.slabs * config.rows / 2;
            let partial_bytes = if shared > 0 {
                2 * blocks * tile_ints * 4
            } else {
                4
            };
            let partials = client.empty(partial_bytes);
            // Left zeroed by the previous stream-K launch on this thread's stream.
            let counters = zeroed_counters(client, shared);
            let mut buffers = self.buffers().to_vec();
            buffers.extend([&partials, &counters]);
            let mut scalars = self.scalars();
            scalars.extend([whole as u64, blocks as u64]);
            let count = CubeCount::Static((whole + blocks) as u32, 1, 1);
            unsafe { kernel.launch(client, count, &buffers, scalars) };
            return;
        }
        let count = CubeCount::Static(blocks_n as u32, blocks_m as u32, 1);
        // The wgmma kernels' parameters end with the two stream-K counts, unused here.
        let mut scalars = self.scalars();
        scalars.extend([0, 0]);
        unsafe { kernel.launch(client, count, &self.buffers(), scalars) };
    }
}
