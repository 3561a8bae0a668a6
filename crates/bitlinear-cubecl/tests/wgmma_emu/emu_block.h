// One CUDA block at a time on std::threads, for the CPU emulations whose kernels use static
// shared arrays and one kind of barrier per scope (../gemv_emu/gemv_emu.cpp: the dp4a GEMV;
// ../mma_emu/mma_emu.cpp: the mma.sync GEMM): thread and block indices, `__shared__` arrays as
// plain statics, the block barrier, one barrier per warp for the emulations' warp-collective
// operations, stale shared memory, and the launch of a whole grid. (emu.cpp, the wgmma GEMMs,
// runs clusters of blocks at once and has its own.) Include after <cuda_runtime.h> and before
// the kernel; BL_ENTRY is the includer's.
#pragma once
#include <algorithm>
#include <barrier>
#include <cstring>
#include <random>
#include <thread>
#include <utility>
#include <vector>

struct BlDim3 {
  unsigned int x, y, z;
};
static thread_local BlDim3 threadIdx;
static thread_local BlDim3 blockIdx;

#define BL_HOST_EMULATION 1
// One block runs at a time, so the kernel's static shared arrays are plain statics.
#define __shared__ static

static std::barrier<> *emu_block_barrier;
static std::barrier<> *emu_warp_barrier[32];

static void __syncthreads() { emu_block_barrier->arrive_and_wait(); }

// NaN bytes (0xFF) in a shared array, by one thread while the others wait: the kernel's hook
// at its start, so that whatever it reads before writing is garbage, as stale shared memory.
#define BL_EMU_STALE_SHARED(array)                                 \
  do {                                                             \
    if (threadIdx.x == 0) std::memset(array, 0xFF, sizeof(array)); \
    __syncthreads();                                               \
  } while (0)

// Runs `thread(t)` as thread t of `threads` (a multiple of 32) in every block of the grid
// `gx` x `gy`, the blocks one after another in an order drawn from `rng` (a GPU may run them in
// any order).
template <class Thread>
static void emu_run_grid(unsigned int gx, unsigned int gy, unsigned int threads,
                         std::mt19937_64 &rng, Thread thread) {
  emu_block_barrier = new std::barrier<>(threads);
  for (unsigned int i = 0; i < threads / 32; ++i) emu_warp_barrier[i] = new std::barrier<>(32);
  std::vector<std::pair<unsigned int, unsigned int>> order;
  for (unsigned int by = 0; by < gy; ++by)
    for (unsigned int bx = 0; bx < gx; ++bx) order.push_back({bx, by});
  std::shuffle(order.begin(), order.end(), rng);
  for (auto [bx, by] : order) {
    std::vector<std::thread> pool;
    for (unsigned int t = 0; t < threads; ++t)
      pool.emplace_back([&thread, t, bx, by] {
        threadIdx = {t, 0, 0};
        blockIdx = {bx, by, 0};
        thread(t);
      });
    for (auto &th : pool) th.join();
  }
  delete emu_block_barrier;
  for (unsigned int i = 0; i < threads / 32; ++i) delete emu_warp_barrier[i];
}
