//! Bundle entries read from a buffer instead of through serde_json's
//! `io::Read` reader, which takes each byte through a call and copies each
//! entry's raw text byte by byte (about 100 MB/s here).
//!
//! The input is read in large blocks; serde_json still checks every value,
//! on slices of the buffer (`from_slice`, borrowed raw values), one member or
//! one entry at a time; this module only steps over the Bundle's own
//! punctuation (`{`, `:`, `,`, `[`, `]`, `}`). A plain entry, compact
//! `{"fullUrl":"…","resource":{…},"search":{…}}` (fullUrl and search
//! optional) and ASCII without escapes, is checked by the skim's syntax check
//! instead ([`plain_entry`]: serde gives the same for it, and the prefilter's
//! skim reads the resource again anyway); anything else in it goes to serde,
//! so a damaged entry is reported as before. When a value runs past the end
//! of the buffer, more is read and the value is checked again from its start,
//! so at most the largest entry is held. A problem ends the file with one
//! `Unreadable` item naming its line and column in the file, after the entries
//! before it, as [`super::source::read_json`] does.
//!
//! Only documents that open with `{"resourceType":"Bundle"` (spaces allowed)
//! come here; anything else goes to serde's streaming reader unchanged. This
//! module does not decide what an entry means.

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::item::{deliver_entry, short, Item, Location, Pos};

pub(crate) mod cut;

/// Bytes asked of the reader at a time.
const BLOCK: usize = 1 << 18;

