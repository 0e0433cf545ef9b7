//! Completeness: per dictionary variable, the share of cases with a value,
//! overall and per source resource type when values come from several.

use serde::Serialize;

use super::tally::Group;
use super::Cohort;
use crate::domain::ColumnKind;

/// One row of `completeness.csv`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletenessRow {
    /// `all` (every site pooled) or a site.
    pub site: String,
    /// Dictionary column.
    pub variable: String,
    /// `all`, or a FHIR resource type the values came from.
    pub source: String,
    /// Cases with a value (from this source).
    pub cases_with_value: u64,
    /// All cases.
    pub cases: u64,
    /// Share, in percent (one decimal).
    pub percent: f64,
}

/// Completeness rows. A finding recorded absent ("no") has a value; a
/// treatment counts only when a resource says it was given ("no" is the
/// absence of evidence); `ck_count` when > 0. Rows for every site pooled
/// (`all`), then, when there are several sites, for each site.
pub fn completeness(cohort: &Cohort) -> Vec<CompletenessRow> {
    let tally = cohort.rows.tally();
    let mut out = of_rows(cohort, "all", tally.all(), true);
    let sites = cohort.sites();
    if sites.len() > 1 {
        for site in sites {
            out.extend(of_rows(cohort, site, &tally.site(site), false));
        }
    }
    out
}

/// The rows of `site` (`by_source`: with the per-resource-type rows, known pooled only).
fn of_rows(cohort: &Cohort, site: &str, rows: &Group, by_source: bool) -> Vec<CompletenessRow> {
    let cases = rows.total;
    let pct = |n: u64| {
        if cases == 0 {
            0.0
        } else {
            (n as f64 * 1000.0 / cases as f64).round() / 10.0
        }
    };
    let mut out = Vec::new();
    let columns = cohort.dictionary.columns.iter().enumerate();
    for (i, column) in columns.filter(|(_, c)| c.kind != ColumnKind::PatientId) {
        let column = column.name.as_str();
        let n = rows.valued(i);
        out.push(CompletenessRow {
            site: site.to_string(),
            variable: column.to_string(),
            source: "all".into(),
            cases_with_value: n,
            cases,
            percent: pct(n),
        });
        let sources = cohort.cases_by_source.get(column).filter(|_| by_source);
        if let Some(sources) = sources.filter(|s| s.len() > 1) {
            for (t, &n) in sources {
                out.push(CompletenessRow {
                    site: site.to_string(),
                    variable: column.to_string(),
                    source: t.clone(),
                    cases_with_value: n,
                    cases,
                    percent: pct(n),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CaseRow, Cell, YesNoUnknown};

    #[test]
    fn absent_findings_count_and_absent_treatments_do_not() {
        let d = crate::mapping::MappingSet::builtin().unwrap().dictionary;
        let col = |n: &str| d.index(n).unwrap();
        let mut a = CaseRow::empty("a", &d);
        a.set(col("rash"), Cell::Finding(YesNoUnknown::No));
        a.set(col("ivig"), Cell::Exposure(false));
        let mut b = CaseRow::empty("b", &d);
        b.set(col("ivig"), Cell::Exposure(true));
        let cohort = Cohort {
            rows: vec![a, b].into(),
            dictionary: d.clone(),
            ..Cohort::default()
        };
        let rows = completeness(&cohort);
        let get = |v: &str| {
            rows.iter()
                .find(|r| r.variable == v && r.source == "all")
                .map(|r| r.cases_with_value)
        };
        assert_eq!(get("rash"), Some(1));
        assert_eq!(get("ivig"), Some(1));
        assert_eq!(get("ck_count"), Some(0));
        assert_eq!(get("anti_srp"), Some(0));
    }
}
