// The output store shared by the hand-written kernels; the host prepends this file to each
// kernel's source, after its #defines (BL_RAW, BL_GRAN, BL_BIAS, BL_OUT).
//
// BL_RAW: the i32 accumulator as is. Otherwise acc * s_x * s_w (+ bias) in the order and
// rounding of the reference epilogue (no fused multiply-add), with the per-channel (BL_GRAN 1)
// or per-tensor weight scale, in f32; the bias and the output are `bl_out_t`: f32 (BL_OUT 0),
// f16 (1) or bf16 (2), widened exactly and rounded once to nearest even.

// The same header CubeCL includes in every kernel it generates (found through its include path).
#include <cuda_runtime.h>

#ifndef BL_OUT
#define BL_OUT 0
#endif
#if BL_OUT == 1
#include <cuda_fp16.h>
typedef __half bl_out_t;
static __device__ __forceinline__ float bl_widen(bl_out_t v) { return __half2float(v); }
static __device__ __forceinline__ bl_out_t bl_narrow(float v) { return __float2half_rn(v); }
#elif BL_OUT == 2
#include <cuda_bf16.h>
typedef __nv_bfloat16 bl_out_t;
static __device__ __forceinline__ float bl_widen(bl_out_t v) { return __bfloat162float(v); }
static __device__ __forceinline__ bl_out_t bl_narrow(float v) { return __float2bfloat16_rn(v); }
#else
typedef float bl_out_t;
static __device__ __forceinline__ float bl_widen(bl_out_t v) { return v; }
static __device__ __forceinline__ bl_out_t bl_narrow(float v) { return v; }
#endif

// The per-output operands of the epilogue (weight scale and bias), loadable ahead of the
// product: the GEMV loads them before its weights arrive, so its final store waits for no load.
struct BlEpi {
  float sw, b;
};

static __device__ __forceinline__ BlEpi bl_epi_load(const float *w_scales, const bl_out_t *bias,
                                                    unsigned int n) {
  BlEpi e{0.0f, 0.0f};
#if !BL_RAW
#if BL_GRAN == 1
  e.sw = w_scales[n];
#else
  e.sw = w_scales[0];
#endif
#if BL_BIAS
  e.b = bl_widen(bias[n]);
#endif
#endif
  return e;
}

static __device__ __forceinline__ void bl_store_with(bl_out_t *out, int *out_raw, size_t o,
                                                     int acc, float xs, BlEpi e) {
#if BL_RAW
  out_raw[o] = acc;
#else
  float y = __fmul_rn(__fmul_rn((float)acc, xs), e.sw);
#if BL_BIAS
  y = __fadd_rn(y, e.b);
#endif
  out[o] = bl_narrow(y);
#endif
}

static __device__ __forceinline__ void bl_store(bl_out_t *out, int *out_raw, size_t o, int acc,
                                                float xs, const float *w_scales,
                                                const bl_out_t *bias, unsigned int n) {
  bl_store_with(out, out_raw, o, acc, xs, bl_epi_load(w_scales, bias, n));
}
