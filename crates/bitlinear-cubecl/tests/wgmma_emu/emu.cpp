// CPU emulation of the wgmma GEMMs (crates/bitlinear-cubecl/src/kernels/cuda/gemm_wgmma.cu and
// gemm_wgmma_ws.cu), to check their index arithmetic, tails and pipeline bookkeeping without a
// GPU. The kernel source compiles unchanged as C++; one std::thread per CUDA thread, blocks one
// after another. Modelled here, as measured exact on an H100 (session 4):
// - cp.async: 16-byte copies or zero fills that land, by a coin toss per commit group, as soon
//   as the group is committed or only when a wait retires it, or, after cp.async.mbarrier.arrive,
//   in a DMA thread after a random delay, followed by the arrival;
// - mbarriers (init, arrive, arrive with expected transaction bytes, wait on a phase parity,
//   arrive on a peer block's), __syncthreads, clusters of 2 blocks run at once (BL_MCAST: own
//   shared memory each, a cluster barrier);
// - TMA 2-D loads of an int8 box (128-byte rows, 128-byte swizzle, zeros past the tensor's
//   edges), landing in the DMA thread and completing their bytes on an mbarrier, in one block
//   or multicast to several;
// - wgmma m64nNk32 s8 with A in registers (each warp's 16 rows: lane (g, t) holds rows g and
//   g + 8, inputs 4t..4t+3 and 16 + 4t..) or, like B, through a K-major, 128-byte-swizzled
//   shared-memory descriptor (16-byte chunk c of row r at r * 128 + (c ^ r % 8) * 16 within each
//   1024-byte group of 8 rows); accumulators of lane (g, t): element i at row g + 8 ((i / 2) %
//   2), column 8 (i / 4) + 2t + i % 2. A wgmma executes when a wait retires its commit group
//   (the last warpgroup's a little late), so reading a stage before its copies landed, refilling
//   a buffer an in-flight wgmma reads, or overwriting its fragments gives wrong results here.
// Not modelled: the proxy fences (a missing one goes unnoticed).
//
// Build: c++ -std=c++20 -O1 -pthread -fsanitize=address -DBL_KERNEL='"path/to/gemm_wgmma.cu"'
//        -DBL_BM=.. -DBL_SLABS=.. -DBL_WGS=2 -DBL_MINB=1 -DBL_GRAN=1 -DBL_BIAS=1 -DBL_RAW=0|1
//        (and the kernel's own flags, as the host sets them: src/raw_cuda/wgmma_config.rs)
//        -I<this folder> emu.cpp
// Run:   ./emu M K N seed   (exit status 0 when every output matches the reference)
// Stream-K (BL_SK): the host's split of the tiles for a GPU of 2-5 SMs (by seed), so that small
// problems cross tiles and share them; blocks run in a random order, so any block may be the
// one that counts last.
#include <algorithm>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <thread>
#include <vector>

struct BlDim3 {
  unsigned int x, y, z;
};
static thread_local BlDim3 threadIdx;
static thread_local BlDim3 blockIdx;

#ifndef BL_MCAST
#define BL_MCAST 0
#endif
// Blocks that run at once: a cluster of 2 with BL_MCAST, else one. Each has its own shared
// memory, block barrier and warpgroup state; `emu_cta` is the calling thread's block (the DMA
// thread sets it to the block a copy lands in).
#define EMU_CTAS (BL_MCAST ? 2 : 1)
static unsigned char emu_smem_all[2][256 * 1024];
static thread_local int emu_cta = 0;
#define emu_smem (emu_smem_all[emu_cta])
static std::barrier<> *emu_block_barrier[2];
static std::barrier<> *emu_wg_barrier[2][8];
static unsigned int emu_frag[2][8][128][4];
static std::barrier<> *emu_cluster_barrier;

#define BL_HOST_EMULATION 1
#define BL_DYNAMIC_SHARED(name) unsigned char *name = emu_smem
#define BL_WGMMA_FN
#define BL_ENTRY bl_emu_kernel

