//! The de-identified resources of a bundle on their way to its files, off the
//! heap: each is written to a temporary record file as it is made (its JSON
//! text, one line), and only its type, pseudonym and place stay in memory.
//! [`Sink::finish`] sorts those by type and pseudonym and copies the records
//! out into `ndjson/{Type}.ndjson` and `bundle.json`, so an export's memory
//! does not grow with the resources it writes (tens of bytes each instead of
//! the resource).
//!
//! `bundle.json` holds one entry a line, `{"resource":` and the resource's
//! NDJSON line `}`, between a first line opening the Bundle and a last line
//! closing it: the same JSON as `serde_json` of the whole Bundle (tested
//! below), and each entry's resource text is its NDJSON line byte for byte.
//! This module owns the two files' layout; which resources go in is
//! `bundle`'s, their content `deid`'s.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use super::hashed::{Hashed, Hashes};
use super::ExportError;

/// The head of `bundle.json` up to the first entry, and its tail.
const HEAD: &str = "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[";
const TAIL: &str = "\n]}\n";
const EMPTY: &str = "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[]}\n";

/// One resource's place in the record file: its type, pseudonym, offset and
/// length (sorted in this order: by type and pseudonym, a tie in the order pushed).
type Placed = (String, String, u64, u64);

/// Places held in memory before they are sorted on disk (about 100 bytes each).
const PLACED_BUDGET: usize = 1 << 16;

/// De-identified resources held in a temporary file until they are written.
pub(super) struct Sink {
    /// The texts one after another, no separator (an anonymous temporary
    /// file, unlinked at creation: nothing is left behind).
    file: Option<BufWriter<File>>,
    end: u64,
    placed: crate::sorted::Sorter<Placed>,
}

impl Default for Sink {
    fn default() -> Self {
        Self::with_budget(PLACED_BUDGET)
    }
}

impl Sink {
    /// Keeps `line` (the compact JSON of a resource of `resource_type`, known by `pseudonym`) for the bundle.
    pub(super) fn push(&mut self, resource_type: &str, pseudonym: &str, line: &str) -> std::io::Result<()> {
        let w = match self.file.as_mut() {
            Some(w) => w,
            None => self
                .file
                .insert(BufWriter::with_capacity(1 << 16, tempfile::tempfile()?)),
        };
        w.write_all(line.as_bytes())?;
        let (at, len) = (self.end, line.len() as u64);
        self.end += len;
        self.placed
            .push((resource_type.to_string(), pseudonym.to_string(), at, len))
    }

    /// A sink holding at most `budget` places in memory (the rest sorted on disk).
    fn with_budget(budget: usize) -> Self {
        Self {
            file: None,
            end: 0,
            placed: crate::sorted::Sorter::new(budget),
        }
    }

    /// Writes `ndjson/{Type}.ndjson` and `bundle.json` into `dir`, resources
    /// sorted by type and pseudonym, handing their texts to `each` in that
    /// order, a stretch at a time; returns the count per type. The files'
    /// SHA-256 go into `hashes` as they are written.
    pub(super) fn finish(
        mut self,
        dir: &Path,
        hashes: &mut Hashes,
        mut each: impl FnMut(&[String]),
    ) -> Result<BTreeMap<String, u64>, ExportError> {
        let records = match self.file.take() {
            Some(w) => Some(w.into_inner().map_err(|e| output(dir, e.into_error()))?),
            None => None,
        };
        let empty = self.placed.len() == 0;
        let placed = self.placed.finish().map_err(|e| output(dir, e))?;
        let mut placed = placed.iter().map_err(|e| output(dir, e))?;
        let bundle_path = dir.join("bundle.json");
        let mut bundle = create(&bundle_path)?;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        // The NDJSON file of the type being written: (type, path, writer).
        let mut lines: Option<(String, PathBuf, BufWriter<Hashed<File>>)> = None;
        let head = if empty { EMPTY } else { HEAD };
        bundle.write_all(head.as_bytes()).map_err(|e| output(&bundle_path, e))?;
        let mut stretch: Vec<String> = Vec::with_capacity(super::recount::STRETCH);
        let mut buf = Vec::new();
        let mut i = 0u64;
        while let Some((resource_type, _, at, len)) = placed.next().map_err(|e| output(dir, e))? {
            buf.resize(usize::try_from(len).unwrap_or(usize::MAX), 0);
            if let Some(f) = &records {
                crate::spill::ReadAt::new(f, at)
                    .read_exact(&mut buf)
                    .map_err(|e| output(dir, e))?;
            }
            let line = std::str::from_utf8(&buf).map_err(|e| output(dir, std::io::Error::other(e)))?;
            if lines.as_ref().is_none_or(|(t, _, _)| *t != resource_type) {
                finish_file(dir, lines.take(), hashes)?;
                let path = dir.join(format!("ndjson/{resource_type}.ndjson"));
                let w = create(&path)?;
                lines = Some((resource_type.clone(), path, w));
            }
            if let Some((_, path, w)) = lines.as_mut() {
                w.write_all(line.as_bytes())
                    .and_then(|()| w.write_all(b"\n"))
                    .map_err(|e| output(path, e))?;
            }
            *counts.entry(resource_type).or_default() += 1;
            let sep: &[u8] = if i == 0 { b"\n" } else { b",\n" };
            [sep, b"{\"resource\":", line.as_bytes(), b"}"]
                .iter()
                .try_for_each(|part| bundle.write_all(part))
                .map_err(|e| output(&bundle_path, e))?;
            stretch.push(line.to_string());
            if stretch.len() == super::recount::STRETCH {
                each(&stretch);
                stretch.clear();
            }
            i += 1;
        }
        if !stretch.is_empty() {
            each(&stretch);
        }
        finish_file(dir, lines, hashes)?;
        if !empty {
            bundle.write_all(TAIL.as_bytes()).map_err(|e| output(&bundle_path, e))?;
        }
        finish_file(dir, Some(("".into(), bundle_path, bundle)), hashes)?;
        Ok(counts)
    }
}

