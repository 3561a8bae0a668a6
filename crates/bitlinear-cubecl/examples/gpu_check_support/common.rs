//! Helpers every part of the GPU check shares: a deterministic generator, buffer uploads and
//! reads, the check report line, and mismatch summaries.

use bitlinear_cubecl::*;
use cubecl::prelude::*;
use cubecl::server::Handle;

use crate::support::{self, Gran};

pub(crate) const EPS: f32 = DEFAULT_EPS;

/// Small deterministic generator (xorshift64*), so the binary needs no RNG crate.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
    pub(crate) fn vec(&mut self, len: usize, scale: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform() * scale).collect()
    }
    pub(crate) fn ternary(&mut self, len: usize) -> Vec<i8> {
        (0..len).map(|_| (self.next_u64() % 3) as i8 - 1).collect()
    }
}

pub(crate) fn upload_f32<R: Runtime>(c: &ComputeClient<R>, v: &[f32]) -> Handle {
    c.create_from_slice(f32::as_bytes(v))
}

pub(crate) fn read_f32<R: Runtime>(c: &ComputeClient<R>, h: Handle) -> Vec<f32> {
    f32::from_bytes(&c.read_one(h).unwrap()).to_vec()
}

pub(crate) fn read_i32<R: Runtime>(c: &ComputeClient<R>, h: Handle) -> Vec<i32> {
    i32::from_bytes(&c.read_one(h).unwrap()).to_vec()
}

pub(crate) fn read_u32<R: Runtime>(c: &ComputeClient<R>, h: Handle) -> Vec<u32> {
    u32::from_bytes(&c.read_one(h).unwrap()).to_vec()
}

pub(crate) fn sync<R: Runtime>(c: &ComputeClient<R>) {
    cubecl::future::block_on(c.sync()).expect("device sync failed");
}

pub(crate) fn to_api(g: Gran) -> WeightGranularity {
    match g {
        Gran::Tensor => WeightGranularity::PerTensor,
        Gran::Channel => WeightGranularity::PerChannel,
        Gran::Group(s) => WeightGranularity::PerGroup(s),
    }
}

pub(crate) fn report(name: &str, result: std::result::Result<(), String>) -> bool {
    match &result {
        Ok(()) => println!(r#"{{"op":"check","name":"{name}","ok":true}}"#),
        Err(e) => println!(
            r#"{{"op":"check","name":"{name}","ok":false,"detail":"{}"}}"#,
            e.replace('"', "'")
        ),
    }
    result.is_ok()
}

pub(crate) fn activation_codes<R: Runtime>(
    c: &ComputeClient<R>,
    acts: &QuantizedActivations,
) -> Vec<i8> {
    let words = read_u32(c, acts.codes.clone());
    let wpr = acts.words_per_row();
    let mut out = vec![0i8; acts.m * acts.k];
    for r in 0..acts.m {
        for kk in 0..acts.k {
            out[r * acts.k + kk] = words[r * wpr + kk / 4].to_le_bytes()[kk % 4] as i8;
        }
    }
    out
}

pub(crate) fn random_packed<R: Runtime>(
    c: &ComputeClient<R>,
    rng: &mut Rng,
    n: usize,
    k: usize,
    gran: Gran,
) -> (Vec<i8>, Vec<f32>, PackedWeights) {
    let t = rng.ternary(n * k);
    let sw: Vec<f32> = (0..gran.count(n, k))
        .map(|_| 0.01 + 0.1 * rng.uniform().abs())
        .collect();
    let packed = c.create_from_slice(u32::as_bytes(&support::pack(&t, n, k)));
    let w = PackedWeights::from_handles(packed, upload_f32(c, &sw), k, n, to_api(gran)).unwrap();
    (t, sw, w)
}

/// How many of `got` differ from `want` (`[M, N]`), with the first few as `(m, n) got/want`: what
/// a layout bug needs to be located from one run.
pub(crate) fn mismatches(got: &[i32], want: &[i32], n: usize) -> String {
    let bad: Vec<usize> = (0..want.len())
        .filter(|&i| got.get(i) != Some(&want[i]))
        .collect();
    let first: Vec<String> = bad
        .iter()
        .take(6)
        .map(|&i| {
            format!(
                "({},{}) {}/{}",
                i / n,
                i % n,
                got.get(i).copied().unwrap_or(0),
                want[i]
            )
        })
        .collect();
    format!(
        "{} of {} differ, first: {}",
        bad.len(),
        want.len(),
        first.join(" ")
    )
}

/// Random valid packed words (codes 0..=2) for timing.
pub(crate) fn random_words(rng: &mut Rng, count: usize) -> Vec<u32> {
    (0..count)
        .map(|_| {
            let r = rng.next_u64();
            let mut w = 0u32;
            for i in 0..16 {
                w |= ((((r >> (4 * i)) & 0xF) % 3) as u32) << (2 * i);
            }
            w
        })
        .collect()
}

/// Runs a check of the hand-written CUDA kernels, or fails it where they cannot run.
pub(crate) fn raw_check<R: Runtime>(
    c: &ComputeClient<R>,
    check: impl FnOnce() -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    if raw_cuda_available(c) {
        check()
    } else {
        Err("the hand-written CUDA kernels do not run here".into())
    }
}
