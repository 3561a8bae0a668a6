// What the two Hopper GEMMs (gemm_wgmma.cu, gemm_wgmma_ws.cu) share: their parameters, the
// PTX instructions they use (cp.async, mbarriers, wgmma), the packed-word decode and the
// shared-memory descriptor. The host prepends it to either kernel, after the generated
// `BL_WGMMA_FN` line; the CPU emulation (tests/wgmma_emu) includes it after its own models of
// the instructions.

#define BL_ACC (BL_BM / 2)  // accumulators per thread and 64-row slab: m64nBL_BMk32
// Register fragment sets (3: two wgmma groups may be in flight while the next stage is
// decoded; see gemm_wgmma.cu). Set by the host only where not 2.
#ifndef BL_FRAGS
#define BL_FRAGS 2
#endif

// The same header CubeCL includes in every kernel it generates (found through its include path).
#include <cuda_runtime.h>

#ifndef BL_DYNAMIC_SHARED
#define BL_DYNAMIC_SHARED(name) extern __shared__ __align__(1024) unsigned char name[]
#endif

struct BlGemmParams {
  unsigned long long m, n, blocks_k;
  // Stream-K (gemm_wgmma.cu, BL_SK): blocks of whole tiles, then stream-K blocks; else unused.
  unsigned long long sk_dp, sk_blocks;
};

// The instructions the CPU emulation of these kernels (tests/wgmma_emu) replaces with its own
// model of them; everything else compiles unchanged there.
#ifndef BL_HOST_EMULATION
static __device__ __forceinline__ unsigned int bl_smem(const void *p) {
  unsigned int r;
  asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
  return r;
}

// 16-byte async copy to a shared address; `bytes` = 0 writes zeros (rows or k-blocks past the
// end, so the padding contributes nothing whatever the weights there decode to).
static __device__ __forceinline__ void bl_cp16(unsigned int dst, const void *src,
                                               unsigned int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}

#define BL_CP_ASYNC_COMMIT() asm volatile("cp.async.commit_group;\n" ::)
#define BL_CP_ASYNC_WAIT(n) asm volatile("cp.async.wait_group %0;\n" ::"n"(n))
// Orders this thread's cp.async writes before the wgmma (async proxy) reads of them.
#define BL_FENCE_PROXY_ASYNC() asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory")
#define BL_WGMMA_FENCE() asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory")
#define BL_WGMMA_COMMIT() asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory")
#define BL_WGMMA_WAIT(n) asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(n) : "memory")
// Hands registers back to (dec) or takes them from (inc) the block's pool, for the whole
// warpgroup (all four warps execute it): the warp-specialized kernel's producers need few, its
// consumers all the fragment sets and accumulators. `n`: a multiple of 8 in 24..256.
#define BL_SETMAXNREG_DEC(n) asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(n))
#define BL_SETMAXNREG_INC(n) asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(n))
// A barrier of `n` threads (whole warps) on hardware barrier `id` (0 is __syncthreads'): the
// warp-specialized kernel's consumers meet there without the producers.
#define BL_NAMED_SYNC(id, n) asm volatile("bar.sync %0, %1;\n" ::"n"(id), "n"(n) : "memory")

// 16 bytes to a shared address (the decoded weights of BL_A_SMEM).
static __device__ __forceinline__ void bl_st16(unsigned int dst, unsigned int a, unsigned int b,
                                               unsigned int c, unsigned int d) {
  asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"r"(dst), "r"(a), "r"(b), "r"(c),
               "r"(d)
               : "memory");
}
// mbarriers (the warp-specialized kernel): `bar` is a shared address, 8-byte aligned.
static __device__ __forceinline__ void bl_mbar_init(unsigned int bar, unsigned int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}

// Makes this thread's mbarrier.init visible to the asynchronous units (TMA, cp.async arrivals)
// before the barrier is used.
#define BL_FENCE_MBAR_INIT() asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory")

