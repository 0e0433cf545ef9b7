//! Deterministic synthetic inputs for benchmarks and scale tests.
//!
//! Shaped like a hospital's Bulk Data export: per patient ~200 Observations of
//! mixed categories (vital signs, common labs, social history; CK a few per
//! patient), a few Conditions and medication resources, written in three
//! vendor styles (Epic-, Cerner- and HAPI-like ids, systems and extras). One
//! patient in 40 is an IMNM case (diagnosis, CK peak, antibodies, treatment),
//! one in 55 a candidate (high CK and positive anti-HMGCR, no diagnosis).
//! With `faults`, a few bad lines are mixed in (malformed JSON, a duplicate,
//! an unknown unit, an unknown element) so issue paths are exercised.
//!
//! **Registry-shaped** inputs ([`Spec::registry`]) are what a registry syncs:
//! only its cohort's patients, so every patient is an IMNM case, each with
//! about [`REGISTRY_OBS_PER_PATIENT`] results (a child's labs followed for
//! years), of which the given percentage are CK or myositis antibody results
//! (the rest other labs and vital signs).
//!
//! Everything is made up (no real patients) and comes from a fixed-seed
//! generator: the same [`Spec`] gives the same bytes. This module owns only
//! text generation and file writing; it never reads inputs or runs the pipeline.
//!
//! **Not API.** It is public (and hidden from the docs) only because the
//! benchmarks, tests and examples are separate crates; it may change in any
//! release.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Observations per patient (on average).
pub const OBS_PER_PATIENT: u64 = 200;

/// Observations per patient of a registry-shaped input (on average).
pub const REGISTRY_OBS_PER_PATIENT: u64 = 150;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// About this many resources in all (whole patients are written).
    pub resources: u64,
    /// Generator seed.
    pub seed: u64,
    /// Mix in a few bad lines.
    pub faults: bool,
    /// Registry-shaped: every patient a case, this percentage (0–100) of the
    /// Observations CK or antibody results. `None`: a hospital-wide export.
    pub registry: Option<u8>,
}

impl Spec {
    /// A spec of about `resources` resources, seed 1, no faults.
    #[must_use]
    pub fn new(resources: u64) -> Self {
        Self {
            resources,
            seed: 1,
            faults: false,
            registry: None,
        }
    }

    /// A registry-shaped spec (every patient a case, `relevant_pct`% of the
    /// results CK or antibodies) of about `resources` resources.
    #[must_use]
    pub fn registry(resources: u64, relevant_pct: u8) -> Self {
        Self {
            registry: Some(relevant_pct.min(100)),
            ..Self::new(resources)
        }
    }

    /// Observations per patient, on average.
    fn obs_per_patient(&self) -> u64 {
        match self.registry {
            Some(_) => REGISTRY_OBS_PER_PATIENT,
            None => OBS_PER_PATIENT,
        }
    }

    /// Patients needed for about `resources` resources (at least one).
    #[must_use]
    pub fn patients(&self) -> u64 {
        (self.resources / (self.obs_per_patient() + 8)).max(1)
    }
}

/// What was written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Patients.
    pub patients: u64,
    /// Resources (lines or entries).
    pub resources: u64,
    /// Uncompressed bytes of resource text (newlines included).
    pub bytes: u64,
}

/// The resource files of a Bulk Data export, in the order they are written.
pub const TYPES: [&str; 5] = ["Patient", "Medication", "Condition", "MedicationRequest", "Observation"];

/// Calls `emit(type, json)` for every resource, patient by patient. Type
/// order within a patient follows [`TYPES`]; shared Medications come first.
pub fn for_each(spec: &Spec, mut emit: impl FnMut(&str, &str)) {
    let mut buf = String::with_capacity(2048);
    for (i, (code, name)) in MEDS.iter().enumerate() {
        buf.clear();
        medication(&mut buf, i, code, name);
        emit("Medication", &buf);
    }
    for p in 0..spec.patients() {
        let mut g = Gen::new(spec.seed, p);
        for_patient(&mut g, spec, &mut buf, &mut emit);
    }
}

