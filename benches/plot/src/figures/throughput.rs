//! Throughput versus batch size, log-log, with the hardware roofline as a dashed line.

use std::path::{Path, PathBuf};

use super::line_chart::{self, padded_range, span, Line, LineChart};
use super::ticks::format_plain;
use super::{draw_error, shape_title, style_index};
use crate::dataset::Dataset;
use crate::labels::{file_component, impl_label};
use crate::packing::deployed_packed_bytes;
use crate::Error;

/// Giga-operations per second of an M×K by K×N product taking `median_us` (a multiply-add
/// counts as two operations).
pub fn gops(m: u64, k: u64, n: u64, median_us: f64) -> f64 {
    2.0 * m as f64 * k as f64 * n as f64 / median_us / 1e3
}

/// The attainable throughput of a backend at one shape, from whichever ceilings were measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roofline {
    /// Int8 compute peak, GOPS.
    pub peak_gops: Option<f64>,
    /// Memory bandwidth, GB/s.
    pub bandwidth_gbps: Option<f64>,
    /// Bytes of packed weights streamed per call.
    pub packed_bytes: u64,
    /// Input features.
    pub k: u64,
    /// Output features.
    pub n: u64,
}

impl Roofline {
    /// GOPS per row when bandwidth-bound: each call streams the weights once and does
    /// `2·M·K·N` operations, so throughput is `bw · 2·M·K·N / bytes`.
    fn bandwidth_slope(&self) -> Option<f64> {
        let bw = self.bandwidth_gbps?;
        Some(bw * 2.0 * self.k as f64 * self.n as f64 / self.packed_bytes as f64)
    }

    /// `min(peak, bw · 2·M·K·N / bytes)` at batch size `m`, using what is known.
    pub fn at(&self, m: f64) -> Option<f64> {
        let bandwidth = self.bandwidth_slope().map(|slope| slope * m);
        match (self.peak_gops, bandwidth) {
            (Some(peak), Some(bw)) => Some(peak.min(bw)),
            (peak, bw) => peak.or(bw),
        }
    }

    /// Points of the roofline for `m` in `m_range`, clipped to `y_range`. The roofline is
    /// piecewise straight on log-log axes, so its break points (the ridge and the clip
    /// crossings) are enough to draw it exactly.
    pub fn points(&self, m_range: (f64, f64), y_range: (f64, f64)) -> Vec<(f64, f64)> {
        let mut ms = vec![m_range.0, m_range.1];
        if let Some(slope) = self.bandwidth_slope() {
            ms.extend([y_range.0 / slope, y_range.1 / slope]);
            ms.extend(self.peak_gops.map(|peak| peak / slope));
        }
        ms.retain(|m| *m >= m_range.0 && *m <= m_range.1);
        ms.sort_by(f64::total_cmp);
        ms.dedup();
        // Float slack so points exactly on a clip edge are kept.
        let (lo, hi) = (y_range.0 * (1.0 - 1e-9), y_range.1 * (1.0 + 1e-9));
        ms.into_iter()
            .filter_map(|m| Some((m, self.at(m)?)))
            .filter(|(_, y)| *y >= lo && *y <= hi)
            .collect()
    }

    /// Legend text describing the ceilings used.
    pub fn label(&self) -> String {
        match (self.peak_gops, self.bandwidth_gbps) {
            (Some(peak), Some(bw)) => format!(
                "Roofline: int8 peak {} GOPS, {} GB/s",
                format_plain(peak),
                format_plain(bw)
            ),
            (None, Some(bw)) => format!("Bandwidth roofline, {} GB/s", format_plain(bw)),
            (Some(peak), None) => format!("int8 peak, {} GOPS", format_plain(peak)),
            (None, None) => String::new(),
        }
    }
}

