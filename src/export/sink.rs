//! The de-identified resources of a bundle on their way to its files, off the
//! heap: each is written to a temporary record file as it is made (its NDJSON
//! line and its `bundle.json` entry), and only its type, pseudonym and place
//! stay in memory. [`Sink::finish`] sorts those by type and pseudonym and
//! copies the records out into `ndjson/{Type}.ndjson` and `bundle.json`, so an
//! export's memory does not grow with the resources it writes (tens of bytes
//! each instead of the resource).
//!
//! `bundle.json` comes out byte for byte as `serde_json::to_string_pretty` of
//! the whole Bundle would write it (tested below). This module owns the two
//! files' layout; which resources go in is `bundle`'s, their content `deid`'s.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ExportError;
use crate::spill::Log;

/// The head of `bundle.json` up to the first entry, and its tail.
const HEAD: &str = "{\n  \"resourceType\": \"Bundle\",\n  \"type\": \"collection\",\n  \"entry\": [";
const TAIL: &str = "\n  ]\n}\n";
const EMPTY: &str = "{\n  \"resourceType\": \"Bundle\",\n  \"type\": \"collection\",\n  \"entry\": []\n}\n";

/// One resource's place in the record file.
struct Placed {
    resource_type: String,
    pseudonym: String,
    at: u64,
}

/// De-identified resources held in a temporary file until they are written.
#[derive(Default)]
pub(super) struct Sink {
    log: Log,
    placed: Vec<Placed>,
}

impl Sink {
    /// Keeps `resource` (of `resource_type`, known by `pseudonym`) for the bundle.
    pub(super) fn push(&mut self, resource_type: &str, pseudonym: &str, resource: &Value) -> std::io::Result<()> {
        let line = resource.to_string();
        let entry = entry_text(resource)?;
        let at = self.log.push_at(&(line, entry))?;
        self.placed.push(Placed {
            resource_type: resource_type.to_string(),
            pseudonym: pseudonym.to_string(),
            at,
        });
        Ok(())
    }

    /// Writes `ndjson/{Type}.ndjson` and `bundle.json` into `dir`, resources
    /// sorted by type and pseudonym; returns the count per type.
    pub(super) fn finish(mut self, dir: &Path) -> Result<BTreeMap<String, u64>, ExportError> {
        self.log.flush().map_err(|e| output(dir, e))?;
        self.placed
            .sort_by(|a, b| (&a.resource_type, &a.pseudonym).cmp(&(&b.resource_type, &b.pseudonym)));
        let bundle_path = dir.join("bundle.json");
        let mut bundle = create(&bundle_path)?;
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        // The NDJSON file of the type being written: (type, path, writer).
        let mut lines: Option<(String, PathBuf, BufWriter<File>)> = None;
        let head = if self.placed.is_empty() { EMPTY } else { HEAD };
        bundle.write_all(head.as_bytes()).map_err(|e| output(&bundle_path, e))?;
        for (i, p) in self.placed.iter().enumerate() {
            let (line, entry): (String, String) = self.log.read_at(p.at).map_err(|e| output(dir, e))?;
            if lines.as_ref().is_none_or(|(t, _, _)| *t != p.resource_type) {
                finish_file(lines.take())?;
                let path = dir.join(format!("ndjson/{}.ndjson", p.resource_type));
                let w = create(&path)?;
                lines = Some((p.resource_type.clone(), path, w));
            }
            if let Some((_, path, w)) = lines.as_mut() {
                writeln!(w, "{line}").map_err(|e| output(path, e))?;
            }
            *counts.entry(p.resource_type.clone()).or_default() += 1;
            let sep = if i == 0 { "\n" } else { ",\n" };
            write!(bundle, "{sep}{entry}").map_err(|e| output(&bundle_path, e))?;
        }
        finish_file(lines)?;
        if !self.placed.is_empty() {
            bundle.write_all(TAIL.as_bytes()).map_err(|e| output(&bundle_path, e))?;
        }
        bundle.flush().map_err(|e| output(&bundle_path, e))?;
        Ok(counts)
    }
}

/// `{"resource": resource}` pretty-printed as an element of the Bundle's
/// `entry` array: indented by two levels (four spaces).
fn entry_text(resource: &Value) -> std::io::Result<String> {
    let entry = serde_json::json!({ "resource": resource });
    let pretty = serde_json::to_string_pretty(&entry).map_err(std::io::Error::other)?;
    let mut out = String::with_capacity(pretty.len() + pretty.len() / 8);
    // JSON strings hold no raw line break, so every line is one of the layout's.
    for (i, line) in pretty.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str("    ");
        out.push_str(line);
    }
    Ok(out)
}

fn output(path: &Path, source: std::io::Error) -> ExportError {
    ExportError::Output {
        path: path.to_path_buf(),
        source,
    }
}

fn create(path: &Path) -> Result<BufWriter<File>, ExportError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| output(path, e))?;
    }
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 16, f))
        .map_err(|e| output(path, e))
}

fn finish_file(lines: Option<(String, PathBuf, BufWriter<File>)>) -> Result<(), ExportError> {
    let Some((_, path, mut w)) = lines else { return Ok(()) };
    w.flush().map_err(|e| output(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn written(resources: &[(&str, &str, Value)]) -> (String, BTreeMap<String, String>) {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = Sink::default();
        for (t, p, r) in resources {
            sink.push(t, p, r).unwrap();
        }
        sink.finish(dir.path()).unwrap();
        let bundle = std::fs::read_to_string(dir.path().join("bundle.json")).unwrap();
        let mut files = BTreeMap::new();
        for t in ["Observation", "Patient"] {
            if let Ok(text) = std::fs::read_to_string(dir.path().join(format!("ndjson/{t}.ndjson"))) {
                files.insert(t.to_string(), text);
            }
        }
        (bundle, files)
    }

    #[test]
    fn bundle_json_is_what_to_string_pretty_of_the_whole_bundle_writes() {
        let obs = |p: &str| json!({"resourceType": "Observation", "id": p, "valueQuantity": {"value": 1.5}, "note": [{"text": "a\nb"}]});
        let pat = json!({"resourceType": "Patient", "id": "p1", "birthDate": "2010"});
        let (bundle, files) = written(&[
            ("Observation", "o2", obs("o2")),
            ("Patient", "p1", pat.clone()),
            ("Observation", "o1", obs("o1")),
        ]);
        let whole = json!({"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": obs("o1")}, {"resource": obs("o2")}, {"resource": pat}]});
        assert_eq!(bundle, serde_json::to_string_pretty(&whole).unwrap() + "\n");
        assert_eq!(files["Observation"], format!("{}\n{}\n", obs("o1"), obs("o2")));
        assert_eq!(files["Patient"].lines().count(), 1);
    }

    #[test]
    fn an_empty_bundle_is_what_to_string_pretty_writes() {
        let (bundle, files) = written(&[]);
        let whole = json!({"resourceType": "Bundle", "type": "collection", "entry": []});
        assert_eq!(bundle, serde_json::to_string_pretty(&whole).unwrap() + "\n");
        assert!(files.is_empty());
    }
}
