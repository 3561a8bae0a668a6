// Stand-in for CUDA's bf16 header in the CPU emulations (see cuda_runtime.h here): the type and
// its exact widening, which the dp4a GEMV's fused prologue uses on bf16 inputs (gemv_emu.cpp).
#pragma once
#include <cstdint>
#include <cstring>
struct __nv_bfloat16 {
  unsigned short bits;
};
// A bf16 is the upper half of the f32 with the same value.
inline float __bfloat162float(__nv_bfloat16 v) {
  const uint32_t u = (uint32_t)v.bits << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
