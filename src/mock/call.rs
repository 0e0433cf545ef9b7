//! A request as the handlers see it ([`Call`]) and their answer before it
//! becomes a wiremock template ([`Reply`]). Every handler module uses these;
//! this file uses no other part of the mock.

use serde_json::{json, Value};
use wiremock::Request;

/// The FHIR JSON media type every answer uses.
pub const FHIR_JSON: &str = "application/fhir+json";

/// A response before it becomes a wiremock template.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Content type (empty for no body).
    pub mime: &'static str,
}

impl Reply {
    /// A FHIR JSON body.
    pub fn json(status: u16, body: &Value) -> Self {
        Reply::json_bytes(status, body.to_string().into_bytes())
    }

    /// A FHIR JSON body already serialized.
    pub fn json_bytes(status: u16, body: Vec<u8>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body,
            mime: FHIR_JSON,
        }
    }

    /// A plain JSON body (OAuth endpoints).
    pub fn plain_json(status: u16, body: &Value) -> Self {
        Reply {
            mime: "application/json",
            ..Reply::json(status, body)
        }
    }

    /// An OperationOutcome with one error issue.
    pub fn outcome(status: u16, code: &str, message: &str) -> Self {
        let severity = if status < 400 { "information" } else { "error" };
        Reply::json(
            status,
            &json!({"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": code, "diagnostics": message}]}),
        )
    }

    /// No body.
    pub fn empty(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            mime: "",
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A request as the handlers see it.
pub struct Call<'a> {
    /// HTTP method, upper case.
    pub method: &'a str,
    /// Path segments (percent-decoded as the URL gives them).
    pub segments: Vec<&'a str>,
    /// Query parameters, then form parameters of a `_search` or token POST.
    pub params: Vec<(String, String)>,
    /// The raw request.
    pub req: &'a Request,
}

impl Call<'_> {
    /// A request header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.req.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The first value of a parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}
