//! The rows of the facts table: what one patient's collected data, and the
//! open references of a shard, become (one [`FactRow`] each).

use crate::collect::{OpenReferences, PatientData};
use crate::deid::SiteKey;
use crate::domain::facts::MriPart;
use crate::domain::{ColumnKind, DiagnosisFact, DiagnosisKind, Evidence, Fact, FactValue, FhirDate, Onset, SourceRef};
use crate::mapping::{MappingSet, RuleKind};

/// What a row is; the SQL reads each role its own way (docs/facts.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A value a rule of rules.toml read (kinds filled by a rule).
    Value,
    /// Patient demographics: `sex` (value_code) or `birth-date` (value_date).
    Patient,
    /// A myositis Condition: `diagnosis-code` with the coding (value_code),
    /// how it relates to IMNM (value_text) and its recordedDate (date).
    Diagnosis,
    /// A Condition's onset: `onset-date` (value_date) or `onset-age` (value_num, onsetAge).
    Onset,
    /// The onset age in completed years a Condition states (extension), `onset-age` (value_int).
    StatedAge,
    /// A Condition in remission: `outcome` complete_remission when no outcome is recorded.
    Remission,
    /// A medication request naming a Medication in another file (value_text: `Medication/id`).
    MedicationReference,
    /// A Medication an exposure rule matches (no patient; source: `Medication/id`).
    Medication,
    /// A linking identifier of the patient, keyed (value_code: HMAC-SHA256 hex
    /// of `system|value` under the registry's link key; `imnm facts --link-key`).
    Link,
}

impl Role {
    /// The role's name in the `role` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Value => "value",
            Self::Patient => "patient",
            Self::Diagnosis => "diagnosis",
            Self::Onset => "onset",
            Self::StatedAge => "stated-age",
            Self::Remission => "remission",
            Self::MedicationReference => "medication-reference",
            Self::Medication => "medication",
            Self::Link => "link",
        }
    }
}

/// How a diagnosis relates to IMNM, in the `value_text` of a [`Role::Diagnosis`] row.
pub fn diagnosis_kind(kind: DiagnosisKind) -> &'static str {
    match kind {
        DiagnosisKind::Qualifying => "qualifying",
        DiagnosisKind::ParentWithText => "parent-with-text",
        DiagnosisKind::ParentOnly => "parent-only",
        DiagnosisKind::Differential => "differential",
        DiagnosisKind::TextOnly => "text-only",
    }
}

/// One row of the facts table (`None` is NULL).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FactRow {
    /// What the row is ([`Role::as_str`]).
    pub role: &'static str,
    /// The patient key (pseudonym with a site key); `None` for a Medication.
    pub patient: Option<String>,
    /// The dictionary column the value is for, when the dictionary has one.
    pub column: Option<String>,
    /// The column kind ([`ColumnKind::as_str`]).
    pub kind: &'static str,
    /// The rule that read it.
    pub rule: Option<String>,
    /// A number (a lab value in its canonical unit; an onsetAge in years).
    pub value_num: Option<f64>,
    /// A whole number (how many results a lab value stands for; a stated age).
    pub value_int: Option<i64>,
    /// A code or level (`system|code`, `positive`, `yes`…).
    pub value_code: Option<String>,
    /// Text: an MRI part, a diagnosis's relation to IMNM, a Medication reference, the coding matched.
    pub value_text: Option<String>,
    /// A date value (birth date, onset date), as FHIR writes it (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`).
    pub value_date: Option<String>,
    /// The unit of `value_num`.
    pub unit: Option<String>,
    /// The comparator of a quantity (none today: results with one are not read as values).
    pub comparator: Option<String>,
    /// When it applies (effective, authored, recorded date).
    pub date: Option<String>,
    /// The resource it came from, `Type/id`.
    pub source: String,
    /// The order of evidence of a value ([`evidence_rank`]); `None` for other roles.
    pub evidence: Option<i64>,
}

/// A value's place in the order of evidence (README "Findings from text"),
/// lowest best: 0 coded, `1 + n` text of the `n`-th kind its text rule lists.
pub fn evidence_rank(e: Evidence) -> i64 {
    match e {
        Evidence::Coded => 0,
        Evidence::Text(n) => 1 + i64::from(n),
    }
}

/// Patient keys, resource ids and dates as the facts table writes them:
/// unchanged, or with a site key the export's pseudonyms and date shift.
pub struct Keying<'k> {
    key: Option<&'k SiteKey>,
    max_offset_days: u32,
    link: Option<(&'k SiteKey, &'k [String])>,
}

