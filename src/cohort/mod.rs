//! From collected facts to the registry's outputs: one [`CaseRow`] per case
//! with provenance per cell, candidates, Table 1 and completeness.
//!
//! This module owns case selection and aggregation rules (which value wins when
//! a patient has several) and the output files; [`run`] builds and writes
//! them in one go. It reads the [`crate::collect`] data the `pipeline` fills
//! and must not import the `pipeline` (which reads inputs) nor read FHIR
//! input or mapping files itself: it sees domain facts, the loaded mappings
//! and the raw texts kept for provenance.

pub mod build;
pub mod completeness;
pub mod link;
pub mod marks;
pub mod parquet;
pub mod publish;
pub mod rows;
pub mod run;
pub mod suppress;
pub mod table1;
pub mod tally;
pub mod write;

pub use run::{
    build_and_write, build_and_write_as, build_and_write_linked, build_and_write_sites, Formats, RunOutcome, SiteData,
};

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::CaseRow;
use crate::spill;

/// Where one cohort cell came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The case's site.
    pub site: String,
    /// The case.
    pub patient_id: String,
    /// The cohort column.
    pub column: String,
    /// The value written.
    pub value: String,
    /// The rule that produced it.
    pub rule: String,
    /// The resources it came from (`Type/id`; a panel's component
    /// `Observation/id#component[i]`, see [`resource_of`]).
    pub sources: Vec<String>,
    /// How: the element read, the raw value and unit, the cutoff.
    pub detail: String,
}

/// A [`Provenance`] read in place: its texts borrowed from the record held
/// in memory or from the temporary file's buffer (no copy of its own). Its
/// fields are [`Provenance`]'s, in the same order: it is written to JSON, and
/// read from the temporary file, as one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvenanceRef<'a> {
    /// The case's site.
    pub site: &'a str,
    /// The case.
    pub patient_id: &'a str,
    /// The cohort column.
    pub column: &'a str,
    /// The value written.
    pub value: &'a str,
    /// The rule that produced it.
    pub rule: &'a str,
    /// The resources it came from (see [`Provenance::sources`]).
    #[serde(borrow)]
    pub sources: Vec<&'a str>,
    /// How: the element read, the raw value and unit, the cutoff.
    pub detail: &'a str,
}

impl<'a> From<&'a Provenance> for ProvenanceRef<'a> {
    fn from(p: &'a Provenance) -> Self {
        Self {
            site: &p.site,
            patient_id: &p.patient_id,
            column: &p.column,
            value: &p.value,
            rule: &p.rule,
            sources: p.sources.iter().map(String::as_str).collect(),
            detail: &p.detail,
        }
    }
}

impl ProvenanceRef<'_> {
    /// The record as its own.
    pub fn to_provenance(&self) -> Provenance {
        Provenance {
            site: self.site.to_string(),
            patient_id: self.patient_id.to_string(),
            column: self.column.to_string(),
            value: self.value.to_string(),
            rule: self.rule.to_string(),
            sources: self.sources.iter().map(|s| s.to_string()).collect(),
            detail: self.detail.to_string(),
        }
    }
}

/// The resource a provenance source names: `Type/id` (or `SITE:Type/id`)
/// without the `#component[i]` of a panel's result.
pub fn resource_of(source: &str) -> &str {
    source.split_once('#').map_or(source, |(resource, _)| resource)
}

/// A patient with IMNM-suggestive data but no qualifying diagnosis.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The patient's site.
    pub site: String,
    /// The patient.
    pub patient_id: String,
    /// Why it is listed.
    pub reason: String,
    /// Non-qualifying myositis diagnoses (`system|code`), `;`-separated.
    pub diagnosis_codes: String,
    /// The cells of the dictionary's candidate columns
    /// ([`crate::domain::Dictionary::candidate_columns`]: lab peaks and antibodies).
    pub values: Vec<String>,
}

impl Candidate {
    /// The `candidates.csv` header for a dictionary.
    pub fn header(dictionary: &crate::domain::Dictionary) -> Vec<String> {
        let mut h: Vec<String> = [crate::domain::SITE_COLUMN, "patient_id", "reason", "diagnosis_codes"]
            .map(String::from)
            .to_vec();
        h.extend(
            dictionary
                .candidate_columns()
                .into_iter()
                .map(|i| dictionary.columns[i].name.clone()),
        );
        h
    }

    /// The row's cells, in [`Candidate::header`] order.
    pub fn cells(&self) -> Vec<String> {
        let mut c = vec![
            self.site.clone(),
            self.patient_id.clone(),
            self.reason.clone(),
            self.diagnosis_codes.clone(),
        ];
        c.extend(self.values.iter().cloned());
        c
    }
}