static void __syncthreads() { emu_block_barrier[emu_cta]->arrive_and_wait(); }
#define BL_CLUSTER_SYNC() emu_cluster_barrier->arrive_and_wait()
static unsigned int bl_cluster_rank() { return (unsigned int)emu_cta; }

static unsigned int bl_smem(const void *p) {
  return (unsigned int)((const unsigned char *)p - emu_smem);
}

// cp.async: each thread's copies wait in commit groups. A group lands, by a coin toss, when it is
// committed (a buffer refilled while a wgmma in flight still reads it is overwritten under it)
// or only when a wait retires it (a stage read before its wait sees the buffer's stale bytes).
struct EmuCopy {
  unsigned int dst;
  const void *src;
  unsigned int bytes;
};
static thread_local std::vector<EmuCopy> emu_open_group;
static thread_local std::deque<std::vector<EmuCopy>> emu_groups;
// The run's seed (main sets it before any block starts): each thread's coin tosses follow from
// it, its block and its index.
static unsigned long long emu_seed = 0;
static bool emu_coin() {
  static thread_local std::mt19937_64 coin(emu_seed * 0x9E3779B97F4A7C15ull +
                                           (blockIdx.x * 64 + blockIdx.y) * 1024 + threadIdx.x);
  return coin() & 1;
}

static void bl_cp16(unsigned int dst, const void *src, unsigned int bytes) {
  if (dst + 16 > sizeof(emu_smem)) {
    std::fprintf(stderr, "shared store out of range: %u\n", dst);
    std::abort();
  }
  // The source is read when the copy is issued (as any later write to global memory is
  // unrelated here); it must be in bounds (AddressSanitizer checks it).
  EmuCopy c{dst, src, bytes};
  if (bytes == 16) {
    volatile unsigned char probe = ((const unsigned char *)src)[15];
    (void)probe;
  }
  emu_open_group.push_back(c);
}

static void emu_cp_wait(unsigned int pending);

static void emu_cp_commit() {
  emu_groups.push_back(std::move(emu_open_group));
  emu_open_group.clear();
  // Early: this group and every older one land now.
  if (emu_coin()) emu_cp_wait(0);
}

static void emu_land(const EmuCopy &c);

static void emu_cp_wait(unsigned int pending) {
  // Oldest first: a group committed early lands with every group before it.
  while (emu_groups.size() > pending) {
    for (const EmuCopy &c : emu_groups.front()) emu_land(c);
    emu_groups.pop_front();
  }
}

#define BL_CP_ASYNC_COMMIT() emu_cp_commit()
#define BL_CP_ASYNC_WAIT(n) emu_cp_wait(n)

// mbarriers: a phase completes when its expected arrivals are in; waiters block until the phase
// of the parity they name has completed.
struct EmuMbar {
  std::mutex mu;
  std::condition_variable cv;
  unsigned int count = 0, pending = 0, phase = 0;
  long tx = 0;  // transaction bytes still expected in this phase

  // Under `mu`: the phase completes once every arrival and every expected byte is in.
  void settle() {
    if (pending == 0 && tx == 0) {
      pending = count;
      ++phase;
      cv.notify_all();
    }
  }
};
static std::mutex emu_mbar_mu;
static std::map<unsigned int, EmuMbar *> emu_mbars;

// The mbarrier at `bar` in block `cta` (mbarriers are keyed by block and address).
static EmuMbar &emu_mbar_at(int cta, unsigned int bar) {
  std::lock_guard<std::mutex> lock(emu_mbar_mu);
  auto it = emu_mbars.find(((unsigned int)cta << 24) | bar);
  if (it == emu_mbars.end() || bar % 8 != 0) {
    std::fprintf(stderr, "no mbarrier initialized at %u\n", bar);
    std::abort();
  }
  return *it->second;
}

// Forgets every mbarrier (between blocks, and at the end).
static void emu_mbar_reset() {
  std::lock_guard<std::mutex> lock(emu_mbar_mu);
  for (auto &entry : emu_mbars) delete entry.second;
  emu_mbars.clear();
}

