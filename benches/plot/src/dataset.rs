//! Records grouped for plotting: duplicates resolved, ceilings looked up per backend.

use std::collections::{BTreeMap, BTreeSet};

use crate::packing::deployed_packed_bytes;
use crate::records::{Latency, Record};

/// Identity of a latency measurement; a later record with the same key replaces an earlier one.
type LatencyKey = (String, String, u64, u64, u64);

/// Benchmark results organized for the figures. Every collection is ordered, so output is
/// deterministic.
#[derive(Debug, Default, Clone)]
pub struct Dataset {
    latency: BTreeMap<LatencyKey, Latency>,
    bandwidth_gbps: BTreeMap<String, f64>,
    peak_gops: BTreeMap<String, f64>,
    memory: BTreeMap<(u64, u64, String), u64>,
    packed_bytes: BTreeMap<(u64, u64), u64>,
}

/// One line series: an implementation's records sorted by batch size.
#[derive(Debug, Clone)]
pub struct Series<'a> {
    /// The `impl` name.
    pub implementation: &'a str,
    /// Its records, ascending in `m`.
    pub points: Vec<&'a Latency>,
}

/// The static memory of one layer form at one shape.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEntry {
    /// Input features.
    pub k: u64,
    /// Output features.
    pub n: u64,
    /// Layer form name.
    pub form: String,
    /// Bytes held.
    pub bytes: u64,
}

impl Dataset {
    /// Builds the dataset from records in reading order (files in argument order, lines in order).
    pub fn from_records(records: &[Record]) -> Self {
        let mut data = Dataset::default();
        for record in records {
            match record {
                Record::Latency(r) => {
                    let key = (r.backend.clone(), r.implementation.clone(), r.m, r.k, r.n);
                    if let Some(bytes) = r.packed_bytes {
                        data.packed_bytes.insert((r.k, r.n), bytes);
                    }
                    data.latency.insert(key, r.clone());
                }
                Record::Bandwidth(r) => max_into(&mut data.bandwidth_gbps, &r.backend, r.gbps),
                Record::Peak(r) => max_into(&mut data.peak_gops, &r.backend, r.gops),
                Record::Memory(r) => {
                    data.memory.insert((r.k, r.n, r.form.clone()), r.bytes);
                }
            }
        }
        data
    }

    /// Backends that have latency records, sorted.
    pub fn latency_backends(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self.latency.keys().map(|key| key.0.as_str()).collect();
        set.into_iter().collect()
    }

    /// `(backend, k)` of every square shape (k == n) measured at two or more batch sizes.
    pub fn square_sweeps(&self) -> Vec<(String, u64)> {
        let mut sizes: BTreeMap<(String, u64), BTreeSet<u64>> = BTreeMap::new();
        for r in self.latency.values().filter(|r| r.k == r.n) {
            sizes
                .entry((r.backend.clone(), r.k))
                .or_default()
                .insert(r.m);
        }
        sizes
            .into_iter()
            .filter(|(_, ms)| ms.len() >= 2)
            .map(|(key, _)| key)
            .collect()
    }

    /// Line series for one backend and shape, sorted by implementation name.
    pub fn series(&self, backend: &str, k: u64, n: u64) -> Vec<Series<'_>> {
        let mut by_impl: BTreeMap<&str, Vec<&Latency>> = BTreeMap::new();
        for r in self.latency.values() {
            if r.backend == backend && r.k == k && r.n == n {
                by_impl.entry(&r.implementation).or_default().push(r);
            }
        }
        by_impl
            .into_iter()
            .map(|(implementation, mut points)| {
                points.sort_by_key(|r| r.m);
                Series {
                    implementation,
                    points,
                }
            })
            .collect()
    }

    /// Single-row (M = 1) records of a backend whose weight bytes are known, with those bytes.
    ///
    /// Bytes come from the record's `packed_bytes`, else, for a `bitlinear-*` implementation (the
    /// GPU check does not report them), from the deployed layout size.
    pub fn single_row_with_bytes(&self, backend: &str) -> Vec<(&Latency, u64)> {
        self.latency
            .values()
            .filter(|r| r.backend == backend && r.m == 1)
            .filter_map(|r| {
                let bytes = r.packed_bytes.or_else(|| {
                    r.implementation
                        .starts_with("bitlinear-")
                        .then(|| deployed_packed_bytes(r.k, r.n))
                })?;
                Some((r, bytes))
            })
            .collect()
    }

    /// Whether every latency record of a backend and shape says "cold cache"; `None` if none do.
    pub fn all_cold(&self, backend: &str, k: u64, n: u64) -> Option<bool> {
        let records: Vec<&Latency> = self
            .latency
            .values()
            .filter(|r| r.backend == backend && r.k == k && r.n == n)
            .collect();
        if records.iter().any(|r| r.cold) {
            Some(records.iter().all(|r| r.cold))
        } else {
            None
        }
    }

    /// The highest measured memory bandwidth of a backend, GB/s.
    pub fn bandwidth_gbps(&self, backend: &str) -> Option<f64> {
        self.bandwidth_gbps.get(backend).copied()
    }

    /// The highest measured int8 peak of a backend, GOPS.
    pub fn peak_gops(&self, backend: &str) -> Option<f64> {
        self.peak_gops.get(backend).copied()
    }

    /// Packed weight bytes of a shape as reported by deployed records, if any reported them.
    pub fn packed_bytes(&self, k: u64, n: u64) -> Option<u64> {
        self.packed_bytes.get(&(k, n)).copied()
    }

    /// All memory records, ordered by shape then form name.
    pub fn memory(&self) -> Vec<MemoryEntry> {
        self.memory
            .iter()
            .map(|((k, n, form), &bytes)| MemoryEntry {
                k: *k,
                n: *n,
                form: form.clone(),
                bytes,
            })
            .collect()
    }

    /// All implementation names of a backend, sorted; an implementation's index here picks its
    /// color, so it keeps the same color in every figure of that backend.
    pub fn implementations(&self, backend: &str) -> Vec<&str> {
        let set: BTreeSet<&str> = self
            .latency
            .values()
            .filter(|r| r.backend == backend)
            .map(|r| r.implementation.as_str())
            .collect();
        set.into_iter().collect()
    }
}

/// Keeps the maximum value per backend (the best run is the ceiling).
fn max_into(map: &mut BTreeMap<String, f64>, backend: &str, value: f64) {
    let entry = map.entry(backend.to_string()).or_insert(value);
    *entry = entry.max(value);
}
