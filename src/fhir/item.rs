//! What the readers deliver: one resource's text with where it came from
//! ([`Item`], [`Location`], [`Pos`]). Shared by the readers of NDJSON and
//! JSON (`source`) and the Bundle reader (`bundle`), so neither imports the
//! other for it.

use std::fmt;
use std::sync::Arc;

use serde_json::value::RawValue;

/// Where a resource came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file, as given or found.
    pub file: Arc<str>,
    /// Line (NDJSON) or entry (Bundle) within it.
    pub pos: Pos,
}

/// A position within a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pos {
    /// 1-based line of an NDJSON file.
    Line(u64),
    /// 0-based index of a Bundle entry.
    Entry(usize),
    /// The whole file (a single resource).
    Whole,
}

impl Location {
    /// `file:line`, `file#entry[i]` or `file`: what `to_string()` gives, built
    /// without the formatting machinery (it runs once per resource read).
    #[must_use]
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(self.file.len() + 28);
        s.push_str(&self.file);
        let mut number = itoa::Buffer::new();
        match self.pos {
            Pos::Line(n) => {
                s.push(':');
                s.push_str(number.format(n));
            }
            Pos::Entry(i) => {
                s.push_str("#entry[");
                s.push_str(number.format(i));
                s.push(']');
            }
            Pos::Whole => {}
        }
        s
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// One resource's text as read, or why a piece of input could not be read.
#[derive(Debug)]
pub enum Item<'a> {
    /// A resource's JSON text, with the Bundle entry's fullUrl when there is one.
    Resource {
        /// Where it was read.
        location: Location,
        /// Its JSON text.
        text: &'a str,
        /// The Bundle entry's `fullUrl`.
        full_url: Option<&'a str>,
    },
    /// A line or file that cannot be read as text or JSON.
    Unreadable {
        /// Where.
        location: Location,
        /// The bytes are not UTF-8 (else: not JSON).
        invalid_utf8: bool,
        /// What is wrong (no content).
        message: String,
    },
    /// A Bundle entry that holds a `request` or `response` and no resource
    /// (valid FHIR in batch and transaction Bundles, e.g. a DELETE or a GET):
    /// nothing to read, nothing lost.
    NoResource {
        /// Where.
        location: Location,
    },
}

/// A Bundle entry's resource as an item. An entry without one is
/// [`Item::NoResource`] when it holds a request or response (`exchange`),
/// else unreadable.
pub(super) fn deliver_entry(
    resource: Option<&RawValue>,
    full_url: Option<&str>,
    exchange: bool,
    location: Location,
    f: &mut dyn FnMut(Item<'_>),
) {
    match resource {
        Some(r) => f(Item::Resource {
            location,
            text: r.get(),
            full_url,
        }),
        None if exchange => f(Item::NoResource { location }),
        None => f(Item::Unreadable {
            location,
            invalid_utf8: false,
            message: "Bundle entry without a resource".into(),
        }),
    }
}

/// A short reason for a JSON error, without its position.
pub(super) fn short(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "not a FHIR resource or Bundle",
        serde_json::error::Category::Io => "read error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_reads_as_its_file_and_place() {
        let at = |pos| {
            Location {
                file: "in/a.ndjson".into(),
                pos,
            }
            .to_string()
        };
        assert_eq!(at(Pos::Line(1)), "in/a.ndjson:1");
        assert_eq!(at(Pos::Line(u64::MAX)), "in/a.ndjson:18446744073709551615");
        assert_eq!(at(Pos::Entry(0)), "in/a.ndjson#entry[0]");
        assert_eq!(at(Pos::Entry(120_034)), "in/a.ndjson#entry[120034]");
        assert_eq!(at(Pos::Whole), "in/a.ndjson");
    }
}
