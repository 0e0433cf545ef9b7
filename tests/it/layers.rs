//! Modules form a DAG (issue 22, item 2): each module of `src/` sits in a
//! layer and imports only modules of lower layers, or of its own layer one
//! way (two modules of a layer never import each other). Inside `fhir/` and
//! `mock/` the submodules follow tables of their own.
//!
//! The check reads `src/` as text. It follows `crate::…` paths (also grouped:
//! `crate::{a::x, b}`, and the root re-exports of `lib.rs` such as
//! `crate::Error`) and `super::…` paths, in code only: `//` comments and
//! `//!`/`///` docs are skipped. Test code may look anywhere (tests build
//! fixtures from `demo`, `bench_data` or the mappings): an inline
//! `#[cfg(test)] mod … { … }` and a file declared `#[cfg(test)] mod …;` are
//! not read. A submodule's `mod.rs` is its module itself: it may use its
//! children, and children may use what it defines (`super::Config`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers of `src/`, lowest first.
const LAYERS: &[(&str, &[&str])] = &[
    // Pure: the case model, findings, temporary files, generated data. No JSON reading, HTTP or SQL.
    ("pure", &["domain", "report", "spill", "sorted", "demo", "bench_data"]),
    // Raw data: FHIR bytes and resources, kept resources (SQLite), HTTP with FHIR servers.
    ("raw", &["fhir", "store", "client"]),
    // Meaning: what a resource means for a column; the mock EHR (serves FHIR, knows no meaning).
    ("meaning", &["mapping", "mock"]),
    // Facts: collected data per patient, the run's input/output errors, what to fetch, pushing Bundles.
    ("facts", &["collect", "run_error", "sync", "push"]),
    // The registry's configuration: its store and sites (read, checked; no HTTP, no store access).
    ("registry", &["registry"]),
    // Reading: inputs or a store → collected data.
    ("reading", &["pipeline"]),
    // Outputs: the registry's tables, study bundles, case reports → FHIR, validation.
    (
        "outputs",
        &["cohort", "deid", "export", "to_fhir", "profile", "facts_table"],
    ),
    // The registry service: schedules syncs, rebuilds the outputs, serves the API and page.
    ("service", &["service"]),
    // The library's API edge: the top-level error wrapping every layer's, and the exit codes.
    ("api", &["error", "exit"]),
];

/// A layer table: (layer name, its modules), lowest first.
type Table = &'static [(&'static str, &'static [&'static str])];

/// Submodule layers of the modules checked inside, lowest first.
const INNER: &[(&str, Table)] = &[
    (
        "fhir",
        &[
            ("pieces", &["item", "reference", "skim", "outcome", "compact"]),
            ("readers", &["bundle", "direct", "fast", "peek"]),
            ("deciders", &["source", "parse", "prefilter"]),
        ],
    ),
    (
        "mock",
        &[
            ("pieces", &["call", "clock", "faults", "journal", "params"]),
            ("data", &["store", "vendor"]),
            ("queries", &["search", "auth"]),
            ("handlers", &["bulk", "write"]),
            ("routing", &["respond"]),
        ],
    ),
];

/// One module (`domain`) or submodule (`fhir::source`) as the check sees it.
type Unit = (String, Option<String>);

fn layer_of(table: &[(&str, &[&str])], name: &str) -> Option<usize> {
    table.iter().position(|(_, mods)| mods.contains(&name))
}

/// Names of the modules directly below `dir` (files `x.rs`, folders `x/`).
fn modules_in(dir: &Path, skip: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let name = name.strip_suffix(".rs").map(str::to_string).unwrap_or(name);
        if !skip.contains(&name.as_str()) {
            out.insert(name);
        }
    }
    out
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file below `src/` (`fhir/bundle/mod.rs` → `[fhir, bundle]`).
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().to_string()).collect();
    let last = parts.pop().unwrap();
    if last != "mod.rs" {
        parts.push(last.trim_end_matches(".rs").to_string());
    }
    parts
}

/// The folder where a file's `mod x;` children live.
fn child_dir(file: &Path) -> PathBuf {
    if file.file_name().is_some_and(|n| n == "mod.rs") {
        file.parent().unwrap().to_path_buf()
    } else {
        file.with_extension("")
    }
}

