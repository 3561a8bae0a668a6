//! Grouped bar charts: one group per shape, one bar per series, values printed above bars.

use std::path::Path;

use plotters::coord::combinators::BindKeyPoints;
use plotters::coord::ranged1d::{
    AsRangedCoord, DefaultFormatting, KeyPointHint, Ranged, ValueFormatter,
};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::canvas::Canvas;
use super::legend::{self, Entry, Sample};
use super::style::{
    color, text_width, DrawResult, AXIS_SIZE, FONT, GRID, LIGHT_GRID, REFERENCE, TICK_SIZE,
    VALUE_SIZE,
};
use super::ticks::log_ticks;

/// One series of bars (one bar per group where it has a value).
#[derive(Debug, Clone)]
pub struct BarSeries {
    /// Legend text.
    pub label: String,
    /// Color index.
    pub style_index: usize,
    /// One value per group; `None` leaves the slot empty.
    pub values: Vec<Option<f64>>,
}

/// Vertical scale of a bar chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    /// Log axis from a power of ten below the smallest value (values must be > 0).
    Log,
    /// Linear axis from zero.
    Linear,
}

/// A horizontal dashed line across the chart.
#[derive(Debug, Clone)]
pub struct Reference {
    /// Y value of the line.
    pub value: f64,
    /// Legend text.
    pub label: String,
}

/// A grouped bar chart.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Figure title.
    pub title: String,
    /// X axis description.
    pub x_desc: String,
    /// Y axis description, with unit.
    pub y_desc: String,
    /// Group labels, left to right.
    pub groups: Vec<String>,
    /// Series in legend order.
    pub series: Vec<BarSeries>,
    /// Vertical scale.
    pub scale: Scale,
    /// Optional horizontal reference line.
    pub reference: Option<Reference>,
    /// Formats the value printed above each bar.
    pub value_label: fn(f64) -> String,
    /// Formats y tick labels.
    pub tick_label: fn(f64) -> String,
}

/// The x axis of a bar chart: group `g` spans `g..g + 1`, and its tick (label) sits at the
/// center. Plotters' own f64 axis cannot take custom ticks together with a label formatter.
#[derive(Debug, Clone, Copy)]
struct GroupAxis {
    groups: usize,
}

impl Ranged for GroupAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let share = value / self.groups.max(1) as f64;
        limit.0 + (share * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, _hint: Hint) -> Vec<f64> {
        (0..self.groups).map(|g| g as f64 + 0.5).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        0.0..self.groups as f64
    }
}

/// Width of the y tick labels and axis description, in pixels.
const Y_LABEL_AREA: u32 = 92;

/// Share of a group's width covered by its bars (the rest separates groups).
const GROUP_FILL: f64 = 0.8;

/// Draws the chart into an SVG file.
pub fn draw(chart: &BarChart, path: &Path) -> DrawResult {
    let values: Vec<f64> = chart
        .series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .chain(chart.reference.as_ref().map(|r| r.value))
        .collect();
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    match chart.scale {
        Scale::Linear => {
            // Headroom for the value labels above the tallest bar (vertical ones included).
            let y_axis = 0.0..max * 1.2;
            draw_with_axis(chart, path, y_axis, 0.0)
        }
        Scale::Log => {
            let min = values.iter().copied().fold(f64::MAX, f64::min);
            // The power of ten strictly below the smallest bar, so that no bar has zero height.
            let lo = 10f64.powf(min.log10().ceil() - 1.0);
            // Log headroom: the label above the tallest bar needs about a seventh of the height.
            let hi = max * (max / lo).powf(0.15);
            let (major, minor) = log_ticks(lo, hi);
            let y_axis = (lo..hi)
                .log_scale()
                .with_key_points(major)
                .with_light_points(minor);
            draw_with_axis(chart, path, y_axis, lo)
        }
    }
}

