//! Regenerates the synthetic demo cohort (`examples/demo-cohort`).
//!
//! ```text
//! cargo run --example gen_demo_cohort [-- OUTPUT_DIR]
//! ```
//!
//! Writes `bundle.json` (a FHIR R4 collection Bundle) and `ndjson/{Type}.ndjson`
//! into `OUTPUT_DIR` (default `examples/demo-cohort`). The data is synthetic and
//! deterministic: see `imnm_fhir::demo::generate`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test, benchmark or example: a failure should stop it loudly"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use imnm_fhir::demo::generate::{demo_resources, write_demo};

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("examples/demo-cohort"), PathBuf::from);
    match run(&dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: cannot write the demo cohort to {}: {err}", dir.display());
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path) -> std::io::Result<()> {
    write_demo(dir)?;
    let resources = demo_resources();
    let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
    for resource in &resources {
        let ty = resource
            .get("resourceType")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?");
        *per_type.entry(ty.to_owned()).or_default() += 1;
    }
    println!(
        "wrote {} ({} entries)",
        dir.join("bundle.json").display(),
        resources.len()
    );
    for (ty, count) in &per_type {
        let file = dir.join("ndjson").join(format!("{ty}.ndjson"));
        println!("wrote {} ({count} lines)", file.display());
    }
    Ok(())
}
