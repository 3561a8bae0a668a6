// CPU emulation of the dp4a GEMV (crates/bitlinear-cubecl/src/kernels/cuda/gemv_dp4a.cu), to
// check its index arithmetic, tails, reductions and the fused quantization prologue without a
// GPU. The kernel source compiles unchanged as C++ (its inline PTX helpers replaced below); one
// std::thread per CUDA thread, blocks one after another. Modelled:
// - dp4a.u32.s32 (unsigned bytes of a times signed bytes of b, plus c);
// - __shfl_xor_sync over a warp (every lane must take part: one that does not hangs here, as
//   it would be undefined on the GPU), __syncthreads;
// - cp.async (4 or 16 bytes): a copy lands only when the thread's wait retires it, so a read of
//   shared memory before the wait sees the previous block's bytes.
// Shared memory is the kernel's static arrays (one block runs at a time); the input's rows are
// filled with NaN bytes at each block's start, as stale shared memory.
//
// Build: c++ -std=c++20 -O1 -pthread -fsanitize=address -DBL_KERNEL='"path/to/gemv_dp4a.cu"'
//        -DBL_MR=.. -DBL_SPLIT=.. -DBL_WARPS=.. -DBL_UNROLL=.. -DBL_TILES=.. -DBL_MINB=0 -DBL_FUSED=0|1
//        -DBL_KP=<16 * ceil(K / 16) when fused, else 0> -DBL_GRAN=0|1 -DBL_BIAS=0|1 -DBL_RAW=0|1
//        -I<../wgmma_emu> gemv_emu.cpp
// Run:   ./gemv_emu M K N seed   (exit status 0 when every output matches the reference)
// Fused builds quantize the input like quantize_rows_kernel; the reference here does the
// same from its definition (s = max(absmax, eps) / 127, codes rounded half to even and clamped;
// a row holding NaN or Inf gets a NaN scale and zero codes), on rows with ties, zeros, tiny
// values and NaN/Inf. With -DBL_X=1 or 2 the input is f16 or bf16 (the outputs stay f32): the
// values are cut to that type first, and the reference quantizes their exact f32 widening.
#include <algorithm>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include <cuda_runtime.h>

#include "emu_block.h"  // (from ../wgmma_emu, on the include path)

#define BL_ENTRY bl_emu_gemv

static uint32_t emu_lanes[32][32];

static float __int_as_float(int v) {
  float f;
  std::memcpy(&f, &v, 4);
  return f;
}
static float __fdiv_rn(float a, float b) { return a / b; }
static unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }

// Every lane publishes its value, then reads its partner's; the second barrier keeps a fast lane
// from overwriting its slot before the slow ones read it.
template <class T>
static T __shfl_xor_sync(unsigned int mask, T v, int offset) {
  static_assert(sizeof(T) == 4);
  if (mask != 0xffffffffu) {
    std::fprintf(stderr, "partial shuffle mask %08x\n", mask);
    std::abort();
  }
  const unsigned int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  std::memcpy(&emu_lanes[warp][lane], &v, 4);
  emu_warp_barrier[warp]->arrive_and_wait();
  T r;
  std::memcpy(&r, &emu_lanes[warp][lane ^ (unsigned int)offset], 4);
  emu_warp_barrier[warp]->arrive_and_wait();
  return r;
}

static int bl_dp4a(unsigned int a, unsigned int b, int c) {
  for (int i = 0; i < 4; ++i)
    c += (int)((a >> (8 * i)) & 255u) * (int)(signed char)((b >> (8 * i)) & 255u);
  return c;
}

// cp.async: the copy is recorded (its source read now, checked by AddressSanitizer) and lands
// at the wait.
struct EmuCopy {
  void *dst;
  unsigned char bytes[16];
  unsigned int len;
};
static thread_local std::vector<EmuCopy> emu_pending;
static void emu_cp(void *dst, const void *src, unsigned int len) {
  if (((uintptr_t)dst | (uintptr_t)src) % len != 0) {
    std::fprintf(stderr, "cp.async of %u bytes misaligned: %p <- %p\n", len, dst, src);
    std::abort();
  }
  EmuCopy c{dst, {}, len};
  std::memcpy(c.bytes, src, len);
  emu_pending.push_back(c);
}
static void bl_gemv_cp16(void *dst, const void *src) { emu_cp(dst, src, 16); }
static void bl_gemv_cp4(float *dst, const float *src) { emu_cp(dst, src, 4); }
static void bl_gemv_cp_wait_all() {
  for (const EmuCopy &c : emu_pending) std::memcpy(c.dst, c.bytes, c.len);
  emu_pending.clear();
}

#include "../../src/kernels/cuda/epilogue.cuh"
#include BL_KERNEL
#include "emu_reference.h"  // (from ../wgmma_emu, on the include path)