/// Draws the chart on a given y axis; `baseline` is where bars start.
fn draw_with_axis<Y>(chart: &BarChart, path: &Path, y_axis: Y, baseline: f64) -> DrawResult
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let entries: Vec<Entry> = chart
        .series
        .iter()
        .map(|s| Entry {
            label: s.label.clone(),
            style_index: s.style_index,
            sample: Sample::Bar,
        })
        .chain(chart.reference.iter().map(|r| Entry {
            label: r.label.clone(),
            style_index: 0,
            sample: Sample::Dashed,
        }))
        .collect();
    let groups = chart.groups.len();
    // Widen the figure rather than let group labels run into each other.
    let label_width = chart
        .groups
        .iter()
        .map(|g| text_width(g, TICK_SIZE))
        .max()
        .unwrap_or(0);
    let chart_width = Y_LABEL_AREA + 36 + groups as u32 * (label_width + 16);
    let canvas = Canvas::new(path, &chart.title, chart_width, legend::width(&entries))?;

    let x_axis = GroupAxis { groups };

    let mut ctx = ChartBuilder::on(&canvas.chart)
        .margin(12)
        .margin_right(24)
        .x_label_area_size(62)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x_axis, y_axis)?;
    let group_label = |x: &f64| {
        chart
            .groups
            .get(x.floor().max(0.0) as usize)
            .cloned()
            .unwrap_or_default()
    };
    let tick_label = |y: &f64| (chart.tick_label)(*y);
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_desc(chart.x_desc.as_str())
        .y_desc(chart.y_desc.as_str())
        .x_label_formatter(&group_label)
        .y_label_formatter(&tick_label)
        .label_style((FONT, TICK_SIZE))
        .axis_desc_style((FONT, AXIS_SIZE))
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(LIGHT_GRID.stroke_width(1))
        .draw()?;

    let slots = chart.series.len().max(1) as f64;
    let slot = GROUP_FILL / slots;
    let slot_pixels = ctx.plotting_area().dim_in_pixel().0 as f64 / groups.max(1) as f64 * slot;
    let labels: Vec<Vec<Option<String>>> = chart
        .series
        .iter()
        .map(|series| {
            let values = series.values.iter();
            values.map(|v| v.map(chart.value_label)).collect()
        })
        .collect();
    // Values are printed horizontally where every one fits over its bar, else all vertically, so
    // that neighbouring labels never overlap.
    let horizontal = labels
        .iter()
        .flatten()
        .flatten()
        .all(|text| f64::from(text_width(text, VALUE_SIZE)) <= slot_pixels);
    let value_style = if horizontal {
        (FONT, VALUE_SIZE)
            .into_text_style(ctx.plotting_area())
            .pos(Pos::new(HPos::Center, VPos::Bottom))
    } else {
        (FONT, VALUE_SIZE)
            .into_font()
            .transform(FontTransform::Rotate270)
            .into_text_style(ctx.plotting_area())
            .pos(Pos::new(HPos::Left, VPos::Center))
    };
    for (index, series) in chart.series.iter().enumerate() {
        let fill = color(series.style_index).filled();
        for (group, value) in series.values.iter().enumerate() {
            let Some(value) = *value else { continue };
            let left = group as f64 + (1.0 - GROUP_FILL) / 2.0 + index as f64 * slot;
            // A thin gap between neighbouring bars keeps same-height bars apart.
            let (x0, x1) = (left + slot * 0.06, left + slot * 0.94);
            ctx.draw_series(std::iter::once(Rectangle::new(
                [(x0, baseline), (x1, value)],
                fill,
            )))?;
            if let Some(text) = &labels[index][group] {
                ctx.plotting_area().draw(
                    &(EmptyElement::at(((x0 + x1) / 2.0, value))
                        + Text::new(text.clone(), (0, -4), value_style.clone())),
                )?;
            }
        }
    }
    if let Some(reference) = &chart.reference {
        ctx.draw_series(DashedLineSeries::new(
            [(0.0, reference.value), (groups as f64, reference.value)],
            8,
            5,
            REFERENCE.stroke_width(2),
        ))?;
    }

    legend::draw(&canvas.legend, &entries, 22)?;
    canvas.finish()
}