static void bl_mbar_init(unsigned int bar, unsigned int count) {
  std::lock_guard<std::mutex> lock(emu_mbar_mu);
  EmuMbar *&b = emu_mbars[((unsigned int)emu_cta << 24) | bar];
  delete b;
  b = new EmuMbar;
  b->count = b->pending = count;
}

static EmuMbar &emu_mbar(unsigned int bar) { return emu_mbar_at(emu_cta, bar); }

static void bl_mbar_arrive(unsigned int bar) {
  EmuMbar &b = emu_mbar(bar);
  std::lock_guard<std::mutex> lock(b.mu);
  --b.pending;
  b.settle();
}

static void bl_mbar_expect_tx(unsigned int bar, unsigned int bytes) {
  EmuMbar &b = emu_mbar(bar);
  std::lock_guard<std::mutex> lock(b.mu);
  b.tx += bytes;
  --b.pending;
  b.settle();
}

// One arrival on the mbarrier at `bar` in block `peer` of the cluster.
static void bl_mbar_arrive_peer(unsigned int bar, unsigned int peer) {
  EmuMbar &b = emu_mbar_at((int)peer, bar);
  std::lock_guard<std::mutex> lock(b.mu);
  --b.pending;
  b.settle();
}

static void emu_mbar_complete_tx(unsigned int bar, unsigned int bytes) {
  EmuMbar &b = emu_mbar(bar);
  std::lock_guard<std::mutex> lock(b.mu);
  b.tx -= bytes;
  b.settle();
}

static void bl_mbar_wait(unsigned int bar, unsigned int parity) {
  EmuMbar &b = emu_mbar(bar);
  std::unique_lock<std::mutex> lock(b.mu);
  b.cv.wait(lock, [&] { return (b.phase & 1u) != (parity & 1u); });
}

// The emulated barriers are visible to every thread as soon as they exist.
#define BL_FENCE_MBAR_INIT() ((void)0)

// cp.async.mbarrier.arrive: the thread's copies so far land later, in a DMA thread, after a
// random delay; then the arrival happens. A stage read before its barrier sees stale bytes.
// A 2-D tensor map over int8 rows (what the host encodes for the activations): `rows` rows of
// `inner` bytes, `stride` bytes apart; boxes of `box_rows` rows x 128 bytes, 128-byte swizzle.
struct CUtensorMap {
  const unsigned char *base;
  unsigned int rows, inner, stride, box_rows;
};

struct EmuJob {
  std::vector<EmuCopy> copies;
  unsigned int bar;
  // A TMA box instead (`tma`): lands swizzled, zeros past the edges, then completes its bytes
  // on `bar`. The map is copied: the issuing thread may be gone when the box lands.
  bool tma = false;
  CUtensorMap tma_map{};
  unsigned int tma_dst = 0;
  int c0 = 0, c1 = 0;
  int cta = 0;             // the issuing block: where its copies land
  unsigned int mcast = 0;  // TMA: the blocks it lands in (a bit each), 0 for the issuer's
};

static void emu_land_box(const EmuJob &job) {
  const CUtensorMap &m = job.tma_map;
  for (unsigned int r = 0; r < m.box_rows; ++r)
    for (unsigned int j = 0; j < 128; ++j) {
      const long row = (long)job.c1 + r, col = (long)job.c0 + j;
      const unsigned char v =
          (row < (long)m.rows && col < (long)m.inner) ? m.base[row * m.stride + col] : 0;
      const unsigned int dst = job.tma_dst + r * 128 + (((j / 16) ^ (r % 8)) * 16) + j % 16;
      if (dst >= sizeof(emu_smem)) {
        std::fprintf(stderr, "TMA store out of range: %u\n", dst);
        std::abort();
      }
      emu_smem[dst] = v;
    }
}
static std::mutex emu_dma_mu;
static std::condition_variable emu_dma_cv;
static std::deque<EmuJob> emu_dma_jobs;
static bool emu_dma_stop = false;

