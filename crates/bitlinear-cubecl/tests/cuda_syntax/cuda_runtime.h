// Stand-in for CUDA's headers in the syntax check of the hand-written kernels
// (tests/cuda_syntax.rs): the keywords, built-in variables and intrinsics they use, declared as
// plain C++ so that `c++ -fsyntax-only` parses every kernel (their inline PTX is not assembled).
#pragma once
// The keywords, as in the emulation (__shared__ aside: the emulation never declares any).
#include "../wgmma_emu/cuda_runtime.h"
#define __shared__
struct BlDim3 {
  unsigned int x, y, z;
};
extern BlDim3 threadIdx, blockIdx, blockDim, gridDim;
void __syncthreads();
float __fdiv_rn(float, float);
float __int_as_float(int);
int __float_as_int(float);
float fabsf(float);
float fmaxf(float, float);
float fminf(float, float);
float rintf(float);
unsigned int min(unsigned int, unsigned int);
int __shfl_xor_sync(unsigned int, int, int);
float __shfl_xor_sync(unsigned int, float, int);
