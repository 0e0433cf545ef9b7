//! `imnm keygen`, `imnm export` (and `--verify`) and `imnm merge`.

use std::path::Path;

use anyhow::Context;
use imnm_fhir::deid::{key, SiteKey};
use imnm_fhir::exit;
use imnm_fhir::export::{self, scan::SourceTerms, ExportOptions};

use crate::cli::{ExportArgs, MergeArgs};
use crate::{load_mappings, Exit, OrExit};

pub(crate) fn keygen(out: &Path) -> Result<u8, Exit> {
    let k = key::generate(out)?;
    eprintln!(
        "wrote a new site key to {} (key id {}); keep it private and backed up",
        out.display(),
        k.key_id()
    );
    Ok(exit::OK)
}

pub(crate) fn export(args: ExportArgs) -> Result<u8, Exit> {
    if let Some(dir) = &args.verify {
        return verify(dir, &args.source);
    }
    let (Some(out), Some(key_path)) = (args.out, args.site_key) else {
        return Err(Exit::new(
            exit::USAGE,
            anyhow::anyhow!("--out and --site-key are required"),
        ));
    };
    for input in &args.input {
        if !input.exists() {
            return Err(Exit::new(
                exit::INPUT,
                anyhow::anyhow!("input {} does not exist", input.display()),
            ));
        }
    }
    let input = match args.store {
        Some(store) => imnm_fhir::pipeline::Input::Store(store),
        None => imnm_fhir::pipeline::Input::Files(args.input),
    };
    let mappings = load_mappings(args.mappings.as_deref())?;
    let key = SiteKey::load(&key_path)?;
    let opts = ExportOptions {
        input,
        out: out.clone(),
        profile: args.profile,
        min_cell: args.min_cell,
        site: args.site,
        threads: args.threads.map(usize::from),
    };
    let summary = export::export(&opts, &key, &mappings)?;
    let m = &summary.manifest;
    let total: u64 = m.resource_counts.values().sum();
    eprintln!(
        "study bundle in {}: {} case(s), {} resource(s), {} dropped; key id {}",
        out.display(),
        m.cases,
        total,
        m.dropped.len(),
        m.key_id
    );
    if let Some(n) = m.rules_fired.get("removed:unresolvable-reference") {
        eprintln!("{n} reference(s) to resources outside the bundle removed (rules_fired in manifest.json)");
    }
    print!("{}", std::fs::read_to_string(out.join("table1.md")).unwrap_or_default());
    let mut issues = summary.issues;
    report_issues(&mut issues, args.issues.as_deref())?;
    Ok(crate::data_exit(&issues, false))
}

/// The input's data issues: counted on stderr, written to `to` when given
/// (outside the bundle: they name files, lines and resource ids).
fn report_issues(issues: &mut imnm_fhir::report::Issues, to: Option<&Path>) -> Result<(), Exit> {
    if issues.is_empty() {
        eprintln!("issues: none");
        return Ok(());
    }
    crate::print_issue_counts(issues);
    let Some(path) = to else {
        eprintln!(
            "issues: {} (--issues FILE writes them out; never into the bundle)",
            issues.total()
        );
        return Ok(());
    };
    let file = std::fs::File::create(path)
        .with_context(|| format!("creating {}", path.display()))
        .or_exit(exit::OUTPUT)?;
    let mut w = std::io::BufWriter::new(file);
    issues
        .try_for_each(|i| {
            serde_json::to_writer(&mut w, i).map_err(std::io::Error::other)?;
            std::io::Write::write_all(&mut w, b"\n")
        })
        .and_then(|()| std::io::Write::flush(&mut w))
        .with_context(|| format!("writing {}", path.display()))
        .or_exit(exit::OUTPUT)?;
    eprintln!("issues: {} (details in {})", issues.total(), path.display());
    Ok(())
}

fn verify(dir: &Path, sources: &[std::path::PathBuf]) -> Result<u8, Exit> {
    let terms = if sources.is_empty() {
        None
    } else {
        let t = SourceTerms::from_inputs(sources)
            .context("reading --source")
            .or_exit(exit::INPUT)?;
        Some(t)
    };
    let report = export::verify(dir, terms.as_ref())?;
    for f in &report.findings {
        println!("{f}");
    }
    if report.ok() {
        eprintln!("{}: verified ({} files)", dir.display(), report.files);
        Ok(exit::OK)
    } else {
        eprintln!(
            "{}: {} finding(s); do not share this bundle",
            dir.display(),
            report.findings.len()
        );
        Ok(exit::VERIFY)
    }
}

pub(crate) fn merge(args: MergeArgs) -> Result<u8, Exit> {
    let mappings = load_mappings(args.mappings.as_deref())?;
    let m = export::merge(&args.dirs, &args.out, args.min_cell, &mappings)?;
    eprintln!(
        "merged {} site(s), {} case(s) into {}",
        m.sites.len(),
        m.cases,
        args.out.display()
    );
    print!(
        "{}",
        std::fs::read_to_string(args.out.join("table1.md")).unwrap_or_default()
    );
    Ok(exit::OK)
}
