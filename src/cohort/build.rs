//! Case selection and per-column aggregation.

use super::{Candidate, Cohort, Provenance};
use crate::collect::LOCAL_SITE;
use std::collections::{BTreeMap, BTreeSet};

use crate::collect::{PatientData, Patients};
use crate::domain::case::format_number;
use crate::domain::facts::MriPart;
use crate::domain::{
    AntibodyStatus, CaseRow, Cell, ColumnKind, DiagnosisFact, DiagnosisKind, Evidence, Fact, FactValue, FhirDate,
    MriThigh, Onset, Outcome, SourceRef, TextNumber, YesNoUnknown,
};
use crate::mapping::{MappingSet, Rule, RuleKind};
use crate::report::{Issue, IssueCode, Issues, Severity};

/// Builds the cohort of site [`LOCAL_SITE`] (see [`build_site`]).
pub fn build(patients: &Patients, m: &MappingSet, issues: &mut Issues) -> crate::run_error::Result<Cohort> {
    build_site(LOCAL_SITE, patients, m, issues)
}

/// Builds the cohort of `site` from every patient's data, one patient at a
/// time (in id order); rows, candidates and provenance name the site. Issues
/// found here (a case without birthDate, a differential-only patient) are
/// added to `issues`. Fails only when spilled patients cannot be read back
/// from their temporary file.
pub fn build_site(
    site: &str,
    patients: &Patients,
    m: &MappingSet,
    issues: &mut Issues,
) -> crate::run_error::Result<Cohort> {
    Ok(build_site_except(site, patients, m, issues, &BTreeSet::new())?.0)
}

/// As [`build_site`], with the patients `aside` (linked to patients of other
/// sites, see [`super::link`]) left out of the cohort and handed back with
/// their data, for [`add_linked`].
pub fn build_site_except(
    site: &str,
    patients: &Patients,
    m: &MappingSet,
    issues: &mut Issues,
    aside: &BTreeSet<String>,
) -> crate::run_error::Result<(Cohort, BTreeMap<String, PatientData>)> {
    let mut cohort = Cohort {
        dictionary: m.dictionary.clone(),
        rows: super::rows::Rows::with_budget(patients.budget()),
        ..Cohort::default()
    };
    let mut kept = BTreeMap::new();
    patients
        .try_for_each(|id, data| {
            if aside.contains(id) {
                kept.insert(id.to_string(), data.clone());
            } else {
                add_patient(&mut cohort, site, id, data, m, issues);
            }
            Ok::<_, std::io::Error>(())
        })
        .map_err(|source| crate::run_error::RunError::Spill { source })?;
    let spill = |source| crate::run_error::RunError::Spill { source };
    cohort.provenance.flush().map_err(spill)?;
    cohort.rows.flush().map_err(spill)?;
    Ok((cohort, kept))
}

/// True when a patient's data make it a case (a qualifying diagnosis).
pub fn is_case(data: &PatientData) -> bool {
    data.diagnoses.iter().any(|d| d.kind.qualifies())
}

/// Adds one case of patients linked across sites (`members`: site, patient
/// id, data, in site order; see [`super::link`]). The row's `site` and
/// `patient_id` join the members' with `+`; its values come from the union of
/// their facts and diagnoses, each column by its kind's rule, demographics
/// from the first member with a Patient record. Every source is named
/// `SITE:Type/id` ([`super::link::split_source`]). Members without a
/// qualifying diagnosis between them are added at their own sites instead.
pub fn add_linked(
    cohort: &mut Cohort,
    members: Vec<(String, String, PatientData)>,
    m: &MappingSet,
    issues: &mut Issues,
) {
    if !members.iter().any(|(_, _, d)| is_case(d)) {
        for (site, id, data) in &members {
            add_patient(cohort, site, id, data, m, issues);
        }
        return;
    }
    let join = |f: fn(&(String, String, PatientData)) -> &str| members.iter().map(f).collect::<Vec<_>>().join("+");
    let (site, id) = (join(|x| &x.0), join(|x| &x.1));
    let first = members.first().map(|(s, i, _)| format!("{s}:Patient/{i}"));
    let mut data = PatientData::default();
    let (mut patient, mut patient_site) = (None, None);
    for (s, i, d) in members {
        if data.record.is_none() && d.record.is_some() {
            data.record = d.record;
            patient = Some(format!("{s}:Patient/{i}"));
            patient_site = Some(s.clone());
        }
        data.facts.extend(d.facts.into_iter().map(|mut f| {
            tag(&mut f.source, &s);
            if let Some(v) = &mut f.via {
                tag(v, &s);
            }
            f
        }));
        data.diagnoses.extend(d.diagnoses.into_iter().map(|mut x| {
            tag(&mut x.source, &s);
            x
        }));
    }
    let patient = patient.or(first).unwrap_or_default();
    let key = Key {
        site,
        id,
        patient,
        patient_site,
    };
    add_case(cohort, key, &data, m, issues);
}

