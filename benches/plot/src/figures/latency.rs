//! Latency versus batch size, log-log, one line per implementation.

use std::path::{Path, PathBuf};

use super::line_chart::{self, span, Line, LineChart};
use super::{draw_error, shape_title, style_index};
use crate::dataset::Dataset;
use crate::labels::{file_component, impl_label};
use crate::Error;

/// Writes `latency-<backend>-<k>x<k>.svg` for every square shape measured at two or more batch
/// sizes; returns the files written.
pub fn render(data: &Dataset, out_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    for (backend, k) in data.square_sweeps() {
        let path = out_dir.join(format!("latency-{}-{k}x{k}.svg", file_component(&backend)));
        let chart = chart(data, &backend, k);
        line_chart::draw(&chart, &path).map_err(|e| draw_error(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// The chart for one backend and square shape `k`→`k`.
fn chart(data: &Dataset, backend: &str, k: u64) -> LineChart {
    let lines: Vec<Line> = data
        .series(backend, k, k)
        .into_iter()
        .map(|series| Line {
            label: impl_label(series.implementation),
            style_index: style_index(data, backend, series.implementation),
            points: series
                .points
                .iter()
                .map(|r| (r.m as f64, r.median_us))
                .collect(),
            reference: false,
        })
        .collect();
    LineChart {
        title: shape_title("Latency", data, backend, k, k),
        x_desc: "Batch size M (rows)".to_string(),
        y_desc: "Median latency (µs)".to_string(),
        x_span: span(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0))),
        y_span: span(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1))),
        lines,
    }
}
