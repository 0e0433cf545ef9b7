//! Case rows → transaction Bundle. Each value is written as the first code of
//! the value set its forward rule reads (mappings/rules.toml), so the Bundle
//! reads back into the same row. Ids, fullUrls and business identifiers are
//! derived from the patient id and the column, so the same rows always give
//! the same Bundle and a second push creates nothing (ifNoneExist). Every
//! Observation carries a category, so category searches find it.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::domain::{AntibodyStatus, CaseRow, Cell, ColumnKind, MriThigh, Outcome, Sex, YesNoUnknown};
use crate::mapping::extract::{ONSET_AGE_URL, RESULT_COUNT_URL};
use crate::mapping::{MappingSet, RuleKind};
use crate::profile::CANONICAL_BASE;

/// The identifier system used when no `--site-system` is given.
pub const DEFAULT_SITE_SYSTEM: &str = "https://imnm-fhir.org/fhir/NamingSystem/case-report";
const UCUM: &str = "http://unitsofmeasure.org";
const CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// A row that cannot become FHIR (reported by row, column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct BundleError {
    /// The column.
    pub column: String,
    /// What is wrong.
    pub message: String,
}

/// Where and how a column's resource is written.
struct Target<'a> {
    /// The key its id and identifier derive from (the column name, or `column/part`).
    key: String,
    /// Profile id.
    profile: &'a str,
    /// Observation category code.
    category: Option<&'a str>,
}

struct Row<'a> {
    m: &'a MappingSet,
    system: &'a str,
    pid: &'a str,
    /// The case's business key: the patient id, or `site/patient id` for a
    /// row of a named site (so equal ids of two sites never meet).
    case_key: String,
    patient_url: String,
    entries: Vec<Value>,
}

fn hash_hex(pid: &str, key: &str) -> String {
    let digest = Sha256::digest(format!("imnm-to-fhir\u{0}{pid}\u{0}{key}").as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn urn(pid: &str, key: &str) -> String {
    let h = hash_hex(pid, &format!("{key}#url"));
    format!(
        "urn:uuid:{}-{}-4{}-8{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn concept(system: &str, code: &str, text: Option<&str>) -> Value {
    let mut c = json!({"coding": [{"system": system, "code": code}]});
    if let Some(t) = text {
        c["text"] = json!(t);
    }
    c
}

impl<'a> Row<'a> {
    fn first_code(&self, vs: usize) -> Result<(String, String), BundleError> {
        self.m.valuesets[vs].codes.first().cloned().ok_or_else(|| BundleError {
            column: "(mappings)".into(),
            message: format!("value set {} has no code to write", self.m.valuesets[vs].id),
        })
    }

    /// The rule kind filling column `i`.
    fn kind_of(&self, i: usize) -> Result<&'a RuleKind, BundleError> {
        let m: &'a MappingSet = self.m;
        m.rule_for(i).map(|(_, r)| &r.kind).ok_or_else(|| BundleError {
            column: m.dictionary.columns[i].name.clone(),
            message: "no mapping rule fills this column".into(),
        })
    }

    /// How column `i` is written (from the dictionary's `fhir`).
    fn target(&self, i: usize) -> Result<Target<'a>, BundleError> {
        let m: &'a MappingSet = self.m;
        let column = &m.dictionary.columns[i];
        let fhir = column.fhir.as_ref().ok_or_else(|| BundleError {
            column: column.name.clone(),
            message: "the dictionary gives no fhir target for this column".into(),
        })?;
        Ok(Target {
            key: column.name.clone(),
            profile: &fhir.profile,
            category: fhir.category.as_deref(),
        })
    }

    /// Adds a resource with its id, profile, identifier and conditional-create request.
    fn push(&mut self, t: &Target<'_>, mut r: Value) -> String {
        let key = t.key.as_str();
        let rtype = r["resourceType"].as_str().unwrap_or_default().to_string();
        let case = self.case_key.as_str();
        let (id, value, url) = if key == PATIENT_KEY {
            (self.pid.to_string(), case.to_string(), self.patient_url.clone())
        } else {
            (hash_hex(case, key), format!("{case}/{key}"), urn(case, key))
        };
        r["id"] = json!(id);
        r["meta"] = json!({"profile": [format!("{CANONICAL_BASE}/StructureDefinition/{}", t.profile)]});
        r["identifier"] = json!([{"system": self.system, "value": value}]);
        if let Some(category) = t.category {
            r["category"] = json!([concept(OBS_CATEGORY, category, None)]);
        }
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let query = format!("identifier={}|{}", enc(self.system), enc(&value));
        self.entries.push(json!({"fullUrl": url, "resource": r,
            "request": {"method": "POST", "url": rtype, "ifNoneExist": query}}));
        url
    }

    fn observation(&mut self, t: &Target<'_>, code: (String, String), value: (&str, Value)) {
        let mut o = json!({"resourceType": "Observation", "status": "final",
            "code": concept(&code.0, &code.1, None), "subject": {"reference": self.patient_url}});
        o[value.0] = value.1;
        self.push(t, o);
    }
}

/// The key of the Patient resource (its id is the patient id).
const PATIENT_KEY: &str = "patient";
/// The key of the Condition resource.
const CONDITION_KEY: &str = "condition";

/// The transaction Bundle for `rows`; errors come with the index of their row in `rows`.
pub fn build_bundle(rows: &[CaseRow], m: &MappingSet, site_system: &str) -> Result<Value, Vec<(usize, BundleError)>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let case_key = match row.site.as_str() {
            "" | crate::collect::LOCAL_SITE => row.patient_id.clone(),
            site => format!("{site}/{}", row.patient_id),
        };
        let mut r = Row {
            m,
            system: site_system,
            pid: &row.patient_id,
            patient_url: urn(&case_key, "patient"),
            case_key,
            entries: Vec::new(),
        };
        match case(&mut r, row) {
            Ok(()) => entries.extend(r.entries),
            Err(e) => errors.push((index, e)),
        }
    }
    if errors.is_empty() {
        Ok(json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
    } else {
        Err(errors)
    }
}

