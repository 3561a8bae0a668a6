// Packed-ternary GEMV with dp4a (CUDA sm >= 61), for M <= 16. Prepended by the host
// (src/raw_cuda/gemv_config.rs):
//   BL_ENTRY  kernel name          BL_MR    rows of x per block (1..8)
//   BL_SPLIT  4 accumulators per output (no shifts; for BL_MR <= 2)
//   BL_WARPS  warps per tile (4 or 8)    BL_UNROLL  k-blocks each lane loads before computing
//   BL_TILES  tiles of 16 output rows per block (1, 2, 4): one group of BL_WARPS warps each
//   BL_MINB   minimum resident blocks per SM asked of the compiler (0: none)
//   BL_GRAN   0 per tensor, 1 per channel          BL_BIAS, BL_RAW  0/1
//   BL_FUSED  1: the first buffer is the input x [M, K], in the layer's float type (BL_OUT:
//             f32, f16 or bf16; BL_X overrides it, for the CPU emulation), copied by each block
//             into shared memory (cp.async, sm >= 80) and quantized per token there (BL_KP =
//             16 * blocks_k codes per row) before the product: the whole layer in one launch,
//             its weights in flight meanwhile. Same arithmetic as quantize_rows_kernel (f16 and
//             bf16 widened to f32 exactly): s = max(absmax, eps) / 127 (NaN if the row holds
//             NaN/Inf, with zero codes), q = clamp(round_half_even(x / s), -128, 127).
// and then epilogue.cuh (`bl_store`).
//
// Layout (shared with bitlinear-core): tile t of 16 output rows, k-block kb of 16 inputs is 16
// u32 words at ((t * blocks_k) + kb) * 16; word r is row 16t + r; input 4s + j sits in the
// 2-bit field 4j + s with code c = w + 1 in {0, 1, 2}. So `(word >> 2s) & 0x03030303` holds, in
// byte j, the code of input 4s + j: the byte order of activation word s of the block, which
// makes one dp4a per 4 weights. Activations: row-major int8, rows padded to 16 * blocks_k bytes
// (zeros), so x word 4kb + s holds inputs 16kb + 4s .. + 3.
//
// Sum_k x_k (c_k - 1) = Sum_k x_k c_k - Sum_k x_k: the second sum is one dp4a with 0x01010101
// per activation word, shared by all rows.
//
// With BL_SPLIT, the shift is dropped: `word & (0x03030303 << 2s)` holds c * 4^s (<= 128, an
// unsigned byte), summed into its own accumulator; acc_s is a multiple of 4^s, so
// acc_0 + (acc_1 >> 2) + (acc_2 >> 4) + (acc_3 >> 6) is exact. Per lane |acc_3| grows by at most
// 4 * 128 * 128 = 2^16 per block: exact below 2^15 blocks per lane (K < 2^25).
//
// Block: BL_TILES groups of BL_WARPS warps, group g on tile BL_TILES * blockIdx.x + g. Lane l
// of the group's warp w reads rows 4(l&3)..+3 of k-block kb = 8w + (l>>2) + 8 BL_WARPS i (16
// bytes each: a warp reads 512 contiguous bytes per step), BL_UNROLL blocks before computing.
// Each round's codes (BL_MR rows x BL_ROUND k-blocks, 4 KB per row) are copied into shared
// memory by cp.async before its weights are loaded, and read from there (fused: the whole row
// is there already). Reduction: shuffles over the 8 lanes of a row group, then shared memory
// over the group's warps. Grid: (ceil(tiles / BL_TILES), ceil(M / BL_MR)). Several tiles per
// block share one copy of the activations: fused, the prologue's reads of x from L2 (as many
// bytes per block as the tile's packed weights) are divided by BL_TILES, and so are the
// blocks to launch.

// The same header CubeCL includes in every kernel it generates (found through its include path).
#include <cuda_runtime.h>

#ifndef BL_TILES
#define BL_TILES 1
#endif
#define BL_SLOTS (8 * BL_WARPS)
#define BL_GROUP_THREADS (32 * BL_WARPS)
#define BL_THREADS (BL_GROUP_THREADS * BL_TILES)
#define BL_ROUND (BL_SLOTS * BL_UNROLL)  // k-blocks of one round: each lane loads BL_UNROLL
#if BL_MINB > 0
#define BL_BOUNDS __launch_bounds__(BL_THREADS, BL_MINB)
#else
#define BL_BOUNDS __launch_bounds__(BL_THREADS)
#endif

