// Stand-in for CUDA's f16 header in the CPU emulations (see cuda_runtime.h here): the type and
// its exact widening, which the dp4a GEMV's fused prologue uses on f16 inputs (gemv_emu.cpp).
#pragma once
#include <cmath>
#include <cstdint>
struct __half {
  unsigned short bits;
};
// Sign, 5 exponent bits (bias 15), 10 mantissa bits; exponent 0: subnormal, 31: Inf or NaN.
inline float __half2float(__half v) {
  const int sign = v.bits >> 15, exponent = (v.bits >> 10) & 31, mantissa = v.bits & 1023;
  float f;
  if (exponent == 31) {
    f = mantissa ? NAN : INFINITY;
  } else if (exponent == 0) {
    f = std::ldexp((float)mantissa, -24);
  } else {
    f = std::ldexp((float)(mantissa + 1024), exponent - 25);
  }
  return sign ? -f : f;
}