fn case(r: &mut Row<'_>, c: &CaseRow) -> Result<(), BundleError> {
    let d = &r.m.dictionary;
    let gender = match c.first(d, ColumnKind::Sex) {
        Some(Cell::Sex(s)) if *s != Sex::Unknown => s.as_str(),
        _ => "unknown",
    };
    let mut p = json!({"resourceType": "Patient", "gender": gender});
    if let Some(Cell::Date(Some(date))) = c.first(d, ColumnKind::BirthDate) {
        p["birthDate"] = json!(date.to_string());
    }
    let mut patient = resource_target(r, ColumnKind::PatientId)?;
    patient.key = PATIENT_KEY.into();
    r.push(&patient, p);
    let condition_url = condition(r, c)?;
    for (i, column) in d.columns.iter().enumerate() {
        match column.kind {
            ColumnKind::LabPeak => lab_peak(r, c, i)?,
            ColumnKind::Antibody => antibody(r, c, i)?,
            ColumnKind::Finding => finding(r, c, i)?,
            ColumnKind::Mri => mri(r, c, i)?,
            ColumnKind::Exposure => exposure(r, c, i)?,
            ColumnKind::Outcome => outcome(r, c, i, &condition_url)?,
            ColumnKind::PatientId
            | ColumnKind::Sex
            | ColumnKind::BirthDate
            | ColumnKind::OnsetDate
            | ColumnKind::OnsetAge
            | ColumnKind::DiagnosisCode
            | ColumnKind::LabPeakDate
            | ColumnKind::LabCount => {}
        }
    }
    Ok(())
}

/// The target of the dictionary's column of a single `kind` (Patient, Condition).
fn resource_target<'a>(r: &Row<'a>, kind: ColumnKind) -> Result<Target<'a>, BundleError> {
    let i = r.m.dictionary.first(kind).ok_or_else(|| BundleError {
        column: format!("({kind})"),
        message: format!("the dictionary has no {kind} column"),
    })?;
    r.target(i)
}

fn to_bool(v: YesNoUnknown) -> Option<bool> {
    match v {
        YesNoUnknown::Yes => Some(true),
        YesNoUnknown::No => Some(false),
        YesNoUnknown::Unknown => None,
    }
}

