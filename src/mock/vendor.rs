//! Vendor profiles: what an Epic, Oracle Health (Cerner), HAPI or plain server
//! does differently (prior-art §2, §11), and the CapabilityStatement each one
//! publishes. Every quirk is a method here, so the request handlers ask instead
//! of matching on the vendor themselves.

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Value};

use super::store::Store;
use super::Config;

/// Which real server the mock behaves like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Vendor {
    /// A plain FHIR R4 server: strict about unknown parameters.
    #[default]
    Generic,
    /// Epic: Observation search needs `category`; no MedicationStatement; no `code` on
    /// MedicationRequest; `_include` ignored; no `_lastUpdated` (400); unknown parameters ignored.
    Epic,
    /// Oracle Health (Cerner): bulk files answer 307 to another origin; fatal errors
    /// (bad parameter values, unsupported types) come back as 500; unknown parameters ignored.
    Cerner,
    /// HAPI FHIR: random bulk file names (`Binary/…`), `_lastUpdated` supported, strict.
    Hapi,
}

impl Vendor {
    /// All vendors.
    pub const ALL: [Vendor; 4] = [Vendor::Generic, Vendor::Epic, Vendor::Cerner, Vendor::Hapi];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Generic => "generic",
            Vendor::Epic => "epic",
            Vendor::Cerner => "cerner",
            Vendor::Hapi => "hapi",
        }
    }

    /// Whether this vendor serves the resource type at all (Epic has no R4 MedicationStatement).
    pub fn serves(self, rtype: &str) -> bool {
        !(self == Vendor::Epic && rtype == "MedicationStatement")
    }

    /// Whether unknown search parameters are ignored (else 400).
    pub fn ignores_unknown_params(self) -> bool {
        matches!(self, Vendor::Epic | Vendor::Cerner)
    }

    /// Whether this vendor has a search parameter for a type (Epic's MedicationRequest has no `code`).
    pub fn has_param(self, rtype: &str, param: &str) -> bool {
        super::params::applies(param, rtype)
            && !(self == Vendor::Epic && rtype == "MedicationRequest" && param == "code")
    }

    /// Whether `_lastUpdated` is supported (Epic answers 400).
    pub fn supports_last_updated(self) -> bool {
        self != Vendor::Epic
    }

    /// Whether `_include` is honoured (Epic ignores it).
    pub fn honours_include(self) -> bool {
        self != Vendor::Epic
    }

    /// Search parameters this vendor requires for a type (Epic: Observation needs `category`).
    pub fn required_params(self, rtype: &str) -> &'static [&'static str] {
        match (self, rtype) {
            (Vendor::Epic, "Observation") => &["category"],
            _ => &[],
        }
    }

    /// The status of a request the server cannot process (Cerner hides these as 500).
    pub fn fatal_status(self, usual: u16) -> u16 {
        if self == Vendor::Cerner {
            500
        } else {
            usual
        }
    }

    /// Whether bulk file downloads redirect (307) to a storage origin.
    pub fn redirects_downloads(self) -> bool {
        self == Vendor::Cerner
    }

    /// Whether bulk files get random-looking names (HAPI's `Binary/…`).
    pub fn random_file_names(self) -> bool {
        self == Vendor::Hapi
    }

    /// The search parameters published for a type.
    pub fn search_params(self, rtype: &str) -> Vec<&'static str> {
        let mut params = vec!["_id", "_count"];
        if self.supports_last_updated() {
            params.push("_lastUpdated");
        }
        for p in ["patient", "subject", "code", "category"] {
            if self.has_param(rtype, p) {
                params.push(p);
            }
        }
        params
    }

    /// The CapabilityStatement for the served types.
    pub fn capability_statement<'a>(
        self,
        base: &str,
        types: impl Iterator<Item = &'a str>,
        token_url: Option<&str>,
    ) -> Value {
        let resources: Vec<Value> = types
            .filter(|t| self.serves(t))
            .map(|t| {
                let params: Vec<Value> = self
                    .search_params(t)
                    .into_iter()
                    .map(|p| json!({"name": p, "type": param_type(p)}))
                    .collect();
                let mut r = json!({
                    "type": t,
                    "interaction": [{"code": "read"}, {"code": "search-type"}, {"code": "create"}, {"code": "update"}, {"code": "delete"}],
                    "versioning": "versioned",
                    "conditionalCreate": true,
                    "searchParam": params,
                });
                if t == "MedicationRequest" && self.honours_include() {
                    r["searchInclude"] = json!(["MedicationRequest:medication"]);
                }
                r
            })
            .collect();
        let mut rest = json!({
            "mode": "server",
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
            "operation": [
                {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
                {"name": "patient-export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"},
                {"name": "group-export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}
            ],
        });
        if let Some(token) = token_url {
            rest["security"] = json!({
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "token", "valueUri": token}]
                }]
            });
        }
        json!({
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": "2024-01-01",
            "kind": "instance",
            "software": {"name": format!("imnm mock EHR ({self})")},
            "implementation": {"description": "imnm mock EHR", "url": base},
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json", "application/json"],
            "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
            "rest": [rest],
        })
    }
}

fn param_type(p: &str) -> &'static str {
    match p {
        "_lastUpdated" => "date",
        "_count" => "number",
        "patient" | "subject" => "reference",
        _ => "token",
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Vendor {
    type Err = super::MockError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Vendor::ALL
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| super::MockError::UnknownVendor { name: s.to_string() })
    }
}

/// The types listed in the CapabilityStatement: those in the data, for this vendor.
pub fn served_types(cfg: &Config, store: &Store) -> Vec<String> {
    store
        .types()
        .filter(|t| cfg.vendor.serves(t))
        .map(str::to_string)
        .collect()
}
