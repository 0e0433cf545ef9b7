//! FHIR search over the store: parsing the parameters a vendor accepts,
//! matching resources, and building searchset Bundles with stable, opaque
//! paging links. It reads the store and never writes it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::clock::{self, Instant};
use super::params::token_fields;
use super::store::{Store, Stored};
use super::vendor::Vendor;

/// Default page size when `_count` is absent.
pub const DEFAULT_COUNT: usize = 50;
/// Largest page served.
pub const MAX_COUNT: usize = 1000;

/// Parameters every server accepts and that change nothing here.
const HARMLESS: &[&str] = &["_format", "_pretty", "_total"];

/// Why a search is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// An unknown or unsupported parameter (its name only).
    Unknown(String),
    /// A parameter whose value cannot be used.
    Invalid { name: String, reason: &'static str },
    /// A parameter the vendor requires is missing.
    Missing(&'static str),
}

impl Refusal {
    /// The message for the OperationOutcome (names only, never values).
    pub fn message(&self) -> String {
        match self {
            Refusal::Unknown(n) => format!("unknown or unsupported search parameter '{n}'"),
            Refusal::Invalid { name, reason } => format!("invalid value for '{name}': {reason}"),
            Refusal::Missing(n) => format!("this server requires the '{n}' parameter for this search"),
        }
    }
}

/// A token search value: `system|code`, `code`, `|code` or `system|`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    system: Option<String>,
    code: Option<String>,
}

/// A parsed search.
#[derive(Debug, Clone, Default)]
pub struct Criteria {
    ids: Option<Vec<String>>,
    patients: Option<Vec<String>>,
    tokens: Vec<(&'static str, Vec<Token>)>,
    identifiers: Vec<Vec<Token>>,
    updated: Vec<(String, (Instant, Instant))>,
    /// Page size.
    pub count: usize,
    /// `_include=MedicationRequest:medication` was asked for and is honoured.
    pub include_medication: bool,
}

/// Parses `params` for a search on `rtype` as `vendor` would.
pub fn parse(vendor: Vendor, rtype: &str, params: &[(String, String)]) -> Result<Criteria, Refusal> {
    let mut c = Criteria {
        count: DEFAULT_COUNT,
        ..Criteria::default()
    };
    for required in vendor.required_params(rtype) {
        if !params.iter().any(|(n, _)| n == required) {
            return Err(Refusal::Missing(required));
        }
    }
    for (name, value) in params {
        let list = || value.split(',').map(str::trim).filter(|v| !v.is_empty());
        match name.as_str() {
            "identifier" => c.identifiers.push(list().map(parse_token).collect()),
            "_id" => c.ids.get_or_insert_with(Vec::new).extend(list().map(str::to_string)),
            "patient" | "subject" if vendor.has_param(rtype, name) => c
                .patients
                .get_or_insert_with(Vec::new)
                .extend(list().map(|v| v.rsplit('/').next().unwrap_or(v).to_string())),
            "code" | "category" if vendor.has_param(rtype, name) => {
                let field = if name == "code" { "code" } else { "category" };
                c.tokens.push((field, list().map(parse_token).collect()));
            }
            "_lastUpdated" if vendor.supports_last_updated() => c.updated.push(parse_date(name, value)?),
            "_lastUpdated" => return Err(Refusal::Unknown(name.clone())),
            "_count" => {
                let n: usize = value.trim().parse().map_err(|_| Refusal::Invalid {
                    name: name.clone(),
                    reason: "not a whole number",
                })?;
                c.count = n.clamp(1, MAX_COUNT);
            }
            "_include" => {
                if value != "MedicationRequest:medication" || rtype != "MedicationRequest" {
                    if !vendor.ignores_unknown_params() {
                        return Err(Refusal::Invalid {
                            name: name.clone(),
                            reason: "only MedicationRequest:medication is supported",
                        });
                    }
                } else {
                    c.include_medication = vendor.honours_include();
                }
            }
            n if HARMLESS.contains(&n) => {}
            _ if vendor.ignores_unknown_params() => {}
            _ => return Err(Refusal::Unknown(name.clone())),
        }
    }
    Ok(c)
}

fn parse_token(v: &str) -> Token {
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    match v.split_once('|') {
        Some((system, code)) => Token {
            system: Some(system.to_string()),
            code: opt(code),
        },
        None => Token {
            system: None,
            code: opt(v),
        },
    }
}

fn parse_date(name: &str, value: &str) -> Result<(String, (Instant, Instant)), Refusal> {
    let (prefix, rest) = match value.get(..2) {
        Some(p @ ("gt" | "ge" | "lt" | "le" | "eq")) => (p, &value[2..]),
        _ => ("eq", value),
    };
    let range = clock::parse_range(rest).ok_or_else(|| Refusal::Invalid {
        name: name.to_string(),
        reason: "not a FHIR date or dateTime",
    })?;
    Ok((prefix.to_string(), range))
}

impl Criteria {
    /// Whether `stored` matches every criterion.
    pub fn matches(&self, stored: &Stored) -> bool {
        let r = &stored.value;
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
        if self.ids.as_ref().is_some_and(|ids| !ids.iter().any(|i| i == id)) {
            return false;
        }
        if let Some(patients) = &self.patients {
            if !super::store::patient_ids(r).any(|id| patients.iter().any(|p| p == id)) {
                return false;
            }
        }
        let rtype = r.get("resourceType").and_then(Value::as_str).unwrap_or_default();
        for (param, wanted) in &self.tokens {
            let codings = codings(r, token_fields(param, rtype));
            if !wanted.iter().any(|t| codings.iter().any(|c| token_hits(t, c))) {
                return false;
            }
        }
        for wanted in &self.identifiers {
            let ids: Vec<Value> = r["identifier"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| serde_json::json!({"system": i.get("system"), "code": i.get("value")}))
                .collect();
            if !wanted.iter().any(|t| ids.iter().any(|i| token_hits(t, i))) {
                return false;
            }
        }
        self.updated.iter().all(|(prefix, (start, end))| {
            let t = stored.updated;
            match prefix.as_str() {
                "gt" => t >= *end,
                "ge" => t >= *start,
                "lt" => t < *start,
                "le" => t < *end,
                _ => t >= *start && t < *end,
            }
        })
    }
}

fn codings<'a>(r: &'a Value, fields: &[&str]) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for f in fields {
        let concepts: Vec<&Value> = match r.get(*f) {
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
            None => vec![],
        };
        for c in concepts {
            if let Some(Value::Array(list)) = c.get("coding") {
                out.extend(list.iter());
            }
        }
    }
    out
}

