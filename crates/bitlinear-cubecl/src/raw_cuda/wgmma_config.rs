//! One block shape of the Hopper `wgmma` GEMM (`gemm_wgmma.cu`, `gemm_wgmma_ws.cu`): what it
//! asks of the device (threads, shared memory) and the source it compiles to (its `#define`s
//! and the generated `wgmma` wrapper).

use super::sources::{WGMMA_COMMON_SOURCE, WGMMA_SOURCE, WGMMA_WS_SOURCE};

/// Block shape of the wgmma GEMM: warpgroups per block, 64-row weight slabs per warpgroup,
/// activation rows per block (the wgmma's N; accumulators per thread = slabs × rows / 2),
/// blocks per SM asked of the compiler (2 caps the registers at 128 per thread), where the
/// decoded weights go (registers, or shared memory with `a_smem`), whether the packed words
/// travel by cp.async with the activations (`w_cp`), the prefetch distance in stages, and the
/// producer warps of the warp-specialized kernel (`gemm_wgmma_ws.cu`; 0: `gemm_wgmma.cu`,
/// where every warp copies and a block barrier closes each stage).
#[derive(Debug, Clone, Copy)]
pub(super) struct WgmmaConfig {
    pub(super) warpgroups: usize,
    pub(super) slabs: usize,
    pub(super) rows: usize,
    pub(super) min_blocks: usize,
    pub(super) a_smem: bool,
    pub(super) w_cp: bool,
    pub(super) distance: usize,
    pub(super) producers: usize,
    /// The warp-specialized kernel's activations by TMA (one tensor-map copy per stage).
    pub(super) tma: bool,
    /// TMA multicast in clusters of 2 blocks along the weight rows (each loads half a stage).
    pub(super) mcast: bool,
    /// Stream-K (`BL_SK`, with `w_cp`): the last waves' tiles split by k-steps over one block
    /// per SM ([`super::wgmma_schedule::stream_k_split`]).
    pub(super) stream_k: bool,
    /// Stream-K over all tiles (`BL_SK_ALL`): one block per SM, each a run of whole tiles and
    /// at most two parts, so tiles end at different times on different SMs.
    pub(super) stream_k_all: bool,
    /// Register fragment sets (`BL_FRAGS`): 2, or 3 (with `w_cp`) to keep two wgmma groups in
    /// flight while the next stage is decoded.
    pub(super) frags: usize,
    /// With `stream_k_all`: whole tiles only (`BL_SK_WHOLE`), a persistent grid of one block
    /// per SM running its share of the tiles one after another, nothing split.
    pub(super) whole_tiles: bool,
}

impl WgmmaConfig {
    pub(super) const fn new(slabs: usize, rows: usize, min_blocks: usize) -> Self {
        Self {
            warpgroups: 2,
            slabs,
            rows,
            min_blocks,
            a_smem: false,
            w_cp: false,
            distance: 2,
            producers: 0,
            tma: false,
            mcast: false,
            stream_k: false,
            stream_k_all: false,
            frags: 2,
            whole_tiles: false,
        }
    }

    /// The same shape (with `w_cp`) with three fragment sets: stage s + 1 is decoded while
    /// stages s - 1 and s may both be in the tensor pipe (`BL_FRAGS`, `gemm_wgmma.cu` and
    /// `gemm_wgmma_ws.cu`).
    pub(super) const fn with_three_fragment_sets(mut self) -> Self {
        self.frags = 3;
        self
    }

    /// The same shape (with `w_cp`) in stream-K: whole tiles for all waves but the last full
    /// one, the rest split evenly by k-steps over one block per SM.
    pub(super) const fn with_stream_k(mut self) -> Self {
        self.stream_k = true;
        self
    }

    /// The same shape in stream-K over all its tiles (see `stream_k_all`).
    pub(super) const fn with_stream_k_all(mut self) -> Self {
        self.stream_k = true;
        self.stream_k_all = true;
        self
    }

    /// The same shape as a persistent grid: one block per SM (or per tile, if fewer) runs a
    /// run of whole tiles (stream-K's schedule over all tiles, its runs cut at tile bounds).
    pub(super) const fn persistent(mut self) -> Self {
        self.stream_k = true;
        self.stream_k_all = true;
        self.whole_tiles = true;
        self
    }

    /// The same TMA shape with each stage multicast from halves loaded by a 2-block cluster.
    pub(super) const fn with_multicast(mut self) -> Self {
        self.mcast = true;
        self
    }

    /// Blocks per cluster along the weight rows (the grid's x is a multiple of it).
    pub(super) const fn cluster(self) -> usize {
        if self.mcast {
            2
        } else {
            1
        }
    }

