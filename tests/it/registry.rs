//! The registry config (issue 23, item 1): the example file, every problem of a
//! bad file reported with its line, and `imnm registry check`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use imnm_fhir::registry::{RegistryConfig, SinceMode, SiteAuth, SiteCohort, SiteMode, StoreLocation};

use crate::support::{imnm, root};

#[test]
fn the_example_loads_with_its_two_sites_and_resolved_paths() {
    let dir = root().join("examples");
    let config = RegistryConfig::load(&dir.join("registry.toml")).unwrap();
    assert_eq!(config.store, StoreLocation::Path(dir.join("registry.db")));
    assert_eq!(config.link_identifiers, ["https://nhs.example/nhs-number"]);
    assert_eq!(config.serve.listen.to_string(), "127.0.0.1:8080");
    let ids: Vec<&str> = config.sites.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["hospital-a", "hospital-b"]);

    let a = config.site("hospital-a").unwrap();
    assert_eq!(a.name, "Hospital A");
    assert_eq!(a.base_url, "https://ehr-a.example.org/fhir/R4");
    assert_eq!(a.origin(), "https://ehr-a.example.org");
    assert_eq!(
        a.auth,
        SiteAuth::Smart {
            client_id: "registry-client".into(),
            key: dir.join("keys/hospital-a.pem"),
            kid: Some("key-1".into()),
            scope: Some("system/*.rs".into()),
        }
    );
    assert_eq!(a.mode, SiteMode::Crawl);
    assert_eq!(a.cohort, SiteCohort::Patients(dir.join("patients-a.txt")));
    assert_eq!((a.concurrency, a.since_mode), (4, SinceMode::LastUpdated));
    assert_eq!(a.every, Duration::from_secs(6 * 3600));

    let b = config.site("hospital-b").unwrap();
    assert_eq!(
        b.auth,
        SiteAuth::Bearer {
            token_env: "HOSPITAL_B_TOKEN".into()
        }
    );
    assert_eq!(b.mode, SiteMode::Bulk);
    assert_eq!(b.cohort, SiteCohort::Group("imnm-registry".into()));
    assert_eq!((b.concurrency, b.every), (8, Duration::from_secs(86_400)));
}

/// The README's "Registry config" example is examples/registry.toml, word for word.
#[test]
fn the_readme_shows_the_example_file() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let example = std::fs::read_to_string(root().join("examples/registry.toml")).unwrap();
    let section = readme
        .split("\n## Registry config")
        .nth(1)
        .expect("README has a \"Registry config\" section");
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section has a toml block");
    assert_eq!(block, example);
}

const BAD: &str = r#"store = "registry.db"
colour = "blue"

[serve]
listen = "localhost"

[[site]]
id = "Hospital_A"
name = "A"
base_url = "https://ehr-a.example.org/fhir?_format=json"
auth = "smart"
client_id = "registry-client"
token_env = "A_TOKEN"
every = "6x"
concurrency = 0

[[site]]
id = "b"
name = "B"
base_url = "https://b.example/R4"
auth = "bearer"
token = "eyJ-not-a-real-token"
group = "g"
patients = "p.txt"

[[site]]
id = "b"
name = "B again"
base-url = "https://b2.example/R4"
"#;

#[test]
fn every_problem_is_reported_with_its_line() {
    let errors = RegistryConfig::from_str(BAD, "bad.toml", Path::new("/srv/registry")).unwrap_err();
    let found: Vec<(Option<usize>, &str)> = errors.0.iter().map(|e| (e.line, e.message.as_str())).collect();
    let expected: &[(usize, &str)] = &[
        (2, "unknown key `colour`"),
        (5, "[serve]: `listen` must be an IP address and a port"),
        (7, "site #1: missing `key`"),
        (8, "site #1: `id` may hold only a-z, 0-9 and -"),
        (10, "site #1: `base_url` must not have a query"),
        (
            13,
            "site #1: `token_env` belongs to auth = \"bearer\", but this site has auth = \"smart\"",
        ),
        (14, "site #1: `every`: a duration is"),
        (15, "site #1: `concurrency` must be from 1 to 64"),
        (17, "site \"b\": missing `token_env`"),
        (22, "site \"b\": `token` would put a secret in the file"),
        (24, "site \"b\": `group` and `patients` exclude each other"),
        (26, "site #3: missing `base_url`"),
        (27, "site #3: site id \"b\" is used twice (first on line 18)"),
        (29, "site #3: unknown key `base-url`: did you mean `base_url`?"),
    ];
    assert_eq!(found.len(), expected.len(), "{errors}");
    for ((line, message), (want_line, want)) in found.iter().zip(expected) {
        assert_eq!(*line, Some(*want_line), "{message}");
        assert!(
            message.starts_with(want),
            "line {want_line}: {message:?} does not start with {want:?}"
        );
    }
    let text = errors.to_string();
    assert_eq!(text.lines().count(), expected.len());
    assert!(text.lines().all(|l| l.starts_with("bad.toml:")), "{text}");
    assert!(
        !text.contains("eyJ") && !text.contains("_format"),
        "a value is repeated: {text}"
    );
}

#[test]
fn an_unreadable_file_and_a_file_without_sites() {
    let errors = RegistryConfig::load(Path::new("/nonexistent/registry.toml")).unwrap_err();
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].line, None);
    assert!(errors
        .to_string()
        .starts_with("/nonexistent/registry.toml: cannot read"));
    let errors = RegistryConfig::from_str("store = \"r.db\"\n", "r.toml", Path::new("")).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "r.toml:1: no [[site]]: a registry config needs at least one site"
    );
}

#[test]
fn registry_check_lists_each_site_without_secrets() {
    let out = Command::new(env!("CARGO_BIN_EXE_imnm"))
        .args(["registry", "check", "examples/registry.toml"])
        .env("HOSPITAL_B_TOKEN", "tok-must-not-show")
        .current_dir(root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split("  ").map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec![
                "hospital-a",
                "Hospital A",
                "https://ehr-a.example.org",
                "crawl",
                "smart",
                "every 6h"
            ],
            vec![
                "hospital-b",
                "Hospital B Children's",
                "https://fhir.hospital-b.example",
                "bulk",
                "bearer",
                "every 1d"
            ],
        ]
    );
    assert!(stderr.contains("2 sites"), "{stderr}");
    for hidden in [
        "tok-must-not-show",
        "hospital-a.pem",
        "registry-client",
        "/fhir/R4",
        "HOSPITAL_B_TOKEN",
    ] {
        assert!(!stdout.contains(hidden) && !stderr.contains(hidden), "{hidden} shown");
    }
}

#[test]
fn registry_check_exits_2_with_every_problem_and_no_value() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), BAD).unwrap();
    let out = imnm(&["registry", "check", "bad.toml"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    let problems: Vec<&str> = stderr.lines().filter(|l| l.starts_with("bad.toml:")).collect();
    assert_eq!(problems.len(), 14, "{stderr}");
    assert!(
        stderr.contains("bad.toml:22: site \"b\": `token` would put a secret"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .last()
            .unwrap_or_default()
            .contains("14 problems in bad.toml"),
        "{stderr}"
    );
    for hidden in ["eyJ-not-a-real-token", "A_TOKEN", "registry-client", "_format"] {
        assert!(!stderr.contains(hidden), "{hidden} shown: {stderr}");
    }
}
