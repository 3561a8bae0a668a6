// Packed-ternary GEMM on Hopper's asynchronous warpgroup MMA (wgmma, CUDA sm_90a). Prepended by
// the host (raw_cuda_linear.rs): BL_ENTRY, BL_GRAN (0 per tensor, 1 per channel), BL_BIAS,
// BL_RAW, BL_WGS (warpgroups per block), BL_SLABS (64-row weight slabs per warpgroup, 1 or 2),
// BL_BM (activation rows per block: the wgmma N, 64, 128 or 256), BL_MINB (blocks per SM asked
// of the compiler), BL_A_SMEM (1: the weights decoded into shared memory, see below), and
// `bl_wgmma`, the m64nBL_BMk32 s8 instruction with its BL_BM / 2 accumulator operands (generated
// by the host: too long to spell out here), then epilogue.cuh (`bl_store`).
//
// Operands are swapped: the block computes y^T = W . x^T, so the weights are wgmma's A operand,
// which may live in registers, and are never written to shared memory as int8. A warpgroup owns
// BL_SLABS slabs of 64 weight rows (4 packed tiles of 16 each, one per warp; two slabs reuse
// each activation tile for twice the rows, halving its L2 traffic); the m64nNk32 A fragment of
// lane (g = lane / 4, t = lane % 4) in warp w is rows 16w + g and 16w + g + 8, inputs 4t..4t+3 and
// 16 + 4t..+3 of the 32-input step, and in the packed layout (input 4s + j in the 2-bit field
// 4j + s of the row's word) `(word >> 2t) & 0x03030303` holds exactly those 4 codes in byte
// order: each fragment register is one packed word, shifted and turned into signed bytes
// (c - 1, without borrows between bytes). The activations (int8, row-major, rows padded to
// 16 * blocks_k bytes) are wgmma's B operand: K-major in shared memory, copied by cp.async in
// the 128-byte swizzle (16-byte chunk c of row r at r * 128 + ((c ^ (r % 8)) * 16)), one
// 128-byte-wide k stage of BL_BM rows per buffer, 4 buffers, 2 stages in flight.
//
// BL_W_CP = 1 (an experiment, not measured yet): the packed words travel with the activations,
// by cp.async into a per-stage buffer (the block's tiles, 512 bytes each per stage), and are
// read from shared memory just before their decode, which frees the registers that held two
// stages of words and lets the prefetch distance BL_DIST grow (3 or more: stage s + 1 must have
// landed at step s, because its words are decoded at the end of step s; BL_DIST + 2 buffers).
// Whether the copies' latency, at two stages in flight, is what holds the tensor pipe at 42%.
//
// BL_A_SMEM = 1 (an experiment, not measured yet): the decoded weights go to shared memory
// instead, each word once (the four lanes of a row group split the stage's k-blocks), in two
// tiles per warpgroup and slab, and wgmma reads both operands through descriptors; fewer
// registers (two blocks per SM at 128 rows), more shared-memory traffic.
//
// Per stage s: decode its weight words (loaded two stages earlier) into one of two fragment sets;
// wait for its activations, fence them to the async proxy, barrier; issue 4 wgmma (k = 32 each)
// per slab; then, while the tensor cores work, start the copy of stage s + 2's activations into
// the buffer stage s - 2 used and load stage s + 2's words; wait for stage s - 1's wgmma, which
// frees the other fragment set. One wgmma group stays in flight across the barrier, and the
// path from the barrier to the wgmma is a few instructions (with the copies and the decode on
// that path, and their addresses recomputed per copy, the kernel issued 23% more instructions
// in the same time on an H100: neither was the bound; BENCHMARKS.md). The accumulator of lane
// (g, t), element i: weight row 16w + g + 8 ((i / 2) % 2), activation row 8 (i / 4) + 2t + i % 2.

#ifndef BL_W_CP
#define BL_W_CP 0
#endif
#ifndef BL_DIST
#define BL_DIST 2
#endif
#if BL_W_CP ? BL_DIST < 3 : BL_DIST != 2
#error "BL_DIST: 2 with the words in registers, 3 or more with BL_W_CP"
#endif

