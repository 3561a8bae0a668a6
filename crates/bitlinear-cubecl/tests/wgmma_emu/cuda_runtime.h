// Stand-in for CUDA's header in the CPU emulation of the wgmma kernels (see emu.cpp): the CUDA
// keywords they use, as plain C++ (the syntax check's stand-in, ../cuda_syntax, builds on it).
#pragma once
#include <atomic>
#include <cstddef>
#define __device__
#define __global__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__
#define __grid_constant__
#define __cluster_dims__(...)
#define __align__(x) __attribute__((aligned(x)))
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
// Global atomics and fences of the stream-K GEMM (gemm_wgmma.cu, BL_SK).
inline unsigned int atomicAdd(unsigned int *a, unsigned int v) {
  return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST);
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
template <class T>
inline T __ldcg(const T *p) {
  return *p;
}