/// The file's lines with comments and test code blanked (line numbers kept),
/// and the files it declares as test modules.
fn code_lines(file: &Path, text: &str) -> (Vec<String>, Vec<PathBuf>) {
    let mut lines = Vec::new();
    let mut test_files = Vec::new();
    let mut in_test = false;
    let mut after_cfg_test = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if in_test {
            in_test = line != "}";
            lines.push(String::new());
            continue;
        }
        if after_cfg_test {
            after_cfg_test = false;
            if let Some(name) = trimmed
                .strip_prefix("mod ")
                .or_else(|| trimmed.strip_prefix("pub(crate) mod "))
            {
                if let Some(name) = name.strip_suffix(';') {
                    let dir = child_dir(file);
                    test_files.push(dir.join(format!("{name}.rs")));
                    test_files.push(dir.join(name).join("mod.rs"));
                } else {
                    in_test = line.starts_with("mod ") && trimmed.ends_with('{');
                }
                lines.push(String::new());
                continue;
            }
        }
        if trimmed == "#[cfg(test)]" {
            after_cfg_test = true;
        }
        if trimmed.starts_with("//") {
            lines.push(String::new());
        } else {
            lines.push(line.to_string());
        }
    }
    (lines, test_files)
}

/// Reads a use tree at `s` (after `crate::` or `super::`): every path it names.
fn use_tree(s: &[u8], i: &mut usize, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && s[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    skip_ws(i);
    if *i < s.len() && s[*i] == b'{' {
        *i += 1;
        loop {
            skip_ws(i);
            if *i >= s.len() || s[*i] == b'}' {
                *i += 1;
                return;
            }
            use_tree(s, i, prefix, out);
            skip_ws(i);
            if *i < s.len() && s[*i] == b',' {
                *i += 1;
            }
        }
    }
    let start = *i;
    while *i < s.len() && (s[*i].is_ascii_alphanumeric() || s[*i] == b'_') {
        *i += 1;
    }
    let mut path = prefix.to_vec();
    if *i > start {
        path.push(String::from_utf8_lossy(&s[start..*i]).to_string());
    }
    if s[*i..].starts_with(b"::") {
        *i += 2;
        return use_tree(s, i, &path, out);
    }
    if s[*i..].starts_with(b" as ") {
        *i += 4;
        while *i < s.len() && (s[*i].is_ascii_alphanumeric() || s[*i] == b'_') {
            *i += 1;
        }
    }
    out.push(path);
}

/// One import found: the line and the absolute path it names.
struct Import {
    line: usize,
    path: Vec<String>,
}

fn imports(lines: &[String], module: &[String], reexports: &BTreeMap<String, String>) -> Vec<Import> {
    // Joined so that a grouped `use` may span lines; `line_at` maps offsets back.
    let text = lines.join("\n");
    let s = text.as_bytes();
    let line_at = |off: usize| s[..off].iter().filter(|&&b| b == b'\n').count() + 1;
    let mut found = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let word_start = i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_' || s[i - 1] == b':');
        let (base, len): (Option<Vec<String>>, usize) = if word_start && s[i..].starts_with(b"crate::") {
            (Some(Vec::new()), 7)
        } else if word_start && s[i..].starts_with(b"super::") {
            let mut base = module.to_vec();
            let mut j = i;
            while s[j..].starts_with(b"super::") {
                base.pop();
                j += 7;
            }
            (Some(base), j - i)
        } else {
            (None, 1)
        };
        let Some(base) = base else {
            i += len;
            continue;
        };
        let line = line_at(i);
        let mut j = i + len;
        let mut paths = Vec::new();
        use_tree(s, &mut j, &base, &mut paths);
        for mut path in paths {
            if let Some(first) = path.first() {
                if let Some(module) = reexports.get(first) {
                    path.insert(0, module.clone());
                }
            }
            found.push(Import { line, path });
        }
        i = j.max(i + 1);
    }
    found
}

/// `pub use m::{A, B};` lines of `lib.rs`: `A` → `m`.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        for name in names.trim_matches(|c| "{};".contains(c)).split(',') {
            out.insert(name.trim().to_string(), module.to_string());
        }
    }
    out
}

fn unit_of(path: &[String], inner: &BTreeMap<&str, BTreeSet<String>>) -> Option<Unit> {
    let top = path.first()?.clone();
    let sub = inner
        .get(top.as_str())
        .and_then(|subs| path.get(1).filter(|s| subs.contains(*s)).cloned());
    Some((top, sub))
}

fn show(u: &Unit) -> String {
    match &u.1 {
        Some(sub) => format!("{}::{sub}", u.0),
        None => u.0.clone(),
    }
}

