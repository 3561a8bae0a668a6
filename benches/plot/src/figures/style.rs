//! Sizes, fonts, colors and markers shared by every figure.

use plotters::coord::CoordTranslate;
use plotters::prelude::*;

/// Result of drawing code; plotters' errors are turned into [`crate::Error::Draw`] by the caller.
pub type DrawResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Figure height in pixels.
pub const HEIGHT: u32 = 600;
/// Narrowest figure in pixels; a long legend makes the figure wider rather than the plot narrower.
pub const MIN_WIDTH: u32 = 900;
/// Narrowest chart area (axes and plot, left of the legend) in pixels.
pub const MIN_CHART_WIDTH: u32 = 620;
/// Font family written into the SVG; the viewer picks the actual font, so none is bundled.
pub const FONT: &str = "sans-serif";
// Plotters' SVG backend writes `font-size` as the given size / 1.24, so these are 1.24× the
// pixel sizes that end up in the file (22, 17, 14, 14 and 11 px).
/// Title font size.
pub const TITLE_SIZE: f64 = 27.3;
/// Axis description font size.
pub const AXIS_SIZE: f64 = 21.1;
/// Tick label font size.
pub const TICK_SIZE: f64 = 17.4;
/// Legend font size.
pub const LEGEND_SIZE: f64 = 17.4;
/// Font size of the value printed above a bar.
pub const VALUE_SIZE: f64 = 13.6;
/// Color of reference lines (rooflines, 100 % lines).
pub const REFERENCE: RGBColor = RGBColor(60, 60, 60);
/// Color of the major grid lines.
pub const GRID: RGBColor = RGBColor(205, 205, 205);
/// Color of the minor grid lines.
pub const LIGHT_GRID: RGBColor = RGBColor(238, 238, 238);

/// Series styles: Tableau 10 plus six darker hues, enough for every implementation of one
/// backend (the GPU check alone has about 14) to get its own color. Markers are picked by hand
/// so that similar hues (red and black-ish, orange and gold, purple and plum, green and teal)
/// never share a marker.
const STYLES: [(RGBColor, Marker); 16] = [
    (RGBColor(31, 119, 180), Marker::Circle),
    (RGBColor(255, 127, 14), Marker::Triangle),
    (RGBColor(44, 160, 44), Marker::Square),
    (RGBColor(214, 39, 40), Marker::Cross),
    (RGBColor(148, 103, 189), Marker::Circle),
    (RGBColor(140, 86, 75), Marker::Triangle),
    (RGBColor(227, 119, 194), Marker::Square),
    (RGBColor(127, 127, 127), Marker::Cross),
    (RGBColor(188, 189, 34), Marker::Circle),
    (RGBColor(23, 190, 207), Marker::Triangle),
    (RGBColor(57, 59, 121), Marker::Square),
    (RGBColor(25, 25, 25), Marker::Circle),
    (RGBColor(99, 121, 57), Marker::Cross),
    (RGBColor(214, 162, 30), Marker::Square),
    (RGBColor(123, 65, 115), Marker::Triangle),
    (RGBColor(0, 110, 90), Marker::Cross),
];

/// Marker shape drawn at each measured point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// Filled circle.
    Circle,
    /// Filled triangle.
    Triangle,
    /// Filled square.
    Square,
    /// Cross.
    Cross,
}

/// Color of the series with the given style index.
pub fn color(index: usize) -> RGBColor {
    STYLES[index % STYLES.len()].0
}

/// Marker of the series with the given style index; shifted once per cycle through the styles so
/// that two series sharing a color never share a marker too.
pub fn marker(index: usize) -> Marker {
    const MARKERS: [Marker; 4] = [
        Marker::Circle,
        Marker::Triangle,
        Marker::Square,
        Marker::Cross,
    ];
    let base = STYLES[index % STYLES.len()].1;
    let position = MARKERS.iter().position(|m| *m == base).unwrap_or(0);
    MARKERS[(position + index / STYLES.len()) % MARKERS.len()]
}

/// Rough rendered width in pixels of a text set at plotters font size `size` (written to the SVG
/// as `size / 1.24` px). Sans-serif letters average about 0.55 em and digits 0.64 em; 0.6 errs
/// on the wide side so that space reserved from it is enough.
pub fn text_width(text: &str, size: f64) -> u32 {
    (text.chars().count() as f64 * size / 1.24 * 0.6).ceil() as u32
}

/// Draws one marker centered at `at` (in the area's coordinates).
pub fn draw_marker<DB, CT>(
    area: &DrawingArea<DB, CT>,
    at: CT::From,
    kind: Marker,
    color: RGBColor,
) -> DrawResult
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
    CT::From: Clone + 'static,
{
    let fill = color.filled();
    match kind {
        Marker::Circle => area.draw(&(EmptyElement::at(at) + Circle::new((0, 0), 4, fill)))?,
        Marker::Triangle => {
            area.draw(&(EmptyElement::at(at) + TriangleMarker::new((0, 0), 5, fill)))?
        }
        Marker::Square => {
            area.draw(&(EmptyElement::at(at) + Rectangle::new([(-4, -4), (4, 4)], fill)))?
        }
        Marker::Cross => {
            area.draw(&(EmptyElement::at(at) + Cross::new((0, 0), 4, color.stroke_width(2))))?
        }
    }
    Ok(())
}
