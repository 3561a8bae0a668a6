// CPU emulation of the mma.sync GEMM (crates/bitlinear-cubecl/src/kernels/cuda/gemm_mma.cu, the
// tensor-core path of CUDA sm 80-89), to check its tiling, pipeline, fragment indexing, tails
// and epilogue without a GPU. The kernel source compiles unchanged as C++ (its PTX helpers
// replaced below); one std::thread per CUDA thread, blocks one after another in a random order.
// Modelled, from the PTX ISA:
// - cp.async 16 bytes with a source size (0: zeros, the source not read): recorded when issued
//   (its source read then, checked by AddressSanitizer), grouped by commit_group, landing when
//   committed or when a wait_group retires its group, by a coin toss (a copy into a buffer
//   still being read, or a read before the wait, shows as wrong outputs);
// - ldmatrix.sync.aligned.m8n8.x4.b16: lanes 8i..8i+7 give the row addresses of matrix i; lane
//   l receives 4 bytes of each matrix: row l / 4, bytes 4 (l % 4) .. + 3;
// - mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32, lane l = 4 g + t: a0 = A[g][4t..4t+3],
//   a1 = A[g + 8][4t..], a2 = A[g][16 + 4t..], a3 = A[g + 8][16 + 4t..]; b0 = B[4t..4t+3][g],
//   b1 = B[16 + 4t..][g]; d0, d1 = D[g][2t, 2t + 1], d2, d3 = D[g + 8][2t, 2t + 1];
// - both warp-collective: every lane of the warp must take part (one that does not hangs here,
//   as it would be undefined on the GPU); __syncthreads.
// Shared memory is the kernel's static arrays (one block runs at a time), filled with garbage at
// each block's start (the kernel's BL_EMU_STALE_SHARED hook), as stale shared memory; the
// block scaffolding is ../wgmma_emu/emu_block.h, shared with the GEMV's emulation.
//
// Build: c++ -std=c++20 -O1 -pthread -fsanitize=address -DBL_KERNEL='"path/to/gemm_mma.cu"'
//        -DBL_WM_TILES=4|8 -DBL_GRAN=0|1 -DBL_BIAS=0|1 -DBL_RAW=0|1 -I<../wgmma_emu> mma_emu.cpp
// Run:   ./mma_emu M K N seed   (exit status 0 when every output matches the reference)
#include <algorithm>
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <cuda_runtime.h>

#include "emu_block.h"  // (from ../wgmma_emu, on the include path)

#define BL_ENTRY bl_emu_mma

// cp.async: recorded copies, in commit groups per thread.
struct EmuCopy {
  void *dst;
  unsigned char bytes[16];
};
static thread_local std::vector<EmuCopy> emu_open;  // not committed yet
// Every committed group in commit order, oldest first (one that landed early: empty).
static thread_local std::vector<std::vector<EmuCopy>> emu_committed;
static thread_local std::mt19937 emu_coin;

static void emu_land(const std::vector<EmuCopy> &group) {
  for (const EmuCopy &c : group) std::memcpy(c.dst, c.bytes, 16);
}

static void bl_cp16(void *dst, const void *src, unsigned int bytes) {
  if ((uintptr_t)dst % 16 != 0 || (bytes != 0 && (uintptr_t)src % 16 != 0) || bytes > 16) {
    std::fprintf(stderr, "cp.async misaligned or oversized: %p <- %p (%u bytes)\n", dst, src,
                 bytes);
    std::abort();
  }
  EmuCopy c{dst, {}};
  std::memcpy(c.bytes, src, bytes);  // the rest stays zero (src-size < cp-size)
  emu_open.push_back(c);
}

static void bl_cp_commit() {
  if (emu_coin() & 1) {
    emu_land(emu_open);  // landed before anyone waits for it
    emu_open.clear();
  }
  emu_committed.push_back(std::move(emu_open));
  emu_open.clear();
}

// wait_group N: every group but the N most recently committed (landed or not) is complete.
template <int PENDING>
static void bl_cp_wait() {
  while (emu_committed.size() > (size_t)PENDING) {
    emu_land(emu_committed.front());
    emu_committed.erase(emu_committed.begin());
  }
}

// Warp-collective exchange: each lane publishes `mine`, then reads every lane's.
template <class T>
struct EmuExchange {
  T lanes[8][32];
};

static void emu_warp_sync(unsigned int warp) { emu_warp_barrier[warp]->arrive_and_wait(); }