/// Names a linked case's source with its site: `SITE:Type/id`.
fn tag(source: &mut SourceRef, site: &str) {
    source.resource_type = format!("{site}:{}", source.resource_type);
}

/// A case row's key and the Patient resource its demographics come from
/// (and that resource's site, in a linked case).
struct Key {
    site: String,
    id: String,
    patient: String,
    patient_site: Option<String>,
}

fn add_patient(cohort: &mut Cohort, site: &str, id: &str, data: &PatientData, m: &MappingSet, issues: &mut Issues) {
    if !is_case(data) {
        if let Some(c) = candidate(site, id, data, m) {
            cohort.candidates.push(c);
            if let Some(n) = data.record.as_ref().and_then(|r| r.text) {
                cohort.texts.mark(site, n);
            }
        }
        return;
    }
    let key = Key {
        site: site.to_string(),
        id: id.to_string(),
        patient: format!("Patient/{id}"),
        patient_site: None,
    };
    add_case(cohort, key, data, m, issues);
}

fn add_case(cohort: &mut Cohort, key: Key, data: &PatientData, m: &MappingSet, issues: &mut Issues) {
    let qualifying: Vec<&DiagnosisFact> = data.diagnoses.iter().filter(|d| d.kind.qualifies()).collect();
    let mut row = CaseRow::empty(&key.id, &m.dictionary);
    row.site = key.site;
    let patient_text = data.record.as_ref().and_then(|r| r.text);
    let mut b = RowBuilder {
        row,
        prov: Vec::new(),
        marks: Vec::new(),
        m,
        patient: key.patient,
        patient_text: patient_text.map(|n| (key.patient_site, n)),
    };
    b.demographics(data, issues);
    b.diagnosis(&qualifying, data, issues);
    // Each rule's facts, in the order the patient's data holds them: one pass, not one per rule.
    let mut by_rule: Vec<Vec<&Fact>> = vec![Vec::new(); m.rules.len()];
    for f in &data.facts {
        if let Some(facts) = by_rule.get_mut(f.rule) {
            facts.push(f);
        }
    }
    for (rule, facts) in m.rules.iter().zip(by_rule) {
        let facts = best_evidence(facts);
        b.apply(rule, &facts, &qualifying);
        conflicting_text(&b.patient, rule, &facts, issues);
    }
    cohort.texts.mark_all(&b.row.site, b.marks);
    if let Some(e) = cohort.rows.push(b.row) {
        issues.push(Issue::temporary_file("cohort rows", &e, "keeping them in memory"));
    }
    add_provenance(cohort, b.prov, issues);
}

/// The facts of the best evidence among `facts` (README "Findings from
/// text"): coded before text, text of a kind its text rule lists earlier
/// before a later one. Rules other than findings and MRI only have coded facts.
fn best_evidence(facts: Vec<&Fact>) -> Vec<&Fact> {
    let Some(best) = facts.iter().map(|f| f.evidence).min() else {
        return facts;
    };
    facts.into_iter().filter(|f| f.evidence == best).collect()
}

