//! Work shared out as runs of consecutive chunks: each task takes chunks from the front of its
//! own run; once its run is empty, it takes over part of what another run has left and goes on
//! from the front of that.
//!
//! At M = 1 every core streams weights from DRAM, and a static split finishes when the slowest
//! core does: the core that picks its task up later (a thread waking up) or streams slower
//! holds the whole call back. Claiming chunks lets the first core done finish the other's
//! tail. What it takes over is chosen to keep every core on long ascending streams, which the
//! hardware prefetchers need: a whole run whose owner has not begun (its thread is busy or
//! descheduled: one core then streams everything in two pieces, as fast as one thread alone),
//! the upper half of a long rest, and single chunks from the back of a short one (the usual
//! tail, where they balance best). Single chunks from the back of long rests, measured: a core
//! left with all the work took twice as long (20 µs instead of 10 at 1024→1024), each chunk
//! starting a cold stream.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One run's unclaimed chunks `[lo, hi)`, packed as `lo | hi << 32` in the first word;
/// whether its owner has begun in the second; the rest padding: consecutive runs' words lie 64
/// bytes apart, so on different cache lines (the owner updates its word on every chunk).
/// Padding rather than `align(64)`, which would make the allocation an aligned one: measured
/// slower (~0.1 µs) than a plain one at this size.
struct Run([AtomicU64; 8]);

impl Run {
    fn word(&self) -> &AtomicU64 {
        &self.0[0]
    }

    fn owner_began(&self) -> &AtomicU64 {
        &self.0[1]
    }
}

fn pack(lo: u64, hi: u64) -> u64 {
    lo | hi << 32
}

fn unpack(v: u64) -> (u64, u64) {
    (v & 0xFFFF_FFFF, v >> 32)
}

/// Rests of at most this many chunks are taken over one chunk at a time, from the back.
/// Measured at 1024→1024 (4 KiB chunks) against halving them too: 0.1–0.2 µs faster.
const SHORT_REST: u64 = 8;

/// Pauses [`WorkRuns::settle`] spins at most (a few µs).
const SETTLE_SPINS: usize = 256;

/// Chunks `0..chunks` cut into `runs` contiguous runs of (nearly) equal length.
pub(crate) struct WorkRuns {
    runs: Vec<Run>,
    /// Tasks between [`WorkRuns::begin`] and [`WorkRuns::end`].
    busy: AtomicUsize,
}

impl WorkRuns {
    /// `runs ≥ 1` runs over `chunks < 2^32` chunks.
    pub(crate) fn new(chunks: usize, runs: usize) -> Self {
        debug_assert!(runs >= 1 && chunks < 1 << 32);
        let runs = (0..runs)
            .map(|r| {
                let (lo, hi) = (chunks * r / runs, chunks * (r + 1) / runs);
                let run = Run(Default::default());
                run.word()
                    .store(pack(lo as u64, hi as u64), Ordering::Relaxed);
                run
            })
            .collect();
        WorkRuns {
            runs,
            busy: AtomicUsize::new(0),
        }
    }

    /// The task owning run `own` starts claiming chunks.
    pub(crate) fn begin(&self, own: usize) {
        self.busy.fetch_add(1, Ordering::Relaxed);
        self.runs[own].owner_began().store(1, Ordering::Relaxed);
    }

    /// A task is done with every chunk it claimed.
    pub(crate) fn end(&self) {
        self.busy.fetch_sub(1, Ordering::Release);
    }