impl<'k> Keying<'k> {
    /// Without a key (`None`) ids and dates are written as read; with one,
    /// as `imnm export` writes them (shift of at most `max_offset_days`).
    pub fn new(key: Option<&'k SiteKey>, max_offset_days: u32) -> Self {
        Self {
            key,
            max_offset_days,
            link: None,
        }
    }

    /// The same, writing a [`Role::Link`] row for each identifier of
    /// `systems` (canonical URIs) a Patient holds, keyed with `link_key`.
    pub fn with_link(self, link_key: &'k SiteKey, systems: &'k [String]) -> Self {
        Self {
            link: Some((link_key, systems)),
            ..self
        }
    }

    /// The keyed values of the linking identifiers among `identifiers`
    /// (`system|value`), each once, in order; none without a link key.
    fn links(&self, identifiers: &[String]) -> Vec<String> {
        let Some((key, systems)) = self.link else {
            return Vec::new();
        };
        let named = identifiers.iter().filter(|i| {
            i.split_once('|')
                .is_some_and(|(system, value)| !value.is_empty() && systems.iter().any(|s| s == system))
        });
        let named: std::collections::BTreeSet<&String> = named.collect();
        named
            .into_iter()
            .map(|i| crate::deid::key::to_hex(&key.hmac(i)))
            .collect()
    }

    /// The patient key of patient `id`.
    pub fn patient(&self, id: &str) -> String {
        self.key.map_or_else(|| id.to_string(), |k| k.pseudonym("Patient", id))
    }

    fn source(&self, s: &SourceRef) -> String {
        match self.key {
            Some(k) => format!("{}/{}", s.resource_type, k.pseudonym(&s.resource_type, &s.id)),
            None => s.to_string(),
        }
    }

    fn date(&self, patient: &str, d: Option<FhirDate>) -> Option<String> {
        let d = d?.to_string();
        let Some(k) = self.key else { return Some(d) };
        let days = k.offset_days(patient, self.max_offset_days);
        match crate::deid::dates::shift(&d, days) {
            crate::deid::dates::Shifted::Full(s, _) | crate::deid::dates::Shifted::Partial(s) => Some(s),
            crate::deid::dates::Shifted::Invalid => None,
        }
    }
}

/// Every row of one patient's data, in reading order: demographics, diagnoses, rule facts.
pub fn patient_rows(id: &str, data: &PatientData, m: &MappingSet, k: &Keying<'_>) -> Vec<FactRow> {
    let key = k.patient(id);
    let base = |role: Role, kind: ColumnKind, source: String| FactRow {
        role: role.as_str(),
        patient: Some(key.clone()),
        column: m.dictionary.first(kind).map(|i| m.dictionary.columns[i].name.clone()),
        kind: kind.as_str(),
        source,
        ..FactRow::default()
    };
    let mut out = Vec::new();
    if let Some(rec) = &data.record {
        let src = k.source(&SourceRef::new("Patient", id));
        out.push(FactRow {
            value_code: Some(rec.sex.to_string()),
            ..base(Role::Patient, ColumnKind::Sex, src.clone())
        });
        if let Some(birth) = k.date(id, rec.birth_date) {
            out.push(FactRow {
                value_date: Some(birth),
                ..base(Role::Patient, ColumnKind::BirthDate, src.clone())
            });
        }
        for link in k.links(&rec.identifiers) {
            out.push(FactRow {
                role: Role::Link.as_str(),
                patient: Some(key.clone()),
                kind: Role::Link.as_str(),
                value_code: Some(link),
                source: src.clone(),
                ..FactRow::default()
            });
        }
    }
    for d in &data.diagnoses {
        diagnosis_rows(id, d, m, k, &base, &mut out);
    }
    for f in &data.facts {
        if let Some(row) = value_row(id, f, m, k) {
            out.push(FactRow {
                patient: Some(key.clone()),
                ..row
            });
        }
    }
    out
}

