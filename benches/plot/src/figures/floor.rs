//! How close single-row (M = 1) calls come to the memory-bandwidth floor: the time it takes just
//! to stream the packed weights once at the measured bandwidth.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::bar_chart::{self, BarChart, BarSeries, Reference, Scale};
use super::ticks::format_plain;
use super::{draw_error, style_index};
use crate::dataset::Dataset;
use crate::labels::{backend_label, file_component, impl_label, shape_label};
use crate::Error;

/// Percentage of the bandwidth floor reached: achieved weight GB/s over measured GB/s.
pub fn floor_percent(packed_bytes: u64, median_us: f64, bandwidth_gbps: f64) -> f64 {
    packed_bytes as f64 / median_us / 1e3 / bandwidth_gbps * 100.0
}

/// Writes `bandwidth-floor-<backend>.svg` for every backend with a bandwidth record and M = 1
/// records whose weight bytes are known; returns the files written.
pub fn render(data: &Dataset, out_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    for backend in data.latency_backends() {
        let Some(bandwidth) = data.bandwidth_gbps(backend) else {
            continue;
        };
        let rows = data.single_row_with_bytes(backend);
        if rows.is_empty() {
            continue;
        }
        let shapes: Vec<(u64, u64)> = rows
            .iter()
            .map(|(r, _)| (r.k * r.n, r.k, r.n))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|(_, k, n)| (k, n))
            .collect();
        let mut percent: BTreeMap<&str, Vec<Option<f64>>> = BTreeMap::new();
        for (record, bytes) in &rows {
            let group = shapes
                .iter()
                .position(|&s| s == (record.k, record.n))
                .expect("shape collected above");
            percent
                .entry(&record.implementation)
                .or_insert_with(|| vec![None; shapes.len()])[group] =
                Some(floor_percent(*bytes, record.median_us, bandwidth));
        }
        let series = percent
            .into_iter()
            .map(|(implementation, values)| BarSeries {
                label: impl_label(implementation),
                style_index: style_index(data, backend, implementation),
                values,
            })
            .collect();
        let chart = BarChart {
            title: format!(
                "Bandwidth floor reached at M = 1, {}",
                backend_label(backend)
            ),
            x_desc: "Layer shape (in → out features)".to_string(),
            y_desc: "Weight bytes per second, % of measured bandwidth".to_string(),
            groups: shapes.iter().map(|&(k, n)| shape_label(k, n)).collect(),
            series,
            scale: Scale::Linear,
            reference: Some(Reference {
                value: 100.0,
                label: format!("100% = {} GB/s measured", format_plain(bandwidth)),
            }),
            value_label: |v| format!("{v:.0}%"),
            tick_label: |v| format!("{v:.0}%"),
        };
        let path = out_dir.join(format!("bandwidth-floor-{}.svg", file_component(backend)));
        bar_chart::draw(&chart, &path).map_err(|e| draw_error(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_of_floor() {
        // 4 MB in 100 µs is 40 GB/s; against 80 GB/s that is half the floor.
        assert!((floor_percent(4_000_000, 100.0, 80.0) - 50.0).abs() < 1e-9);
    }
}
