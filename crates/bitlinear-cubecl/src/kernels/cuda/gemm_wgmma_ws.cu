// Packed-ternary GEMM on Hopper's wgmma, warp-specialized (CUDA sm_90a): the same tile, operand
// layouts and decode as gemm_wgmma.cu (read its header first), with the copies moved off the
// warps that issue the wgmma. Prepended by the host (src/raw_cuda/wgmma_config.rs): BL_ENTRY, BL_GRAN,
// BL_BIAS, BL_RAW, BL_WGS (consumer warpgroups, 2), BL_SLABS (64-row weight slabs per warpgroup, 1 or 2), BL_BM (activation rows per
// block: 128 or 256), BL_MINB (1), BL_STAGES (shared-memory stages), BL_PRODUCERS (producer
// warps, 1 or 2), BL_TMA (1: the activations by TMA, see below), BL_MCAST (1: TMA multicast in
// a 2-block cluster, see below), BL_SK / BL_SK_ALL (stream-K, see below), `bl_wgmma`, then
// epilogue.cuh and wgmma_common.cuh.
//
// Measured on an H100 (session 6, BENCHMARKS.md): exact, but with cp.async producers 25-50%
// slower than gemm_wgmma.cu with the words copied 4 stages ahead; with TMA (BL_TMA) level with
// it; multicast slower again. All of those ran with 168 registers per thread, and ptxas had
// serialized their wgmma (found in session 8; fixed with setmaxnreg, below): not measured since.
//
// Why: gemm_wgmma.cu keeps the tensor pipe 42% busy on an H100 with nothing else saturated
// (BENCHMARKS.md); every warp there copies, decodes and issues, and a block barrier per stage
// makes each stage wait for the slowest warp. Here:
// - BL_PRODUCERS warps (after the consumer warpgroups, so those stay warpgroup-aligned) only
//   copy: each stage's activations (BL_BM rows x 128 bytes, 128-byte swizzle, zeros past the
//   ends) and the block's packed words (512 bytes per 16-row tile), by cp.async, into one of
//   BL_STAGES buffers, then signal the stage's `full` mbarrier with cp.async.mbarrier.arrive
//   (it fires when their copies have landed). Before refilling a buffer they wait for its
//   `empty` mbarrier.
// - The consumer warpgroups never meet at a block barrier: at step s each issues stage s's
//   wgmma (fragments decoded during step s - 1), waits for stage s - 1's wgmma, releases that
//   stage's buffer (one arrival per warp on `empty`), then waits for stage s + 1's `full` and
//   decodes its words from shared memory into the fragment set stage s - 1 used.
// - BL_TMA = 1: one producer lane loads each stage's activations with a single TMA copy (the
//   host's tensor map over the [M, 16 * blocks_k] codes: a BL_BM x 128-byte box, 128-byte
//   swizzle, zeros past the edges), counted in `full`'s transaction bytes; the words stay
//   cp.async. Far fewer producer instructions (1 instead of BL_BM * 8 / 32 copies per lane).
// - BL_MCAST = 1 (with BL_TMA): blocks pair up in clusters of 2 along the weight rows (the same
//   activation rows); each block's TMA loads half of every activation stage (BL_BM / 2 rows) and
//   multicasts it into both blocks' shared memory, so each block reads half the activations
//   from L2. A buffer is refilled only when the consumers of both blocks released it: they
//   arrive on the `empty` mbarriers of both (the peer's through its cluster address). The
//   blocks meet at a cluster barrier after initializing the mbarriers and before exiting (the
//   peer may still arrive on this block's barriers until then).
// - BL_FRAGS = 3 (not measured yet): three fragment sets, as in gemm_wgmma.cu: step s waits
//   for stage s - 2's wgmma only, releases that stage's buffer and decodes stage s + 1 into the
//   set it used, so two groups stay in the tensor pipe during the decode.
// - BL_SK = 1 (not measured yet; not with BL_MCAST): stream-K as in gemm_wgmma.cu (the same
//   split and fix-up, wgmma_common.cuh). Producers and consumers walk the block's segments in
//   the same order, counting stages across them, so the producers fill the next segment's
//   stages while the consumers store this one's outputs; the consumers release a segment's
//   last stages when it ends, and meet on named barrier 1 (without the producers) for the
//   fix-up.
// - BL_ABLATE (the GPU check's diagnosis only: the outputs are wrong by design), a bit mask of
//   the work left out, to see what bounds the kernel: 1, the copies (the producers only arrive,
//   the consumers multiply whatever the buffers hold); 2, the wgmma; 4, the decode (the
//   fragments are the packed words as they are). The mbarrier hand-offs always stay.
// Phases: stage s (counted over all of a block's tiles) uses buffer s % BL_STAGES in its
// (s / BL_STAGES)-th round, so `full` is awaited with parity (s / BL_STAGES) & 1, and the
// refill for stage s waits for `empty`'s round (s / BL_STAGES) - 1.