struct BlGemvParams {
  // k and eps (f32 bits) are only read by the fused kernel.
  unsigned long long m, n, blocks_k, k, eps_bits;
};

struct __align__(16) BlU4 {
  unsigned int x, y, z, w;
};

// Four inputs of the fused prologue, read from shared memory at once.
struct __align__(16) BlF4 {
  float x, y, z, w;
};

// The fused input's type: the layer's (BL_OUT), or BL_X where the CPU emulation sets it (half
// inputs with f32 outputs, which its reference checks).
#ifndef BL_X
#define BL_X BL_OUT
#endif
#if BL_X == 1
#include <cuda_fp16.h>
typedef __half bl_x_t;
static __device__ __forceinline__ float bl_x_widen(bl_x_t v) { return __half2float(v); }
#elif BL_X == 2
#include <cuda_bf16.h>
typedef __nv_bfloat16 bl_x_t;
static __device__ __forceinline__ float bl_x_widen(bl_x_t v) { return __bfloat162float(v); }
#else
typedef float bl_x_t;
static __device__ __forceinline__ float bl_x_widen(bl_x_t v) { return v; }
#endif

// Inputs 4w .. 4w + 3 of a row of the fused prologue's shared copy, widened to f32.
static __device__ __forceinline__ void bl_x4(const bl_x_t *row, unsigned int w, float (&e)[4]) {
#if BL_X == 0
  const BlF4 v = *reinterpret_cast<const BlF4 *>(row + 4 * w);
  e[0] = v.x, e[1] = v.y, e[2] = v.z, e[3] = v.w;
#else
#pragma unroll
  for (int j = 0; j < 4; ++j) e[j] = bl_x_widen(row[4 * w + j]);
#endif
}

#ifndef BL_EMU_STALE_SHARED
#define BL_EMU_STALE_SHARED(array)
#endif

#ifndef BL_HOST_EMULATION
static __device__ __forceinline__ int bl_dp4a(unsigned int a, unsigned int b, int c) {
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// The fused prologue's copies of the input into shared memory (cp.async, sm >= 80): 16 bytes
// (both addresses 16-byte aligned) or 4, then a wait for all of this thread's copies.
static __device__ __forceinline__ unsigned int bl_gemv_smem(const void *p) {
  unsigned int r;
  asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
  return r;
}
static __device__ __forceinline__ void bl_gemv_cp16(void *dst, const void *src) {
  const unsigned int d = bl_gemv_smem(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(src) : "memory");
}
static __device__ __forceinline__ void bl_gemv_cp4(float *dst, const float *src) {
  const unsigned int d = bl_gemv_smem(dst);
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(d), "l"(src) : "memory");
}
static __device__ __forceinline__ void bl_gemv_cp_wait_all() {
  asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;\n" ::: "memory");
}
#endif

static __device__ __forceinline__ unsigned int bl_word(const BlU4 &v, int r) {
  return r == 0 ? v.x : (r == 1 ? v.y : (r == 2 ? v.z : v.w));
}

#if BL_SPLIT
#define BL_NS 4
#else
#define BL_NS 1
#endif

extern "C" __global__ void BL_BOUNDS BL_ENTRY(
    const BlU4 *__restrict__ codes, const BlU4 *__restrict__ packed,
    const float *__restrict__ x_scales, const float *__restrict__ w_scales,
    const bl_out_t *__restrict__ bias, bl_out_t *__restrict__ out, int *__restrict__ out_raw,
    const BlGemvParams p) {
  // This thread's group (one tile) and its place there.
  const unsigned int group = threadIdx.x / BL_GROUP_THREADS;
  const unsigned int gthread = threadIdx.x % BL_GROUP_THREADS;
  const unsigned int tile = blockIdx.x * BL_TILES + group;
  const unsigned int m0 = blockIdx.y * BL_MR;
  const unsigned int M = (unsigned int)p.m, N = (unsigned int)p.n;
  const unsigned int BK = (unsigned int)p.blocks_k;
  const unsigned int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const unsigned int gwarp = gthread >> 5;
  const unsigned int quad = lane & 3;
  const unsigned int slot = gwarp * 8 + (lane >> 2);
  const unsigned int rows_here = min((unsigned int)BL_MR, M - m0);

  int acc[BL_MR][4][BL_NS];
  int xsum[BL_MR];
#pragma unroll
  for (int m = 0; m < BL_MR; ++m) {
    xsum[m] = 0;
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int s = 0; s < BL_NS; ++s) acc[m][r][s] = 0;
  }

  // A group past the last tile (the grid's last block) loads and stores nothing, but takes
  // part in the block's barriers. (With one tile per block every block has its tile; the
  // comparison alone cost the default a register and a spill in ptxas 13.0.)
