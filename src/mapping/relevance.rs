//! Which codes and words matter: what `fhir`'s peek and prefilter ask before
//! parsing a resource in full. They know no value set; the mappings answer
//! for them here ([`Relevant`] for [`MappingSet`],
//! [`MappingSet::observation_codes`]).

use super::text::DocResource;
use super::{role, MappingSet};
use crate::fhir::peek::{Relevant, Role};

/// The role bit of a peek role.
fn bit(role: Role) -> u8 {
    match role {
        Role::Observation => role::OBSERVATION,
        Role::Condition => role::CONDITION,
        Role::Medication => role::MEDICATION,
        Role::Report => role::REPORT,
        Role::Text => role::TEXT,
    }
}

impl Relevant for MappingSet {
    fn code_matters(&self, system: &str, code: &str, role: Role) -> bool {
        self.has_role(system, code, bit(role))
    }

    fn text_matters(&self, text: &str, role: Role) -> bool {
        self.text_has_role(text, bit(role))
    }

    fn reads_every(&self, resource_type: &str) -> bool {
        let any_of = |resource| {
            self.text
                .sources
                .iter()
                .any(|s| s.resource == resource && s.valueset.is_none())
        };
        match resource_type {
            "DocumentReference" => self.text.reads(DocResource::Note),
            "DiagnosticReport" => any_of(DocResource::Report),
            _ => false,
        }
    }
}

impl MappingSet {
    /// Every code of an Observation value set, for the prefilter
    /// (`fhir::prefilter::Prefilter::new`); `None` when one of those value
    /// sets matches by text (a skip would then need the text too).
    pub fn observation_codes(&self) -> Option<Vec<&str>> {
        let mut codes = Vec::new();
        for (vs, r) in self.valuesets.iter().zip(&self.roles) {
            if r & role::OBSERVATION == 0 {
                continue;
            }
            if !vs.text.is_empty() {
                return None;
            }
            codes.extend(vs.codes.iter().map(|(_, code)| code.as_str()));
        }
        Some(codes)
    }
}
