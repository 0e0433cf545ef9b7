//! Regenerates the derived files of `profiles/` (snapshots, ValueSets, the local
//! CodeSystem) from the differentials, `profiles/valuesets.toml`, the mappings
//! and the R4 base table. Run from the repository root:
//!
//! ```sh
//! cargo run --example gen_profiles
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test, benchmark or example: a failure should stop it loudly"
)]

use std::path::Path;

use imnm_fhir::profile::{self, generate, BaseTable};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = Path::new("profiles");
    let mut sds = Vec::new();
    for (name, _) in profile::BUILTIN
        .iter()
        .filter(|(n, _)| n.starts_with("StructureDefinition-"))
    {
        sds.push((name.to_string(), std::fs::read_to_string(dir.join(name))?));
    }
    let sds: Vec<(&str, &str)> = sds.iter().map(|(n, t)| (n.as_str(), t.as_str())).collect();
    let valuesets = std::fs::read_to_string(dir.join("valuesets.toml"))?;
    let base = BaseTable::builtin()?;
    for (name, text) in generate::generate(&sds, &valuesets, imnm_fhir::mapping::BUILTIN, &base)? {
        std::fs::write(dir.join(&name), text)?;
        println!("wrote profiles/{name}");
    }
    Ok(())
}
