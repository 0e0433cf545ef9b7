//! Medication resources → treatment exposure.
//!
//! Epic has no R4 MedicationStatement, so exposure is read from any of
//! MedicationStatement, MedicationRequest, MedicationAdministration and
//! MedicationDispense; the drug is an inline CodeableConcept, a contained
//! Medication, or a Medication elsewhere in the input (resolved later).

use super::{coding_in, texts, Ctx, PendingExposure, Prim};
use crate::domain::{Fact, FactValue, FhirDate, SourceRef};
use crate::fhir::model::resources::{
    Medication, MedicationAdministration, MedicationAdministrationEffective, MedicationAdministrationMedication,
    MedicationDispense, MedicationDispenseMedication, MedicationIngredientItem, MedicationRequest,
    MedicationRequestMedication, MedicationStatement, MedicationStatementEffective, MedicationStatementMedication,
};
use crate::fhir::model::types::{CodeableConcept, Reference};
use crate::fhir::model::Resource;
use crate::fhir::reference::{self, Ref};
use crate::mapping::{MappingSet, RuleKind};
use crate::report::{IssueCode, Severity};

/// An exposure rule a drug matched, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MedicationMatch {
    /// The rule index.
    pub rule: usize,
    /// The matching coding (`system|code`) or `text`.
    pub detail: String,
}

/// The exposure rules the drug concepts match: by code first; only when no
/// code matches any rule, by text (codeable text and displays).
pub fn exposures_of_concept<'a>(
    m: &MappingSet,
    concepts: impl Iterator<Item = &'a CodeableConcept> + Clone,
) -> Vec<MedicationMatch> {
    let rules = || {
        m.rules.iter().enumerate().filter_map(|(i, r)| match r.kind {
            RuleKind::Exposure { valueset } => Some((i, valueset)),
            _ => None,
        })
    };
    let by_code: Vec<MedicationMatch> = rules()
        .filter_map(|(rule, vs)| {
            concepts
                .clone()
                .find_map(|cc| coding_in(m, vs, cc))
                .map(|c| MedicationMatch { rule, detail: c })
        })
        .collect();
    if !by_code.is_empty() {
        return by_code;
    }
    rules()
        .filter(|(_, vs)| {
            concepts
                .clone()
                .flat_map(texts)
                .any(|t| m.valuesets[*vs].matches_text(t))
        })
        .map(|(rule, _)| MedicationMatch {
            rule,
            detail: "text".into(),
        })
        .collect()
}

fn medication_concepts(med: &Medication) -> Vec<&CodeableConcept> {
    let ingredients = med.ingredient.iter().filter_map(|i| match &i.item {
        MedicationIngredientItem::CodeableConcept(cc) => Some(&**cc),
        _ => None,
    });
    med.code.as_deref().into_iter().chain(ingredients).collect()
}

/// Reads a Medication: which exposure rules its codes match.
pub fn read_medication(med: &Medication, ctx: &mut Ctx<'_>) {
    let concepts = medication_concepts(med);
    ctx.out.medication = Some(exposures_of_concept(ctx.m, concepts.into_iter()));
}

/// The drug of a medication resource.
enum Drug<'a> {
    Concept(&'a CodeableConcept),
    Reference(&'a Reference),
    Missing,
}

struct Given<'a> {
    resource_type: &'static str,
    status: Option<&'a str>,
    drug: Drug<'a>,
    contained: &'a [Resource],
    date: Option<FhirDate>,
}

fn exposure(g: Given<'_>, ctx: &mut Ctx<'_>) {
    if ctx.out.subject.is_none() || ctx.excluded(g.resource_type, g.status, || format!("{}.status", g.resource_type)) {
        return;
    }
    let path = format!("{}.medicationReference", g.resource_type);
    let matches = match g.drug {
        Drug::Concept(cc) => exposures_of_concept(ctx.m, std::iter::once(cc)),
        Drug::Missing => {
            ctx.issue(
                Severity::Warning,
                IssueCode::MissingValue,
                format!("{}.medication[x]", g.resource_type),
                "no medication; not mapped",
            );
            return;
        }
        Drug::Reference(r) => match reference::parse(r.reference.v().unwrap_or("")) {
            Ref::Contained(id) => match contained_medication(g.contained, &id) {
                Some(med) => exposures_of_concept(ctx.m, medication_concepts(med).into_iter()),
                None => {
                    ctx.issue(
                        Severity::Warning,
                        IssueCode::DanglingReference,
                        path,
                        "contained Medication not found; not mapped",
                    );
                    return;
                }
            },
            Ref::Typed { resource_type, id } if resource_type == "Medication" => {
                ctx.out.pending.push(PendingExposure {
                    medication_id: id,
                    date: g.date,
                    path,
                });
                return;
            }
            Ref::Opaque(url) if !url.is_empty() => {
                ctx.out.pending.push(PendingExposure {
                    medication_id: url,
                    date: g.date,
                    path,
                });
                return;
            }
            _ => {
                ctx.issue(
                    Severity::Warning,
                    IssueCode::DanglingReference,
                    path,
                    "medicationReference does not name a Medication; not mapped",
                );
                return;
            }
        },
    };
    push_matches(&matches, g.date, None, ctx);
}

