//! Input layouts: Bulk Data folders, gzip, SMART Fetch-style numbered folders with
//! top-level symlinks, `error/` and `deleted/` files.

use std::io::Write;

use imnm_fhir::report::IssueCode;
use serde_json::json;

use crate::support::{imnm_condition, observation, patient};

fn write_lines(path: &std::path::Path, lines: &[serde_json::Value]) {
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

fn gz(path: &std::path::Path, lines: &[serde_json::Value]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    for l in lines {
        writeln!(enc, "{l}").unwrap();
    }
    enc.finish().unwrap();
}

#[test]
fn numbered_folders_symlinks_error_and_deleted_files() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("001.2025-06-26");
    std::fs::create_dir_all(work.join("error")).unwrap();
    std::fs::create_dir_all(work.join("deleted")).unwrap();
    write_lines(&work.join("Patient.ndjson"), &[patient("p1"), patient("p2")]);
    gz(
        &work.join("Condition.000.ndjson.gz"),
        &[imnm_condition("c1", "p1"), imnm_condition("c2", "p2")],
    );
    let ck = observation(
        "o1",
        "http://loinc.org",
        "2157-6",
        json!({"valueQuantity": {"value": 2080, "unit": "U/L"}}),
    );
    let gone = observation(
        "o2",
        "http://loinc.org",
        "2157-6",
        json!({"valueQuantity": {"value": 99999, "unit": "U/L"}}),
    );
    write_lines(&work.join("Observation.ndjson"), &[ck, gone]);
    let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing", "diagnostics": "Patient p9 failed"}]});
    write_lines(&work.join("error/OperationOutcome.ndjson"), &[outcome]);
    let deleted = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": "Observation/o2"}},
        {"request": {"method": "DELETE", "url": "Condition/c2"}}]});
    write_lines(&work.join("deleted/deleted.ndjson"), &[deleted]);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(work.join("Patient.ndjson"), dir.path().join("Patient.ndjson")).unwrap();
        std::os::unix::fs::symlink(work.join("Observation.ndjson"), dir.path().join("Observation.ndjson")).unwrap();
    }
    let (cohort, issues) = crate::support::run_paths(&[dir.path().to_path_buf()]);
    // p2's only diagnosis was deleted; o2 too.
    assert_eq!(cohort.rows.len(), 1);
    assert_eq!(
        crate::support::cell(&cohort.rows.all().unwrap()[0], "ck_peak_u_per_l"),
        "2080"
    );
    assert_eq!(crate::support::cell(&cohort.rows.all().unwrap()[0], "ck_count"), "1");
    assert_eq!(issues.iter().filter(|i| i.code == IssueCode::Deleted).count(), 2);
    let errors: Vec<_> = issues.iter().filter(|i| i.code == IssueCode::ExportError).collect();
    assert_eq!(errors.len(), 1);
    assert!(
        !errors[0].message.contains("p9"),
        "diagnostics must not leak: {}",
        errors[0].message
    );
    // Symlinked files are read once: no duplicate issues.
    assert_eq!(issues.iter().filter(|i| i.code == IssueCode::Duplicate).count(), 0);
}

/// Runs `imnm cohort` on `input` (output folder named after it and `extra`):
/// its exit code and its outputs but `issues.ndjson` and `sources.ndjson`,
/// which name the input files and lines.
fn cohort_outputs(
    dir: &std::path::Path,
    input: &std::path::Path,
    extra: &[&str],
) -> (Option<i32>, Vec<(String, Vec<u8>)>) {
    let name = input.file_name().unwrap().to_str().unwrap();
    let out = dir.join(format!("out-{name}{}", extra.join("")));
    let mut args = vec![
        "cohort",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    let o = crate::support::imnm(&args, dir);
    let files = crate::support::dir_files(&out);
    let kept = files
        .into_iter()
        .filter(|(n, _)| n != "issues.ndjson" && n != "sources.ndjson");
    (o.status.code(), kept.collect())
}

/// Files a Windows tool wrote: a UTF-8 byte order mark before the first line
/// (or before each part of files joined with `cat`) and CRLF line ends, as
/// NDJSON, as a Bundle and as one resource, gzipped or not, read by one thread
/// and by two, give the outputs of the same files without them.
#[test]
fn a_byte_order_mark_and_crlf_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let resources = crate::mock::demo_resources();
    let lines: Vec<String> = resources.iter().map(|r| r.to_string()).collect();
    let half = lines.len() / 2;
    let bundle = serde_json::json!({"resourceType": "Bundle", "type": "collection",
        "entry": resources.iter().map(|r| serde_json::json!({"resource": r})).collect::<Vec<_>>()});
    let bom = "\u{feff}";
    let write = |dir: &str, files: &[(&str, String)]| {
        let d = tmp.path().join(dir);
        std::fs::create_dir_all(&d).unwrap();
        for (name, text) in files {
            if let Some(plain) = name.strip_suffix(".gz") {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
                std::fs::write(d.join(format!("{plain}.gz")), gz.finish().unwrap()).unwrap();
            } else {
                std::fs::write(d.join(name), text).unwrap();
            }
        }
        d
    };
    let clean = write("clean", &[("all.ndjson", lines.join("\n") + "\n")]);
    let joined = format!(
        "{bom}{}\r\n{bom}{}\r\n",
        lines[..half].join("\r\n"),
        lines[half..].join("\r\n")
    );
    let windows = [
        write("ndjson", &[("all.ndjson", joined.clone())]),
        write("gz", &[("all.ndjson.gz", joined)]),
        write("bundle", &[("all.json", format!("{bom}{bundle}"))]),
        write(
            "single",
            &lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    (
                        Box::leak(format!("r{i:04}.json").into_boxed_str()) as &str,
                        format!("{bom}{l}"),
                    )
                })
                .collect::<Vec<_>>(),
        ),
    ];
    let cohort = |input: &std::path::Path, threads: &str| {
        let (code, files) = cohort_outputs(tmp.path(), input, &["--threads", threads]);
        assert_eq!(code, Some(0));
        files
    };
    let want = cohort(&clean, "1");
    let cases = want.iter().find(|(n, _)| n == "cohort.csv").unwrap();
    assert!(String::from_utf8_lossy(&cases.1).lines().count() > 1);
    for input in &windows {
        for threads in ["1", "2"] {
            assert!(
                cohort(input, threads) == want,
                "{} -t{threads} differs",
                input.display()
            );
        }
    }
}