// One arrival (release semantics: this thread's earlier shared-memory reads are done).
static __device__ __forceinline__ void bl_mbar_arrive(unsigned int bar) {
  asm volatile("{ .reg .b64 st; mbarrier.arrive.shared::cta.b64 st, [%0]; }\n" ::"r"(bar)
               : "memory");
}

// One arrival once every cp.async this thread issued so far has landed; counts against the
// barrier's expected arrivals (.noinc).
static __device__ __forceinline__ void bl_cp_mbar_arrive(unsigned int bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
}

// Waits until the phase of parity `parity` has completed (acquire semantics).
static __device__ __forceinline__ void bl_mbar_wait(unsigned int bar, unsigned int parity) {
  unsigned int done = 0;
  while (!done) {
    asm volatile(
        "{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, "
        "p; }\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  }
}

#define BL_CP_ASYNC_WAIT_ALL() asm volatile("cp.async.wait_all;\n" ::: "memory")

// One arrival that also expects `bytes` more of asynchronous (TMA) writes in this phase.
static __device__ __forceinline__ void bl_mbar_expect_tx(unsigned int bar, unsigned int bytes) {
  asm volatile("{ .reg .b64 st; mbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1; }\n" ::"r"(
                   bar),
               "r"(bytes)
               : "memory");
}

// The tensor map the host encodes (CUDA's opaque 128-byte CUtensorMap, passed by value as a
// grid constant; the same declaration CubeCL emits for its own TMA kernels).
typedef struct CUtensorMap_st {
  alignas(64) unsigned long long int opaque[16];
} CUtensorMap;

// Clusters (the multicast kernel): this block's rank in its cluster, a barrier of all the
// cluster's threads (release / acquire), and one arrival on the mbarrier at the same address in
// block `peer` of the cluster.
static __device__ __forceinline__ unsigned int bl_cluster_rank() {
  unsigned int r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(r));
  return r;
}
#define BL_CLUSTER_SYNC()                                                                    \
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" :: \
                   : "memory")
static __device__ __forceinline__ void bl_mbar_arrive_peer(unsigned int bar, unsigned int peer) {
  asm volatile(
      "{ .reg .b32 ra; mapa.shared::cluster.u32 ra, %0, %1; "
      "mbarrier.arrive.release.cluster.shared::cluster.b64 _, [ra]; }\n" ::"r"(bar),
      "r"(peer)
      : "memory");
}

// TMA: the box of `map` at coordinates (c0 innermost, c1) into shared memory at `dst`, counted
// in `bar`'s transaction bytes; the swizzle and the zero fill past the tensor's edges are the
// map's.
static __device__ __forceinline__ void bl_tma_load_2d(unsigned int dst, const CUtensorMap *map,
                                                      int c0, int c1, unsigned int bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], "
      "[%1, {%2, %3}], [%4];\n" ::"r"(dst),
      "l"(reinterpret_cast<unsigned long long>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}

// Brings the tensor map into the TMA unit's descriptor cache ahead of the first copy, which
// would otherwise wait for it (every block, each tile of a non-persistent grid).
static __device__ __forceinline__ void bl_tma_prefetch_map(const CUtensorMap *map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<unsigned long long>(map))
               : "memory");
}

// The same box into shared memory at `dst` of every block of the cluster in `mask`, counted in
// the mbarrier at `bar` of each.
static __device__ __forceinline__ void bl_tma_load_2d_mcast(unsigned int dst,
                                                            const CUtensorMap *map, int c0,
                                                            int c1, unsigned int bar,
                                                            unsigned short mask) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::"
      "cluster [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(dst),
      "l"(reinterpret_cast<unsigned long long>(map)), "r"(c0), "r"(c1), "r"(bar), "h"(mask)
      : "memory");
}
#endif

static __device__ __forceinline__ unsigned int bl_decode(unsigned int word, unsigned int t) {
  const unsigned int c = ((word >> (2 * t)) & 0x03030303u) | 0x80808080u;
  return (c - 0x01010101u) ^ 0x80808080u;
}

