// Stand-in for cuda_fp16.h (see cuda_runtime.h here).
#pragma once
struct __half {
  unsigned short bits;
};
float __half2float(__half);
__half __float2half_rn(float);
