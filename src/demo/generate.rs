//! Generator of the synthetic IMNM demo cohort (`examples/demo-cohort`).
//!
//! Everything here is made up: there are no real patients, no real record
//! numbers and no real hospitals. Names are `Demo-<key>`, record numbers are
//! `DEMO-<key>`, identifiers come from a fixed hash of a label. The output is
//! fully deterministic (no randomness, no clock), so regenerating it gives the
//! same bytes.
//!
//! The ten children with immune-mediated necrotizing myopathy (IMNM) come from
//! three "sites" that write FHIR R4 the way three different EHRs do:
//!
//! * **Site A (Epic style)**, children 1, 2, 3, 10: Epic-like ids, Conditions
//!   coded SNOMED CT + ICD-10-CM, CK with LOINC beside a local component code,
//!   medicines only as `MedicationRequest` pointing at shared `Medication`s.
//! * **Site B (Oracle Health / Cerner style)**, children 4, 5, 6: numeric ids,
//!   Conditions coded ICD-10-CM only with `onsetAge`, CK with only a local code
//!   and partly in ukat/L, anti-HMGCR in CU under a local code, medicines as
//!   `MedicationStatement` (methotrexate ATC only, IVIG by text only).
//! * **Site C (HAPI style)**, children 7, 8, 9: UUID-like ids, a parent code
//!   with IMNM wording, WHO ICD-10, a Condition with only `recordedDate`, CK in
//!   "IU/L" without UCUM code, `MedicationAdministration` with contained
//!   `Medication`s and `MedicationDispense`, and its findings only as text:
//!   a clinic note (HTML), an EMG report's conclusion, biopsy and thigh MRI
//!   reports (base64 text/plain and HTML), read by `mappings/text.toml`.
//!
//! Distractors that must not change the figures: a dermatomyositis patient
//! (D1), a refuted IMNM diagnosis with high CK and positive anti-HMGCR (D2, a
//! candidate), an IMNM diagnosis entered in error (D3), a bare "Myositis"
//! parent code (D4, a candidate), entered-in-error / cancelled CK results,
//! a cancelled rituximab order, an IVIG statement that was not taken, and
//! vital signs plus one Encounter for every patient.
//!
//! The registry summary of this data equals the seed figures: 10 cases, 4 male
//! / 6 female; onset age median 5.5 (3-16) years; CK peak median 3988.5
//! (2080-13524) U/L; anti-HMGCR positive 4, anti-SRP positive 6; proximal
//! weakness 10/10, rash 5/10, EMG myopathic 10/10, biopsy necrosis 10/10;
//! glucocorticoid 10, methotrexate 10, rituximab 5, IVIG 8; outcome complete
//! remission 4, partial 5, none 1.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::Path;

const SCT: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";
const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const ATC: &str = "http://www.whocc.no/atc";
const UCUM: &str = "http://unitsofmeasure.org";
const LOCAL: &str = "https://imnm-fhir.org/fhir/CodeSystem/imnm-case";
const INTERP: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
const US_CORE_DOC_CATEGORY: &str = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category";
const VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const COND_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const EPIC_CK: &str = "urn:oid:1.2.840.114350.1.13.861.1.7.2.768282";
const SITE_B_LAB: &str = "https://lab.site-b.example.org/codes";
const BASE_URL: &str = "https://ehr.example.org/fhir";
const HAPI_UPDATED: &str = "2025-11-20T08:00:00.000+00:00";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Site {
    A,
    B,
    C,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ab {
    Pos,
    Neg,
    NotTested,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mri {
    Edema,
    Fatty,
    Both,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Complete,
    Partial,
    NoRemission,
}

/// How the IMNM Condition is written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dx {
    /// SNOMED CT + ICD-10-CM, onsetDateTime with time.
    Epic,
    /// ICD-10-CM only, onsetAge.
    Cerner,
    /// SNOMED parent code with IMNM wording, onsetPeriod.start.
    ParentText,
    /// WHO ICD-10 G72.4, onsetDateTime date only.
    WhoIcd,
    /// SNOMED 715863001 with recordedDate only.
    RecordedOnly,
}

/// A record that must be ignored by the mapper.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Decoy {
    Nothing,
    CkEnteredInError(f64),
    CkCancelled(f64),
    RtxCancelled,
    IvigNotTaken,
}

/// A calendar date (days kept at 28 or less so month shifts stay valid).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Day(u32, u32, u32);

impl Day {
    fn plus_months(self, months: u32) -> Day {
        let total = self.0 * 12 + (self.1 - 1) + months;
        Day(total / 12, total % 12 + 1, self.2)
    }

    fn iso(self) -> String {
        format!("{:04}-{:02}-{:02}", self.0, self.1, self.2)
    }

    /// Completed years from `birth` to `self`.
    fn years_since(self, birth: Day) -> u32 {
        let before_birthday = (self.1, self.2) < (birth.1, birth.2);
        self.0 - birth.0 - u32::from(before_birthday)
    }
}

/// One synthetic patient's identity.
struct Who {
    site: Site,
    key: &'static str,
    num: u32,
    male: bool,
    birth: Day,
}

/// One synthetic IMNM child; `ck` starts with the peak, in the unit the site sends.
#[allow(clippy::struct_excessive_bools, reason = "one flag per finding of the seed's table")]
struct Child {
    who: Who,
    onset: Day,
    ck: &'static [f64],
    ukat: bool,
    hmgcr: Ab,
    srp: Ab,
    rash: bool,
    rtx: bool,
    ivig: bool,
    mri: Mri,
    outcome: Outcome,
    outcome_in_status: bool,
    dx: Dx,
    decoy: Decoy,
}

const fn who(site: Site, key: &'static str, num: u32, male: bool, birth: Day) -> Who {
    Who {
        site,
        key,
        num,
        male,
        birth,
    }
}

