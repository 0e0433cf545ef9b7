//! Signing a browser in: where the registry config has API tokens, a browser
//! cannot send `Authorization: Bearer`, so `/login` takes the token in a form
//! and keeps it in an `HttpOnly`, `SameSite=Strict` cookie that the API edge
//! ([`super::api`]) reads like the header; `/logout` clears it. A page asked
//! for without a token sends the browser to `/login`. Owns the cookie's name
//! and form only; which tokens are valid is the edge's.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::page::document;

/// The cookie that carries a signed-in browser's token.
pub(crate) const COOKIE: &str = "imnm_token";

const FORM: &str = "<h1>IMNM registry</h1><form method=\"post\" action=\"/login\">\
<label>API token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label> \
<button type=\"submit\">Sign in</button></form>";

/// `GET /login`: the form.
pub(crate) async fn form() -> Response {
    document("Sign in", FORM).into_response()
}

/// `POST /login`: a known token sets the cookie and goes to `/`; another is refused.
pub(crate) async fn sign_in(
    axum::extract::State(app): axum::extract::State<super::state::App>,
    body: Bytes,
) -> Response {
    let token = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let hash = super::hash_token(&token);
    let known = app.config.serve.tokens.iter().any(|t| t.sha256 == hash);
    // The cookie value is the token itself: it must be a cookie-safe string.
    let safe = !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
    match HeaderValue::from_str(&format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/")) {
        Ok(cookie) if known && safe => {
            let mut r = Redirect::to("/").into_response();
            r.headers_mut().insert(header::SET_COOKIE, cookie);
            r
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            document(
                "Sign in",
                &format!("<p>That token is not one of the registry's.</p>{FORM}"),
            ),
        )
            .into_response(),
    }
}

/// `GET /logout`: clears the cookie.
pub(crate) async fn sign_out() -> Response {
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("imnm_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    r
}

/// The token a request carries: the bearer header, else the sign-in cookie.
pub(crate) fn token(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v)
    })
}

/// Whether a browser says the request comes from another site (a form posted
/// from elsewhere): such POSTs are refused whatever the token.
pub(crate) fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
}

/// Whether the caller is a browser asking for a page (sent to `/login` when unsigned).
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_comes_from_the_header_else_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; imnm_token=s3cret; b=2"));
        assert_eq!(token(&h), Some("s3cret"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer other"));
        assert_eq!(token(&h), Some("other"));
        assert_eq!(token(&HeaderMap::new()), None);
        let mut cross = HeaderMap::new();
        cross.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&cross) && !cross_site(&h));
    }
}