#define BL_THREADS (128 * BL_WGS)
#define BL_KB_STAGE 8  // k-blocks of 16 inputs per stage: 128 bytes of each activation row
#define BL_STAGES (BL_DIST + 2)
#define BL_TILES (BL_WGS * BL_SLABS * 4)   // 16-row packed tiles per block
#define BL_W_STAGE_BYTES (BL_TILES * 512)  // their words of one stage (BL_W_CP)
#define BL_W_COPIES (BL_TILES * 32 / BL_THREADS)
#define BL_STAGE_BYTES (BL_BM * 128)
#define BL_X_PASS (BL_THREADS / 8)  // activation rows one pass of 16-byte copies covers
#define BL_X_COPIES (BL_BM / BL_X_PASS)

BL_WGMMA_FN

extern "C" __global__ void __launch_bounds__(BL_THREADS, BL_MINB) BL_ENTRY(
    const unsigned char *__restrict__ codes, const unsigned int *__restrict__ packed,
    const float *__restrict__ x_scales, const float *__restrict__ w_scales,
    const bl_out_t *__restrict__ bias, bl_out_t *__restrict__ out, int *__restrict__ out_raw,
    const BlGemmParams p) {
  // The host reserves BL_STAGES buffers and 1 KB more, to align them to the swizzle's 1024 B.
  BL_DYNAMIC_SHARED(bl_dyn);
  const unsigned int sbase = (bl_smem(bl_dyn) + 1023u) & ~1023u;

  const unsigned int M = (unsigned int)p.m, N = (unsigned int)p.n;
  const unsigned int BK = (unsigned int)p.blocks_k;
  const size_t kp = (size_t)BK * 16;  // bytes per activation row
  const unsigned int tiles_n = (N + 15) / 16;
  const unsigned int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
  const unsigned int g = lane >> 2, t = lane & 3;
  const unsigned int n_base = blockIdx.x * (64 * BL_SLABS * BL_WGS), m_base = blockIdx.y * BL_BM;
  const unsigned int ksteps = (BK + BL_KB_STAGE - 1) / BL_KB_STAGE;

  // Activation copies, addresses computed once: this thread moves chunk c (16 bytes) of rows
  // r0 + BL_X_PASS i of each stage. The swizzle of those rows is r0's (BL_X_PASS is a multiple
  // of 8).
  const unsigned int c = tid & 7, r0 = tid >> 3;
  const unsigned char *xsrc = codes + (size_t)(m_base + r0) * kp + c * 16;
  const size_t xstride = (size_t)BL_X_PASS * kp;
  const unsigned int xdst = r0 * 128 + ((c ^ (r0 & 7)) << 4);
  unsigned int xrows = 0;  // bit i: row r0 + BL_X_PASS i exists
#pragma unroll
  for (int i = 0; i < BL_X_COPIES; ++i)
    if (m_base + r0 + BL_X_PASS * i < M) xrows |= 1u << i;

  // The decoded weight tiles of BL_A_SMEM follow the activation buffers; the word buffers of
  // BL_W_CP follow those.
  const unsigned int pbase =
      sbase + BL_STAGES * BL_STAGE_BYTES + (BL_A_SMEM ? 2 * BL_WGS * BL_SLABS * 8192 : 0);

  // Activations of stage s into its buffer (with BL_W_CP, the block's packed words of the stage
  // too: copy i of this thread is 16 bytes, words 4q..4q+3 of k-block kb of tile tl, with
  // tl * 32 + kb * 4 + q = tid + BL_THREADS i); always one commit group per call, empty past the
  // last stage, so the wait counts stay uniform. Rows, k-blocks and tiles past the end are
  // zeros.
  auto load_x = [&](unsigned int s) {
    if (s < ksteps) {
      const unsigned int dst = sbase + (s % BL_STAGES) * BL_STAGE_BYTES + xdst;
      const unsigned char *src = xsrc + (size_t)s * (BL_KB_STAGE * 16);
      const bool k_ok = s * BL_KB_STAGE + c < BK;
#pragma unroll
      for (int i = 0; i < BL_X_COPIES; ++i) {
        const bool ok = k_ok && ((xrows >> i) & 1u);
        bl_cp16(dst + i * (BL_X_PASS * 128), ok ? src + i * xstride : codes, ok ? 16u : 0u);
      }
#if BL_W_CP
#pragma unroll
      for (int i = 0; i < BL_W_COPIES; ++i) {
        const unsigned int id = tid + BL_THREADS * i, tl = id >> 5, kb = (id >> 2) & 7;
        const unsigned int tile = n_base / 16 + tl, kbg = s * BL_KB_STAGE + kb;
        const bool ok = tile < tiles_n && kbg < BK;
        const unsigned int *wsrc = packed + ((size_t)tile * BK + kbg) * 16 + (id & 3) * 4;
        bl_cp16(pbase + (s % BL_STAGES) * BL_W_STAGE_BYTES + id * 16, ok ? wsrc : packed,
                ok ? 16u : 0u);
      }
#endif
    }
    BL_CP_ASYNC_COMMIT();
  };

#if BL_W_CP
  // Word `row` (0..15) of k-block kb of local tile tl in stage s's word buffer.
  const unsigned int *wbuf = (const unsigned int *)(bl_dyn + (pbase - bl_smem(bl_dyn)));
  auto word_at = [&](unsigned int s, unsigned int tl, unsigned int kb, unsigned int row) {
    return wbuf[(s % BL_STAGES) * (BL_W_STAGE_BYTES / 4) + tl * 128 + kb * 16 + row];
  };
#endif

  // This warp's packed tile in each of its warpgroup's slabs of 64 weight rows, from word g.
  const unsigned int *wrow[BL_SLABS];
  bool tile_ok[BL_SLABS];
#pragma unroll
  for (int sl = 0; sl < BL_SLABS; ++sl) {
    const unsigned int tile = n_base / 16 + (wg * BL_SLABS + sl) * 4 + warp;
    tile_ok[sl] = tile < tiles_n;
    wrow[sl] = packed + (size_t)(tile_ok[sl] ? tile : 0) * BK * 16 + g;
  }

#if BL_A_SMEM
  // This lane's packed words of stage s: rows g and g + 8 of k-blocks 2t and 2t + 1 (the four
  // lanes of a row group share the stage's 8 k-blocks), decoded once into shared memory.
  using Words = unsigned int[BL_SLABS][4];
#if BL_W_CP
  auto load_w = [&](unsigned int s, Words &w) {
#pragma unroll
    for (int sl = 0; sl < BL_SLABS; ++sl)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const unsigned int tl = (wg * BL_SLABS + sl) * 4 + warp;
        w[sl][2 * h] = word_at(s, tl, 2 * t + h, g);
        w[sl][2 * h + 1] = word_at(s, tl, 2 * t + h, g + 8);
      }
  };
