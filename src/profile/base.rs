//! The compact FHIR R4 base table (`profiles/base/r4-elements.json`): every
//! element of the resources and datatypes the IMNM profiles use, and the codes
//! of the base's required value sets. Derived from the official R4 definitions
//! by `profiles/tools/extract_base.py` (its header names the source).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The base table as stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseTable {
    /// Where it was derived from.
    pub source: String,
    /// Element lists by type name (`Observation`, `Quantity`, …).
    pub types: BTreeMap<String, BaseType>,
    /// Codes of the base's required value sets, by canonical URL.
    pub value_sets: BTreeMap<String, Vec<String>>,
}

/// One type's elements, in definition order (the type's own root left out).
#[derive(Debug, Clone, Deserialize)]
pub struct BaseType {
    /// `resource`, `complex-type`.
    pub kind: String,
    /// The elements.
    pub elements: Vec<BaseElement>,
}

/// One element of the base.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BaseElement {
    /// Its path (`Observation.value[x]`).
    pub path: String,
    /// Minimum cardinality.
    pub min: u32,
    /// Maximum cardinality (`1`, `*`).
    pub max: String,
    /// Type codes (`string` for FHIRPath system strings).
    #[serde(default)]
    pub types: Vec<String>,
    /// Reference targets (resource type names).
    #[serde(default)]
    pub targets: Vec<String>,
    /// The element whose definition this one reuses (`Observation.referenceRange`).
    pub content_reference: Option<String>,
    /// The value set of a required binding.
    pub value_set: Option<String>,
}

impl BaseTable {
    /// The table built into the binary.
    pub fn builtin() -> Result<Self, serde_json::Error> {
        serde_json::from_str(include_str!("../../profiles/base/r4-elements.json"))
    }

    /// The elements of `type_name`, if the table has it.
    pub fn elements(&self, type_name: &str) -> Option<&[BaseElement]> {
        self.types.get(type_name).map(|t| t.elements.as_slice())
    }
}