#[rustfmt::skip]
const CHILDREN: [Child; 10] = [
    Child { who: who(Site::A, "A1", 1, true, Day(2011, 3, 14)), onset: Day(2014, 9, 2),
        ck: &[13524.0, 4210.0, 610.0], ukat: false, hmgcr: Ab::Neg, srp: Ab::Pos, rash: true,
        rtx: true, ivig: true, mri: Mri::Edema, outcome: Outcome::Partial,
        outcome_in_status: false, dx: Dx::Epic, decoy: Decoy::Nothing },
    Child { who: who(Site::A, "A2", 2, false, Day(2012, 7, 21)), onset: Day(2016, 11, 10),
        ck: &[2080.0, 540.0], ukat: false, hmgcr: Ab::Pos, srp: Ab::Neg, rash: false,
        rtx: false, ivig: true, mri: Mri::Edema, outcome: Outcome::Complete,
        outcome_in_status: false, dx: Dx::Epic, decoy: Decoy::CkEnteredInError(50000.0) },
    Child { who: who(Site::A, "A3", 3, false, Day(2013, 1, 5)), onset: Day(2017, 5, 18),
        ck: &[9920.0, 3015.0, 880.0], ukat: false, hmgcr: Ab::Neg, srp: Ab::Pos, rash: true,
        rtx: true, ivig: true, mri: Mri::Both, outcome: Outcome::NoRemission,
        outcome_in_status: false, dx: Dx::Epic, decoy: Decoy::Nothing },
    Child { who: who(Site::B, "B4", 4, true, Day(2014, 2, 11)), onset: Day(2019, 6, 20),
        ck: &[52.0, 20.5, 3.1], ukat: true, hmgcr: Ab::Pos, srp: Ab::Neg, rash: false,
        rtx: false, ivig: false, mri: Mri::Edema, outcome: Outcome::Complete,
        outcome_in_status: true, dx: Dx::Cerner, decoy: Decoy::IvigNotTaken },
    Child { who: who(Site::B, "B5", 5, false, Day(2010, 9, 9)), onset: Day(2016, 1, 15),
        ck: &[64.5, 30.2], ukat: true, hmgcr: Ab::Neg, srp: Ab::Pos, rash: true,
        rtx: true, ivig: true, mri: Mri::Edema, outcome: Outcome::Partial,
        outcome_in_status: false, dx: Dx::Cerner, decoy: Decoy::Nothing },
    Child { who: who(Site::B, "B6", 6, false, Day(2015, 5, 25)), onset: Day(2021, 8, 28),
        ck: &[4107.0, 1650.0, 230.0], ukat: false, hmgcr: Ab::NotTested, srp: Ab::Pos,
        rash: false, rtx: true, ivig: true, mri: Mri::Fatty, outcome: Outcome::Complete,
        outcome_in_status: false, dx: Dx::Cerner, decoy: Decoy::Nothing },
    Child { who: who(Site::C, "C7", 7, true, Day(2009, 12, 1)), onset: Day(2017, 3, 12),
        ck: &[5230.0, 980.0], ukat: false, hmgcr: Ab::Pos, srp: Ab::Neg, rash: false,
        rtx: false, ivig: true, mri: Mri::Edema, outcome: Outcome::Partial,
        outcome_in_status: false, dx: Dx::ParentText, decoy: Decoy::CkCancelled(40000.0) },
    Child { who: who(Site::C, "C8", 8, false, Day(2012, 10, 17)), onset: Day(2022, 2, 8),
        ck: &[7810.0, 2440.0, 415.0], ukat: false, hmgcr: Ab::Neg, srp: Ab::Pos, rash: true,
        rtx: true, ivig: true, mri: Mri::Both, outcome: Outcome::Complete,
        outcome_in_status: true, dx: Dx::WhoIcd, decoy: Decoy::Nothing },
    Child { who: who(Site::C, "C9", 9, true, Day(2008, 6, 6)), onset: Day(2020, 9, 15),
        ck: &[2650.0, 760.0], ukat: false, hmgcr: Ab::Pos, srp: Ab::NotTested, rash: false,
        rtx: false, ivig: true, mri: Mri::Edema, outcome: Outcome::Partial,
        outcome_in_status: false, dx: Dx::RecordedOnly, decoy: Decoy::Nothing },
    Child { who: who(Site::A, "A10", 10, false, Day(2008, 4, 28)), onset: Day(2024, 10, 3),
        ck: &[3560.0, 1210.0], ukat: false, hmgcr: Ab::NotTested, srp: Ab::Pos, rash: true,
        rtx: false, ivig: false, mri: Mri::Fatty, outcome: Outcome::Partial,
        outcome_in_status: false, dx: Dx::Epic, decoy: Decoy::RtxCancelled },
];

/// Every resource of the demo dataset, in a fixed order (deterministic: no randomness, no clock).
#[must_use]
pub fn demo_resources() -> Vec<Value> {
    let mut out = site_a_medications();
    for child in &CHILDREN {
        out.extend(child_resources(child));
    }
    out.extend(distractor_d1());
    out.extend(distractor_d2());
    out.extend(distractor_d3());
    out.extend(distractor_d4());
    out
}

/// Writes `bundle.json` (a FHIR R4 `collection` Bundle) and `ndjson/{Type}.ndjson`
/// (one compact resource per line, one file per resource type) into `dir`,
/// creating the directories.
///
/// # Errors
///
/// Any error creating the directories or writing the files.
pub fn write_demo(dir: &Path) -> io::Result<()> {
    let resources = demo_resources();
    fs::create_dir_all(dir.join("ndjson"))?;
    let bundle = bundle_of(&resources);
    let mut text = serde_json::to_string_pretty(&bundle).map_err(io::Error::other)?;
    text.push('\n');
    fs::write(dir.join("bundle.json"), text)?;
    let mut per_type: BTreeMap<String, String> = BTreeMap::new();
    for resource in &resources {
        let line = serde_json::to_string(resource).map_err(io::Error::other)?;
        let file = per_type.entry(resource_type(resource).to_owned()).or_default();
        file.push_str(&line);
        file.push('\n');
    }
    for (ty, lines) in per_type {
        fs::write(dir.join("ndjson").join(format!("{ty}.ndjson")), lines)?;
    }
    Ok(())
}