#if BL_TILES > 1
  const unsigned int kb_end = tile * 16 < N ? BK : 0;
#else
  const unsigned int kb_end = BK;
#endif
  // 16-byte units: block kb of this tile at wbase + 4kb; row m's block kb at x_at(m, kb, ...).
  const BlU4 *wbase = packed + (size_t)(kb_end ? tile : 0) * BK * 4 + quad;
#if !BL_FUSED
  // The codes of each round (BL_MR rows x BL_ROUND k-blocks) are copied into shared memory by
  // cp.async before the round's weights are loaded (so the copy's registers are free again by
  // then), and read from there. Loaded from global memory inside the loop, each k-block's codes
  // were one more memory round trip after the weights had arrived (the branch per k-block kept
  // the compiler from hoisting them: four L2 round trips in a row per round in the SASS);
  // copied at once, they arrive while the weights are in flight.
  __shared__ __align__(16) BlU4 xround[BL_MR][BL_ROUND];
  // The CPU emulation fills it with garbage (no-op on the GPU): only copied blocks are read.
  BL_EMU_STALE_SHARED(xround);
  auto copy_codes = [&](unsigned int r0) {
    const BlU4 *src = codes + (size_t)m0 * BK + r0;
    for (unsigned int i = threadIdx.x; i < BL_MR * BL_ROUND; i += BL_THREADS) {
      const unsigned int m = i / BL_ROUND, c = i % BL_ROUND;
      if (m < rows_here && r0 + c < BK) bl_gemv_cp16(&xround[m][c], src + m * BK + c);
    }
  };
  copy_codes(0);
#endif
  BlU4 w[BL_UNROLL];
  // Loads one round of weight blocks (zeros past the end).
  auto load_round = [&](unsigned int kb0) {  // this lane's first block of the round
#pragma unroll
    for (int u = 0; u < BL_UNROLL; ++u) {
      const unsigned int kb = kb0 + BL_SLOTS * u;
      if (kb < kb_end) {
        w[u] = wbase[(size_t)kb * 4];
      } else {
        w[u].x = w[u].y = w[u].z = w[u].w = 0u;
      }
    }
  };
  // The first weights are in flight while the block quantizes x (fused) or starts.
  load_round(slot);
  // The epilogue's operands of the output this thread stores at the end, loaded now: their
  // latency hides under the weights' instead of trailing the reduction.
  const unsigned int epi_m = gthread >> 4, epi_n = tile * 16 + (gthread & 15);
  const bool epi_here = gthread < BL_MR * 16 && epi_m < rows_here && epi_n < N;
  BlEpi epi{0.0f, 0.0f};
#if !BL_FUSED
  float epi_xs = 0.0f;
#endif
  if (epi_here) {
    epi = bl_epi_load(w_scales, bias, epi_n);
#if !BL_FUSED
    epi_xs = x_scales[m0 + epi_m];
#endif
  }