/// Writes a Bulk Data folder: `{Type}.ndjson` (or `.ndjson.gz`) per type.
///
/// # Errors
///
/// Creating the folder or writing a file.
pub fn write_bulk_dir(spec: &Spec, dir: &Path, gzip: bool) -> io::Result<Written> {
    std::fs::create_dir_all(dir)?;
    let ext = if gzip { "ndjson.gz" } else { "ndjson" };
    let mut files: Vec<Box<dyn Write>> = Vec::new();
    for t in TYPES {
        let f = BufWriter::with_capacity(1 << 16, std::fs::File::create(dir.join(format!("{t}.{ext}")))?);
        files.push(if gzip {
            Box::new(flate2::write::GzEncoder::new(f, flate2::Compression::fast()))
        } else {
            Box::new(f)
        });
    }
    let mut written = Written {
        patients: spec.patients(),
        ..Written::default()
    };
    let mut result = Ok(());
    for_each(spec, |t, json| {
        let i = TYPES.iter().position(|x| *x == t).unwrap_or(TYPES.len() - 1);
        written.resources += 1;
        written.bytes += json.len() as u64 + 1;
        if result.is_ok() {
            result = writeln!(files[i], "{json}");
        }
    });
    result?;
    for f in &mut files {
        f.flush()?;
    }
    drop(files);
    Ok(written)
}

/// Writes every resource into one NDJSON file, stopping after the patient that
/// crosses `max_bytes` when given (the on-demand multi-GB file).
///
/// # Errors
///
/// Creating or writing the file.
pub fn write_one_ndjson(spec: &Spec, path: &Path, max_bytes: Option<u64>) -> io::Result<Written> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut written = Written::default();
    let mut buf = String::with_capacity(2048);
    for (i, (code, name)) in MEDS.iter().enumerate() {
        buf.clear();
        medication(&mut buf, i, code, name);
        writeln!(w, "{buf}")?;
        written.resources += 1;
        written.bytes += buf.len() as u64 + 1;
    }
    let mut result = Ok(());
    for p in 0.. {
        if max_bytes.map_or(p >= spec.patients(), |m| written.bytes >= m) {
            break;
        }
        let mut g = Gen::new(spec.seed, p);
        for_patient(&mut g, spec, &mut buf, &mut |_, json: &str| {
            written.resources += 1;
            written.bytes += json.len() as u64 + 1;
            if result.is_ok() {
                result = writeln!(w, "{json}");
            }
        });
        result.as_ref().map_err(|e| io::Error::new(e.kind(), e.to_string()))?;
        written.patients += 1;
    }
    w.flush()?;
    Ok(written)
}