#else
  auto load_w = [&](unsigned int s, Words &w) {
#pragma unroll
    for (int sl = 0; sl < BL_SLABS; ++sl) {
      const unsigned int *src = wrow[sl] + (size_t)s * (BL_KB_STAGE * 16);
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const unsigned int kb = 2 * t + h;
        const bool ok = tile_ok[sl] && s * BL_KB_STAGE + kb < BK;
        w[sl][2 * h] = ok ? src[kb * 16] : 0u;
        w[sl][2 * h + 1] = ok ? src[kb * 16 + 8] : 0u;
      }
    }
  };
#endif
#else
  // This lane's packed words of stage s in fragment order (rows g and g + 8 of k-block 2j,
  // then of 2j + 1); whole stages of a real tile load without per-word checks.
  using Words = unsigned int[BL_SLABS][4][4];
#if BL_W_CP
  // From the stage's word buffer (zeros past the end, as copied).
  auto load_w = [&](unsigned int s, Words &w) {
#pragma unroll
    for (int sl = 0; sl < BL_SLABS; ++sl)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const unsigned int tl = (wg * BL_SLABS + sl) * 4 + warp;
          w[sl][j][2 * h] = word_at(s, tl, 2 * j + h, g);
          w[sl][j][2 * h + 1] = word_at(s, tl, 2 * j + h, g + 8);
        }
  };
