//! Parsing JSON lines from `bitlinear-bench` and the GPU check into typed records.

use std::path::Path;

use serde_json::{Map, Value};

use crate::Error;

/// One timed run of a whole linear layer (`op` = `linear`).
///
/// The GPU check's `op` = `matmul` lines time the product alone on pre-quantized activations
/// (its kernel variants); they are skipped so that every series in a figure times the same work.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// Normalized backend: `cpu` (also for a missing field and `ndarray`), `cuda`, `wgpu`, ...
    pub backend: String,
    /// The benchmark's `impl` name, e.g. `bitlinear-avx512vnni`.
    pub implementation: String,
    /// Batch size (rows of the input).
    pub m: u64,
    /// Input features.
    pub k: u64,
    /// Output features.
    pub n: u64,
    /// Median time of one call in microseconds.
    pub median_us: f64,
    /// Bytes of the packed weights, when the record states them.
    pub packed_bytes: Option<u64>,
    /// Whether the record says it was measured with a cold cache (rather than saying nothing).
    pub cold: bool,
}

/// A measured memory bandwidth (`op` = `membw` or `copy`).
#[derive(Debug, Clone, PartialEq)]
pub struct Bandwidth {
    /// Normalized backend.
    pub backend: String,
    /// Bandwidth in GB/s.
    pub gbps: f64,
}

/// A measured int8 compute peak (`op` = `int8-peak`).
#[derive(Debug, Clone, PartialEq)]
pub struct Peak {
    /// Normalized backend.
    pub backend: String,
    /// Peak in giga-operations per second (one multiply-add counts as two).
    pub gops: f64,
}

/// Static memory of one layer form at one shape (`op` = `memory`).
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    /// Layer form, e.g. `burn-linear-f32`, `bitlinear-train`, `bitlinear-deployed`.
    pub form: String,
    /// Input features.
    pub k: u64,
    /// Output features.
    pub n: u64,
    /// Bytes held by the layer.
    pub bytes: u64,
}

/// A record the figures use; every other kind of line is skipped.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Latency of one implementation at one shape.
    Latency(Latency),
    /// Memory bandwidth of a backend.
    Bandwidth(Bandwidth),
    /// Int8 compute peak of a backend.
    Peak(Peak),
    /// Static memory of a layer form.
    Memory(Memory),
}

/// Maps the `backend` field to the name used in figures: missing or `ndarray` means the CPU.
pub fn normalize_backend(field: Option<&str>) -> String {
    match field {
        None | Some("ndarray") | Some("cpu") => "cpu".to_string(),
        Some(other) => other.to_ascii_lowercase(),
    }
}

/// Turns one parsed JSON value into a record, or `None` for an unknown `op`, a hot-cache run, or
/// an object that lacks (or has unusable) fields the figures need.
pub fn parse_record(value: &Value) -> Option<Record> {
    let object = value.as_object()?;
    let backend = || normalize_backend(object.get("backend").and_then(Value::as_str));
    match object.get("op")?.as_str()? {
        "linear" => {
            let cold = match object.get("cache") {
                None => false,
                Some(cache) => match cache.as_str()? {
                    "cold" => true,
                    // Hot-cache runs measure a different thing (weights in cache): not plotted.
                    _ => return None,
                },
            };
            Some(Record::Latency(Latency {
                backend: backend(),
                implementation: object.get("impl")?.as_str()?.to_string(),
                m: positive_int(object, "m")?,
                k: positive_int(object, "k")?,
                n: positive_int(object, "n")?,
                median_us: positive_float(object, "median_us")?,
                packed_bytes: object.get("packed_bytes").and_then(Value::as_u64),
                cold,
            }))
        }
        "membw" | "copy" => Some(Record::Bandwidth(Bandwidth {
            backend: backend(),
            gbps: positive_float(object, "gbps")?,
        })),
        "int8-peak" => Some(Record::Peak(Peak {
            backend: backend(),
            gops: positive_float(object, "gops")?,
        })),
        "memory" => Some(Record::Memory(Memory {
            form: object.get("form")?.as_str()?.to_string(),
            k: positive_int(object, "k")?,
            n: positive_int(object, "n")?,
            bytes: positive_int(object, "bytes")?,
        })),
        _ => None,
    }
}

/// Parses JSON-lines text; `file` names the source in error messages.
///
/// Blank lines are skipped, so are valid objects that are not usable records; a line that is not
/// valid JSON is an error naming the file and its 1-based line number.
pub fn parse_jsonl(file: &str, text: &str) -> Result<Vec<Record>, Error> {
    let mut records = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|source| Error::InvalidJson {
            file: file.to_string(),
            line: index + 1,
            source,
        })?;
        records.extend(parse_record(&value));
    }
    Ok(records)
}

/// Reads and parses one JSON-lines file.
pub fn read_jsonl(path: &Path) -> Result<Vec<Record>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_jsonl(&path.display().to_string(), &text)
}

/// Reads several files in order, concatenating their records (later records win on duplicates).
pub fn read_all<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<Record>, Error> {
    let mut records = Vec::new();
    for path in paths {
        records.extend(read_jsonl(path.as_ref())?);
    }
    Ok(records)
}

/// A strictly positive integer field (zero sizes cannot be drawn on log axes).
fn positive_int(object: &Map<String, Value>, key: &str) -> Option<u64> {
    object.get(key)?.as_u64().filter(|&v| v > 0)
}

/// A strictly positive, finite float field.
fn positive_float(object: &Map<String, Value>, key: &str) -> Option<f64> {
    object
        .get(key)?
        .as_f64()
        .filter(|v| v.is_finite() && *v > 0.0)
}