#ifndef BL_TMA
#define BL_TMA 0
#endif
#define BL_CONSUMERS (128 * BL_WGS)
// The producer warps come as a whole warpgroup (of which BL_PRODUCERS warps copy; the others
// leave at once): registers are shared out per warpgroup. ptxas sizes a block of 288 threads as
// 384 and gives every thread 168 registers, too few for 256-row consumers: it serialized their
// wgmma (C7512) and spilled (scripts/ptxas_report.py). With setmaxnreg the producer warpgroup
// drops to BL_PRODUCER_REGS and the consumers take what that frees, no more (an increase the
// block's released registers cannot cover would wait forever): 232 at 40 (TMA producers, one
// or two slabs, spill nothing at 40), 224 at 48 (cp.async producers, which compute every
// activation copy's address, spill nothing at 48, 16-24 bytes at 40). Before session 14 the
// word copies held one address each across the loop: two-slab producers then spilled 120 bytes
// at 40, cp.async ones 24 at 64, and at 64 the consumers' 216 registers were too few for two
// slabs (ptxas serialized their wgmma, C7512). ptxas 13.0, scripts/ptxas_report.py.
#define BL_THREADS (BL_CONSUMERS + 128)
#ifndef BL_PRODUCER_REGS
#if BL_TMA
#define BL_PRODUCER_REGS 40
#else
#define BL_PRODUCER_REGS 48
#endif
#endif
#define BL_LAUNCH_REGS (65536 / BL_THREADS / 8 * 8)  // every thread's at launch: 168
#define BL_CONSUMER_REGS \
  ((BL_LAUNCH_REGS + (BL_LAUNCH_REGS - BL_PRODUCER_REGS) * 128 / BL_CONSUMERS) / 8 * 8)
#if BL_CONSUMER_REGS > 256 || BL_PRODUCER_REGS < 24 || BL_PRODUCER_REGS % 8
#error "gemm_wgmma_ws: register split out of setmaxnreg's range"
#endif
#define BL_KB_STAGE 8  // k-blocks of 16 inputs per stage: 128 bytes of each activation row
#define BL_TILES (BL_WGS * BL_SLABS * 4)  // 16-row packed tiles per block
#define BL_X_BYTES (BL_BM * 128)           // activations of one stage
#define BL_W_BYTES (BL_TILES * 512)        // packed words of one stage
#define BL_P_LANES (32 * BL_PRODUCERS)
#define BL_X_COPIES (BL_BM * 8 / BL_P_LANES)       // 16-byte activation copies per producer lane
#define BL_W_COPIES (BL_TILES * 32 / BL_P_LANES)   // and of words