/// A JSON array of resources (some tools write one instead of a Bundle or
/// NDJSON) reads as the same resources; an element that is no resource is an
/// issue naming its place (`file#entry[i]`), and the rest is read.
#[test]
fn a_json_array_of_resources_reads_as_its_resources() {
    let tmp = tempfile::tempdir().unwrap();
    let resources = crate::mock::demo_resources();
    let lines: Vec<String> = resources.iter().map(|r| r.to_string()).collect();
    std::fs::write(tmp.path().join("all.ndjson"), lines.join("\n") + "\n").unwrap();
    let mut with_junk = resources.clone();
    with_junk.insert(1, serde_json::json!(42));
    std::fs::write(
        tmp.path().join("array.json"),
        serde_json::to_string_pretty(&resources).unwrap(),
    )
    .unwrap();
    std::fs::write(tmp.path().join("junk.json"), serde_json::to_string(&with_junk).unwrap()).unwrap();
    let cohort = |input: &str| cohort_outputs(tmp.path(), &tmp.path().join(input), &[]);
    let (code, want) = cohort("all.ndjson");
    assert_eq!(code, Some(0));
    assert_eq!(cohort("array.json"), (Some(0), want.clone()));
    assert_eq!(cohort("junk.json"), (Some(1), want));
    let issues = std::fs::read_to_string(tmp.path().join("out-junk.json/issues.ndjson")).unwrap();
    assert!(
        issues.contains("junk.json#entry[1]") && issues.contains("not-a-resource"),
        "{issues}"
    );
}

/// The same resource in two exports (a first one and a later incremental one,
/// passed in either order): the copy with the later `meta.lastUpdated` (offsets
/// compared as instants), else the higher `versionId` (as a number), is used
/// wherever it comes, on one thread or two; without versions, the first copy.
/// Every copy not used is a `duplicate` issue.
#[test]
fn of_several_copies_of_a_resource_the_newest_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let ck = |value: u32, meta: serde_json::Value| {
        let mut o = observation(
            "o1",
            "http://loinc.org",
            "2157-6",
            json!({"valueQuantity": {"value": value, "unit": "U/L"}}),
        );
        if !meta.is_null() {
            o["meta"] = meta;
        }
        o
    };
    let at = |t: &str| json!({"lastUpdated": t});
    let cases = [
        (
            "newer second",
            ck(1000, at("2024-01-01T00:00:00Z")),
            ck(5000, at("2024-03-01T10:00:00+02:00")),
            "5000",
        ),
        (
            "newer first",
            ck(5000, at("2024-03-01T10:00:00+02:00")),
            ck(1000, at("2024-01-01T00:00:00Z")),
            "5000",
        ),
        (
            "offsets",
            ck(1000, at("2024-03-01T10:00:00+02:00")),
            ck(5000, at("2024-03-01T09:00:00Z")),
            "5000",
        ),
        (
            "version ids",
            ck(1000, json!({"versionId": "9"})),
            ck(5000, json!({"versionId": "10"})),
            "5000",
        ),
        (
            "no versions",
            ck(1000, serde_json::Value::Null),
            ck(5000, serde_json::Value::Null),
            "1000",
        ),
        (
            "same instant",
            ck(1000, at("2024-01-01T00:00:00Z")),
            ck(5000, at("2024-01-01T00:00:00Z")),
            "1000",
        ),
    ];
    for (i, (name, first, second, peak)) in cases.into_iter().enumerate() {
        let (a, b) = (
            dir.path().join(format!("{i}-a.ndjson")),
            dir.path().join(format!("{i}-b.ndjson")),
        );
        write_lines(&a, &[patient("p1"), imnm_condition("c1", "p1"), first]);
        write_lines(&b, &[second]);
        for threads in [1, 2] {
            let opts = imnm_fhir::pipeline::ReadOptions {
                threads,
                chunk_bytes: 64,
                ..imnm_fhir::pipeline::ReadOptions::default()
            };
            let (cohort, issues) = crate::support::run_paths_with(&[a.clone(), b.clone()], opts);
            let row = &cohort.rows.all().unwrap()[0];
            assert_eq!(
                crate::support::cell(row, "ck_peak_u_per_l"),
                peak,
                "{name}, {threads} thread(s)"
            );
            assert_eq!(crate::support::cell(row, "ck_count"), "1", "{name}: one copy counted");
            let duplicates = issues.iter().filter(|i| i.code == IssueCode::Duplicate).count();
            assert_eq!(duplicates, 1, "{name}: the copy not used is reported");
        }
    }
}