/// An issue when the text a finding column was taken from says yes and no
/// (or, for MRI, yes and no about one part): the column follows its kind's
/// rule (a finding: yes wins; MRI: a part seen anywhere is present).
fn conflicting_text(patient: &str, rule: &Rule, facts: &[&Fact], issues: &mut Issues) {
    if !facts.iter().any(|f| matches!(f.evidence, Evidence::Text(_))) {
        return;
    }
    let says = |v: bool| {
        facts.iter().any(|f| match f.value {
            FactValue::Present(b) | FactValue::Mri(_, b) => b == v,
            _ => false,
        })
    };
    let parts_differ = |p: MriPart| {
        let of = |v: bool| facts.iter().any(|f| f.value == FactValue::Mri(p, v));
        of(true) && of(false)
    };
    let conflict = match rule.kind {
        RuleKind::Finding { .. } => says(true) && says(false),
        RuleKind::Mri { .. } => parts_differ(MriPart::Edema) || parts_differ(MriPart::Fatty),
        _ => false,
    };
    if conflict {
        let sources: Vec<String> = facts.iter().map(|f| f.source.to_string()).collect();
        let msg = format!(
            "report or note texts of one kind disagree for rule {} ({}); the yes wins",
            rule.id,
            sources.join(", ")
        );
        issues.push(Issue::new(Severity::Warning, IssueCode::ConflictingText, patient, msg));
    }
}

/// Keeps a case's provenance, and counts it per column and source type (for completeness).
fn add_provenance(cohort: &mut Cohort, prov: Vec<Provenance>, issues: &mut Issues) {
    let mut types = std::collections::BTreeSet::new();
    for p in &prov {
        types.extend(p.sources.iter().map(|s| (p.column.as_str(), source_type(s))));
    }
    for (column, t) in types {
        *cohort
            .cases_by_source
            .entry(column.to_string())
            .or_default()
            .entry(t.to_string())
            .or_default() += 1;
    }
    for p in prov {
        if let Some(e) = cohort.provenance.push(p) {
            issues.push(Issue::temporary_file("provenance", &e, "keeping it in memory"));
        }
    }
}

/// The resource type of a source (`Type/id` or `SITE:Type/id`).
fn source_type(source: &str) -> &str {
    let (_, rest) = super::link::split_source(source);
    rest.split('/').next().unwrap_or("")
}

/// A kept text a cell names: its site when not the row's (a linked case's
/// member), and its number among that site's texts.
type Mark = (Option<String>, u64);

/// A source a cell names (`Type/id`, `SITE:Type/id` in a linked case) and its text.
#[derive(Clone)]
struct Src {
    name: String,
    text: Option<Mark>,
}

impl Src {
    /// `source` (its type tagged with its site in a linked case: [`tag`]) and the number of its text.
    fn of(source: &SourceRef, text: TextNumber) -> Self {
        let site = super::link::split_source(&source.resource_type).0.map(str::to_string);
        Src {
            name: source.name(),
            text: text.map(|n| (site, n)),
        }
    }
}

struct RowBuilder<'m> {
    row: CaseRow,
    prov: Vec<Provenance>,
    /// The texts `prov` names.
    marks: Vec<Mark>,
    m: &'m MappingSet,
    /// The Patient resource of the demographics (`Patient/id`, or `SITE:Patient/id` for a linked case).
    patient: String,
    /// Its text.
    patient_text: Option<Mark>,
}