    /// The same warp-specialized shape with the activations loaded by TMA.
    pub(super) const fn with_tma(mut self) -> Self {
        self.tma = true;
        self
    }

    /// The warp-specialized kernel: `producers` warps copy into `stages` buffers of `rows`
    /// activation rows (and the words), two warpgroups of `slabs` × 64 weight rows consume them.
    pub(super) const fn warp_specialized(
        slabs: usize,
        rows: usize,
        stages: usize,
        producers: usize,
    ) -> Self {
        let mut c = Self::new(slabs, rows, 1);
        c.w_cp = true;
        c.distance = stages - 2;
        c.producers = producers;
        c
    }

    /// Threads per block: the consumer warpgroups, and in the warp-specialized kernel a
    /// producer warpgroup (of which `producers` warps copy).
    pub(super) const fn threads(self) -> usize {
        128 * self.warpgroups + if self.producers > 0 { 128 } else { 0 }
    }

    /// The same shape with the decoded weights in shared memory.
    pub(super) const fn weights_in_shared(mut self) -> Self {
        self.a_smem = true;
        self
    }

    /// The same shape with the packed words copied into shared memory with the activations,
    /// `distance` (≥ 3) stages ahead.
    pub(super) const fn words_copied(mut self, distance: usize) -> Self {
        self.w_cp = true;
        self.distance = distance;
        self
    }

    /// Weight rows per block.
    pub(super) const fn weight_rows(self) -> usize {
        64 * self.slabs * self.warpgroups
    }

    /// Shared-memory buffers: the prefetch distance plus the stages whose wgmma may still read
    /// theirs (the warp-specialized kernel: its stages).
    pub(super) const fn stages(self) -> usize {
        if self.producers > 0 {
            self.distance + 2
        } else {
            self.distance + self.frags
        }
    }

    /// Dynamic shared memory: the activation stages, two decoded weight tiles per warpgroup and
    /// slab with `a_smem`, the word stages with `w_cp` (512 bytes per 16-row tile), two
    /// mbarriers per stage in the warp-specialized kernel, and 1 KB to align them to the
    /// 128-byte swizzle's 1024 bytes.
    pub(super) const fn shared_bytes(self) -> usize {
        let weights = if self.a_smem {
            2 * self.warpgroups * self.slabs * 64 * 128
        } else {
            0
        };
        let words = if self.w_cp {
            self.stages() * self.weight_rows() / 16 * 512
        } else {
            0
        };
        let barriers = if self.producers > 0 {
            16 * self.stages()
        } else {
            0
        };
        // Stream-K's flag: this block counted last on a shared tile.
        let flag = if self.stream_k { 16 } else { 0 };
        self.stages() * self.rows * 128 + weights + words + barriers + flag + 1024
    }

    /// The kernel's own part of the source: the generated wgmma wrapper, the shared header and
    /// the kernel file.
    pub(super) fn body(self) -> String {
        let source = if self.producers > 0 {
            WGMMA_WS_SOURCE
        } else {
            WGMMA_SOURCE
        };
        format!(
            "{}{WGMMA_COMMON_SOURCE}{source}",
            wgmma_fn(self.rows, self.a_smem)
        )
    }

    /// The kernel family (its entry point's prefix) and source file.
    pub(super) fn kernel(self) -> (&'static str, &'static str) {
        if self.producers > 0 {
            ("gemm_wgmma_ws", "gemm_wgmma_ws.cu")
        } else {
            ("gemm_wgmma", "gemm_wgmma.cu")
        }
    }

    /// The `#define`s the kernel source is compiled with for this shape.
    pub(super) fn flags(self) -> Vec<(&'static str, usize)> {
        if self.producers > 0 {
            return vec![
                ("BL_WGS", self.warpgroups),
                ("BL_SLABS", self.slabs),
                ("BL_BM", self.rows),
                ("BL_MINB", self.min_blocks),
                ("BL_STAGES", self.stages()),
                ("BL_PRODUCERS", self.producers),
                ("BL_TMA", self.tma as usize),
                ("BL_MCAST", self.mcast as usize),
            ]
            .into_iter()
            .chain(self.stream_k.then_some(("BL_SK", 1)))
            .chain(self.stream_k_all.then_some(("BL_SK_ALL", 1)))
            .chain(self.whole_tiles.then_some(("BL_SK_WHOLE", 1)))
            .chain((self.frags != 2).then_some(("BL_FRAGS", self.frags)))
            .collect();
        }
        let mut flags = vec![
            ("BL_WGS", self.warpgroups),
            ("BL_SLABS", self.slabs),
            ("BL_BM", self.rows),
            ("BL_MINB", self.min_blocks),
            ("BL_A_SMEM", self.a_smem as usize),
            ("BL_W_CP", self.w_cp as usize),
            ("BL_DIST", self.distance),
        ];
        // Only where set: the other kernels keep their names.
        if self.stream_k {
            flags.push(("BL_SK", 1));
        }
        // The kernel is the same; the name (and the emulation's split) differ.
        if self.stream_k_all {
            flags.push(("BL_SK_ALL", 1));
        }
        if self.whole_tiles {
            flags.push(("BL_SK_WHOLE", 1));
        }
        if self.frags != 2 {
            flags.push(("BL_FRAGS", self.frags));
        }
        flags
    }
}