#else
  auto load_w = [&](unsigned int s, Words &w) {
    const bool whole = (s + 1) * BL_KB_STAGE <= BK;
#pragma unroll
    for (int sl = 0; sl < BL_SLABS; ++sl) {
      const unsigned int *src = wrow[sl] + (size_t)s * (BL_KB_STAGE * 16);
      if (tile_ok[sl] && whole) {
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            w[sl][j][2 * h] = src[(2 * j + h) * 16];
            w[sl][j][2 * h + 1] = src[(2 * j + h) * 16 + 8];
          }
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const bool ok = tile_ok[sl] && s * BL_KB_STAGE + 2 * j + h < BK;
            w[sl][j][2 * h] = ok ? src[(2 * j + h) * 16] : 0u;
            w[sl][j][2 * h + 1] = ok ? src[(2 * j + h) * 16 + 8] : 0u;
          }
      }
    }
  };

#endif
#endif

  int acc[BL_SLABS][BL_ACC];
#pragma unroll
  for (int sl = 0; sl < BL_SLABS; ++sl)
#pragma unroll
    for (int i = 0; i < BL_ACC; ++i) acc[sl][i] = 0;

  // Packed words, loaded two stages ahead (BL_W_CP: read from shared memory just before their
  // decode), and (in registers) the fragments decoded from them: one set feeds the wgmma in
  // flight while the other is decoded. BL_A_SMEM decodes into this warpgroup's own pair of
  // shared-memory tiles instead (64 rows x 128 bytes per slab, the same swizzle as the
  // activations), read by the wgmma through a descriptor.
  Words w0, w1;
#if BL_A_SMEM
  using Frags = int;  // unused
  Frags a0 = 0, a1 = 0;
  const unsigned int wbase = sbase + BL_STAGES * BL_STAGE_BYTES + wg * (BL_SLABS * 8192);
  // Tile of parity `par` and slab `sl`: rows 16 warp + g and + 8 (swizzle g), chunks 2t, 2t + 1.
  auto w_tile = [&](unsigned int par, int sl) {
    return wbase + (par * BL_WGS * BL_SLABS + sl) * 8192;
  };
#else
  using Frags = unsigned int[BL_SLABS][4][4];
  Frags a0, a1;
#endif

  // Pins the accumulators and a fragment set in their registers around the wgmma.
  auto fence_regs = [&](Frags &frags) {
#pragma unroll
    for (int sl = 0; sl < BL_SLABS; ++sl) {
      bl_fence_acc(acc[sl]);
#if BL_A_SMEM
      (void)frags;
#else
      bl_fence_frag(frags[sl]);
#endif
    }
  };

  // Stage s's words into the fragment set `a` (or this parity's tiles), which no wgmma in
  // flight may read.
  auto decode = [&](unsigned int s, Words &w, Frags &a) {
#if BL_A_SMEM
    (void)a;
#pragma unroll
    for (int sl = 0; sl < BL_SLABS; ++sl)
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const unsigned int row = warp * 16 + g + 8 * (q & 1), kb = 2 * t + (q >> 1);
        const unsigned int word = w[sl][q];
        bl_st16(w_tile(s & 1, sl) + row * 128 + ((kb ^ g) << 4), bl_decode(word, 0),
                bl_decode(word, 1), bl_decode(word, 2), bl_decode(word, 3));
      }
#else
    (void)s;
