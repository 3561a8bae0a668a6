//! Log-log line charts: measured series with markers plus dashed reference lines.

use std::path::Path;

use plotters::coord::combinators::BindKeyPoints;
use plotters::prelude::*;

use super::canvas::Canvas;
use super::legend::{self, Entry, Sample};
use super::style::{
    color, draw_marker, marker, DrawResult, AXIS_SIZE, FONT, GRID, LIGHT_GRID, REFERENCE, TICK_SIZE,
};
use super::ticks::{format_tick, log_ticks};

/// Factor of empty space left beyond the data on each side of a log axis.
const PAD: f64 = 1.5;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend text.
    pub label: String,
    /// Style index (color and marker); ignored for references.
    pub style_index: usize,
    /// Points in data coordinates, all > 0.
    pub points: Vec<(f64, f64)>,
    /// A reference (dashed, no markers) rather than a measured series.
    pub reference: bool,
}

/// A log-log chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Figure title.
    pub title: String,
    /// X axis description, with unit.
    pub x_desc: String,
    /// Y axis description, with unit.
    pub y_desc: String,
    /// X values that must be visible (min, max); the axis adds a margin.
    pub x_span: (f64, f64),
    /// Y values that must be visible (min, max); the axis adds a margin. Reference lines must
    /// already be clipped to it, since plotters does not clip.
    pub y_span: (f64, f64),
    /// Measured series first, then references, in legend order.
    pub lines: Vec<Line>,
}

/// (min, max) of some values.
pub fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

/// Padded (min, max) of the given positive values, for a log axis.
pub fn padded_range(span: (f64, f64)) -> (f64, f64) {
    (span.0 / PAD, span.1 * PAD)
}

/// Draws the chart into an SVG file.
pub fn draw(chart: &LineChart, path: &Path) -> DrawResult {
    let entries: Vec<Entry> = chart
        .lines
        .iter()
        .map(|line| Entry {
            label: line.label.clone(),
            style_index: line.style_index,
            sample: if line.reference {
                Sample::Dashed
            } else {
                Sample::Line
            },
        })
        .collect();
    let canvas = Canvas::new(path, &chart.title, 0, legend::width(&entries))?;

    let (x_lo, x_hi) = padded_range(chart.x_span);
    let (y_lo, y_hi) = padded_range(chart.y_span);
    let (x_major, x_minor) = log_ticks(x_lo, x_hi);
    let (y_major, y_minor) = log_ticks(y_lo, y_hi);
    let x_axis = (x_lo..x_hi)
        .log_scale()
        .with_key_points(x_major)
        .with_light_points(x_minor);
    let y_axis = (y_lo..y_hi)
        .log_scale()
        .with_key_points(y_major)
        .with_light_points(y_minor);

    let mut ctx = ChartBuilder::on(&canvas.chart)
        .margin(12)
        .margin_right(24)
        .x_label_area_size(62)
        .y_label_area_size(92)
        .build_cartesian_2d(x_axis, y_axis)?;
    ctx.configure_mesh()
        .x_desc(chart.x_desc.as_str())
        .y_desc(chart.y_desc.as_str())
        .x_label_formatter(&|v| format_tick(*v))
        .y_label_formatter(&|v| format_tick(*v))
        .label_style((FONT, TICK_SIZE))
        .axis_desc_style((FONT, AXIS_SIZE))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(LIGHT_GRID.stroke_width(1))
        .draw()?;

    for line in &chart.lines {
        if line.reference {
            ctx.draw_series(DashedLineSeries::new(
                line.points.iter().copied(),
                8,
                5,
                REFERENCE.stroke_width(2),
            ))?;
            continue;
        }
        let c = color(line.style_index);
        ctx.draw_series(LineSeries::new(
            line.points.iter().copied(),
            c.stroke_width(2),
        ))?;
        for &point in &line.points {
            draw_marker(ctx.plotting_area(), point, marker(line.style_index), c)?;
        }
    }

    // Align the legend's first row with the top of the plot (the chart margin).
    legend::draw(&canvas.legend, &entries, 22)?;
    canvas.finish()
}
