//! Back-to-back timing for the GPU check: calls that run one after another at the device's
//! pace, as a model's layers do in decoding, instead of synchronized batches bound by the host.
//!
//! At M = 1 a layer takes a few microseconds on the device, but CubeCL's host launch path costs
//! ~13–15 µs per launch, so a synchronized batch measures the host, and Nsight Compute's device
//! time of one isolated launch (caches flushed) includes the whole launch, ramp and drain that
//! consecutive kernels on a stream partly overlap. Here a spin kernel (enough one-unit cubes to
//! outlast the host's queueing) holds the stream while the host queues every call; the calls
//! then run back to back, each waiting only for the previous one. Per call: (spin + calls − spin alone) / calls, the two timed in
//! alternation around a device sync, median over batches. The caller rotates the weights over
//! copies larger than L2 together, so each call reads them from DRAM, as a model's next layer
//! does.

use std::time::Instant;

use cubecl::prelude::*;
use cubecl::server::Handle;

/// Each unit steps a xorshift generator 32 768 times, with a multiplier read at run time: a chain
/// of dependent steps with no closed form for a compiler to substitute (an affine step with
/// constant coefficients was folded away by lavapipe's compiler), and a store that depends on
/// the result. The spin's length is set by the number of one-unit cubes, not by the steps: on
/// lavapipe, an invocation ends any loop after 65 535 iterations in all.
#[cube(launch_unchecked)]
fn spin_kernel(state: &mut Array<u32>) {
    let mut x = state[0] + UNIT_POS + CUBE_POS_X;
    let mul = state[1];
    for _ in 0..128u32 {
        for _ in 0..256u32 {
            x ^= x << 13u32;
            x ^= x >> 17u32;
            x ^= x << 5u32;
            x *= mul;
        }
    }
    if x == 0u32 {
        state[0] = x;
    }
}

/// A calibrated spin kernel on one client.
pub struct BackToBack<'a, R: Runtime> {
    client: &'a ComputeClient<R>,
    state: Handle,
    /// Microseconds per cube of the spin kernel (launch and sync included, measured over ≥ 2 ms).
    us_per_cube: f64,
}

/// The result of [`BackToBack::time`].
pub struct BackToBackTiming {
    /// Median device time per call when the calls run back to back.
    pub per_call_us: f64,
    /// The host had not finished queueing the calls when the spin ended in some batch: the
    /// figure then includes host launch cost (and is an upper bound).
    pub host_bound: bool,
}

impl<'a, R: Runtime> BackToBack<'a, R> {
    /// Calibrates the spin kernel's speed on `client` (a few milliseconds); `None` where no
    /// number of cubes makes it last 2 ms (a compiler shortened the loop after all).
    pub fn new(client: &'a ComputeClient<R>) -> Option<Self> {
        let state = client.create_from_slice(u32::as_bytes(&[1, 0x9E37_79B1]));
        let mut this = Self {
            client,
            state,
            us_per_cube: 0.0,
        };
        // The first launch compiles the kernel.
        this.spin_alone_us(1);
        let mut cubes = 1u32;
        loop {
            let us = this.spin_alone_us(cubes);
            if us >= 2000.0 {
                this.us_per_cube = us / cubes as f64;
                return Some(this);
            }
            if cubes >= 1 << 24 {
                return None;
            }
            cubes *= 4;
        }
    }

    fn sync(&self) {
        cubecl::future::block_on(self.client.sync()).expect("device sync failed");
    }

    fn launch_spin(&self, cubes: u32) {
        // SAFETY: every unit reads elements 0 and 1 of a two-element buffer and may write
        // element 0 (a benign race: the value only keeps the loop alive).
        unsafe {
            spin_kernel::launch_unchecked::<R>(
                self.client,
                CubeCount::Static(cubes.min(65_535), cubes.div_ceil(65_535), 1),
                CubeDim::new_1d(1),
                ArrayArg::from_raw_parts(self.state.clone(), 2),
            )
        }
    }

    /// Host time of one synchronized spin on `cubes` cubes.
    fn spin_alone_us(&self, cubes: u32) -> f64 {
        self.sync();
        let t = Instant::now();
        self.launch_spin(cubes);
        self.sync();
        t.elapsed().as_secs_f64() * 1e6
    }

    /// Per-call device time of `calls` calls of `f` (given a running index) run back to back,
    /// median of `batches`. `host_us_per_call` (the host's cost to issue one call, e.g. the
    /// `enqueue` figure of a synchronized timing) sizes the spin so it outlasts the queueing.
    pub fn time(
        &self,
        calls: usize,
        batches: usize,
        host_us_per_call: f64,
        mut f: impl FnMut(usize),
    ) -> BackToBackTiming {
        let calls = calls.max(1);
        let target_us = (2.0 * calls as f64 * host_us_per_call).max(2000.0);
        let cubes = (target_us / self.us_per_cube).clamp(1.0, (1u32 << 28) as f64) as u32;
        // Warm-up: compiled kernels, allocated outputs.
        f(0);
        self.sync();
        let mut counter = 1;
        let mut per_call = Vec::with_capacity(batches);
        let mut host_bound = false;
        for _ in 0..batches.max(1) {
            let alone = self.spin_alone_us(cubes);
            self.sync();
            let t = Instant::now();
            self.launch_spin(cubes);
            for _ in 0..calls {
                f(counter);
                counter += 1;
            }
            let queued = t.elapsed().as_secs_f64() * 1e6;
            self.sync();
            let total = t.elapsed().as_secs_f64() * 1e6;
            host_bound |= queued > 0.8 * alone;
            per_call.push((total - alone) / calls as f64);
        }
        per_call.sort_by(|a, b| a.partial_cmp(b).unwrap());
        BackToBackTiming {
            per_call_us: per_call[per_call.len() / 2],
            host_bound,
        }
    }
}
