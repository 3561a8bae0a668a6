//! The fused quantize + GEMV layer against the two-launch reference, in every block
//! configuration and on edge rows (ties, eps, NaN/Inf).

use bitlinear_cubecl::*;
use cubecl::prelude::*;

use crate::common::{random_packed, read_f32, upload_f32, Rng, EPS};
use crate::support::{self, Gran};

/// The fused quantize + dp4a GEMV of `ternary_linear` (one launch), default configuration: see
/// [`check_fused_linear_cases`].
pub(crate) fn check_fused_linear<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
    let (ms, ks, ns) = (
        &[1usize, 2, 3, 8, 9, 16][..],
        &[1usize, 15, 17, 100, 300, 1040, 4100][..],
        &[1usize, 7, 33, 200][..],
    );
    check_fused_linear_cases(c, rng, ms, ks, ns)
}

/// The fused layer with two and four tiles per block (GEMV configurations 8, 9), then 1 and 9
/// with the bounds on M and K lifted (`fused_linear_widen`: up to 16 rows, as many inputs as
/// shared memory holds), on fewer cases than [`check_fused_linear`] (each K is a kernel of its
/// own: NVRTC's compiles must fit the check's time limit). Its own check, so that a failure here
/// keeps only these out of the timings (`GPU_CHECK_NO_FUSED_CONFIGS`).
pub(crate) fn check_fused_linear_configs<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
    let (ms, ks, ns) = (
        &[1usize, 2, 3, 9][..],
        &[15usize, 100, 1040, 4100][..],
        &[7usize, 200][..],
    );
    [(8, false), (9, false), (0, true), (9, true)]
        .into_iter()
        .try_for_each(|(config, wide)| {
            dp4a_gemv_config_override(config);
            fused_linear_widen(wide);
            let r = check_fused_linear_cases(c, rng, ms, ks, ns)
                .map_err(|e| format!("config {config}, widened {wide}: {e}"));
            fused_linear_widen(false);
            dp4a_gemv_config_override(0);
            r
        })
}

/// The fused layer in the GEMV configuration set now, on every `(m, k, n)` of the lists: against
/// the CPU reference, and bit for bit against the two-launch path (quantize, then the same
/// GEMV); a row holding NaN gives a NaN row and leaves the other rows exact. Per-group weights
/// go through the fallback.
#[allow(clippy::needless_range_loop)]
pub(crate) fn check_fused_linear_cases<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
    ms: &[usize],
    ks: &[usize],
    ns: &[usize],
) -> std::result::Result<(), String> {
    let mut case = 0;
    for &m in ms {
        for &k in ks {
            for &n in ns {
                case += 1;
                let gran = [Gran::Tensor, Gran::Channel, Gran::Group(32)][case % 3];
                let mut x = rng.vec(m * k, 1.5);
                // Every fifth case: one row holds a NaN.
                let nan_row = (case % 5 == 0 && m > 1).then_some(m / 2);
                if let Some(r) = nan_row {
                    x[r * k + k / 2] = f32::NAN;
                }
                let xh = upload_f32(c, &x);
                let (t, sw, w) = random_packed(c, rng, n, k, gran);
                let bias = rng.vec(n, 0.5);
                let bh = upload_f32(c, &bias);
                let b = (case % 2 == 0).then_some(&bh);
                let run = |off: bool| {
                    fused_linear_off(off);
                    let y = ternary_linear(
                        c,
                        &xh,
                        m,
                        k,
                        &w,
                        b,
                        ActivationGranularity::PerToken,
                        EPS,
                        MatmulPath::Dp4aGemv,
                    );
                    fused_linear_off(false);
                    y.map(|h| read_f32(c, h)).map_err(|e| e.to_string())
                };
                let fused = run(false)?;
                let two = run(true)?;
                let (xq, sx) = support::quantize_acts(&x, m, k, false, EPS);
                let bias_ref = (case % 2 == 0).then_some(&bias[..]);
                let (want, mag) = support::linear(&xq, &sx, &t, &sw, bias_ref, m, n, k, gran);
                for i in 0..m * n {
                    let ctx = format!("m={m} k={k} n={n} {gran:?} at {i}");
                    if Some(i / n) == nan_row {
                        if !fused[i].is_nan() {
                            return Err(format!("NaN row not NaN {ctx}: {}", fused[i]));
                        }
                        continue;
                    }
                    if fused[i].to_bits() != two[i].to_bits() {
                        return Err(format!(
                            "fused {} vs two launches {} {ctx}",
                            fused[i], two[i]
                        ));
                    }
                    if (fused[i] - want[i]).abs() > 2e-5 * mag[i] + 1e-6 {
                        return Err(format!(
                            "output {} vs reference {} {ctx}",
                            fused[i], want[i]
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
