//! Where a store is, as the user wrote it: a SQLite file path, or a database
//! URL (`postgres://…`). Owns telling the two apart and showing a URL without
//! its password or query; opening is [`super::Store`]'s.

use std::fmt;
use std::path::PathBuf;

use super::{Store, StoreError};

/// Where a store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A SQLite file (created when missing).
    Path(PathBuf),
    /// A URL with a scheme (`postgres://…`), kept as written. Shown only through
    /// [`StoreLocation::redacted`] / `Display`, which drop a password and query.
    Url(String),
}

impl StoreLocation {
    /// `postgres://…` and `postgresql://…` (any `scheme://`) are URLs; anything
    /// else is a file path.
    pub fn parse(text: &str) -> Self {
        if url_scheme(text).is_some() {
            StoreLocation::Url(text.to_string())
        } else {
            StoreLocation::Path(PathBuf::from(text))
        }
    }

    /// Opens the store: the SQLite file (created when missing) or the
    /// PostgreSQL database. Another URL scheme is refused.
    pub fn open(&self) -> Result<Store, StoreError> {
        match self {
            StoreLocation::Path(p) => Store::open(p),
            StoreLocation::Url(url) if is_postgres(url) => Store::connect(url),
            StoreLocation::Url(url) => Err(StoreError::BadUrl {
                url: redact(url),
                reason: "only postgres:// (or postgresql://) URLs and SQLite file paths are stores".into(),
            }),
        }
    }

    /// The path of a SQLite store, `None` for a URL.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            StoreLocation::Path(p) => Some(p),
            StoreLocation::Url(_) => None,
        }
    }

    /// For messages and logs: the path, or the URL without password or query.
    pub fn redacted(&self) -> String {
        match self {
            StoreLocation::Path(p) => p.display().to_string(),
            StoreLocation::Url(url) => redact(url),
        }
    }
}

/// From a string, as [`StoreLocation::parse`] (settings files).
impl<'de> serde::Deserialize<'de> for StoreLocation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Ok(StoreLocation::parse(&text))
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The scheme of `text` when it is a URL (`scheme://…`: a letter, then
/// letters, digits, `+-.`); `None` for a path.
pub fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut bytes = scheme.bytes();
    let ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    ok.then_some(scheme)
}

/// Whether a URL is a PostgreSQL one.
pub(super) fn is_postgres(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// `url` without a password (`user:secret@` → `user@`) and without query or fragment.
pub(crate) fn redact(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or("");
    let Some((scheme, rest)) = no_query.split_once("://") else {
        return no_query.to_string();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths_are_told_apart_and_urls_shown_without_secrets() {
        assert_eq!(
            StoreLocation::parse("registry.db"),
            StoreLocation::Path("registry.db".into())
        );
        assert_eq!(
            StoreLocation::parse("C:/x/registry.db"),
            StoreLocation::Path("C:/x/registry.db".into())
        );
        let url = StoreLocation::parse("postgres://reg:s3cret@db.example:5433/imnm?sslmode=require&password=x");
        assert!(matches!(url, StoreLocation::Url(_)));
        assert_eq!(url.to_string(), "postgres://reg@db.example:5433/imnm");
        assert_eq!(redact("postgresql://db.example/imnm"), "postgresql://db.example/imnm");
        let err = StoreLocation::parse("mysql://u:pw@h/db")
            .open()
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("store mysql://u@h/db: only postgres:// (or postgresql://) URLs and SQLite file paths are stores")
        );
    }
}
