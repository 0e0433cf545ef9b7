//! The client's errors: [`ClientError`] (why a request or the client's setup
//! failed for good) and the structured reasons it carries ([`Failure`] for an
//! attempt without a usable answer, [`JwksProblem`] and [`SigningProblem`] for
//! SMART keys). Transport failures keep reqwest's error as their `source()`
//! with its URL removed (a query may name a patient), so callers can ask
//! [`ClientError::is_timeout`] or [`ClientError::is_connect`].

/// Why a request failed for good.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The base URL does not parse.
    #[error("client configuration: the base URL is not a URL: {source}")]
    BaseUrl {
        /// The URL parser's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The base URL's scheme is not http or https.
    #[error("client configuration: the base URL must be http or https")]
    BaseScheme {
        /// The scheme given.
        scheme: String,
    },
    /// The HTTP client cannot be built (TLS setup).
    #[error("client configuration: HTTP client: {source}")]
    HttpClient {
        /// reqwest's error, without a URL.
        source: reqwest::Error,
    },
    /// The environment variable that should hold the bearer token is unset or empty.
    #[error("client configuration: environment variable {var} is unset or empty (it should hold the bearer token)")]
    TokenVar {
        /// The variable's name.
        var: String,
    },
    /// A SMART key (PEM) cannot be used.
    #[error("client configuration: the SMART key is not usable: {source}")]
    SmartKey {
        /// jsonwebtoken's error.
        source: jsonwebtoken::errors::Error,
    },
    /// A SMART JWK Set cannot be used.
    #[error("client configuration: the SMART JWKS is not usable: {problem}")]
    SmartJwks {
        /// What is wrong with it.
        #[source]
        problem: JwksProblem,
    },
    /// A SMART key cannot be made or the assertion cannot be signed.
    #[error("client configuration: {problem}")]
    Signing {
        /// What failed.
        #[source]
        problem: SigningProblem,
    },
    /// The server refused the request (a status that retrying does not fix, or
    /// retries ran out), with the server's OperationOutcome text when it sent one.
    #[error("{what}: HTTP {status}{}", outcome_suffix(.outcome))]
    Status {
        /// What was asked, e.g. "Observation search".
        what: String,
        /// The last HTTP status.
        status: u16,
        /// The OperationOutcome's diagnostics/details text, or empty.
        outcome: String,
    },
    /// No usable answer after every retry (connection errors, truncated or unparsable bodies).
    #[error("{what}: no usable answer after {attempts} attempts: {reason}")]
    GaveUp {
        /// What was asked.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure (without the URL).
        #[source]
        reason: Failure,
    },
    /// A `next` link points to another origin than the base URL: not followed.
    #[error("{what}: the server's next link points to another origin; not followed")]
    ForeignOrigin {
        /// What was asked.
        what: String,
    },
    /// The server's paging goes round: a `next` link back to a page already
    /// read, or a page repeating the one before. The search stops there.
    #[error("{what}: the server's paging repeats itself (a next link back to a page already read, or the same page again); stopped")]
    PagingLoop {
        /// What was asked.
        what: String,
    },
}

/// Why one attempt (or the last one) gave no usable answer. Transport errors
/// keep reqwest's error as the source (its URL removed), so `is_timeout()` and
/// `is_connect()` can be asked.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The request could not be sent or its body not received (connection, timeout, TLS).
    #[error("{source}")]
    Transport {
        /// reqwest's error, without the URL.
        source: reqwest::Error,
    },
    /// A transient status (retried).
    #[error("HTTP {status}")]
    Status {
        /// The status.
        status: u16,
    },
    /// A status the request does not expect.
    #[error("unexpected HTTP {status}")]
    Unexpected {
        /// The status.
        status: u16,
    },
    /// A body that is not JSON.
    #[error("unparsable body: {source}")]
    Body {
        /// The JSON parser's error.
        source: serde_json::Error,
    },
    /// A search answer that is not a Bundle.
    #[error("the answer is not a Bundle")]
    NotABundle,
    /// A Bulk Data kick-off answered with another status than 202.
    #[error("expected 202 Accepted, got HTTP {status}")]
    NotAccepted {
        /// The status.
        status: u16,
    },
    /// A Bulk Data kick-off's 202 without a `Content-Location`.
    #[error("the 202 has no Content-Location")]
    NoContentLocation,
    /// A Bulk Data manifest that is not JSON.
    #[error("unparsable manifest: {source}")]
    Manifest {
        /// The JSON parser's error.
        source: serde_json::Error,
    },
    /// A Bulk Data manifest without an `output` array.
    #[error("the manifest has no output array")]
    NoOutput,
    /// A redirect without a `Location` that resolves.
    #[error("a redirect without a usable Location")]
    NoLocation,
    /// More redirects than followed.
    #[error("more than {max} redirects")]
    TooManyRedirects {
        /// Redirects followed at most.
        max: usize,
    },
    /// A URL from the server (status or file URL) that does not parse.
    #[error("the server gave a URL that does not parse")]
    BadUrl,
    /// An NDJSON line that is not a JSON object.
    #[error("line {line} is not a JSON object (truncated file?)")]
    NdjsonLine {
        /// 1-based line number.
        line: usize,
    },
    /// An NDJSON file with another line count than the manifest announces.
    #[error("{got} line(s) where the manifest announces {expected} (truncated file?)")]
    NdjsonCount {
        /// Lines read.
        got: usize,
        /// Lines announced.
        expected: u64,
    },
    /// The SMART configuration (`.well-known/smart-configuration`) is not JSON.
    #[error("smart-configuration: {source}")]
    SmartConfiguration {
        /// reqwest's error, without the URL.
        source: reqwest::Error,
    },
    /// The SMART configuration names no token endpoint.
    #[error("smart-configuration has no token_endpoint")]
    NoTokenEndpoint,
    /// The client was closed while the request waited for its turn.
    #[error("client closed")]
    Closed,
}

