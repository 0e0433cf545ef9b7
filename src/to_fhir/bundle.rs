//! Case rows → transaction Bundle. Each value is written as the first code of
//! the value set its forward rule reads (mappings/rules.toml), so the Bundle
//! reads back into the same row. Ids, fullUrls and business identifiers are
//! derived from the patient id and the column, so the same rows always give
//! the same Bundle and a second push creates nothing (ifNoneExist). Every
//! Observation carries a category, so category searches find it.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::domain::{AntibodyStatus, CaseRow, MriThigh, Outcome, Sex, YesNoUnknown};
use crate::mapping::extract::{ONSET_AGE_URL, RESULT_COUNT_URL};
use crate::mapping::{MappingSet, RuleKind};
use crate::profile::CANONICAL_BASE;

/// The identifier system used when no `--site-system` is given.
pub const DEFAULT_SITE_SYSTEM: &str = "https://imnm-fhir.org/fhir/NamingSystem/case-report";
const UCUM: &str = "http://unitsofmeasure.org";
const CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// The observation-category code of an Observation written for `key` (a column, or
/// `mri_thigh/…`). Servers that search Observations by category (Epic, and `imnm sync`
/// wherever the server declares `category`) miss an Observation without one.
fn observation_category(key: &str) -> &'static str {
    match key {
        "ck_peak_u_per_l" | "anti_hmgcr" | "anti_srp" => "laboratory",
        "emg_myopathic" | "biopsy_necrosis" => "procedure",
        k if k.starts_with("mri_thigh") => "imaging",
        _ => "exam",
    }
}

/// A row that cannot become FHIR (reported by row, column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct BundleError {
    /// The column.
    pub column: &'static str,
    /// What is wrong.
    pub message: String,
}

struct Row<'a> {
    m: &'a MappingSet,
    system: &'a str,
    pid: &'a str,
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

impl Row<'_> {
    fn first_code(&self, vs: usize) -> Result<(String, String), BundleError> {
        self.m.valuesets[vs].codes.first().cloned().ok_or_else(|| BundleError {
            column: "(mappings)",
            message: format!("value set {} has no code to write", self.m.valuesets[vs].id),
        })
    }

    fn vs_of(&self, column: &'static str) -> Result<&RuleKind, BundleError> {
        self.m.rule_for(column).map(|(_, r)| &r.kind).ok_or(BundleError {
            column,
            message: "no mapping rule fills this column".into(),
        })
    }

    /// Adds a resource with its id, profile, identifier and conditional-create request.
    fn push(&mut self, key: &str, profile: &str, mut r: Value) -> String {
        let rtype = r["resourceType"].as_str().unwrap_or_default().to_string();
        let (id, value, url) = if key == "patient" {
            (self.pid.to_string(), self.pid.to_string(), self.patient_url.clone())
        } else {
            (
                hash_hex(self.pid, key),
                format!("{}/{key}", self.pid),
                urn(self.pid, key),
            )
        };
        r["id"] = json!(id);
        r["meta"] = json!({"profile": [format!("{CANONICAL_BASE}/StructureDefinition/{profile}")]});
        r["identifier"] = json!([{"system": self.system, "value": value}]);
        if rtype == "Observation" {
            r["category"] = json!([concept(OBS_CATEGORY, observation_category(key), None)]);
        }
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let query = format!("identifier={}|{}", enc(self.system), enc(&value));
        self.entries.push(json!({"fullUrl": url, "resource": r,
            "request": {"method": "POST", "url": rtype, "ifNoneExist": query}}));
        url
    }

    fn observation(
        &mut self,
        key: &str,
        profile: &str,
        code: (String, String),
        value: (&str, Value),
    ) -> Result<(), BundleError> {
        let mut o = json!({"resourceType": "Observation", "status": "final",
            "code": concept(&code.0, &code.1, None), "subject": {"reference": self.patient_url}});
        o[value.0] = value.1;
        self.push(key, profile, o);
        Ok(())
    }
}