#ifndef BL_MCAST
#define BL_MCAST 0
#endif
#ifndef BL_ABLATE
#define BL_ABLATE 0
#endif
#if BL_FRAGS != 2 && BL_FRAGS != 3
#error "gemm_wgmma_ws: BL_FRAGS is 2 or 3"
#endif
#if BL_MCAST && !BL_TMA
#error "gemm_wgmma_ws: BL_MCAST needs BL_TMA"
#endif
#ifndef BL_SK
#define BL_SK 0
#endif
#if BL_SK && BL_MCAST
#error "gemm_wgmma_ws: stream-K without multicast (a cluster's blocks would need the same segments)"
#endif
#if BL_MCAST
#define BL_CLUSTER __cluster_dims__(2, 1, 1)
#define BL_PEERS 2  // blocks whose consumers release each buffer
#else
#define BL_CLUSTER
#define BL_PEERS 1
#endif

#if (BL_SLABS != 1 && BL_SLABS != 2) || (BL_BM != 128 && BL_BM != 256) || (BL_PRODUCERS != 1 && BL_PRODUCERS != 2)
#error "gemm_wgmma_ws: 1 or 2 slabs per warpgroup, 128 or 256 activation rows, 1 or 2 producer warps"
#endif

BL_WGMMA_FN