/// Writes `throughput-<backend>-<k>x<k>.svg` for every square shape measured at two or more batch
/// sizes; returns the files written.
pub fn render(data: &Dataset, out_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    for (backend, k) in data.square_sweeps() {
        let path = out_dir.join(format!(
            "throughput-{}-{k}x{k}.svg",
            file_component(&backend)
        ));
        let chart = chart(data, &backend, k);
        line_chart::draw(&chart, &path).map_err(|e| draw_error(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// The chart for one backend and square shape `k`→`k`.
fn chart(data: &Dataset, backend: &str, k: u64) -> LineChart {
    let mut lines: Vec<Line> = data
        .series(backend, k, k)
        .into_iter()
        .map(|series| Line {
            label: impl_label(series.implementation),
            style_index: style_index(data, backend, series.implementation),
            points: series
                .points
                .iter()
                .map(|r| (r.m as f64, gops(r.m, r.k, r.n, r.median_us)))
                .collect(),
            reference: false,
        })
        .collect();
    let x_span = span(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)));
    let (mut y_lo, mut y_hi) = span(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));

    let roofline = Roofline {
        peak_gops: data.peak_gops(backend),
        bandwidth_gbps: data.bandwidth_gbps(backend),
        // Deployed records report their weight bytes; otherwise the layout gives them.
        packed_bytes: data
            .packed_bytes(k, k)
            .unwrap_or_else(|| deployed_packed_bytes(k, k)),
        k,
        n: k,
    };
    let x_axis = padded_range(x_span);
    if let (Some(start), Some(end)) = (roofline.at(x_axis.0), roofline.at(x_axis.1)) {
        // Show the roofline where it is near the data, without squashing the data to make room
        // for a ceiling orders of magnitude above it (a bandwidth-only roofline keeps rising).
        if start >= y_lo / 10.0 {
            y_lo = y_lo.min(start);
        }
        y_hi = y_hi.max(end.min(y_hi * 2.0));
        let points = roofline.points(x_axis, padded_range((y_lo, y_hi)));
        if points.len() >= 2 {
            lines.push(Line {
                label: roofline.label(),
                style_index: 0,
                points,
                reference: true,
            });
        }
    }

    LineChart {
        title: shape_title("Throughput", data, backend, k, k),
        x_desc: "Batch size M (rows)".to_string(),
        y_desc: "Throughput (GOPS = 2·M·K·N / time)".to_string(),
        x_span,
        y_span: (y_lo, y_hi),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu_roofline() -> Roofline {
        Roofline {
            peak_gops: Some(900.0),
            bandwidth_gbps: Some(30.0),
            packed_bytes: 4 * 1024 * 1024,
            k: 4096,
            n: 4096,
        }
    }

    #[test]
    fn roofline_is_bandwidth_bound_then_flat() {
        let roof = cpu_roofline();
        // 30 GB/s over 4 MiB of weights at 2·4096² ops per row: 240 GOPS per row.
        assert!((roof.at(1.0).unwrap() - 240.0).abs() < 1e-9);
        assert_eq!(roof.at(64.0), Some(900.0));
    }

    #[test]
    fn roofline_points_include_the_ridge_and_respect_the_clip() {
        let roof = cpu_roofline();
        let points = roof.points((0.1, 1000.0), (100.0, 1000.0));
        let ridge = 900.0 / 240.0;
        assert!(points.iter().any(|(m, _)| (m - ridge).abs() < 1e-9));
        assert!(points
            .iter()
            .all(|(_, y)| *y >= 100.0 - 1e-6 && *y <= 1000.0));
        // Starts where the rising part enters the plot, not below it.
        assert!((points[0].0 - 100.0 / 240.0).abs() < 1e-9);
    }

    #[test]
    fn missing_ceilings_degrade_gracefully() {
        let bw_only = Roofline {
            peak_gops: None,
            ..cpu_roofline()
        };
        assert_eq!(bw_only.at(1000.0), Some(240_000.0));
        let none = Roofline {
            peak_gops: None,
            bandwidth_gbps: None,
            ..cpu_roofline()
        };
        assert_eq!(none.at(1.0), None);
        assert!(none.points((1.0, 10.0), (1.0, 10.0)).is_empty());
    }

    #[test]
    fn gops_counts_multiply_adds_twice() {
        // 2·1·1000·1000 operations in 1000 µs = 2 GOPS.
        assert!((gops(1, 1000, 1000, 1000.0) - 2.0).abs() < 1e-12);
    }
}
