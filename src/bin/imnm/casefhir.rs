//! `imnm validate`, `imnm to-fhir` and `imnm push`: case reports as FHIR.

use std::path::Path;

use anyhow::Context;
use imnm_fhir::exit;
use imnm_fhir::profile::{files, ProfileSet};

use crate::cli::ValidateArgs;
use crate::{Exit, OrExit};

/// The profiles: a `--profiles` folder as it is; else the built-in ones, with
/// their ValueSets generated from a `--mappings` folder when one is given
/// (so the codes of columns added to its data dictionary validate).
pub(crate) fn load_profiles(dir: Option<&Path>, mappings: Option<&Path>) -> Result<ProfileSet, Exit> {
    match (dir, mappings) {
        (Some(d), _) => {
            ProfileSet::load_dir(d).map_err(|e| Exit::from(e).context(format!("loading profiles from {}", d.display())))
        }
        (None, Some(m)) => {
            let context = format!(
                "generating the profiles' value sets from the mappings in {}",
                m.display()
            );
            let mut sources =
                imnm_fhir::mapping::load::read_dir(m).map_err(|e| Exit::from(e).context(context.clone()))?;
            // ConceptMaps map local codes; the profiles' value sets hold the value sets' own codes.
            sources.retain(|(name, _)| name.ends_with(".toml"));
            ProfileSet::for_mappings(&sources).map_err(|e| Exit::from(e).context(context))
        }
        (None, None) => ProfileSet::builtin().map_err(|e| Exit::from(e).context("loading the built-in profiles")),
    }
}

fn write_out(out: Option<&Path>, text: &str) -> Result<(), Exit> {
    match out {
        Some(p) => std::fs::write(p, text)
            .with_context(|| format!("writing {}", p.display()))
            .or_exit(exit::OUTPUT),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

/// `imnm validate`: OperationOutcome to --out or stdout, summary to stderr, exit 1 on errors.
pub fn validate(args: ValidateArgs) -> Result<u8, Exit> {
    let set = load_profiles(args.profiles.as_deref(), args.mappings.as_deref())?;
    for f in &args.files {
        if !f.exists() {
            return Err(Exit::new(
                exit::INPUT,
                anyhow::anyhow!("input {} does not exist", f.display()),
            ));
        }
    }
    let report = files::validate_files(&args.files, &set)
        .context("reading inputs")
        .or_exit(exit::INPUT)?;
    let text = serde_json::to_string_pretty(&report.operation_outcome()).unwrap_or_default();
    write_out(args.out.as_deref(), &text)?;
    eprint!("{}", report.summary());
    Ok(if report.errors() > 0 {
        exit::DATA_ISSUES
    } else {
        exit::OK
    })
}

/// `imnm to-fhir`: CSV problems on stderr by row and column; the Bundle is
/// written only when it validates against the profiles with no error.
pub fn to_fhir(args: crate::cli::ToFhirArgs) -> Result<u8, Exit> {
    let mappings = crate::load_mappings(args.mappings.as_deref())?;
    let set = load_profiles(args.profiles.as_deref(), args.mappings.as_deref())?;
    let file = std::fs::File::open(&args.cases)
        .with_context(|| format!("reading {}", args.cases.display()))
        .or_exit(exit::INPUT)?;
    let name = args.cases.display().to_string();
    let (rows, issues) = imnm_fhir::to_fhir::read_cases(std::io::BufReader::new(file), &mappings.dictionary);
    for issue in &issues {
        eprintln!("{name}: {issue}");
    }
    let lines: Vec<u64> = rows.iter().map(|(line, _)| *line).collect();
    let mut cases: Vec<_> = rows.into_iter().map(|(_, r)| r).collect();
    // A case that cannot become FHIR is reported by row and left out; the others convert.
    let mut refused = 0;
    let bundle = loop {
        match imnm_fhir::to_fhir::build_bundle(&cases, &mappings, &args.site_system) {
            Ok(b) => break b,
            Err(errors) if refused == 0 => {
                for (index, e) in &errors {
                    eprintln!(
                        "{name}: row {}, {e}; case left out",
                        lines.get(*index).copied().unwrap_or_default()
                    );
                }
                refused = errors.len();
                let bad: std::collections::BTreeSet<usize> = errors.iter().map(|(i, _)| *i).collect();
                cases = cases
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| !bad.contains(i))
                    .map(|(_, c)| c)
                    .collect();
            }
            Err(errors) => {
                return Err(Exit::new(
                    exit::DATA_ISSUES,
                    anyhow::anyhow!("{} case(s) cannot become FHIR; nothing written", errors.len()),
                ))
            }
        }
    };
    let report = files::validate_bundle(&set, &bundle, &args.out.display().to_string());
    if report.errors() > 0 {
        eprint!("{}", report.summary());
        return Err(Exit::new(
            exit::DATA_ISSUES,
            anyhow::anyhow!("the Bundle does not validate against the IMNM profiles; nothing written"),
        ));
    }
    let text = serde_json::to_string_pretty(&bundle).unwrap_or_default() + "\n";
    std::fs::write(&args.out, text)
        .with_context(|| format!("writing {}", args.out.display()))
        .or_exit(exit::OUTPUT)?;
    let n = bundle["entry"].as_array().map_or(0, Vec::len);
    eprintln!(
        "{} case(s), {n} resource(s) written to {} (validated: 0 errors); {} CSV issue(s), {refused} case(s) left out",
        cases.len(),
        args.out.display(),
        issues.len()
    );
    Ok(if !issues.is_empty() || refused > 0 {
        exit::DATA_ISSUES
    } else {
        exit::OK
    })
}

/// `imnm push`: one line per entry on stdout (index, type, status, location, outcome text).
pub fn push(args: crate::cli::PushArgs) -> Result<u8, Exit> {
    let text = std::fs::read_to_string(&args.bundle)
        .with_context(|| format!("reading {}", args.bundle.display()))
        .or_exit(exit::INPUT)?;
    let bundle: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", args.bundle.display()))
        .or_exit(exit::INPUT)?;
    let auth = crate::sync::auth_from(&args.auth)?;
    let client = imnm_fhir::client::FhirClient::builder(args.base_url.clone())
        .auth(auth)
        .build()
        .map_err(|e| Exit::new(exit::USAGE, e))?;
    let runtime = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .or_exit(exit::USAGE)?;
    let outcomes = runtime
        .block_on(imnm_fhir::push::push(&client, &bundle, args.batch_size))
        .map_err(|e| Exit::from(e).context("push"))?;
    for o in &outcomes {
        let location = o.location.as_deref().unwrap_or("-");
        let outcome = o.outcome.as_deref().map(|t| format!(" ({t})")).unwrap_or_default();
        println!("entry {} {} {} {location}{outcome}", o.index, o.resource_type, o.status);
    }
    let created = outcomes.iter().filter(|o| o.status.starts_with("201")).count();
    let failed = outcomes.iter().filter(|o| !o.status.starts_with('2')).count();
    eprintln!(
        "pushed {} entries: {created} created, {} already there, {failed} failed",
        outcomes.len(),
        outcomes.len() - created - failed
    );
    Ok(if failed > 0 { exit::DATA_ISSUES } else { exit::OK })
}
