//! Tick positions and labels for log axes (1, 10, 100, ...) and compact number formatting.

/// Major (labelled) and minor (grid-only) tick values of a log axis spanning `lo..hi` (> 0).
///
/// Majors are the powers of ten; when fewer than three fall inside, the 2× and 5× multiples are
/// labelled too, and if the span is narrower still, every integer multiple, so that even a narrow
/// axis carries labels.
pub fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let candidates = |multiples: &[f64]| -> Vec<f64> {
        let first = lo.log10().floor() as i32;
        let last = hi.log10().ceil() as i32;
        let mut out = Vec::new();
        for exponent in first..=last {
            let decade = 10f64.powi(exponent);
            for &multiple in multiples {
                // Round away float noise (0.30000000000000004) so labels and grid lines are exact.
                let value = round_significant(multiple * decade);
                if value >= lo && value <= hi {
                    out.push(value);
                }
            }
        }
        out
    };
    let all = candidates(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    let mut major = candidates(&[1.0]);
    if major.len() < 3 {
        major = candidates(&[1.0, 2.0, 5.0]);
    }
    if major.len() < 2 {
        major = all.clone();
    }
    let minor = all.into_iter().filter(|v| !major.contains(v)).collect();
    (major, minor)
}

/// A short label for a tick value: `0.01`, `0.5`, `1`, `20`, `500`, `1k`, `20k`, `1M`, `5G`.
pub fn format_tick(value: f64) -> String {
    let units = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    for (scale, suffix) in units {
        if value >= scale {
            return format!("{}{suffix}", format_plain(value / scale));
        }
    }
    format_plain(value)
}

/// A number with as many decimals as it needs for three significant digits, trailing zeros cut.
pub fn format_plain(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let decimals = (2 - value.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// `value` rounded to 6 significant digits.
fn round_significant(value: f64) -> f64 {
    let scale = 10f64.powi(5 - value.log10().floor() as i32);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decades_are_major_when_the_span_is_wide() {
        let (major, minor) = log_ticks(0.5, 3000.0);
        assert_eq!(major, vec![1.0, 10.0, 100.0, 1000.0]);
        assert!(minor.contains(&2.0) && minor.contains(&3000.0) && minor.contains(&0.5));
    }

    #[test]
    fn narrow_spans_get_intermediate_labels() {
        let (major, _) = log_ticks(300.0, 2000.0);
        assert_eq!(major, vec![500.0, 1000.0, 2000.0]);
        let (major, _) = log_ticks(3.1, 4.9);
        assert_eq!(major, vec![4.0]);
    }

    #[test]
    fn tick_labels_are_compact() {
        assert_eq!(format_tick(1.0), "1");
        assert_eq!(format_tick(0.05), "0.05");
        assert_eq!(format_tick(1000.0), "1k");
        assert_eq!(format_tick(20000.0), "20k");
        assert_eq!(format_tick(1e6), "1M");
        assert_eq!(format_plain(64.0), "64");
        assert_eq!(format_plain(3.25), "3.25");
    }
}