static void emu_land(const EmuCopy &c) {
  if (c.bytes == 16) {
    std::memcpy(emu_smem + c.dst, c.src, 16);
  } else {
    std::memset(emu_smem + c.dst, 0, 16);
  }
}

static void emu_dma_worker(unsigned int seed) {
  std::mt19937 rng(seed);
  for (;;) {
    EmuJob job;
    {
      std::unique_lock<std::mutex> lock(emu_dma_mu);
      emu_dma_cv.wait(lock, [] { return emu_dma_stop || !emu_dma_jobs.empty(); });
      if (emu_dma_jobs.empty()) return;
      job = std::move(emu_dma_jobs.front());
      emu_dma_jobs.pop_front();
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 50));
    emu_cta = job.cta;
    if (job.tma) {
      const unsigned int mask = job.mcast != 0 ? job.mcast : 1u << job.cta;
      for (int c = 0; c < EMU_CTAS; ++c) {
        if ((mask >> c) & 1u) {
          emu_cta = c;
          emu_land_box(job);
          emu_mbar_complete_tx(job.bar, job.tma_map.box_rows * 128);
        }
      }
      continue;
    }
    for (const EmuCopy &c : job.copies) emu_land(c);
    bl_mbar_arrive(job.bar);
  }
}

static void bl_cp_mbar_arrive(unsigned int bar) {
  EmuJob job{{}, bar};
  job.cta = emu_cta;
  for (auto &g : emu_groups) job.copies.insert(job.copies.end(), g.begin(), g.end());
  emu_groups.clear();
  job.copies.insert(job.copies.end(), emu_open_group.begin(), emu_open_group.end());
  emu_open_group.clear();
  {
    std::lock_guard<std::mutex> lock(emu_dma_mu);
    emu_dma_jobs.push_back(std::move(job));
  }
  emu_dma_cv.notify_one();
}

// TMA: the box lands at `dst` in every block of `mask` (0: the issuing block's only), counted
// in each one's `bar`.
static void bl_tma_load_2d_mcast(unsigned int dst, const CUtensorMap *map, int c0, int c1,
                                 unsigned int bar, unsigned short mask) {
  if (dst % 1024 != 0) {
    std::fprintf(stderr, "TMA destination %u not 1024-byte aligned (128-byte swizzle)\n", dst);
    std::abort();
  }
  EmuJob job{{}, bar, true, *map, dst, c0, c1};
  job.cta = emu_cta;
  job.mcast = mask;
  {
    std::lock_guard<std::mutex> lock(emu_dma_mu);
    emu_dma_jobs.push_back(std::move(job));
  }
  emu_dma_cv.notify_one();
}

// A cache hint: nothing to model.
static void bl_tma_prefetch_map(const CUtensorMap *) {}

// TMA into this block only.
static void bl_tma_load_2d(unsigned int dst, const CUtensorMap *map, int c0, int c1,
                           unsigned int bar) {
  bl_tma_load_2d_mcast(dst, map, c0, c1, bar, 0);
}

// Every copy of this thread landed: its groups here, its mbarrier-tracked ones in the DMA thread,
// which the block's end drains.
#define BL_CP_ASYNC_WAIT_ALL() emu_cp_wait(0)
#define BL_FENCE_PROXY_ASYNC() ((void)0)
#define BL_WGMMA_FENCE() ((void)0)
// Named barrier 1 of the warp-specialized kernel's consumers (every consumer thread).
static std::barrier<> *emu_named_barrier[2];
#define BL_NAMED_SYNC(id, n) emu_named_sync(id, n)
static void emu_named_sync(unsigned int id, unsigned int n) {
  if (id != 1 || n != BL_WGS * 128) {
    std::fprintf(stderr, "named barrier %u of %u threads: not modelled\n", id, n);
    std::abort();
  }
  emu_named_barrier[emu_cta]->arrive_and_wait();
}
// Register budgets: nothing to model.
#define BL_SETMAXNREG_DEC(n) ((void)0)
#define BL_SETMAXNREG_INC(n) ((void)0)