    /// Spins (briefly: at most `SETTLE_SPINS` pauses) until no task that began is still
    /// running chunks. Called by the task of the thread that joins, after its `end`: rayon's
    /// own wait for the other tasks polls between `sched_yield` calls, which costs this
    /// machine ~0.2 µs per call when the last chunk ends elsewhere. Bounded, so a task whose
    /// thread was descheduled only delays the fallback to rayon's wait; tasks that have not
    /// begun are not waited for (the joiner may run them itself).
    pub(crate) fn settle(&self) {
        for _ in 0..SETTLE_SPINS {
            if self.busy.load(Ordering::Acquire) == 0 {
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// Whether every chunk has been claimed (a task that begins now would get none).
    pub(crate) fn all_claimed(&self) -> bool {
        self.runs.iter().all(|r| {
            let (lo, hi) = unpack(r.word().load(Ordering::Relaxed));
            lo >= hi
        })
    }

    /// The next chunk for the task owning run `own` (only that task may pass `own`): the
    /// front of its run; once that is empty, part of another run's rest (the next runs first)
    /// becomes its run (see [`WorkRuns::take_over`]). `None` once every chunk is claimed;
    /// every chunk is handed out exactly once.
    pub(crate) fn next(&self, own: usize) -> Option<usize> {
        if let Some(c) = self.claim_front(own) {
            return Some(c);
        }
        let n = self.runs.len();
        for d in 1..n {
            if let Some((lo, hi)) = self.take_over((own + d) % n) {
                // Our run is empty, and only its owner ever refills a run: a plain store
                // cannot lose a concurrent update (other tasks' compare-exchanges on an empty
                // run never happen, they return first).
                self.runs[own]
                    .word()
                    .store(pack(lo + 1, hi), Ordering::Relaxed);
                return Some(lo as usize);
            }
        }
        None
    }

    /// Takes the front chunk of run `r`, if any is left.
    fn claim_front(&self, r: usize) -> Option<usize> {
        self.update(r, |lo, hi| (pack(lo + 1, hi), lo))
            .map(|c| c as usize)
    }

    /// Takes `[mid, hi)` off run `r`'s rest `[lo, hi)`, if any is left: all of it while the
    /// run's owner has not begun (if it begins later, it takes part back the same way), the
    /// last chunk of a short rest, else the upper half.
    fn take_over(&self, r: usize) -> Option<(u64, u64)> {
        let began = self.runs[r].owner_began().load(Ordering::Relaxed) != 0;
        let mut taken_hi = 0;
        self.update(r, |lo, hi| {
            let mid = if !began {
                lo
            } else if hi - lo <= SHORT_REST {
                hi - 1
            } else {
                lo + (hi - lo) / 2
            };
            taken_hi = hi;
            (pack(lo, mid), mid)
        })
        .map(|mid| (mid, taken_hi))
    }

    /// Applies `f(lo, hi) -> (new word, result)` to run `r` if it is not empty.
    fn update(&self, r: usize, mut f: impl FnMut(u64, u64) -> (u64, u64)) -> Option<u64> {
        // Relaxed is enough: each compare-exchange acts on the word's latest value, so every
        // chunk leaves a word once, and the chunks' results are published by rayon's join,
        // not through these words.
        let word = self.runs[r].word();
        let mut v = word.load(Ordering::Relaxed);
        loop {
            let (lo, hi) = unpack(v);
            if lo >= hi {
                return None;
            }
            let (new, result) = f(lo, hi);
            match word.compare_exchange_weak(v, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(result),
                Err(seen) => v = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn one_task_takes_every_chunk_once_in_few_ascending_pieces() {
        for (chunks, runs) in [
            (1, 1),
            (1, 2),
            (2, 2),
            (5, 3),
            (16, 2),
            (64, 2),
            (257, 4),
            (3, 8),
        ] {
            let w = WorkRuns::new(chunks, runs);
            assert_eq!(w.all_claimed(), chunks == 0);
            // The other runs' owners have begun (so their runs are split in halves).
            (1..runs).for_each(|r| w.begin(r));
            let order: Vec<usize> = std::iter::from_fn(|| w.next(0)).collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(
                sorted,
                (0..chunks).collect::<Vec<_>>(),
                "{chunks}/{runs}: {order:?}"
            );
            // Its own run first, ascending.
            let own = chunks / runs;
            assert_eq!(order[..own], (0..own).collect::<Vec<_>>()[..]);
            // Then halves (about log2 of each other run's length in pieces, each ascending),
            // then the short rests chunk by chunk.
            let pieces = 1 + order.windows(2).filter(|p| p[1] != p[0] + 1).count();
            let per_run = (chunks.div_ceil(runs) + 1).ilog2() as usize + 1 + SHORT_REST as usize;
            assert!(
                pieces <= 1 + (runs - 1) * per_run,
                "{chunks}/{runs}: {pieces} pieces {order:?}"
            );
        }
        // 64 chunks, 2 runs: 0..32, then 48..64, 40..48, then 39, 38, ..., 32.
        let w = WorkRuns::new(64, 2);
        w.begin(1);
        let order: Vec<usize> = std::iter::from_fn(|| w.next(0)).collect();
        let want: Vec<usize> = (0..32)
            .chain(48..64)
            .chain(40..48)
            .chain((32..40).rev())
            .collect();
        assert_eq!(order, want);
        assert!(w.all_claimed());
        // While the other owner has not begun, its whole run in one piece: 0..64.
        let w = WorkRuns::new(64, 2);
        let order: Vec<usize> = std::iter::from_fn(|| w.next(0)).collect();
        assert_eq!(order, (0..64).collect::<Vec<_>>());
        // If it begins then, it takes back the upper half of what is left.
        let w = WorkRuns::new(64, 2);
        w.begin(0);
        let first: Vec<usize> = (0..40).map_while(|_| w.next(0)).collect();
        w.begin(1);
        assert_eq!(w.next(1), Some(52));
        assert_eq!(first, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn concurrent_claims_partition_the_chunks() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        for chunks in [0, 1, 7, 64, 1000, 100_000] {
            for tasks in [2, 3, 4] {
                let w = WorkRuns::new(chunks, tasks);
                let got: Vec<Vec<usize>> = pool.install(|| {
                    (0..tasks)
                        .into_par_iter()
                        .map(|t| {
                            w.begin(t);
                            std::iter::from_fn(|| w.next(t)).collect()
                        })
                        .collect()
                });
                let mut all: Vec<usize> = got.concat();
                all.sort_unstable();
                assert_eq!(all, (0..chunks).collect::<Vec<_>>(), "{chunks}/{tasks}");
            }
        }
    }
}