/// Writes every resource as one `collection` Bundle (pretty-free, one entry per resource).
///
/// # Errors
///
/// Creating or writing the file.
pub fn write_bundle(spec: &Spec, path: &Path) -> io::Result<Written> {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    w.write_all(br#"{"resourceType":"Bundle","type":"collection","entry":["#)?;
    let mut written = Written {
        patients: spec.patients(),
        ..Written::default()
    };
    let mut result = Ok(());
    for_each(spec, |_, json| {
        // A malformed line would break the whole Bundle: Bundles get only well-formed entries.
        if serde_json::from_str::<serde::de::IgnoredAny>(json).is_err() {
            return;
        }
        let sep = if written.resources == 0 { "" } else { "," };
        written.resources += 1;
        written.bytes += json.len() as u64 + 1;
        if result.is_ok() {
            result = write!(w, "{sep}\n{{\"resource\":{json}}}");
        }
    });
    result?;
    w.write_all(b"\n]}\n")?;
    w.flush()?;
    Ok(written)
}

/// splitmix64: small, fast, deterministic.
struct Gen {
    state: u64,
    patient: u64,
}

impl Gen {
    fn new(seed: u64, patient: u64) -> Self {
        Self {
            state: seed ^ patient.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            patient,
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn date(&mut self) -> String {
        format!(
            "{}-{:02}-{:02}",
            2015 + self.below(10),
            1 + self.below(12),
            1 + self.below(28)
        )
    }

    fn datetime(&mut self) -> String {
        let d = self.date();
        format!("{d}T{:02}:{:02}:00Z", self.below(24), self.below(60))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Vendor {
    Epic,
    Cerner,
    Hapi,
}

impl Vendor {
    fn of(patient: u64) -> Self {
        match patient % 3 {
            0 => Vendor::Epic,
            1 => Vendor::Cerner,
            _ => Vendor::Hapi,
        }
    }

    /// A resource id in the vendor's style.
    fn id(self, patient: u64, kind: &str, n: u64) -> String {
        match self {
            Vendor::Epic => format!("e{kind}{patient:x}.{n:x}Yq3"),
            Vendor::Cerner => format!("{}", 10_000_000 + patient * 10_000 + n),
            Vendor::Hapi => format!(
                "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
                patient,
                n,
                patient % 4096,
                n % 4096,
                patient ^ n
            ),
        }
    }

    /// Vendor extras written before `code` (meta, identifiers).
    fn extras(self, out: &mut String, n: u64) {
        match self {
            Vendor::Epic => out.push_str(
                r#""identifier":[{"use":"official","system":"urn:oid:1.2.840.114350.1.13.861.1.7.3.798268","value":"ORD"#,
            ),
            Vendor::Cerner => out.push_str(r#""meta":{"versionId":"1","lastUpdated":"2024-03-0"#),
            Vendor::Hapi => {
                out.push_str(r##""meta":{"versionId":"2","lastUpdated":"2025-11-20T08:00:00.000+00:00","source":"#MN"##)
            }
        }
        match self {
            Vendor::Epic => {
                let _ = write!(out, "{n}\"}}],");
            }
            Vendor::Cerner => {
                let _ = write!(out, "{}T10:00:00.000Z\"}},", 1 + n % 9);
            }
            Vendor::Hapi => {
                let _ = write!(out, "{n:x}\",\"profile\":[\"http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab\"]}},");
            }
        }
    }
}

/// (LOINC, display, unit, low, high) of background results.
const VITALS: [(&str, &str, &str, u64, u64); 7] = [
    ("8867-4", "Heart rate", "/min", 55, 140),
    ("9279-1", "Respiratory rate", "/min", 12, 30),
    ("8310-5", "Body temperature", "Cel", 36, 39),
    ("29463-7", "Body weight", "kg", 12, 90),
    ("8302-2", "Body height", "cm", 90, 190),
    (
        "59408-5",
        "Oxygen saturation in Arterial blood by Pulse oximetry",
        "%",
        90,
        100,
    ),
    ("39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", 14, 32),
];

const LABS: [(&str, &str, &str, u64, u64); 12] = [
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 60, 200),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0, 2),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 130, 150),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3, 6),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 9, 17),
    (
        "6690-2",
        "Leukocytes [#/volume] in Blood by Automated count",
        "10*3/uL",
        3,
        15,
    ),
    (
        "777-3",
        "Platelets [#/volume] in Blood by Automated count",
        "10*3/uL",
        120,
        450,
    ),
    (
        "1742-6",
        "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        8,
        400,
    ),
    (
        "1920-8",
        "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        8,
        400,
    ),
    (
        "2532-0",
        "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma",
        "U/L",
        100,
        900,
    ),
    (
        "1988-5",
        "C reactive protein [Mass/volume] in Serum or Plasma",
        "mg/L",
        0,
        80,
    ),
    ("2885-2", "Protein [Mass/volume] in Serum or Plasma", "g/dL", 5, 9),
];

/// Shared Medications: (RxNorm ingredient, name).
const MEDS: [(&str, &str); 6] = [
    ("8640", "predniSONE 10 MG Oral Tablet"),
    ("6851", "Methotrexate 2.5 MG Oral Tablet"),
    ("121191", "riTUXimab 10 MG/ML Injectable Solution"),
    ("29046", "Lisinopril 10 MG Oral Tablet"),
    ("161", "Acetaminophen 325 MG Oral Tablet"),
    ("5640", "Ibuprofen 200 MG Oral Tablet"),
];

fn medication(out: &mut String, i: usize, code: &str, name: &str) {
    let _ = write!(
        out,
        concat!(
            r#"{{"resourceType":"Medication","id":"bench-med-{i}","code":{{"coding":[{{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","#,
            r#""code":"{code}","display":"{name}"}}],"text":"{name}"}},"status":"active"}}"#
        ),
        i = i,
        code = code,
        name = name
    );
}

fn for_patient(g: &mut Gen, spec: &Spec, buf: &mut String, emit: &mut dyn FnMut(&str, &str)) {
    let p = g.patient;
    let v = Vendor::of(p);
    let case = spec.registry.is_some() || p % 40 == 7;
    let candidate = !case && p % 55 == 11;
    let pid = v.id(p, "PT", 0);
    buf.clear();
    patient(g, v, &pid, buf);
    emit("Patient", buf);
    for n in 0..(2 + g.below(3)) {
        buf.clear();
        condition(g, v, &pid, n, case && n == 0, buf);
        emit("Condition", buf);
    }
    for n in 0..(2 + g.below(3)) {
        buf.clear();
        let med = if case { n as usize % 3 } else { 3 + g.below(3) as usize };
        med_request(g, v, &pid, n, med, buf);
        emit("MedicationRequest", buf);
    }
    let per = spec.obs_per_patient();
    let count = per - per / 10 + g.below(per / 5 + 1);
    for n in 0..count {
        buf.clear();
        // Registry-shaped: whether this result is a CK or antibody one (drawn only then,
        // so a hospital-wide export's bytes do not change).
        let relevant = spec.registry.map(|pct| g.below(100) < u64::from(pct));
        observation(g, v, &pid, n, case || candidate, relevant, buf);
        if spec.faults {
            fault(v, p, n, buf);
        }
        emit("Observation", buf);
    }
}

/// Bad lines, one of each kind per 97 patients: malformed, unknown unit,
/// unknown element, duplicate (the previous line's id again).
fn fault(v: Vendor, p: u64, n: u64, buf: &mut String) {
    if p % 97 != 3 {
        return;
    }
    let id = v.id(p, "OB", n);
    match n {
        5 => buf.truncate(buf.len() / 2),
        9 | 13 => {
            let (unit, extra) = if n == 9 {
                ("furlong", "")
            } else {
                ("U/L", r#""statusX":"odd","#)
            };
            buf.clear();
            let _ = write!(
                buf,
                concat!(
                    r#"{{"resourceType":"Observation","id":"{id}","status":"final",{extra}"#,
                    r#""code":{{"coding":[{{"system":"http://loinc.org","code":"2157-6"}}]}},"subject":{{"reference":"Patient/{pid}"}},"#,
                    r#""effectiveDateTime":"2020-01-01","valueQuantity":{{"value":300,"unit":"{unit}"}}}}"#
                ),
                id = id,
                extra = extra,
                pid = v.id(p, "PT", 0),
                unit = unit
            );
        }
        17 => *buf = buf.replacen(&format!("\"{id}\""), &format!("\"{}\"", v.id(p, "OB", n - 1)), 1),
        _ => {}
    }
}

fn patient(g: &mut Gen, v: Vendor, pid: &str, out: &mut String) {
    let gender = ["male", "female", "female", "male", "other"][g.below(5) as usize];
    let birth = format!("{}-{:02}-{:02}", 2004 + g.below(18), 1 + g.below(12), 1 + g.below(28));
    let zip = 1000 + g.below(8999);
    let _ = write!(
        out,
        concat!(
            r#"{{"resourceType":"Patient","id":"{pid}","#,
            r#""identifier":[{{"system":"urn:oid:2.16.840.1.113883.3.{v}","value":"BENCH-{p}"}}],"#,
            r#""active":true,"name":[{{"use":"official","family":"Bench-{p}","given":["Synthetic"]}}],"#,
            r#""gender":"{gender}","birthDate":"{birth}","address":[{{"line":["1 Example St"],"city":"Springfield","postalCode":"0{zip}"}}]}}"#
        ),
        pid = pid,
        v = v as u8,
        p = g.patient,
        gender = gender,
        birth = birth,
        zip = zip
    );
}

fn condition(g: &mut Gen, v: Vendor, pid: &str, n: u64, imnm: bool, out: &mut String) {
    let (system, code, display) = if imnm {
        match v {
            Vendor::Epic => (
                "http://snomed.info/sct",
                "715863001",
                "Immune-mediated necrotizing myopathy",
            ),
            Vendor::Cerner => (
                "http://hl7.org/fhir/sid/icd-10-cm",
                "G72.49",
                "Other inflammatory and immune myopathies",
            ),
            Vendor::Hapi => (
                "http://snomed.info/sct",
                "715863001",
                "Immune-mediated necrotizing myopathy",
            ),
        }
    } else {
        [
            ("http://snomed.info/sct", "38341003", "Hypertensive disorder"),
            (
                "http://hl7.org/fhir/sid/icd-10-cm",
                "J45.909",
                "Unspecified asthma, uncomplicated",
            ),
            ("http://snomed.info/sct", "195967001", "Asthma"),
            ("http://hl7.org/fhir/sid/icd-10-cm", "E66.9", "Obesity, unspecified"),
            ("http://snomed.info/sct", "44054006", "Diabetes mellitus type 2"),
        ][g.below(5) as usize]
    };
    let _ = write!(
        out,
        concat!(
            r#"{{"resourceType":"Condition","id":"{id}","#,
            r#""clinicalStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}}]}},"#,
            r#""verificationStatus":{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed"}}]}},"#,
            r#""category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item"}}]}}],"#,
            r#""code":{{"coding":[{{"system":"{system}","code":"{code}","display":"{display}"}}],"text":"{display}"}},"#,
            r#""subject":{{"reference":"Patient/{pid}"}},"onsetDateTime":"{onset}","recordedDate":"{rec}"}}"#
        ),
        id = v.id(g.patient, "CN", n),
        system = system,
        code = code,
        display = display,
        pid = pid,
        onset = g.date(),
        rec = g.date()
    );
}

fn med_request(g: &mut Gen, v: Vendor, pid: &str, n: u64, med: usize, out: &mut String) {
    let _ = write!(
        out,
        concat!(
            r#"{{"resourceType":"MedicationRequest","id":"{id}","status":"{status}","intent":"order","#,
            r#""medicationReference":{{"reference":"Medication/bench-med-{med}","display":"{name}"}},"#,
            r#""subject":{{"reference":"Patient/{pid}"}},"authoredOn":"{date}","#,
            r#""dosageInstruction":[{{"text":"Take as directed","timing":{{"repeat":{{"frequency":1,"period":1,"periodUnit":"d"}}}}}}]}}"#
        ),
        id = v.id(g.patient, "MR", n),
        status = if g.below(10) == 0 { "stopped" } else { "active" },
        med = med,
        name = MEDS[med].1,
        pid = pid,
        date = g.date()
    );
}

/// One Observation. `relevant`: `Some(true)` a CK (every tenth an antibody)
/// result, `Some(false)` any other, `None` drawn as in a hospital's export.
fn observation(g: &mut Gen, v: Vendor, pid: &str, n: u64, suggestive: bool, relevant: Option<bool>, out: &mut String) {
    let roll = match relevant {
        None => g.below(1000),
        Some(true) => 0,
        Some(false) => 20 + g.below(980),
    };
    let id = v.id(g.patient, "OB", n);
    let _ = write!(out, r#"{{"resourceType":"Observation","id":"{id}","#);
    v.extras(out, n);
    out.push_str(r#""status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":""#);
    if (suggestive && n == 3) || (relevant == Some(true) && n % 10 == 3) {
        out.push_str(r#"laboratory"}]}],"#);
        return antibody(g, pid, out);
    }
    let ck = roll < 20 || (suggestive && n == 4);
    let (cat, (code, display, unit, low, high)) = if ck {
        let high = if suggestive { 9000 } else { 400 };
        (
            "laboratory",
            (
                "2157-6",
                "Creatine kinase [Enzymatic activity/volume] in Serum or Plasma",
                "U/L",
                40,
                high,
            ),
        )
    } else if roll < 500 {
        ("vital-signs", VITALS[g.below(VITALS.len() as u64) as usize])
    } else if roll < 980 {
        ("laboratory", LABS[g.below(LABS.len() as u64) as usize])
    } else {
        return social(g, pid, out);
    };
    let value = low + g.below(high - low + 1);
    let local = if v == Vendor::Epic && cat == "laboratory" {
        format!(
            r#",{{"system":"urn:oid:1.2.840.114350.1.13.861.1.7.2.768282","code":"{}","display":"{}"}}"#,
            1500 + roll % 97,
            display
        )
    } else {
        String::new()
    };
    let _ = write!(
        out,
        concat!(
            r#"{cat}"}}]}}],"code":{{"coding":[{{"system":"http://loinc.org","code":"{code}","display":"{display}"}}{local}],"text":"{display}"}},"#,
            r#""subject":{{"reference":"Patient/{pid}"}},"effectiveDateTime":"{when}","issued":"{when}","#,
            r#""valueQuantity":{{"value":{value}.{frac},"unit":"{unit}","system":"http://unitsofmeasure.org","code":"{unit}"}},"#,
            r#""referenceRange":[{{"low":{{"value":{low},"unit":"{unit}"}},"high":{{"value":{high},"unit":"{unit}"}}}}]}}"#
        ),
        cat = cat,
        code = code,
        display = display,
        local = local,
        pid = pid,
        when = g.datetime(),
        value = value,
        frac = g.below(10),
        unit = unit,
        low = low,
        high = high
    );
}

fn social(g: &mut Gen, pid: &str, out: &mut String) {
    let _ = write!(
        out,
        concat!(
            r#"social-history"}}]}}],"code":{{"coding":[{{"system":"http://loinc.org","code":"72166-2","display":"Tobacco smoking status"}}]}},"#,
            r#""subject":{{"reference":"Patient/{pid}"}},"effectiveDateTime":"{when}","#,
            r#""valueCodeableConcept":{{"coding":[{{"system":"http://snomed.info/sct","code":"266919005","display":"Never smoked tobacco"}}]}}}}"#
        ),
        pid = pid,
        when = g.datetime()
    );
}

fn antibody(g: &mut Gen, pid: &str, out: &mut String) {
    let _ = write!(
        out,
        concat!(
            r#""code":{{"coding":[{{"system":"http://loinc.org","code":"93493-5","display":"HMGCR Antibody, IgG"}}],"text":"HMGCR Ab"}},"#,
            r#""subject":{{"reference":"Patient/{pid}"}},"effectiveDateTime":"{when}","#,
            r#""valueCodeableConcept":{{"coding":[{{"system":"http://snomed.info/sct","code":"10828004","display":"Positive"}}],"text":"Positive"}}}}"#
        ),
        pid = pid,
        when = g.datetime()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic_valid_json_and_sized_as_asked() {
        let spec = Spec::new(3_000);
        let mut a = Vec::new();
        for_each(&spec, |t, j| a.push((t.to_string(), j.to_string())));
        let mut b = Vec::new();
        for_each(&spec, |t, j| b.push((t.to_string(), j.to_string())));
        assert_eq!(a, b);
        assert!((2_500..3_500).contains(&a.len()), "{}", a.len());
        for (t, j) in &a {
            let v: serde_json::Value = serde_json::from_str(j).unwrap_or_else(|e| panic!("{e}: {j}"));
            assert_eq!(v["resourceType"], t.as_str());
        }
        let obs = a.iter().filter(|(t, _)| t == "Observation").count();
        assert!(obs * 10 > a.len() * 9, "Observations dominate: {obs} of {}", a.len());
    }

    #[test]
    fn faults_add_bad_lines() {
        let spec = Spec {
            faults: true,
            ..Spec::new(30_000)
        };
        let mut bad = 0;
        for_each(&spec, |_, j| {
            bad += usize::from(serde_json::from_str::<serde::de::IgnoredAny>(j).is_err())
        });
        assert!(bad >= 1, "{bad}");
    }

    #[test]
    fn registry_shaped_inputs_are_all_cases_with_the_share_of_relevant_results_asked() {
        for pct in [10u8, 50, 100] {
            let spec = Spec::registry(30_000, pct);
            let (mut obs, mut relevant, mut cases) = (0usize, 0usize, 0usize);
            for_each(&spec, |t, j| {
                if t == "Observation" {
                    obs += 1;
                    // CK (LOINC 2157-6) or an antibody result.
                    relevant += usize::from(j.contains("2157-6") || j.contains("HMGCR") || j.contains("SRP"));
                }
                cases += usize::from(t == "Condition" && (j.contains("715863001") || j.contains("G72.49")));
            });
            assert_eq!(cases as u64, spec.patients(), "every patient a case ({pct}%)");
            let share = relevant as f64 * 100.0 / obs as f64;
            assert!((share - f64::from(pct)).abs() < 4.0, "{pct}%: {share:.1}% of {obs}");
            let per = obs as f64 / spec.patients() as f64;
            assert!((140.0..160.0).contains(&per), "{per} results per patient");
        }
    }
}
