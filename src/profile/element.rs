//! Element definitions as the validator reads them from a snapshot.

use serde_json::Value;

/// One type an element may have.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeRef {
    /// FHIR type code (`Quantity`, `dateTime`, `Reference`).
    pub code: String,
    /// For a Reference: allowed target profiles (canonical URLs).
    pub target_profiles: Vec<String>,
}

/// One snapshot element.
#[derive(Debug, Clone, PartialEq)]
pub struct ElementDef {
    /// Its path (`Observation.value[x].unit`).
    pub path: String,
    /// Minimum cardinality.
    pub min: u32,
    /// Maximum cardinality; `None` for `*`.
    pub max: Option<u32>,
    /// Allowed types.
    pub types: Vec<TypeRef>,
    /// `fixed[x]`: the JSON value it must equal.
    pub fixed: Option<Value>,
    /// `pattern[x]`: the JSON value it must contain.
    pub pattern: Option<Value>,
    /// Value set of a required binding.
    pub required_binding: Option<String>,
    /// The element whose children this one has (`contentReference`).
    pub content_reference: Option<String>,
    /// True when the base element repeats: FHIR JSON then needs an array,
    /// whatever the profile's max.
    pub array: bool,
}

impl ElementDef {
    /// Reads a snapshot element (`None` when it has no path).
    pub fn from_json(e: &Value) -> Option<Self> {
        let path = e["path"].as_str()?.to_string();
        let max = match e["max"].as_str() {
            Some("*") | None => None,
            Some(m) => m.parse().ok(),
        };
        let types = e["type"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some(TypeRef {
                    code: t["code"].as_str()?.to_string(),
                    target_profiles: strings(&t["targetProfile"]),
                })
            })
            .collect();
        let obj = e.as_object()?;
        let prefixed = |prefix: &str| {
            obj.iter()
                .find(|(k, _)| k.starts_with(prefix) && k.len() > prefix.len())
                .map(|(_, v)| v.clone())
        };
        let binding = &e["binding"];
        let required_binding = (binding["strength"] == "required")
            .then(|| {
                binding["valueSet"]
                    .as_str()
                    .map(|s| s.split('|').next().unwrap_or(s).to_string())
            })
            .flatten();
        Some(Self {
            path,
            min: e["min"].as_u64().and_then(|m| u32::try_from(m).ok()).unwrap_or(0),
            max,
            types,
            fixed: prefixed("fixed"),
            pattern: prefixed("pattern"),
            required_binding,
            content_reference: e["contentReference"]
                .as_str()
                .map(|s| s.trim_start_matches('#').to_string()),
            array: !matches!(e["base"]["max"].as_str().or(e["max"].as_str()), Some("1") | Some("0")),
        })
    }

    /// The last segment of the path (`value[x]`).
    pub fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }

    /// True when FHIR JSON holds the element as an array.
    pub fn repeats(&self) -> bool {
        self.array
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}