// The main loop both kernels share: step(s, a, a_next) for every stage s in [s, s_stop), where
// stage s's wgmma read fragment set `a` and stage s + 1 is decoded into `a_next`; the loop is
// unrolled by BL_FRAGS so each set keeps its own registers (a2 is unused with two sets).
template <typename Step, typename Frags>
static __device__ __forceinline__ void bl_steps(unsigned int s, unsigned int s_stop, Step &step,
                                                Frags &a0, Frags &a1, Frags &a2) {
#if BL_FRAGS == 3
  for (; s + 2 < s_stop; s += 3) {
    step(s, a0, a1);
    step(s + 1, a1, a2);
    step(s + 2, a2, a0);
  }
  if (s < s_stop) step(s, a0, a1);
  if (s + 1 < s_stop) step(s + 1, a1, a2);
#else
  (void)a2;
  for (; s + 1 < s_stop; s += 2) {
    step(s, a0, a1);
    step(s + 1, a1, a0);
  }
  if (s < s_stop) step(s, a0, a1);
#endif
}

// Matrix descriptor of a K-major operand in the 128-byte swizzle: start address / 16, leading
// byte offset unused by swizzled K-major layouts (1), 8-row groups 1024 bytes apart, base offset
// 0 (buffers are 1024-byte aligned), swizzle mode 1 (128 B).
static __device__ __forceinline__ unsigned long long bl_desc(unsigned int addr) {
  return (unsigned long long)((addr & 0x3FFFFu) >> 4) | (1ull << 16) |
         ((unsigned long long)(1024 >> 4) << 32) | (1ull << 62);
}

// Pins the accumulators in their registers around wgmma (no copies the compiler could move
// between an asynchronous wgmma and its wait).
static __device__ __forceinline__ void bl_fence_acc(int (&d)[BL_ACC]) {
#pragma unroll
  for (int i = 0; i < BL_ACC; ++i) asm volatile("" : "+r"(d[i])::"memory");
}

// The same for a fragment set, which an in-flight wgmma reads asynchronously.
static __device__ __forceinline__ void bl_fence_frag(unsigned int (&a)[4][4]) {
#pragma unroll
  for (int j = 0; j < 4; ++j)
#pragma unroll
    for (int r = 0; r < 4; ++r) asm volatile("" : "+r"(a[j][r])::"memory");
}

#ifndef BL_XS_CHUNK
#define BL_XS_CHUNK 8
#endif

// The stores of bl_store_acc (below), each output's bounds checked (kChecked) or not (a lane
// whose outputs all exist). The activation scales of the lane's rows m_lane + 8 q + r come
// BL_XS_CHUNK values of q (16 loads) at a time: each chunk's loads are issued together
// (clamped to the last row, so in bounds; rows past M are never stored), one round trip per
// chunk. Loaded one by one behind the bounds check, each was a round trip of its own: 64 in a
// row per 256-row tile in the SASS of session 10's build, at the end of every tile, while the
// tensor pipe idled. (16 loads at once is the most no configuration spills for: 32 spill,
// ptxas 13.0.)
template <bool kChecked>
static __device__ __forceinline__ void bl_store_acc_rows(const int (&acc)[BL_SLABS][BL_ACC],
                                                         unsigned int n_lane, unsigned int m_lane,
                                                         unsigned int M, unsigned int N,
                                                         bl_out_t *out, int *out_raw,
                                                         const float *x_scales,
                                                         const BlEpi (&e)[BL_SLABS][2]) {
#pragma unroll
  for (int q0 = 0; q0 < BL_ACC / 4; q0 += BL_XS_CHUNK) {
    float xs[BL_XS_CHUNK][2];
#pragma unroll
    for (int q = 0; q < BL_XS_CHUNK; ++q)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const unsigned int gm = m_lane + (q0 + q) * 8 + r;
        xs[q][r] = q0 + q < BL_ACC / 4 ? x_scales[!kChecked || gm < M ? gm : M - 1] : 0.0f;
      }
#pragma unroll
    for (int q = 0; q < BL_XS_CHUNK; ++q)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const unsigned int gm = m_lane + (q0 + q) * 8 + r;
        if (q0 + q >= BL_ACC / 4 || (kChecked && gm >= M)) continue;
#pragma unroll
        for (int sl = 0; sl < BL_SLABS; ++sl)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const unsigned int gn = n_lane + sl * 64 + h * 8;
            if (!kChecked || gn < N) {
              bl_store_with(out, out_raw, (size_t)gm * N + gn, acc[sl][4 * (q0 + q) + 2 * h + r],
                            xs[q][r], e[sl][h]);
            }
          }
      }
  }
}