extern "C" __global__ void BL_CLUSTER __launch_bounds__(BL_THREADS, BL_MINB) BL_ENTRY(
#if BL_TMA
    // CubeCL passes a tensor map, then its tensor's buffer, ahead of the other buffers.
    const __grid_constant__ CUtensorMap xmap, const unsigned char *__restrict__ xmap_tensor,
#endif
    const unsigned char *__restrict__ codes, const unsigned int *__restrict__ packed,
    const float *__restrict__ x_scales, const float *__restrict__ w_scales,
    const bl_out_t *__restrict__ bias, bl_out_t *__restrict__ out, int *__restrict__ out_raw,
#if BL_SK
    // Stream-K: 2 partial tiles per stream-K block, and one counter per tile they share (zero
    // at the launch, left zero by it).
    int *__restrict__ sk_partials, unsigned int *__restrict__ sk_counters,
#endif
    const BlGemmParams p) {
  // Layout: BL_STAGES activation buffers (1024-byte aligned, for the swizzle), BL_STAGES word
  // buffers, then the `full` and `empty` mbarriers (and with BL_SK a flag); the host reserves
  // 1 KB more for the alignment.
  BL_DYNAMIC_SHARED(bl_dyn);
  const unsigned int sbase = (bl_smem(bl_dyn) + 1023u) & ~1023u;
  const unsigned int wbase = sbase + BL_STAGES * BL_X_BYTES;
  const unsigned int full = wbase + BL_STAGES * BL_W_BYTES, empty = full + 8 * BL_STAGES;

  const unsigned int M = (unsigned int)p.m, N = (unsigned int)p.n;
  const unsigned int BK = (unsigned int)p.blocks_k;
  const size_t kp = (size_t)BK * 16;  // bytes per activation row
  const unsigned int tiles_n = (N + 15) / 16;
  const unsigned int tid = threadIdx.x;
  const unsigned int ksteps = (BK + BL_KB_STAGE - 1) / BL_KB_STAGE;
#if BL_SK
  // A 1-D grid: tile t is block tile (t % tiles_x, t / tiles_x).
  const unsigned int tiles_x = (N + 64 * BL_SLABS * BL_WGS - 1) / (64 * BL_SLABS * BL_WGS);
  const BlSkSplit sp = bl_sk_split(p, tiles_x * ((M + BL_BM - 1) / BL_BM), ksteps);
  auto tile_n = [&](unsigned int tile) { return (tile % tiles_x) * (64 * BL_SLABS * BL_WGS); };
  auto tile_m = [&](unsigned int tile) { return (tile / tiles_x) * BL_BM; };
#else
  const unsigned int n_base = blockIdx.x * (64 * BL_SLABS * BL_WGS), m_base = blockIdx.y * BL_BM;
#endif

  if (tid == 0) {
    for (unsigned int b = 0; b < BL_STAGES; ++b) {
      bl_mbar_init(full + 8 * b, BL_P_LANES + BL_TMA);  // every producer lane (+ the TMA's)
      bl_mbar_init(empty + 8 * b, BL_PEERS * BL_CONSUMERS / 32);  // every consumer warp
    }
    BL_FENCE_MBAR_INIT();
  }
#if BL_MCAST
  // Both blocks' barriers exist before either multicasts into the other or arrives on it.
  const unsigned int rank = bl_cluster_rank(), peer = rank ^ 1u;
  BL_CLUSTER_SYNC();
#else
  __syncthreads();
#endif

  if (tid >= BL_CONSUMERS) {
    BL_SETMAXNREG_DEC(BL_PRODUCER_REGS);
    if (tid >= BL_CONSUMERS + BL_P_LANES) {
      // The producer warpgroup's idle warps.
#if BL_MCAST
      BL_CLUSTER_SYNC();  // the exit barrier below counts every thread of the cluster
#endif
      return;
    }
    // Producer lane l: chunk c = l % 8 of activation rows l / 8 + (BL_P_LANES / 8) i, and
    // 16-byte chunk l of each tile's 512 stage bytes, then word copies for the next tiles.
    const unsigned int l = tid - BL_CONSUMERS, c = l & 7, r0 = l >> 3;
#if BL_TMA
    (void)xmap_tensor, (void)c, (void)r0;
    if (l == 0) bl_tma_prefetch_map(&xmap);
#else
    const unsigned int rstep = BL_P_LANES / 8;  // 4 or 8 rows: the swizzle of row r0 + rstep i
#endif
    // Stage gs (counted over all of the block's tiles) goes to buffer gs % BL_STAGES in its
    // (gs / BL_STAGES)-th round.
    unsigned int gs = 0;
    // K-steps [s0, s1) of the tile at weight row nb, activation row mb.
    auto produce = [&](unsigned int nb, unsigned int mb, unsigned int s0, unsigned int s1) {
#if !BL_TMA
      const unsigned char *xsrc = codes + (size_t)(mb + r0) * kp + c * 16;
      // Rows r0 + rstep i that exist: i < rows_here.
      const unsigned int rows_here = mb + r0 < M ? (M - mb - r0 + rstep - 1) / rstep : 0;
#else
      (void)nb;
#endif
      for (unsigned int s = s0; s < s1; ++s, ++gs) {
        const unsigned int b = gs % BL_STAGES;
        if (gs >= BL_STAGES) bl_mbar_wait(empty + 8 * b, ((gs / BL_STAGES) - 1) & 1);
        const unsigned int xbuf = sbase + b * BL_X_BYTES;
#if BL_ABLATE & 1
        // No copies: every arrival `full` counts, the TMA's too, with no bytes to wait for.
        (void)xbuf;
        if (BL_TMA && l == 0) bl_mbar_arrive(full + 8 * b);
        bl_mbar_arrive(full + 8 * b);
        continue;
#endif
#if BL_MCAST
        // This block's half of the stage, into both blocks; the barrier expects both halves.
        if (l == 0) {
          bl_mbar_expect_tx(full + 8 * b, BL_X_BYTES);
          bl_tma_load_2d_mcast(xbuf + rank * (BL_X_BYTES / 2), &xmap, (int)(s * BL_KB_STAGE * 16),
                               (int)(mb + rank * (BL_BM / 2)), full + 8 * b, 3);
        }
#elif BL_TMA
        if (l == 0) {
          bl_mbar_expect_tx(full + 8 * b, BL_X_BYTES);
          bl_tma_load_2d(xbuf, &xmap, (int)(s * BL_KB_STAGE * 16), (int)mb, full + 8 * b);
        }
#else
        const bool k_ok = s * BL_KB_STAGE + c < BK;
        const unsigned char *src = xsrc + (size_t)s * (BL_KB_STAGE * 16);
#pragma unroll 8
        for (unsigned int i = 0; i < BL_X_COPIES; ++i) {
          const unsigned int r = r0 + rstep * i;
          const bool ok = k_ok && i < rows_here;
          bl_cp16(xbuf + r * 128 + ((c ^ (r & 7)) << 4), ok ? src + (size_t)i * rstep * kp : codes,
                  ok ? 16u : 0u);
        }
#endif
        // Copy i of lane l: 16-byte chunk l % 4 of k-block s * 8 + (l / 4) % 8 of tile
        // nb / 16 + l / 32 + (BL_P_LANES / 32) i, to byte 16 (l + BL_P_LANES i) of the stage's
        // words. One source pointer steps through the tiles (a fixed stride): with an address
        // per copy held across the loop, a two-slab producer spilled (ptxas 13.0).
        const unsigned int kbg = s * BL_KB_STAGE + ((l >> 2) & 7);
        const unsigned int *wsrc = packed + ((size_t)(nb / 16 + (l >> 5)) * BK + kbg) * 16 + (l & 3) * 4;
        unsigned int wdst = wbase + b * BL_W_BYTES + l * 16;
#pragma unroll
        for (unsigned int i = 0; i < BL_W_COPIES; ++i) {
          const bool ok = nb / 16 + (l >> 5) + (BL_P_LANES / 32) * i < tiles_n && kbg < BK;
          bl_cp16(wdst, ok ? wsrc : packed, ok ? 16u : 0u);
          wsrc += (size_t)(BL_P_LANES / 32) * BK * 16;
          wdst += BL_P_LANES * 16;
        }
        bl_cp_mbar_arrive(full + 8 * b);
      }
    };
#if BL_SK
    auto visit = [&](unsigned int tile, unsigned int s0, unsigned int s1, bool) {
      produce(tile_n(tile), tile_m(tile), s0, s1);
    };
    bl_sk_segments(sp, blockIdx.x, visit);
#else
    produce(n_base, m_base, 0, ksteps);
#endif
    // Nothing may be in flight when the block's shared memory goes to the next block.
    BL_CP_ASYNC_WAIT_ALL();
#if BL_MCAST
    BL_CLUSTER_SYNC();
#endif
    return;
  }

  BL_SETMAXNREG_INC(BL_CONSUMER_REGS);
  // Consumers: warpgroup wg, warp w of it, lane (g, t) as in gemm_wgmma.cu.
  const unsigned int wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
  const unsigned int g = lane >> 2, t = lane & 3;
  // This warp's 16-row tile of slab sl in the block: (wg * BL_SLABS + sl) * 4 + warp.
  const unsigned int tl0 = wg * BL_SLABS * 4 + warp;
  const unsigned int *words = (const unsigned int *)(bl_dyn + (wbase - bl_smem(bl_dyn)));

  int acc[BL_SLABS][BL_ACC];
  unsigned int a0[BL_SLABS][4][4], a1[BL_SLABS][4][4], a2[BL_SLABS][4][4];  // a2: BL_FRAGS 3

  // Pins the accumulators and a fragment set in their registers around the wgmma.
  auto fence_regs = [&](unsigned int (&a)[BL_SLABS][4][4]) {
#pragma unroll
    for (int sl = 0; sl < BL_SLABS; ++sl) {
      bl_fence_acc(acc[sl]);
      bl_fence_frag(a[sl]);
    }
  };

  // Waits for stage s's copies, then decodes this lane's words of it (rows g and g + 8 of
  // k-blocks 2j and 2j + 1) into `a`, which no wgmma in flight may read.
  auto decode = [&](unsigned int s, unsigned int (&a)[BL_SLABS][4][4]) {
    const unsigned int b = s % BL_STAGES;
    bl_mbar_wait(full + 8 * b, (s / BL_STAGES) & 1);
#pragma unroll
    for (int sl = 0; sl < BL_SLABS; ++sl) {
      const unsigned int *w = words + b * (BL_W_BYTES / 4) + (tl0 + 4 * sl) * 128 + g;
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
#if BL_ABLATE & 4
          a[sl][j][2 * h] = w[(2 * j + h) * 16];
          a[sl][j][2 * h + 1] = w[(2 * j + h) * 16 + 8];
#else
          a[sl][j][2 * h] = bl_decode(w[(2 * j + h) * 16], t);
          a[sl][j][2 * h + 1] = bl_decode(w[(2 * j + h) * 16 + 8], t);
#endif
        }
    }
  };

  // This warp's arrival on the `empty` barrier of stage s's buffer: its wgmma are done.
  auto release = [&](unsigned int s) {
    if (lane == 0) {
      bl_mbar_arrive(empty + 8 * (s % BL_STAGES));
#if BL_MCAST
      bl_mbar_arrive_peer(empty + 8 * (s % BL_STAGES), peer);
#endif
    }
  };

  // Stages s0 <= s < s1 (counted over all of the block's tiles, as the producers count them)
  // into the accumulators, from zero; at the end every wgmma is done.
  auto consume = [&](unsigned int s0, unsigned int s1) {
#pragma unroll
    for (int sl = 0; sl < BL_SLABS; ++sl)
#pragma unroll
      for (int i = 0; i < BL_ACC; ++i) acc[sl][i] = 0;
    // `a_next`: the set stage s + 1 is decoded into, free once stage s + 1 - BL_FRAGS is done.
    auto step = [&](unsigned int s, unsigned int (&a)[BL_SLABS][4][4],
                    unsigned int (&a_next)[BL_SLABS][4][4]) {
      fence_regs(a);
      BL_WGMMA_FENCE();
      const unsigned int xbuf = sbase + (s % BL_STAGES) * BL_X_BYTES;
#if !(BL_ABLATE & 2)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int sl = 0; sl < BL_SLABS; ++sl) bl_wgmma(acc[sl], a[sl][j], bl_desc(xbuf + 32 * j));
#else
      (void)xbuf;
#endif
      BL_WGMMA_COMMIT();
      BL_WGMMA_WAIT(BL_FRAGS - 1);
      // Stage s + 1 - BL_FRAGS's wgmma are done (this warpgroup's: the other one releases its
      // own): the fragment set they read is free, and so, for this warp, is that stage's buffer.
      fence_regs(a_next);
      if (s + 1 >= s0 + BL_FRAGS) release(s + 1 - BL_FRAGS);
      if (s + 1 < s1) decode(s + 1, a_next);
    };
    decode(s0, a0);
    bl_steps(s0, s1, step, a0, a1, a2);
    BL_WGMMA_WAIT(0);
#pragma unroll
    for (int sl = 0; sl < BL_SLABS; ++sl) bl_fence_acc(acc[sl]);
  };
  // The accumulators as the outputs of the tile at weight row nb, activation row mb.
  auto store_tile = [&](unsigned int nb, unsigned int mb) {
    bl_store_acc(acc, nb + wg * BL_SLABS * 64 + warp * 16 + g, mb + 2 * t, M, N, out, out_raw,
                 x_scales, w_scales, bias);
  };