/// Progress counts each input byte once, also when a resource given twice
/// with versions makes the inputs be read a second time.
#[test]
fn progress_reports_each_byte_once_when_the_inputs_are_read_twice() {
    let dir = tempfile::tempdir().unwrap();
    let ck = |value: u32, updated: &str| {
        let mut o = observation(
            "o1",
            "http://loinc.org",
            "2157-6",
            json!({"valueQuantity": {"value": value, "unit": "U/L"}}),
        );
        o["meta"] = json!({ "lastUpdated": updated });
        o
    };
    let (a, b) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    write_lines(
        &a,
        &[
            patient("p1"),
            imnm_condition("c1", "p1"),
            ck(1000, "2024-01-01T00:00:00Z"),
        ],
    );
    write_lines(&b, &[ck(5000, "2024-03-01T00:00:00Z")]);
    let size: u64 = [&a, &b].iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    let m = imnm_fhir::mapping::MappingSet::builtin().unwrap();
    for threads in [1, 2] {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = seen.clone();
        let opts = imnm_fhir::pipeline::ReadOptions {
            threads,
            ..imnm_fhir::pipeline::ReadOptions::default()
        };
        let mut collected = imnm_fhir::pipeline::collect_with(&[a.clone(), b.clone()], &m, opts, move |n| {
            counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        let issues = collected.issues.all().unwrap();
        let duplicates = issues.iter().filter(|i| i.code == IssueCode::Duplicate).count();
        assert_eq!(duplicates, 1, "{threads} thread(s): read twice, one copy set aside");
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::Relaxed),
            size,
            "{threads} thread(s)"
        );
    }
}

/// A Patient given in two Bundles under two `fullUrl`s (an older and a newer
/// copy): resources that name the older copy by its `fullUrl` still reach the
/// patient when the newer copy is the one kept.
#[test]
fn references_to_an_older_copy_by_its_full_url_still_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |url: &str, resource: serde_json::Value| json!({"fullUrl": url, "resource": resource});
    let named = |mut r: serde_json::Value| {
        r["subject"] = json!({"reference": "urn:uuid:0a"});
        r
    };
    let mut older = patient("p1");
    older["meta"] = json!({"lastUpdated": "2020-01-01T00:00:00Z"});
    let mut newer = patient("p1");
    newer["meta"] = json!({"lastUpdated": "2024-01-01T00:00:00Z"});
    let ck = observation(
        "o1",
        "http://loinc.org",
        "2157-6",
        json!({"valueQuantity": {"value": 2080, "unit": "U/L"}}),
    );
    let first = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        entry("urn:uuid:0a", older),
        entry("urn:uuid:0c", named(imnm_condition("c1", "p1"))),
        entry("urn:uuid:0o", named(ck)),
    ]});
    let second = json!({"resourceType": "Bundle", "type": "collection", "entry": [entry("urn:uuid:0b", newer)]});
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    std::fs::write(&a, first.to_string()).unwrap();
    std::fs::write(&b, second.to_string()).unwrap();
    let (cohort, issues) = crate::support::run_paths(&[a, b]);
    let duplicates = issues.iter().filter(|i| i.code == IssueCode::Duplicate).count();
    assert_eq!(duplicates, 1, "{issues:?}");
    assert_eq!(
        cohort.rows.len(),
        1,
        "the case is found through the older copy's fullUrl"
    );
    assert_eq!(
        crate::support::cell(&cohort.rows.all().unwrap()[0], "ck_peak_u_per_l"),
        "2080"
    );
}