/// Adds one exposure fact per matched rule.
pub fn push_matches(matches: &[MedicationMatch], date: Option<FhirDate>, via: Option<&SourceRef>, ctx: &mut Ctx<'_>) {
    for mm in matches {
        let source = ctx.out.source.clone();
        ctx.out.facts.push(Fact {
            rule: mm.rule,
            value: FactValue::Exposure,
            date,
            source,
            code: mm.detail.clone(),
            detail: mm.detail.clone(),
            via: via.cloned(),
            evidence: Default::default(),
            text: None,
            via_text: None,
        });
    }
}

fn contained_medication<'a>(contained: &'a [Resource], id: &str) -> Option<&'a Medication> {
    contained.iter().find_map(|r| match r {
        Resource::Medication(m) if m.id.v() == Some(id) => Some(&**m),
        _ => None,
    })
}

/// Reads a MedicationStatement.
pub fn read_statement(r: &MedicationStatement, ctx: &mut Ctx<'_>) {
    ctx.subject(Some(&r.subject), "MedicationStatement.subject");
    let date = match &r.effective {
        Some(MedicationStatementEffective::DateTime(d)) => ctx.date(d.v(), "MedicationStatement.effectiveDateTime"),
        Some(MedicationStatementEffective::Period(p)) => {
            ctx.date(p.start.v(), "MedicationStatement.effectivePeriod.start")
        }
        _ => ctx.date(r.date_asserted.v(), "MedicationStatement.dateAsserted"),
    };
    let drug = match &r.medication {
        MedicationStatementMedication::CodeableConcept(cc) => Drug::Concept(cc),
        MedicationStatementMedication::Reference(rf) => Drug::Reference(rf),
        MedicationStatementMedication::Invalid => Drug::Missing,
    };
    exposure(
        Given {
            resource_type: "MedicationStatement",
            status: r.status.v(),
            drug,
            contained: &r.contained,
            date,
        },
        ctx,
    );
}

/// Reads a MedicationRequest.
pub fn read_request(r: &MedicationRequest, ctx: &mut Ctx<'_>) {
    ctx.subject(Some(&r.subject), "MedicationRequest.subject");
    let date = ctx.date(r.authored_on.v(), "MedicationRequest.authoredOn");
    let drug = match &r.medication {
        MedicationRequestMedication::CodeableConcept(cc) => Drug::Concept(cc),
        MedicationRequestMedication::Reference(rf) => Drug::Reference(rf),
        MedicationRequestMedication::Invalid => Drug::Missing,
    };
    exposure(
        Given {
            resource_type: "MedicationRequest",
            status: r.status.v(),
            drug,
            contained: &r.contained,
            date,
        },
        ctx,
    );
}

/// Reads a MedicationAdministration.
pub fn read_administration(r: &MedicationAdministration, ctx: &mut Ctx<'_>) {
    ctx.subject(Some(&r.subject), "MedicationAdministration.subject");
    let date = match &r.effective {
        MedicationAdministrationEffective::DateTime(d) => ctx.date(d.v(), "MedicationAdministration.effectiveDateTime"),
        MedicationAdministrationEffective::Period(p) => {
            ctx.date(p.start.v(), "MedicationAdministration.effectivePeriod.start")
        }
        MedicationAdministrationEffective::Invalid => None,
    };
    let drug = match &r.medication {
        MedicationAdministrationMedication::CodeableConcept(cc) => Drug::Concept(cc),
        MedicationAdministrationMedication::Reference(rf) => Drug::Reference(rf),
        MedicationAdministrationMedication::Invalid => Drug::Missing,
    };
    exposure(
        Given {
            resource_type: "MedicationAdministration",
            status: r.status.v(),
            drug,
            contained: &r.contained,
            date,
        },
        ctx,
    );
}

/// Reads a MedicationDispense.
pub fn read_dispense(r: &MedicationDispense, ctx: &mut Ctx<'_>) {
    ctx.subject(r.subject.as_deref(), "MedicationDispense.subject");
    let date = ctx.date(r.when_handed_over.v(), "MedicationDispense.whenHandedOver");
    let drug = match &r.medication {
        MedicationDispenseMedication::CodeableConcept(cc) => Drug::Concept(cc),
        MedicationDispenseMedication::Reference(rf) => Drug::Reference(rf),
        MedicationDispenseMedication::Invalid => Drug::Missing,
    };
    exposure(
        Given {
            resource_type: "MedicationDispense",
            status: r.status.v(),
            drug,
            contained: &r.contained,
            date,
        },
        ctx,
    );
}
