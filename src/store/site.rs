//! Site ids: the short names that key a site's resources and sync state in
//! the store (and name the site in every output). A site id is 1 to
//! [`MAX_SITE_ID_LEN`] characters of `a-z`, `0-9` and `-`; the registry
//! config's `[[site]] id` follows the same rule ([`check_site_id`] is the one
//! check). [`site_id_for`] derives one from a base URL when none is given.
//!
//! Pure functions over strings: they live here (the store's layer) so that
//! both the store's schema upgrade and the sync (and the registry above them)
//! can use them.

/// The longest site id.
pub const MAX_SITE_ID_LEN: usize = 32;

/// The site of resources whose origin is unknown: an old store that holds no
/// sync state, or files given to `imnm cohort` without a site.
pub const LOCAL_SITE: &str = "local";

/// Why a text is not a site id. The messages never repeat the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SiteIdError {
    /// Empty, or longer than [`MAX_SITE_ID_LEN`].
    #[error("a site id must be 1 to {MAX_SITE_ID_LEN} characters long")]
    Length,
    /// A character other than `a-z`, `0-9` and `-`.
    #[error("a site id may hold only a-z, 0-9 and - (it names the site in every output)")]
    Characters,
}

/// Whether `id` is a site id: 1 to [`MAX_SITE_ID_LEN`] characters of `a-z`, `0-9` and `-`.
pub fn check_site_id(id: &str) -> Result<(), SiteIdError> {
    if id.is_empty() || id.len() > MAX_SITE_ID_LEN {
        return Err(SiteIdError::Length);
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(SiteIdError::Characters);
    }
    Ok(())
}

/// The site id derived from a base URL's host and port: lower-cased, every run
/// of characters other than `a-z` and `0-9` made one `-`, no `-` at either end,
/// the scheme's default port (80 for http, 443 for https) left out, cut to
/// [`MAX_SITE_ID_LEN`] characters. The path, a user and a password never take part.
/// A URL without a host gives [`LOCAL_SITE`].
///
/// `http://127.0.0.1:8080/fhir` → `127-0-0-1-8080`; `https://ehr.hospital-a.org/R4`
/// → `ehr-hospital-a-org`; `http://[::1]:9000/` → `1-9000`.
///
/// Two base URLs on one host and port (`/fhir/a`, `/fhir/b`) get the same id:
/// name such sites yourself.
pub fn site_id_for(base_url: &str) -> String {
    let (scheme, rest) = match base_url.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (String::new(), base_url),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = split_host_port(host_port);
    let default_port = match scheme.as_str() {
        "http" => Some("80"),
        "https" => Some("443"),
        _ => None,
    };
    let mut text = host.to_ascii_lowercase();
    if let Some(port) = port.filter(|p| !p.is_empty() && Some(*p) != default_port) {
        text.push('-');
        text.push_str(port);
    }
    let mut id = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            id.push(c);
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    id.truncate(MAX_SITE_ID_LEN);
    while id.ends_with('-') {
        id.pop();
    }
    if id.is_empty() {
        LOCAL_SITE.to_string()
    } else {
        id
    }
}

/// `host` and `port` of `host[:port]` (`[v6]:port` too).
pub(crate) fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(i) => {
                let (host, rest) = authority.split_at(i + 1);
                (host, rest.strip_prefix(':'))
            }
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_ids_from_base_urls() {
        for (url, id) in [
            ("http://127.0.0.1:8080/fhir", "127-0-0-1-8080"),
            ("https://ehr.hospital-a.org/R4", "ehr-hospital-a-org"),
            ("https://ehr.hospital-a.org:443/R4", "ehr-hospital-a-org"),
            ("http://ehr.hospital-a.org:80/", "ehr-hospital-a-org"),
            ("http://ehr.hospital-a.org:443/", "ehr-hospital-a-org-443"),
            ("HTTPS://EHR.Example.ORG:8443/fhir?x=1", "ehr-example-org-8443"),
            ("https://user:pw@ehr.example.org/fhir", "ehr-example-org"),
            ("http://[::1]:9000/R4/", "1-9000"),
            ("http://127.0.0.1:41234", "127-0-0-1-41234"),
            ("", LOCAL_SITE),
            ("https:///fhir", LOCAL_SITE),
        ] {
            assert_eq!(site_id_for(url), id, "{url}");
            assert_eq!(check_site_id(&site_id_for(url)), Ok(()), "{url}");
        }
        let long = site_id_for("https://fhir.paediatric-rheumatology.university-hospital.example.org/R4");
        assert_eq!(long, "fhir-paediatric-rheumatology-uni");
        assert_eq!(check_site_id(&long), Ok(()));
        // A cut that ends on a separator drops it.
        let cut = site_id_for("https://abcdefghijklmnopqrstuvwxyzabcde.f/");
        assert_eq!(cut, "abcdefghijklmnopqrstuvwxyzabcde");
    }

    #[test]
    fn site_id_checks() {
        for good in ["a", "hospital-b", "site-01", &"x".repeat(32)] {
            assert_eq!(check_site_id(good), Ok(()), "{good}");
        }
        assert_eq!(check_site_id(""), Err(SiteIdError::Length));
        assert_eq!(check_site_id(&"x".repeat(33)), Err(SiteIdError::Length));
        for bad in ["A", "site_b", "site b", "é", "a/b"] {
            assert_eq!(check_site_id(bad), Err(SiteIdError::Characters), "{bad:?}");
        }
    }
}
