//! Reading inputs: a Bundle or single resource (`.json`), NDJSON (`.ndjson`,
//! `.ndjson.gz`), or a folder of them in Bulk Data layout. Everything streams:
//! one line or one Bundle entry at a time is in memory.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::item::{deliver_entry, short};
pub use super::item::{Item, Location, Pos};

/// The files to read for the given input paths, in reading order: Patient and
/// Medication files first (so references resolve as they stream), then the rest
/// sorted by path. Folders are walked recursively; other files (and Bulk Data
/// export logs, `log.ndjson`) are returned in `ignored`. A file reached twice (a
/// SMART Fetch top-level symlink into a numbered work folder) is read once.
/// Files below a folder named `error` (Bulk Data error files) and `deleted`
/// (resources removed at the source) are listed apart.
///
/// SMART Fetch managed folders: when a folder's top-level files link into its
/// numbered work folders (`001.2025-06-26/`), those links are the active
/// export; work folders no link points into hold superseded exports and are
/// listed in `superseded`, not read. Among work folders the newest is read first,
/// so of a resource exported twice the newest copy is the one used.
pub fn plan(inputs: &[PathBuf]) -> std::io::Result<Plan> {
    let mut plan = Plan::default();
    for input in inputs {
        let meta = std::fs::metadata(input)?;
        if meta.is_dir() {
            let active = active_work_folders(input)?;
            walk(input, active.as_ref(), &mut plan)?;
        } else {
            plan.files.push(input.clone());
        }
    }
    let mut keyed: Vec<(PathBuf, PathBuf)> = std::mem::take(&mut plan.files)
        .into_iter()
        .map(|p| (std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone()), p))
        .collect();
    keyed.sort_by_key(|(real, p)| (file_rank(p), std::cmp::Reverse(generation(real)), p.clone()));
    let mut seen = std::collections::HashSet::new();
    plan.files = keyed
        .into_iter()
        .filter(|(real, _)| seen.insert(real.clone()))
        .map(|(_, p)| p)
        .collect();
    let in_folder = |p: &Path, name: &str| {
        p.parent()
            .is_some_and(|d| d.components().any(|c| c.as_os_str() == name))
    };
    let (errors, rest): (Vec<_>, Vec<_>) = plan.files.into_iter().partition(|p| in_folder(p, "error"));
    let (deleted, files): (Vec<_>, Vec<_>) = rest.into_iter().partition(|p| in_folder(p, "deleted"));
    plan.files = files;
    plan.errors = errors;
    plan.deleted = deleted;
    Ok(plan)
}

/// The files of a run.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// Files to read.
    pub files: Vec<PathBuf>,
    /// Files in input folders that are neither JSON nor NDJSON.
    pub ignored: Vec<PathBuf>,
    /// Bulk Data error files (OperationOutcomes): reported, not mapped.
    pub errors: Vec<PathBuf>,
    /// Resources deleted at the source: they leave the cohort.
    pub deleted: Vec<PathBuf>,
    /// Work folders of a SMART Fetch managed folder that no top-level link
    /// points into (exports superseded by later ones): not read.
    pub superseded: Vec<PathBuf>,
}

fn walk(dir: &Path, active: Option<&HashSet<PathBuf>>, plan: &mut Plan) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            match active {
                Some(set) if is_work_folder(&path) && !set.contains(&std::fs::canonicalize(&path)?) => {
                    plan.superseded.push(path);
                }
                _ => walk(&path, None, plan)?,
            }
        } else if format_of(&path).is_some() && entry.file_name() != "log.ndjson" {
            plan.files.push(path);
        } else {
            plan.ignored.push(path);
        }
    }
    Ok(())
}

/// A SMART Fetch work folder name: `NNN.nickname`.
fn is_work_folder(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    name.split_once('.')
        .is_some_and(|(num, _)| !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()))
}

/// The work folder number of the numbered folder nearest to `path` (0 when none).
fn generation(path: &Path) -> u64 {
    path.ancestors()
        .skip(1)
        .find(|d| is_work_folder(d))
        .and_then(|d| d.file_name()?.to_string_lossy().split('.').next()?.parse().ok())
        .unwrap_or(0)
}

/// When `dir` is a SMART Fetch managed folder (top-level symlinks into its
/// numbered work folders), the work folders the links point into (canonical).
fn active_work_folders(dir: &Path) -> std::io::Result<Option<HashSet<PathBuf>>> {
    let real_dir = std::fs::canonicalize(dir)?;
    let mut active = HashSet::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_symlink() {
            continue;
        }
        let Ok(target) = std::fs::canonicalize(entry.path()) else {
            continue; // a broken link: the walk lists it
        };
        let folder = target
            .strip_prefix(&real_dir)
            .ok()
            .and_then(|rel| rel.components().next())
            .map(|c| real_dir.join(c));
        if let Some(folder) = folder.filter(|f| is_work_folder(f) && f.is_dir()) {
            active.insert(folder);
        }
    }
    Ok((!active.is_empty()).then_some(active))
}

