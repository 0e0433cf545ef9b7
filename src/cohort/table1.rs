//! Table 1 of a case series, in the seed's layout: n; sex n (%); onset age
//! median (range) and IQR; each yes/no variable n (%) with missing; CK median
//! (range); antibodies, treatments, outcomes n (%).
//!
//! Percentages are of all cases (n), as in the seed ("anti-HMGCR 4 (40%)"),
//! so a level's percent does not change when others are missing. Quantiles are
//! R's type 7 (linear interpolation).

use serde::Serialize;

use crate::domain::case::format_number;
use crate::domain::{AntibodyStatus, CaseRow, MriThigh, Outcome, Sex, YesNoUnknown};

/// One row of `table1.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table1Row {
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

fn levels<T: Copy + PartialEq + ToString>(
    variable: &str,
    all: &[T],
    values: &[T],
    missing_level: Option<T>,
    total: u64,
) -> Vec<Table1Row> {
    let missing = missing_level.map(|m| values.iter().filter(|v| **v == m).count() as u64);
    all.iter()
        .filter(|l| Some(**l) != missing_level)
        .map(|l| {
            Table1Row::count(
                variable,
                &l.to_string(),
                values.iter().filter(|v| *v == l).count() as u64,
                total,
                missing,
            )
        })
        .collect()
}

/// Table 1 rows for the cases.
pub fn table1(rows: &[CaseRow]) -> Vec<Table1Row> {
    let total = rows.len() as u64;
    let mut out = vec![Table1Row {
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
    let col = |f: fn(&CaseRow) -> Sex| rows.iter().map(f).collect::<Vec<_>>();
    out.extend(levels("sex", Sex::ALL, &col(|r| r.sex), None, total));
    out.push(continuous(
        "onset_age_years",
        rows.iter().filter_map(|r| r.onset_age_years.map(f64::from)).collect(),
        total,
    ));
    type Finding = fn(&CaseRow) -> YesNoUnknown;
    let findings: [(&str, Finding); 4] = [
        ("proximal_weakness", |r| r.proximal_weakness),
        ("rash", |r| r.rash),
        ("emg_myopathic", |r| r.emg_myopathic),
        ("biopsy_necrosis", |r| r.biopsy_necrosis),
    ];
    for (name, f) in findings {
        let v: Vec<YesNoUnknown> = rows.iter().map(f).collect();
        out.extend(levels(
            name,
            &[YesNoUnknown::Yes, YesNoUnknown::No],
            &v,
            Some(YesNoUnknown::Unknown),
            total,
        ));
    }
    let mri: Vec<MriThigh> = rows.iter().map(|r| r.mri_thigh).collect();
    out.extend(levels("mri_thigh", MriThigh::ALL, &mri, Some(MriThigh::Unknown), total));
    out.push(continuous(
        "ck_peak_u_per_l",
        rows.iter().filter_map(|r| r.ck_peak_u_per_l).collect(),
        total,
    ));
    for (name, f) in [
        ("anti_hmgcr", (|r| r.anti_hmgcr) as fn(&CaseRow) -> AntibodyStatus),
        ("anti_srp", |r| r.anti_srp),
    ] {
        let v: Vec<AntibodyStatus> = rows.iter().map(f).collect();
        out.extend(levels(name, AntibodyStatus::ALL, &v, None, total));
    }
    type Treatment = fn(&CaseRow) -> bool;
    let treatments: [(&str, Treatment); 4] = [
        ("glucocorticoid", |r| r.glucocorticoid),
        ("methotrexate", |r| r.methotrexate),
        ("rituximab", |r| r.rituximab),
        ("ivig", |r| r.ivig),
    ];
    for (name, f) in treatments {
        let n = rows.iter().filter(|r| f(r)).count() as u64;
        out.push(Table1Row::count(name, "yes", n, total, None));
    }
    let outcomes: Vec<Outcome> = rows.iter().map(|r| r.outcome).collect();
    out.extend(levels("outcome", Outcome::ALL, &outcomes, None, total));
    out
}

const LABELS: &[(&str, &str)] = &[
    ("sex", "Sex"),
    ("onset_age_years", "Age at onset, years"),
    ("proximal_weakness", "Proximal muscle weakness"),
    ("rash", "Rash (Gottron's, heliotrope)"),
    ("emg_myopathic", "Myopathic EMG"),
    ("biopsy_necrosis", "Myofiber necrosis on biopsy"),
    ("mri_thigh", "Thigh MRI"),
    ("ck_peak_u_per_l", "Peak CK, U/L"),
    ("anti_hmgcr", "Anti-HMGCR"),
    ("anti_srp", "Anti-SRP"),
    ("glucocorticoid", "Glucocorticoid"),
    ("methotrexate", "Methotrexate"),
    ("rituximab", "Rituximab"),
    ("ivig", "IVIG"),
    ("outcome", "Outcome"),
];

fn label(variable: &str) -> &str {
    LABELS
        .iter()
        .find(|(v, _)| *v == variable)
        .map(|(_, l)| *l)
        .unwrap_or(variable)
}

fn pct(p: Option<f64>) -> String {
    p.map(|p| format!("{}%", format_number(p)))
        .unwrap_or_else(|| "–".into())
}

/// Table 1 as a readable Markdown table.
pub fn to_markdown(rows: &[Table1Row]) -> String {
    let mut md = String::from("| Characteristic | Value |\n|---|---|\n");
    let num = |x: Option<f64>| x.map(format_number).unwrap_or_else(|| "–".into());
    for r in rows {
        let line = match (
            &r.level,
            r.median.is_some() || r.variable.ends_with("_years") || r.variable.starts_with("ck_"),
        ) {
            _ if r.variable == "n" => format!("| n | {} |\n", r.n.unwrap_or(0)),
            (None, true) => {
                let missing = r
                    .missing
                    .filter(|m| *m > 0)
                    .map(|m| format!("; missing {m}"))
                    .unwrap_or_default();
                format!(
                    "| {}, median (range) | {} ({}–{}); IQR {}–{}{} |\n",
                    label(&r.variable),
                    num(r.median),
                    num(r.min),
                    num(r.max),
                    num(r.q1),
                    num(r.q3),
                    missing
                )
            }
            (Some(level), _) => {
                let missing = r
                    .missing
                    .filter(|m| *m > 0)
                    .map(|m| format!("; missing {m}"))
                    .unwrap_or_default();
                format!(
                    "| {}: {} | {} ({}){} |\n",
                    label(&r.variable),
                    level,
                    r.n.unwrap_or(0),
                    pct(r.percent),
                    missing
                )
            }
            (None, false) => continue,
        };
        md.push_str(&line);
    }
    md
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
        let mut rows: Vec<CaseRow> = (0..10).map(|i| CaseRow::empty(format!("p{i}"))).collect();
        for r in rows.iter_mut().take(4) {
            r.anti_hmgcr = AntibodyStatus::Positive;
        }
        let t = table1(&rows);
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