#if BL_FUSED
  // The input rows land in shared memory by cp.async (all of a row's bytes in flight at once,
  // in no registers: one memory round trip, where a loop of loads took one per element and,
  // on an H100, doubled the layer's time), then are quantized from there into `xq`.
  __shared__ __align__(16) bl_x_t xf[BL_MR * BL_KP];
  __shared__ __align__(16) unsigned char xq[BL_MR * BL_KP];
  __shared__ float sx[BL_MR];
  __shared__ float wmax[BL_MR][BL_WARPS * BL_TILES];
  // The CPU emulation fills the input's shared rows with garbage here, as a GPU leaves them
  // (no-op on the GPU): whatever the kernel reads past K must be masked.
  BL_EMU_STALE_SHARED(xf);
  {
    const bl_x_t *x = reinterpret_cast<const bl_x_t *>(codes);
    const unsigned int K = (unsigned int)p.k;
    const float eps = __int_as_float((int)(unsigned int)p.eps_bits);
    const unsigned int T = BL_THREADS;
    // 16-byte copies need 16-byte aligned rows: a row of a multiple of 16 bytes and the input's
    // start aligned (a view into a larger buffer may start anywhere an element does).
    constexpr unsigned int per16 = 16 / sizeof(bl_x_t);  // elements per 16-byte copy
    const bool vec =
        K % per16 == 0 && (reinterpret_cast<unsigned long long>(x) & 15u) == 0;
    for (unsigned int m = 0; m < rows_here; ++m) {
      const bl_x_t *xr = x + (size_t)(m0 + m) * K;
      bl_x_t *dst = xf + m * BL_KP;
      if (vec) {
        for (unsigned int c = threadIdx.x; c < K / per16; c += T)
          bl_gemv_cp16(dst + per16 * c, xr + per16 * c);
      } else {
#if BL_X == 0
        for (unsigned int i = threadIdx.x; i < K; i += T) bl_gemv_cp4(dst + i, xr + i);
#else
        // cp.async copies 4, 8 or 16 bytes: 2-byte elements at unaligned rows are loaded.
        for (unsigned int i = threadIdx.x; i < K; i += T) dst[i] = xr[i];
#endif
      }
    }
    bl_gemv_cp_wait_all();
    __syncthreads();
    // Per row: the absmax over this thread's words (4 inputs each; past K: nothing), reduced
    // over the warp, then over the warps through `wmax`.
#pragma unroll
    for (int m = 0; m < BL_MR; ++m) {
      float amax = 0.0f;
      if ((unsigned int)m < rows_here) {
        const bl_x_t *xm = xf + m * BL_KP;
#pragma unroll 1
        for (unsigned int w = threadIdx.x; w < BL_KP / 4; w += T) {
          float e[4];
          bl_x4(xm, w, e);
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            float a = fabsf(e[j]);
            if (!(a <= 3.4028235e38f)) a = __int_as_float(0x7f800000);  // NaN/Inf -> +inf
            if (4 * w + j < K) amax = fmaxf(amax, a);
          }
        }
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
      if (lane == 0) wmax[m][warp] = amax;
    }
    __syncthreads();
    // s = max(absmax, eps) / 127 (NaN with zero codes if the row holds NaN/Inf), then
    // q = clamp(round_half_even(x / s), -128, 127), four codes per word.
    for (unsigned int m = 0; m < rows_here; ++m) {
      float amax = wmax[m][0];
#pragma unroll
      for (int i = 1; i < BL_WARPS * BL_TILES; ++i) amax = fmaxf(amax, wmax[m][i]);
      const bool finite = amax <= 3.4028235e38f;
      float sc = __fdiv_rn(amax < eps ? eps : amax, 127.0f);
      if (!finite) sc = __int_as_float(0x7fc00000);
      const bl_x_t *xm = xf + m * BL_KP;
      unsigned int *qm = reinterpret_cast<unsigned int *>(xq + m * BL_KP);
#pragma unroll 1
      for (unsigned int w = threadIdx.x; w < BL_KP / 4; w += T) {
        float e[4];
        bl_x4(xm, w, e);
        unsigned int word = 0;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          int q = 0;
          if (finite && 4 * w + j < K) {
            float f = rintf(__fdiv_rn(e[j], sc));  // round half to even
            f = fminf(fmaxf(f, -128.0f), 127.0f);
            q = (int)f;
          }
          word |= ((unsigned int)q & 255u) << (8 * j);
        }
        qm[w] = word;
      }
      if (threadIdx.x == 0) sx[m] = sc;
    }
    __syncthreads();
  }
  // Row m's k-block kb: the whole row is in shared memory.
  const BlU4 *xq4 = reinterpret_cast<const BlU4 *>(xq);
  auto x_at = [&](unsigned int m, unsigned int kb, unsigned int) {
    return xq4[(size_t)m * BK + kb];
  };
