//! Table 1 of a case series, in the seed's layout: n; sex n (%); onset age
//! median (range) and IQR; each yes/no variable n (%) with missing; CK median
//! (range); antibodies, treatments, outcomes n (%).
//!
//! Percentages are of all cases (n), as in the seed ("anti-HMGCR 4 (40%)"),
//! so a level's percent does not change when others are missing. Quantiles are
//! R's type 7 (linear interpolation).

use serde::Serialize;

use crate::domain::case::format_number;
use crate::domain::dictionary::Summary;
use crate::domain::{CaseRow, Dictionary};

/// One row of `table1.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table1Row {
    /// `all` (every site pooled) or a site.
    pub site: String,
    /// Dictionary column (or `n`).
    pub variable: String,
    /// Level, for categorical rows.
    pub level: Option<String>,
    /// Count.
    pub n: Option<u64>,
    /// Percent of all cases.
    pub percent: Option<f64>,
    /// Median (continuous rows).
    pub median: Option<f64>,
    /// First quartile.
    pub q1: Option<f64>,
    /// Third quartile.
    pub q3: Option<f64>,
    /// Minimum.
    pub min: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
    /// Cases without a value.
    pub missing: Option<u64>,
}

impl Table1Row {
    /// A categorical row: `n` of `total` cases at `level` of `variable`.
    pub fn count(variable: &str, level: &str, n: u64, total: u64, missing: Option<u64>) -> Self {
        let percent = (total > 0).then(|| (n as f64 * 1000.0 / total as f64).round() / 10.0);
        Self {
            site: ALL_SITES.into(),
            variable: variable.into(),
            level: Some(level.into()),
            n: Some(n),
            percent,
            median: None,
            q1: None,
            q3: None,
            min: None,
            max: None,
            missing,
        }
    }
}

/// Linear-interpolation quantile of sorted values (R type 7).
pub fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

fn continuous(variable: &str, values: Vec<f64>, total: u64) -> Table1Row {
    let mut v = values;
    v.sort_by(f64::total_cmp);
    Table1Row {
        site: ALL_SITES.into(),
        variable: variable.into(),
        level: None,
        n: Some(v.len() as u64),
        percent: None,
        median: quantile(&v, 0.5),
        q1: quantile(&v, 0.25),
        q3: quantile(&v, 0.75),
        min: v.first().copied(),
        max: v.last().copied(),
        missing: Some(total - v.len() as u64),
    }
}

/// The `site` of pooled Table 1 rows.
pub const ALL_SITES: &str = "all";

/// Table 1 rows for the cases: every site pooled (site `all`) and, when the
/// rows come from several sites, each site's rows after them (site order of
/// the rows; a linked case of sites `a+b` counts once pooled and once in each
/// of its sites' groups). Each group is `n`, then each column of the dictionary's Table 1
/// order, counted as its kind says ([`crate::domain::ColumnKind::summary`]).
pub fn table1(rows: &[CaseRow], dictionary: &Dictionary) -> Vec<Table1Row> {
    table1_of(rows, &super::sites_of(rows), dictionary)
}

/// As [`table1`], the per-site groups in the order of `sites`.
pub fn table1_of(rows: &[CaseRow], sites: &[&str], dictionary: &Dictionary) -> Vec<Table1Row> {
    of_tally(&super::tally::Tally::of(rows), sites, dictionary)
}

/// Table 1 from the counts of the rows ([`table1_of`] without the rows), the
/// per-site groups in the order of `sites`.
pub fn of_tally(tally: &super::tally::Tally, sites: &[&str], dictionary: &Dictionary) -> Vec<Table1Row> {
    let mut out = group(tally.all(), dictionary);
    if sites.len() > 1 {
        for site in sites {
            let mut part = group(&tally.site(site), dictionary);
            for r in &mut part {
                r.site = (*site).to_string();
            }
            out.extend(part);
        }
    }
    out
}

/// One group's rows (site `all`; the caller renames it).
fn group(counts: &super::tally::Group, dictionary: &Dictionary) -> Vec<Table1Row> {
    let total = counts.total;
    let mut out = vec![Table1Row {
        site: ALL_SITES.into(),
        variable: "n".into(),
        level: None,
        n: Some(total),
        percent: None,
        median: None,
        q1: None,
        q3: None,
        min: None,
        max: None,
        missing: None,
    }];
    for &i in &dictionary.table1 {
        let column = &dictionary.columns[i];
        let name = column.name.as_str();
        match column.kind.summary() {
            Summary::None => {}
            Summary::Continuous => out.push(continuous(name, counts.numbers(i), total)),
            Summary::Levels { missing } => {
                let missing_n = missing.map(|m| counts.at_level(i, m));
                let shown = column.levels.iter().filter(|l| Some(l.as_str()) != missing);
                out.extend(shown.map(|l| Table1Row::count(name, l, counts.at_level(i, l), total, missing_n)));
            }
            Summary::YesCount => out.push(Table1Row::count(name, "yes", counts.at_level(i, "yes"), total, None)),
        }
    }
    out
}

fn label<'d>(variable: &'d str, dictionary: &'d Dictionary) -> &'d str {
    dictionary.column(variable).map_or(variable, |c| c.label.as_str())
}

fn continuous_row(variable: &str, dictionary: &Dictionary) -> bool {
    dictionary
        .column(variable)
        .is_some_and(|c| c.kind.summary() == Summary::Continuous)
}