impl Failure {
    /// A transport failure, the URL removed from reqwest's error.
    pub(crate) fn transport(e: reqwest::Error) -> Self {
        Failure::Transport {
            source: e.without_url(),
        }
    }

    fn reqwest(&self) -> Option<&reqwest::Error> {
        match self {
            Failure::Transport { source } | Failure::SmartConfiguration { source } => Some(source),
            _ => None,
        }
    }
}

/// Why a SMART JWK Set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksProblem {
    /// The file is not JSON.
    #[error("not JSON")]
    NotJson,
    /// No `keys` array.
    #[error("no 'keys' array")]
    NoKeys,
    /// No key with the `kid` asked for.
    #[error("no key with that kid")]
    NoKid,
    /// No key fits.
    #[error("no RS384 or ES384 key with private members")]
    NoUsableKey,
    /// The key asked for does not fit.
    #[error("the key is not an RS384/ES384 key with private members")]
    NotUsable,
    /// A member is missing.
    #[error("no '{member}' member")]
    MissingMember {
        /// The member (`d`, `n`, …).
        member: &'static str,
    },
    /// A member is not base64url.
    #[error("'{member}' is not base64url")]
    NotBase64 {
        /// The member.
        member: &'static str,
    },
    /// `d` is not a P-384 scalar.
    #[error("'d' is not a P-384 key")]
    NotP384,
    /// The RSA members do not make a key.
    #[error("the RSA members do not make a key: {source}")]
    RsaMembers {
        /// rsa's error.
        source: rsa::Error,
    },
    /// The EC key cannot be encoded (PKCS #8).
    #[error("{source}")]
    EcEncoding {
        /// The encoder's error.
        source: p384::pkcs8::Error,
    },
    /// The RSA key cannot be encoded (PKCS #1).
    #[error("{source}")]
    RsaEncoding {
        /// The encoder's error.
        source: rsa::pkcs1::Error,
    },
    /// `kty` is neither RSA nor EC.
    #[error("kty must be RSA or EC")]
    Kty,
}

/// Why a SMART key cannot be made or an assertion cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum SigningProblem {
    /// No randomness for a new key.
    #[error("no randomness: {source}")]
    KeyRandom {
        /// getrandom's error.
        source: getrandom::Error,
    },
    /// The new key cannot be encoded (PKCS #8).
    #[error("cannot encode the key: {source}")]
    KeyEncoding {
        /// The encoder's error.
        source: p384::pkcs8::Error,
    },
    /// No randomness for the assertion's `jti`.
    #[error("cannot sign the SMART assertion: no randomness for jti: {source}")]
    JtiRandom {
        /// getrandom's error.
        source: getrandom::Error,
    },
    /// The assertion cannot be signed.
    #[error("cannot sign the SMART assertion: {source}")]
    Sign {
        /// jsonwebtoken's error.
        source: jsonwebtoken::errors::Error,
    },
}

fn outcome_suffix(outcome: &str) -> String {
    if outcome.is_empty() {
        String::new()
    } else {
        format!(": {outcome}")
    }
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the client cannot be built or cannot authenticate as configured
    /// (a bad base URL, a missing token variable, an unusable SMART key).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            ClientError::BaseUrl { .. }
                | ClientError::BaseScheme { .. }
                | ClientError::HttpClient { .. }
                | ClientError::TokenVar { .. }
                | ClientError::SmartKey { .. }
                | ClientError::SmartJwks { .. }
                | ClientError::Signing { .. }
        )
    }

    /// Whether the last attempt timed out (reqwest's `is_timeout`).
    pub fn is_timeout(&self) -> bool {
        self.transport().is_some_and(reqwest::Error::is_timeout)
    }

    /// Whether the last attempt could not connect (reqwest's `is_connect`).
    pub fn is_connect(&self) -> bool {
        self.transport().is_some_and(reqwest::Error::is_connect)
    }

    /// The transport error of the last attempt, when it failed in transport.
    pub fn transport(&self) -> Option<&reqwest::Error> {
        match self {
            ClientError::GaveUp { reason, .. } => reason.reqwest(),
            ClientError::HttpClient { source } => Some(source),
            _ => None,
        }
    }
}
