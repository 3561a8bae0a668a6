//! A blank SVG figure with its title, split into a chart area and a legend panel.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::style::{DrawResult, FONT, HEIGHT, MIN_CHART_WIDTH, MIN_WIDTH, TITLE_SIZE};

/// The drawing areas of one figure.
pub struct Canvas<'a> {
    root: DrawingArea<SVGBackend<'a>, Shift>,
    /// Where the axes and plot go.
    pub chart: DrawingArea<SVGBackend<'a>, Shift>,
    /// Where the legend goes (right of the chart).
    pub legend: DrawingArea<SVGBackend<'a>, Shift>,
}

impl<'a> Canvas<'a> {
    /// Starts a figure at `path` with a title, leaving `legend_width` pixels on the right and at
    /// least `chart_width` (and [`MIN_CHART_WIDTH`]) for the chart; the figure widens as needed.
    pub fn new(
        path: &'a Path,
        title: &str,
        chart_width: u32,
        legend_width: u32,
    ) -> DrawResult<Self> {
        let width = MIN_WIDTH.max(chart_width.max(MIN_CHART_WIDTH) + legend_width);
        let root = SVGBackend::new(path, (width, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let body = root.titled(title, (FONT, TITLE_SIZE))?;
        let (chart, legend) = body.split_horizontally(width - legend_width);
        Ok(Canvas {
            root,
            chart,
            legend,
        })
    }

    /// Writes the SVG file.
    pub fn finish(self) -> DrawResult {
        self.root.present()?;
        Ok(())
    }
}
