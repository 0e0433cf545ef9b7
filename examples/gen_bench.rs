//! Writes the benchmark inputs of `imnm_fhir::bench_data` (deterministic,
//! synthetic, no real patients).
//!
//! ```sh
//! cargo run --release --example gen_bench -- --resources 100000 --bulk /tmp/b100k          # Type.ndjson files
//! cargo run --release --example gen_bench -- --resources 100000 --bulk-gz /tmp/b100k-gz     # Type.ndjson.gz
//! cargo run --release --example gen_bench -- --resources 100000 --bundle /tmp/b100k.json    # one Bundle
//! cargo run --release --example gen_bench -- --gb 10 --one /data/big.ndjson                 # the 10 GB file
//! cargo run --release --example gen_bench -- --registry 100 --resources 150000 --bulk /tmp/r100  # every patient a case
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test, benchmark or example: a failure should stop it loudly"
)]

use std::path::PathBuf;
use std::process::ExitCode;

use imnm_fhir::bench_data::{self, Spec};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut spec = Spec::new(100_000);
    let mut max_bytes = None;
    let mut args = std::env::args().skip(1);
    let mut did = false;
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let num = || value.parse::<u64>().map_err(|_| format!("{flag} takes a number"));
        let path = PathBuf::from(&value);
        let written = match flag.as_str() {
            "--resources" => {
                spec.resources = num()?;
                continue;
            }
            "--seed" => {
                spec.seed = num()?;
                continue;
            }
            "--registry" => {
                let pct = u8::try_from(num()?).map_err(|_| "--registry takes a percentage".to_string())?;
                spec.registry = Some(pct.min(100));
                continue;
            }
            "--faults" => {
                spec.faults = value == "yes";
                continue;
            }
            "--gb" => {
                max_bytes = Some(num()? << 30);
                spec.resources = u64::MAX / 2;
                continue;
            }
            "--bulk" => bench_data::write_bulk_dir(&spec, &path, false),
            "--bulk-gz" => bench_data::write_bulk_dir(&spec, &path, true),
            "--bundle" => bench_data::write_bundle(&spec, &path),
            "--one" => bench_data::write_one_ndjson(&spec, &path, max_bytes),
            other => return Err(format!("unknown flag {other}")),
        }
        .map_err(|e| format!("writing {value}: {e}"))?;
        did = true;
        eprintln!(
            "{value}: {} patients, {} resources, {} bytes",
            written.patients, written.resources, written.bytes
        );
    }
    if !did {
        return Err("nothing to write: give --bulk, --bulk-gz, --bundle or --one".into());
    }
    Ok(())
}