/// How a Bundle is read: `Ok(())` after a whole Bundle (or the item that
/// ends it), `Err` with the bytes read so far and the reader when `reader`
/// does not open a Bundle, for the caller's other reader.
pub(super) fn read_bundle<R: Read>(
    file: &Arc<str>,
    reader: R,
    f: &mut dyn FnMut(Item<'_>),
) -> Result<(), (Vec<u8>, R)> {
    read_in_blocks(file, reader, BLOCK, f)
}

fn read_in_blocks<R: Read>(
    file: &Arc<str>,
    reader: R,
    block: usize,
    f: &mut dyn FnMut(Item<'_>),
) -> Result<(), (Vec<u8>, R)> {
    let mut b = Buffer::new(reader, block);
    if !matches!(b.opens_a_bundle(), Ok(true)) {
        return Err((b.buf, b.reader));
    }
    b.keep = false;
    if let Err(problem) = b.members(file, &mut 0, f) {
        b.report(file, problem, f);
    }
    Ok(())
}

/// Why reading stopped. Places are indexes into the buffer as it is then.
enum Problem {
    /// The reader failed.
    Io,
    /// Unexpected punctuation at `buf[at]`, or the end of the input (`at` the buffer's length).
    At { at: usize, what: &'static str },
    /// serde_json refused the value starting at `buf[start]`.
    Serde { start: usize, error: serde_json::Error },
}

/// An entry as read: by serde, or one [`plain_entry`] read.
enum Got<'a> {
    Serde(Entry<'a>),
    Plain(Plain<'a>),
}

/// A plain entry ([`plain_entry`]): its fullUrl and its resource's text.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Plain<'a> {
    full_url: Option<&'a str>,
    resource: &'a str,
}

/// An entry that is `{"fullUrl":"…","resource":{…},"search":{…}}` (the
/// fullUrl and the search may be left out) and nothing else, without white
/// space, ASCII without control bytes or escapes, its objects read whole by
/// the skim's syntax check: the entry and the bytes it took. `None` when
/// unsure: serde reads the entry then. For these entries serde gives the same
/// (a borrowed raw value is its bytes as written, a string without escapes
/// its text), at about twice the cost: its walk checked every byte the
/// prefilter's skim then checks again.
fn plain_entry(bytes: &[u8]) -> Option<(Plain<'_>, usize)> {
    let mut at = 1;
    if bytes.first() != Some(&b'{') {
        return None;
    }
    let mut full_url = None;
    if let Some(rest) = bytes[at..].strip_prefix(b"\"fullUrl\":\"") {
        let len = memchr::memchr(b'"', rest)?;
        full_url = Some(plain_text(&rest[..len])?);
        at = bytes.len() - rest.len() + len + 1;
        if bytes.get(at) != Some(&b',') {
            return None;
        }
        at += 1;
    }
    let rest = bytes[at..].strip_prefix(b"\"resource\":")?;
    at = bytes.len() - rest.len();
    let (resource, len) = plain_object(rest)?;
    at += len;
    if let Some(rest) = bytes[at..].strip_prefix(b",\"search\":") {
        at = bytes.len() - rest.len() + plain_object(rest)?.1;
    }
    (bytes.get(at) == Some(&b'}')).then_some((Plain { full_url, resource }, at + 1))
}

/// The object `bytes` opens with, when the skim's syntax check reads it and
/// it is ASCII without control bytes or escapes: its text and length.
fn plain_object(bytes: &[u8]) -> Option<(&str, usize)> {
    let end = crate::fhir::skim::container_end(bytes).filter(|_| bytes.first() == Some(&b'{'))?;
    Some((plain_text(bytes.get(..end)?)?, end))
}

/// `bytes` as text when ASCII without control bytes or escapes.
fn plain_text(bytes: &[u8]) -> Option<&str> {
    crate::fhir::skim::precondition(bytes).then(|| std::str::from_utf8(bytes).ok())?
}

/// An entry, borrowed from the buffer.
#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(rename = "fullUrl", borrow, default)]
    full_url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
    #[serde(default)]
    request: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    response: Option<serde::de::IgnoredAny>,
}

struct Buffer<R> {
    reader: R,
    buf: Vec<u8>,
    /// Next byte to look at in `buf`.
    pos: usize,
    eof: bool,
    /// Keep every byte read (while it is not yet known to be a Bundle).
    keep: bool,
    /// Bytes asked of the reader at a time.
    block: usize,
    /// Newlines in the bytes dropped from the front of `buf`.
    lines_before: u64,
    /// Bytes after the last of those newlines (the column base of `buf[0]`).
    col_before: u64,
    /// Bytes dropped from the front of `buf` (the offset in the input of `buf[0]`).
    dropped: u64,
}

/// The UTF-8 byte order mark, skipped where a document or line starts.
pub(crate) const BOM: &[u8] = b"\xef\xbb\xbf";

/// JSON's white space.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

/// What one try at a value gave.
enum Try<T> {
    /// The value and the bytes it took.
    Done(T, usize),
    /// It may go on past the buffer.
    More,
    Failed(serde_json::Error),
}

/// One value of type `T` at the start of `bytes`: the result and the bytes it took.
fn one<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> (Result<T, serde_json::Error>, usize) {
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<T>();
    match stream.next() {
        Some(r) => (r, stream.byte_offset()),
        None => (Err(serde::de::Error::custom("no value")), 0),
    }
}

/// Whether a try at a value of `bytes` is final: a value is only sure to have
/// ended when a byte follows it (a number could go on); an error only at the
/// real end or when it lies clear of the buffer's end (serde's skipping of a
/// raw value calls a cut `1.` an invalid number, not the end of the input).
fn settle<T>(result: Result<T, serde_json::Error>, used: usize, bytes: &[u8], eof: bool) -> Try<T> {
    match result {
        Ok(v) if used < bytes.len() || eof => Try::Done(v, used),
        Err(e) if eof || !e.is_eof() && error_offset(bytes, &e) + NEAR_END < bytes.len() => Try::Failed(e),
        _ => Try::More,
    }
}

/// Bytes from the buffer's end within which an error may be the cut's doing.
const NEAR_END: usize = 64;

/// Where in `bytes` serde's error (line and column) lies.
fn error_offset(bytes: &[u8], e: &serde_json::Error) -> usize {
    let line_start = match e.line() {
        0 | 1 => 0,
        n => memchr::memchr_iter(b'\n', bytes)
            .nth(n - 2)
            .map_or(bytes.len(), |i| i + 1),
    };
    line_start + e.column()
}

impl<R: Read> Buffer<R> {
    fn new(reader: R, block: usize) -> Self {
        Self {
            reader,
            // Room for two blocks from the start: growing by doubling left mimalloc holding each
            // size it passed through (12 MiB more committed, even for a small Bundle).
            buf: Vec::with_capacity(2 * block),
            pos: 0,
            eof: false,
            keep: true,
            block,
            lines_before: 0,
            col_before: 0,
            dropped: 0,
        }
    }

    /// Hands `f` the item that reports `problem`: a place in the file, as
    /// serde's streaming reader gives it.
    fn report(&self, file: &Arc<str>, problem: Problem, f: &mut dyn FnMut(Item<'_>)) {
        let (invalid_utf8, message) = match problem {
            Problem::Io => (true, "not UTF-8 or unreadable".to_string()),
            Problem::At { at, what } => {
                let (line, mut column) = self.line_col(at);
                if at >= self.buf.len() {
                    column -= 1; // serde names the end by the last byte read
                }
                (false, format!("line {line} column {column}: {what}"))
            }
            Problem::Serde { start, error } => {
                let (line, column) = self.line_col(start);
                let (line, column) = if error.line() <= 1 {
                    (line, column - 1 + error.column() as u64)
                } else {
                    (line + error.line() as u64 - 1, error.column() as u64)
                };
                (false, format!("line {line} column {column}: {}", short(&error)))
            }
        };
        f(Item::Unreadable {
            location: Location {
                file: file.clone(),
                pos: Pos::Whole,
            },
            invalid_utf8,
            message,
        });
    }

    /// Reads another block; `Ok(false)` at the end of the input.
    fn fill(&mut self) -> Result<bool, Problem> {
        if self.eof {
            return Ok(false);
        }
        if !self.keep && self.pos > 0 && self.pos >= self.buf.len() / 2 {
            let dropped = &self.buf[..self.pos];
            match memchr::memrchr(b'\n', dropped) {
                Some(last) => {
                    self.lines_before += memchr::memchr_iter(b'\n', dropped).count() as u64;
                    self.col_before = (dropped.len() - last - 1) as u64;
                }
                None => self.col_before += dropped.len() as u64,
            }
            self.dropped += self.pos as u64;
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        // `read_to_end` on a `take` fills without zeroing and retries short reads.
        let before = self.buf.len();
        self.buf.reserve(self.block);
        match (&mut self.reader).take(self.block as u64).read_to_end(&mut self.buf) {
            Ok(n) => {
                self.eof = n < self.block;
                Ok(self.buf.len() > before)
            }
            Err(_) => Err(Problem::Io),
        }
    }

    /// 1-based line and column in the file of `buf[at]`.
    fn line_col(&self, at: usize) -> (u64, u64) {
        let before = &self.buf[..at.min(self.buf.len())];
        match memchr::memrchr(b'\n', before) {
            Some(last) => (
                self.lines_before + 1 + memchr::memchr_iter(b'\n', before).count() as u64,
                (before.len() - last) as u64,
            ),
            None => (self.lines_before + 1, self.col_before + before.len() as u64 + 1),
        }
    }

    /// The next byte that is not white space, read more when needed; `None` at the end.
    fn peek(&mut self) -> Result<Option<u8>, Problem> {
        loop {
            while let Some(&c) = self.buf.get(self.pos) {
                if !is_space(c) {
                    return Ok(Some(c));
                }
                self.pos += 1;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    /// Steps over `c` (after white space) or fails with `what`.
    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), Problem> {
        match self.peek()? {
            Some(x) if x == c => {
                self.pos += 1;
                Ok(())
            }
            found => Err(self.unexpected(found, what)),
        }
    }

    fn unexpected(&self, found: Option<u8>, what: &'static str) -> Problem {
        let what = if found.is_none() {
            "unexpected end of input"
        } else {
            what
        };
        Problem::At { at: self.pos, what }
    }

    /// One value of type `T` (owning its data) at the next byte, read more
    /// while it may run past the buffer; steps over it.
    fn value<T: for<'a> Deserialize<'a>>(&mut self) -> Result<T, Problem> {
        if self.peek()?.is_none() {
            return Err(self.unexpected(None, ""));
        }
        loop {
            let bytes = &self.buf[self.pos..];
            let (result, used) = one::<T>(bytes);
            match settle(result, used, bytes, self.eof) {
                Try::Done(v, used) => {
                    self.pos += used;
                    return Ok(v);
                }
                Try::Failed(error) => return Err(Problem::Serde { start: self.pos, error }),
                Try::More => {
                    self.fill()?;
                }
            }
        }
    }

    /// `{ "resourceType" : "Bundle"` at the start, spaces allowed.
    fn opens_a_bundle(&mut self) -> Result<bool, Problem> {
        // A UTF-8 byte order mark (Windows tools write one) is not the document's.
        while self.pos == 0 && self.buf.len() < BOM.len() && self.fill()? {}
        if self.pos == 0 && self.buf.starts_with(BOM) {
            self.pos = BOM.len();
        }
        if self.peek()? != Some(b'{') {
            return Ok(false);
        }
        self.pos += 1;
        if self.peek()? != Some(b'"') || self.value::<String>()? != "resourceType" || self.peek()? != Some(b':') {
            return Ok(false);
        }
        self.pos += 1;
        Ok(self.peek()? == Some(b'"') && self.value::<String>()? == "Bundle")
    }

    /// The members after `resourceType`, each `entry` array entry by entry, then the end.
    fn members(&mut self, file: &Arc<str>, index: &mut usize, f: &mut dyn FnMut(Item<'_>)) -> Result<(), Problem> {
        while let Some(key) = self.next_member()? {
            if key == "entry" {
                self.entries(file, index, f)?;
            } else {
                self.value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }

    /// The next member's key, stepped over with its `:`; `None` after the
    /// Bundle's `}` when nothing but white space follows it.
    fn next_member(&mut self) -> Result<Option<String>, Problem> {
        match self.peek()? {
            Some(b',') => self.pos += 1,
            Some(b'}') => {
                self.pos += 1;
                return match self.peek()? {
                    None => Ok(None),
                    found => Err(self.unexpected(found, "syntax error")),
                };
            }
            found => return Err(self.unexpected(found, "syntax error")),
        }
        let key: String = self.value()?;
        self.expect(b':', "syntax error")?;
        Ok(Some(key))
    }

    /// An `entry` array.
    fn entries(&mut self, file: &Arc<str>, index: &mut usize, f: &mut dyn FnMut(Item<'_>)) -> Result<(), Problem> {
        if self.opens_entries()? {
            self.entry_list(file, index, f)?;
        }
        Ok(())
    }

    /// Steps over the `[` of an `entry` array, and its `]` when it is empty:
    /// whether an entry follows.
    fn opens_entries(&mut self) -> Result<bool, Problem> {
        match self.peek()? {
            Some(b'[') => self.pos += 1,
            // serde: another kind of value is of the wrong type; anything else is not JSON.
            found @ Some(b'{' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => {
                return Err(self.unexpected(found, "not a FHIR resource or Bundle"))
            }
            found => return Err(self.unexpected(found, "syntax error")),
        }
        if self.peek()? == Some(b']') {
            self.pos += 1;
            return Ok(false);
        }
        Ok(true)
    }

    /// Entries and their commas up to and over the array's `]`.
    fn entry_list(&mut self, file: &Arc<str>, index: &mut usize, f: &mut dyn FnMut(Item<'_>)) -> Result<(), Problem> {
        loop {
            self.entry(file, *index, f)?;
            *index += 1;
            match self.peek()? {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                found => return Err(self.unexpected(found, "syntax error")),
            }
        }
    }

    /// One entry, delivered straight from the buffer.
    fn entry(&mut self, file: &Arc<str>, index: usize, f: &mut dyn FnMut(Item<'_>)) -> Result<(), Problem> {
        if self.peek()?.is_none() {
            return Err(self.unexpected(None, ""));
        }
        let plain = plain_entry(&self.buf[self.pos..]).map(|(entry, used)| {
            deliver(Got::Plain(entry), file, index, f);
            used
        });
        if let Some(used) = plain {
            self.pos += used;
            return Ok(());
        }
        loop {
            let bytes = &self.buf[self.pos..];
            let (result, used) = one::<Entry<'_>>(bytes);
            let used = match settle(result, used, bytes, self.eof) {
                Try::Done(entry, used) => {
                    deliver(Got::Serde(entry), file, index, f);
                    used
                }
                Try::Failed(error) => return Err(Problem::Serde { start: self.pos, error }),
                Try::More => {
                    self.fill()?;
                    continue;
                }
            };
            self.pos += used;
            return Ok(());
        }
    }
}

fn deliver(entry: Got<'_>, file: &Arc<str>, index: usize, f: &mut dyn FnMut(Item<'_>)) {
    let location = Location {
        file: file.clone(),
        pos: Pos::Entry(index),
    };
    match entry {
        Got::Serde(entry) => {
            let exchange = entry.request.is_some() || entry.response.is_some();
            deliver_entry(entry.resource, entry.full_url.as_deref(), exchange, location, f);
        }
        Got::Plain(Plain { full_url, resource }) => f(Item::Resource {
            location,
            text: resource,
            full_url,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::super::source::{read_json, read_json_streaming};
    use super::*;
    use std::io::Read;

    /// The items of `text`: through the block reader, `block` bytes at a time
    /// (so values run past the buffer's end), or through serde's streaming reader.
    pub(in crate::fhir::bundle) fn items(text: &str, block: Option<usize>) -> Vec<String> {
        let mut out = Vec::new();
        let mut take = |item: Item<'_>| out.push(show(item));
        let file: Arc<str> = "f.json".into();
        match block {
            Some(n) => {
                if let Err((read, rest)) = read_in_blocks(&file, text.as_bytes(), n, &mut take) {
                    read_json_streaming(file, std::io::Cursor::new(read).chain(rest), &mut take);
                }
            }
            None => read_json_streaming(file, text.as_bytes(), &mut take),
        }
        out
    }

    /// An item as the tests compare it.
    pub(in crate::fhir::bundle) fn show(item: Item<'_>) -> String {
        match item {
            Item::Resource {
                location,
                text,
                full_url,
            } => format!("{location} {full_url:?} {text}"),
            Item::Unreadable {
                location,
                invalid_utf8,
                message,
            } => format!("{location} ERR {invalid_utf8} {message}"),
            Item::NoResource { location } => format!("{location} NO RESOURCE"),
        }
    }

    /// An item with the error's place left out (serde's streaming reader
    /// places some errors a token later than its slice reader).
    fn unplaced(item: &str) -> String {
        match item.split_once(" ERR false line ") {
            Some((head, rest)) => format!("{head} ERR {}", rest.split_once(": ").map_or(rest, |x| x.1)),
            None => item.to_string(),
        }
    }

    pub(in crate::fhir::bundle) fn bundles() -> Vec<String> {
        let compact = r#"{"resourceType":"Bundle","type":"searchset","total":2,"link":[{"relation":"self","url":"u?a=[1]"}],"entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","id":"a","name":[{"text":"x \"}]\" y"}]},"search":{"mode":"match"}},{"resource":{"resourceType":"Observation","id":"b","valueQuantity":{"value":2080.50}}},{"fullUrl":"x"}],"meta":{"lastUpdated":"2024"}}"#;
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(compact).unwrap()).unwrap();
        vec![
            compact.to_string(),
            pretty.clone(),
            pretty.replace('\n', "\r\n"),
            r#"{"resourceType":"Bundle","entry":[]}"#.to_string(),
            r#"{ "resourceType" : "Bundle" , "entry" : [ { "resource" : {"resourceType":"Patient","id":"a"} } ] , "entry":[{"resource":{"resourceType":"Patient","id":"b"}}] }"#.to_string(),
            r#"{"resourceType":"Bundle"}"#.to_string(),
            r#"{"resourceType":"Patient","id":"p"}"#.to_string(),
            r#"{"entry":[{"resource":{"resourceType":"Patient","id":"a"}}],"resourceType":"Bundle"}"#.to_string(),
            plain(),
        ]
    }

    /// A compact Bundle most of whose entries [`plain_entry`] reads (with and
    /// without a fullUrl and a search), and some it leaves to serde (an
    /// escape, a request, a space, an array).
    fn plain() -> String {
        let entries = [
            r#"{"resource":{"resourceType":"Observation","id":"plain","code":{"coding":[{"system":"http://loinc.org","code":"2157-6"}]},"valueQuantity":{"value":-1.5e3,"unit":"U/L"},"x":[true,false,null,[],{},0,[[1]]]}}"#,
            r#"{"resource":{"resourceType":"Patient","id":"a\"b"}}"#,
            r#"{"fullUrl":"u","resource":{"resourceType":"Patient","id":"f"}}"#,
            r#"{"fullUrl":"urn:uuid:9","resource":{"resourceType":"Patient","id":"g"},"search":{"mode":"match","score":1}}"#,
            r#"{"fullUrl":"v","resource":{"resourceType":"Patient","id":"h"},"request":{"method":"PUT"}}"#,
            r#"{"resource":{"resourceType":"Patient","id":"s"} }"#,
            r#"{"resource":[1]}"#,
            r#"{"resource":{"resourceType":"Patient","id":"m"},"search":{"mode":"match"}}"#,
            r#"{"resource":{"resourceType":"Patient","id":"last"}}"#,
        ];
        format!(
            r#"{{"resourceType":"Bundle","type":"collection","entry":[{}]}}"#,
            entries.join(",")
        )
    }

    #[test]
    fn plain_entries_are_read_without_serde_only_when_sure() {
        let resource = r#"{"resourceType":"Patient","id":"p","a":[1,{"b":null}]}"#;
        let plain = |full_url| Plain { full_url, resource };
        for (entry, want) in [
            (format!(r#"{{"resource":{resource}}},"#), plain(None)),
            (
                format!(r#"{{"fullUrl":"urn:uuid:1","resource":{resource}}},"#),
                plain(Some("urn:uuid:1")),
            ),
            (
                format!(r#"{{"fullUrl":"","resource":{resource},"search":{{"mode":"match"}}}},"#),
                plain(Some("")),
            ),
            (format!(r#"{{"resource":{resource},"search":{{}}}},"#), plain(None)),
        ] {
            let (got, used) = plain_entry(entry.as_bytes()).unwrap();
            assert_eq!(got, want, "{entry}");
            assert_eq!(&entry[used..], ",", "{entry}");
        }
        let deep = format!(r#"{{"resource":{{"a":{}1{}}}}}"#, "[".repeat(100), "]".repeat(100));
        let unsure = [
            r#"{"resource":{"resourceType":"Patient","id":"é"}}"#,
            r#"{"resource":{"resourceType":"Patient","id":"a\"}"}}"#,
            "{\"resource\":{\"resourceType\":\"Patient\",\"id\":\"a\tb\"}}",
            r#"{"resource":{"resourceType":"Patient","id":"p"},"search":[]}"#,
            r#"{"resource":{"resourceType":"Patient","id":"p"},"request":{}}"#,
            r#"{"resource":{"resourceType":"Patient","id":"p"},"fullUrl":"u"}"#,
            r#"{"fullUrl":"u\"","resource":{"resourceType":"Patient","id":"p"}}"#,
            r#"{"fullUrl":"é","resource":{"resourceType":"Patient","id":"p"}}"#,
            r#"{"fullUrl":1,"resource":{"resourceType":"Patient","id":"p"}}"#,
            r#"{"fullUrl":"u"}"#,
            r#"{"fullUrl":"u","resource":{"resourceType":"Patient","id":"p"},"search":{"mode":"match",}}"#,
            r#"{ "resource":{"resourceType":"Patient","id":"p"}}"#,
            r#"{"resource":{"resourceType":"Patient","id":"p"}"#,
            r#"{"resource":{"resourceType":"Patient","id":"p",}}"#,
            r#"{"resource":[{"resourceType":"Patient"}]}"#,
            deep.as_str(),
        ];
        for entry in unsure {
            assert_eq!(plain_entry(entry.as_bytes()), None, "{entry}");
        }
        let shallower = deep.replacen('[', "", 1).replacen(']', "", 1);
        assert!(plain_entry(shallower.as_bytes()).is_some(), "{shallower}");
    }

    #[test]
    fn gives_what_the_streaming_reader_gives() {
        for text in bundles() {
            let want = items(&text, None);
            for n in [1, 2, 3, 7, 64, BLOCK] {
                assert_eq!(items(&text, Some(n)), want, "{n} bytes a read: {text}");
            }
            let mut read = Vec::new();
            read_json("f.json".into(), text.as_bytes(), &mut |item| {
                read.push(format!("{item:?}"))
            });
            assert_eq!(read.len(), want.len(), "read_json: {text}");
        }
    }

    /// Cut anywhere, a Bundle gives the same entries and the same report as
    /// the streaming reader; with a wrong byte anywhere, the same entries and
    /// the same report but for the error's place.
    #[test]
    fn damage_anywhere_is_reported_like_the_streaming_reader_does() {
        damage_anywhere(&bundles()[1], 3, &["}", "]", ",", "x"]);
        damage_anywhere(&plain(), 1, &["}", "]", ",", "x", "\"", "\\", " "]);
    }

    /// Read a few bytes at a time (entries run past the buffer: serde reads
    /// them) and whole (entries in the buffer: `plain_entry` reads the plain ones).
    fn damage_anywhere(pretty: &str, step: usize, wrong: &[&str]) {
        for cut in 0..pretty.len() {
            let text = &pretty[..cut];
            for block in [5, BLOCK] {
                assert_eq!(items(text, Some(block)), items(text, None), "cut at {cut}: {text}");
            }
        }
        for at in (0..pretty.len()).step_by(step) {
            for bad in wrong {
                let mut text = pretty.to_string();
                text.replace_range(at..at + 1, bad);
                let want: Vec<String> = items(&text, None).iter().map(|i| unplaced(i)).collect();
                for block in [7, BLOCK] {
                    let got: Vec<String> = items(&text, Some(block)).iter().map(|i| unplaced(i)).collect();
                    assert_eq!(got, want, "{bad} at {at}: {text}");
                }
            }
        }
    }
}