#if BL_SK
  // Stream-K: segment after segment; the producers fill the next one's stages while this one's
  // outputs go out. Its last stages are released here, for them.
  volatile unsigned int *last =
      (volatile unsigned int *)(bl_dyn + (empty + 8 * BL_STAGES - bl_smem(bl_dyn)));
  auto consumers_sync = [&]() { BL_NAMED_SYNC(1, BL_CONSUMERS); };
  unsigned int gc = 0;  // stages consumed so far
  auto visit = [&](unsigned int tile, unsigned int s0, unsigned int s1, bool first) {
    const unsigned int g1 = gc + (s1 - s0);
    consume(gc, g1);
    for (unsigned int s = g1 + 1 >= gc + BL_FRAGS ? g1 + 1 - BL_FRAGS : gc; s < g1; ++s) release(s);
    gc = g1;
    auto store = [&]() { store_tile(tile_n(tile), tile_m(tile)); };
    bl_sk_finish(acc, sp, blockIdx.x, tile, s0, s1, first, sk_partials, sk_counters, last, tid,
                 BL_CONSUMERS, consumers_sync, store);
  };
  bl_sk_segments(sp, blockIdx.x, visit);
#else
  consume(0, ksteps);
  store_tile(n_base, m_base);
#endif
#if BL_MCAST
  BL_CLUSTER_SYNC();
#endif
}