/// Dynamic shared memory one block may reserve on sm 90 (227 KB).
pub(super) const SM90_MAX_DYNAMIC_SHARED: usize = 227 * 1024;

/// The `bl_wgmma` device function of `gemm_wgmma.cu` for `n` activation rows, as one `#define`
/// line: `wgmma.mma_async` m64n`n`k32 s8·s8→s32 with the weight fragment in 4 registers (or,
/// with `a_smem`, through a second shared-memory descriptor), the activations through a
/// shared-memory descriptor, and its `n / 2` accumulators, which the instruction adds to
/// (scale-d = 1: they start at zero).
pub(super) fn wgmma_fn(n: usize, a_smem: bool) -> String {
    let acc = n / 2;
    let d: Vec<String> = (0..acc).map(|i| format!("%{i}")).collect();
    let outs: Vec<String> = (0..acc).map(|i| format!("\"+r\"(d[{i}])")).collect();
    // The A operand's parameter, its place in the instruction, and its input constraints; then
    // the scale and the activations' descriptor follow.
    let (a_param, a_operand, a_inputs, next) = if a_smem {
        (
            "unsigned long long desc_a".to_string(),
            format!("%{acc}"),
            "\"l\"(desc_a)".to_string(),
            acc + 1,
        )
    } else {
        (
            "const unsigned int (&a)[4]".to_string(),
            format!("{{%{}, %{}, %{}, %{}}}", acc, acc + 1, acc + 2, acc + 3),
            "\"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3])".to_string(),
            acc + 4,
        )
    };
    format!(
        "#define BL_WGMMA_FN static __device__ __forceinline__ void bl_wgmma(int (&d)[{acc}], \
         {a_param}, unsigned long long desc) {{ asm volatile(\"{{\\n.reg .pred p;\\nsetp.ne.b32 \
         p, %{scale}, 0;\\nwgmma.mma_async.sync.aligned.m64n{n}k32.s32.s8.s8 {{{d}}}, \
         {a_operand}, %{desc}, p;\\n}}\\n\" : {outs} : {a_inputs}, \"r\"(1), \"l\"(desc)); }}\n",
        d = d.join(", "),
        outs = outs.join(", "),
        scale = next,
        desc = next + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated wgmma wrapper names every accumulator once, then the 4 fragment registers,
    /// the scale and the descriptor, in operand order.
    #[test]
    fn wgmma_wrapper_lists_its_operands_in_order() {
        for n in [64, 128, 256] {
            for a_smem in [false, true] {
                let f = wgmma_fn(n, a_smem);
                let acc = n / 2;
                // The operands after the accumulators: the fragment's 4 registers or A's
                // descriptor, then the scale and B's descriptor.
                let after = if a_smem { acc + 1 } else { acc + 4 };
                assert!(f.starts_with("#define BL_WGMMA_FN "));
                assert_eq!(f.matches('\n').count(), 1, "one line");
                assert!(f.contains(&format!("m64n{n}k32.s32.s8.s8")));
                assert!(f.contains(&format!("int (&d)[{acc}]")));
                assert_eq!(f.matches("\"+r\"(d[").count(), acc);
                assert!(f.contains(&format!("\"+r\"(d[{}])", acc - 1)));
                assert!(f.contains("{%0, %1, "));
                assert!(f.contains(&format!("setp.ne.b32 p, %{after}, 0;")));
                assert!(f.contains(&format!(", %{}, p;", after + 1)));
                if a_smem {
                    assert!(f.contains(&format!("}}, %{acc}, %{}, p;", after + 1)));
                    assert!(f.contains("\"l\"(desc_a), \"r\"(1), \"l\"(desc)"));
                } else {
                    assert!(f.contains(&format!(
                        "}}, {{%{}, %{}, %{}, %{}}}, %{}, p;",
                        acc,
                        acc + 1,
                        acc + 2,
                        acc + 3,
                        after + 1
                    )));
                    assert!(f.contains("\"r\"(a[3]), \"r\"(1), \"l\"(desc)"));
                }
            }
        }
    }
}
