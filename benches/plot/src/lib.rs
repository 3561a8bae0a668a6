//! Draws SVG figures from the JSON lines written by `bitlinear-bench` and the GPU check:
//! latency and throughput against batch size (with the roofline), static memory per layer form,
//! and the share of the memory-bandwidth floor reached at M = 1.
//!
//! ```no_run
//! let records = bitlinear_plot::read_all(&["results.jsonl"])?;
//! let files = bitlinear_plot::render_all(&records, std::path::Path::new("docs/figures"))?;
//! # Ok::<(), bitlinear_plot::Error>(())
//! ```
#![warn(missing_docs)]

pub mod dataset;
mod error;
pub mod figures;
pub mod labels;
pub mod packing;
pub mod records;

use std::path::{Path, PathBuf};

pub use dataset::Dataset;
pub use error::Error;
pub use packing::deployed_packed_bytes;
pub use records::{parse_jsonl, read_all, read_jsonl, Record};

/// Draws every figure the records allow into `out_dir` (created if missing) and returns the
/// paths written, in a fixed order: latency, throughput, memory, bandwidth floor.
///
/// A figure whose data is absent is skipped rather than drawn empty.
pub fn render_all(records: &[Record], out_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(out_dir).map_err(|source| Error::CreateDir {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let data = Dataset::from_records(records);
    let mut written = figures::latency::render(&data, out_dir)?;
    written.extend(figures::throughput::render(&data, out_dir)?);
    written.extend(figures::memory::render(&data, out_dir)?);
    written.extend(figures::floor::render(&data, out_dir)?);
    Ok(written)
}
