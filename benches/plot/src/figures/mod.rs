//! The four figures, and the chart drawing they share.

pub mod floor;
pub mod latency;
pub mod memory;
pub mod throughput;

mod bar_chart;
mod canvas;
mod legend;
mod line_chart;
mod style;
mod ticks;

use std::path::Path;

use crate::dataset::Dataset;
use crate::labels::{backend_label, shape_label};
use crate::Error;

/// Wraps a drawing failure with the figure's path.
fn draw_error(path: &Path, error: Box<dyn std::error::Error>) -> Error {
    Error::Draw {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

/// "Kind, K→N, BACKEND (cold cache)": the title of a per-shape figure. The cache note is
/// only claimed as far as the records state it.
fn shape_title(kind: &str, data: &Dataset, backend: &str, k: u64, n: u64) -> String {
    let cache = match data.all_cold(backend, k, n) {
        Some(true) => " (cold cache)",
        Some(false) => " (cold cache where recorded)",
        None => "",
    };
    format!(
        "{kind}, {}, {}{cache}",
        shape_label(k, n),
        backend_label(backend)
    )
}

/// Color index of an implementation: its position among the backend's sorted implementations,
/// so it is the same in every figure of that backend.
fn style_index(data: &Dataset, backend: &str, implementation: &str) -> usize {
    data.implementations(backend)
        .iter()
        .position(|name| *name == implementation)
        .unwrap_or(0)
}