impl RowBuilder<'_> {
    /// Sets column `column` (when the dictionary has it) and notes its provenance.
    fn put(&mut self, column: Option<usize>, cell: Cell, rule: &str, sources: Vec<Src>, detail: impl Into<String>) {
        let Some(i) = column else { return };
        let value = cell.text(&self.row.patient_id);
        self.row.set(i, cell);
        self.note(i, value, rule, sources, detail);
    }

    /// The demographics' Patient as a source.
    fn patient_src(&self) -> Src {
        Src {
            name: self.patient.clone(),
            text: self.patient_text.clone(),
        }
    }

    fn note(&mut self, column: usize, value: String, rule: &str, sources: Vec<Src>, detail: impl Into<String>) {
        let patient_id = self.row.patient_id.clone();
        let column = self.m.dictionary.columns[column].name.clone();
        let mut names = Vec::with_capacity(sources.len());
        for Src { name, text } in sources {
            names.push(name);
            self.marks.extend(text);
        }
        let sources = names;
        self.prov.push(Provenance {
            site: self.row.site.clone(),
            patient_id,
            column,
            value,
            rule: rule.to_string(),
            sources,
            detail: detail.into(),
        });
    }

    fn col(&self, kind: ColumnKind) -> Option<usize> {
        self.m.dictionary.first(kind)
    }

    fn demographics(&mut self, data: &PatientData, issues: &mut Issues) {
        let src = vec![self.patient_src()];
        let Some(rec) = &data.record else {
            let msg = "case has no Patient resource in the input; sex and birth date unknown";
            issues.push(Issue::new(
                Severity::Warning,
                IssueCode::DanglingReference,
                self.patient.clone(),
                msg,
            ));
            return;
        };
        let sex = self.col(ColumnKind::Sex);
        self.put(sex, Cell::Sex(rec.sex), "patient", src.clone(), "Patient.gender");
        match rec.birth_date {
            Some(d) => {
                let birth = self.col(ColumnKind::BirthDate);
                self.put(birth, Cell::Date(Some(d)), "patient", src, "Patient.birthDate");
            }
            None => {
                let msg = "case without birthDate: onset age can only come from Condition.onsetAge";
                issues.push(
                    Issue::new(Severity::Warning, IssueCode::MissingValue, self.patient.clone(), msg)
                        .at("Patient.birthDate"),
                );
            }
        }
    }

    fn diagnosis(&mut self, qualifying: &[&DiagnosisFact], data: &PatientData, issues: &mut Issues) {
        let key = |d: &&&DiagnosisFact| match d.onset {
            Some(Onset::Date(date, _)) => (0, Some(date)),
            Some(Onset::Age(_)) => (1, None),
            None => (2, d.recorded),
        };
        let Some(dx) = qualifying.iter().min_by_key(key) else {
            return;
        };
        let rule = self.m.diagnosis.id.clone();
        let src = vec![Src::of(&dx.source, dx.text)];
        let how = if dx.kind == DiagnosisKind::ParentWithText {
            "parent code with IMNM wording in text"
        } else {
            "IMNM code"
        };
        let code = self.col(ColumnKind::DiagnosisCode);
        self.put(code, Cell::Code(dx.code.clone()), &rule, src.clone(), how);
        let birth = data.record.as_ref().and_then(|r| r.birth_date);
        let (age, detail) = match dx.onset {
            Some(Onset::Age(years)) => (Some(years.floor() as u32), "Condition.onsetAge".to_string()),
            Some(Onset::Date(date, element)) => {
                let onset = self.col(ColumnKind::OnsetDate);
                let detail = format!("Condition.{}", element.as_str());
                self.put(onset, Cell::Date(Some(date)), &rule, src.clone(), detail);
                (
                    age_at(birth, date),
                    format!("Condition.{} minus Patient.birthDate", element.as_str()),
                )
            }
            None => match dx.recorded {
                Some(rec) => (
                    age_at(birth, rec),
                    "Condition.recordedDate minus Patient.birthDate (no onset recorded)".to_string(),
                ),
                None => (None, String::new()),
            },
        };
        let (age, detail) = match dx.age_years {
            Some(a) => (Some(a), "Condition.extension onset-age-years".to_string()),
            None => (age, detail),
        };
        if age.is_none() && dx.onset.is_none() && dx.recorded.is_none() {
            let msg = "IMNM Condition without onset[x] or recordedDate; onset age unknown";
            issues.push(
                Issue::new(Severity::Warning, IssueCode::MissingValue, dx.source.to_string(), msg)
                    .at("Condition.onset[x]"),
            );
        }
        if let Some(a) = age {
            let mut sources = src;
            if !detail.starts_with("Condition.onsetAge") && !detail.starts_with("Condition.extension") {
                sources.push(self.patient_src());
            }
            let column = self.col(ColumnKind::OnsetAge);
            self.put(column, Cell::Age(Some(a)), &rule, sources, detail);
        }
    }

    /// Fills the rule's column from its facts, by the rule's kind.
    fn apply(&mut self, rule: &Rule, facts: &[&Fact], dx: &[&DiagnosisFact]) {
        let column = rule.column;
        match &rule.kind {
            RuleKind::LabPeak { .. } => self.lab_peak(column, &rule.id, facts),
            RuleKind::Antibody { .. } => {
                let best = facts
                    .iter()
                    .filter_map(|f| match f.value {
                        FactValue::Antibody(s) => Some(s),
                        _ => None,
                    })
                    .max_by_key(|s| s.rank());
                let status = best.unwrap_or(AntibodyStatus::NotTested);
                self.row.set(column, Cell::Antibody(status));
                let winners: Vec<&&Fact> = facts
                    .iter()
                    .filter(|f| f.value == FactValue::Antibody(status))
                    .collect();
                self.note_facts(column, status.to_string(), &rule.id, &winners);
            }
            RuleKind::Finding { .. } => {
                let v = yes_no(facts.iter().filter_map(|f| match f.value {
                    FactValue::Present(b) => Some(b),
                    _ => None,
                }));
                self.row.set(column, Cell::Finding(v));
                let winners: Vec<&&Fact> = facts
                    .iter()
                    .filter(|f| matches!(f.value, FactValue::Present(b) if Some(b) == to_bool(v)))
                    .collect();
                self.note_facts(column, v.to_string(), &rule.id, &winners);
            }
            RuleKind::Mri { .. } => {
                let part = |p: MriPart| {
                    to_bool(yes_no(facts.iter().filter_map(|f| match f.value {
                        FactValue::Mri(q, b) if q == p => Some(b),
                        _ => None,
                    })))
                };
                let v = MriThigh::from_parts(part(MriPart::Edema), part(MriPart::Fatty));
                self.row.set(column, Cell::Mri(v));
                let all: Vec<&&Fact> = facts.iter().collect();
                self.note_facts(column, v.to_string(), &rule.id, &all);
            }
            RuleKind::Exposure { .. } => {
                let yes = !facts.is_empty();
                self.row.set(column, Cell::Exposure(yes));
                let all: Vec<&&Fact> = facts.iter().collect();
                self.note_facts(column, if yes { "yes" } else { "no" }.into(), &rule.id, &all);
            }
            RuleKind::Outcome { .. } => self.outcome(column, &rule.id, facts, dx),
        }
    }

    fn note_facts(&mut self, column: usize, value: String, rule: &str, facts: &[&&Fact]) {
        if facts.is_empty() {
            return;
        }
        // Each source once, in the order first met (a set: a column may have hundreds).
        let mut seen =
            std::collections::HashSet::with_capacity_and_hasher(facts.len(), foldhash::fast::RandomState::default());
        let mut sources: Vec<Src> = Vec::new();
        for f in facts {
            let via = f.via.as_ref().map(|v| (v, f.via_text));
            for (s, text) in std::iter::once((&f.source, f.text)).chain(via) {
                if seen.insert(s) {
                    sources.push(Src::of(s, text));
                }
            }
        }
        let detail = facts.iter().map(|f| f.detail.as_str()).collect::<Vec<_>>().join("; ");
        self.note(column, value, rule, sources, detail);
    }

    fn lab_peak(&mut self, column: usize, rule: &str, facts: &[&Fact]) {
        let values: Vec<(&Fact, f64, u32)> = facts
            .iter()
            .filter_map(|f| match f.value {
                FactValue::Quantity(q) => Some((*f, q, 1)),
                FactValue::Summary { peak, count } => Some((*f, peak, count)),
                _ => None,
            })
            .collect();
        let count: u32 = values.iter().map(|v| v.2).sum();
        let count_column = self.m.dictionary.companion(column, ColumnKind::LabCount);
        if let Some(c) = count_column {
            self.row.set(c, Cell::Count(count));
        }
        let peak = values
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.date.cmp(&a.0.date)));
        let Some((fact, value, _)) = peak else { return };
        let src = vec![Src::of(&fact.source, fact.text)];
        self.put(
            Some(column),
            Cell::Number(Some(*value)),
            rule,
            src.clone(),
            fact.detail.clone(),
        );
        if let Some(d) = fact.date {
            let date_column = self.m.dictionary.companion(column, ColumnKind::LabPeakDate);
            self.put(
                date_column,
                Cell::Date(Some(d)),
                rule,
                src,
                "effective date of the peak result",
            );
        }
        let all = values.iter().map(|(f, _, _)| Src::of(&f.source, f.text)).collect();
        let detail = "results counted (excluded statuses and unconvertible units left out)";
        self.put(count_column, Cell::Count(count), rule, all, detail);
    }

    fn outcome(&mut self, column: usize, rule: &str, facts: &[&Fact], dx: &[&DiagnosisFact]) {
        let latest = facts
            .iter()
            .filter_map(|f| match f.value {
                FactValue::Outcome(o) => Some((*f, o)),
                _ => None,
            })
            .max_by_key(|(f, _)| f.date);
        if let Some((fact, o)) = latest {
            let src = vec![Src::of(&fact.source, fact.text)];
            self.put(Some(column), Cell::Outcome(o), rule, src, fact.detail.clone());
        } else if let Some(d) = dx.iter().find(|d| d.remission) {
            let src = vec![Src::of(&d.source, d.text)];
            let cell = Cell::Outcome(Outcome::CompleteRemission);
            self.put(Some(column), cell, rule, src, "Condition.clinicalStatus remission");
        }
    }
}

