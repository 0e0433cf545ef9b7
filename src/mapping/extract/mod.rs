//! Reading typed FHIR resources into domain facts, one file per resource kind
//! (`observation` with its panels' components, `report` for DiagnosticReport,
//! `note` for DocumentReference; `text` reads report and note text with the
//! rules of `text.toml`, `attachment` decodes attachments),
//! plus `antibody` (an antibody result's order of evidence) and `numeric`
//! (numbers sent as text). An Observation is read through its borrowed view
//! (`fhir::fast::view`): a typed Observation ([`extract`]) and the scan's
//! borrowed struct ([`extract_observation`]) go through the same rules, and
//! the concept helpers here take either a typed CodeableConcept or a view.
//!
//! Each function is pure: a resource and the mapping set in, facts and issues
//! out. Issues name the resource (`Type/id`) and the FHIR path, never a value.

mod antibody;
mod attachment;
mod condition;
#[cfg(test)]
mod coverage;
mod medication;
mod note;
mod numeric;
mod observation;
mod patient;
mod report;
pub(crate) mod text;

use std::borrow::Cow;

use crate::domain::{DiagnosisFact, Fact, FhirDate, Sex, SourceRef};
use crate::fhir::fast::view::{self, Concept};
use crate::fhir::model::types::Reference;
use crate::fhir::model::Resource;
use crate::mapping::MappingSet;
use crate::report::{Issue, IssueCode, Severity};

pub use condition::ONSET_AGE_URL;
pub use medication::{push_matches, MedicationMatch};
pub use observation::RESULT_COUNT_URL;

/// Demographics from a Patient resource.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PatientRecord {
    /// `Patient.gender`.
    pub sex: Sex,
    /// `Patient.birthDate`.
    pub birth_date: Option<FhirDate>,
    /// `Patient.identifier` as `system|value` (the system canonical, as for
    /// codings), for linking one child across sites
    /// ([`crate::cohort::link`]). Never written to any output, log or issue.
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// Which of its site's kept texts is the Patient's.
    #[serde(default)]
    pub text: crate::domain::TextNumber,
}

/// A medication resource that names its drug by reference to a Medication
/// resource elsewhere in the input: resolved once every Medication is known.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PendingExposure {
    /// The Medication's id.
    pub medication_id: String,
    /// When it was given or ordered.
    pub date: Option<FhirDate>,
    /// The FHIR path of the reference (for the dangling-reference issue).
    pub path: String,
}

/// Everything read from one resource.
#[derive(Debug, Clone)]
pub struct Extracted {
    /// The resource.
    pub source: SourceRef,
    /// The patient reference (`subject` / `patient`), as written.
    pub subject: Option<String>,
    /// Demographics, for a Patient.
    pub patient: Option<PatientRecord>,
    /// Facts for rule columns.
    pub facts: Vec<Fact>,
    /// Myositis diagnoses, for a Condition.
    pub diagnoses: Vec<DiagnosisFact>,
    /// For a Medication: the exposure rules its codes match (empty when none).
    pub medication: Option<Vec<MedicationMatch>>,
    /// References to Medication resources still to resolve.
    pub pending: Vec<PendingExposure>,
    /// What could not be read.
    pub issues: Vec<Issue>,
}

/// The reading context of one resource.
pub struct Ctx<'m> {
    /// The mappings.
    pub m: &'m MappingSet,
    /// What is being read.
    pub out: Extracted,
}

impl<'m> Ctx<'m> {
    /// A context for reading the resource `source`.
    pub fn new(m: &'m MappingSet, source: SourceRef) -> Self {
        let out = Extracted {
            source,
            subject: None,
            patient: None,
            facts: Vec::new(),
            diagnoses: Vec::new(),
            medication: None,
            pending: Vec::new(),
            issues: Vec::new(),
        };
        Self { m, out }
    }

    /// Records an issue about this resource at `path`.
    pub fn issue(&mut self, severity: Severity, code: IssueCode, path: impl Into<String>, message: impl Into<String>) {
        let location = self.out.source.to_string();
        self.out
            .issues
            .push(Issue::new(severity, code, location, message).at(path));
    }

