// The problem and the reference check shared by the CPU emulations of the hand-written kernels
// (emu.cpp: the wgmma GEMMs; ../gemv_emu/gemv_emu.cpp: the dp4a GEMV). Uses the build's BL_RAW,
// BL_GRAN and BL_BIAS.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

// One run's problem, from the command line `M K N seed`.
struct EmuProblem {
  unsigned int M, K, N;
  unsigned long long seed;
};

// The problem of `argv` (exits with status 2 and a usage line naming `tool` if it is short), and
// a watchdog: a kernel that deadlocks (a barrier nobody completes) fails after 120 s without
// progress instead of hanging.
static EmuProblem emu_problem(int argc, char **argv, const char *tool) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s M K N seed\n", tool);
    std::exit(2);
  }
  std::thread([] {
    std::this_thread::sleep_for(std::chrono::seconds(120));
    std::fprintf(stderr, "no progress in 120 s: deadlock\n");
    std::_Exit(3);
  }).detach();
  return {(unsigned int)std::atoi(argv[1]), (unsigned int)std::atoi(argv[2]),
          (unsigned int)std::atoi(argv[3]), std::strtoull(argv[4], nullptr, 10)};
}

// Random ternary weights `w` [N, K] and their packed words (bitlinear-core's layout: tile t of 16
// rows, k-block kb of 16 inputs at ((t * BK) + kb) * 16, word r is row 16t + r; input 4s + j of
// a 16-block in field 4j + s, code w + 1). Padding gets random codes too: it must not matter.
static void emu_ternary_weights(std::mt19937_64 &rng, unsigned int N, unsigned int K,
                                std::vector<int> &w, std::vector<unsigned int> &packed) {
  const unsigned int BK = (K + 15) / 16, tiles = (N + 15) / 16;
  w.assign((size_t)N * K, 0);
  for (auto &v : w) v = (int)(rng() % 3) - 1;
  packed.assign((size_t)tiles * BK * 16, 0);
  for (unsigned int n = 0; n < tiles * 16; ++n)
    for (unsigned int k = 0; k < BK * 16; ++k) {
      const unsigned int code =
          (n < N && k < K) ? (unsigned int)(w[(size_t)n * K + k] + 1) : (unsigned int)(rng() % 3);
      const unsigned int kb = k / 16, s = (k % 16) / 4, j = k % 4;
      packed[((size_t)(n / 16) * BK + kb) * 16 + n % 16] |= code << (2 * (4 * j + s));
    }
}

// One problem's layer: ternary weights `w` [N, K] and their packed words, per-channel scales
// `ws`, a bias, and both output buffers ([M, N]) filled with -7 (what the kernel leaves
// unwritten shows).
struct EmuLayer {
  std::vector<int> w;
  std::vector<unsigned int> packed;
  std::vector<float> ws, bias, out;
  std::vector<int> out_raw;
};

static EmuLayer emu_layer(std::mt19937_64 &rng, unsigned int M, unsigned int N, unsigned int K) {
  EmuLayer l;
  emu_ternary_weights(rng, N, K, l.w, l.packed);
  l.ws.resize(N);
  l.bias.resize(N);
  for (auto &v : l.ws) v = 0.01f + (float)(rng() % 1000) / 1e4f;
  for (auto &v : l.bias) v = (float)((int)(rng() % 2001) - 1000) / 1e3f;
  l.out.assign((size_t)M * N, -7.0f);
  l.out_raw.assign((size_t)M * N, -7);
  return l;
}

// Outputs that differ from the reference (the first 5 printed): the exact i32 product of the
// int8 activations `x` (rows of `kp` bytes) and the layer's weights with BL_RAW, else the f32
// epilogue with activation scales `xs` bit for bit (a NaN where the reference is NaN).
static unsigned long emu_mismatches(unsigned int M, unsigned int N, unsigned int K, unsigned int kp,
                                    const std::vector<signed char> &x,
                                    const std::vector<float> &xs, const EmuLayer &layer) {
  const std::vector<int> &w = layer.w;
  const std::vector<float> &ws = layer.ws, &bias = layer.bias, &out = layer.out;
  const std::vector<int> &out_raw = layer.out_raw;
  unsigned long bad = 0;
  for (unsigned int m = 0; m < M; ++m)
    for (unsigned int n = 0; n < N; ++n) {
      int acc = 0;
      for (unsigned int k = 0; k < K; ++k) acc += x[(size_t)m * kp + k] * w[(size_t)n * K + k];
      const size_t o = (size_t)m * N + n;
#if BL_RAW
      const bool ok = out_raw[o] == acc;
      if (!ok && bad < 5) std::fprintf(stderr, "(%u,%u) got %d want %d\n", m, n, out_raw[o], acc);
#else
#if BL_GRAN == 1
      const float sw = ws[n];
#else
      const float sw = ws[0];
#endif
      float y = ((float)acc * xs[m]) * sw;
#if BL_BIAS
      y = y + bias[n];
#endif
      const bool ok = std::isnan(y) ? std::isnan(out[o]) : out[o] == y;
      if (!ok && bad < 5) std::fprintf(stderr, "(%u,%u) got %g want %g\n", m, n, out[o], y);
#endif
      bad += !ok;
    }
  return bad;
}