static EmuExchange<const unsigned char *> emu_rows;

static void bl_ldmatrix_x4(unsigned int (&a)[4], const void *row) {
  const unsigned int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  emu_rows.lanes[warp][lane] = (const unsigned char *)row;
  emu_warp_sync(warp);
  for (unsigned int i = 0; i < 4; ++i) {
    const unsigned char *r = emu_rows.lanes[warp][8 * i + lane / 4];
    if ((uintptr_t)r % 16 != 0) {
      std::fprintf(stderr, "ldmatrix row address not 16-byte aligned: %p\n", (const void *)r);
      std::abort();
    }
    std::memcpy(&a[i], r + 4 * (lane % 4), 4);
  }
  emu_warp_sync(warp);
}

struct EmuFragments {
  unsigned int a[4], b[2];
};
static EmuExchange<EmuFragments> emu_frags;

static int emu_byte(unsigned int word, unsigned int i) {
  return (int)(signed char)((word >> (8 * i)) & 255u);
}

static void bl_mma_s8(int (&d)[4], const unsigned int (&a)[4], const unsigned int (&b)[2]) {
  const unsigned int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  emu_frags.lanes[warp][lane] = {{a[0], a[1], a[2], a[3]}, {b[0], b[1]}};
  emu_warp_sync(warp);
  const EmuFragments *f = emu_frags.lanes[warp];
  // A[r][k] and B[k][c] from the lanes that hold them.
  auto A = [&](unsigned int r, unsigned int k) {
    const unsigned int reg = (r >= 8 ? 1 : 0) + (k >= 16 ? 2 : 0);
    return emu_byte(f[4 * (r % 8) + (k % 16) / 4].a[reg], k % 4);
  };
  auto B = [&](unsigned int k, unsigned int c) {
    return emu_byte(f[4 * c + (k % 16) / 4].b[k >= 16 ? 1 : 0], k % 4);
  };
  const unsigned int g = lane / 4, t = lane % 4;
  for (unsigned int e = 0; e < 4; ++e) {
    const unsigned int r = g + 8 * (e / 2), c = 2 * t + e % 2;
    for (unsigned int k = 0; k < 32; ++k) d[e] += A(r, k) * B(k, c);
  }
  emu_warp_sync(warp);
}

#include "../../src/kernels/cuda/epilogue.cuh"
#include BL_KERNEL
#include "emu_reference.h"  // (from ../wgmma_emu, on the include path)

int main(int argc, char **argv) {
  const EmuProblem problem = emu_problem(argc, argv, "mma_emu");
  const unsigned int M = problem.M, K = problem.K, N = problem.N;
  std::mt19937_64 rng(problem.seed);
  const unsigned int BK = (K + 15) / 16, kp = 16 * BK;
  // int8 activations, rows padded with zeros to kp bytes (as quantize_activations writes them).
  std::vector<signed char> x((size_t)M * kp, 0);
  std::vector<float> xs(M);
  for (unsigned int m = 0; m < M; ++m) {
    for (unsigned int k = 0; k < K; ++k) x[(size_t)m * kp + k] = (signed char)(rng() % 256);
    xs[m] = 0.01f + (float)(rng() % 1000) / 1e4f;
  }
  EmuLayer layer = emu_layer(rng, M, N, K);

  const BlGemmParams p{M, N, BK};
  emu_run_grid((N + BN - 1) / BN, (M + BM - 1) / BM, 256, rng, [&](unsigned int t) {
    emu_coin.seed((unsigned int)(problem.seed * 7919 + t * 31 + blockIdx.x * 131 + blockIdx.y));
    emu_open.clear();
    emu_committed.clear();
    bl_emu_mma(reinterpret_cast<const unsigned char *>(x.data()), layer.packed.data(), xs.data(),
               layer.ws.data(), layer.bias.data(), layer.out.data(), layer.out_raw.data(), p);
    if (!emu_open.empty() || !emu_committed.empty()) {
      std::fprintf(stderr, "thread %u ended with copies in flight\n", t);
      std::abort();
    }
  });

  const unsigned long bad = emu_mismatches(M, N, K, kp, x, xs, layer);
  std::printf("M=%u K=%u N=%u WM_TILES=%d raw=%d: %lu of %lu differ\n", M, K, N, BL_WM_TILES,
              BL_RAW, bad, (unsigned long)M * N);
  return bad == 0 ? 0 : 1;
}