    /// True when the rules exclude `status` for `key` (a resource type, or
    /// `Condition_verification`): then an information issue at `path` says
    /// so, as a resource a rule matched never vanishes silently.
    pub fn excluded(&mut self, key: &str, status: Option<&str>, path: impl FnOnce() -> String) -> bool {
        let status = status.unwrap_or("").trim();
        if !self.m.statuses.excludes(key, status) {
            return false;
        }
        let msg = format!("status {status:?} is excluded by the rules ([status] in rules.toml); not mapped");
        self.issue(Severity::Information, IssueCode::ExcludedStatus, path(), msg);
        true
    }

    /// Parses a FHIR date at `path`; a bad one becomes an issue.
    pub fn date(&mut self, value: Option<&str>, path: &str) -> Option<FhirDate> {
        let v = value?;
        match FhirDate::parse(v) {
            Ok(d) => Some(d),
            Err(e) => {
                self.issue(Severity::Warning, IssueCode::BadDate, path, e.to_string());
                None
            }
        }
    }

    /// Records the subject reference; a missing one is an issue.
    pub fn subject(&mut self, reference: Option<&Reference>, path: &str) {
        let text = reference
            .and_then(|r| r.reference.as_ref())
            .and_then(|s| s.value.as_deref());
        self.subject_text(text, path);
    }

    /// Records the subject reference as written (`Reference.reference`); a
    /// missing one is an issue.
    pub(crate) fn subject_text(&mut self, reference: Option<&str>, path: &str) {
        match reference {
            Some(r) => self.out.subject = Some(r.to_string()),
            None => self.issue(
                Severity::Error,
                IssueCode::MissingSubject,
                path,
                "no patient reference; resource not mapped",
            ),
        }
    }
}

/// The string value of a FHIR primitive.
pub trait Prim {
    /// The value, if any.
    fn v(&self) -> Option<&str>;
}

macro_rules! prim {
    ($($t:ident),*) => {$(
        impl Prim for crate::fhir::model::types::$t {
            fn v(&self) -> Option<&str> {
                self.value.as_deref()
            }
        }
    )*};
}
prim!(
    String,
    Code,
    Uri,
    Id,
    Date,
    DateTime,
    Instant,
    Decimal,
    Base64Binary,
    Url
);

impl<T: Prim> Prim for Option<T> {
    fn v(&self) -> Option<&str> {
        self.as_ref().and_then(Prim::v)
    }
}

/// `(system, code)` of each coding (of a typed CodeableConcept or a [`Concept`] view).
pub fn codings<'o>(cc: impl Into<Concept<'o>>) -> impl Iterator<Item = (Option<&'o str>, Option<&'o str>)> + Clone {
    cc.into().codings().map(|c| (c.system, c.code))
}

/// The first coding of `cc` in value set `vs`, as canonical `system|code`
/// (a local code with the ConceptMap that maps it, [`via_concept_map`]).
pub fn coding_in<'o>(m: &MappingSet, vs: usize, cc: impl Into<Concept<'o>>) -> Option<String> {
    codings(cc).find(|(s, c)| m.in_valueset(vs, *s, *c)).map(|(s, c)| {
        let (s, c) = (s.unwrap_or(""), c.unwrap_or(""));
        let code = m.canonical_code(s, c);
        match m.translation(vs, s, c) {
            Some(t) => format!("{code} {}", via(t)),
            None => code,
        }
    })
}

fn via(t: &crate::mapping::codes::Translation) -> String {
    format!("(as {} by ConceptMap {})", t.target, t.map)
}

/// How a local coding of `cc` was read as a value set's code: `(as
/// system|code by ConceptMap url)`, for provenance; `None` when no coding
/// came through a ConceptMap.
pub fn via_concept_map<'o>(m: &MappingSet, cc: impl Into<Concept<'o>>) -> Option<String> {
    codings(cc).find_map(|(s, c)| {
        let t = m.concept_maps.get(&m.systems, s?, c?).first()?;
        Some(via(t))
    })
}

/// The words of `cc`: its text, then each coding's display.
pub fn texts<'o>(cc: impl Into<Concept<'o>>) -> impl Iterator<Item = &'o str> {
    let cc = cc.into();
    cc.text().into_iter().chain(cc.codings().filter_map(|c| c.display))
}

/// The first coding of `cc`, as `system|code`, for messages.
pub fn first_code<'o>(cc: impl Into<Concept<'o>>) -> String {
    // Joined by hand: `format!` took most of the time of reading a lab result's code.
    codings(cc)
        .next()
        .map(|(s, c)| [s.unwrap_or("?"), "|", c.unwrap_or("?")].concat())
        .unwrap_or_else(|| "(no coding)".into())
}