fn condition(r: &mut Row<'_>, c: &CaseRow) -> Result<String, BundleError> {
    let d = &r.m.dictionary;
    let mut target = resource_target(r, ColumnKind::DiagnosisCode)?;
    let err = |message: &str| BundleError {
        column: target.key.clone(),
        message: message.into(),
    };
    let code = match c.first(d, ColumnKind::DiagnosisCode) {
        Some(Cell::Code(code)) => code.as_str(),
        _ => "",
    };
    let (system, code) = code
        .split_once('|')
        .ok_or_else(|| err("a case needs its diagnosis code (system|code)"))?;
    let dx = &r.m.diagnosis;
    let sets = r.m.valuesets_of(system, code);
    if !sets.contains(&dx.valueset) && !sets.contains(&dx.parent) {
        return Err(err("not an IMNM code or parent code of mappings/codes/diagnosis.toml"));
    }
    let remission = matches!(
        c.first(d, ColumnKind::Outcome),
        Some(Cell::Outcome(Outcome::CompleteRemission))
    );
    let status = if remission { "remission" } else { "active" };
    let mut cond = json!({"resourceType": "Condition",
        "clinicalStatus": concept(CLINICAL, status, None), "verificationStatus": concept(VERIFICATION, "confirmed", None),
        "code": concept(system, code, Some("Immune-mediated necrotizing myopathy")), "subject": {"reference": r.patient_url}});
    let onset = match c.first(d, ColumnKind::OnsetDate) {
        Some(Cell::Date(date)) => *date,
        _ => None,
    };
    let age = match c.first(d, ColumnKind::OnsetAge) {
        Some(Cell::Age(a)) => *a,
        _ => None,
    };
    match (onset, age) {
        (Some(date), age) => {
            cond["onsetDateTime"] = json!(date.to_string());
            if let Some(a) = age {
                cond["extension"] = json!([{"url": ONSET_AGE_URL, "valueInteger": a}]);
            }
        }
        (None, Some(a)) => cond["onsetAge"] = json!({"value": a, "unit": "a", "system": UCUM, "code": "a"}),
        (None, None) => {}
    }
    target.key = CONDITION_KEY.into();
    Ok(r.push(&target, cond))
}

fn lab_peak(r: &mut Row<'_>, c: &CaseRow, i: usize) -> Result<(), BundleError> {
    let Some(peak) = c.get(i).number() else { return Ok(()) };
    let RuleKind::LabPeak { valueset, quantity } = *r.kind_of(i)? else {
        return Ok(());
    };
    let d = &r.m.dictionary;
    let code = r.first_code(valueset)?;
    let unit = r.m.quantities[quantity].canonical.clone();
    let mut o = json!({"resourceType": "Observation", "status": "final", "code": concept(&code.0, &code.1, None),
        "subject": {"reference": r.patient_url}, "valueQuantity": {"value": peak, "unit": unit, "system": UCUM, "code": unit}});
    if let Some(Cell::Date(Some(date))) = d.companion(i, ColumnKind::LabPeakDate).map(|j| c.get(j)) {
        o["effectiveDateTime"] = json!(date.to_string());
    }
    if let Some(Cell::Count(n)) = d.companion(i, ColumnKind::LabCount).map(|j| c.get(j)) {
        if *n > 1 {
            o["extension"] = json!([{"url": RESULT_COUNT_URL, "valuePositiveInt": n}]);
        }
    }
    let target = r.target(i)?;
    r.push(&target, o);
    Ok(())
}

fn antibody(r: &mut Row<'_>, c: &CaseRow, i: usize) -> Result<(), BundleError> {
    let RuleKind::Antibody { valueset } = *r.kind_of(i)? else {
        return Ok(());
    };
    let Cell::Antibody(status) = *c.get(i) else {
        return Ok(());
    };
    let a = r.m.answers;
    let answer = match status {
        AntibodyStatus::Positive => a.positive,
        AntibodyStatus::Negative => a.negative,
        AntibodyStatus::Indeterminate => a.indeterminate,
        AntibodyStatus::NotTested => return Ok(()),
    };
    let code = r.first_code(valueset)?;
    let (s, v) = r.first_code(answer)?;
    let target = r.target(i)?;
    let value = concept(&s, &v, Some(status.as_str()));
    r.observation(&target, code, ("valueCodeableConcept", value));
    Ok(())
}

fn finding(r: &mut Row<'_>, c: &CaseRow, i: usize) -> Result<(), BundleError> {
    let RuleKind::Finding { valueset } = *r.kind_of(i)? else {
        return Ok(());
    };
    let Cell::Finding(v) = *c.get(i) else { return Ok(()) };
    if let Some(b) = to_bool(v) {
        let code = r.first_code(valueset)?;
        let target = r.target(i)?;
        r.observation(&target, code, ("valueBoolean", json!(b)));
    }
    Ok(())
}

