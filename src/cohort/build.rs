//! Case selection and per-column aggregation.

use super::{Candidate, Cohort, Provenance};
use crate::collect::{PatientData, Patients};
use crate::domain::case::format_number;
use crate::domain::facts::MriPart;
use crate::domain::{
    AntibodyStatus, CaseRow, DiagnosisFact, DiagnosisKind, Fact, FactValue, FhirDate, MriThigh, Onset, Outcome,
    YesNoUnknown,
};
use crate::mapping::{MappingSet, RuleKind};
use crate::report::{Issue, IssueCode, Issues, Severity};

/// Builds the cohort from every patient's data, one patient at a time (in id
/// order). Issues found here (a case without birthDate, a differential-only
/// patient) are added to `issues`. Fails only when spilled patients cannot be
/// read back from their temporary file.
pub fn build(patients: &Patients, m: &MappingSet, issues: &mut Issues) -> crate::Result<Cohort> {
    let mut cohort = Cohort::default();
    patients
        .try_for_each(|id, data| {
            add_patient(&mut cohort, id, data, m, issues);
            Ok::<_, std::io::Error>(())
        })
        .map_err(|source| crate::Error::Spill { source })?;
    cohort
        .provenance
        .flush()
        .map_err(|source| crate::Error::Spill { source })?;
    Ok(cohort)
}

fn add_patient(cohort: &mut Cohort, id: &str, data: &PatientData, m: &MappingSet, issues: &mut Issues) {
    let qualifying: Vec<&DiagnosisFact> = data.diagnoses.iter().filter(|d| d.kind.qualifies()).collect();
    if qualifying.is_empty() {
        if let Some(c) = candidate(id, data, m) {
            cohort.candidates.push(c);
        }
        return;
    }
    let mut b = RowBuilder {
        row: CaseRow::empty(id),
        prov: Vec::new(),
        m,
    };
    b.demographics(data, issues);
    b.diagnosis(&qualifying, data, issues);
    for (i, rule) in m.rules.iter().enumerate() {
        let facts: Vec<&Fact> = data.facts.iter().filter(|f| f.rule == i).collect();
        b.apply(i, &rule.kind, &facts, &qualifying);
    }
    cohort.rows.push(b.row);
    add_provenance(cohort, b.prov, issues);
}