// wgmma: issued operations wait in commit groups and execute, reading the fragment registers
// and shared memory at that moment, only when a wait retires their group. A kernel that
// overwrites a fragment or a buffer an in-flight wgmma still reads computes garbage here.
struct EmuMma {
  int *d;
  const unsigned int *a;  // the A fragment in registers, or null: A in shared memory
  unsigned long long desc_a, desc;
};

// A K-major, 128-byte-swizzled operand through its descriptor: element (row, k) of the 32-wide
// k-step it starts.
static signed char emu_operand(unsigned long long desc, unsigned int row, unsigned int k) {
  if ((desc >> 62) != 1) {
    std::fprintf(stderr, "descriptor is not the 128-byte swizzle\n");
    std::abort();
  }
  const unsigned int start = (unsigned int)(desc & 0x3FFF) << 4;
  const unsigned int sbo = (unsigned int)((desc >> 32) & 0x3FFF) << 4;
  unsigned int pa = start + (row / 8) * sbo + (row % 8) * 128 + k;
  pa ^= ((pa >> 7) & 7) << 4;
  if (pa >= sizeof(emu_smem)) {
    std::fprintf(stderr, "shared load out of range: %u\n", pa);
    std::abort();
  }
  return (signed char)emu_smem[pa];
}

// 16 bytes to a shared address, at once (plain stores).
static void bl_st16(unsigned int dst, unsigned int a, unsigned int b, unsigned int c,
                    unsigned int d) {
  if (dst + 16 > sizeof(emu_smem)) {
    std::fprintf(stderr, "shared store out of range: %u\n", dst);
    std::abort();
  }
  const unsigned int v[4] = {a, b, c, d};
  std::memcpy(emu_smem + dst, v, 16);
}
static thread_local std::vector<EmuMma> emu_open_mma;
static thread_local std::deque<std::vector<EmuMma>> emu_mma_groups;

// One warpgroup-wide wgmma: every thread posts its A fragment (if in registers), then computes
// its accumulators.
static void emu_mma_execute(const EmuMma &op) {
  const unsigned int tid = threadIdx.x, wg = tid >> 7, l = tid & 127;
  if (op.a != nullptr) std::memcpy(emu_frag[emu_cta][wg][l], op.a, 16);
  emu_wg_barrier[emu_cta][wg]->arrive_and_wait();
  const unsigned int warp = l >> 5, g = (l & 31) >> 2, t = l & 3;
  for (int i = 0; i < BL_BM / 2; ++i) {
    const unsigned int n = 16 * warp + g + 8 * ((i >> 1) & 1);
    const unsigned int m = 8 * (i >> 2) + 2 * t + (i & 1);
    int sum = 0;
    for (unsigned int k = 0; k < 32; ++k) {
      int av;
      if (op.a != nullptr) {
        const unsigned int r = n % 16, lane = (r % 8) * 4 + (k % 16) / 4;
        const unsigned int reg = (k < 16 ? 0 : 2) + r / 8;
        av = (signed char)(emu_frag[emu_cta][wg][(n / 16) * 32 + lane][reg] >> (8 * (k % 4)));
      } else {
        av = emu_operand(op.desc_a, n, k);
      }
      sum += av * emu_operand(op.desc, m, k);
    }
    op.d[i] += sum;
  }
  emu_wg_barrier[emu_cta][wg]->arrive_and_wait();
}

static void bl_wgmma(int (&d)[BL_BM / 2], const unsigned int (&a)[4], unsigned long long desc) {
  emu_open_mma.push_back(EmuMma{d, a, 0, desc});
}

static void bl_wgmma(int (&d)[BL_BM / 2], unsigned long long desc_a, unsigned long long desc) {
  emu_open_mma.push_back(EmuMma{d, nullptr, desc_a, desc});
}