fn diagnosis_rows(
    id: &str,
    d: &DiagnosisFact,
    m: &MappingSet,
    k: &Keying<'_>,
    base: &dyn Fn(Role, ColumnKind, String) -> FactRow,
    out: &mut Vec<FactRow>,
) {
    let src = k.source(&d.source);
    let rule = Some(m.diagnosis.id.clone());
    out.push(FactRow {
        rule: rule.clone(),
        value_code: Some(d.code.clone()),
        value_text: Some(diagnosis_kind(d.kind).to_string()),
        date: k.date(id, d.recorded),
        ..base(Role::Diagnosis, ColumnKind::DiagnosisCode, src.clone())
    });
    match d.onset {
        Some(Onset::Date(date, element)) => out.push(FactRow {
            rule: rule.clone(),
            value_date: k.date(id, Some(date)),
            value_text: Some(format!("Condition.{}", element.as_str())),
            ..base(Role::Onset, ColumnKind::OnsetDate, src.clone())
        }),
        Some(Onset::Age(years)) => out.push(FactRow {
            rule: rule.clone(),
            value_num: Some(years),
            unit: Some("a".into()),
            value_text: Some("Condition.onsetAge".into()),
            ..base(Role::Onset, ColumnKind::OnsetAge, src.clone())
        }),
        None => {}
    }
    if let Some(a) = d.age_years {
        out.push(FactRow {
            rule: rule.clone(),
            value_int: Some(i64::from(a)),
            unit: Some("a".into()),
            ..base(Role::StatedAge, ColumnKind::OnsetAge, src.clone())
        });
    }
    if d.remission {
        let rule = m
            .dictionary
            .first(ColumnKind::Outcome)
            .and_then(|c| m.rules.iter().find(|r| r.column == c));
        out.push(FactRow {
            rule: rule.map(|r| r.id.clone()),
            value_code: Some(crate::domain::Outcome::CompleteRemission.to_string()),
            value_text: Some("Condition.clinicalStatus remission".into()),
            ..base(Role::Remission, ColumnKind::Outcome, src)
        });
    }
}

/// The row of one rule fact (without its patient).
fn value_row(patient: &str, f: &Fact, m: &MappingSet, k: &Keying<'_>) -> Option<FactRow> {
    let rule = m.rules.get(f.rule)?;
    let column = &m.dictionary.columns.get(rule.column)?;
    let unit = match rule.kind {
        RuleKind::LabPeak { quantity, .. } => m.quantities.get(quantity).map(|q| q.canonical.clone()),
        _ => None,
    };
    let mut row = FactRow {
        role: Role::Value.as_str(),
        column: Some(column.name.clone()),
        kind: column.kind.as_str(),
        rule: Some(rule.id.clone()),
        date: k.date(patient, f.date),
        source: k.source(&f.source),
        evidence: Some(evidence_rank(f.evidence)),
        ..FactRow::default()
    };
    let yes_no = |b: bool| Some(if b { "yes" } else { "no" }.to_string());
    match f.value {
        FactValue::Quantity(x) => (row.value_num, row.value_int, row.unit) = (Some(x), Some(1), unit),
        FactValue::Summary { peak, count } => {
            (row.value_num, row.value_int, row.unit) = (Some(peak), Some(i64::from(count)), unit);
        }
        FactValue::Antibody(a) => row.value_code = Some(a.to_string()),
        FactValue::Present(b) => row.value_code = yes_no(b),
        FactValue::Mri(part, b) => {
            row.value_code = yes_no(b);
            row.value_text = Some(mri_part(part).to_string());
        }
        FactValue::Exposure => {
            row.value_code = yes_no(true);
            row.value_text = f.via.as_ref().map(|v| k.source(v));
        }
        FactValue::Outcome(o) => row.value_code = Some(o.to_string()),
    }
    Some(row)
}

/// The MRI part of an `mri` row, in its `value_text`.
pub fn mri_part(part: MriPart) -> &'static str {
    match part {
        MriPart::Edema => "edema",
        MriPart::Fatty => "fatty",
    }
}

/// The rows of a shard's open references: each request naming a Medication
/// elsewhere, each Medication an exposure rule matches.
pub fn open_rows(open: &OpenReferences, m: &MappingSet, k: &Keying<'_>) -> Vec<FactRow> {
    let exposure = ColumnKind::Exposure.as_str();
    let mut out = Vec::new();
    for r in &open.requests {
        out.push(FactRow {
            role: Role::MedicationReference.as_str(),
            patient: Some(k.patient(&r.subject)),
            kind: exposure,
            value_text: Some(k.source(&SourceRef::new("Medication", r.medication_id.as_str()))),
            date: k.date(&r.subject, r.date),
            source: k.source(&r.source),
            ..FactRow::default()
        });
    }
    for (id, matches) in &open.medications {
        for (rule, detail) in matches {
            let Some(rule) = m.rules.get(*rule) else { continue };
            out.push(FactRow {
                role: Role::Medication.as_str(),
                column: m.dictionary.columns.get(rule.column).map(|c| c.name.clone()),
                kind: exposure,
                rule: Some(rule.id.clone()),
                value_code: Some("yes".into()),
                value_text: Some(detail.clone()),
                source: k.source(&SourceRef::new("Medication", id.as_str())),
                evidence: Some(evidence_rank(Evidence::Coded)),
                ..FactRow::default()
            });
        }
    }
    out
}