fn file_rank(p: &Path) -> u8 {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    if name.starts_with("Patient") {
        0
    } else if name.starts_with("Medication.") || name == "Medication.ndjson" {
        1
    } else {
        2
    }
}

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON document (Bundle or resource).
    Json {
        /// Gzip-compressed.
        gzip: bool,
    },
    /// One resource per line.
    Ndjson {
        /// Gzip-compressed.
        gzip: bool,
    },
}

/// The format of a file, from its name.
pub fn format_of(path: &Path) -> Option<Format> {
    let name = path.file_name()?.to_string_lossy().to_lowercase();
    let (base, gzip) = match name.strip_suffix(".gz") {
        Some(b) => (b.to_string(), true),
        None => (name, false),
    };
    if base.ends_with(".ndjson") || base.ends_with(".jsonl") {
        Some(Format::Ndjson { gzip })
    } else if base.ends_with(".json") {
        Some(Format::Json { gzip })
    } else {
        None
    }
}

/// The size of the buffers files are read through (and gzip decompressed into).
pub const READ_BUFFER: usize = 1 << 16;

/// The buffers every gzip NDJSON read goes through, one thread or several:
/// flate2 drops the output of the call that meets damage, so only the same
/// buffers make a damaged file end after the same bytes wherever it is read.
pub fn gunzip<R: Read>(raw: R) -> BufReader<flate2::read::MultiGzDecoder<BufReader<R>>> {
    BufReader::with_capacity(
        READ_BUFFER,
        flate2::read::MultiGzDecoder::new(BufReader::with_capacity(READ_BUFFER, raw)),
    )
}

/// Opens `path` (decompressing gzip), counting raw bytes read into `progress`.
pub fn open(path: &Path, gzip: bool, progress: impl Fn(u64) + 'static) -> std::io::Result<Box<dyn BufRead>> {
    let file = Counting {
        inner: File::open(path)?,
        progress: Box::new(progress),
    };
    Ok(if gzip {
        Box::new(gunzip(file))
    } else {
        Box::new(BufReader::with_capacity(READ_BUFFER, file))
    })
}

/// `inner`, counting bytes read from it into `progress`.
pub fn counting<R: Read>(inner: R, progress: impl Fn(u64) + 'static) -> impl Read {
    Counting {
        inner,
        progress: Box::new(progress),
    }
}

struct Counting<R> {
    inner: R,
    progress: Box<dyn Fn(u64)>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.progress)(n as u64);
        Ok(n)
    }
}

/// Streams an NDJSON reader, calling `f` per non-blank line.
pub fn read_ndjson(file: Arc<str>, reader: impl BufRead, f: &mut dyn FnMut(Item<'_>)) -> std::io::Result<()> {
    read_ndjson_from(file, reader, 1, f)
}

/// As [`read_ndjson`], for a stretch of a file whose first line is line `first_line` (1-based).
pub fn read_ndjson_from(
    file: Arc<str>,
    mut reader: impl BufRead,
    first_line: u64,
    f: &mut dyn FnMut(Item<'_>),
) -> std::io::Result<()> {
    // Lines are handed out of the reader's buffer where they lie whole in it; only a line
    // cut by the buffer's end is copied (`carry`).
    let mut carry = Vec::new();
    let mut line = first_line.saturating_sub(1);
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            if !carry.is_empty() {
                deliver_line(&file, line + 1, &carry, f);
            }
            return Ok(());
        }
        let mut start = 0;
        for newline in memchr::memchr_iter(b'\n', chunk) {
            line += 1;
            let piece = &chunk[start..=newline];
            if carry.is_empty() {
                deliver_line(&file, line, piece, f);
            } else {
                carry.extend_from_slice(piece);
                deliver_line(&file, line, &carry, f);
                carry.clear();
            }
            start = newline + 1;
        }
        carry.extend_from_slice(&chunk[start..]);
        let used = chunk.len();
        reader.consume(used);
    }
}

/// One NDJSON line (with its newline, if any) as an item; blank lines give none.
fn deliver_line(file: &Arc<str>, line: u64, bytes: &[u8], f: &mut dyn FnMut(Item<'_>)) {
    let location = Location {
        file: file.clone(),
        pos: Pos::Line(line),
    };
    // simdutf8 for the check (with the buffer reads above it took the instructions of a
    // 100k-line run from 1.48 G to 1.38 G); std's only to name where an invalid byte is.
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) if text.trim().is_empty() => {}
        Ok(text) => f(Item::Resource {
            location,
            // A byte order mark starts a file a Windows tool wrote (or each part of a `cat`).
            text: text.trim_start_matches('\u{feff}').trim_end(),
            full_url: None,
        }),
        Err(_) => f(Item::Unreadable {
            location,
            invalid_utf8: true,
            message: format!(
                "invalid UTF-8 at byte {}",
                std::str::from_utf8(bytes).err().map_or(0, |e| e.valid_up_to())
            ),
        }),
    }
}