/// The cohort built from one input.
#[derive(Debug, Default)]
pub struct Cohort {
    /// The data dictionary the rows follow.
    pub dictionary: crate::domain::Dictionary,
    /// One row per case, by patient id (past a budget, on disk).
    pub rows: rows::Rows,
    /// Provenance of every filled cell.
    pub provenance: Provenances,
    /// Per column, per resource type: how many cases have a value from it.
    pub cases_by_source: BTreeMap<String, BTreeMap<String, u64>>,
    /// Candidates.
    pub candidates: Vec<Candidate>,
    /// The sites in the order they were given (empty: the rows' order).
    pub site_order: Vec<String>,
    /// The kept texts the provenance and the candidates name (for `sources.ndjson`).
    pub texts: marks::TextMarks,
}

impl Cohort {
    /// Moves another site's cohort into this one: its rows, candidates and
    /// provenance after the ones held, its completeness counts added. A
    /// provenance record that cannot go to the temporary file is noted in
    /// `issues`. Errors are reading `other`'s temporary file back.
    pub fn absorb(&mut self, mut other: Cohort, issues: &mut crate::report::Issues) -> std::io::Result<()> {
        // The first site's rows and provenance are taken as they are (in
        // memory and in their temporary files): copying them record by record
        // decoded and encoded every one again.
        if self.rows.is_empty() {
            std::mem::swap(&mut self.rows, &mut other.rows);
        }
        if self.provenance.is_empty() {
            std::mem::swap(&mut self.provenance, &mut other.provenance);
        }
        other.rows.try_for_each(|r| {
            if let Some(e) = self.rows.push(r.clone()) {
                issues.push(crate::report::Issue::temporary_file(
                    "cohort rows",
                    &e,
                    "keeping them in memory",
                ));
            }
            Ok::<_, std::io::Error>(())
        })?;
        self.rows.flush()?;
        self.candidates.extend(other.candidates);
        self.texts.absorb(other.texts);
        for (column, by_type) in other.cases_by_source {
            let held = self.cases_by_source.entry(column).or_default();
            for (t, n) in by_type {
                *held.entry(t).or_default() += n;
            }
        }
        other.provenance.try_for_each(|p| {
            if let Some(e) = self.provenance.push(p.to_provenance()) {
                let note = crate::report::Issue::temporary_file("provenance", &e, "keeping it in memory");
                issues.push(note);
            }
            Ok::<_, std::io::Error>(())
        })?;
        self.provenance.flush()
    }

    /// The sites of the rows, in order of first appearance (a linked case's
    /// `a+b` names sites `a` and `b`).
    /// Sites without a case are left out; with [`Cohort::site_order`], in that order.
    pub fn sites(&self) -> Vec<&str> {
        let held = self.rows.tally().sites();
        let ordered = self.site_order.iter().map(String::as_str).filter(|s| held.contains(s));
        let mut out: Vec<&str> = ordered.collect();
        out.extend(held.into_iter().filter(|s| !self.site_order.iter().any(|o| o == s)));
        out
    }

    /// Table 1 of the cases.
    pub fn table1(&self) -> Vec<table1::Table1Row> {
        table1::of_tally(self.rows.tally(), &self.sites(), &self.dictionary)
    }
}

/// The sites of `rows`, in order of first appearance; a linked case's `a+b`
/// names sites `a` and `b`.
pub fn sites_of(rows: &[CaseRow]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for site in rows.iter().flat_map(|r| r.site.split('+')) {
        if !out.contains(&site) {
            out.push(site);
        }
    }
    out
}

/// True when `row` is a case of `site` (a linked case is one of each of its sites).
pub fn at_site(row: &CaseRow, site: &str) -> bool {
    row.site.split('+').any(|s| s == site)
}

/// Provenance records kept in memory up to [`Provenances::IN_MEMORY`], the rest in
/// a temporary file (their size grows with the cases, not the input).
#[derive(Debug)]
pub struct Provenances(spill::List<Provenance>);

impl Default for Provenances {
    fn default() -> Self {
        Self(spill::List::new(Self::IN_MEMORY))
    }
}

impl Provenances {
    /// Records kept in memory (about 0.4 KB each).
    pub const IN_MEMORY: usize = 4096;

    /// Appends one; the error is the temporary file's first failure (the
    /// record, and later ones, are then kept in memory).
    pub(crate) fn push(&mut self, p: Provenance) -> Option<std::io::Error> {
        self.0.push_keeping(p)
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.0.len() == 0
    }

