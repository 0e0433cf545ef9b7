//! Bulk Data `$export` over HTTP: kick-off (`Prefer: respond-async`), status
//! polls (202 with `X-Progress` / `Retry-After`, then the manifest), file
//! downloads (redirects followed by hand, the token only ever sent to the
//! base's origin) and cancellation (DELETE). What to export and where the
//! files go is [`crate::sync`]'s business.

use std::time::Duration;

use reqwest::header::{CONTENT_LOCATION, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::retry::retry_after;
use super::{ClientError, Failure, FhirClient, Reject, Req};

/// Which resources an export covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkLevel {
    /// `[base]/$export`: the whole server.
    System,
    /// `[base]/Patient/$export`: every patient's compartment.
    Patient,
    /// `[base]/Group/ID/$export`: the group members' compartments.
    Group(String),
}

/// A status poll's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkPoll {
    /// Still running (202): the server's `X-Progress` text and `Retry-After`.
    Running {
        /// `X-Progress`, if sent.
        progress: Option<String>,
        /// `Retry-After`, if sent.
        retry_after: Option<Duration>,
    },
    /// Done (200): the manifest.
    Done(Value),
}

/// A downloaded NDJSON file.
#[derive(Debug, Clone, Default)]
pub struct Download {
    /// One value per non-empty line.
    pub resources: Vec<Value>,
}

const MAX_REDIRECTS: usize = 5;

impl FhirClient {
    /// Starts an export (GET with `Prefer: respond-async`); returns the status URL (`Content-Location`).
    pub async fn bulk_kick_off(&self, level: &BulkLevel, params: &[(&str, String)]) -> Result<String, ClientError> {
        let path = match level {
            BulkLevel::System => "$export".to_string(),
            BulkLevel::Patient => "Patient/$export".to_string(),
            BulkLevel::Group(id) => format!("Group/{id}/$export"),
        };
        let req = Req {
            prefer_async: true,
            ..Req::get(self.url(&path, params), "Bulk export kick-off")
        };
        self.send(&req, |raw| {
            if raw.status != StatusCode::ACCEPTED {
                return Err(Reject::Fatal(Failure::NotAccepted {
                    status: raw.status.as_u16(),
                }));
            }
            raw.headers
                .get(CONTENT_LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .ok_or(Reject::Fatal(Failure::NoContentLocation))
        })
        .await
    }

    /// Polls a status URL once (transient failures retried).
    pub async fn bulk_poll(&self, status_url: &str) -> Result<BulkPoll, ClientError> {
        let url = self.absolute(status_url, "Bulk export status")?;
        self.send(&Req::get(url, "Bulk export status"), |raw| {
            if raw.status == StatusCode::ACCEPTED {
                let progress = raw
                    .headers
                    .get("x-progress")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                return Ok(BulkPoll::Running {
                    progress,
                    retry_after: retry_after(&raw.headers),
                });
            }
            if raw.status != StatusCode::OK {
                return Err(Reject::Fatal(Failure::Unexpected {
                    status: raw.status.as_u16(),
                }));
            }
            let manifest: Value =
                serde_json::from_slice(&raw.body).map_err(|source| Reject::Retry(Failure::Manifest { source }))?;
            if manifest["output"].is_array() {
                Ok(BulkPoll::Done(manifest))
            } else {
                Err(Reject::Retry(Failure::NoOutput))
            }
        })
        .await
    }

    /// Cancels an export, or tells the server its files are no longer needed (DELETE on the status URL).
    pub async fn bulk_cancel(&self, status_url: &str) -> Result<(), ClientError> {
        let url = self.absolute(status_url, "Bulk export cancel")?;
        let req = Req {
            method: Method::DELETE,
            ..Req::get(url, "Bulk export cancel")
        };
        self.send(&req, |_| Ok(())).await
    }

    /// Downloads one NDJSON file; the token goes only to the base's origin and only
    /// when `with_token`; redirects are followed (at most 5). A body whose line count
    /// differs from `expected`, or with a line that is not JSON, is retried.
    pub async fn bulk_download(
        &self,
        file_url: &str,
        with_token: bool,
        expected: Option<u64>,
    ) -> Result<Download, ClientError> {
        let what = "Bulk file download";
        let mut url = self.absolute(file_url, what)?;
        for _ in 0..=MAX_REDIRECTS {
            let req = Req {
                accept: "application/fhir+ndjson",
                auth: with_token,
                ..Req::get(url.clone(), what)
            };
            let got = self
                .send(&req, |raw| {
                    if raw.status.is_redirection() {
                        let to = raw.headers.get(LOCATION).and_then(|v| v.to_str().ok());
                        let to = to.and_then(|l| url.join(l).ok());
                        return to.map(Got::Redirect).ok_or(Reject::Fatal(Failure::NoLocation));
                    }
                    parse_ndjson(&raw.body, expected).map(Got::File).map_err(Reject::Retry)
                })
                .await?;
            match got {
                Got::File(resources) => return Ok(Download { resources }),
                Got::Redirect(to) => url = to,
            }
        }
        Err(ClientError::GaveUp {
            what: what.to_string(),
            attempts: 1,
            reason: Failure::TooManyRedirects { max: MAX_REDIRECTS },
        })
    }

    fn absolute(&self, url: &str, what: &str) -> Result<Url, ClientError> {
        self.inner.base.join(url).map_err(|_| ClientError::GaveUp {
            what: what.to_string(),
            attempts: 1,
            reason: Failure::BadUrl,
        })
    }
}

enum Got {
    Redirect(Url),
    File(Vec<Value>),
}

/// NDJSON lines as values; a line that is not a JSON object, or a count other than `expected`, is a failure.
fn parse_ndjson(body: &[u8], expected: Option<u64>) -> Result<Vec<Value>, Failure> {
    let mut out = Vec::new();
    for (i, line) in body.split(|b| *b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(v) if v.is_object() => out.push(v),
            _ => return Err(Failure::NdjsonLine { line: i + 1 }),
        }
    }
    match expected {
        Some(n) if n != out.len() as u64 => Err(Failure::NdjsonCount {
            got: out.len(),
            expected: n,
        }),
        _ => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_lines_are_checked_against_the_manifest_count() {
        let body = b"{\"resourceType\":\"Patient\",\"id\":\"a\"}\n\n{\"resourceType\":\"Patient\",\"id\":\"b\"}\n";
        assert_eq!(parse_ndjson(body, Some(2)).unwrap().len(), 2);
        assert_eq!(parse_ndjson(body, None).unwrap().len(), 2);
        assert!(parse_ndjson(body, Some(3))
            .unwrap_err()
            .to_string()
            .contains("announces 3"));
        let cut = &body[..50];
        assert!(
            matches!(parse_ndjson(cut, None), Err(Failure::NdjsonLine { line: 3 })),
            "the cut line is named"
        );
    }
}