/// Streams a JSON document: each entry of a Bundle, or the document itself when
/// it is a single resource. A syntax error ends the file with an `Unreadable`
/// item; the entries before it have been delivered.
pub fn read_json(file: Arc<str>, reader: impl Read, f: &mut dyn FnMut(Item<'_>)) {
    // A Bundle that says so first is read from a buffer (much faster); the rest streams through serde.
    if let Err((mut read, reader)) = super::bundle::read_bundle(&file, reader, f) {
        if read.starts_with(super::bundle::BOM) {
            read.drain(..super::bundle::BOM.len());
        }
        read_json_streaming(file, std::io::Cursor::new(read).chain(reader), f);
    }
}

/// [`read_json`] through serde_json's streaming reader.
pub(super) fn read_json_streaming(file: Arc<str>, reader: impl Read, f: &mut dyn FnMut(Item<'_>)) {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = Top {
        file: file.clone(),
        f: &mut *f,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    if let Err(e) = result {
        let invalid_utf8 = e.is_io();
        let message = if e.is_io() {
            "not UTF-8 or unreadable".to_string()
        } else {
            format!("line {} column {}: {}", e.line(), e.column(), short(&e))
        };
        f(Item::Unreadable {
            location: Location { file, pos: Pos::Whole },
            invalid_utf8,
            message,
        });
    }
}

struct Top<'f> {
    file: Arc<str>,
    f: &'f mut dyn FnMut(Item<'_>),
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "fullUrl", default)]
    full_url: Option<String>,
    #[serde(default)]
    resource: Option<Box<RawValue>>,
    #[serde(default)]
    request: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    response: Option<serde::de::IgnoredAny>,
}

impl<'de> DeserializeSeed<'de> for Top<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Top<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a FHIR resource, a Bundle or an array of resources")
    }

    /// A JSON array of resources (some tools write one instead of a Bundle
    /// or NDJSON): each element read as an entry of a Bundle would be.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            let location = Location {
                file: self.file.clone(),
                pos: Pos::Entry(index),
            };
            (self.f)(Item::Resource {
                location,
                text: raw.get(),
                full_url: None,
            });
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut rest: Vec<(String, Box<RawValue>)> = Vec::new();
        let mut is_bundle = false;
        let mut index = 0usize;
        while let Some(key) = map.next_key::<String>()? {
            if key == "entry" && is_bundle {
                map.next_value_seed(Entries {
                    file: &self.file,
                    f: &mut *self.f,
                    index: &mut index,
                })?;
                continue;
            }
            let value: Box<RawValue> = map.next_value()?;
            if key == "resourceType" {
                is_bundle = value.get() == "\"Bundle\"";
            }
            rest.push((key, value));
        }
        let location = |pos| Location {
            file: self.file.clone(),
            pos,
        };
        if is_bundle {
            // `entry` came before `resourceType`: it was kept raw.
            if let Some((_, raw)) = rest.iter().find(|(k, _)| k == "entry") {
                let entries: Vec<Entry> = serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
                for e in &entries {
                    deliver(e, location(Pos::Entry(index)), self.f);
                    index += 1;
                }
            }
            return Ok(());
        }
        let mut text = String::from("{");
        for (i, (k, v)) in rest.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&serde_json::to_string(k).map_err(serde::de::Error::custom)?);
            text.push(':');
            text.push_str(v.get());
        }
        text.push('}');
        (self.f)(Item::Resource {
            location: location(Pos::Whole),
            text: &text,
            full_url: None,
        });
        Ok(())
    }
}

fn deliver(e: &Entry, location: Location, f: &mut dyn FnMut(Item<'_>)) {
    let exchange = e.request.is_some() || e.response.is_some();
    deliver_entry(e.resource.as_deref(), e.full_url.as_deref(), exchange, location, f);
}

struct Entries<'a> {
    file: &'a Arc<str>,
    f: &'a mut dyn FnMut(Item<'_>),
    index: &'a mut usize,
}

impl<'de> DeserializeSeed<'de> for Entries<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of Bundle entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(entry) = seq.next_element::<Entry>()? {
            deliver(
                &entry,
                Location {
                    file: self.file.clone(),
                    pos: Pos::Entry(*self.index),
                },
                self.f,
            );
            *self.index += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_json(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        read_json("f.json".into(), text.as_bytes(), &mut |item| match item {
            Item::Resource { location, text, .. } => out.push(format!("{location} {text}")),
            Item::Unreadable { location, message, .. } => out.push(format!("{location} ERR {message}")),
            Item::NoResource { location } => out.push(format!("{location} NO RESOURCE")),
        });
        out
    }

