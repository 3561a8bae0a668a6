//! The timings: every variant at every benchmark shape and M, with the copy and read floors
//! and back-to-back figures, as JSON lines.

use bitlinear_cubecl::*;
use cubecl::prelude::*;

use crate::back_to_back::BackToBack;
use crate::common::{random_words, upload_f32, Rng, EPS};
use crate::host_costs::host_costs;
use crate::read_floor::{copy_kernel, launch_read, read_floor_loads, read_floor_name};
use crate::timing::{batch_sizes, gemm_b2b_calls, time_us};
use crate::variants::{custom_shapes, variants, Variant};

pub(crate) fn bench<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
    quick: bool,
    cmma_ok: bool,
    backend: &str,
) {
    // Device copy bandwidth: 512 MiB read + 512 MiB written per iteration.
    // GPU_CHECK_TINY=1: tiny sizes, to exercise this harness on lavapipe.
    let tiny = std::env::var("GPU_CHECK_TINY").is_ok();
    let bytes = if tiny { 4usize << 20 } else { 512usize << 20 };
    let src = c.empty(bytes);
    let dst = c.empty(bytes);
    let vecs = bytes / 16;
    let (us, _) = time_us(c, quick, |_| unsafe {
        copy_kernel::launch_unchecked::<R>(
            c,
            {
                let cubes = vecs / 256;
                CubeCount::Static(cubes.min(65_535) as u32, cubes.div_ceil(65_535) as u32, 1)
            },
            CubeDim::new_1d(256),
            4usize,
            ArrayArg::from_raw_parts(src.clone(), bytes / 4),
            ArrayArg::from_raw_parts(dst.clone(), bytes / 4),
            vecs,
        )
    });
    let copy_gbps = 2.0 * bytes as f64 / us / 1e3;
    println!(
        r#"{{"op":"copy","impl":"cubecl-copy","backend":"{backend}","bytes":{bytes},"median_us":{us:.2},"gbps":{copy_gbps:.1}}}"#
    );
    drop((src, dst));
    // What the host's share of each call is made of (`GPU_CHECK_NO_HOST_COSTS=1`: not timed).
    if std::env::var("GPU_CHECK_NO_HOST_COSTS").is_err() {
        host_costs(c, rng, backend);
    }

    let custom = custom_shapes();
    let shapes: &[(usize, usize)] = if let Some(custom) = &custom {
        custom
    } else if tiny {
        &[(256, 512)]
    } else {
        &[(4096, 4096), (4096, 11008), (8192, 28672), (2560, 6912)]
    };
    let ms = batch_sizes(if tiny { &[1, 64] } else { &[1, 512, 2048] });
    let ms = &ms[..];
    // Every size is also timed back to back: at M ≤ 16 that is the device-bound figure of a
    // model's consecutive layers; at M = 512 and 2048 it is the kernel's throughput with CubeCL's
    // host launch path (12–28 µs per call) off the critical path, as torch's is measured
    // (`GPU_CHECK_NO_B2B=1`: not at all).
    let back_to_back = if std::env::var("GPU_CHECK_NO_B2B").is_err() {
        let b2b = BackToBack::new(c);
        if b2b.is_none() {
            println!(
                r#"{{"op":"error","what":"back-to-back timing: the spin kernel does not slow down with its iteration count"}}"#
            );
        }
        b2b
    } else {
        None
    };
    let (b2b_calls, b2b_batches) = if quick { (200, 5) } else { (400, 9) };
    for &(k, n) in shapes {
        let words = packed_word_count(k, n);
        let packed_bytes = words * 4;
        // Rotate weight copies so GEMV reads from DRAM, not L2 (≥ 256 MiB in rotation).
        let copies = if tiny {
            2
        } else {
            ((256usize << 20) / packed_bytes).clamp(2, 64)
        };
        let host = random_words(rng, words);
        let weights: Vec<PackedWeights> = (0..copies)
            .map(|_| {
                PackedWeights::from_handles(
                    c.create_from_slice(u32::as_bytes(&host)),
                    upload_f32(c, &[0.05]),
                    k,
                    n,
                    WeightGranularity::PerTensor,
                )
                .unwrap()
            })
            .collect();
        // The floor of streaming these bytes back to back: a read-only kernel per copy (the
        // GEMV's reference, so only where a GEMV size is timed).
        if let Some(b2b) = back_to_back
            .as_ref()
            .filter(|_| ms.iter().any(|&m| m <= GEMV_MAX_M))
        {
            let vecs = words / 4;
            let sink = c.empty(4);
            for loads in read_floor_loads() {
                let read = |i: usize| unsafe {
                    launch_read(c, &weights[i % copies].packed, &sink, vecs, loads)
                };
                let t = b2b.time(b2b_calls, b2b_batches, 20.0, read);
                let gbps = packed_bytes as f64 / t.per_call_us / 1e3;
                println!(
                    r#"{{"op":"read_floor","impl":"{}","backend":"{backend}","m":1,"k":{k},"n":{n},"b2b_us":{:.2},"b2b_host_bound":{},"b2b_gbps":{gbps:.1},"b2b_copy_frac":{:.3},"weight_copies":{copies}}}"#,
                    read_floor_name(loads),
                    t.per_call_us,
                    t.host_bound,
                    gbps / copy_gbps
                );
            }
        }
        for &m in ms {
            let x_values = rng.vec(m * k, 1.0);
            let x = upload_f32(c, &x_values);
            // The same inputs in bf16, for the layers of bf16 variants (torch's input type).
            let x_bf16: Vec<u16> = x_values
                .iter()
                .map(|&v| half::bf16::from_f32(v).to_bits())
                .collect();
            let x_bf16 = c.create_from_slice(u16::as_bytes(&x_bf16));
            let acts =
                quantize_activations(c, &x, m, k, ActivationGranularity::PerToken, EPS).unwrap();
            for v in variants(m, cmma_ok, raw_cuda_available(c), wgmma_available(c)) {
                v.apply();
                // Kernel only (pre-quantized activations) and, for the main variants, the full
                // layer (with the activation-quantization launch).
                let ops: &[(&str, bool)] = if v.linear_too {
                    &[("matmul", false), ("linear", true)]
                } else {
                    &[("matmul", false)]
                };
                for &(op, full) in ops {
                    let mut call = |i: usize| {
                        let w = &weights[i % copies];
                        let _ = if full {
                            // A bf16 variant's layer reads bf16 inputs and writes bf16 outputs.
                            let x = if v.dtype == FloatDtype::F32 {
                                &x
                            } else {
                                &x_bf16
                            };
                            ternary_linear_as(
                                c,
                                x,
                                m,
                                k,
                                w,
                                None,
                                ActivationGranularity::PerToken,
                                EPS,
                                v.path,
                                v.dtype,
                            )
                        } else {
                            ternary_matmul_as(c, &acts, w, None, v.path, v.dtype)
                        }
                        .unwrap();
                    };
                    let (us, enqueue_us) = time_us(c, quick, &mut call);
                    let gbps = packed_bytes as f64 / us / 1e3;
                    let tops = 2.0 * (m * k * n) as f64 / us / 1e6;
                    let b2b = match &back_to_back {
                        Some(b2b) if m <= GEMV_MAX_M => {
                            let t = b2b.time(b2b_calls, b2b_batches, enqueue_us, &mut call);
                            let gbps = packed_bytes as f64 / t.per_call_us / 1e3;
                            format!(
                                r#","b2b_us":{:.2},"b2b_host_bound":{},"b2b_gbps":{gbps:.1},"b2b_copy_frac":{:.3}"#,
                                t.per_call_us,
                                t.host_bound,
                                gbps / copy_gbps
                            )
                        }
                        Some(b2b) => {
                            // Products of 20 µs to 1 ms: enough calls for ~8 ms of device time
                            // per batch.
                            let (calls, batches) = gemm_b2b_calls(us, b2b_calls);
                            let t = b2b.time(calls, batches, enqueue_us, &mut call);
                            format!(
                                r#","b2b_us":{:.2},"b2b_host_bound":{},"b2b_tops":{:.2},"b2b_calls":{calls}"#,
                                t.per_call_us,
                                t.host_bound,
                                2.0 * (m * k * n) as f64 / t.per_call_us / 1e6
                            )
                        }
                        None => String::new(),
                    };
                    // Ablated launches compute wrong outputs: marked, so no summary takes them
                    // for the fastest.
                    let ablation = match v.ablation {
                        0 => String::new(),
                        mask => format!(r#","ablation":{mask}"#),
                    };
                    println!(
                        r#"{{"op":"{op}","impl":"bitlinear-{backend}-{}","backend":"{backend}","m":{m},"k":{k},"n":{n},"median_us":{us:.2},"enqueue_us":{enqueue_us:.2},"host_bound":{},"gbps":{gbps:.1},"copy_frac":{:.3},"tops":{tops:.2},"weight_copies":{copies}{b2b}{ablation}}}"#,
                        v.name,
                        enqueue_us > 0.9 * us,
                        gbps / copy_gbps
                    );
                }
                Variant::reset();
            }
        }
    }
}
