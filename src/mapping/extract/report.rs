//! DiagnosticReport → clinical findings and thigh MRI.
//!
//! Two shapes sites send: a report (an EMG, a muscle biopsy, an MRI) whose
//! `conclusionCode`s name the findings seen, each in a finding or MRI value
//! set (the finding is present); and one report per finding, whose `code` is
//! the finding and whose conclusion (`conclusionCode`, else `conclusion`)
//! answers yes or no. The Observations a report's `result` references are
//! ordinary resources of the input, read once each on their own; the report
//! never reads them again — except results `contained` in the report
//! (`result: [{reference: "#obs1"}]`), which exist nowhere else: each is read
//! here as an Observation, once, with the report's subject and date where it
//! has none, its facts and issues naming `DiagnosticReport/id#obs1`. Lab and
//! antibody codes on a report give nothing (its results carry the values).
//!
//! A report of a kind `text.toml` reads (an EMG, biopsy or MRI report, by
//! its code) has its `conclusion` and `presentedForm` read for findings in
//! text (`text.rs`); a coded finding wins over them when the cohort is built.

use super::observation::answer_of;
use super::text::{self, Body, Doc};
use super::{attachment, concept_matches, first_code, Ctx, Prim};
use crate::domain::facts::MriPart;
use crate::domain::SourceRef;
use crate::domain::{Fact, FactValue, FhirDate};
use crate::fhir::model::resources::{DiagnosticReport, DiagnosticReportEffective, Observation, ObservationEffective};
use crate::fhir::model::types::CodeableConcept;
use crate::fhir::model::Resource;
use crate::mapping::text::DocResource;
use crate::mapping::{MappingSet, RuleKind};
use crate::report::{IssueCode, Severity};

/// Reads a DiagnosticReport: its contained results, conclusion codes, own code and text.
pub fn read(r: &DiagnosticReport, ctx: &mut Ctx<'_>) {
    if ctx.excluded("DiagnosticReport", r.status.v(), || "DiagnosticReport.status".into()) {
        return;
    }
    let names_subject = r
        .subject
        .as_ref()
        .and_then(|s| s.reference.as_ref())
        .and_then(|s| s.value.as_ref());
    if names_subject.is_none() {
        // Valid FHIR (subject is 0..1): only a loss when the report would have given a
        // value; what could not be read (an attachment) is said either way.
        let mut probe = Ctx::new(ctx.m, ctx.out.source.clone());
        probe.out.subject = Some(String::new());
        values(r, &mut probe);
        if probe.out.facts.is_empty() {
            ctx.out.issues.append(&mut probe.out.issues);
        } else {
            ctx.subject(None, "DiagnosticReport.subject");
        }
        return;
    }
    ctx.subject(r.subject.as_deref(), "DiagnosticReport.subject");
    values(r, ctx);
}

fn values(r: &DiagnosticReport, ctx: &mut Ctx<'_>) {
    let date = match &r.effective {
        Some(DiagnosticReportEffective::DateTime(d)) => ctx.date(d.v(), "DiagnosticReport.effectiveDateTime"),
        Some(DiagnosticReportEffective::Period(p)) => ctx.date(p.start.v(), "DiagnosticReport.effectivePeriod.start"),
        _ => ctx.date(r.issued.v(), "DiagnosticReport.issued"),
    };
    contained_results(r, ctx);
    coded(r, ctx, date);
    texts(r, ctx, date);
}

/// The findings of a report's conclusion codes and its own code.
fn coded(r: &DiagnosticReport, ctx: &mut Ctx<'_>, date: Option<FhirDate>) {
    let m = ctx.m;
    let mut found = vec![false; m.rules.len()];
    for (k, cc) in r.conclusion_code.iter().enumerate() {
        for (i, value) in findings(m, cc) {
            let detail = format!("DiagnosticReport.conclusionCode[{k}] {}", first_code(cc));
            push(ctx, i, value(true), date, first_code(cc), detail);
            found[i] = true;
        }
    }
    for (i, value) in findings(m, &r.code) {
        if found[i] {
            continue;
        }
        match conclusion(r, m) {
            Some((yes, how)) => {
                let detail = format!("DiagnosticReport.code {} with {how}", first_code(&r.code));
                push(ctx, i, value(yes), date, first_code(&r.code), detail);
            }
            None => ctx.issue(
                Severity::Warning,
                IssueCode::MissingValue,
                "DiagnosticReport.conclusionCode",
                "report coded as a finding without a yes/no conclusion (conclusionCode or conclusion); not mapped",
            ),
        }
    }
}

