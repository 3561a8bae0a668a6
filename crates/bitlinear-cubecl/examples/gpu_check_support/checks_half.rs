//! The f16 and bf16 outputs of every path: each must be the f32 output rounded once.

use bitlinear_cubecl::*;
use cubecl::prelude::*;

use crate::common::{random_packed, read_f32, upload_f32, Rng, EPS};
use crate::support::Gran;

#[allow(clippy::needless_range_loop)]
/// f16 and bf16 layers (`ternary_linear_as`) on every path that runs here: each output must be
/// the f32 layer's output on the same values rounded once to that type, bit for bit.
pub(crate) fn check_half_outputs<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
) -> std::result::Result<(), String> {
    // The hand-written CUDA kernels first: the CubeCL paths' f16 outputs are also checked on
    // lavapipe, theirs only here, and a run cut short by its time limit should have done them.
    // Each path with its wgmma configuration (0: `Auto`'s); stream-K (24, 26) stores its
    // shared tiles through its own code, so it is checked besides the default.
    let mut paths = vec![];
    if wgmma_available(c) {
        paths.extend([0, 24, 26].map(|config| (MatmulPath::WgmmaGemm, config)));
    }
    if raw_cuda_available(c) {
        paths.extend([(MatmulPath::Dp4aGemv, 0), (MatmulPath::MmaGemm, 0)]);
    }
    paths.extend([(MatmulPath::Gemv, 0), (MatmulPath::TiledGemm, 0)]);
    if cmma_available(c) {
        paths.push((MatmulPath::CmmaGemm, 0));
    }
    for dtype in [FloatDtype::F16, FloatDtype::BF16] {
        if !dtype.supported(c) {
            return Err(format!("{dtype:?} is not supported on this device"));
        }
    }
    for &(path, config) in &paths {
        wgmma_gemm_config_override(config);
        for dtype in [FloatDtype::F16, FloatDtype::BF16] {
            let narrow = |v: f32| -> (u16, f32) {
                match dtype {
                    FloatDtype::F16 => {
                        let h = half::f16::from_f32(v);
                        (h.to_bits(), h.to_f32())
                    }
                    _ => {
                        let h = half::bf16::from_f32(v);
                        (h.to_bits(), h.to_f32())
                    }
                }
            };
            let ms: &[usize] = if matches!(path, MatmulPath::Gemv | MatmulPath::Dp4aGemv) {
                &[1, 2, 5, 16]
            } else {
                &[17, 130, 257]
            };
            for &m in ms {
                for (k, n, gran) in [(100, 33, Gran::Channel), (1040, 200, Gran::Tensor)] {
                    // Inputs and bias representable in `dtype`: the f32 layer sees the same values.
                    let x: Vec<f32> = rng
                        .vec(m * k, 2.0)
                        .into_iter()
                        .map(|v| narrow(v).1)
                        .collect();
                    let bias: Vec<f32> = rng.vec(n, 0.5).into_iter().map(|v| narrow(v).1).collect();
                    let bits = |v: &[f32]| -> Vec<u16> { v.iter().map(|&x| narrow(x).0).collect() };
                    let (_, _, w) = random_packed(c, rng, n, k, gran);
                    let ag = ActivationGranularity::PerToken;
                    let y32 = ternary_linear(
                        c,
                        &upload_f32(c, &x),
                        m,
                        k,
                        &w,
                        Some(&upload_f32(c, &bias)),
                        ag,
                        EPS,
                        path,
                    )
                    .map_err(|e| e.to_string())?;
                    let yh = ternary_linear_as(
                        c,
                        &c.create_from_slice(u16::as_bytes(&bits(&x))),
                        m,
                        k,
                        &w,
                        Some(&c.create_from_slice(u16::as_bytes(&bits(&bias)))),
                        ag,
                        EPS,
                        path,
                        dtype,
                    )
                    .map_err(|e| e.to_string())?;
                    let want = bits(&read_f32(c, y32));
                    let got = u16::from_bytes(&c.read_one(yh).unwrap()).to_vec();
                    if got != want {
                        let i = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(0);
                        return Err(format!(
                            "{dtype:?} {path:?} (wgmma config {config}) m={m} k={k} n={n}: \
                             element {i} bits {:#06x}, want {:#06x} (of {} elements)",
                            got.get(i).copied().unwrap_or(0),
                            want.get(i).copied().unwrap_or(0),
                            want.len()
                        ));
                    }
                }
            }
            // Progress, one line per path: this check compiles some 50 kernels, so a run cut
            // short by its time limit still says which paths were exact.
            println!(
                r#"{{"op":"progress","check":"half_outputs","dtype":"{dtype:?}","path":"{path:?}","wgmma_config":{config},"ok":true}}"#
            );
        }
    }
    Ok(())
}