fn pct(p: Option<f64>) -> String {
    p.map(|p| format!("{}%", format_number(p)))
        .unwrap_or_else(|| "–".into())
}

/// Table 1 as a readable Markdown table (labels from the dictionary): one
/// value column, or with several sites a column for all sites pooled and one
/// per site.
pub fn to_markdown(rows: &[Table1Row], dictionary: &Dictionary) -> String {
    let groups = by_site(rows);
    let mut md = header(&groups);
    let Some(pooled) = groups.first() else { return md };
    for (i, r) in pooled.iter().enumerate() {
        let Some(label) = row_label(r, dictionary) else {
            continue;
        };
        let values: Vec<String> = groups
            .iter()
            .map(|g| g.get(i).map_or_else(String::new, |r| row_value(r)))
            .collect();
        md.push_str(&format!("| {label} | {} |\n", values.join(" | ")));
    }
    md
}

/// Rows grouped by site, in order (the pooled group first).
pub(crate) fn by_site<T: AsRef<Table1Row>>(rows: &[T]) -> Vec<Vec<&T>> {
    let mut groups: Vec<Vec<&T>> = Vec::new();
    for r in rows {
        let site = &r.as_ref().site;
        match groups
            .iter_mut()
            .find(|g| g.first().is_some_and(|f| f.as_ref().site == *site))
        {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups
}

/// The table's header lines: one value column for one group, else a column
/// per site group ([`column_head`]).
pub(crate) fn header<T: AsRef<Table1Row>>(groups: &[Vec<&T>]) -> String {
    if groups.len() <= 1 {
        return String::from("| Characteristic | Value |\n|---|---|\n");
    }
    let heads: Vec<String> = groups.iter().map(|g| column_head(g)).collect();
    format!(
        "| Characteristic | {} |\n|---|{}\n",
        heads.join(" | "),
        "---|".repeat(heads.len())
    )
}

/// A site column's heading: `All sites (n=20)` or `a (n=10)`.
fn column_head<T: AsRef<Table1Row>>(group: &[&T]) -> String {
    let group: Vec<&Table1Row> = group.iter().map(|r| (*r).as_ref()).collect();
    let n = group.iter().find(|r| r.variable == "n").and_then(|r| r.n);
    let name = match group.first().map(|r| r.site.as_str()) {
        Some(ALL_SITES) | None => "All sites".to_string(),
        Some(site) => site.to_string(),
    };
    match n {
        Some(n) => format!("{name} (n={n})"),
        None => name,
    }
}

impl AsRef<Table1Row> for Table1Row {
    fn as_ref(&self) -> &Table1Row {
        self
    }
}

/// A row's characteristic (`None`: a row Table 1 does not print).
fn row_label(r: &Table1Row, dictionary: &Dictionary) -> Option<String> {
    match (&r.level, r.median.is_some() || continuous_row(&r.variable, dictionary)) {
        _ if r.variable == "n" => Some("n".into()),
        (None, true) => Some(format!("{}, median (range)", label(&r.variable, dictionary))),
        (Some(level), _) => Some(format!("{}: {level}", label(&r.variable, dictionary))),
        (None, false) => None,
    }
}

/// A row's figures: `n`, `median (min–max); IQR q1–q3`, or `n (pct%)`, with any missing count.
fn row_value(r: &Table1Row) -> String {
    let num = |x: Option<f64>| x.map(format_number).unwrap_or_else(|| "–".into());
    let missing = r
        .missing
        .filter(|m| *m > 0)
        .map(|m| format!("; missing {m}"))
        .unwrap_or_default();
    if r.variable == "n" {
        return r.n.unwrap_or(0).to_string();
    }
    match r.level {
        None => format!(
            "{} ({}–{}); IQR {}–{}{missing}",
            num(r.median),
            num(r.min),
            num(r.max),
            num(r.q1),
            num(r.q3)
        ),
        Some(_) => format!("{} ({}){missing}", r.n.unwrap_or(0), pct(r.percent)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_r_type_7() {
        let v = [
            2080.0, 2650.0, 3120.0, 3560.0, 3870.0, 4107.0, 5230.0, 7810.0, 9920.0, 13524.0,
        ];
        assert_eq!(quantile(&v, 0.5), Some(3988.5));
        assert_eq!(quantile(&v, 0.25), Some(3230.0));
        assert_eq!(quantile(&v, 0.0), Some(2080.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn percents_are_of_all_cases() {
        use crate::domain::{AntibodyStatus, Cell};
        let d = crate::mapping::MappingSet::builtin().unwrap().dictionary;
        let mut rows: Vec<CaseRow> = (0..10).map(|i| CaseRow::empty(format!("p{i}"), &d)).collect();
        let hmgcr = d.index("anti_hmgcr").unwrap();
        for r in rows.iter_mut().take(4) {
            r.set(hmgcr, Cell::Antibody(AntibodyStatus::Positive));
        }
        let t = table1(&rows, &d);
        let pos = t
            .iter()
            .find(|r| r.variable == "anti_hmgcr" && r.level.as_deref() == Some("positive"))
            .unwrap();
        assert_eq!((pos.n, pos.percent), (Some(4), Some(40.0)));
        let rash_yes = t
            .iter()
            .find(|r| r.variable == "rash" && r.level.as_deref() == Some("yes"))
            .unwrap();
        assert_eq!(rash_yes.missing, Some(10));
    }
}