// The output of a lane's accumulators, slab by slab: element i of slab sl is weight row
// n_lane + 64 sl + 8 ((i / 2) % 2) (n_lane: the lane's row in slab 0) and activation row
// m_lane + 8 (i / 4) + i % 2 (m_lane: the block's first row + 2t); rows past M or N are skipped.
// A lane's elements share 2 weight rows per slab and pairs of activation rows, so their scales
// and biases are loaded once each (4 per slab, 2 per 4 elements), not once per element: the
// bounds checks kept the compiler from sharing them (3 loads per output in the SASS of session 8).
static __device__ __forceinline__ void bl_store_acc(const int (&acc)[BL_SLABS][BL_ACC],
                                                    unsigned int n_lane, unsigned int m_lane,
                                                    unsigned int M, unsigned int N,
                                                    bl_out_t *out, int *out_raw,
                                                    const float *x_scales,
                                                    const float *w_scales,
                                                    const bl_out_t *bias) {
  BlEpi e[BL_SLABS][2];
#pragma unroll
  for (int sl = 0; sl < BL_SLABS; ++sl)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const unsigned int gn = n_lane + sl * 64 + h * 8;
      e[sl][h] = gn < N ? bl_epi_load(w_scales, bias, gn) : BlEpi{0.0f, 0.0f};
    }
  // Every lane of a tile inside the output (all tiles but those on its last rows or columns)
  // stores without a check per output: with them, session 11's SASS spent ~18 instructions per
  // output, a branch around each store; without, the addresses share one row base.
  const bool inside = m_lane + 8 * (BL_ACC / 4 - 1) + 1 < M && n_lane + 64 * (BL_SLABS - 1) + 8 < N;
  if (inside) {
    bl_store_acc_rows<false>(acc, n_lane, m_lane, M, N, out, out_raw, x_scales, e);
  } else {
    bl_store_acc_rows<true>(acc, n_lane, m_lane, M, N, out, out_raw, x_scales, e);
  }
}

#if defined(BL_SK) && BL_SK
#ifndef BL_SK_WHOLE
#define BL_SK_WHOLE 0
#endif
// Stream-K (BL_SK; the split is explained in gemm_wgmma.cu's header): the first `dp` blocks take
// tile blockIdx.x whole; stream-K block j = blockIdx.x - dp takes units [start(j), start(j + 1))
// of the units (tile - dp) * ks + k-step of the other tiles, and owner(u) holds unit u.
// BL_SK_WHOLE (with BL_SK_ALL): each block's units start at a tile's first, so every block runs
// whole tiles only (a persistent grid: no partials; the warp-specialized kernel's producers
// fill the next tile's stages while the consumers store this one's).
struct BlSkSplit {
  unsigned long long ks, units, sk, dp;
  __device__ unsigned long long start(unsigned long long j) const {
#if BL_SK_WHOLE
    return j * (units / ks) / sk * ks;
#else
    return j * units / sk;
#endif
  }
  __device__ unsigned long long owner(unsigned long long u) const {
    return ((u + 1) * sk - 1) / units;
  }
};

static __device__ __forceinline__ BlSkSplit bl_sk_split(const BlGemmParams &p,
                                                        unsigned int tiles_all,
                                                        unsigned int ksteps) {
  return BlSkSplit{ksteps, (unsigned long long)(tiles_all - p.sk_dp) * ksteps, p.sk_blocks,
                   p.sk_dp};
}