/// Reads each `result` that names an Observation contained in the report
/// (`#id`); one that names nothing contained is a warning.
fn contained_results(r: &DiagnosticReport, ctx: &mut Ctx<'_>) {
    for (k, result) in r.result.iter().enumerate() {
        let Some(id) = result.reference.v().and_then(|s| s.strip_prefix('#')) else {
            continue;
        };
        let Some(o) = contained_observation(r, id) else {
            ctx.issue(
                Severity::Warning,
                IssueCode::DanglingReference,
                format!("DiagnosticReport.result[{k}]"),
                "contained result not found in DiagnosticReport.contained; not mapped",
            );
            continue;
        };
        let mut o = o.clone();
        if o.subject.is_none() {
            o.subject.clone_from(&r.subject);
        }
        if o.effective.is_none() && o.issued.is_none() {
            o.effective = match &r.effective {
                Some(DiagnosticReportEffective::DateTime(d)) => Some(ObservationEffective::DateTime(d.clone())),
                Some(DiagnosticReportEffective::Period(p)) => Some(ObservationEffective::Period(p.clone())),
                _ => None,
            };
            o.issued.clone_from(&r.issued);
        }
        let source = SourceRef::new("DiagnosticReport", format!("{}#{id}", ctx.out.source.id));
        let mut inner = Ctx::new(ctx.m, source);
        super::observation::read(crate::fhir::fast::view::Observation::typed(&o), &mut inner);
        ctx.out.facts.append(&mut inner.out.facts);
        ctx.out.issues.append(&mut inner.out.issues);
    }
}

fn contained_observation<'r>(r: &'r DiagnosticReport, id: &str) -> Option<&'r Observation> {
    r.contained.iter().find_map(|c| match c {
        Resource::Observation(o) if o.id.v() == Some(id) => Some(&**o),
        _ => None,
    })
}

/// The findings of a report's conclusion and presented forms, when a text rule reads its kind.
fn texts(r: &DiagnosticReport, ctx: &mut Ctx<'_>, date: Option<FhirDate>) {
    let doc = Doc {
        resource: DocResource::Report,
        kinds: vec![&r.code],
        date,
    };
    if text::applicable(ctx.m, &doc).is_empty() {
        return;
    }
    let mut bodies = Vec::new();
    if let Some(c) = r.conclusion.v() {
        let (path, how, text) = ("DiagnosticReport.conclusion".to_string(), "string", c.to_string());
        bodies.push(Body { path, how, text });
    }
    for (i, a) in r.presented_form.iter().enumerate() {
        bodies.extend(attachment::body(ctx, a, format!("DiagnosticReport.presentedForm[{i}]")));
    }
    text::read(ctx, &doc, &bodies);
}

/// A fact's value, given whether the finding is present.
type ValueOf = fn(bool) -> FactValue;

/// The finding and MRI rules whose value sets hold `cc`, with how their value is made.
fn findings(m: &MappingSet, cc: &CodeableConcept) -> Vec<(usize, ValueOf)> {
    let mut out: Vec<(usize, ValueOf)> = Vec::new();
    for (i, rule) in m.rules.iter().enumerate() {
        match rule.kind {
            RuleKind::Finding { valueset } if concept_matches(m, valueset, cc) => out.push((i, FactValue::Present)),
            RuleKind::Mri { edema, .. } if concept_matches(m, edema, cc) => {
                out.push((i, |v| FactValue::Mri(MriPart::Edema, v)));
            }
            RuleKind::Mri { fatty, .. } if concept_matches(m, fatty, cc) => {
                out.push((i, |v| FactValue::Mri(MriPart::Fatty, v)));
            }
            _ => {}
        }
    }
    out
}

/// The yes/no answer of a report coded as a finding: a conclusion code in the
/// answer value sets, else the conclusion's text.
fn conclusion(r: &DiagnosticReport, m: &MappingSet) -> Option<(bool, String)> {
    let sets = [(m.answers.yes, 1u8), (m.answers.no, 0u8)];
    let coded = r.conclusion_code.iter().enumerate().find_map(|(k, cc)| {
        answer_of(m, &sets, Some(cc.into()), None).map(|a| (a == 1, format!("conclusionCode[{k}] {}", first_code(cc))))
    });
    coded.or_else(|| answer_of(m, &sets, None, r.conclusion.v()).map(|a| (a == 1, "conclusion".to_string())))
}

fn push(ctx: &mut Ctx<'_>, rule: usize, value: FactValue, date: Option<FhirDate>, code: String, detail: String) {
    let source = ctx.out.source.clone();
    ctx.out.facts.push(Fact {
        rule,
        value,
        date,
        source,
        code,
        detail,
        via: None,
        evidence: Default::default(),
        text: None,
        via_text: None,
    });
}