#[test]
fn modules_form_a_dag() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();

    // Every module is placed, and every placed module exists.
    let tops = modules_in(&src, &["lib", "bin"]);
    let placed: BTreeSet<String> = LAYERS
        .iter()
        .flat_map(|(_, m)| m.iter().map(|s| s.to_string()))
        .collect();
    for m in tops.difference(&placed) {
        problems.push(format!(
            "src/{m}: a module in no layer; place it in LAYERS (tests/it/layers.rs)"
        ));
    }
    for m in placed.difference(&tops) {
        problems.push(format!("LAYERS names `{m}`, which is not a module of src/"));
    }
    let mut inner = BTreeMap::new();
    for (top, table) in INNER {
        let subs = modules_in(&src.join(top), &["mod"]);
        let placed: BTreeSet<String> = table
            .iter()
            .flat_map(|(_, m)| m.iter().map(|s| s.to_string()))
            .collect();
        for m in subs.difference(&placed) {
            problems.push(format!(
                "src/{top}/{m}: a submodule in no layer; place it in INNER (tests/it/layers.rs)"
            ));
        }
        for m in placed.difference(&subs) {
            problems.push(format!(
                "INNER names `{top}::{m}`, which is not a submodule of src/{top}/"
            ));
        }
        inner.insert(*top, subs);
    }

    let reexports = root_reexports(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    files.sort();
    let mut texts = Vec::new();
    let mut test_files = BTreeSet::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap().to_path_buf();
        if rel == Path::new("lib.rs") || rel.starts_with("bin") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let (lines, tests) = code_lines(file, &text);
        test_files.extend(tests);
        texts.push((file.clone(), rel, lines));
    }

    // Edges between units: (from, to) → first place seen.
    let mut edges: BTreeMap<(Unit, Unit), String> = BTreeMap::new();
    for (file, rel, lines) in &texts {
        if test_files.contains(file) {
            continue;
        }
        let module = module_path(rel);
        let Some(from) = unit_of(&module, &inner) else {
            continue;
        };
        for import in imports(lines, &module, &reexports) {
            let Some(to) = unit_of(&import.path, &inner) else {
                continue;
            };
            let place = format!("src/{}:{}", rel.display(), import.line);
            let (Some(lf), Some(lt)) = (layer_of(LAYERS, &from.0), layer_of(LAYERS, &to.0)) else {
                continue;
            };
            if from.0 != to.0 {
                if lt > lf {
                    problems.push(format!(
                        "{place}: `{}` (layer {}) imports `{}` (layer {}), a higher layer",
                        from.0, LAYERS[lf].0, to.0, LAYERS[lt].0
                    ));
                }
                edges
                    .entry(((from.0.clone(), None), (to.0.clone(), None)))
                    .or_insert(place);
                continue;
            }
            // Inside a module checked by submodule: a facade (mod.rs) side is always fine.
            let (Some(fs), Some(ts)) = (&from.1, &to.1) else {
                continue;
            };
            if fs == ts {
                continue;
            }
            let table = INNER.iter().find(|(t, _)| *t == from.0).map(|(_, t)| *t).unwrap_or(&[]);
            if let (Some(lf), Some(lt)) = (layer_of(table, fs), layer_of(table, ts)) {
                if lt > lf {
                    problems.push(format!(
                        "{place}: `{}` (layer {}) imports `{}` (layer {}), a higher layer",
                        show(&from),
                        table[lf].0,
                        show(&to),
                        table[lt].0
                    ));
                }
            }
            edges.entry((from.clone(), to.clone())).or_insert(place);
        }
    }
    for ((a, b), place) in &edges {
        if a < b {
            if let Some(back) = edges.get(&(b.clone(), a.clone())) {
                problems.push(format!(
                    "{place}: `{}` imports `{}`, and {back}: `{}` imports `{}` (siblings must import one way)",
                    show(a),
                    show(b),
                    show(b),
                    show(a)
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the module graph is not a DAG:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_reads_grouped_and_relative_paths() {
    let lines: Vec<String> = [
        "use crate::{domain::Fact, fhir::{source::Item, skim}};",
        "use super::super::source::Item;",
        "let x = crate::Error::Spill;",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let reexports = root_reexports("pub use error::{Error, Result};");
    let module = ["fhir", "bundle", "cut"].map(String::from);
    let got: Vec<(usize, String)> = imports(&lines, &module, &reexports)
        .into_iter()
        .map(|i| (i.line, i.path.join("::")))
        .collect();
    let want = [
        (1, "domain::Fact"),
        (1, "fhir::source::Item"),
        (1, "fhir::skim"),
        (2, "fhir::source::Item"),
        (3, "error::Error::Spill"),
    ]
    .map(|(l, p)| (l, p.to_string()));
    assert_eq!(got, want);
}