fn output(path: &Path, source: std::io::Error) -> ExportError {
    ExportError::Output {
        path: path.to_path_buf(),
        source,
    }
}

fn create(path: &Path) -> Result<BufWriter<Hashed<File>>, ExportError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| output(path, e))?;
    }
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 16, Hashed::new(f)))
        .map_err(|e| output(path, e))
}

/// Flushes a written file and keeps its hash under its path relative to `dir`.
fn finish_file(
    dir: &Path,
    lines: Option<(String, PathBuf, BufWriter<Hashed<File>>)>,
    hashes: &mut Hashes,
) -> Result<(), ExportError> {
    let Some((_, path, w)) = lines else { return Ok(()) };
    let hashed = w.into_inner().map_err(|e| output(&path, e.into_error()))?;
    hashes.insert(dir, &path, hashed.finish());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    type Written = (String, BTreeMap<String, String>, Vec<String>);

    fn written(resources: &[(&str, &str, Value)]) -> Written {
        let tiny = written_with(resources, 1);
        let whole = written_with(resources, PLACED_BUDGET);
        assert_eq!(tiny, whole, "a budget of one place writes the same");
        whole
    }

    fn written_with(resources: &[(&str, &str, Value)], budget: usize) -> Written {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::with_budget(budget);
        for (t, p, r) in resources {
            sink.push(t, p, &r.to_string()).unwrap();
        }
        let mut fed = Vec::new();
        let mut hashes = Hashes::default();
        sink.finish(dir.path(), &mut hashes, |s| fed.extend_from_slice(s))
            .unwrap();
        let listed = crate::export::manifest::hash_files(dir.path()).unwrap();
        assert_eq!(
            hashes.into_map(),
            listed,
            "the hashes made while writing are the files'"
        );
        let bundle = std::fs::read_to_string(dir.path().join("bundle.json")).unwrap();
        let mut files = BTreeMap::new();
        for t in ["Observation", "Patient"] {
            if let Ok(text) = std::fs::read_to_string(dir.path().join(format!("ndjson/{t}.ndjson"))) {
                files.insert(t.to_string(), text);
            }
        }
        (bundle, files, fed)
    }

    #[test]
    fn bundle_json_is_the_whole_bundle_one_entry_a_line_each_its_ndjson_line() {
        let obs = |p: &str| json!({"resourceType": "Observation", "id": p, "valueQuantity": {"value": 1.5}, "note": [{"text": "a\nb"}]});
        let pat = json!({"resourceType": "Patient", "id": "p1", "birthDate": "2010"});
        let (bundle, files, fed) = written(&[
            ("Observation", "o2", obs("o2")),
            ("Patient", "p1", pat.clone()),
            ("Observation", "o1", obs("o1")),
        ]);
        let whole = json!({"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": obs("o1")}, {"resource": obs("o2")}, {"resource": pat}]});
        assert_eq!(serde_json::from_str::<Value>(&bundle).unwrap(), whole);
        assert_eq!(files["Observation"], format!("{}\n{}\n", obs("o1"), obs("o2")));
        assert_eq!(files["Patient"], format!("{pat}\n"));
        let lines: Vec<&str> = bundle.lines().collect();
        assert_eq!(lines.len(), 5, "head, one line per entry, tail");
        let ndjson: Vec<&str> = files.values().flat_map(|t| t.lines()).collect();
        assert_eq!(fed, ndjson, "the texts handed on, in the bundle's order");
        for (entry, line) in lines[1..4].iter().zip(&ndjson) {
            let entry = entry.trim_end_matches(',');
            assert_eq!(entry, format!("{{\"resource\":{line}}}"));
        }
    }

    #[test]
    fn an_empty_bundle_is_the_bundle_without_entries() {
        let (bundle, files, fed) = written(&[]);
        let whole = json!({"resourceType": "Bundle", "type": "collection", "entry": []});
        assert_eq!(bundle, format!("{whole}\n"));
        assert!(files.is_empty() && fed.is_empty());
    }
}
