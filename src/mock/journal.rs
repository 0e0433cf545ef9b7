//! The request journal: one entry per request the mock answered, for tests to
//! assert on and for `imnm mock-ehr --journal` to write as NDJSON. It holds
//! parameter names but never their values, and never a token: only whether an
//! `Authorization` header was sent.

use serde::{Deserialize, Serialize};

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// 1-based order of arrival (over both servers).
    pub seq: u64,
    /// `ehr` (the FHIR base) or `storage` (Cerner-style file storage on another origin).
    pub server: String,
    /// The HTTP method.
    pub method: String,
    /// The URL path (no query).
    pub path: String,
    /// The query and form parameter names, in order (values are never kept).
    pub params: Vec<String>,
    /// The status answered.
    pub status: u16,
    /// The fault injected, if any (`429`, `503`, `truncate`, `drop`, …).
    pub fault: Option<String>,
    /// Whether the request carried an `Authorization` header.
    pub authorization: bool,
}