fn age_at(birth: Option<FhirDate>, at: FhirDate) -> Option<u32> {
    birth?.completed_years_until(&at)
}

fn yes_no(values: impl Iterator<Item = bool>) -> YesNoUnknown {
    let mut result = YesNoUnknown::Unknown;
    for v in values {
        if v {
            return YesNoUnknown::Yes;
        }
        result = YesNoUnknown::No;
    }
    result
}

fn to_bool(v: YesNoUnknown) -> Option<bool> {
    match v {
        YesNoUnknown::Yes => Some(true),
        YesNoUnknown::No => Some(false),
        YesNoUnknown::Unknown => None,
    }
}

fn candidate(site: &str, id: &str, data: &PatientData, m: &MappingSet) -> Option<Candidate> {
    let mut scratch = RowBuilder {
        row: CaseRow::empty(id, &m.dictionary),
        prov: Vec::new(),
        marks: Vec::new(),
        m,
        patient: format!("Patient/{id}"),
        patient_text: None,
    };
    for (i, rule) in m.rules.iter().enumerate() {
        if matches!(rule.kind, RuleKind::LabPeak { .. } | RuleKind::Antibody { .. }) {
            let facts: Vec<&Fact> = data.facts.iter().filter(|f| f.rule == i).collect();
            scratch.apply(rule, &facts, &[]);
        }
    }
    let row = scratch.row;
    let d = &m.dictionary;
    let mut reasons = Vec::new();
    let positive: Vec<&str> = d
        .of_kind(ColumnKind::Antibody)
        .filter(|&i| *row.get(i) == Cell::Antibody(AntibodyStatus::Positive))
        .map(|i| d.columns[i].name.as_str())
        .collect();
    let lab = m.candidates.lab_peak;
    if let (Some(peak), false) = (row.get(lab).number(), positive.is_empty()) {
        if peak > m.candidates.above {
            reasons.push(format!(
                "{} {} > {} and {} positive",
                d.columns[lab].name,
                format_number(peak),
                format_number(m.candidates.above),
                positive.join(", ")
            ));
        }
    }
    let codes_of = |kind: DiagnosisKind| {
        let codes: Vec<&str> = data
            .diagnoses
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| d.code.as_str())
            .collect();
        (!codes.is_empty()).then(|| codes.join(", "))
    };
    if let Some(codes) = codes_of(DiagnosisKind::ParentOnly) {
        reasons.push(format!("myositis parent code {codes} without IMNM wording"));
    }
    if let Some(codes) = codes_of(DiagnosisKind::TextOnly) {
        reasons.push(format!(
            "Condition text names IMNM but its code ({codes}) is not an IMNM or parent code"
        ));
    }
    if reasons.is_empty() {
        return None;
    }
    let codes: Vec<&str> = data.diagnoses.iter().map(|d| d.code.as_str()).collect();
    let values = d.candidate_columns().into_iter().map(|i| row.get(i).text(id)).collect();
    Some(Candidate {
        site: site.to_string(),
        patient_id: id.to_string(),
        reason: reasons.join("; "),
        diagnosis_codes: codes.join(";"),
        values,
    })
}