// Calls visit(tile, s0, s1, first) for each segment of block `b` in order: a tile and the
// k-steps [s0, s1) of it that the block computes; `first`: the block's first segment.
template <typename Visit>
static __device__ __forceinline__ void bl_sk_segments(const BlSkSplit &sp, unsigned int b,
                                                      Visit &visit) {
  if (b < sp.dp) {
    visit(b, 0u, (unsigned int)sp.ks, true);
    return;
  }
  const unsigned long long j = b - sp.dp, u0 = sp.start(j), u1 = sp.start(j + 1);
  for (unsigned long long u = u0; u < u1;) {
    const unsigned int lt = (unsigned int)(u / sp.ks), s0 = (unsigned int)(u % sp.ks);
    const unsigned int s1 = u1 - u < sp.ks - s0 ? (unsigned int)(s0 + (u1 - u)) : (unsigned int)sp.ks;
    visit((unsigned int)(sp.dp + lt), s0, s1, u == u0);
    u += s1 - s0;
  }
}

// The end of a segment of block `b`: a whole tile goes out at once (store()); a part of one is
// stored to a partial slot (2j for block j's first segment, 2j + 1 for its last), and the
// block counts itself on the tile's counter; the block that counts last adds the others'
// partials (integers: exact, in any order), stores the tile and sets its counter back to zero
// (the counters start and end every launch at zero). Nobody waits for anybody. The
// `threads` threads tid < threads that hold accumulators take part; sync() is their barrier;
// `last` is a shared flag, written again only after the next segment's barriers.
template <typename Sync, typename Store>
static __device__ __forceinline__ void bl_sk_finish(
    int (&acc)[BL_SLABS][BL_ACC], const BlSkSplit &sp, unsigned int b, unsigned int tile,
    unsigned int s0, unsigned int s1, bool first, int *partials, unsigned int *counters,
    volatile unsigned int *last, unsigned int tid, unsigned int threads, Sync &sync,
    Store &store) {
  // One call of store() (the epilogue is long: inlined once, not twice).
  bool store_tile = s0 == 0 && s1 == sp.ks;
  if (!store_tile) {
    const unsigned long long j = b - sp.dp, lt = tile - sp.dp, ks = sp.ks;
    const size_t part_ints = (size_t)threads * BL_SLABS * BL_ACC;
    // Element (sl, i) of thread tid at (sl * BL_ACC + i) * threads + tid: coalesced.
    int *mine = partials + (2 * j + (first ? 0 : 1)) * part_ints + tid;
#pragma unroll
    for (int sl = 0; sl < BL_SLABS; ++sl)
#pragma unroll
      for (int i = 0; i < BL_ACC; ++i) mine[(sl * BL_ACC + i) * threads] = acc[sl][i];
    // Partials visible device-wide before the count that publishes them.
    __threadfence();
    sync();
    const unsigned long long j0 = sp.owner(lt * ks), j1 = sp.owner(lt * ks + ks - 1);
    if (tid == 0) *last = atomicAdd(&counters[lt], 1u) == (unsigned int)(j1 - j0);
    sync();
    store_tile = *last;
    if (store_tile) {
      // Every other block of the tile has counted: the counter goes back to zero, so the host
      // can hand the same counters to its next launch without zeroing them (an upload, a copy
      // in the stream ahead of every stream-K launch).
      if (tid == 0) counters[lt] = 0u;
      __threadfence();
      for (unsigned long long o = j0; o <= j1; ++o) {
        if (o == j) continue;
        const unsigned long long ostart = sp.start(o), seg = ostart > lt * ks ? ostart : lt * ks;
        const int *other = partials + (2 * o + (seg == ostart ? 0 : 1)) * part_ints + tid;
#pragma unroll
        for (int sl = 0; sl < BL_SLABS; ++sl)
#pragma unroll
          for (int i = 0; i < BL_ACC; ++i)
            acc[sl][i] += __ldcg(other + (sl * BL_ACC + i) * threads);
      }
    }
  }
  if (store_tile) store();
}
#endif