fn token_hits(t: &Token, coding: &Value) -> bool {
    let system = coding.get("system").and_then(Value::as_str);
    let code = coding.get("code").and_then(Value::as_str);
    let system_ok = match t.system.as_deref() {
        None => true,
        Some("") => system.is_none(),
        Some(s) => system == Some(s),
    };
    system_ok && t.code.as_deref().is_none_or(|c| code == Some(c))
}

/// What the opaque `next` link carries: the search and where the page starts.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PageToken {
    /// The resource type searched.
    pub t: String,
    /// The search parameters.
    pub q: Vec<(String, String)>,
    /// Index of the page's first match.
    pub o: usize,
}

impl PageToken {
    /// The token as it appears in a link.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Reads a token from a link; `None` when it is not one of ours.
    pub fn decode(s: &str) -> Option<Self> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()
    }
}

/// One page of a search.
pub struct Page<'a> {
    /// The base URL.
    pub base: &'a str,
    /// Where this page starts and what was searched.
    pub token: PageToken,
    /// Repeat the previous page's last match at the top (the `repeat-last` fault).
    pub repeat_previous: bool,
}

/// A searchset Bundle as it is written: resources go out as the text the store
/// keeps (no JSON tree is built per answer).
#[derive(serde::Serialize)]
struct Searchset<'a> {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    meta: Value,
    total: usize,
    link: Vec<Value>,
    entry: Vec<Entry<'a>>,
}

#[derive(serde::Serialize)]
struct Entry<'a> {
    #[serde(rename = "fullUrl")]
    full_url: String,
    resource: &'a RawValue,
    search: Value,
}