fn mri(r: &mut Row<'_>, c: &CaseRow, i: usize) -> Result<(), BundleError> {
    let RuleKind::Mri { edema, fatty } = *r.kind_of(i)? else {
        return Ok(());
    };
    let Cell::Mri(v) = *c.get(i) else { return Ok(()) };
    let parts = match v {
        MriThigh::Edema => (true, false),
        MriThigh::Fatty => (false, true),
        MriThigh::EdemaAndFatty => (true, true),
        MriThigh::Normal => (false, false),
        MriThigh::Unknown => return Ok(()),
    };
    let target = r.target(i)?;
    for (part, vs, present) in [("edema", edema, parts.0), ("fatty", fatty, parts.1)] {
        let code = r.first_code(vs)?;
        let t = Target {
            key: format!("{}/{part}", target.key),
            ..target
        };
        r.observation(&t, code, ("valueBoolean", json!(present)));
    }
    Ok(())
}

fn exposure(r: &mut Row<'_>, c: &CaseRow, i: usize) -> Result<(), BundleError> {
    let RuleKind::Exposure { valueset } = *r.kind_of(i)? else {
        return Ok(());
    };
    if *c.get(i) != Cell::Exposure(true) {
        return Ok(());
    }
    let (system, code) = r.first_code(valueset)?;
    let target = r.target(i)?;
    let ms = json!({"resourceType": "MedicationStatement", "status": "unknown",
        "medicationCodeableConcept": concept(&system, &code, Some(&target.key)), "subject": {"reference": r.patient_url}});
    r.push(&target, ms);
    Ok(())
}

fn outcome(r: &mut Row<'_>, c: &CaseRow, i: usize, condition_url: &str) -> Result<(), BundleError> {
    let RuleKind::Outcome {
        valueset,
        complete,
        partial,
        none,
    } = *r.kind_of(i)?
    else {
        return Ok(());
    };
    let Cell::Outcome(o) = *c.get(i) else { return Ok(()) };
    let vs = match o {
        Outcome::CompleteRemission => complete,
        Outcome::PartialRemission => partial,
        Outcome::NoRemission => none,
        Outcome::Unknown => return Ok(()),
    };
    let code = r.first_code(valueset)?;
    let (s, v) = r.first_code(vs)?;
    let obs = json!({"resourceType": "Observation", "status": "final", "code": concept(&code.0, &code.1, None),
        "subject": {"reference": r.patient_url}, "focus": [{"reference": condition_url}],
        "valueCodeableConcept": concept(&s, &v, Some(o.as_str()))});
    let target = r.target(i)?;
    r.push(&target, obs);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_observation_has_the_category_of_its_column() {
        let m = MappingSet::builtin().unwrap();
        let d = &m.dictionary;
        let col = |n: &str| d.index(n).unwrap();
        let mut row = CaseRow::empty("p1", d);
        row.set(
            col("diagnosis_code"),
            Cell::Code("http://snomed.info/sct|715863001".into()),
        );
        row.set(col("ck_peak_u_per_l"), Cell::Number(Some(5000.0)));
        row.set(col("anti_hmgcr"), Cell::Antibody(AntibodyStatus::Positive));
        row.set(col("rash"), Cell::Finding(YesNoUnknown::No));
        row.set(col("biopsy_necrosis"), Cell::Finding(YesNoUnknown::Yes));
        row.set(col("mri_thigh"), Cell::Mri(MriThigh::Edema));
        row.set(col("outcome"), Cell::Outcome(Outcome::PartialRemission));
        let bundle = build_bundle(&[row], &m, DEFAULT_SITE_SYSTEM).unwrap();
        let mut got: Vec<(String, String)> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["resource"]["resourceType"] == "Observation")
            .map(|e| {
                let c = &e["resource"]["category"][0]["coding"][0];
                assert_eq!(c["system"], OBS_CATEGORY);
                let key = e["resource"]["identifier"][0]["value"].as_str().unwrap();
                (key.to_string(), c["code"].as_str().unwrap().to_string())
            })
            .collect();
        got.sort();
        let want = [
            ("p1/anti_hmgcr", "laboratory"),
            ("p1/biopsy_necrosis", "procedure"),
            ("p1/ck_peak_u_per_l", "laboratory"),
            ("p1/mri_thigh/edema", "imaging"),
            ("p1/mri_thigh/fatty", "imaging"),
            ("p1/outcome", "exam"),
            ("p1/rash", "exam"),
        ];
        let want: Vec<(String, String)> = want.iter().map(|(k, c)| (k.to_string(), c.to_string())).collect();
        assert_eq!(got, want);
    }
}