// wgmma.commit_group is `.sync.aligned`: the warpgroup's threads execute it together, so none
// runs a step ahead of the others (an ablated kernel without wgmma, whose own barriers kept them
// together, would otherwise let a thread lag a whole round of buffers behind and wait forever on
// an mbarrier phase of the same parity).
static void emu_mma_commit() {
  emu_mma_groups.push_back(std::move(emu_open_mma));
  emu_open_mma.clear();
  emu_wg_barrier[emu_cta][threadIdx.x >> 7]->arrive_and_wait();
}

static void emu_mma_wait(unsigned int pending) {
  // The last warpgroup retires its wgmma late, so that a buffer another warpgroup refills
  // before a barrier says every wgmma reading it is done gets overwritten under it here.
  if (emu_mma_groups.size() > pending && (threadIdx.x >> 7) == BL_WGS - 1 && BL_WGS > 1)
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  while (emu_mma_groups.size() > pending) {
    for (const EmuMma &op : emu_mma_groups.front()) emu_mma_execute(op);
    emu_mma_groups.pop_front();
  }
}

#define BL_WGMMA_COMMIT() emu_mma_commit()
#define BL_WGMMA_WAIT(n) emu_mma_wait(n)

#include "../../src/kernels/cuda/epilogue.cuh"
#include "../../src/kernels/cuda/wgmma_common.cuh"
#include BL_KERNEL
#include "emu_reference.h"

