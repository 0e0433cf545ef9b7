//! Writes a large synthetic NDJSON file of Observations for memory and speed
//! checks: mostly vital signs no mapping rule uses, with a CK result every
//! `--relevant-every` lines. Deterministic; no real patients.
//!
//! ```sh
//! cargo run --release --example gen_bulk -- --out /tmp/obs.ndjson --mb 1024
//! /usr/bin/time -v target/release/imnm cohort --input /tmp/obs.ndjson --out /tmp/out
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test, benchmark or example: a failure should stop it loudly"
)]

use std::io::{BufWriter, Write};
use std::process::ExitCode;

struct Args {
    out: String,
    mb: u64,
    relevant_every: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        out: "bulk-observations.ndjson".into(),
        mb: 100,
        relevant_every: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--out" => args.out = value,
            "--mb" => args.mb = value.parse().map_err(|_| "--mb takes a number")?,
            "--relevant-every" => args.relevant_every = value.parse().map_err(|_| "--relevant-every takes a number")?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn line(i: u64, relevant: bool) -> String {
    let patient = i % 50_000;
    let day = 1 + i % 28;
    let (code, value, unit) = if relevant {
        ("2157-6", 50 + i % 9000, "U/L")
    } else if i % 2 == 0 {
        ("8867-4", 60 + i % 80, "/min")
    } else {
        ("29463-7", 10 + i % 70, "kg")
    };
    format!(
        concat!(
            r#"{{"resourceType":"Observation","id":"obs-{i}","meta":{{"versionId":"1","lastUpdated":"2024-01-{day:02}T10:00:00Z"}},"#,
            r#""status":"final","category":[{{"coding":[{{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}}]}}],"#,
            r#""code":{{"coding":[{{"system":"http://loinc.org","code":"{code}"}}]}},"subject":{{"reference":"Patient/bulk-{patient}"}},"#,
            r#""effectiveDateTime":"2024-01-{day:02}T10:00:00Z","valueQuantity":{{"value":{value},"unit":"{unit}","system":"http://unitsofmeasure.org","code":"{unit}"}}}}"#
        ),
        i = i,
        day = day,
        code = code,
        patient = patient,
        value = value,
        unit = unit
    )
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gen_bulk: {e}");
            return ExitCode::from(2);
        }
    };
    let file = match std::fs::File::create(&args.out) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("gen_bulk: cannot create {}: {e}", args.out);
            return ExitCode::from(1);
        }
    };
    let mut w = BufWriter::new(file);
    let limit = args.mb * 1024 * 1024;
    let (mut written, mut i) = (0u64, 0u64);
    while written < limit {
        let relevant = args.relevant_every > 0 && i % args.relevant_every == 0;
        let l = line(i, relevant);
        if writeln!(w, "{l}").is_err() {
            eprintln!("gen_bulk: write failed");
            return ExitCode::from(1);
        }
        written += l.len() as u64 + 1;
        i += 1;
    }
    if w.flush().is_err() {
        return ExitCode::from(1);
    }
    eprintln!("gen_bulk: wrote {i} Observations, {written} bytes to {}", args.out);
    ExitCode::SUCCESS
}
