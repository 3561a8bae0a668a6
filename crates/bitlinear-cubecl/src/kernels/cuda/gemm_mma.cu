// Packed-ternary GEMM on int8 tensor cores with mma.sync m16n8k32 (CUDA sm >= 80). Prepended
// by the host (src/raw_cuda/mma_config.rs): BL_ENTRY, BL_GRAN (0 per tensor, 1 per channel),
// BL_BIAS, BL_RAW, BL_WM_TILES (16-row mma tiles per warp: 4 or 8), then epilogue.cuh
// (`bl_epi_load`, `bl_store_with`).
//
// Block tile BM = 32 BL_WM_TILES (128 or 256, M) x 128 (N), K in stages of 64 (4 k-blocks),
// cp.async pipeline of 3 stages (2 for BM = 256, to stay under 48 KB of static shared memory).
// 8 warps as 2 (M) x 4 (N); warp tile (16 BL_WM_TILES) x 32 = BL_WM_TILES x 4 mma tiles of 16 x 8:
// every decoded weight fragment feeds BL_WM_TILES mma.
//
// A (int8 activations, row-major, rows padded to 16 * blocks_k bytes) is copied to shared
// memory as-is, rows padded to 80 bytes so that ldmatrix reads are conflict-free; one
// ldmatrix.x4 gives the m16n8k32 A fragment.
//
// B never exists as int8 in memory: the packed words of the block's 128 rows (8 tiles x 4
// k-blocks x 64 bytes, contiguous per tile) are copied to shared memory and each lane decodes
// its fragment in registers. The m16n8k32 B fragment of lane (g = lane / 4, t = lane % 4) is
// rows k = 4t..4t+3 (and 16 + 4t..) of column n = g: in the packed layout (input 4s + j in
// field 4j + s), `(word >> 2t) & 0x03030303` holds exactly those 4 codes c = w + 1 in byte
// order, and ((c | 0x80808080) - 0x01010101) ^ 0x80808080 turns them into the signed bytes
// w = c - 1 without borrows between bytes.

// The same header CubeCL includes in every kernel it generates (found through its include path).
#include <cuda_runtime.h>

#define BM (32 * BL_WM_TILES)
#define BN 128
#define KB_STAGE 4
#if BL_WM_TILES > 4
#define STAGES 2
#else
#define STAGES 3
#endif
#define A_PITCH 80

struct BlGemmParams {
  unsigned long long m, n, blocks_k;
};

// The PTX the kernel uses, one helper each (the CPU emulation, tests/mma_emu, defines
// BL_HOST_EMULATION and models them instead).
#ifndef BL_EMU_STALE_SHARED
#define BL_EMU_STALE_SHARED(array)
#endif

#ifndef BL_HOST_EMULATION
static __device__ __forceinline__ unsigned int bl_smem(const void *p) {
  unsigned int r;
  asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
  return r;
}

// 16-byte async copy; `bytes` = 0 writes zeros (out-of-range rows / k-blocks).
static __device__ __forceinline__ void bl_cp16(void *dst, const void *src, unsigned int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(bl_smem(dst)), "l"(src),
               "r"(bytes));
}

static __device__ __forceinline__ void bl_cp_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}

// Waits until at most `PENDING` of this thread's committed copy groups are still in flight.
template <int PENDING>
static __device__ __forceinline__ void bl_cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(PENDING));
}

// ldmatrix.x4: this lane's row address of one of four 8 x 16-byte matrices (lane / 8), and
// its 4 bytes of each.
static __device__ __forceinline__ void bl_ldmatrix_x4(unsigned int (&a)[4], const void *row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
               : "r"(bl_smem(row)));
}