int main(int argc, char **argv) {
  const EmuProblem problem = emu_problem(argc, argv, "emu");
  const unsigned int M = problem.M, K = problem.K, N = problem.N;
  emu_seed = problem.seed;
  std::mt19937_64 rng(emu_seed);
  const unsigned int BK = (K + 15) / 16, kp = 16 * BK;
  // Activations: int8, rows padded with zeros to kp bytes.
  std::vector<signed char> x((size_t)M * kp, 0);
  for (unsigned int m = 0; m < M; ++m)
    for (unsigned int k = 0; k < K; ++k) x[(size_t)m * kp + k] = (signed char)(rng() % 256);
  std::vector<float> xs(M);
  for (auto &v : xs) v = 0.01f + (float)(rng() % 1000) / 1e4f;
  EmuLayer layer = emu_layer(rng, M, N, K);

  const unsigned int threads = BL_THREADS;
#if BL_TMA
  // The host's map: boxes of BL_BM rows, or half of them for the multicast kernel.
  const CUtensorMap xmap{(const unsigned char *)x.data(), M, kp, kp, BL_BM / (BL_MCAST ? 2 : 1)};
#endif
#ifndef BL_SK
#define BL_SK 0
#endif
  const unsigned int tiles_x = (N + 64 * BL_SLABS * BL_WGS - 1) / (64 * BL_SLABS * BL_WGS);
  const unsigned int tiles_y = (M + BL_BM - 1) / BL_BM;
  // The host's split (raw_cuda/wgmma_schedule.rs, `stream_k_split`): whole tiles for all full
  // waves but the last, the rest (the last full wave and the partial one; with BL_SK_ALL every
  // tile) in stream-K blocks; each of them gets at least one unit.
  unsigned long long sk_dp = 0, sk_blocks = 0;
  std::vector<int> sk_partials;
  std::vector<unsigned int> sk_counters;
  if (BL_SK) {
    const unsigned int sms = 2 + (unsigned int)(problem.seed % 4);
    const unsigned long long tiles = (unsigned long long)tiles_x * tiles_y;
    const unsigned long long ks = (BK + 7) / 8;
#ifndef BL_SK_ALL
#define BL_SK_ALL 0
#endif
    const unsigned long long sk_tiles =
        BL_SK_ALL ? tiles : tiles % sms == 0 ? 0 : (tiles < sms ? tiles : tiles % sms + sms);
    sk_dp = tiles - sk_tiles;
#ifndef BL_SK_WHOLE
#define BL_SK_WHOLE 0
#endif
    // Whole tiles only (a persistent grid): one block per SM, or per tile if fewer.
    sk_blocks = std::min<unsigned long long>(sms, BL_SK_WHOLE ? sk_tiles : sk_tiles * ks);
    sk_partials.assign(2 * sk_blocks * BL_WGS * 128 * BL_SLABS * BL_ACC, 0x5A5A5A5A);
    sk_counters.assign(sk_tiles + 1, 0);
  }
  const BlGemmParams p{M, N, BK, sk_dp, sk_blocks};
  std::barrier<> *block_barriers[2] = {new std::barrier<>(threads), new std::barrier<>(threads)};
  std::barrier<> cluster_barrier(EMU_CTAS * threads);
  emu_cluster_barrier = &cluster_barrier;
  for (int c = 0; c < 2; ++c) {
    emu_block_barrier[c] = block_barriers[c];
    for (int i = 0; i < BL_WGS; ++i) emu_wg_barrier[c][i] = new std::barrier<>(128);
    emu_named_barrier[c] = new std::barrier<>(BL_WGS * 128);
  }
  // Blocks along x run a cluster at a time (the host rounds the grid up to whole clusters);
  // the stream-K grid is 1-D, its blocks in a random order.
  std::vector<std::pair<unsigned int, unsigned int>> order;
  if (BL_SK) {
    for (unsigned int b = 0; b < sk_dp + sk_blocks; ++b) order.push_back({b, 0});
    std::shuffle(order.begin(), order.end(), rng);
  } else {
    const unsigned int gx = (tiles_x + EMU_CTAS - 1) / EMU_CTAS * EMU_CTAS;
    for (unsigned int by = 0; by < tiles_y; ++by)
      for (unsigned int bx = 0; bx < gx; bx += EMU_CTAS) order.push_back({bx, by});
  }
  for (auto [bx, by] : order) {
    {
      // Stale garbage, as on a GPU.
      std::memset(emu_smem_all, 0xA5, sizeof(emu_smem_all));
      emu_dma_stop = false;
      std::thread dma(emu_dma_worker, (unsigned int)(bx * 7919 + by));
      std::vector<std::thread> pool;
      for (int c = 0; c < EMU_CTAS; ++c)
        for (unsigned int t = 0; t < threads; ++t)
          pool.emplace_back([&, t, c] {
            threadIdx = {t, 0, 0};
            blockIdx = {bx + c, by, 0};
            emu_cta = c;
            bl_emu_kernel(
#if BL_TMA
                xmap, (const unsigned char *)x.data(),
#endif
                (const unsigned char *)x.data(), layer.packed.data(), xs.data(),
                layer.ws.data(), layer.bias.data(), layer.out.data(), layer.out_raw.data(),
#if BL_SK
                sk_partials.data(), sk_counters.data(),
#endif
                p);
          });
      for (auto &th : pool) th.join();
      {
        std::lock_guard<std::mutex> lock(emu_dma_mu);
        emu_dma_stop = true;
      }
      emu_dma_cv.notify_one();
      dma.join();  // lands what is left before the next blocks reuse the shared memory
      emu_mbar_reset();
    }
  }
  for (int c = 0; c < 2; ++c) {
    delete emu_block_barrier[c];
    for (int i = 0; i < BL_WGS; ++i) delete emu_wg_barrier[c][i];
    delete emu_named_barrier[c];
  }

  // The host hands the same counters to its next launch without zeroing them: every launch
  // must leave them as it found them.
  for (size_t t = 0; t < sk_counters.size(); ++t) {
    if (sk_counters[t] != 0) {
      std::printf("stream-K counter %zu left at %u after the launch\n", t, sk_counters[t]);
      return 1;
    }
  }
  const unsigned long bad = emu_mismatches(M, N, K, kp, x, xs, layer);
  std::printf("M=%u K=%u N=%u BM=%d slabs=%d raw=%d: %lu of %lu differ\n", M, K, N, BL_BM, BL_SLABS,
              BL_RAW, bad, (unsigned long)M * N);
  return bad == 0 ? 0 : 1;
}
