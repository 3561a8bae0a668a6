//! Criterion benches: bitlinear (best kernel, and every supported kernel at M = 1) against the
//! f32 `gemm` crate on the same shapes, cache-resident. The `bitlinear-bench` CLI measures the
//! cold-cache (DRAM-streaming) figures recorded in BENCHMARKS.md.

use bitlinear_core::{linear_into, Kernel, LinearOptions, PackedTernary, WeightGranularity};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{rngs::StdRng, Rng, SeedableRng};

fn bench_linear(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(3);
    for &(m, k, n) in &[
        (1usize, 1024usize, 1024usize),
        (1, 4096, 4096),
        (64, 1024, 1024),
    ] {
        let w: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let packed = PackedTernary::quantize(&w, n, k, WeightGranularity::PerTensor, 1e-6).unwrap();
        let mut out = vec![0f32; m * n];
        let mut group = c.benchmark_group(format!("linear_m{m}_k{k}_n{n}"));
        group.throughput(Throughput::Elements((2 * m * n * k) as u64));
        group.sample_size(30);
        let kernels = if m == 1 {
            Kernel::supported()
        } else {
            vec![Kernel::best()]
        };
        for kernel in kernels {
            let opts = LinearOptions {
                kernel: Some(kernel),
                ..Default::default()
            };
            group.bench_function(BenchmarkId::new("bitlinear", kernel.name()), |b| {
                b.iter(|| linear_into(&x, m, &packed, None, &opts, &mut out).unwrap())
            });
        }
        let threads = rayon::current_num_threads();
        group.bench_function(BenchmarkId::new("f32-gemm", threads), |b| {
            b.iter(|| unsafe {
                // SAFETY: m×n dst, m×k lhs, k×n rhs read as the transpose of [n, k].
                gemm::gemm(
                    m,
                    n,
                    k,
                    out.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    x.as_ptr(),
                    1,
                    k as isize,
                    w.as_ptr(),
                    k as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(threads),
                )
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_linear);
criterion_main!(benches);
