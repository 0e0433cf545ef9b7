//! Small-cell suppression of Table 1, with secondary suppression.
//!
//! **Primary:** a count in `1..min_cell` is hidden (shown as `<{min_cell}`).
//!
//! **Secondary:** the cells of one variable (its levels plus its missing
//! count) add up to the number of cases when the levels are exhaustive (sex,
//! findings, thigh MRI, antibodies, outcome). If exactly one cell of such a
//! variable is hidden, it could be recovered by subtraction, so the smallest
//! other cell (zeros included; ties: first in table order) is hidden too. Two
//! hidden cells with a known sum leave at least two possible splits. A
//! treatment row (only "yes" is shown) has no displayed complement and needs
//! no secondary cell. A continuous row hides its summary figures (median,
//! quartiles, range) when fewer than `min_cell` cases have a value. When the
//! whole table has fewer than `min_cell` cases every count is hidden.
//!
//! In `table1.json` a hidden count is `null` with `"suppressed": true`
//! (`"missing_suppressed": true` for a hidden missing count).

use serde::Serialize;

use super::table1::Table1Row;

/// A Table 1 row after suppression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuppressedRow {
    /// The row; hidden figures are `None`.
    #[serde(flatten)]
    pub row: Table1Row,
    /// The count `n` is hidden.
    pub suppressed: bool,
    /// The missing count is hidden.
    pub missing_suppressed: bool,
}

/// True when `n` is a small cell under `min_cell`.
pub fn is_small(n: u64, min_cell: u64) -> bool {
    n > 0 && n < min_cell
}

/// Applies primary and secondary suppression to Table 1 rows, to each
/// site's column (the pooled one and each site's) on its own.
pub fn suppress(rows: &[Table1Row], min_cell: u64) -> Vec<SuppressedRow> {
    let groups = super::table1::by_site(rows);
    groups.iter().flat_map(|g| suppress_group(g, min_cell)).collect()
}

impl AsRef<Table1Row> for SuppressedRow {
    fn as_ref(&self) -> &Table1Row {
        &self.row
    }
}

/// [`suppress`] for one site's rows.
fn suppress_group(rows: &[&Table1Row], min_cell: u64) -> Vec<SuppressedRow> {
    let total = rows.iter().find(|r| r.variable == "n").and_then(|r| r.n).unwrap_or(0);
    let mut out: Vec<SuppressedRow> = rows
        .iter()
        .map(|r| SuppressedRow {
            row: (*r).clone(),
            suppressed: false,
            missing_suppressed: false,
        })
        .collect();
    if total < min_cell {
        for r in &mut out {
            hide_all(r);
        }
        return out;
    }
    let mut variables: Vec<String> = rows.iter().map(|r| r.variable.clone()).collect();
    variables.dedup();
    for v in variables.iter().filter(|v| *v != "n") {
        let idx: Vec<usize> = (0..out.len()).filter(|i| out[*i].row.variable == *v).collect();
        suppress_variable(&mut out, &idx, total, min_cell);
    }
    out
}

fn hide_all(r: &mut SuppressedRow) {
    r.suppressed = r.row.n.is_some();
    r.missing_suppressed = r.row.missing.is_some();
    r.row.n = None;
    r.row.percent = None;
    r.row.missing = None;
    hide_summary(r);
}

fn hide_summary(r: &mut SuppressedRow) {
    r.row.median = None;
    r.row.q1 = None;
    r.row.q3 = None;
    r.row.min = None;
    r.row.max = None;
}

/// One displayed count of a variable: a level's n (row index) or the missing count.
#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Level(usize),
    Missing,
}

fn suppress_variable(out: &mut [SuppressedRow], idx: &[usize], total: u64, min_cell: u64) {
    let missing = idx.first().and_then(|i| out[*i].row.missing);
    let mut cells: Vec<(Cell, u64)> = idx
        .iter()
        .filter_map(|i| out[*i].row.n.map(|n| (Cell::Level(*i), n)))
        .collect();
    if let Some(m) = missing {
        cells.push((Cell::Missing, m));
    }
    let mut hidden: Vec<bool> = cells.iter().map(|(_, n)| is_small(*n, min_cell)).collect();
    let closed = cells.iter().map(|(_, n)| n).sum::<u64>() == total && cells.len() > 1;
    if closed && hidden.iter().filter(|h| **h).count() == 1 {
        let next = (0..cells.len()).filter(|i| !hidden[*i]).min_by_key(|i| cells[*i].1);
        if let Some(i) = next {
            hidden[i] = true;
        }
    }
    for ((cell, n), h) in cells.iter().zip(&hidden) {
        match (cell, h) {
            (Cell::Level(i), true) => {
                let r = &mut out[*i];
                r.suppressed = true;
                r.row.n = None;
                r.row.percent = None;
                if r.row.level.is_none() && *n < min_cell {
                    hide_summary(r);
                }
            }
            (Cell::Missing, true) => {
                for i in idx {
                    out[*i].missing_suppressed = true;
                    out[*i].row.missing = None;
                }
            }
            _ => {}
        }
    }
}

/// Suppressed Table 1 as a readable Markdown table (`<{min_cell}` for hidden
/// counts): one value column, or with several sites one for all sites pooled
/// and one per site.
pub fn to_markdown(rows: &[SuppressedRow], min_cell: u64) -> String {
    let hidden = format!("<{min_cell}");
    let mut md = format!(
        "Counts of 1–{} are shown as {hidden}; see README (suppression).\n\n",
        min_cell.saturating_sub(1)
    );
    let groups = super::table1::by_site(rows);
    md.push_str(&super::table1::header(&groups));
    let Some(pooled) = groups.first() else { return md };
    for (i, r) in pooled.iter().enumerate() {
        let label = match (&r.row.level, r.row.variable.as_str()) {
            (_, "n") => "n".to_string(),
            (Some(level), v) => format!("{v}: {level}"),
            (None, v) => format!("{v}, median (range)"),
        };
        let values: Vec<String> = groups
            .iter()
            .map(|g| g.get(i).map_or_else(String::new, |r| cell(r, &hidden)))
            .collect();
        md.push_str(&format!("| {label} | {} |\n", values.join(" | ")));
    }
    md
}

/// One suppressed row's figures.
fn cell(r: &SuppressedRow, hidden: &str) -> String {
    let num = |x: Option<f64>| x.map(crate::domain::case::format_number).unwrap_or_else(|| "–".into());
    let n = if r.suppressed {
        hidden.to_string()
    } else {
        r.row.n.map(|n| n.to_string()).unwrap_or_else(|| "–".into())
    };
    let missing = match (r.missing_suppressed, r.row.missing) {
        (true, _) => format!("; missing {hidden}"),
        (false, Some(m)) if m > 0 => format!("; missing {m}"),
        _ => String::new(),
    };
    match (&r.row.level, r.row.variable.as_str()) {
        (_, "n") => n,
        (Some(_), _) => {
            let pct = r
                .row
                .percent
                .map(|p| format!(" ({}%)", crate::domain::case::format_number(p)))
                .unwrap_or_default();
            format!("{n}{pct}{missing}")
        }
        (None, _) => format!(
            "n {n}: {} ({}–{}); IQR {}–{}{missing}",
            num(r.row.median),
            num(r.row.min),
            num(r.row.max),
            num(r.row.q1),
            num(r.row.q3)
        ),
    }
}
