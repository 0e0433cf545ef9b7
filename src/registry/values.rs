//! Checks of single config values: site ids, base URLs, durations, environment
//! variable names, store locations. Pure functions over strings; their messages
//! never repeat the value (it could be a secret pasted in the wrong place).

use std::time::Duration;

use crate::store::site::SiteIdError;
pub use crate::store::site::MAX_SITE_ID_LEN;

/// Parses a duration of a whole number and one unit: `30s`, `15m`, `6h`, `1d`.
/// Zero is refused.
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    const FORM: &str = "a duration is a whole number and a unit s, m, h or d (e.g. \"30m\", \"6h\", \"1d\")";
    let text = text.trim();
    let Some(unit) = text.chars().last() else {
        return Err(FORM);
    };
    let per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(FORM),
    };
    let digits = &text[..text.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FORM);
    }
    let n: u64 = digits.parse().map_err(|_| "the duration is too long")?;
    if n == 0 {
        return Err("the duration must be more than zero");
    }
    let secs = n.checked_mul(per).ok_or("the duration is too long")?;
    Ok(Duration::from_secs(secs))
}

/// A duration in the form [`parse_duration`] reads, in the largest unit that
/// divides it (`21600s` → `6h`); sub-second parts are dropped.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    for (per, unit) in [(86_400, 'd'), (3600, 'h'), (60, 'm')] {
        if secs > 0 && secs % per == 0 {
            return format!("{}{unit}", secs / per);
        }
    }
    format!("{secs}s")
}

/// A site id: 1 to [`MAX_SITE_ID_LEN`] characters of `a-z`, `0-9` and `-`
/// (the store's rule, [`crate::store::site::check_site_id`]), with messages naming the key.
pub(crate) fn check_site_id(id: &str) -> Result<(), String> {
    crate::store::site::check_site_id(id).map_err(|e| match e {
        SiteIdError::Length => format!("`id` must be 1 to {MAX_SITE_ID_LEN} characters long"),
        SiteIdError::Characters => "`id` may hold only a-z, 0-9 and - (it names the site in every output)".to_string(),
    })
}

/// A FHIR base URL: http or https, a host, no user or password, no query, no fragment.
pub(crate) fn check_base_url(url: &str) -> Result<(), &'static str> {
    let Some(rest) = strip_http_scheme(url) else {
        return Err("`base_url` must be an http:// or https:// URL");
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("`base_url` must not hold spaces or control characters");
    }
    if url.contains('?') {
        return Err("`base_url` must not have a query (?…): it is the server's base, searches are added to it");
    }
    if url.contains('#') {
        return Err("`base_url` must not have a fragment (#…)");
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(
            "`base_url` must not hold a user or password: credentials come from auth (token_env or a key file)",
        );
    }
    let (host, port) = crate::store::site::split_host_port(authority);
    if host.is_empty() {
        return Err("`base_url` has no host");
    }
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        host.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if !host_ok {
        return Err("`base_url` has a malformed host");
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err("`base_url` has a malformed port");
        }
    }
    Ok(())
}

/// `scheme://host[:port]` of an http(s) URL (the whole text when it has no path).
pub fn origin(url: &str) -> &str {
    let Some(scheme_end) = url.find("://") else {
        return url;
    };
    let after = scheme_end + 3;
    match url[after..].find(['/', '?', '#']) {
        Some(i) => &url[..after + i],
        None => url,
    }
}

/// The part after `http://` or `https://` (either case), if it is one.
fn strip_http_scheme(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")).then_some(rest)
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The scheme of `text` when it is a URL (`scheme://…`); `None` for a path (the store's rule).
pub use crate::store::url_scheme;

/// Whether a URL's authority holds `user:password@`.
pub(crate) fn has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_each_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(21_600)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration(" 90m "), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in [
            "",
            "6",
            "h",
            "0h",
            "6x",
            "-1h",
            "1.5h",
            "6 h",
            "1h30m",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_duration("0s"), Err("the duration must be more than zero"));
        assert_eq!(parse_duration("999999999999999d"), Err("the duration is too long"));
    }

    #[test]
    fn durations_format_in_the_largest_unit() {
        for (secs, text) in [
            (30, "30s"),
            (900, "15m"),
            (21_600, "6h"),
            (86_400, "1d"),
            (5400, "90m"),
            (90, "90s"),
        ] {
            assert_eq!(format_duration(Duration::from_secs(secs)), text);
            assert_eq!(parse_duration(text), Ok(Duration::from_secs(secs)));
        }
    }

    #[test]
    fn site_ids() {
        for good in ["a", "hospital-b", "site-01", &"x".repeat(32)] {
            assert_eq!(check_site_id(good), Ok(()), "{good}");
        }
        for bad in ["", "A", "site_b", "site b", "é", &"x".repeat(33)] {
            assert!(check_site_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn base_urls() {
        for good in [
            "https://ehr-a.example.org/fhir/R4",
            "http://127.0.0.1:8080/fhir",
            "HTTPS://ehr.example.org",
            "http://[::1]:9000/R4/",
        ] {
            assert_eq!(check_base_url(good), Ok(()), "{good}");
        }
        for bad in [
            "ftp://ehr.example.org/fhir",
            "ehr.example.org/fhir",
            "https://ehr.example.org/fhir?_format=json",
            "https://ehr.example.org/fhir#top",
            "https://user:secret@ehr.example.org/fhir",
            "https://user@ehr.example.org/fhir",
            "https:///fhir",
            "https://ehr.example.org:99999/fhir",
            "https://ehr.example.org:/fhir",
            "https://ehr example.org/fhir",
            "https://[::1/fhir",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn url_messages_do_not_repeat_the_url() {
        let url = "https://user:hunter2@ehr.example.org/fhir?token=abc";
        let message = check_base_url(url).unwrap_err();
        assert!(!message.contains("hunter2") && !message.contains("abc"));
    }

    #[test]
    fn origins() {
        assert_eq!(origin("https://ehr-a.example.org/fhir/R4"), "https://ehr-a.example.org");
        assert_eq!(origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(origin("http://127.0.0.1:8080?x=1"), "http://127.0.0.1:8080");
    }

    #[test]
    fn env_names_and_store_urls() {
        assert!(is_env_name("HOSPITAL_B_TOKEN") && is_env_name("_x1"));
        assert!(!is_env_name("") && !is_env_name("1X") && !is_env_name("eyJhbGciOi.J9"));
        assert_eq!(url_scheme("postgres://db.example/registry"), Some("postgres"));
        assert_eq!(url_scheme("registry.db"), None);
        assert_eq!(url_scheme("C:\\registry\\registry.db"), None);
        assert!(has_password("postgres://reg:pw@db.example/registry"));
        assert!(!has_password("postgres://reg@db.example/registry"));
    }
}