/// True when a CodeableConcept has a coding or text in value set `vs`.
pub fn concept_matches<'o>(m: &MappingSet, vs: usize, cc: impl Into<Concept<'o>>) -> bool {
    let cc = cc.into();
    coding_in(m, vs, cc).is_some() || texts(cc).any(|t| m.valuesets[vs].matches_text(t))
}

/// [`concept_matches`] of one CodeableConcept against many value sets: its
/// codings' value sets worked out once, its words (trimmed, lower-cased) once
/// a value set that matches by text asks for them.
pub struct ConceptMatch<'c> {
    /// The codings' value sets: the mappings' own slice when one coding has
    /// any (nothing allocated), a copy gathering them when several do.
    sets: Cow<'c, [usize]>,
    cc: Concept<'c>,
    words: std::cell::OnceCell<Vec<String>>,
}

impl<'c> ConceptMatch<'c> {
    /// What `cc` matches.
    pub fn new(m: &'c MappingSet, cc: impl Into<Concept<'c>>) -> Self {
        let cc = cc.into();
        let mut sets: Cow<'c, [usize]> = Cow::Borrowed(&[]);
        for (s, c) in codings(cc) {
            if let (Some(s), Some(c)) = (s, c) {
                match m.valuesets_of(s, c) {
                    [] => {}
                    found if sets.is_empty() => sets = Cow::Borrowed(found),
                    found => sets.to_mut().extend_from_slice(found),
                }
            }
        }
        Self {
            sets,
            cc,
            words: std::cell::OnceCell::new(),
        }
    }

    /// The same as `concept_matches(m, vs, cc)`.
    pub fn matches(&self, m: &MappingSet, vs: usize) -> bool {
        let set = &m.valuesets[vs];
        let words = || (self.words).get_or_init(|| texts(self.cc).map(|t| t.trim().to_lowercase()).collect());
        self.sets.contains(&vs)
            || (!set.text.is_empty() && words().iter().any(|w| set.text_match_len_lowered(w).is_some()))
    }
}

/// Reads one resource. `location` names it when it has no id.
pub fn extract(resource: &Resource, m: &MappingSet, fallback_id: &str) -> Extracted {
    let (resource_type, id) = type_and_id(resource);
    let id = id.unwrap_or_else(|| fallback_id.to_string());
    let mut ctx = Ctx::new(m, SourceRef::new(resource_type, id));
    match resource {
        Resource::Patient(p) => patient::read(p, &mut ctx),
        Resource::Condition(c) => condition::read(c, &mut ctx),
        Resource::Observation(o) => observation::read(view::Observation::typed(o), &mut ctx),
        Resource::DiagnosticReport(r) => report::read(r, &mut ctx),
        Resource::DocumentReference(d) => note::read(d, &mut ctx),
        Resource::Medication(med) => medication::read_medication(med, &mut ctx),
        Resource::MedicationStatement(r) => medication::read_statement(r, &mut ctx),
        Resource::MedicationRequest(r) => medication::read_request(r, &mut ctx),
        Resource::MedicationAdministration(r) => medication::read_administration(r, &mut ctx),
        Resource::MedicationDispense(r) => medication::read_dispense(r, &mut ctx),
        _ => {}
    }
    ctx.out
}

/// Reads an Observation through its view (the scan's borrowed struct:
/// [`crate::fhir::fast::ObservationText::view`]), as [`extract`] reads the
/// typed resource. `fallback_id` names it when it has no id.
pub(crate) fn extract_observation(o: view::Observation<'_>, m: &MappingSet, fallback_id: &str) -> Extracted {
    let id = o.id().map_or_else(|| fallback_id.to_string(), str::to_string);
    let mut ctx = Ctx::new(m, SourceRef::new("Observation", id));
    observation::read(o, &mut ctx);
    ctx.out
}

/// The resource type and id of a parsed resource (only mapped types carry ids here).
pub fn type_and_id(resource: &Resource) -> (&'static str, Option<String>) {
    match resource {
        Resource::Patient(r) => ("Patient", r.id.v().map(str::to_string)),
        Resource::Condition(r) => ("Condition", r.id.v().map(str::to_string)),
        Resource::Observation(r) => ("Observation", r.id.v().map(str::to_string)),
        Resource::DiagnosticReport(r) => ("DiagnosticReport", r.id.v().map(str::to_string)),
        Resource::DocumentReference(r) => ("DocumentReference", r.id.v().map(str::to_string)),
        Resource::Medication(r) => ("Medication", r.id.v().map(str::to_string)),
        Resource::MedicationStatement(r) => ("MedicationStatement", r.id.v().map(str::to_string)),
        Resource::MedicationRequest(r) => ("MedicationRequest", r.id.v().map(str::to_string)),
        Resource::MedicationAdministration(r) => ("MedicationAdministration", r.id.v().map(str::to_string)),
        Resource::MedicationDispense(r) => ("MedicationDispense", r.id.v().map(str::to_string)),
        _ => ("Other", None),
    }
}