#else
  // Block kb is entry c = kb - r0 of the round's copy.
  auto x_at = [&](unsigned int m, unsigned int, unsigned int c) { return xround[m][c]; };
#endif

  // Rounds over all k-blocks, the same for every thread (they meet at barriers): lane slot
  // takes blocks r0 + slot + BL_SLOTS u of round r0 (its weights loaded the round before).
  for (unsigned int r0 = 0; r0 < BK; r0 += BL_ROUND) {
#if !BL_FUSED
    bl_gemv_cp_wait_all();
    __syncthreads();
#endif
#pragma unroll
    for (int u = 0; u < BL_UNROLL; ++u) {
      const unsigned int c = slot + BL_SLOTS * u, kb = r0 + c;
      if (kb < kb_end) {
#pragma unroll
        for (int m = 0; m < BL_MR; ++m) {
          if ((unsigned int)m < rows_here) {
            const BlU4 xv = x_at(m, kb, c);
            int xs = bl_dp4a(0x01010101u, xv.x, 0);
            xs = bl_dp4a(0x01010101u, xv.y, xs);
            xs = bl_dp4a(0x01010101u, xv.z, xs);
            xs = bl_dp4a(0x01010101u, xv.w, xs);
            xsum[m] += xs;
#pragma unroll
            for (int r = 0; r < 4; ++r) {
              const unsigned int wr = bl_word(w[u], r);
#if BL_SPLIT
              acc[m][r][0] = bl_dp4a(wr & 0x03030303u, xv.x, acc[m][r][0]);
              acc[m][r][1] = bl_dp4a(wr & 0x0C0C0C0Cu, xv.y, acc[m][r][1]);
              acc[m][r][2] = bl_dp4a(wr & 0x30303030u, xv.z, acc[m][r][2]);
              acc[m][r][3] = bl_dp4a(wr & 0xC0C0C0C0u, xv.w, acc[m][r][3]);
#else
              int a = acc[m][r][0];
              a = bl_dp4a(wr & 0x03030303u, xv.x, a);
              a = bl_dp4a((wr >> 2) & 0x03030303u, xv.y, a);
              a = bl_dp4a((wr >> 4) & 0x03030303u, xv.z, a);
              a = bl_dp4a((wr >> 6) & 0x03030303u, xv.w, a);
              acc[m][r][0] = a;
#endif
            }
          }
        }
      }
    }
    if (r0 + BL_ROUND < BK) {
#if !BL_FUSED
      __syncthreads();  // every warp is done with this round's codes
      copy_codes(r0 + BL_ROUND);
#endif
      if (r0 + BL_ROUND < kb_end) load_round(r0 + BL_ROUND + slot);
    }
  }

  // Per-lane totals of x * (c - 1), reduced over the 8 lanes sharing `quad` (lane bits 2..4).
  int v[BL_MR][4];
#pragma unroll
  for (int m = 0; m < BL_MR; ++m)
#pragma unroll
    for (int r = 0; r < 4; ++r) {
#if BL_SPLIT
      int t = acc[m][r][0] + (acc[m][r][1] >> 2) + (acc[m][r][2] >> 4) + (acc[m][r][3] >> 6);
#else
      int t = acc[m][r][0];
#endif
      t -= xsum[m];
      t += __shfl_xor_sync(0xffffffffu, t, 4);
      t += __shfl_xor_sync(0xffffffffu, t, 8);
      t += __shfl_xor_sync(0xffffffffu, t, 16);
      v[m][r] = t;
    }

  __shared__ int red[BL_WARPS * BL_TILES][BL_MR][16];
  if (lane < 4) {
#pragma unroll
    for (int m = 0; m < BL_MR; ++m)
#pragma unroll
      for (int r = 0; r < 4; ++r) red[warp][m][4 * lane + r] = v[m][r];
  }
  __syncthreads();
  if (epi_here) {
    const unsigned int m = epi_m, row = gthread & 15;
    int t = 0;
#pragma unroll
    for (int w = 0; w < BL_WARPS; ++w) t += red[group * BL_WARPS + w][m][row];
    const size_t o = (size_t)(m0 + m) * N + epi_n;
#if BL_FUSED
    const float xs = sx[m];
#else
    const float xs = epi_xs;
#endif
    bl_store_with(out, out_raw, o, t, xs, epi);
  }
}
