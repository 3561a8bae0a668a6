//! The legend panel drawn to the right of a chart, outside the plot so it never hides data.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{
    color, draw_marker, marker, text_width, DrawResult, FONT, LEGEND_SIZE, REFERENCE,
};

/// How an entry's sample is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// A solid line with the series' marker (a measured series).
    Line,
    /// A dashed reference line.
    Dashed,
    /// A filled box (a bar series).
    Bar,
}

/// One legend row.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Text shown.
    pub label: String,
    /// Style index of the series (color and marker); unused for dashed references.
    pub style_index: usize,
    /// Sample drawn left of the text.
    pub sample: Sample,
}

/// Horizontal space before the text: margin, 30 px sample, gap.
const TEXT_X: i32 = 52;
/// Vertical distance between rows.
const ROW: i32 = (LEGEND_SIZE * 1.7) as i32;

/// Width the legend panel needs for these entries.
pub fn width(entries: &[Entry]) -> u32 {
    let widest = entries
        .iter()
        .map(|e| text_width(&e.label, LEGEND_SIZE))
        .max()
        .unwrap_or(0);
    TEXT_X as u32 + widest + 16
}

/// Draws the entries top-down, starting `top` pixels below the panel's upper edge.
pub fn draw(area: &DrawingArea<SVGBackend<'_>, Shift>, entries: &[Entry], top: i32) -> DrawResult {
    let text_style = (FONT, LEGEND_SIZE)
        .into_text_style(area)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (row, entry) in entries.iter().enumerate() {
        let y = top + row as i32 * ROW;
        let (x0, x1) = (12, 42);
        match entry.sample {
            Sample::Line => {
                let c = color(entry.style_index);
                area.draw(&PathElement::new(vec![(x0, y), (x1, y)], c.stroke_width(2)))?;
                draw_marker(area, ((x0 + x1) / 2, y), marker(entry.style_index), c)?;
            }
            Sample::Dashed => {
                let points = vec![(x0, y), (x1, y)];
                area.draw(&DashedPathElement::new(
                    points,
                    6,
                    4,
                    REFERENCE.stroke_width(2),
                ))?;
            }
            Sample::Bar => {
                let c = color(entry.style_index);
                area.draw(&Rectangle::new(
                    [(x0 + 6, y - 7), (x1 - 6, y + 7)],
                    c.filled(),
                ))?;
            }
        }
        area.draw(&Text::new(
            entry.label.clone(),
            (TEXT_X, y),
            text_style.clone(),
        ))?;
    }
    Ok(())
}
