//! Static memory of each layer form, grouped by shape.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::bar_chart::{self, BarChart, BarSeries, Scale};
use super::draw_error;
use super::ticks::{format_plain, format_tick};
use crate::dataset::Dataset;
use crate::labels::{form_label, form_order, shape_label};
use crate::Error;

/// Bytes per MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// Writes `memory.svg` if there are memory records; returns the files written.
pub fn render(data: &Dataset, out_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = data.memory();
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    // Shapes from smallest to largest, so groups read left to right by size.
    let shapes: Vec<(u64, u64)> = entries
        .iter()
        .map(|e| (e.k * e.n, e.k, e.n))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .map(|(_, k, n)| (k, n))
        .collect();
    let mut forms: Vec<&str> = entries
        .iter()
        .map(|e| e.form.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    forms.sort_by_key(|form| form_order(form));

    let series = forms
        .iter()
        .enumerate()
        .map(|(index, form)| BarSeries {
            label: form_label(form),
            style_index: index,
            values: shapes
                .iter()
                .map(|&(k, n)| {
                    entries
                        .iter()
                        .find(|e| e.form == *form && e.k == k && e.n == n)
                        .map(|e| e.bytes as f64 / MIB)
                })
                .collect(),
        })
        .collect();
    let chart = BarChart {
        title: "Static memory per layer form".to_string(),
        x_desc: "Layer shape (in → out features)".to_string(),
        // A log axis: the forms differ by up to 16×, and shapes by far more.
        y_desc: "Memory held by the layer (MiB, log scale)".to_string(),
        groups: shapes.iter().map(|&(k, n)| shape_label(k, n)).collect(),
        series,
        scale: Scale::Log,
        reference: None,
        value_label: format_plain,
        tick_label: format_tick,
    };
    let path = out_dir.join("memory.svg");
    bar_chart::draw(&chart, &path).map_err(|e| draw_error(&path, e))?;
    Ok(vec![path])
}
