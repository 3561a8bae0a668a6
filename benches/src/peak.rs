//! Integer-throughput ceiling of this CPU: independent `vpdpbusd` chains on every thread.
//! GEMM figures are reported against it ("integer ops over peak").

use std::hint::black_box;
use std::time::Instant;

/// Prints `{"op":"int8-peak",...}` with the measured multiply-accumulate rate, if the CPU has
/// AVX-512 VNNI (else a note on stderr).
pub fn int8_peak(threads: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            let iters = 50_000_000usize;
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    // SAFETY: the CPU supports AVX-512 VNNI (checked above).
                    s.spawn(|| black_box(unsafe { x86::zmm_chains(iters) }));
                }
            });
            let secs = start.elapsed().as_secs_f64();
            let macs = (iters * 24 * 64 * threads) as f64;
            println!(
                "{{\"op\":\"int8-peak\",\"impl\":\"vpdpbusd-zmm\",\"threads\":{threads},\"gmacs\":{:.1},\"gops\":{:.1}}}",
                macs / secs / 1e9,
                2.0 * macs / secs / 1e9
            );
            return;
        }
    }
    eprintln!("int8-peak: no AVX-512 VNNI on this CPU, skipped");
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 24 independent accumulators: enough chains to cover the instruction's latency.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn zmm_chains(iters: usize) -> i32 {
        let mut a = [_mm512_set1_epi32(1); 24];
        let b = _mm512_set1_epi8(1);
        let c = _mm512_set1_epi8(2);
        for _ in 0..iters {
            for v in a.iter_mut() {
                *v = _mm512_dpbusd_epi32(*v, b, c);
            }
        }
        a.iter().fold(0, |s, v| s ^ _mm512_reduce_add_epi32(*v))
    }
}
