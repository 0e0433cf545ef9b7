//! `imnm mock-ehr`: serves a dataset as a mock EHR on 127.0.0.1 until Ctrl-C.

use std::net::TcpListener;
use std::time::Duration;

use anyhow::Context;
use imnm_fhir::exit;
use imnm_fhir::mock::{Auth, FaultPlan, MockEhr, Vendor};

use crate::cli::MockEhrArgs;
use crate::{Exit, OrExit};

/// Parses the arguments, starts the mock, waits for Ctrl-C, writes the journal.
pub fn run(args: MockEhrArgs) -> Result<u8, Exit> {
    let usage = |e: anyhow::Error| Exit::new(exit::USAGE, e);
    let vendor: Vendor = args.vendor.parse().map_err(|e| usage(anyhow::Error::new(e)))?;
    let faults: FaultPlan = match &args.faults {
        Some(spec) => spec.parse().map_err(|e| usage(anyhow::Error::new(e)))?,
        None => FaultPlan::none(),
    };
    let auth = auth(&args).map_err(usage)?;
    for path in &args.data {
        if !path.exists() {
            return Err(Exit::new(
                exit::INPUT,
                anyhow::anyhow!("data {} does not exist", path.display()),
            ));
        }
    }
    let listener = TcpListener::bind(("127.0.0.1", args.port))
        .with_context(|| format!("binding 127.0.0.1:{}", args.port))
        .map_err(usage)?;
    let runtime = tokio::runtime::Runtime::new()
        .context("starting the async runtime")
        .map_err(usage)?;
    runtime.block_on(async {
        let ehr = MockEhr::builder()
            .dataset(imnm_fhir::mock::Dataset::Paths(args.data.clone()))
            .vendor(vendor)
            .faults(faults)
            .auth(auth)
            .retry_after(Duration::from_secs(args.retry_after))
            .listener(listener)
            .start()
            .await
            .map_err(|e| Exit::from(e).context("loading the dataset"))?;
        eprintln!(
            "mock EHR ({vendor}) serving FHIR R4 at {} (Ctrl-C to stop)",
            ehr.base_url()
        );
        let mut journal = match &args.journal {
            Some(path) => Some(JournalFile::create(path).or_exit(exit::OUTPUT)?),
            None => None,
        };
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            let stopping = tokio::select! {
                r = &mut stop => { r.context("waiting for Ctrl-C").map_err(usage)?; true }
                _ = tick.tick() => false,
            };
            if let Some(j) = journal.as_mut() {
                j.append(&ehr).or_exit(exit::OUTPUT)?;
            }
            if stopping {
                break;
            }
        }
        eprintln!("mock EHR stopped after {} request(s)", ehr.journal().len());
        Ok(exit::OK)
    })
}

fn auth(args: &MockEhrArgs) -> anyhow::Result<Auth> {
    match args.auth.as_str() {
        "none" => Ok(Auth::None),
        "smart" => {
            let jwks_path = args.jwks.as_ref().context("--auth smart needs --jwks FILE")?;
            let client_id = args.client_id.clone().context("--auth smart needs --client-id ID")?;
            let text =
                std::fs::read_to_string(jwks_path).with_context(|| format!("reading {}", jwks_path.display()))?;
            let jwks = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", jwks_path.display()))?;
            Ok(Auth::Smart { jwks, client_id })
        }
        other => anyhow::bail!("--auth must be none or smart, not '{other}'"),
    }
}

/// The journal as NDJSON, appended as requests come (so it survives a kill).
struct JournalFile {
    file: std::fs::File,
    path: std::path::PathBuf,
    written: usize,
}

impl JournalFile {
    fn create(path: &std::path::Path) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path).with_context(|| format!("creating the journal {}", path.display()))?;
        Ok(JournalFile {
            file,
            path: path.to_path_buf(),
            written: 0,
        })
    }

    fn append(&mut self, ehr: &MockEhr) -> anyhow::Result<()> {
        use std::io::Write;
        let entries = ehr.journal();
        let mut text = String::new();
        for entry in entries.iter().skip(self.written) {
            text.push_str(&serde_json::to_string(entry)?);
            text.push('\n');
        }
        self.written = entries.len();
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("writing the journal to {}", self.path.display()))
    }
}