#pragma unroll
    for (int sl = 0; sl < BL_SLABS; ++sl)
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int r = 0; r < 4; ++r) a[sl][j][r] = bl_decode(w[sl][j][r], t);
#endif
  };

  // Stage s's wgmma (4 per slab), one commit group; its activations and fragments are ready and
  // visible to the async proxy.
  auto issue = [&](unsigned int s, Frags &a) {
    fence_regs(a);
    BL_WGMMA_FENCE();
    const unsigned int buf = sbase + (s % BL_STAGES) * BL_STAGE_BYTES;
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int sl = 0; sl < BL_SLABS; ++sl) {
#if BL_A_SMEM
        (void)a;
        bl_wgmma(acc[sl], bl_desc(w_tile(s & 1, sl) + 32 * j), bl_desc(buf + 32 * j));
#else
        bl_wgmma(acc[sl], a[sl][j], bl_desc(buf + 32 * j));
#endif
      }
    BL_WGMMA_COMMIT();
  };

#if BL_W_CP
  (void)w1;
  for (unsigned int i = 0; i < BL_DIST; ++i) load_x(i);
  BL_CP_ASYNC_WAIT(BL_DIST - 1);
  __syncthreads();
  load_w(0, w0);
  decode(0, w0, a0);

  // Step s: stages up to s + 1 have landed (their words are decoded at the end of the step);
  // stage s + BL_DIST is copied into the buffers stage s - 2 used, whose wgmma every thread saw
  // done before the barrier.
  auto step = [&](unsigned int s, Frags &a, Frags &a_other) {
    BL_CP_ASYNC_WAIT(BL_DIST - 2);
    BL_FENCE_PROXY_ASYNC();
    __syncthreads();
    issue(s, a);
    load_x(s + BL_DIST);
    BL_WGMMA_WAIT(1);
    // Stage s - 1's wgmma are done: the other fragment set (or parity's tiles) is free.
    fence_regs(a_other);
    if (s + 1 < ksteps) {
      load_w(s + 1, w0);
      decode(s + 1, w0, a_other);
    }
  };

  unsigned int s = 0;
  for (; s + 1 < ksteps; s += 2) {
    step(s, a0, a1);
    step(s + 1, a1, a0);
  }
  if (s < ksteps) step(s, a0, a1);
#else
  load_x(0);
  load_x(1);
  load_w(0, w0);
  load_w(1, w1);

  auto step = [&](unsigned int s, Words &w, Frags &a, Frags &a_other) {
    // Before the barrier, off the path from it to the wgmma: `a` (or this parity's tiles) was
    // read by stage s - 2's wgmma, done since the previous step's wait.
    decode(s, w, a);
    BL_CP_ASYNC_WAIT(1);
    BL_FENCE_PROXY_ASYNC();
    __syncthreads();
    issue(s, a);
    // While the tensor cores work: every thread passed the previous step's wait before the
    // barrier, so stage s - 2's wgmma (both warpgroups) are done and its buffer is free; the
    // words of stage s are decoded, so `w` is free.
    load_x(s + 2);
    load_w(s + 2, w);
    BL_WGMMA_WAIT(1);
    // Stage s - 1's wgmma are done: the other fragment set, which they read, is free only from
    // here (the fence keeps the compiler from reusing its registers while they were in flight).
    fence_regs(a_other);
  };

  unsigned int s = 0;
  for (; s + 1 < ksteps; s += 2) {
    step(s, w0, a0, a1);
    step(s + 1, w1, a1, a0);
  }
  if (s < ksteps) step(s, w0, a0, a1);
#endif
  BL_WGMMA_WAIT(0);
#pragma unroll
  for (int sl = 0; sl < BL_SLABS; ++sl) bl_fence_acc(acc[sl]);
  BL_CP_ASYNC_WAIT(0);

#pragma unroll
  for (int sl = 0; sl < BL_SLABS; ++sl) {
    const unsigned int n_lane = n_base + (wg * BL_SLABS + sl) * 64 + warp * 16 + g;
#pragma unroll
    for (int i = 0; i < BL_ACC; ++i) {
      const unsigned int gn = n_lane + ((i >> 1) & 1) * 8;
      const unsigned int gm = m_base + (i >> 2) * 8 + 2 * t + (i & 1);
      if (gm < M && gn < N) {
        bl_store(out, out_raw, (size_t)gm * N + gn, acc[sl][i], x_scales[gm], w_scales, bias,
                 gn);
      }
    }
  }
}
