//! Activation quantization inner loops and the sum of a row's codes, compiled for the best
//! vector ISA at run time.
//!
//! The loops are plain Rust written so LLVM vectorizes them; wrapping them in
//! `#[target_feature]` functions lets one binary use AVX-512/AVX2 (`vroundps` for
//! round-half-to-even, wide compares) without `-C target-cpu=native`.

/// Runs the variant of a loop compiled for the best ISA this CPU has: `$avx512` (compiled with
/// AVX-512 F, BW and VL) where all three are detected, else `$avx2` (compiled with AVX2 and at
/// most FMA) where both are, else `$generic`.
macro_rules! best_isa {
    ($avx512:expr, $avx2:expr, $generic:expr) => {{
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                // SAFETY: the variant enables exactly these features, detected just above.
                return unsafe { $avx512 };
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the variant enables at most these features, detected just above.
                return unsafe { $avx2 };
            }
        }
        $generic
    }};
}

/// Largest |v| of a slice; NaN if any element is NaN or ±Inf.
pub(crate) fn absmax(x: &[f32]) -> f32 {
    best_isa!(absmax_avx512(x), absmax_avx2(x), absmax_generic(x))
}

/// Writes `clamp(round_ties_even(x / s), -128, 127)` into `out` (same length as `x`).
///
/// `x` must be finite and `s` finite and positive (the caller checked both via [`absmax`]).
pub(crate) fn quantize_row(x: &[f32], s: f32, out: &mut [i8]) {
    assert_eq!(x.len(), out.len());
    best_isa!(
        quantize_row_avx512(x, s, out),
        quantize_row_avx2(x, s, out),
        quantize_row_generic(x, s, out)
    )
}

/// Σ codes as i32 (the row sums of the bias correction).
pub(crate) fn sum_codes(codes: &[i8]) -> i32 {
    best_isa!(
        sum_codes_avx512(codes),
        sum_codes_avx2(codes),
        sum_codes_generic(codes)
    )
}

#[inline(always)]
fn sum_codes_generic(codes: &[i8]) -> i32 {
    codes.iter().map(|&c| c as i32).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn sum_codes_avx512(codes: &[i8]) -> i32 {
    sum_codes_generic(codes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_codes_avx2(codes: &[i8]) -> i32 {
    sum_codes_generic(codes)
}

#[inline(always)]
fn absmax_generic(x: &[f32]) -> f32 {
    // The bit pattern of |v| orders like |v|, and every NaN or ±Inf pattern lies above every
    // finite one: one integer maximum (an unsigned max reduction LLVM vectorizes) gives both
    // the result and the non-finite check.
    const MAGNITUDE: u32 = 0x7FFF_FFFF;
    let m = x.iter().map(|v| v.to_bits() & MAGNITUDE).max().unwrap_or(0);
    if m >= f32::INFINITY.to_bits() {
        f32::NAN
    } else {
        f32::from_bits(m)
    }
}

#[inline(always)]
fn quantize_row_generic(x: &[f32], s: f32, out: &mut [i8]) {
    debug_assert!(s.is_finite() && s > 0.0);
    for (o, &v) in out.iter_mut().zip(x) {
        let q = (v / s).round_ties_even().clamp(-128.0, 127.0);
        // SAFETY: callers only quantize rows whose values are finite and whose scale is
        // finite and positive, so `q` is a finite integer in [-128, 127]. (The saturating
        // `as` cast would block vectorization.)
        *o = unsafe { q.to_int_unchecked::<i32>() } as i8;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn absmax_avx512(x: &[f32]) -> f32 {
    absmax_generic(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn absmax_avx2(x: &[f32]) -> f32 {
    absmax_generic(x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn quantize_row_avx512(x: &[f32], s: f32, out: &mut [i8]) {
    quantize_row_generic(x, s, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize_row_avx2(x: &[f32], s: f32, out: &mut [i8]) {
    quantize_row_generic(x, s, out)
}
