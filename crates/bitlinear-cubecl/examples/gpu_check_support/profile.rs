//! `GPU_CHECK_PROFILE=1`: each variant launched twice with labels, for Nsight Compute.

use bitlinear_cubecl::*;
use cubecl::prelude::*;

use crate::common::{random_words, sync, upload_f32, Rng, EPS};
use crate::read_floor::{launch_read, read_floor_loads, read_floor_name};
use crate::timing::batch_sizes;
use crate::variants::{custom_shapes, no_fused, no_fused_configs, variants, Variant};

/// `GPU_CHECK_PROFILE=1`: a few launches of every variant, each kernel launch announced by a
/// `{"op":"launch",...}` line in launch order, for `ncu` (device-side kernel durations; see
/// scripts/gpu-check.sh, which joins ncu's rows to these lines by order).
pub(crate) fn profile<R: Runtime>(c: &ComputeClient<R>, rng: &mut Rng, cmma_ok: bool) {
    let mut index = 0usize;
    let mut announce = |what: &str, m: usize, k: usize, n: usize| {
        println!(r#"{{"op":"launch","index":{index},"what":"{what}","m":{m},"k":{k},"n":{n}}}"#);
        index += 1;
    };
    let shapes = custom_shapes()
        .unwrap_or_else(|| vec![(4096, 4096), (4096, 11008), (8192, 28672), (2560, 6912)]);
    for &(k, n) in &shapes {
        let words = packed_word_count(k, n);
        let host = random_words(rng, words);
        let w = PackedWeights::from_handles(
            c.create_from_slice(u32::as_bytes(&host)),
            upload_f32(c, &[0.05]),
            k,
            n,
            WeightGranularity::PerTensor,
        )
        .unwrap();
        // The floor any kernel reaches on these bytes (launch and ramp included).
        let vecs = words / 4;
        let sink = c.empty(4);
        for loads in read_floor_loads() {
            for _ in 0..2 {
                announce(&read_floor_name(loads), 1, k, n);
                unsafe { launch_read(c, &w.packed, &sink, vecs, loads) };
                sync(c);
            }
        }
        for &m in &batch_sizes(&[1, 512, 2048]) {
            let x = upload_f32(c, &rng.vec(m * k, 1.0));
            announce("quantize", m, k, n);
            let acts =
                quantize_activations(c, &x, m, k, ActivationGranularity::PerToken, EPS).unwrap();
            sync(c);
            for v in variants(m, cmma_ok, raw_cuda_available(c), wgmma_available(c)) {
                if v.path == MatmulPath::TiledGemm && m > 512 {
                    continue;
                }
                v.apply();
                for _ in 0..2 {
                    announce(v.name, m, k, n);
                    let _ = ternary_matmul_as(c, &acts, &w, None, v.path, v.dtype).unwrap();
                    sync(c);
                }
                Variant::reset();
            }
            // The fused quantize + GEMV: the whole layer in one kernel (elsewhere `ternary_linear`
            // takes two, which would shift the join of ncu's rows to these lines), with its
            // default (two tiles per block since session 13), one and four tiles per block; where
            // only its bounds on M and K keep it out (e.g. 8192→28672 at M = 1), widened, with
            // the default and four tiles.
            let narrow = fused_gemv_fits(m, k);
            fused_linear_widen(true);
            let wide = fused_gemv_fits(m, k);
            fused_linear_widen(false);
            let fused_configs: &[(&str, usize)] = if narrow {
                &[
                    ("fused-linear", 0),
                    ("fused-linear-t1", 1),
                    ("fused-linear-t4", 9),
                ]
            } else if wide {
                &[("fused-linear-wide", 0), ("fused-linear-t4-wide", 9)]
            } else {
                &[]
            };
            for &(name, config) in fused_configs {
                if !raw_cuda_available(c) || no_fused() || (config != 0 && no_fused_configs()) {
                    continue;
                }
                dp4a_gemv_config_override(config);
                fused_linear_widen(!narrow);
                for _ in 0..2 {
                    announce(name, m, k, n);
                    let _ = ternary_linear(
                        c,
                        &x,
                        m,
                        k,
                        &w,
                        None,
                        ActivationGranularity::PerToken,
                        EPS,
                        MatmulPath::Dp4aGemv,
                    )
                    .unwrap();
                    sync(c);
                }
                fused_linear_widen(false);
                dp4a_gemv_config_override(0);
            }
        }
    }
}