// A value of the fused input's type (BL_X) near v, and its exact f32 value: bf16 keeps the upper
// half of the f32 bits, f16 is cut toward zero (any nearby value serves: the reference reads the
// result). f32 as is.
static bl_x_t to_input(float v) {
#if BL_X == 2
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return __nv_bfloat16{(unsigned short)(u >> 16)};
#elif BL_X == 1
  const unsigned short sign = std::signbit(v) ? 0x8000 : 0;
  const float a = std::fabs(v);
  if (std::isnan(v)) return __half{0x7e00};
  if (std::isinf(v)) return __half{(unsigned short)(sign | 0x7c00)};
  if (a >= 65504.0f) return __half{(unsigned short)(sign | 0x7bff)};
  if (a < std::ldexp(1.0f, -14)) {  // subnormal (or zero): multiples of 2^-24
    return __half{(unsigned short)(sign | (unsigned short)(a / std::ldexp(1.0f, -24)))};
  }
  int e;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  const unsigned int mantissa = (unsigned int)((std::ldexp(a, 1 - e) - 1.0f) * 1024.0f);
  return __half{(unsigned short)(sign | ((e - 1 + 15) << 10) | mantissa)};
#else
  return v;
#endif
}

// The reference quantization of one row (see the header).
static float quantize_row(const float *x, unsigned int k, float eps, signed char *q) {
  float amax = 0.0f;
  bool finite = true;
  for (unsigned int i = 0; i < k; ++i) {
    if (!std::isfinite(x[i])) finite = false;
    amax = std::max(amax, std::fabs(x[i]));
  }
  for (unsigned int i = 0; i < k; ++i) q[i] = 0;
  if (!finite) return std::nanf("");
  const float s = std::max(amax, eps) / 127.0f;
  for (unsigned int i = 0; i < k; ++i)
    q[i] = (signed char)std::clamp(std::nearbyint(x[i] / s), -128.0f, 127.0f);
  return s;
}

int main(int argc, char **argv) {
  const EmuProblem problem = emu_problem(argc, argv, "gemv_emu");
  const unsigned int M = problem.M, K = problem.K, N = problem.N;
  const unsigned long long seed = problem.seed;
  std::mt19937_64 rng(seed);
  const unsigned int BK = (K + 15) / 16, kp = 16 * BK, tiles = (N + 15) / 16;
#if BL_FUSED
  if (kp != BL_KP) {
    std::fprintf(stderr, "fused build for %d codes per row, run with K=%u\n", BL_KP, K);
    return 2;
  }
#endif
  const float eps = 1e-5f;
  // The input (fused builds: `xin` in the input's type, `xf` its f32 values for the reference)
  // and its int8 codes, rows padded with zeros to kp bytes. The input starts one element into
  // its buffer for seeds 3 mod 4 (a view: no 16-byte copies).
  std::vector<float> xf((size_t)M * K);
  std::vector<bl_x_t> xin_buffer((size_t)M * K + 1);
  bl_x_t *xin = xin_buffer.data() + (seed % 4 == 3 ? 1 : 0);
  std::vector<signed char> x((size_t)M * kp, 0);
  std::vector<float> xs(M);
  for (unsigned int m = 0; m < M; ++m) {
    float *row = xf.data() + (size_t)m * K;
    const unsigned int kind = (unsigned int)((m + seed) % 6);
    for (unsigned int k = 0; k < K; ++k) {
      const float u = (float)((int)(rng() % 20001) - 10000) / 1e4f;
      switch (kind) {
        case 0: row[k] = 3.0f * u; break;
        // absmax 127: the scale is exactly 1, and halves are ties (rounded to even).
        case 1: row[k] = k == 0 ? -127.0f : (float)((int)(rng() % 255) - 127) + 0.5f * (rng() & 1); break;
        case 2: row[k] = 0.0f; break;                       // scale eps
        case 3: row[k] = 1e-7f * u; break;                  // absmax below eps
        case 4: row[k] = 1e3f * u; break;
        default: row[k] = u; break;
      }
    }
    // Some rows hold a NaN or an infinity.
    if (M > 1 && K > 1 && m == M - 1 && seed % 2 == 1) row[K / 2] = (seed % 4 == 1) ? std::nanf("") : -INFINITY;
#if BL_FUSED
    for (unsigned int k = 0; k < K; ++k) {
      xin[(size_t)m * K + k] = to_input(row[k]);
      row[k] = bl_x_widen(xin[(size_t)m * K + k]);
    }
    xs[m] = quantize_row(row, K, eps, x.data() + (size_t)m * kp);
#else
    for (unsigned int k = 0; k < K; ++k) x[(size_t)m * kp + k] = (signed char)(rng() % 256);
    xs[m] = 0.01f + (float)(rng() % 1000) / 1e4f;
#endif
  }
  EmuLayer layer = emu_layer(rng, M, N, K);

  float eps_f = eps;
  unsigned int eps_bits;
  std::memcpy(&eps_bits, &eps_f, 4);
  const BlGemvParams p{M, N, BK, K, eps_bits};
  // The kernel's first buffer: the input when fused, else the codes.
  const BlU4 *first = BL_FUSED ? (const BlU4 *)xin : (const BlU4 *)x.data();
  emu_run_grid((tiles + BL_TILES - 1) / BL_TILES, (M + BL_MR - 1) / BL_MR, BL_THREADS, rng,
               [&](unsigned int) {
                 bl_emu_gemv(first, (const BlU4 *)layer.packed.data(), xs.data(),
                             layer.ws.data(), layer.bias.data(), layer.out.data(),
                             layer.out_raw.data(), p);
               });

  const unsigned long bad = emu_mismatches(M, N, K, kp, x, xs, layer);
  std::printf("M=%u K=%u N=%u MR=%d fused=%d x=%d raw=%d: %lu of %lu differ\n", M, K, N, BL_MR,
              BL_FUSED, BL_X, BL_RAW, bad, (unsigned long)M * N);
  return bad == 0 ? 0 : 1;
}