impl Page<'_> {
    /// The searchset Bundle for this page, serialized.
    pub fn bundle(&self, store: &Store, criteria: &Criteria) -> Vec<u8> {
        let candidates: Vec<&Stored> = match &criteria.patients {
            Some(patients) => store.of_patients(&self.token.t, patients),
            None => store.all(&self.token.t).collect(),
        };
        let matches: Vec<&Stored> = candidates.into_iter().filter(|s| criteria.matches(s)).collect();
        let start = self.token.o.min(matches.len());
        let end = (start + criteria.count).min(matches.len());
        let from = if self.repeat_previous && start > 0 {
            start - 1
        } else {
            start
        };
        let page = &matches[from..end];
        let mut entries: Vec<Entry<'_>> = page.iter().map(|s| self.entry(s, "match")).collect();
        if criteria.include_medication {
            let mut seen = std::collections::BTreeSet::new();
            for s in page {
                let reference = s
                    .value
                    .pointer("/medicationReference/reference")
                    .and_then(Value::as_str);
                let Some(id) = reference.and_then(|r| r.strip_prefix("Medication/")) else {
                    continue;
                };
                if let (true, Some(m)) = (seen.insert(id), store.get("Medication", id)) {
                    entries.push(self.entry(m, "include"));
                }
            }
        }
        let self_url = if self.token.o == 0 {
            format!("{}/{}{}", self.base, self.token.t, query_string(&self.token.q))
        } else {
            self.page_url(&self.token)
        };
        let mut link = vec![json!({"relation": "self", "url": self_url})];
        if end < matches.len() {
            let next = PageToken {
                o: end,
                ..self.token.clone()
            };
            link.push(json!({"relation": "next", "url": self.page_url(&next)}));
        }
        let bundle = Searchset {
            resource_type: "Bundle",
            kind: "searchset",
            meta: json!({"lastUpdated": super::clock::format(store.now)}),
            total: matches.len(),
            link,
            entry: entries,
        };
        serde_json::to_vec(&bundle).unwrap_or_default()
    }

    fn entry<'s>(&self, s: &'s Stored, mode: &str) -> Entry<'s> {
        let r = &s.value;
        let rtype = r.get("resourceType").and_then(Value::as_str).unwrap_or_default();
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
        Entry {
            full_url: format!("{}/{rtype}/{id}", self.base),
            resource: &s.raw,
            search: json!({"mode": mode}),
        }
    }

    fn page_url(&self, token: &PageToken) -> String {
        format!("{}/_page?token={}", self.base, token.encode())
    }
}

fn query_string(params: &[(String, String)]) -> String {
    if params.is_empty() {
        return String::new();
    }
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    format!("?{}", s.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn tokens_match_system_code_and_bare_forms() {
        let coding = json!({"system": "http://loinc.org", "code": "2157-6"});
        assert!(token_hits(&parse_token("http://loinc.org|2157-6"), &coding));
        assert!(token_hits(&parse_token("2157-6"), &coding));
        assert!(token_hits(&parse_token("http://loinc.org|"), &coding));
        assert!(!token_hits(&parse_token("|2157-6"), &coding));
        assert!(token_hits(&parse_token("|x"), &json!({"code": "x"})));
    }

    #[test]
    fn vendors_refuse_or_ignore_what_real_servers_do() {
        let unknown = p(&[("_sort", "date")]);
        assert_eq!(
            parse(Vendor::Generic, "Condition", &unknown).unwrap_err(),
            Refusal::Unknown("_sort".into())
        );
        assert!(parse(Vendor::Epic, "Condition", &unknown).is_ok());
        assert_eq!(
            parse(Vendor::Epic, "Observation", &p(&[("patient", "x")])).unwrap_err(),
            Refusal::Missing("category")
        );
        assert!(parse(Vendor::Epic, "Condition", &p(&[("_lastUpdated", "gt2024")])).is_err());
        assert!(parse(Vendor::Hapi, "Condition", &p(&[("_lastUpdated", "gt2024")])).is_ok());
    }
}
