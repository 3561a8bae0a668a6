// Packed-ternary GEMV with dp4a (CUDA sm >= 61), for M <= 16. Prepended by the host
// (raw_cuda_linear.rs):
//   BL_ENTRY  kernel name          BL_MR    rows of x per block (1..8)
//   BL_SPLIT  4 accumulators per output (no shifts; for BL_MR <= 2)
//   BL_WARPS  warps per block (4 or 8)   BL_UNROLL  k-blocks each lane loads before computing
//   BL_MINB   minimum resident blocks per SM asked of the compiler (0: none)
//   BL_GRAN   0 per tensor, 1 per channel          BL_BIAS, BL_RAW  0/1
//   BL_FUSED  1: the first buffer is the f32 input x [M, K], quantized per token by each block
//             into shared memory (BL_KP = 16 * blocks_k bytes per row) before the product: the
//             whole layer in one launch. Same arithmetic as quantize_rows_kernel:
//             s = max(absmax, eps) / 127 (NaN if the row holds NaN/Inf, with zero codes),
//             q = clamp(round_half_even(x / s), -128, 127).
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
// Block: BL_WARPS warps, one tile of 16 rows. Lane l of warp w reads rows 4(l&3)..+3 of
// k-block kb = 8w + (l>>2) + 8 BL_WARPS i (16 bytes each: a warp reads 512 contiguous bytes per
// step), BL_UNROLL blocks before computing. Reduction: shuffles over the 8 lanes of a row group,
// then shared memory over the warps. Grid: (tiles, ceil(M / BL_MR)).

// The same header CubeCL includes in every kernel it generates (found through its include path).
#include <cuda_runtime.h>

#define BL_SLOTS (8 * BL_WARPS)
#if BL_MINB > 0
#define BL_BOUNDS __launch_bounds__(32 * BL_WARPS, BL_MINB)
#else
#define BL_BOUNDS __launch_bounds__(32 * BL_WARPS)
#endif

struct BlGemvParams {
  // k and eps (f32 bits) are only read by the fused kernel.
  unsigned long long m, n, blocks_k, k, eps_bits;
};

struct __align__(16) BlU4 {
  unsigned int x, y, z, w;
};

static __device__ __forceinline__ int bl_dp4a(unsigned int a, unsigned int b, int c) {
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

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
  const unsigned int tile = blockIdx.x;
  const unsigned int m0 = blockIdx.y * BL_MR;
  const unsigned int M = (unsigned int)p.m, N = (unsigned int)p.n;
  const unsigned int BK = (unsigned int)p.blocks_k;
  const unsigned int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const unsigned int quad = lane & 3;
  const unsigned int slot = warp * 8 + (lane >> 2);
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

  // 16-byte units: block kb of this tile at wbase + 4kb; row m's block kb at xbase + m*BK + kb.
  const BlU4 *wbase = packed + (size_t)tile * BK * 4 + quad;
  BlU4 w[BL_UNROLL];
  // Loads one round of weight blocks (zeros past the end).
  auto load_round = [&](unsigned int kb0) {
#pragma unroll
    for (int u = 0; u < BL_UNROLL; ++u) {
      const unsigned int kb = kb0 + BL_SLOTS * u;
      if (kb < BK) {
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
  const unsigned int epi_m = threadIdx.x >> 4, epi_n = tile * 16 + (threadIdx.x & 15);
  const bool epi_here = threadIdx.x < BL_MR * 16 && epi_m < rows_here && epi_n < N;
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
  __shared__ __align__(16) unsigned char xq[BL_MR * BL_KP];
  __shared__ float sx[BL_MR];
  __shared__ float wmax[BL_WARPS];
  {
    const float *x = reinterpret_cast<const float *>(codes);
    const unsigned int K = (unsigned int)p.k;
    const float eps = __int_as_float((int)(unsigned int)p.eps_bits);
    for (unsigned int m = 0; m < rows_here; ++m) {
      const float *xr = x + (size_t)(m0 + m) * K;
      float amax = 0.0f;
      for (unsigned int i = threadIdx.x; i < K; i += 32 * BL_WARPS) {
        float a = fabsf(xr[i]);
        if (!(a <= 3.4028235e38f)) a = __int_as_float(0x7f800000);  // NaN/Inf -> +inf
        amax = fmaxf(amax, a);
      }
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
      if (lane == 0) wmax[warp] = amax;
      __syncthreads();
      amax = wmax[0];
#pragma unroll
      for (int i = 1; i < BL_WARPS; ++i) amax = fmaxf(amax, wmax[i]);
      const bool finite = amax <= 3.4028235e38f;
      float sc = __fdiv_rn(amax < eps ? eps : amax, 127.0f);
      if (!finite) sc = __int_as_float(0x7fc00000);
      for (unsigned int i = threadIdx.x; i < BL_KP; i += 32 * BL_WARPS) {
        int q = 0;
        if (finite && i < K) {
          float v = rintf(__fdiv_rn(xr[i], sc));  // round half to even
          v = fminf(fmaxf(v, -128.0f), 127.0f);
          q = (int)v;
        }
        xq[m * BL_KP + i] = (unsigned char)(q & 255);
      }
      if (threadIdx.x == 0) sx[m] = sc;
      __syncthreads();  // wmax is reused by the next row
    }
  }
  const BlU4 *xbase = reinterpret_cast<const BlU4 *>(xq);
#else
  const BlU4 *xbase = codes + (size_t)m0 * BK;
#endif

  for (unsigned int kb0 = slot; kb0 < BK; kb0 += BL_SLOTS * BL_UNROLL) {
#pragma unroll
    for (int u = 0; u < BL_UNROLL; ++u) {
      const unsigned int kb = kb0 + BL_SLOTS * u;
      if (kb < BK) {
#pragma unroll
        for (int m = 0; m < BL_MR; ++m) {
          if ((unsigned int)m < rows_here) {
            const BlU4 xv = xbase[(size_t)m * BK + kb];
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
    if (kb0 + BL_SLOTS * BL_UNROLL < BK) load_round(kb0 + BL_SLOTS * BL_UNROLL);
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

  __shared__ int red[BL_WARPS][BL_MR][16];
  if (lane < 4) {
#pragma unroll
    for (int m = 0; m < BL_MR; ++m)
#pragma unroll
      for (int r = 0; r < 4; ++r) red[warp][m][4 * lane + r] = v[m][r];
  }
  __syncthreads();
  if (epi_here) {
    const unsigned int m = epi_m, row = threadIdx.x & 15;
    int t = 0;
#pragma unroll
    for (int w = 0; w < BL_WARPS; ++w) t += red[w][m][row];
    const size_t o = (size_t)(m0 + m) * N + epi_n;
#if BL_FUSED
    const float xs = sx[m];
#else
    const float xs = epi_xs;
#endif
    bl_store_with(out, out_raw, o, t, xs, epi);
  }
}