// d += a · b over one m16n8k32 s8 tile (the warp's fragments).
static __device__ __forceinline__ void bl_mma_s8(int (&d)[4], const unsigned int (&a)[4],
                                                 const unsigned int (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

static __device__ __forceinline__ unsigned int bl_decode(unsigned int word, unsigned int t) {
  const unsigned int c = ((word >> (2 * t)) & 0x03030303u) | 0x80808080u;
  return (c - 0x01010101u) ^ 0x80808080u;
}

extern "C" __global__ void __launch_bounds__(256) BL_ENTRY(
    const unsigned char *__restrict__ codes, const unsigned int *__restrict__ packed,
    const float *__restrict__ x_scales, const float *__restrict__ w_scales,
    const bl_out_t *__restrict__ bias, bl_out_t *__restrict__ out, int *__restrict__ out_raw,
    const BlGemmParams p) {
  __shared__ __align__(16) unsigned char sa[STAGES][BM * A_PITCH];
  __shared__ __align__(16) unsigned int sb[STAGES][BN / 16][KB_STAGE * 16];
  // The CPU emulation fills them with garbage, as a GPU leaves them (no-op on the GPU).
  BL_EMU_STALE_SHARED(sa);
  BL_EMU_STALE_SHARED(sb);

  const unsigned int M = (unsigned int)p.m, N = (unsigned int)p.n;
  const unsigned int BK = (unsigned int)p.blocks_k;
  const unsigned int kp = BK * 16;  // bytes per activation row
  const unsigned int tiles_n = (N + 15) / 16;
  const unsigned int m_base = blockIdx.y * BM, n_base = blockIdx.x * BN;
  const unsigned int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const unsigned int g = lane >> 2, t = lane & 3;
  const unsigned int warp_m = warp & 1, warp_n = warp >> 1;
  const unsigned int ksteps = (BK + KB_STAGE - 1) / KB_STAGE;

  // Stage loader: A BM rows x 4 chunks of 16 B (BM / 64 per thread), B 8 tiles x 16 chunks
  // (threads 0..127).
  auto load = [&](unsigned int stage, unsigned int kb0) {
#pragma unroll
    for (int i = 0; i < BM / 64; ++i) {
      const unsigned int idx = tid + 256 * i;
      const unsigned int row = idx >> 2, c = idx & 3;
      const unsigned int gm = m_base + row, kb = kb0 + c;
      const bool ok = gm < M && kb < BK;
      const unsigned char *src = ok ? codes + (size_t)gm * kp + (size_t)kb * 16 : codes;
      bl_cp16(&sa[stage][row * A_PITCH + c * 16], src, ok ? 16u : 0u);
    }
    if (tid < 128) {
      const unsigned int tl = tid >> 4, within = tid & 15;
      const unsigned int b = within >> 2, part = within & 3;
      const unsigned int tile = n_base / 16 + tl, kb = kb0 + b;
      const bool ok = tile < tiles_n && kb < BK;
      const unsigned int *src =
          ok ? packed + ((size_t)tile * BK + kb) * 16 + part * 4 : packed;
      bl_cp16(&sb[stage][tl][b * 16 + part * 4], src, ok ? 16u : 0u);
    }
  };

  int acc[BL_WM_TILES][4][4];
#pragma unroll
  for (int i = 0; i < BL_WM_TILES; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if ((unsigned int)s < ksteps) load(s, s * KB_STAGE);
    bl_cp_commit();
  }

  // ldmatrix.x4 row address of this lane: matrix i = lane / 8 covers rows (i & 1) * 8 .. + 7,
  // k bytes (i >> 1) * 16 .. + 15 of a 16 x 32 A tile.
  const unsigned int lrow = ((lane >> 3) & 1) * 8 + (lane & 7);
  const unsigned int lk = (lane >> 4) * 16;

  for (unsigned int ks = 0; ks < ksteps; ++ks) {
    bl_cp_wait<STAGES - 2>();
    __syncthreads();
    {
      const unsigned int nk = ks + STAGES - 1;
      if (nk < ksteps) load(nk % STAGES, nk * KB_STAGE);
      bl_cp_commit();
    }
    const unsigned int st = ks % STAGES;
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) {
      // Decode this warp's 4 weight fragments once; each feeds BL_WM_TILES mma.
      unsigned int b[4][2];
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        const unsigned int nl = warp_n * 32 + nt * 8 + g;
        const unsigned int *words = &sb[st][nl >> 4][0];
        b[nt][0] = bl_decode(words[(kk * 2) * 16 + (nl & 15)], t);
        b[nt][1] = bl_decode(words[(kk * 2 + 1) * 16 + (nl & 15)], t);
      }
#pragma unroll
      for (int mt = 0; mt < BL_WM_TILES; ++mt) {
        unsigned int a[4];
        const unsigned char *ptr =
            &sa[st][(warp_m * 16 * BL_WM_TILES + mt * 16 + lrow) * A_PITCH + kk * 32 + lk];
        bl_ldmatrix_x4(a, ptr);
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) bl_mma_s8(acc[mt][nt], a, b[nt]);
      }
    }
  }
  bl_cp_wait<0>();

  // Accumulator e of tile (mt, nt): row g (+8 for e >= 2), column 2t + (e & 1). The
  // epilogue's operands (this lane's 2 BL_WM_TILES activation scales, 8 weight scales and
  // biases) are loaded first, all at once, clamped into bounds (outputs past M or N are never
  // stored): behind each output's bounds check, its loads were round trips of their own, one
  // after another.
  float xs[BL_WM_TILES][2];
#pragma unroll
  for (int mt = 0; mt < BL_WM_TILES; ++mt)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const unsigned int gm = m_base + warp_m * 16 * BL_WM_TILES + mt * 16 + g + h * 8;
      xs[mt][h] = x_scales[gm < M ? gm : M - 1];
    }
  BlEpi ep[4][2];
#pragma unroll
  for (int nt = 0; nt < 4; ++nt)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const unsigned int gn = n_base + warp_n * 32 + nt * 8 + 2 * t + j;
      ep[nt][j] = bl_epi_load(w_scales, bias, gn < N ? gn : N - 1);
    }
#pragma unroll
  for (int mt = 0; mt < BL_WM_TILES; ++mt)
#pragma unroll
    for (int nt = 0; nt < 4; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const unsigned int gm = m_base + warp_m * 16 * BL_WM_TILES + mt * 16 + g + (e >> 1) * 8;
        const unsigned int gn = n_base + warp_n * 32 + nt * 8 + 2 * t + (e & 1);
        if (gm < M && gn < N) {
          bl_store_with(out, out_raw, (size_t)gm * N + gn, acc[mt][nt][e], xs[mt][e >> 1],
                        ep[nt][e & 1]);
        }
      }
}