    /// Calls `f` with every record in order, read in place (a record from the
    /// temporary file is not copied into strings of its own: that was most of
    /// the cost of a pass); stops at the first error (reading the temporary
    /// file back, or one `f` returns).
    pub fn try_for_each<E: From<std::io::Error>>(
        &self,
        mut f: impl FnMut(&ProvenanceRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let (head, mut spilled, tail) = self.0.parts()?;
        head.iter().try_for_each(|p| f(&ProvenanceRef::from(p)))?;
        while let Some((_, _, p)) = spilled.next_borrowed::<ProvenanceRef<'_>>()? {
            f(&p)?;
        }
        tail.iter().try_for_each(|p| f(&ProvenanceRef::from(p)))
    }

    /// Every resource (`Type/id`, [`resource_of`] its sources) a cell came from.
    ///
    /// # Errors
    ///
    /// Reading the temporary file back.
    pub fn sources(&self) -> std::io::Result<BTreeSet<String>> {
        let mut out = BTreeSet::new();
        self.try_for_each(|p| {
            out.extend(p.sources.iter().map(|s| resource_of(s).to_string()));
            Ok::<_, std::io::Error>(())
        })?;
        Ok(out)
    }

    /// Every record, in memory (tests and small cohorts).
    ///
    /// # Errors
    ///
    /// Reading the temporary file back.
    pub fn all(&self) -> std::io::Result<Vec<Provenance>> {
        self.0.all()
    }

    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(site: &str, i: usize) -> Provenance {
        Provenance {
            site: site.into(),
            patient_id: format!("p{i}"),
            column: format!("column{}", i % 7),
            value: format!("v{i}"),
            rule: "rule".into(),
            sources: vec![format!("Observation/o{i}"), "Patient/x".into()],
            detail: "Observation.valueQuantity".into(),
        }
    }

    /// A site's cohort of `n` cases, each with one provenance record.
    fn site(name: &str, n: usize) -> Cohort {
        let dictionary = crate::domain::Dictionary::default();
        let mut c = Cohort::default();
        for i in 0..n {
            let mut row = CaseRow::empty(format!("p{i}"), &dictionary);
            row.site = name.into();
            assert!(c.rows.push(row).is_none());
            assert!(c.provenance.push(record(name, i)).is_none());
        }
        c.rows.flush().unwrap();
        c.provenance.flush().unwrap();
        c
    }

    #[test]
    fn absorbed_sites_keep_every_row_and_record_in_site_order() {
        // Past the memory share, so that the first site's temporary files are taken over.
        let (a, b) = (Provenances::IN_MEMORY + 30, 40);
        let mut pooled = Cohort::default();
        let mut issues = crate::report::Issues::default();
        pooled.absorb(site("a", a), &mut issues).unwrap();
        pooled.absorb(site("b", b), &mut issues).unwrap();
        pooled.absorb(Cohort::default(), &mut issues).unwrap();
        let want: Vec<Provenance> = (0..a)
            .map(|i| record("a", i))
            .chain((0..b).map(|i| record("b", i)))
            .collect();
        assert_eq!(pooled.provenance.all().unwrap(), want);
        let rows = pooled.rows.all().unwrap();
        let sites: Vec<(&str, &str)> = rows.iter().map(|r| (r.site.as_str(), r.patient_id.as_str())).collect();
        assert_eq!(sites.len(), a + b);
        assert_eq!(sites[a - 1], ("a", format!("p{}", a - 1).as_str()));
        assert_eq!(sites[a], ("b", "p0"));
        assert_eq!(pooled.sites(), ["a", "b"]);
        assert!(issues.is_empty());
    }

    #[test]
    fn provenance_past_the_memory_share_comes_back_whole_and_in_order() {
        let mut prov = Provenances::default();
        let n = Provenances::IN_MEMORY + 50;
        let record = |i: usize| record("local", i);
        for i in 0..n {
            assert!(prov.push(record(i)).is_none());
        }
        prov.flush().unwrap();
        let all = prov.all().unwrap();
        assert_eq!(all.len(), n);
        assert!(all.iter().enumerate().all(|(i, p)| *p == record(i)));
        // Read in place, held and spilled records alike, they are the same.
        let mut read = Vec::new();
        prov.try_for_each(|p| {
            read.push(p.to_provenance());
            Ok::<_, std::io::Error>(())
        })
        .unwrap();
        assert_eq!(read, all);
    }
}
