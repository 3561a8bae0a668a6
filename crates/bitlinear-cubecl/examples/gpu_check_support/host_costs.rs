//! What CubeCL's host path costs per task, to split the `enqueue_us` of every timing line.
//!
//! CubeCL runs each task of a call (each allocation, upload and launch) on one device thread
//! behind a 32-slot queue, and a caller that finds the queue full waits: so a long run of one
//! kind of task, then a sync, takes that thread's time per task. At M = 1 a layer's call costs
//! the host 12-14 µs on an H200, more than its kernel (5-7 µs): these lines say how much of that
//! is the allocations (the output, a placeholder for unused arguments) and how much the launch,
//! which decides whether fewer allocations per call would pay. Lines `{"op":"host_cost",...}`:
//! `us_per_task`, the median of 5 runs of `tasks` tasks each, the closing sync included.

use std::time::Instant;

use bitlinear_cubecl::*;
use cubecl::prelude::*;
use cubecl::server::Handle;

use crate::common::{sync, upload_f32, Rng, EPS};
use crate::read_floor::launch_read;

/// Tasks per run.
const TASKS: usize = 1000;

/// Median microseconds per call of `f` over 5 runs of [`TASKS`] calls, each run closed by a
/// sync (after one warm-up run). Not [`crate::timing::time_us`]: it sizes its batches from one
/// call plus a sync, so for tasks far cheaper than a sync its figure would be mostly the sync
/// (on lavapipe, 16 µs per allocation instead of ~1).
fn per_task_us<R: Runtime>(c: &ComputeClient<R>, mut f: impl FnMut()) -> f64 {
    let mut runs = Vec::new();
    for run in 0..6 {
        let t = Instant::now();
        for _ in 0..TASKS {
            f();
        }
        sync(c);
        if run > 0 {
            runs.push(t.elapsed().as_secs_f64() * 1e6 / TASKS as f64);
        }
    }
    runs.sort_by(|a, b| a.total_cmp(b));
    runs[runs.len() / 2]
}

/// Prints one line per task kind: an allocation (`empty`), a 16-byte upload, a sync of an idle
/// queue, a CubeCL kernel of one cube, and the smallest whole calls of our own paths (the
/// GEMV on codes, and the fused quantize + GEMV where the hand-written kernels run), whose
/// kernels take about a microsecond: their time per call is the host's.
pub(crate) fn host_costs<R: Runtime>(c: &ComputeClient<R>, rng: &mut Rng, backend: &str) {
    let print = |task: &str, us: f64| {
        println!(
            r#"{{"op":"host_cost","task":"{task}","backend":"{backend}","tasks":{TASKS},"us_per_task":{us:.2}}}"#
        );
    };
    print("empty", per_task_us(c, || drop(c.empty(4))));
    print(
        "upload_16_bytes",
        per_task_us(c, || drop(c.create_from_slice(&[0u8; 16]))),
    );
    print("sync_idle", per_task_us(c, || sync(c)));
    let input = c.empty(4096);
    let sink = c.empty(4);
    // SAFETY: 256 vectors of 16 bytes in `input`, one u32 in `sink`.
    print(
        "launch_cubecl_one_cube",
        per_task_us(c, || unsafe { launch_read(c, &input, &sink, 256, 1) }),
    );
    let (m, k, n) = (1, 64, 16);
    let words: Vec<u32> = (0..packed_word_count(k, n))
        .map(|_| rng.next_u64() as u32)
        .collect();
    let weights = PackedWeights::from_handles(
        c.create_from_slice(u32::as_bytes(&words)),
        upload_f32(c, &[0.05]),
        k,
        n,
        WeightGranularity::PerTensor,
    )
    .expect("tiny weights");
    let x: Handle = upload_f32(c, &rng.vec(m * k, 1.0));
    let acts = quantize_activations(c, &x, m, k, ActivationGranularity::PerToken, EPS)
        .expect("tiny activations");
    print(
        "matmul_m1_tiny",
        per_task_us(c, || {
            drop(ternary_matmul(c, &acts, &weights, None, MatmulPath::Auto).expect("matmul"))
        }),
    );
    print(
        "linear_m1_tiny",
        per_task_us(c, || {
            let y = ternary_linear(
                c,
                &x,
                m,
                k,
                &weights,
                None,
                ActivationGranularity::PerToken,
                EPS,
                MatmulPath::Auto,
            );
            drop(y.expect("linear"))
        }),
    );
}
