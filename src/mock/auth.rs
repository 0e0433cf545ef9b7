//! SMART Backend Services for the mock: `/.well-known/smart-configuration`, the
//! `client_credentials` token endpoint that checks a JWT `client_assertion`
//! against the configured JWKS, and the Bearer check on every API request.
//! Tokens and assertions never leave this module: refusals name the rule
//! broken, never the token.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use super::call::{Call, Reply};
use super::clock::unix_now;
use super::faults::{mix, Fault};
use super::Config;

/// Longest assertion lifetime accepted (SMART: exp at most 5 minutes ahead), plus skew.
const MAX_ASSERTION_SECS: u64 = 300 + 10;

/// How the mock guards its API.
#[derive(Debug, Clone, Default)]
pub enum AuthConfig {
    /// Open: no token needed.
    #[default]
    None,
    /// SMART Backend Services with these registered keys and this client id.
    Smart {
        /// The client's public keys.
        keys: JwkSet,
        /// The registered client id (must be `iss` and `sub` of assertions).
        client_id: String,
    },
}

impl AuthConfig {
    /// Whether tokens are required.
    pub fn is_smart(&self) -> bool {
        matches!(self, AuthConfig::Smart { .. })
    }
}

/// Issued tokens and seen assertion ids.
#[derive(Debug, Default)]
pub struct AuthState {
    tokens: HashMap<String, Issued>,
    seen_jti: HashSet<String>,
    issued: u64,
}

#[derive(Debug)]
struct Issued {
    expires: Instant,
    uses: u32,
    scopes: Vec<String>,
}

/// `/.well-known/smart-configuration` (404 when the mock runs without auth).
pub fn smart_configuration(cfg: &Config) -> Reply {
    if !cfg.auth.is_smart() {
        return Reply::outcome(404, "not-found", "this server does not use SMART authorization");
    }
    Reply::plain_json(
        200,
        &json!({
            "issuer": cfg.base,
            "token_endpoint": cfg.token_url(),
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
            "grant_types_supported": ["client_credentials"],
            "scopes_supported": ["system/*.read", "system/*.rs"],
            "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
        }),
    )
}

fn oauth_error(error: &str, description: &str) -> Reply {
    Reply::plain_json(400, &json!({"error": error, "error_description": description}))
        .header("cache-control", "no-store")
}

/// The token endpoint (`POST {base}/auth/token`).
pub fn token(cfg: &Config, state: &mut AuthState, call: &Call<'_>) -> Reply {
    let AuthConfig::Smart { keys, client_id } = &cfg.auth else {
        return Reply::outcome(404, "not-found", "this server does not use SMART authorization");
    };
    if call.param("grant_type") != Some("client_credentials") {
        return oauth_error("unsupported_grant_type", "grant_type must be client_credentials");
    }
    if call.param("client_assertion_type") != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
        return oauth_error("invalid_request", "client_assertion_type must be jwt-bearer");
    }
    let Some(assertion) = call.param("client_assertion") else {
        return oauth_error("invalid_request", "client_assertion is missing");
    };
    let scope = call.param("scope").unwrap_or_default().trim().to_string();
    if scope.is_empty() || !scope.split_whitespace().all(valid_scope) {
        return oauth_error(
            "invalid_scope",
            "scopes must be SMART system scopes (v1 system/T.read or v2 system/T.rs)",
        );
    }
    let jti = match verify(keys, client_id, &cfg.token_url(), assertion) {
        Ok(jti) => jti,
        Err(why) => return oauth_error("invalid_client", why),
    };
    if !state.seen_jti.insert(jti) {
        return oauth_error("invalid_client", "the assertion's jti was already used");
    }
    state.issued += 1;
    let token = format!(
        "mock-{:016x}{:016x}",
        mix(cfg.faults.seed, "access-token", state.issued),
        mix(cfg.faults.seed ^ 1, "access-token", state.issued)
    );
    state.tokens.insert(
        token.clone(),
        Issued {
            expires: Instant::now() + cfg.token_lifetime,
            uses: 0,
            scopes: scope.split_whitespace().map(str::to_string).collect(),
        },
    );
    Reply::plain_json(
        200,
        &json!({"access_token": token, "token_type": "bearer", "expires_in": cfg.token_lifetime.as_secs(), "scope": scope}),
    )
    .header("cache-control", "no-store")
}

/// Checks the assertion; returns its jti, or why it is refused.
fn verify(keys: &JwkSet, client_id: &str, token_url: &str, assertion: &str) -> Result<String, &'static str> {
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| "client_assertion is not a JWT")?;
    if !matches!(header.alg, Algorithm::RS384 | Algorithm::ES384) {
        return Err("the assertion must be signed with RS384 or ES384");
    }
    let candidates = keys.keys.iter().filter(|k| {
        let kind_ok = matches!(
            (&k.algorithm, header.alg),
            (AlgorithmParameters::RSA(_), Algorithm::RS384) | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES384)
        );
        kind_ok && (header.kid.is_none() || k.common.key_id == header.kid)
    });
    let mut validation = Validation::new(header.alg);
    validation.leeway = 0;
    validation.set_audience(&[token_url]);
    validation.set_issuer(&[client_id]);
    validation.sub = Some(client_id.to_string());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let mut why = "no registered key matches the assertion's kid and algorithm";
    for jwk in candidates {
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        match jsonwebtoken::decode::<Value>(assertion, &key, &validation) {
            Ok(data) => return check_claims(&data.claims),
            Err(e) => why = describe(e.kind()),
        }
    }
    Err(why)
}

