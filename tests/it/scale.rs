//! Reading at scale: the parallel path (by chunk and by file) writes byte-identical outputs to one thread.

use std::path::Path;

use imnm_fhir::bench_data::{self, Spec};

use crate::support::imnm;

use crate::support::dir_files as outputs;

fn cohort(inputs: &[&Path], out: &Path, extra: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut args = vec!["cohort", "--out", out.to_str().unwrap()];
    for i in inputs {
        args.extend(["--input", i.to_str().unwrap()]);
    }
    args.extend(extra);
    let run = imnm(&args, out.parent().unwrap());
    // 1 when the input holds damaged lines (error-level issues): the outputs are written all the same.
    assert!(
        matches!(run.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    outputs(out)
}

#[test]
fn parallel_reading_writes_the_same_bytes_as_one_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = Spec {
        faults: true,
        ..Spec::new(10_000)
    };
    let plain = tmp.path().join("plain");
    let gz = tmp.path().join("gz");
    let bundle = tmp.path().join("bundle.json");
    bench_data::write_bulk_dir(&spec, &plain, false).unwrap();
    bench_data::write_bulk_dir(&Spec { seed: 2, ..spec }, &gz, true).unwrap();
    bench_data::write_bundle(&Spec { seed: 3, ..spec }, &bundle).unwrap();
    // Damaged gzip files of Patients read before (each line a reported duplicate):
    // cut short, and bytes overwritten mid-stream. Every thread count must stop
    // after the same lines (gzip NDJSON is cut into blocks too).
    let whole = {
        use std::io::Write;
        let patients = std::fs::read(plain.join("Patient.ndjson")).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for _ in 0..20 {
            enc.write_all(&patients).unwrap();
        }
        enc.finish().unwrap()
    };
    std::fs::write(gz.join("Short.ndjson.gz"), &whole[..whole.len() * 3 / 5]).unwrap();
    let mut broken = whole.clone();
    let mid = broken.len() / 2;
    broken[mid..mid + 64].fill(0x55);
    std::fs::write(gz.join("Broken.ndjson.gz"), &broken).unwrap();
    // Damaged Bundles: cut short, and a key's quote overwritten past the middle. Two
    // or more threads cut a Bundle into runs of entries: every count must keep the
    // same entries and report the same place.
    let damaged = tmp.path().join("damaged");
    std::fs::create_dir(&damaged).unwrap();
    bench_data::write_bundle(&Spec { seed: 4, ..spec }, &damaged.join("source.json")).unwrap();
    let text = std::fs::read(damaged.join("source.json")).unwrap();
    std::fs::remove_file(damaged.join("source.json")).unwrap();
    std::fs::write(damaged.join("short-bundle.json"), &text[..text.len() * 2 / 5]).unwrap();
    // A quote gone: the cutting walk loses its way (strings seen as the rest), so the
    // rest of the file is read as one piece. A colon gone: the walk keeps its way,
    // the piece with it breaks, and the pieces after it must be dropped.
    let key = text.len() * 3 / 5 + memchr::memmem::find(&text[text.len() * 3 / 5..], b"\"id\":").unwrap();
    for (name, at, byte) in [("quote-bundle.json", key, b'x'), ("colon-bundle.json", key + 4, b';')] {
        let mut broken = text.clone();
        broken[at] = byte;
        std::fs::write(damaged.join(name), &broken).unwrap();
    }
    let inputs = [plain.as_path(), gz.as_path(), bundle.as_path(), damaged.as_path()];
    let one = cohort(&inputs, &tmp.path().join("t1"), &["--threads", "1", "--relevant"]);
    // The outputs say something: cases, candidates and each kind of bad line.
    let text = |name: &str| String::from_utf8_lossy(&one.iter().find(|(n, _)| n == name).unwrap().1).to_string();
    assert!(text("cohort.csv").lines().count() > 2, "{}", text("cohort.csv"));
    assert!(text("candidates.csv").lines().count() > 1);
    let issues = text("issues.ndjson");
    for code in [
        "malformed-json",
        "duplicate",
        "parsed-leniently",
        "unit-not-convertible",
    ] {
        assert!(issues.contains(code), "no {code} issue in {issues}");
    }
    for damaged in ["Short.ndjson.gz", "Broken.ndjson.gz"] {
        let failed = issues
            .lines()
            .any(|l| l.contains(damaged) && l.contains("read failed part-way"));
        assert!(failed, "no read failure reported for {damaged}: {issues}");
    }
    for (damaged, what) in [
        ("short-bundle.json", "unexpected end of input"),
        ("quote-bundle.json", "syntax error"),
        ("colon-bundle.json", "syntax error"),
    ] {
        let failed = issues.lines().any(|l| l.contains(damaged) && l.contains(what));
        assert!(failed, "no {what} reported for {damaged}: {issues}");
    }
    assert!(text("sources.ndjson").lines().count() > 10);
    assert!(text("relevant.ndjson").lines().count() > text("sources.ndjson").lines().count());
    sources_are_those_named_once_in_read_order(&text);
    // Resource texts past 0 or 5,000 bytes go to a temporary file: still the same bytes.
    for (threads, chunk, spill) in [("2", "4096", "0"), ("3", "1", "5000"), ("1", "65536", "0")] {
        let out = tmp.path().join(format!("t{threads}-{chunk}-{spill}"));
        let args = [
            "--threads",
            threads,
            "--chunk-bytes",
            chunk,
            "--spill-after-bytes",
            spill,
            "--relevant",
        ];
        let many = cohort(&inputs, &out, &args);
        assert_eq!(one.len(), many.len());
        for ((name, a), (_, b)) in one.iter().zip(&many) {
            assert!(a == b, "{name} differs with {args:?}");
        }
    }
}

/// `sources.ndjson` (of one site) holds each resource a provenance record or
/// a candidate names, once, in the order they were read: that of
/// `relevant.ndjson`, which holds every resource a rule used in input order.
fn sources_are_those_named_once_in_read_order(text: &dyn Fn(&str) -> String) {
    let key = |r: &serde_json::Value| format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap());
    let lines = |name: &str| -> Vec<serde_json::Value> {
        text(name).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let read: Vec<String> = lines("relevant.ndjson").iter().map(key).collect();
    let written: Vec<String> = lines("sources.ndjson").iter().map(|s| key(&s["resource"])).collect();
    let mut named = std::collections::BTreeSet::new();
    for p in lines("provenance.ndjson") {
        named.extend(
            p["sources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string()),
        );
    }
    for c in text("candidates.csv").lines().skip(1) {
        named.insert(format!("Patient/{}", c.split(',').nth(1).unwrap()));
    }
    let once: std::collections::BTreeSet<String> = written.iter().cloned().collect();
    assert_eq!(once.len(), written.len(), "a resource written twice");
    assert!(
        once == named,
        "sources.ndjson is not what provenance and candidates name"
    );
    let at: Vec<usize> = written
        .iter()
        .map(|k| read.iter().position(|r| r == k).unwrap())
        .collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "sources.ndjson is not in read order"
    );
    assert!(written.len() > 10, "only {} sources", written.len());
}

#[test]
fn shard_runs_then_one_run_over_their_relevant_files_give_the_whole_cohort() {
    let tmp = tempfile::tempdir().unwrap();
    let bulk = tmp.path().join("bulk");
    bench_data::write_bulk_dir(&Spec::new(10_000), &bulk, false).unwrap();
    let whole = cohort(&[&bulk], &tmp.path().join("whole"), &[]);
    // Two machines, each given some of the export's files.
    let shards = [
        vec!["Patient.ndjson", "Condition.ndjson"],
        vec!["Medication.ndjson", "MedicationRequest.ndjson", "Observation.ndjson"],
    ];
    let mut relevant = Vec::new();
    for (i, files) in shards.iter().enumerate() {
        let out = tmp.path().join(format!("shard-{i}"));
        let inputs: Vec<_> = files.iter().map(|f| bulk.join(f)).collect();
        let refs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
        cohort(&refs, &out, &["--relevant"]);
        relevant.push(out.join("relevant.ndjson"));
    }
    let refs: Vec<&Path> = relevant.iter().map(|p| p.as_path()).collect();
    let merged = cohort(&refs, &tmp.path().join("merged"), &[]);
    let file = |set: &[(String, Vec<u8>)], name: &str| set.iter().find(|(n, _)| n == name).unwrap().1.clone();
    for name in ["cohort.csv", "candidates.csv", "table1.json", "provenance.ndjson"] {
        assert!(file(&whole, name) == file(&merged, name), "{name} differs");
    }
    assert!(String::from_utf8_lossy(&file(&whole, "cohort.csv")).lines().count() > 2);
}

#[test]
fn the_prefilter_reports_damaged_lines_and_changes_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("obs.ndjson");
    let hr = r#"{"resourceType":"Observation","id":"hr","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/p"},"valueQuantity":{"value":80}}"#;
    // Damaged inside, each in a part the peek does not read: a comma lost, a number cut, a
    // value missing; then an Encounter cut short, and a CK escaped so no byte shows its code.
    let lost_comma = hr.replace(r#""status":"final","#, r#""status":"final""#);
    let cut_number = hr.replace(r#""value":80"#, r#""value":80."#);
    let no_value = hr.replace(r#""value":80"#, r#""value":"#);
    let encounter = r#"{"resourceType":"Encounter","id":"e","period":{"start":"2020"}"#;
    let ck = r#"{"resourceType":"Observation","id":"ck","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"\u0032157-6"}]},"subject":{"reference":"Patient/p"},"effectiveDateTime":"2020-01-01","valueQuantity":{"value":9000,"unit":"U/L","system":"http://unitsofmeasure.org","code":"U/L"}}"#;
    let lines = [hr, &lost_comma, &cut_number, &no_value, encounter, ck].join("\n");
    std::fs::write(&file, format!("{lines}\n")).unwrap();
    let run = |extra: &[&str]| {
        let out = tmp.path().join(format!("out{}", extra.len()));
        let (input, out_s) = (file.to_str().unwrap(), out.to_str().unwrap());
        let mut args = vec!["cohort", "--input", input, "--out", out_s, "--relevant"];
        args.extend(extra);
        // Damaged lines are error-level issues: exit 1, the outputs written from the rest.
        assert_eq!(imnm(&args, tmp.path()).status.code(), Some(1));
        let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
        (read("issues.ndjson"), read("relevant.ndjson"), read("cohort.csv"))
    };
    let (issues, used, cohort) = run(&[]);
    for line in 2..=5 {
        let at = format!("obs.ndjson:{line}");
        assert!(
            issues.lines().any(|l| l.contains(&at) && l.contains("malformed-json")),
            "line {line} is reported: {issues}"
        );
    }
    assert!(
        !issues.contains("obs.ndjson:1\""),
        "the intact vital sign is no issue: {issues}"
    );
    assert!(used.contains(r#""id":"ck""#), "the escaped CK was read: {used}");
    let every_line_peeked = run(&["--no-prefilter"]);
    assert_eq!(
        (issues, used, cohort),
        every_line_peeked,
        "--no-prefilter gives the same outputs"
    );
}

/// A Bundle that comes through a pipe cannot be read again from an offset, as a
/// piece that does not end cleanly needs (here: entries holding Bundles, cut
/// inside them): it is read whole, with the outputs of a file.
#[cfg(unix)]
#[test]
fn a_bundle_from_a_pipe_is_read_whole_with_the_outputs_of_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let entry = |i: usize| {
        let inner = format!(
            r#"{{"resourceType":"Bundle","entry":[{{"fullUrl":"urn:uuid:{i}a","resource":{{"resourceType":"Patient","id":"in{i}","gender":"female"}}}},{{"fullUrl":"urn:uuid:{i}b","resource":{{"resourceType":"Condition","id":"c{i}","subject":{{"reference":"Patient/p{i}"}},"code":{{"coding":[{{"system":"http://snomed.info/sct","code":"715863001"}}]}}}}}}]}}"#
        );
        format!(
            r#"{{"fullUrl":"urn:uuid:{i}","resource":{{"resourceType":"Patient","id":"p{i}","gender":"male","birthDate":"2010-01-01"}}}},{{"fullUrl":"urn:uuid:{i}n","resource":{inner}}}"#
        )
    };
    // About 1 MB: more than the first read of the header (256 KiB), so pieces follow.
    let entries: Vec<String> = (0..2000).map(entry).collect();
    let text = format!(
        r#"{{"resourceType":"Bundle","type":"collection","entry":[{}]}}"#,
        entries.join(",")
    );
    let file = tmp.path().join("file").join("nested.json");
    std::fs::create_dir(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &text).unwrap();
    let want = cohort(&[&file], &tmp.path().join("from-file"), &["--threads", "1"]);
    let pipe = tmp.path().join("pipe").join("nested.json");
    std::fs::create_dir(pipe.parent().unwrap()).unwrap();
    let c_path = std::ffi::CString::new(pipe.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let writer = {
        let (pipe, text) = (pipe.clone(), text.clone());
        std::thread::spawn(move || std::fs::write(pipe, text))
    };
    let args = ["--threads", "2", "--chunk-bytes", "64"];
    let got = cohort(&[&pipe], &tmp.path().join("from-pipe"), &args);
    writer.join().unwrap().unwrap();
    assert_eq!(got.len(), want.len());
    for ((name, a), (_, b)) in want.iter().zip(&got) {
        assert!(
            a == b,
            "{name} differs:\n{}\n{}",
            String::from_utf8_lossy(a),
            String::from_utf8_lossy(b)
        );
    }
    let issues = String::from_utf8_lossy(&want.iter().find(|(n, _)| n == "issues.ndjson").unwrap().1).to_string();
    assert!(
        !issues.contains("nested.json"),
        "the Bundle reads without a problem: {issues}"
    );
    // The same file, cut into pieces: inner Bundles are cut into, and the outputs agree.
    let cut = cohort(&[&file], &tmp.path().join("cut"), &args);
    assert!(cut == want, "a regular file cut into pieces differs");
}

/// A sync store read on several threads (the reading thread cuts its rows
/// into blocks the others scan) writes the bytes of one thread, whatever the
/// block size and the memory limit.
#[test]
fn a_store_read_on_several_threads_writes_the_same_bytes_as_one() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("s.db");
    let mut store = imnm_fhir::store::Store::open(&db).unwrap();
    let mut rows = Vec::new();
    bench_data::for_each(&Spec::registry(6_000, 50), |_, json| {
        rows.push(serde_json::from_str::<serde_json::Value>(json).unwrap());
    });
    for page in rows.chunks(1000) {
        store.write_page("reg", page).unwrap();
    }
    drop(store);
    let run = |name: &str, extra: &[&str]| {
        let out = tmp.path().join(name);
        let mut args = vec!["cohort", "--no-publish", "--store", db.to_str().unwrap()];
        args.extend(["--out", out.to_str().unwrap()]);
        args.extend(extra);
        let run = imnm(&args, tmp.path());
        assert!(
            matches!(run.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        outputs(&out)
    };
    let one = run("t1", &["--threads", "1"]);
    let cases = String::from_utf8_lossy(&one.iter().find(|(n, _)| n == "cohort.csv").unwrap().1).to_string();
    assert!(cases.lines().count() > 10, "{cases}");
    for args in [
        ["--threads", "2", "--chunk-bytes", "4096", "--spill-after-bytes", "0"],
        ["--threads", "3", "--chunk-bytes", "1", "--spill-after-bytes", "5000"],
    ] {
        let many = run(&args.join(""), &args);
        assert_eq!(one.len(), many.len());
        for ((name, a), (_, b)) in one.iter().zip(&many) {
            assert!(a == b, "{name} differs with {args:?}");
        }
    }
}

/// NDJSON from a pipe cannot be read again at an offset: its relevant
/// resources' texts are kept as copies, and the outputs are a file's.
#[cfg(unix)]
#[test]
fn ndjson_from_a_pipe_writes_the_outputs_of_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file").join("all.ndjson");
    std::fs::create_dir(file.parent().unwrap()).unwrap();
    bench_data::write_one_ndjson(&Spec::registry(3_000, 50), &file, None).unwrap();
    let want = cohort(
        &[&file],
        &tmp.path().join("from-file"),
        &["--threads", "1", "--relevant"],
    );
    assert!(want.iter().any(|(n, b)| n == "sources.ndjson" && b.len() > 10_000));
    for threads in ["1", "2"] {
        let pipe = tmp.path().join(format!("pipe{threads}")).join("all.ndjson");
        std::fs::create_dir(pipe.parent().unwrap()).unwrap();
        let c_path = std::ffi::CString::new(pipe.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let writer = {
            let (pipe, file) = (pipe.clone(), file.clone());
            std::thread::spawn(move || std::fs::write(pipe, std::fs::read(file).unwrap()))
        };
        let args = ["--threads", threads, "--relevant"];
        let got = cohort(&[&pipe], &tmp.path().join(format!("out{threads}")), &args);
        writer.join().unwrap().unwrap();
        assert_eq!(got.len(), want.len());
        for ((name, a), (_, b)) in want.iter().zip(&got) {
            // Issues name the file they came from.
            if name != "issues.ndjson" {
                assert!(a == b, "{name} differs from a pipe, {threads} thread(s)");
            }
        }
    }
}