    #[test]
    fn streams_bundle_entries_and_single_resources() {
        let bundle = r#"{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","id":"a"}},{"resource":{"resourceType":"Patient","id":"b"}}]}"#;
        let got = collect_json(bundle);
        assert_eq!(
            got,
            vec![
                r#"f.json#entry[0] {"resourceType":"Patient","id":"a"}"#.to_string(),
                r#"f.json#entry[1] {"resourceType":"Patient","id":"b"}"#.to_string(),
            ]
        );
        let late = r#"{"entry":[{"resource":{"resourceType":"Patient","id":"a"}}],"resourceType":"Bundle"}"#;
        assert_eq!(collect_json(late).len(), 1);
        let single = r#"{"resourceType":"Patient","id":"a","gender":"male"}"#;
        assert_eq!(collect_json(single), vec![format!("f.json {single}")]);
    }

    #[test]
    fn a_broken_bundle_keeps_the_entries_before_the_break() {
        let broken = r#"{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"a"}},{"resource":{"resourceType""#;
        let got = collect_json(broken);
        assert_eq!(got.len(), 2);
        assert!(got[1].starts_with("f.json ERR line 1"), "{got:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_smart_fetch_managed_folder_reads_its_linked_exports_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for work in ["001.old", "002.full", "003.since"] {
            std::fs::create_dir(root.join(work)).unwrap();
            std::fs::write(root.join(work).join("Condition.001.ndjson"), "").unwrap();
            std::fs::write(root.join(work).join("log.ndjson"), "").unwrap();
        }
        // SMART Fetch links the active exports (002 full, 003 since) oldest first; 001 is superseded.
        let link = |n: &str, to: &str| std::os::unix::fs::symlink(to, root.join(n)).unwrap();
        link("Condition.001.ndjson", "002.full/Condition.001.ndjson");
        link("Condition.002.ndjson", "003.since/Condition.001.ndjson");
        let plan = plan(&[root.to_path_buf()]).unwrap();
        let names: Vec<_> = plan.files.iter().map(|p| p.strip_prefix(root).unwrap()).collect();
        assert_eq!(
            names,
            [
                Path::new("003.since/Condition.001.ndjson"),
                Path::new("002.full/Condition.001.ndjson")
            ],
            "newest export first, each file once (named by where it lies)"
        );
        assert_eq!(plan.superseded, [root.join("001.old")]);
        assert_eq!(
            plan.ignored.len(),
            2,
            "the two active log.ndjson files: {:?}",
            plan.ignored
        );
    }

    #[test]
    fn ndjson_reports_bad_utf8_by_line() {
        let data =
            b"{\"resourceType\":\"Patient\",\"id\":\"a\"}\n\n\xff\xfe\n{\"resourceType\":\"Patient\",\"id\":\"b\"}";
        let mut out = Vec::new();
        read_ndjson("p.ndjson".into(), &data[..], &mut |item| match item {
            Item::Resource { location, .. } => out.push(format!("{location} ok")),
            Item::Unreadable { location, .. } | Item::NoResource { location } => out.push(format!("{location} bad")),
        })
        .unwrap();
        assert_eq!(out, vec!["p.ndjson:1 ok", "p.ndjson:3 bad", "p.ndjson:4 ok"]);
    }

    #[test]
    fn ndjson_lines_cut_by_the_read_buffer_come_out_whole() {
        let data = "{\"a\":1}\r\n\n  \n{\"b\":\"\u{e9}t\u{e9}\"}\n{\"c\":[1,2,3,4,5,6,7,8,9]}\n{\"d\":4}";
        let read = |capacity: usize| {
            let mut out = Vec::new();
            let reader = std::io::BufReader::with_capacity(capacity, data.as_bytes());
            read_ndjson_from("p".into(), reader, 1, &mut |item| match item {
                Item::Resource { location, text, .. } => out.push(format!("{location} {text}")),
                Item::Unreadable { location, .. } | Item::NoResource { location } => {
                    out.push(format!("{location} bad"))
                }
            })
            .unwrap();
            out
        };
        let whole = read(1 << 16);
        assert_eq!(
            whole,
            [
                "p:1 {\"a\":1}",
                "p:4 {\"b\":\"\u{e9}t\u{e9}\"}",
                "p:5 {\"c\":[1,2,3,4,5,6,7,8,9]}",
                "p:6 {\"d\":4}"
            ]
        );
        for capacity in 1..12 {
            assert_eq!(read(capacity), whole, "buffer of {capacity} bytes");
        }
    }
}