fn check_claims(claims: &Value) -> Result<String, &'static str> {
    let exp = claims.get("exp").and_then(Value::as_u64).ok_or("exp is missing")?;
    if exp > unix_now() + MAX_ASSERTION_SECS {
        return Err("exp is more than 5 minutes ahead");
    }
    claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())
        .map(str::to_string)
        .ok_or("jti is missing")
}

fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => "the assertion's signature does not verify with the registered keys",
        K::ExpiredSignature => "the assertion has expired",
        K::InvalidAudience => "aud must be the token endpoint URL",
        K::InvalidIssuer => "iss must be the client id",
        K::InvalidSubject => "sub must be the client id",
        K::MissingRequiredClaim(_) => "a required claim (exp, iss, sub, aud) is missing",
        _ => "the assertion cannot be verified",
    }
}

/// `system/` scopes, v1 (`system/*.read`) or v2 (`system/Observation.rs`, with an optional `?query`).
fn valid_scope(scope: &str) -> bool {
    let Some(rest) = scope.strip_prefix("system/") else {
        return false;
    };
    let rest = rest.split('?').next().unwrap_or(rest);
    let Some((rtype, perms)) = rest.split_once('.') else {
        return false;
    };
    let type_ok = rtype == "*" || (rtype.chars().next().is_some_and(|c| c.is_ascii_uppercase()));
    let v1 = matches!(perms, "read" | "write" | "*");
    let v2 = !perms.is_empty() && perms.chars().all(|c| "cruds".contains(c));
    type_ok && (v1 || v2)
}

/// The Bearer check for API requests: `Err` holds the 401 (and the fault when an
/// injected token expiry caused it).
pub fn check(cfg: &Config, state: &mut AuthState, call: &Call<'_>) -> Result<(), (Reply, Option<Fault>)> {
    if !cfg.auth.is_smart() {
        return Ok(());
    }
    let refuse = |error: Option<&str>, fault| {
        let challenge = match error {
            Some(e) => format!("Bearer realm=\"imnm-mock\", error=\"{e}\""),
            None => "Bearer realm=\"imnm-mock\"".to_string(),
        };
        Err((
            Reply::outcome(401, "login", "a valid access token is required").header("www-authenticate", challenge),
            fault,
        ))
    };
    let Some(token) = call.header("authorization").and_then(|h| h.strip_prefix("Bearer ")) else {
        return refuse(None, None);
    };
    let Some(issued) = state.tokens.get_mut(token.trim()) else {
        return refuse(Some("invalid_token"), None);
    };
    if Instant::now() >= issued.expires {
        return refuse(Some("invalid_token"), None);
    }
    issued.uses += 1;
    if cfg.faults.token_expiry.is_some_and(|n| issued.uses > n) {
        issued.expires = Instant::now();
        return refuse(Some("invalid_token"), Some(Fault::TokenExpired));
    }
    if !permits(&issued.scopes, call) {
        let challenge = "Bearer realm=\"imnm-mock\", error=\"insufficient_scope\"";
        let reply = Reply::outcome(403, "forbidden", "the token's scopes do not cover this request");
        return Err((reply.header("www-authenticate", challenge), None));
    }
    Ok(())
}

/// Whether `scopes` allow the request: reads need `read`/`*` (v1) or `r`/`s` (v2) on the
/// type or `*`; writes need `write`/`*` or `c`/`u`. Requests not on one type (bulk, paging,
/// transactions) need that permission on any type. Cancelling or cleaning up a bulk export
/// (DELETE on its status URL) is part of the export, so it counts as a read (SMART Fetch
/// deletes every finished export with its read-only token).
fn permits(scopes: &[String], call: &Call<'_>) -> bool {
    let rtype = call
        .segments
        .first()
        .filter(|t| t.chars().next().is_some_and(|c| c.is_ascii_uppercase()));
    let bulk_status = call.segments.starts_with(&["_bulk", "status"]);
    let writing = matches!(call.method, "POST" | "PUT" | "DELETE")
        && !bulk_status
        && !call.segments.iter().any(|s| *s == "_search" || s.starts_with('$'));
    scopes.iter().any(|scope| {
        let rest = scope.trim_start_matches("system/");
        let rest = rest.split('?').next().unwrap_or(rest);
        let Some((t, perms)) = rest.split_once('.') else {
            return false;
        };
        let type_ok = t == "*" || rtype.is_none_or(|r| *r == t);
        let perm_ok = match perms {
            "*" => true,
            "read" => !writing,
            "write" => writing,
            p if writing => p.contains(['c', 'u']),
            p => p.contains(['r', 's']),
        };
        type_ok && perm_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_v1_and_v2_system_scopes_only() {
        for ok in [
            "system/*.read",
            "system/*.rs",
            "system/Observation.rs?category=laboratory",
            "system/Patient.*",
        ] {
            assert!(valid_scope(ok), "{ok}");
        }
        for bad in ["patient/*.read", "system/*", "system/*.xyz", "openid"] {
            assert!(!valid_scope(bad), "{bad}");
        }
    }
}