/// A decimal's value as f64, if it is a number.
pub fn decimal(d: &Option<crate::fhir::model::types::Decimal>) -> Option<f64> {
    decimal_text(d.v())
}

/// A decimal's value as written, as f64, if it is a number.
pub(crate) fn decimal_text(d: Option<&str>) -> Option<f64> {
    d.and_then(|s| s.trim().parse::<f64>().ok()).filter(|x| x.is_finite())
}

/// The integer value (integer, positiveInt or unsignedInt) of the first
/// extension `url`, when it has one.
pub fn extension_integer(extensions: &[crate::fhir::model::types::Extension], url: &str) -> Option<i64> {
    view::Extensions::from(extensions).integer(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test: a failure should stop it loudly")]

    use super::{concept_matches, ConceptMatch, Cow};
    use crate::fhir::model::types::{CodeableConcept, Coding};
    use crate::fhir::model::Resource;
    use crate::mapping::MappingSet;

    fn concept(system: Option<&str>, code: Option<&str>, text: Option<&str>) -> CodeableConcept {
        let prim = |v: Option<&str>| v.map(|v| v.to_string());
        CodeableConcept {
            coding: vec![Coding {
                system: prim(system).map(|value| crate::fhir::model::types::Uri {
                    value: Some(value),
                    ..Default::default()
                }),
                code: prim(code).map(|value| crate::fhir::model::types::Code {
                    value: Some(value),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            text: prim(text).map(|value| crate::fhir::model::types::String {
                value: Some(value),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Every code of the demo and the generator, and every value set's words
    /// (padded, upper-cased, inside other words): the same answer for every value set.
    #[test]
    fn concept_match_answers_as_concept_matches() {
        let m = MappingSet::builtin().unwrap();
        let mut concepts = Vec::new();
        let mut texts: Vec<String> = crate::demo::generate::demo_resources()
            .iter()
            .map(|v| v.to_string())
            .collect();
        crate::bench_data::for_each(&crate::bench_data::Spec::registry(3_000, 50), |_, j| {
            texts.push(j.to_string())
        });
        for text in &texts {
            match crate::fhir::parse::resource(text).map(|p| p.resource) {
                Ok(Resource::Observation(o)) => {
                    concepts.push(*o.code.clone());
                    concepts.extend(o.component.iter().map(|c| *c.code.clone()));
                }
                Ok(Resource::Condition(c)) => concepts.extend(c.code.as_deref().cloned()),
                _ => {}
            }
        }
        for set in &m.valuesets {
            for w in set.text.iter().chain(&set.text_exclude) {
                for t in [
                    w.clone(),
                    format!("  {} ", w.to_uppercase()),
                    format!("anti-{w} antibody"),
                    format!("not {w}"),
                ] {
                    concepts.push(concept(Some("urn:x"), Some("1"), Some(&t)));
                }
            }
        }
        concepts.push(concept(None, Some("2157-6"), None));
        concepts.push(concept(Some(" http://loinc.org "), Some(" 2157-6"), None));
        // Several codings to a concept, more than one of them in value sets.
        let codings: Vec<Coding> = concepts.iter().flat_map(|c| c.coding.iter().cloned()).collect();
        for three in codings.chunks(3) {
            concepts.push(CodeableConcept {
                coding: three.to_vec(),
                ..Default::default()
            });
        }
        assert!(concepts.len() > 100, "{}", concepts.len());
        let mut gathered = 0;
        for cc in &concepts {
            let once = ConceptMatch::new(&m, cc);
            gathered += usize::from(matches!(once.sets, Cow::Owned(_)));
            for vs in 0..m.valuesets.len() {
                assert_eq!(once.matches(&m, vs), concept_matches(&m, vs, cc), "{vs} {cc:?}");
            }
        }
        assert!(gathered > 0, "no concept had two codings in value sets");
    }
}
