// The output store shared by the hand-written kernels; the host prepends this file to each
// kernel's source, after its #defines (BL_RAW, BL_GRAN, BL_BIAS).
//
// BL_RAW: the i32 accumulator as is. Otherwise acc * s_x * s_w (+ bias) in the order and
// rounding of the reference epilogue (no fused multiply-add), with the per-channel (BL_GRAN 1)
// or per-tensor weight scale.

// The same header CubeCL includes in every kernel it generates (found through its include path).
#include <cuda_runtime.h>

static __device__ __forceinline__ void bl_store(float *out, int *out_raw, size_t o, int acc,
                                                float xs, const float *w_scales,
                                                const float *bias, unsigned int n) {
#if BL_RAW
  out_raw[o] = acc;
#else
#if BL_GRAN == 1
  const float sw = w_scales[n];
#else
  const float sw = w_scales[0];
#endif
  float y = __fmul_rn(__fmul_rn((float)acc, xs), sw);
#if BL_BIAS
  y = __fadd_rn(y, bias[n]);
#endif
  out[o] = y;
#endif
}
