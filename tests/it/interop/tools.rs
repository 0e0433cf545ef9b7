//! Finding the third-party tools: SMART Fetch (a venv's `smart-fetch`) and Node for the Medplum shim.
//! A missing tool skips the test loudly, or fails it when `IMNM_INTEROP=1` (set by `.ci/run`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::root;

/// Where `.ci/interop-install` puts its installs.
pub fn install_dir() -> PathBuf {
    root().join("target/interop")
}

/// Whether missing tools fail the tests (CI) instead of skipping them.
fn required() -> bool {
    std::env::var("IMNM_INTEROP").is_ok_and(|v| v == "1")
}

/// `found`, or: in CI a panic, elsewhere a `SKIPPED` line on the real stderr (not captured by the
/// test harness, so a developer sees it) and `None`.
pub fn require<T>(tool: &str, found: Option<T>) -> Option<T> {
    if found.is_some() {
        return found;
    }
    let msg = format!("{tool} not found; .ci/run installs it (bash .ci/interop-install)");
    assert!(!required(), "IMNM_INTEROP=1 but {msg}");
    let _ = writeln!(std::io::stderr(), "SKIPPED: {msg}");
    None
}

/// An executable on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The `smart-fetch` command: `$IMNM_SMART_FETCH`, the CI venv, or PATH.
pub fn smart_fetch() -> Option<PathBuf> {
    let found = std::env::var_os("IMNM_SMART_FETCH")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| Some(install_dir().join("venv/bin/smart-fetch")).filter(|p| p.is_file()))
        .or_else(|| on_path("smart-fetch"));
    require("smart-fetch (PyPI smart-fetch 1.0.3)", found)
}

/// `node` (`$IMNM_NODE` or PATH) with the shim's packages installed.
pub fn node_with_medplum() -> Option<PathBuf> {
    let node = std::env::var_os("IMNM_NODE")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| on_path("node"));
    let installed = shim_dir().join("node_modules/@medplum/fhir-router").is_dir();
    require(
        "node with tests/medplum-shim/node_modules (npm @medplum/fhir-router 5.2.13)",
        node.filter(|_| installed),
    )
}

/// The Medplum shim's folder.
pub fn shim_dir() -> PathBuf {
    root().join("tests/medplum-shim")
}

/// Runs a command to its end; panics with its output when it fails.
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a blocking command from async code.
pub async fn run_ok_async(mut cmd: Command, what: &'static str) -> Output {
    tokio::task::spawn_blocking(move || run_ok(&mut cmd, what))
        .await
        .expect("command thread")
}

/// The `imnm` binary as a Command.
pub fn imnm_cmd(args: &[&str], cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imnm"));
    cmd.args(args).current_dir(cwd);
    cmd
}