/// Keeps a case's provenance, and counts it per column and source type (for completeness).
fn add_provenance(cohort: &mut Cohort, prov: Vec<Provenance>, issues: &mut Issues) {
    let mut types = std::collections::BTreeSet::new();
    for p in &prov {
        types.extend(p.sources.iter().map(|s| (p.column, s.split('/').next().unwrap_or(""))));
    }
    for (column, t) in types {
        *cohort
            .cases_by_source
            .entry(column)
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

struct RowBuilder<'m> {
    row: CaseRow,
    prov: Vec<Provenance>,
    m: &'m MappingSet,
}

impl RowBuilder<'_> {
    fn note(
        &mut self,
        column: &'static str,
        value: String,
        rule: &str,
        sources: Vec<String>,
        detail: impl Into<String>,
    ) {
        let patient_id = self.row.patient_id.clone();
        self.prov.push(Provenance {
            patient_id,
            column,
            value,
            rule: rule.to_string(),
            sources,
            detail: detail.into(),
        });
    }

    fn demographics(&mut self, data: &PatientData, issues: &mut Issues) {
        let src = vec![format!("Patient/{}", self.row.patient_id)];
        let Some(rec) = &data.record else {
            let msg = "case has no Patient resource in the input; sex and birth date unknown";
            issues.push(Issue::new(
                Severity::Warning,
                IssueCode::DanglingReference,
                format!("Patient/{}", self.row.patient_id),
                msg,
            ));
            return;
        };
        self.row.sex = rec.sex;
        self.note("sex", rec.sex.to_string(), "patient", src.clone(), "Patient.gender");
        self.row.birth_date = rec.birth_date;
        match rec.birth_date {
            Some(d) => self.note("birth_date", d.to_string(), "patient", src, "Patient.birthDate"),
            None => {
                let msg = "case without birthDate: onset age can only come from Condition.onsetAge";
                issues.push(
                    Issue::new(Severity::Warning, IssueCode::MissingValue, src[0].clone(), msg).at("Patient.birthDate"),
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
        let src = vec![dx.source.to_string()];
        self.row.diagnosis_code = dx.code.clone();
        let how = if dx.kind == DiagnosisKind::ParentWithText {
            "parent code with IMNM wording in text"
        } else {
            "IMNM code"
        };
        self.note("diagnosis_code", dx.code.clone(), &rule, src.clone(), how);
        let birth = data.record.as_ref().and_then(|r| r.birth_date);
        let (age, detail) = match dx.onset {
            Some(Onset::Age(years)) => (Some(years.floor() as u32), "Condition.onsetAge".to_string()),
            Some(Onset::Date(date, element)) => {
                self.row.onset_date = Some(date);
                self.note(
                    "onset_date",
                    date.to_string(),
                    &rule,
                    src.clone(),
                    format!("Condition.{}", element.as_str()),
                );
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
            self.row.onset_age_years = Some(a);
            let mut sources = src;
            if !detail.starts_with("Condition.onsetAge") && !detail.starts_with("Condition.extension") {
                sources.push(format!("Patient/{}", self.row.patient_id));
            }
            self.note("onset_age_years", a.to_string(), &rule, sources, detail);
        }
    }

    fn apply(&mut self, rule_index: usize, kind: &RuleKind, facts: &[&Fact], dx: &[&DiagnosisFact]) {
        let rule = self.m.rules[rule_index].clone();
        let column = rule.column;
        match kind {
            RuleKind::LabPeak { .. } => self.lab_peak(&rule.id, facts),
            RuleKind::Antibody { .. } => {
                let best = facts
                    .iter()
                    .filter_map(|f| match f.value {
                        FactValue::Antibody(s) => Some(s),
                        _ => None,
                    })
                    .max_by_key(|s| s.rank());
                let status = best.unwrap_or(AntibodyStatus::NotTested);
                if column == "anti_hmgcr" {
                    self.row.anti_hmgcr = status
                } else {
                    self.row.anti_srp = status
                }
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
                self.set_finding(column, v);
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
                self.row.mri_thigh = MriThigh::from_parts(part(MriPart::Edema), part(MriPart::Fatty));
                let all: Vec<&&Fact> = facts.iter().collect();
                self.note_facts(column, self.row.mri_thigh.to_string(), &rule.id, &all);
            }
            RuleKind::Exposure { .. } => {
                let yes = !facts.is_empty();
                match column {
                    "glucocorticoid" => self.row.glucocorticoid = yes,
                    "methotrexate" => self.row.methotrexate = yes,
                    "rituximab" => self.row.rituximab = yes,
                    _ => self.row.ivig = yes,
                }
                let all: Vec<&&Fact> = facts.iter().collect();
                self.note_facts(column, if yes { "yes" } else { "no" }.into(), &rule.id, &all);
            }
            RuleKind::Outcome { .. } => self.outcome(&rule.id, facts, dx),
        }
    }

    fn note_facts(&mut self, column: &'static str, value: String, rule: &str, facts: &[&&Fact]) {
        if facts.is_empty() {
            return;
        }
        let mut sources: Vec<String> = Vec::new();
        for f in facts {
            for s in std::iter::once(&f.source).chain(f.via.as_ref()) {
                let s = s.to_string();
                if !sources.contains(&s) {
                    sources.push(s);
                }
            }
        }
        let detail = facts.iter().map(|f| f.detail.as_str()).collect::<Vec<_>>().join("; ");
        self.note(column, value, rule, sources, detail);
    }

    fn set_finding(&mut self, column: &str, v: YesNoUnknown) {
        match column {
            "proximal_weakness" => self.row.proximal_weakness = v,
            "rash" => self.row.rash = v,
            "emg_myopathic" => self.row.emg_myopathic = v,
            _ => self.row.biopsy_necrosis = v,
        }
    }

    fn lab_peak(&mut self, rule: &str, facts: &[&Fact]) {
        let values: Vec<(&Fact, f64, u32)> = facts
            .iter()
            .filter_map(|f| match f.value {
                FactValue::Quantity(q) => Some((*f, q, 1)),
                FactValue::Summary { peak, count } => Some((*f, peak, count)),
                _ => None,
            })
            .collect();
        let count: u32 = values.iter().map(|v| v.2).sum();
        self.row.ck_count = count;
        let peak = values
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.date.cmp(&a.0.date)));
        let Some((fact, value, _)) = peak else { return };
        self.row.ck_peak_u_per_l = Some(*value);
        self.row.ck_peak_date = fact.date;
        let src = vec![fact.source.to_string()];
        self.note(
            "ck_peak_u_per_l",
            format_number(*value),
            rule,
            src.clone(),
            fact.detail.clone(),
        );
        if let Some(d) = fact.date {
            self.note(
                "ck_peak_date",
                d.to_string(),
                rule,
                src,
                "effective date of the peak result",
            );
        }
        let all = values.iter().map(|(f, _, _)| f.source.to_string()).collect();
        self.note(
            "ck_count",
            count.to_string(),
            rule,
            all,
            "results counted (excluded statuses and unconvertible units left out)",
        );
    }

    fn outcome(&mut self, rule: &str, facts: &[&Fact], dx: &[&DiagnosisFact]) {
        let latest = facts
            .iter()
            .filter_map(|f| match f.value {
                FactValue::Outcome(o) => Some((*f, o)),
                _ => None,
            })
            .max_by_key(|(f, _)| f.date);
        if let Some((fact, o)) = latest {
            self.row.outcome = o;
            self.note(
                "outcome",
                o.to_string(),
                rule,
                vec![fact.source.to_string()],
                fact.detail.clone(),
            );
        } else if let Some(d) = dx.iter().find(|d| d.remission) {
            self.row.outcome = Outcome::CompleteRemission;
            self.note(
                "outcome",
                self.row.outcome.to_string(),
                rule,
                vec![d.source.to_string()],
                "Condition.clinicalStatus remission",
            );
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

fn candidate(id: &str, data: &PatientData, m: &MappingSet) -> Option<Candidate> {
    let mut scratch = RowBuilder {
        row: CaseRow::empty(id),
        prov: Vec::new(),
        m,
    };
    for (i, rule) in m.rules.iter().enumerate() {
        if matches!(rule.kind, RuleKind::LabPeak { .. } | RuleKind::Antibody { .. }) {
            let facts: Vec<&Fact> = data.facts.iter().filter(|f| f.rule == i).collect();
            scratch.apply(i, &rule.kind, &facts, &[]);
        }
    }
    let row = scratch.row;
    let mut reasons = Vec::new();
    let ab = [("anti_hmgcr", row.anti_hmgcr), ("anti_srp", row.anti_srp)];
    let positive: Vec<&str> = ab
        .iter()
        .filter(|(_, s)| *s == AntibodyStatus::Positive)
        .map(|(n, _)| *n)
        .collect();
    if let (Some(ck), false) = (row.ck_peak_u_per_l, positive.is_empty()) {
        if ck > m.candidate_ck_above {
            reasons.push(format!(
                "ck_peak_u_per_l {} > {} and {} positive",
                format_number(ck),
                format_number(m.candidate_ck_above),
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
    let ck = row.ck_peak_u_per_l.map(format_number).unwrap_or_default();
    Some(Candidate {
        patient_id: id.to_string(),
        reason: reasons.join("; "),
        diagnosis_codes: codes.join(";"),
        ck_peak_u_per_l: ck,
        anti_hmgcr: row.anti_hmgcr.to_string(),
        anti_srp: row.anti_srp.to_string(),
    })
}