fn bundle_of(resources: &[Value]) -> Value {
    let entries: Vec<Value> = resources
        .iter()
        .map(|r| {
            let url = format!("{BASE_URL}/{}/{}", resource_type(r), resource_id(r));
            json!({ "fullUrl": url, "resource": r })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "id": "imnm-demo-cohort",
        "meta": { "lastUpdated": "2025-12-01T00:00:00Z" },
        "type": "collection",
        "timestamp": "2025-12-01T00:00:00Z",
        "entry": entries,
    })
}

fn resource_type(r: &Value) -> &str {
    r.get("resourceType").and_then(Value::as_str).unwrap_or("")
}

fn resource_id(r: &Value) -> &str {
    r.get("id").and_then(Value::as_str).unwrap_or("")
}

// ---------------------------------------------------------------- identifiers

/// FNV-1a of `text`, then the `SplitMix64` finaliser so that close seeds give
/// unrelated hashes.
fn fnv(text: &str) -> u64 {
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// An Epic-looking FHIR id: "e" + 22 letters/digits + "3".
fn epic_id(seed: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut id = String::from("e");
    let mut h = 0;
    for i in 0..22u32 {
        if i % 10 == 0 {
            h = fnv(&format!("{seed}#{i}"));
        }
        let idx = usize::try_from(h % 62).unwrap_or(0);
        id.push(char::from(ALPHABET[idx]));
        h /= 62;
    }
    id.push('3');
    id
}

/// A UUID-looking id (version nibble 4), derived from `seed`.
fn uuid_like(seed: &str) -> String {
    let a = fnv(&format!("{seed}#a"));
    let b = fnv(&format!("{seed}#b"));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

fn patient_id(who: &Who) -> String {
    match who.site {
        Site::A => epic_id(&format!("Patient/{}", who.key)),
        Site::B => (12_724_060 + who.num).to_string(),
        Site::C => uuid_like(&format!("Patient/{}", who.key)),
    }
}

// ---------------------------------------------------------------- helpers

fn with(mut v: Value, key: &str, x: Value) -> Value {
    if let Some(map) = v.as_object_mut() {
        map.insert(key.to_owned(), x);
    }
    v
}

fn num(v: f64) -> Value {
    let r = v.round();
    if (v - r).abs() < 1e-9 && r.abs() < 1e12 {
        #[allow(clippy::cast_possible_truncation, reason = "checked whole and below 1e12 just above")]
        let i = r as i64;
        json!(i)
    } else {
        json!(v)
    }
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

fn concept(codings: Vec<Value>, text: &str) -> Value {
    json!({ "coding": Value::Array(codings), "text": text })
}

fn status_cc(system: &str, code: &str, display: &str) -> Value {
    json!({ "coding": [coding(system, code, display)] })
}

fn obs_category(code: &str) -> Value {
    let display = match code {
        "laboratory" => "Laboratory",
        "vital-signs" => "Vital Signs",
        "imaging" => "Imaging",
        "procedure" => "Procedure",
        _ => "Exam",
    };
    json!([{ "coding": [coding(OBS_CATEGORY, code, display)] }])
}

fn ucum(value: f64, unit: &str) -> Value {
    json!({ "value": num(value), "unit": unit, "system": UCUM, "code": unit })
}

fn interpretation(positive: bool) -> Value {
    let (code, display) = if positive {
        ("POS", "Positive")
    } else {
        ("NEG", "Negative")
    };
    json!([{ "coding": [coding(INTERP, code, display)] }])
}

/// Per-patient id source and site conventions.
struct Ctx {
    site: Site,
    key: &'static str,
    pid: String,
    seq: u32,
}

impl Ctx {
    fn new(who: &Who) -> Ctx {
        Ctx {
            site: who.site,
            key: who.key,
            pid: patient_id(who),
            seq: 0,
        }
    }

    fn base(&mut self, ty: &str) -> Value {
        self.seq += 1;
        let id = match self.site {
            Site::A => epic_id(&format!("{}/{ty}/{}", self.key, self.seq)),
            Site::B => {
                let n = format!("{}{:03}", &self.pid[3..], self.seq);
                match ty {
                    "Condition" => format!("p{n}"),
                    "Observation" => format!("L-{n}"),
                    _ => n,
                }
            }
            Site::C => uuid_like(&format!("{}/{ty}/{}", self.key, self.seq)),
        };
        let v = json!({ "resourceType": ty, "id": id });
        if self.site == Site::C {
            return with(v, "meta", json!({ "versionId": "1", "lastUpdated": HAPI_UPDATED }));
        }
        v
    }

    fn subject(&self) -> Value {
        json!({ "reference": format!("Patient/{}", self.pid) })
    }

    fn when(&self, day: Day) -> String {
        match self.site {
            Site::A => format!("{}T09:30:00-05:00", day.iso()),
            Site::B => format!("{}T14:05:00.000Z", day.iso()),
            Site::C => format!("{}T10:15:00+01:00", day.iso()),
        }
    }
}

// ---------------------------------------------------------------- patient, encounter, vitals

fn patient(ctx: &Ctx, who: &Who) -> Value {
    let site = match who.site {
        Site::A => "a",
        Site::B => "b",
        Site::C => "c",
    };
    let mut v = json!({ "resourceType": "Patient", "id": ctx.pid });
    if who.site == Site::C {
        v = with(v, "meta", json!({ "versionId": "1", "lastUpdated": HAPI_UPDATED }));
    }
    let identifier = json!([{
        "use": "usual",
        "type": concept(vec![coding("http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "Medical record number")], "MRN"),
        "system": format!("urn:oid:1.2.3.4.5.site-{site}.mrn"),
        "value": format!("DEMO-{}", who.key),
    }]);
    let name = json!([{ "use": "official", "family": format!("Demo-{}", who.key), "given": ["Synthetic"] }]);
    let v = with(v, "identifier", identifier);
    let v = with(v, "active", json!(true));
    let v = with(v, "name", name);
    let v = with(v, "gender", json!(if who.male { "male" } else { "female" }));
    with(v, "birthDate", json!(who.birth.iso()))
}

fn encounter(ctx: &mut Ctx, day: Day) -> Value {
    let (class, display) = match ctx.site {
        Site::B => ("IMP", "inpatient encounter"),
        _ => ("AMB", "ambulatory"),
    };
    let v = ctx.base("Encounter");
    let v = with(v, "status", json!("finished"));
    let v = with(v, "class", coding(ACT_CODE, class, display));
    let v = with(v, "subject", ctx.subject());
    with(v, "period", json!({ "start": ctx.when(day) }))
}

/// `count` vital signs (heart rate and body weight, alternating) from `day` on.
fn vitals(ctx: &mut Ctx, who: &Who, day: Day, count: u32) -> Vec<Value> {
    let age = day.years_since(who.birth);
    (0..count)
        .map(|i| {
            let at = day.plus_months(3 * (i / 2));
            let (code, display, qty) = if i % 2 == 0 {
                let rate = 118 - 3 * age.min(14) + 2 * i;
                ("8867-4", "Heart rate", ucum(f64::from(rate), "/min"))
            } else {
                let kg = f64::from(8 + 3 * age) + f64::from(i) * 0.4;
                ("29463-7", "Body weight", ucum(kg, "kg"))
            };
            let v = obs(
                ctx,
                "vital-signs",
                concept(vec![coding(LOINC, code, display)], display),
                at,
            );
            with(v, "valueQuantity", qty)
        })
        .collect()
}

// ---------------------------------------------------------------- observations

fn obs(ctx: &mut Ctx, category: &str, code: Value, day: Day) -> Value {
    let v = ctx.base("Observation");
    let v = with(v, "status", json!("final"));
    let v = with(v, "category", obs_category(category));
    let v = with(v, "code", code);
    let v = with(v, "subject", ctx.subject());
    with(v, "effectiveDateTime", json!(ctx.when(day)))
}

fn ck(ctx: &mut Ctx, value: f64, ukat: bool, day: Day, status: &str) -> Value {
    let loinc = coding(
        LOINC,
        "2157-6",
        "Creatine kinase [Enzymatic activity/volume] in Serum or Plasma",
    );
    let (code, qty) = match ctx.site {
        Site::A => (
            concept(vec![loinc, coding(EPIC_CK, "1554", "CK, TOTAL")], "CK, TOTAL"),
            ucum(value, "U/L"),
        ),
        Site::B => (
            concept(vec![coding(SITE_B_LAB, "CK-TOT", "Creatine kinase total")], "CK Total"),
            ucum(value, if ukat { "ukat/L" } else { "U/L" }),
        ),
        Site::C => (
            concept(vec![loinc], "Creatine kinase"),
            json!({ "value": num(value), "unit": "IU/L" }),
        ),
    };
    let v = obs(ctx, "laboratory", code, day);
    let v = with(v, "status", json!(status));
    with(v, "valueQuantity", qty)
}

fn hmgcr(ctx: &mut Ctx, ab: Ab, day: Day) -> Option<Value> {
    let positive = match ab {
        Ab::NotTested => return None,
        Ab::Pos => true,
        Ab::Neg => false,
    };
    let loinc = concept(
        vec![coding(LOINC, "93493-5", "HMGCR Antibody, IgG")],
        "HMGCR Antibody, IgG",
    );
    let v = match ctx.site {
        Site::A => {
            let value = if positive { 142.0 } else { 3.0 };
            let v = obs(ctx, "laboratory", loinc, day);
            let v = with(v, "valueQuantity", json!({ "value": num(value), "unit": "Units" }));
            with(v, "interpretation", interpretation(positive))
        }
        Site::B => {
            let value = if positive { 86.4 } else { 4.1 };
            let code = concept(vec![coding(SITE_B_LAB, "HMGCR-AB", "HMGCR antibody")], "HMGCR Ab");
            let v = obs(ctx, "laboratory", code, day);
            with(v, "valueQuantity", json!({ "value": num(value), "unit": "CU" }))
        }
        Site::C => {
            let value = if positive { 156.0 } else { 2.0 };
            let v = obs(ctx, "laboratory", loinc, day);
            with(v, "valueQuantity", json!({ "value": num(value), "unit": "Units" }))
        }
    };
    Some(v)
}

fn srp(ctx: &mut Ctx, ab: Ab, day: Day) -> Option<Value> {
    let positive = match ab {
        Ab::NotTested => return None,
        Ab::Pos => true,
        Ab::Neg => false,
    };
    let code = concept(
        vec![coding(LOINC, "33921-8", "Signal Recognition Particle (SRP) Ab")],
        "SRP Antibody",
    );
    let site = ctx.site;
    let v = obs(ctx, "laboratory", code, day);
    let v = match (site, positive) {
        (Site::A, _) => with(v, "valueString", json!(if positive { "Positive" } else { "Negative" })),
        (Site::B, _) => {
            let answer = if positive {
                coding(SCT, "10828004", "Positive")
            } else {
                coding(SCT, "260385009", "Negative")
            };
            let text = if positive { "Positive" } else { "Negative" };
            with(v, "valueCodeableConcept", concept(vec![answer], text))
        }
        (Site::C, true) => with(v, "valueString", json!("POSITIVE")),
        (Site::C, false) => with(v, "interpretation", interpretation(false)),
    };
    Some(v)
}

fn finding(ctx: &mut Ctx, category: &str, code: Value, present: bool, day: Day) -> Value {
    let v = obs(ctx, category, code, day);
    with(v, "valueBoolean", json!(present))
}

fn local(code: &str, display: &str) -> Value {
    concept(vec![coding(LOCAL, code, display)], display)
}

/// Site C's findings as text: a clinic note (HTML) with weakness and rash,
/// an EMG report's conclusion, a biopsy report (base64 text/plain) and a
/// thigh MRI report (base64 HTML), read by the rules of `mappings/text.toml`.
fn text_findings(ctx: &mut Ctx, c: &Child) -> Vec<Value> {
    let at = c.onset;
    let rash = if c.rash {
        "Heliotrope rash of both eyelids and Gottron's papules over the knuckles."
    } else {
        "No rash."
    };
    let note = format!(
        "<p>Seen in clinic with both parents.</p><p>Symmetric proximal muscle weakness, hip flexors 3/5, positive Gowers sign. {rash}</p><p>Plan discussed with the family.</p>"
    );
    let mri = match c.mri {
        Mri::Edema => "STIR hyperintensity of both quadriceps without fatty infiltration.",
        Mri::Fatty => "Fatty replacement of the thigh muscles; no edema.",
        Mri::Both => "Muscle edema and fatty infiltration of both thighs.",
    };
    let emg =
        "Short duration, small amplitude polyphasic motor unit potentials with early recruitment: a myopathic pattern.";
    let biopsy = "Scattered necrotic and regenerating myofibers. No vasculitis.";
    let progress = concept(vec![coding(LOINC, "11506-3", "Progress note")], "Progress note");
    let doc = ctx.base("DocumentReference");
    let doc = with(doc, "status", json!("current"));
    let doc = with(doc, "type", progress);
    let note_category = status_cc(US_CORE_DOC_CATEGORY, "clinical-note", "Clinical Note");
    let doc = with(doc, "category", json!([note_category]));
    let doc = with(doc, "subject", ctx.subject());
    let doc = with(doc, "date", json!(ctx.when(at)));
    let doc = with(
        doc,
        "content",
        json!([{ "attachment": attachment("text/html", &note) }]),
    );
    let emg_code = concept(vec![coding(SCT, "42803009", "Electromyography")], "EMG");
    let emg = with(report(ctx, emg_code, at), "conclusion", json!(emg));
    let bx_code = concept(
        vec![coding(LOINC, "11529-5", "Surgical pathology study")],
        "Muscle biopsy",
    );
    let bx = report(ctx, bx_code, at.plus_months(1));
    let bx = with(bx, "presentedForm", json!([attachment("text/plain", biopsy)]));
    let mri_code = concept(vec![coding(LOINC, "18748-4", "Diagnostic imaging study")], "MRI thighs");
    let mri_report = report(ctx, mri_code, at);
    let mri_report = with(
        mri_report,
        "presentedForm",
        json!([attachment("text/html", &format!("<p>{mri}</p>"))]),
    );
    vec![doc, emg, bx, mri_report]
}

fn report(ctx: &mut Ctx, code: Value, day: Day) -> Value {
    let v = ctx.base("DiagnosticReport");
    let v = with(v, "status", json!("final"));
    let v = with(v, "code", code);
    let v = with(v, "subject", ctx.subject());
    with(v, "effectiveDateTime", json!(ctx.when(day)))
}

fn attachment(content_type: &str, text: &str) -> Value {
    use base64::Engine;
    json!({ "contentType": content_type, "data": base64::engine::general_purpose::STANDARD.encode(text) })
}

/// Proximal weakness, rash, EMG, biopsy and thigh MRI findings of a child
/// (site C writes them as text, [`text_findings`]).
fn findings(ctx: &mut Ctx, c: &Child) -> Vec<Value> {
    if ctx.site == Site::C {
        return text_findings(ctx, c);
    }
    let at = c.onset;
    let weakness = local("prox-weak-sym", "Symmetric proximal weakness");
    let rash = if c.rash && ctx.site != Site::A {
        local("heliotrope", "Heliotrope / periorbital rash")
    } else {
        local("gottron", "Gottron's sign or papules")
    };
    let (procedure, imaging) = ("exam", "exam");
    let edema = matches!(c.mri, Mri::Edema | Mri::Both);
    let fatty = matches!(c.mri, Mri::Fatty | Mri::Both);
    vec![
        finding(ctx, "exam", weakness, true, at),
        finding(ctx, "exam", rash, c.rash, at),
        finding(
            ctx,
            procedure,
            local("emg-myopathic", "Myopathic EMG pattern"),
            true,
            at,
        ),
        finding(
            ctx,
            procedure,
            local("bx-necrosis", "Myofiber necrosis on biopsy"),
            true,
            at.plus_months(1),
        ),
        finding(ctx, imaging, local("mri-edema", "Thigh muscle edema on MRI"), edema, at),
        finding(
            ctx,
            imaging,
            local("mri-fatty", "Thigh muscle fatty infiltration on MRI"),
            fatty,
            at,
        ),
    ]
}

fn outcome(ctx: &mut Ctx, condition_id: &str, o: Outcome, day: Day) -> Value {
    let answer = match o {
        Outcome::Complete => coding(SCT, "103338009", "In full remission"),
        Outcome::Partial => coding(SCT, "103337004", "In partial remission"),
        Outcome::NoRemission => coding(SCT, "359746009", "Patient's condition stable"),
    };
    let text = answer.get("display").cloned().unwrap_or(Value::Null);
    let v = obs(ctx, "exam", local("imnm-outcome", "IMNM outcome"), day);
    let v = with(
        v,
        "focus",
        json!([{ "reference": format!("Condition/{condition_id}") }]),
    );
    with(v, "valueCodeableConcept", json!({ "coding": [answer], "text": text }))
}

// ---------------------------------------------------------------- conditions

fn condition(ctx: &mut Ctx, code: Value, clinical: Option<&str>, verification: &str) -> Value {
    let (cat, cat_display) = match ctx.site {
        Site::B => ("encounter-diagnosis", "Encounter Diagnosis"),
        _ => ("problem-list-item", "Problem List Item"),
    };
    let mut v = ctx.base("Condition");
    if let Some(status) = clinical {
        let display = match status {
            "active" => "Active",
            "remission" => "Remission",
            _ => "Inactive",
        };
        v = with(v, "clinicalStatus", status_cc(CLINICAL, status, display));
    }
    let ver_display = match verification {
        "confirmed" => "Confirmed",
        "refuted" => "Refuted",
        _ => "Entered in Error",
    };
    let v = with(
        v,
        "verificationStatus",
        status_cc(VERIFICATION, verification, ver_display),
    );
    let v = with(
        v,
        "category",
        json!([{ "coding": [coding(COND_CATEGORY, cat, cat_display)] }]),
    );
    let v = with(v, "code", code);
    with(v, "subject", ctx.subject())
}

fn imnm_snomed() -> Value {
    coding(SCT, "715863001", "Autoimmune necrotizing myopathy")
}

fn imnm_icd10cm() -> Value {
    coding(
        ICD10CM,
        "G72.49",
        "Other inflammatory and immune myopathies, not elsewhere classified",
    )
}

fn imnm_condition(ctx: &mut Ctx, c: &Child) -> Value {
    let clinical = if c.outcome == Outcome::Complete {
        "remission"
    } else {
        "active"
    };
    let text = "Immune-mediated necrotizing myopathy";
    let recorded = c.onset.plus_months(1);
    let age = c.onset.years_since(c.who.birth);
    let (code, onset_key, onset) = match c.dx {
        Dx::Epic => (
            concept(vec![imnm_snomed(), imnm_icd10cm()], text),
            "onsetDateTime",
            json!(ctx.when(c.onset)),
        ),
        Dx::Cerner => (
            concept(vec![imnm_icd10cm()], "IMNM (immune-mediated necrotizing myopathy)"),
            "onsetAge",
            json!({ "value": age, "unit": "years", "system": UCUM, "code": "a" }),
        ),
        Dx::ParentText => (
            concept(
                vec![coding(SCT, "702380008", "Idiopathic inflammatory myopathy")],
                "Immune-mediated necrotizing myopathy (anti-HMGCR)",
            ),
            "onsetPeriod",
            json!({ "start": c.onset.iso() }),
        ),
        Dx::WhoIcd => (
            concept(
                vec![coding(
                    ICD10,
                    "G72.4",
                    "Inflammatory myopathy, not elsewhere classified",
                )],
                text,
            ),
            "onsetDateTime",
            json!(c.onset.iso()),
        ),
        Dx::RecordedOnly => (concept(vec![imnm_snomed()], text), "", Value::Null),
    };
    let v = condition(ctx, code, Some(clinical), "confirmed");
    if c.dx == Dx::RecordedOnly {
        return with(v, "recordedDate", json!(c.onset.iso()));
    }
    let v = with(v, onset_key, onset);
    with(v, "recordedDate", json!(ctx.when(recorded)))
}

// ---------------------------------------------------------------- medications

/// The Medication resources of site A, shared by all its patients.
const SITE_A_DRUGS: [(&str, &str, &str, &str); 4] = [
    (
        "prednisone",
        "198145",
        "prednisone 10 MG Oral Tablet",
        "predniSONE 10 MG tablet",
    ),
    (
        "methotrexate",
        "105586",
        "methotrexate 2.5 MG Oral Tablet",
        "methotrexate 2.5 MG tablet",
    ),
    ("rituximab", "121191", "rituximab", "riTUXimab 10 mg/mL IV solution"),
    (
        "ivig",
        "5666",
        "immunoglobulin G",
        "immune globulin (human) 10 % IV solution",
    ),
];

fn site_a_medication_id(drug: &str) -> String {
    epic_id(&format!("Medication/{drug}"))
}

fn site_a_medications() -> Vec<Value> {
    SITE_A_DRUGS
        .iter()
        .map(|(drug, code, display, text)| {
            json!({
                "resourceType": "Medication",
                "id": site_a_medication_id(drug),
                "code": concept(vec![coding(RXNORM, code, display)], text),
                "status": "active",
            })
        })
        .collect()
}

fn med_request(ctx: &mut Ctx, drug: &str, status: &str, day: Day, dose: &str) -> Value {
    let text = SITE_A_DRUGS.iter().find(|d| d.0 == drug).map_or(drug, |d| d.3);
    let reference = json!({
        "reference": format!("Medication/{}", site_a_medication_id(drug)),
        "display": text,
    });
    let v = ctx.base("MedicationRequest");
    let v = with(v, "status", json!(status));
    let v = with(v, "intent", json!("order"));
    let v = with(v, "medicationReference", reference);
    let v = with(v, "subject", ctx.subject());
    let v = with(v, "authoredOn", json!(ctx.when(day)));
    with(v, "dosageInstruction", json!([{ "text": dose }]))
}

fn meds_site_a(ctx: &mut Ctx, c: &Child) -> Vec<Value> {
    let at = c.onset;
    let mut out = vec![
        med_request(
            ctx,
            "prednisone",
            "completed",
            at,
            "2 mg/kg/day by mouth, taper over 12 months",
        ),
        med_request(
            ctx,
            "methotrexate",
            "active",
            at.plus_months(1),
            "15 mg/m2 by mouth once weekly",
        ),
    ];
    if c.ivig {
        out.push(med_request(
            ctx,
            "ivig",
            "completed",
            at.plus_months(2),
            "2 g/kg IV every 4 weeks",
        ));
    }
    if c.rtx {
        out.push(med_request(
            ctx,
            "rituximab",
            "completed",
            at.plus_months(3),
            "750 mg/m2 IV, 2 doses 2 weeks apart",
        ));
    }
    if c.decoy == Decoy::RtxCancelled {
        out.push(med_request(
            ctx,
            "rituximab",
            "cancelled",
            at.plus_months(4),
            "750 mg/m2 IV, 2 doses 2 weeks apart",
        ));
    }
    out
}

fn med_statement(ctx: &mut Ctx, medication: Value, status: &str, day: Day) -> Value {
    let v = ctx.base("MedicationStatement");
    let v = with(v, "status", json!(status));
    let v = with(v, "medicationCodeableConcept", medication);
    let v = with(v, "subject", ctx.subject());
    let v = with(v, "effectivePeriod", json!({ "start": ctx.when(day) }));
    with(v, "dateAsserted", json!(ctx.when(day)))
}

fn meds_site_b(ctx: &mut Ctx, c: &Child) -> Vec<Value> {
    let at = c.onset;
    let prednisone = concept(vec![coding(RXNORM, "8640", "prednisone")], "prednisone");
    let mtx = concept(vec![coding(ATC, "L04AX03", "methotrexate")], "Methotrexate weekly");
    let mut out = vec![
        med_statement(ctx, prednisone, "completed", at),
        med_statement(ctx, mtx, "active", at.plus_months(1)),
    ];
    if c.ivig {
        out.push(med_statement(
            ctx,
            json!({ "text": "Privigen 10% IV infusion" }),
            "completed",
            at.plus_months(2),
        ));
    }
    if c.rtx {
        let rtx = concept(vec![coding(RXNORM, "121191", "rituximab")], "rituximab");
        out.push(med_statement(ctx, rtx, "completed", at.plus_months(3)));
    }
    if c.decoy == Decoy::IvigNotTaken {
        let ivig = concept(vec![coding(RXNORM, "5666", "immunoglobulin G")], "immune globulin IV");
        let v = med_statement(ctx, ivig, "not-taken", at.plus_months(2));
        out.push(with(v, "statusReason", json!([{ "text": "Family declined infusion" }])));
    }
    out
}

fn med_admin(ctx: &mut Ctx, contained: Option<Value>, medication: Value, day: Day, dose: &str) -> Value {
    let mut v = ctx.base("MedicationAdministration");
    if let Some(med) = contained {
        v = with(v, "contained", json!([med]));
        v = with(v, "status", json!("completed"));
        v = with(v, "medicationReference", json!({ "reference": "#med1" }));
    } else {
        v = with(v, "status", json!("completed"));
        v = with(v, "medicationCodeableConcept", medication);
    }
    let v = with(v, "subject", ctx.subject());
    let v = with(v, "effectiveDateTime", json!(ctx.when(day)));
    with(v, "dosage", json!({ "text": dose }))
}

fn contained_med(code: &str, display: &str) -> Value {
    json!({
        "resourceType": "Medication",
        "id": "med1",
        "code": concept(vec![coding(RXNORM, code, display)], display),
    })
}

fn meds_site_c(ctx: &mut Ctx, c: &Child) -> Vec<Value> {
    let at = c.onset;
    let methylpred = contained_med("6902", "methylprednisolone");
    let mut out = vec![med_admin(ctx, Some(methylpred), Value::Null, at, "30 mg/kg IV pulse")];
    let mtx = concept(vec![coding(RXNORM, "6851", "methotrexate")], "methotrexate");
    let dispense = ctx.base("MedicationDispense");
    let dispense = with(dispense, "status", json!("completed"));
    let dispense = with(dispense, "medicationCodeableConcept", mtx);
    let dispense = with(dispense, "subject", ctx.subject());
    let dispense = with(dispense, "quantity", ucum(12.0, "{tbl}"));
    out.push(with(dispense, "whenHandedOver", json!(ctx.when(at.plus_months(1)))));
    if c.ivig {
        let ivig = contained_med("5666", "immunoglobulin G");
        out.push(med_admin(ctx, Some(ivig), Value::Null, at.plus_months(2), "2 g/kg IV"));
    }
    if c.rtx {
        let rtx = concept(vec![coding(ATC, "L01FA01", "rituximab")], "rituximab");
        out.push(med_admin(ctx, None, rtx, at.plus_months(3), "750 mg/m2 IV"));
    }
    out
}

// ---------------------------------------------------------------- children

fn labs(ctx: &mut Ctx, c: &Child) -> Vec<Value> {
    let mut out = Vec::new();
    for (i, value) in (0u32..).zip(c.ck.iter()) {
        let months = [0, 3, 6, 11][usize::try_from(i).unwrap_or(0).min(3)];
        out.push(ck(ctx, *value, c.ukat, c.onset.plus_months(months), "final"));
    }
    match c.decoy {
        Decoy::CkEnteredInError(v) => out.push(ck(ctx, v, false, c.onset.plus_months(2), "entered-in-error")),
        Decoy::CkCancelled(v) => out.push(ck(ctx, v, false, c.onset.plus_months(2), "cancelled")),
        _ => {}
    }
    out.extend(hmgcr(ctx, c.hmgcr, c.onset));
    out.extend(srp(ctx, c.srp, c.onset));
    out
}

fn child_resources(c: &Child) -> Vec<Value> {
    let mut ctx = Ctx::new(&c.who);
    let mut out = vec![patient(&ctx, &c.who), encounter(&mut ctx, c.onset)];
    let cond = imnm_condition(&mut ctx, c);
    let cond_id = resource_id(&cond).to_owned();
    out.push(cond);
    out.extend(labs(&mut ctx, c));
    out.extend(findings(&mut ctx, c));
    let meds = match c.who.site {
        Site::A => meds_site_a(&mut ctx, c),
        Site::B => meds_site_b(&mut ctx, c),
        Site::C => meds_site_c(&mut ctx, c),
    };
    out.extend(meds);
    if !c.outcome_in_status {
        out.push(outcome(&mut ctx, &cond_id, c.outcome, c.onset.plus_months(12)));
    }
    let count = 3 + c.who.num % 4;
    out.extend(vitals(&mut ctx, &c.who, c.onset, count));
    out
}

// ---------------------------------------------------------------- distractors

/// Patient, encounter and vital signs of a distractor patient.
fn distractor_start(who: &Who, day: Day) -> (Ctx, Vec<Value>) {
    let mut ctx = Ctx::new(who);
    let mut out = vec![patient(&ctx, who), encounter(&mut ctx, day)];
    out.extend(vitals(&mut ctx, who, day, 3 + who.num % 4));
    (ctx, out)
}

/// D1 (site A): juvenile dermatomyositis with high CK and rash; not a case.
fn distractor_d1() -> Vec<Value> {
    let (who, day) = (who(Site::A, "D1", 11, false, Day(2011, 8, 19)), Day(2018, 4, 11));
    let (mut ctx, mut out) = distractor_start(&who, day);
    let code = concept(
        vec![
            coding(SCT, "396230008", "Dermatomyositis"),
            coding(
                ICD10CM,
                "M33.00",
                "Juvenile dermatomyositis, organ involvement unspecified",
            ),
        ],
        "Juvenile dermatomyositis",
    );
    let cond = condition(&mut ctx, code, Some("active"), "confirmed");
    out.push(with(cond, "onsetDateTime", json!(ctx.when(day))));
    out.push(ck(&mut ctx, 6000.0, false, day, "final"));
    out.push(finding(
        &mut ctx,
        "exam",
        local("gottron", "Gottron's sign or papules"),
        true,
        day,
    ));
    out
}

/// D2 (site C): IMNM diagnosis refuted, CK 1500 and anti-HMGCR 45 Units; a candidate.
fn distractor_d2() -> Vec<Value> {
    let (who, day) = (who(Site::C, "D2", 12, true, Day(2010, 2, 14)), Day(2019, 7, 22));
    let (mut ctx, mut out) = distractor_start(&who, day);
    let code = concept(vec![imnm_snomed()], "Immune-mediated necrotizing myopathy");
    let cond = condition(&mut ctx, code, Some("inactive"), "refuted");
    out.push(with(cond, "recordedDate", json!(day.iso())));
    out.push(ck(&mut ctx, 1500.0, false, day, "final"));
    let hmgcr_code = concept(
        vec![coding(LOINC, "93493-5", "HMGCR Antibody, IgG")],
        "HMGCR Antibody, IgG",
    );
    let v = obs(&mut ctx, "laboratory", hmgcr_code, day);
    out.push(with(v, "valueQuantity", json!({ "value": 45, "unit": "Units" })));
    out
}

/// D3 (site B): IMNM diagnosis entered in error; not a case.
fn distractor_d3() -> Vec<Value> {
    let (who, day) = (who(Site::B, "D3", 13, false, Day(2013, 11, 2)), Day(2020, 5, 6));
    let (mut ctx, mut out) = distractor_start(&who, day);
    let code = concept(vec![imnm_icd10cm()], "IMNM (immune-mediated necrotizing myopathy)");
    let cond = condition(&mut ctx, code, None, "entered-in-error");
    out.push(with(cond, "recordedDate", json!(ctx.when(day))));
    out
}

/// D4 (site C): parent code "Myositis" without IMNM wording; a candidate.
fn distractor_d4() -> Vec<Value> {
    let (who, day) = (who(Site::C, "D4", 14, false, Day(2009, 5, 27)), Day(2021, 3, 9));
    let (mut ctx, mut out) = distractor_start(&who, day);
    let code = concept(vec![coding(SCT, "26889001", "Myositis")], "Myositis, unspecified");
    let cond = condition(&mut ctx, code, Some("active"), "confirmed");
    out.push(with(cond, "onsetDateTime", json!(day.iso())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn deterministic() {
        assert_eq!(demo_resources(), demo_resources());
    }

    #[test]
    fn every_resource_has_type_and_unique_id() {
        let mut seen = HashSet::new();
        for r in demo_resources() {
            let (ty, id) = (resource_type(&r).to_owned(), resource_id(&r).to_owned());
            assert!(!ty.is_empty(), "missing resourceType: {r}");
            assert!(!id.is_empty(), "missing id: {r}");
            assert!(seen.insert((ty.clone(), id.clone())), "duplicate {ty}/{id}");
        }
    }

    #[test]
    fn table_matches_seed_figures() {
        let males = CHILDREN.iter().filter(|c| c.who.male).count();
        let mut ages: Vec<u32> = CHILDREN.iter().map(|c| c.onset.years_since(c.who.birth)).collect();
        ages.sort_unstable();
        assert_eq!(males, 4);
        assert_eq!((ages[0], ages[4], ages[5], ages[9]), (3, 5, 6, 16));
        let mut peaks: Vec<f64> = CHILDREN
            .iter()
            .map(|c| c.ck[0] * if c.ukat { 60.0 } else { 1.0 })
            .collect();
        peaks.sort_by(f64::total_cmp);
        assert!((peaks[4] + peaks[5] - 2.0 * 3988.5).abs() < 1e-6);
        assert!((peaks[0] - 2080.0).abs() < 1e-6 && (peaks[9] - 13524.0).abs() < 1e-6);
        for c in &CHILDREN {
            assert!(c.ck[1..].iter().all(|v| v < &c.ck[0]), "child {}", c.who.num);
            assert!((c.hmgcr == Ab::Pos) != (c.srp == Ab::Pos), "child {}", c.who.num);
        }
        let count = |f: fn(&Child) -> bool| CHILDREN.iter().filter(|c| f(c)).count();
        assert_eq!(count(|c| c.hmgcr == Ab::Pos), 4);
        assert_eq!(count(|c| c.srp == Ab::Pos), 6);
        assert_eq!(count(|c| c.rash), 5);
        assert_eq!(count(|c| c.rtx), 5);
        assert_eq!(count(|c| c.ivig), 8);
        assert_eq!(count(|c| c.outcome == Outcome::Complete), 4);
        assert_eq!(count(|c| c.outcome == Outcome::Partial), 5);
    }

    #[test]
    fn writes_bundle_and_ndjson() {
        let dir = std::env::temp_dir().join(format!("imnm-demo-test-{}", std::process::id()));
        assert!(write_demo(&dir).is_ok());
        let bundle = fs::read_to_string(dir.join("bundle.json")).unwrap_or_default();
        let parsed: Value = serde_json::from_str(&bundle).unwrap_or(Value::Null);
        let entries = parsed["entry"].as_array().map_or(0, Vec::len);
        assert_eq!(entries, demo_resources().len());
        let patients = fs::read_to_string(dir.join("ndjson/Patient.ndjson")).unwrap_or_default();
        assert_eq!(patients.lines().count(), 14);
        assert!(patients.ends_with('\n'));
        let _ = fs::remove_dir_all(&dir);
    }
}