/// The transaction Bundle for `rows`; errors come with the index of their row in `rows`.
pub fn build_bundle(rows: &[CaseRow], m: &MappingSet, site_system: &str) -> Result<Value, Vec<(usize, BundleError)>> {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let mut r = Row {
            m,
            system: site_system,
            pid: &row.patient_id,
            patient_url: urn(&row.patient_id, "patient"),
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
    let mut p =
        json!({"resourceType": "Patient", "gender": match c.sex { Sex::Unknown => "unknown", s => s.as_str() }});
    if let Some(d) = c.birth_date {
        p["birthDate"] = json!(d.to_string());
    }
    r.push("patient", "imnm-patient", p);
    let condition_url = condition(r, c)?;
    ck(r, c)?;
    for (column, status) in [("anti_hmgcr", c.anti_hmgcr), ("anti_srp", c.anti_srp)] {
        antibody(r, column, status)?;
    }
    for (column, v) in [
        ("proximal_weakness", c.proximal_weakness),
        ("rash", c.rash),
        ("emg_myopathic", c.emg_myopathic),
        ("biopsy_necrosis", c.biopsy_necrosis),
    ] {
        if let (RuleKind::Finding { valueset }, Some(b)) = (r.vs_of(column)?.clone(), to_bool(v)) {
            let code = r.first_code(valueset)?;
            r.observation(column, "imnm-finding-observation", code, ("valueBoolean", json!(b)))?;
        }
    }
    mri(r, c.mri_thigh)?;
    for (column, given) in [
        ("glucocorticoid", c.glucocorticoid),
        ("methotrexate", c.methotrexate),
        ("rituximab", c.rituximab),
        ("ivig", c.ivig),
    ] {
        if let (RuleKind::Exposure { valueset }, true) = (r.vs_of(column)?.clone(), given) {
            let (system, code) = r.first_code(valueset)?;
            let ms = json!({"resourceType": "MedicationStatement", "status": "unknown",
                "medicationCodeableConcept": concept(&system, &code, Some(column)), "subject": {"reference": r.patient_url}});
            r.push(column, "imnm-medicationstatement", ms);
        }
    }
    outcome(r, c.outcome, &condition_url)
}

fn to_bool(v: YesNoUnknown) -> Option<bool> {
    match v {
        YesNoUnknown::Yes => Some(true),
        YesNoUnknown::No => Some(false),
        YesNoUnknown::Unknown => None,
    }
}

fn condition(r: &mut Row<'_>, c: &CaseRow) -> Result<String, BundleError> {
    let err = |message: &str| BundleError {
        column: "diagnosis_code",
        message: message.into(),
    };
    let (system, code) = c
        .diagnosis_code
        .split_once('|')
        .ok_or_else(|| err("a case needs its diagnosis code (system|code)"))?;
    let d = &r.m.diagnosis;
    let sets = r.m.valuesets_of(system, code);
    if !sets.contains(&d.valueset) && !sets.contains(&d.parent) {
        return Err(err("not an IMNM code or parent code of mappings/codes/diagnosis.toml"));
    }
    let status = if c.outcome == Outcome::CompleteRemission {
        "remission"
    } else {
        "active"
    };
    let mut cond = json!({"resourceType": "Condition",
        "clinicalStatus": concept(CLINICAL, status, None), "verificationStatus": concept(VERIFICATION, "confirmed", None),
        "code": concept(system, code, Some("Immune-mediated necrotizing myopathy")), "subject": {"reference": r.patient_url}});
    match (c.onset_date, c.onset_age_years) {
        (Some(d), age) => {
            cond["onsetDateTime"] = json!(d.to_string());
            if let Some(a) = age {
                cond["extension"] = json!([{"url": ONSET_AGE_URL, "valueInteger": a}]);
            }
        }
        (None, Some(a)) => cond["onsetAge"] = json!({"value": a, "unit": "a", "system": UCUM, "code": "a"}),
        (None, None) => {}
    }
    Ok(r.push("condition", "imnm-condition", cond))
}

fn ck(r: &mut Row<'_>, c: &CaseRow) -> Result<(), BundleError> {
    let Some(peak) = c.ck_peak_u_per_l else { return Ok(()) };
    let RuleKind::LabPeak { valueset, quantity } = r.vs_of("ck_peak_u_per_l")?.clone() else {
        return Ok(());
    };
    let code = r.first_code(valueset)?;
    let unit = r.m.quantities[quantity].canonical.clone();
    let mut o = json!({"resourceType": "Observation", "status": "final", "code": concept(&code.0, &code.1, None),
        "subject": {"reference": r.patient_url}, "valueQuantity": {"value": peak, "unit": unit, "system": UCUM, "code": unit}});
    if let Some(d) = c.ck_peak_date {
        o["effectiveDateTime"] = json!(d.to_string());
    }
    if c.ck_count > 1 {
        o["extension"] = json!([{"url": RESULT_COUNT_URL, "valuePositiveInt": c.ck_count}]);
    }
    r.push("ck_peak_u_per_l", "imnm-ck-observation", o);
    Ok(())
}

fn antibody(r: &mut Row<'_>, column: &'static str, status: AntibodyStatus) -> Result<(), BundleError> {
    let RuleKind::Antibody { valueset } = r.vs_of(column)?.clone() else {
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
    r.observation(
        column,
        "imnm-antibody-observation",
        code,
        ("valueCodeableConcept", concept(&s, &v, Some(status.as_str()))),
    )
}

fn mri(r: &mut Row<'_>, v: MriThigh) -> Result<(), BundleError> {
    let RuleKind::Mri { edema, fatty } = r.vs_of("mri_thigh")?.clone() else {
        return Ok(());
    };
    let parts = match v {
        MriThigh::Edema => (true, false),
        MriThigh::Fatty => (false, true),
        MriThigh::EdemaAndFatty => (true, true),
        MriThigh::Normal => (false, false),
        MriThigh::Unknown => return Ok(()),
    };
    for (key, vs, present) in [("mri_thigh/edema", edema, parts.0), ("mri_thigh/fatty", fatty, parts.1)] {
        let code = r.first_code(vs)?;
        r.observation(key, "imnm-finding-observation", code, ("valueBoolean", json!(present)))?;
    }
    Ok(())
}

fn outcome(r: &mut Row<'_>, o: Outcome, condition_url: &str) -> Result<(), BundleError> {
    let RuleKind::Outcome {
        valueset,
        complete,
        partial,
        none,
    } = r.vs_of("outcome")?.clone()
    else {
        return Ok(());
    };
    let vs = match o {
        Outcome::CompleteRemission => complete,
        Outcome::PartialRemission => partial,
        Outcome::NoRemission => none,
        Outcome::Unknown => return Ok(()),
    };
    let code = r.first_code(valueset)?;
    let (s, v) = r.first_code(vs)?;
    let mut obs = json!({"resourceType": "Observation", "status": "final", "code": concept(&code.0, &code.1, None),
        "subject": {"reference": r.patient_url}, "focus": [{"reference": condition_url}],
        "valueCodeableConcept": concept(&s, &v, Some(o.as_str()))});
    obs["status"] = json!("final");
    r.push("outcome", "imnm-outcome-observation", obs);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_observation_has_the_category_of_its_column() {
        let m = MappingSet::builtin().unwrap();
        let mut row = CaseRow::empty("p1");
        row.diagnosis_code = "http://snomed.info/sct|715863001".into();
        row.ck_peak_u_per_l = Some(5000.0);
        row.anti_hmgcr = AntibodyStatus::Positive;
        row.rash = YesNoUnknown::No;
        row.biopsy_necrosis = YesNoUnknown::Yes;
        row.mri_thigh = MriThigh::Edema;
        row.outcome = Outcome::PartialRemission;
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
