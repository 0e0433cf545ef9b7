//! Patient → sex, birth date and identifiers (kept for linkage only).

use super::{Ctx, PatientRecord, Prim};
use crate::domain::Sex;
use crate::fhir::model::resources::Patient;
use crate::report::{IssueCode, Severity};

/// Reads demographics and identifiers. `gender` outside the FHIR value set becomes `unknown` with an issue.
pub fn read(p: &Patient, ctx: &mut Ctx<'_>) {
    let sex = match p.gender.v() {
        None => Sex::Unknown,
        Some(g) => g.parse().unwrap_or_else(|_| {
            ctx.issue(
                Severity::Warning,
                IssueCode::UnknownCode,
                "Patient.gender",
                "gender is not male|female|other|unknown; mapped to unknown",
            );
            Sex::Unknown
        }),
    };
    let birth_date = ctx.date(p.birth_date.v(), "Patient.birthDate");
    let identifiers = p
        .identifier
        .iter()
        .filter_map(|i| Some(ctx.m.canonical_code(i.system.v()?, i.value.v()?)))
        .collect();
    ctx.out.patient = Some(PatientRecord {
        sex,
        birth_date,
        identifiers,
        text: None,
    });
    ctx.out.subject = Some(format!("Patient/{}", ctx.out.source.id));
}
