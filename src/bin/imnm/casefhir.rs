//! `imnm validate`, `imnm to-fhir` and `imnm push`: case reports as FHIR.

use std::path::Path;

use anyhow::Context;
use imnm_fhir::profile::{files, ProfileSet};

use crate::cli::ValidateArgs;
use crate::Exit;

pub(crate) fn load_profiles(dir: Option<&Path>) -> Result<ProfileSet, Exit> {
    let loaded = match dir {
        Some(d) => ProfileSet::load_dir(d).with_context(|| format!("loading profiles from {}", d.display())),
        None => ProfileSet::builtin().context("loading the built-in profiles"),
    };
    loaded.map_err(|e| Exit(2, e))
}

fn write_out(out: Option<&Path>, text: &str) -> Result<(), Exit> {
    match out {
        Some(p) => std::fs::write(p, text)
            .with_context(|| format!("writing {}", p.display()))
            .map_err(|e| Exit(4, e)),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

/// `imnm validate`: OperationOutcome to --out or stdout, summary to stderr, exit 1 on errors.
pub fn validate(args: ValidateArgs) -> Result<u8, Exit> {
    let set = load_profiles(args.profiles.as_deref())?;
    for f in &args.files {
        if !f.exists() {
            return Err(Exit(3, anyhow::anyhow!("input {} does not exist", f.display())));
        }
    }
    let report = files::validate_files(&args.files, &set)
        .context("reading inputs")
        .map_err(|e| Exit(3, e))?;
    let text = serde_json::to_string_pretty(&report.operation_outcome()).unwrap_or_default();
    write_out(args.out.as_deref(), &text)?;
    eprint!("{}", report.summary());
    Ok(u8::from(report.errors() > 0))
}
