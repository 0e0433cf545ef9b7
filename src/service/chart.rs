//! The lab time course of a case as an inline SVG: dates on x, the lab's unit
//! on y, the peak marked, the reference range shaded when a source resource
//! gives one (`Observation.referenceRange`). No script, no external file.

use super::page::esc;
use super::snapshot::Point;
use crate::domain::FhirDate;

const W: f64 = 640.0;
const H: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;

/// The SVG of `points` (those with a date), with `range` (low, high) shaded; `None` without dated points.
pub(crate) fn svg(title: &str, points: &[&Point], range: Option<(f64, f64)>) -> Option<String> {
    let dated: Vec<(i64, &Point)> = points
        .iter()
        .filter_map(|p| {
            let day = FhirDate::parse(p.date.as_deref()?).ok()?.day_number()?;
            Some((day, *p))
        })
        .collect();
    let first = dated.iter().map(|d| d.0).min()?;
    let last = dated.iter().map(|d| d.0).max()?;
    let peak = dated.iter().max_by(|a, b| a.1.value.total_cmp(&b.1.value))?;
    let top = dated
        .iter()
        .map(|d| d.1.value)
        .chain(range.map(|r| r.1))
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.1;
    let span = (last - first).max(1) as f64;
    let x = |day: i64| LEFT + (day - first) as f64 / span * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (1.0 - v / top) * (H - TOP - BOTTOM);
    let unit = peak.1.unit.as_deref().unwrap_or("");
    let mut s = format!(
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        esc(title)
    );
    if let Some((low, high)) = range {
        s.push_str(&format!(
            "<rect class=\"range\" x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#d9f2d9\"><title>reference range {low}–{high} {}</title></rect>",
            y(high),
            W - LEFT - RIGHT,
            (y(low) - y(high)).max(0.0),
            esc(unit)
        ));
    }
    s.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#333\"/><line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\" stroke=\"#333\"/>",
        b = H - BOTTOM,
        r = W - RIGHT
    ));
    s.push_str(&format!(
        "<text x=\"4\" y=\"{:.1}\" font-size=\"11\">{}</text><text x=\"4\" y=\"{:.1}\" font-size=\"11\">0</text><text x=\"4\" y=\"{}\" font-size=\"11\">{}</text>",
        y(top / 1.1) + 4.0,
        crate::domain::case::format_number(top / 1.1),
        y(0.0),
        TOP - 4.0 + 12.0,
        esc(unit)
    ));
    let labels = [(first, "start"), (last, "end")];
    for (day, anchor) in labels {
        let date = dated
            .iter()
            .find(|d| d.0 == day)
            .and_then(|d| d.1.date.clone())
            .unwrap_or_default();
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"{anchor}\">{}</text>",
            x(day),
            H - BOTTOM + 16.0,
            esc(&date)
        ));
    }
    let path: Vec<String> = dated
        .iter()
        .map(|(d, p)| format!("{:.1},{:.1}", x(*d), y(p.value)))
        .collect();
    s.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\" points=\"{}\"/>",
        path.join(" ")
    ));
    for (d, p) in &dated {
        s.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1f5fa8\"><title>{} {} {}</title></circle>",
            x(*d),
            y(p.value),
            esc(p.date.as_deref().unwrap_or("")),
            crate::domain::case::format_number(p.value),
            esc(unit)
        ));
    }
    let (pd, pp) = peak;
    s.push_str(&format!(
        "<circle class=\"peak\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"6\" fill=\"none\" stroke=\"#c0392b\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#c0392b\">peak {} {}</text>",
        x(*pd),
        y(pp.value),
        (x(*pd) + 8.0).min(W - 120.0),
        (y(pp.value) + 4.0).max(TOP + 10.0),
        crate::domain::case::format_number(pp.value),
        esc(unit)
    ));
    s.push_str("</svg>");
    Some(s)
}

/// The first reference range (low, high) among a case's source resources;
/// a missing low is 0.
pub(crate) fn reference_range(sources: &[serde_json::Value], references: &[&str]) -> Option<(f64, f64)> {
    sources
        .iter()
        .filter(|s| s["reference"].as_str().is_some_and(|r| references.contains(&r)))
        .find_map(|s| {
            let range = &s["resource"]["referenceRange"][0];
            let high = range["high"]["value"].as_f64()?;
            Some((range["low"]["value"].as_f64().unwrap_or(0.0), high))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(date: &str, value: f64) -> Point {
        Point {
            column: "ck_peak_u_per_l".into(),
            date: Some(date.into()),
            value,
            unit: Some("U/L".into()),
            source: format!("Observation/{date}"),
        }
    }

    #[test]
    fn the_chart_marks_the_peak_and_shades_the_range() {
        let points = [
            point("2020-01-01", 900.0),
            point("2020-02-01", 12000.0),
            point("2020-03-01", 300.0),
        ];
        let refs: Vec<&Point> = points.iter().collect();
        let svg = svg("Peak CK <U/L>", &refs, Some((30.0, 200.0))).unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("peak 12000 U/L"), "{svg}");
        assert_eq!(svg.matches("class=\"range\"").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 4, "three results and the peak's ring");
        assert!(svg.contains("aria-label=\"Peak CK &lt;U/L&gt;\""), "escaped");
        assert!(super::svg("x", &[], None).is_none());
    }

    #[test]
    fn the_range_comes_from_a_source_of_the_series() {
        let sources = vec![
            serde_json::json!({"reference": "Observation/other", "resource": {"referenceRange": [{"high": {"value": 1}}]}}),
            serde_json::json!({"reference": "Observation/ck", "resource": {"referenceRange": [{"low": {"value": 30}, "high": {"value": 200}}]}}),
        ];
        assert_eq!(reference_range(&sources, &["Observation/ck"]), Some((30.0, 200.0)));
        assert_eq!(reference_range(&sources, &["Observation/none"]), None);
    }
}
