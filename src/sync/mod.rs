//! Sync: what to fetch from a FHIR server and in which order, writing every
//! page (or bulk file chunk) into the [`crate::store`] as it arrives.
//!
//! Two modes. **Crawl** (`crawl`): read the CapabilityStatement while finding
//! the cohort (a Condition search by the IMNM diagnosis codes of the mappings, a
//! list of Patient ids, or a Group's members), then per patient (bounded
//! concurrency) search Patient, Condition, Observation, DiagnosticReport,
//! DocumentReference and every medication type the server declares. **Bulk** ([`bulk`](mod@bulk)): a Group, Patient or
//! system `$export`, polled to its manifest, files downloaded in parallel and
//! checked against the manifest's counts. After either, every referenced
//! Medication not already held is fetched, and every Observation a
//! DiagnosticReport's `result` references and the run did not bring
//! (`hydrate`); then report and note attachments given by a url to a Binary
//! on the server's base URL are fetched into the stored resource
//! (`attachments`; the token is never sent to another origin).
//!
//! A run is for one **site** ([`SyncOptions::site`], by default derived from
//! the base URL): every page, the sync state, the remembered cohort and the
//! server's OperationOutcomes are kept under it, so servers that number their
//! resources alike never overwrite each other in one store.
//!
//! Incremental runs (`Since`) start from the watermark of the last successful
//! run of the site ([`crate::store::SyncState::watermark`]): the server's clock when the run
//! began (the first search Bundle's `meta.lastUpdated`, else its HTTP `Date`
//! less one second, in crawl mode; the manifest's `transactionTime` in bulk
//! mode), or, when the server sends no time, the local start time minus
//! [`CLOCK_SKEW`].
//!
//! HTTP is [`crate::client`]'s job and the database is the store's; this
//! module must not touch the cohort rules. Logs hold counts, never ids.

mod attachments;
pub mod bulk;
pub(crate) mod crawl;
mod hydrate;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

use crate::client::{BulkLevel, ClientError, FhirClient};
use crate::mapping::MappingSet;
use crate::store::{site_id_for, SiteIdError, Store, StoreError};

pub use crawl::{DOCUMENT_CATEGORIES, OBSERVATION_CATEGORIES, SINCE_CREATED_PARAMS};

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A request failed for good.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server's CapabilityStatement does not declare a resource type the sync needs.
    #[error("the server cannot be synced this way: no {resource_type} resource declared")]
    NotDeclared {
        /// The type (`Patient`, `Condition`).
        resource_type: &'static str,
    },
    /// The server's CapabilityStatement does not declare a search parameter the sync needs.
    #[error("the server cannot be synced this way: {resource_type} has no {param} search parameter")]
    NoSearchParam {
        /// The type searched.
        resource_type: &'static str,
        /// The parameter.
        param: &'static str,
    },
    /// The Group asked for (`--group`) does not exist on the server.
    #[error("the server cannot be synced this way: the Group given does not exist on the server")]
    NoGroup {
        /// The Group's id, as given.
        group: String,
    },
    /// A task of the run panicked or was cancelled.
    #[error("the server cannot be synced this way: a {task} task failed: {source}")]
    Task {
        /// `crawl`, `download` or `store`.
        task: &'static str,
        /// The runtime's error.
        source: tokio::task::JoinError,
    },
    /// The mappings lack a value set the cohort search needs.
    #[error("the mappings have no value set '{id}'")]
    MissingValueSet {
        /// The value set's id.
        id: String,
    },
    /// The site id given ([`SyncOptions::site`]) is not one.
    #[error("--site: {source}")]
    Site {
        /// What is wrong with it.
        source: SiteIdError,
    },
    /// The store last synced this site from another server.
    #[error(
        "site {site} was synced from {held} before, not {given}: give the other hospital its own --site, \
         or --new-base-url if this hospital moved its FHIR endpoint"
    )]
    SiteMoved {
        /// The site.
        site: String,
        /// The origin it was synced from.
        held: String,
        /// The origin asked for now.
        given: String,
    },
    /// A bulk export still running after [`SyncOptions::max_export_wait`].
    #[error(
        "the bulk export is still running after {waited_secs} s; its status URL is kept and the next run resumes polling it"
    )]
    ExportStillRunning {
        /// How long this run polled it.
        waited_secs: u64,
    },
    /// `--since` is not a FHIR instant.
    #[error("--since '{value}' is not a FHIR instant like 2024-01-01T00:00:00Z (or 'auto')")]
    Since {
        /// The value given (trimmed).
        value: String,
    },
}

impl SyncError {
    /// Whether the run could not start because of a setting (`--since`,
    /// `--site`), as opposed to the server, the store or the mappings.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            SyncError::Since { .. } | SyncError::Site { .. } | SyncError::SiteMoved { .. }
        )
    }
}

/// The medication resource types synced, when the server declares them.
pub const MEDICATION_TYPES: &[&str] = &[
    "MedicationStatement",
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationDispense",
];

/// Every resource type a sync asks for (when the server declares it).
pub const SYNCED_TYPES: &[&str] = &[
    "Patient",
    "Condition",
    "Observation",
    "DiagnosticReport",
    "DocumentReference",
    "MedicationStatement",
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationDispense",
    "Medication",
];

/// Value sets whose codes find the cohort: IMNM codes, and the parent codes
/// that make a case with IMNM wording (or a candidate).
pub const COHORT_VALUESETS: &[&str] = &["imnm-diagnosis", "imnm-parent"];

/// Subtracted from the local start time when the server gives no clock of its own.
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Crawl (searches per patient) or Bulk Data `$export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Searches per patient. The default.
    #[default]
    Crawl,
    /// Bulk Data `$export`.
    Bulk,
}

/// Which changes an incremental run asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Since {
    /// Everything. The default.
    #[default]
    All,
    /// From the last successful run's watermark (everything when there is none).
    Auto,
    /// From this FHIR instant.
    At(String),
}

/// How "changed since" is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinceMode {
    /// `_lastUpdated=gt…` (crawl) / `_since` (bulk). The default.
    #[default]
    LastUpdated,
    /// For servers without `_lastUpdated` (Epic): each type's clinical date
    /// parameter from [`SINCE_CREATED_PARAMS`] with `ge`, when declared; types
    /// without one are fetched in full. Crawl only.
    Created,
}

/// What a run is doing, for a progress display (counts only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A phase starts (`patients`, `export`, `files`, `medications`), with its size when known.
    Phase {
        /// The phase.
        name: &'static str,
        /// Units of work, when known.
        total: Option<u64>,
    },
    /// One more unit of the current phase is done.
    Step,
    /// The current phase has this many more units than announced (the crawl's
    /// searches grow as the cohort's pages arrive).
    More(u64),
    /// The server's `X-Progress` text while an export runs.
    Message(String),
}

/// Receives [`Progress`] events.
#[derive(Clone)]
pub struct ProgressSink(pub Arc<dyn Fn(Progress) + Send + Sync>);

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

/// Sync settings.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// The site the server's resources, sync state and cohort are kept under in
    /// the store ([`crate::store::site`]). Default empty: the id
    /// [`site_id_for`] derives from the client's base URL.
    pub site: String,
    /// Patients crawled at once (crawl) or files downloaded at once (bulk). Default 4.
    pub concurrency: usize,
    /// Crawl these Patient ids instead of searching the cohort.
    pub patients: Option<Vec<String>>,
    /// The cohort is this Group's members (crawl: Group read; bulk: Group `$export`).
    pub group: Option<String>,
    /// `_count` asked for each search page. Default 100.
    pub page_size: usize,
    /// Crawl or bulk. Default crawl.
    pub mode: Mode,
    /// Bulk without a group: Patient-level (default) or system-level.
    pub system_export: bool,
    /// Incremental or full. Default full.
    pub since: Since,
    /// How changes are asked for. Default `_lastUpdated`.
    pub since_mode: SinceMode,
    /// Longest wait between two bulk status polls when the server sends no `Retry-After`. Default 10 s.
    pub max_poll_wait: Duration,
    /// Longest a run waits for a bulk export to finish: past it the run fails
    /// ([`SyncError::ExportStillRunning`]) and the next run resumes polling the
    /// same export (its status URL stays in the store). Default 12 hours.
    pub max_export_wait: Duration,
    /// Where progress goes. Default nowhere.
    pub progress: Option<ProgressSink>,
    /// Sync the site even when the store last synced it from another server
    /// (a hospital that moved its FHIR endpoint). Default false: refused, so
    /// two hospitals are never mixed under one site id.
    pub new_base_url: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            site: String::new(),
            concurrency: 4,
            patients: None,
            group: None,
            page_size: 100,
            mode: Mode::Crawl,
            system_export: false,
            since: Since::All,
            since_mode: SinceMode::LastUpdated,
            max_poll_wait: Duration::from_secs(10),
            max_export_wait: Duration::from_secs(12 * 3600),
            progress: None,
            new_base_url: false,
        }
    }
}

/// What a sync did (counts only).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// The site synced (as given, or derived from the base URL).
    pub site: String,
    /// Patients crawled (crawl) or Patient resources exported (bulk).
    pub patients: u64,
    /// Pages (crawl) or file chunks (bulk) written.
    pub pages: u64,
    /// Resources received, per type (repeats included).
    pub received: BTreeMap<String, u64>,
    /// New resources stored.
    pub inserted: u64,
    /// Resources replaced by a newer version.
    pub updated: u64,
    /// Resources removed from the store: the bulk manifest's `deleted` files
    /// listed them (deleted on the server after `_since`).
    pub deleted: u64,
    /// Medications fetched by reference.
    pub medications_fetched: u64,
    /// Observations a DiagnosticReport's `result` or a panel's `hasMember`
    /// references, read one by one because the searches did not bring them.
    pub results_fetched: u64,
    /// Binaries fetched into report and note attachments given by url (on the server's base URL).
    pub attachments_fetched: u64,
    /// Attachment urls off the server's base URL: not fetched (the token goes nowhere else).
    pub attachments_elsewhere: u64,
    /// OperationOutcomes the server reported in bulk `error` files (kept in the store).
    pub server_issues: u64,
    /// Bulk: whether polling resumed a status URL saved by an interrupted run.
    pub resumed: bool,
    /// The watermark recorded for the next `--since auto`.
    pub watermark: Option<String>,
    /// The `_since` / `_lastUpdated` lower bound this run used, if incremental.
    pub since: Option<String>,
}

/// The types and search parameters a server declares.
#[derive(Debug, Default, Clone)]
pub struct Capabilities {
    params: HashMap<String, HashSet<String>>,
    software: String,
}

impl Capabilities {
    /// Reads `rest[mode=server].resource[]` of a CapabilityStatement.
    pub fn from_statement(cs: &Value) -> Self {
        let mut params = HashMap::new();
        let rests = cs["rest"].as_array().into_iter().flatten();
        for rest in rests.filter(|r| r["mode"].as_str().is_none_or(|m| m == "server")) {
            for r in rest["resource"].as_array().into_iter().flatten() {
                let Some(t) = r["type"].as_str() else { continue };
                let names: HashSet<String> = r["searchParam"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["name"].as_str().map(str::to_string))
                    .collect();
                params.insert(t.to_string(), names);
            }
        }
        let software = cs["software"]["name"].as_str().unwrap_or_default().to_string();
        Capabilities { params, software }
    }

    /// Whether Observation searches need `category`: declared, and the server is known
    /// to refuse a search without it (its CapabilityStatement's software names Epic).
    /// Other servers that refuse a search without it (Observation, DocumentReference)
    /// are found by their 400 (see the crawl).
    pub fn observation_needs_category(&self) -> bool {
        self.has_param("Observation", "category") && self.software.to_ascii_lowercase().contains("epic")
    }

    /// Whether the server declares `rtype`.
    pub fn supports(&self, rtype: &str) -> bool {
        self.params.contains_key(rtype)
    }

    /// Whether the server declares search parameter `param` on `rtype`.
    pub fn has_param(&self, rtype: &str, param: &str) -> bool {
        self.params.get(rtype).is_some_and(|p| p.contains(param))
    }

    /// `patient`, else `subject`, for searches of `rtype` by patient.
    fn patient_param(&self, rtype: &str) -> Option<&'static str> {
        ["patient", "subject"].into_iter().find(|p| self.has_param(rtype, p))
    }
}

/// The `code` search value for the cohort: `system|code,…` over [`COHORT_VALUESETS`].
pub fn cohort_codes(mappings: &MappingSet) -> Result<String, SyncError> {
    let mut codes = BTreeSet::new();
    for id in COHORT_VALUESETS {
        let vs = mappings
            .valueset(id)
            .ok_or_else(|| SyncError::MissingValueSet { id: id.to_string() })?;
        for (system, code) in &mappings.valuesets[vs].codes {
            codes.insert(format!("{system}|{code}"));
        }
    }
    Ok(codes.into_iter().collect::<Vec<_>>().join(","))
}

/// Shared state of one run.
struct Ctx {
    client: FhirClient,
    store: Arc<Mutex<Store>>,
    /// The site every store call is for.
    site: String,
    report: Mutex<SyncReport>,
    page_size: usize,
    /// The earliest server clock seen (search Bundle `meta.lastUpdated`).
    server_time: Mutex<Option<String>>,
    progress: Option<ProgressSink>,
    /// The types whose searches carry `category` (Epic, or a server that refused a search without it).
    categorised: Mutex<std::collections::BTreeSet<&'static str>>,
}

impl Ctx {
    /// Reads the server's CapabilityStatement; Observation searches carry
    /// `category` from the start where the server is known to need it.
    async fn capabilities(&self) -> Result<Capabilities, SyncError> {
        let caps = Capabilities::from_statement(&self.client.capabilities().await?);
        if caps.observation_needs_category() {
            lock(&self.categorised).insert("Observation");
        }
        Ok(caps)
    }

    fn progress(&self, p: Progress) {
        if let Some(sink) = &self.progress {
            (sink.0)(p);
        }
    }

    /// Runs a search to the end, writing each page in one transaction. Returns its resources.
    async fn crawl(&self, rtype: &str, params: Vec<(&str, String)>) -> Result<Vec<Value>, SyncError> {
        let mut all = Vec::new();
        self.crawl_pages(rtype, params, |page| all.extend_from_slice(page))
            .await?;
        Ok(all)
    }

    /// Searches `rtype`, storing each page, then handing it to `on_page` before the next is asked for.
    async fn crawl_pages(
        &self,
        rtype: &str,
        mut params: Vec<(&str, String)>,
        mut on_page: impl FnMut(&[Value]),
    ) -> Result<(), SyncError> {
        params.push(("_count", self.page_size.to_string()));
        let mut pages = self.client.search(rtype, &params);
        while let Some(page) = pages.next().await? {
            if let Some(t) = pages.server_time() {
                let mut held = self.server_time.lock().unwrap_or_else(|e| e.into_inner());
                if held.as_deref().is_none_or(|h| t < h) {
                    *held = Some(t.to_string());
                }
            }
            let page = self.write_off_runtime(page).await?;
            on_page(&page);
        }
        Ok(())
    }

    /// Stores `page` as [`Ctx::write`] does, on tokio's blocking threads: a
    /// transaction (and waiting for the store's lock while another site's page
    /// is written) never holds a runtime thread, so this site's and the other
    /// sites' requests, and an in-process mock, keep moving. Returns the page.
    async fn write_off_runtime(&self, page: Vec<Value>) -> Result<Vec<Value>, SyncError> {
        let (store, site) = (self.store.clone(), self.site.clone());
        let (page, stats) = tokio::task::spawn_blocking(move || {
            let stats = lock(&store).write_page(&site, &page);
            (page, stats)
        })
        .await
        .map_err(|source| SyncError::Task { task: "store", source })?;
        self.count(&page, stats?);
        Ok(page)
    }

    fn write(&self, page: &[Value]) -> Result<(), SyncError> {
        let stats = lock(&self.store).write_page(&self.site, page)?;
        self.count(page, stats);
        Ok(())
    }

    /// Counts a stored page in the run's report.
    fn count(&self, page: &[Value], stats: crate::store::WriteStats) {
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        report.pages += 1;
        report.inserted += stats.inserted;
        report.updated += stats.updated;
        for r in page {
            let t = r["resourceType"].as_str().unwrap_or("?").to_string();
            *report.received.entry(t).or_default() += 1;
        }
    }

    fn report(&self) -> SyncReport {
        self.report.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// A lock, taken even if another task panicked holding it (a poisoned lock is no
/// reason to stop a site's sync).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Syncs the server behind `client` into `store` as `options` say; see the module docs.
/// The run is recorded in the store's sync state (`done` with its watermark, or `failed`).
pub async fn run(
    client: &FhirClient,
    store: Arc<Mutex<Store>>,
    mappings: &MappingSet,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let base = client.base_url().to_string();
    let site = site_of(client, &options.site)?;
    let since = match &options.since {
        Since::All => None,
        Since::Auto => lock(&store).sync_state(&site)?.and_then(|s| s.watermark),
        Since::At(t) => Some(check_instant(t)?),
    };
    let held = lock(&store).sync_state(&site)?.and_then(|s| s.base_url);
    if let Some(held) = held.filter(|h| h != &base && !options.new_base_url) {
        // Base URLs as given, any query cut off (no query ever reaches a message).
        let origin = |u: &str| u.split(['?', '#']).next().unwrap_or_default().to_string();
        return Err(SyncError::SiteMoved {
            given: origin(&base),
            held: origin(&held),
            site,
        });
    }
    lock(&store).begin_run(&site, &base)?;
    let started = std::time::SystemTime::now();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        site: site.clone(),
        store: store.clone(),
        report: Mutex::new(SyncReport::default()),
        page_size: options.page_size.max(1),
        server_time: Mutex::new(None),
        progress: options.progress.clone(),
        categorised: Mutex::new(std::collections::BTreeSet::new()),
    });
    let result = async {
        // A crawl reads the CapabilityStatement beside its first cohort request.
        let (caps, watermark) = match options.mode {
            Mode::Crawl => crawl::run(&ctx, mappings, options, since.as_deref()).await?,
            Mode::Bulk => {
                let caps = ctx.capabilities().await?;
                let watermark = bulk::run(&ctx, &caps, options, since.as_deref()).await?;
                (caps, watermark)
            }
        };
        let fetched = hydrate::run(&ctx, &caps).await?;
        let mut report = ctx.report();
        report.site = site.clone();
        report.medications_fetched = fetched.medications;
        report.results_fetched = fetched.results;
        let attached = attachments::run(&ctx).await?;
        report.attachments_fetched = attached.fetched;
        report.attachments_elsewhere = attached.elsewhere;
        report.since = since.clone();
        report.watermark = Some(watermark.unwrap_or_else(|| local_watermark(started)));
        Ok::<_, SyncError>(report)
    }
    .await;
    let watermark = result.as_ref().ok().and_then(|r| r.watermark.clone());
    lock(&store).finish_run(&site, watermark.as_deref(), result.is_ok())?;
    if let Ok(report) = &result {
        tracing::info!(
            site = %site,
            patients = report.patients,
            pages = report.pages,
            inserted = report.inserted,
            updated = report.updated,
            "sync done"
        );
    }
    result
}

/// A crawl (whatever `options.mode` says); kept for callers of the first API.
pub async fn crawl(
    client: &FhirClient,
    store: Arc<Mutex<Store>>,
    mappings: &MappingSet,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let options = SyncOptions {
        mode: Mode::Crawl,
        ..options.clone()
    };
    run(client, store, mappings, &options).await
}

/// The site a run of `client` is for: `site` when given (and a site id), else
/// the one derived from the client's base URL.
pub(crate) fn site_of(client: &FhirClient, site: &str) -> Result<String, SyncError> {
    if site.is_empty() {
        return Ok(site_id_for(client.base_url()));
    }
    crate::store::check_site_id(site).map_err(|source| SyncError::Site { source })?;
    Ok(site.to_string())
}

/// `t` when it is a FHIR instant or date (e.g. `2024-01-01T00:00:00Z`, `2024-01-01`).
pub fn check_instant(t: &str) -> Result<String, SyncError> {
    let t = t.trim();
    let date = t.split('T').next().unwrap_or(t);
    match crate::domain::date::FhirDate::parse(date) {
        Ok(d) if d.is_full() => Ok(t.to_string()),
        _ => Err(SyncError::Since { value: t.to_string() }),
    }
}

/// The local start time minus [`CLOCK_SKEW`], as a FHIR instant in UTC.
fn local_watermark(started: std::time::SystemTime) -> String {
    let secs = started
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(CLOCK_SKEW.as_secs()))
        .unwrap_or(0) as i64;
    crate::domain::date::instant_from_unix(secs)
}

/// The Patient id of a resource's `subject` or `patient` reference (`Patient/ID`).
fn subject_id(r: &Value) -> Option<String> {
    let reference = r["subject"]["reference"]
        .as_str()
        .or_else(|| r["patient"]["reference"].as_str())?;
    patient_ref_id(reference)
}

/// `ID` of `Patient/ID` (relative or absolute, `_history` dropped).
fn patient_ref_id(reference: &str) -> Option<String> {
    let id = reference.strip_prefix("Patient/").or_else(|| {
        let (_, tail) = reference.rsplit_once("/Patient/")?;
        Some(tail)
    })?;
    let id = id.split('/').next().unwrap_or(id);
    (!id.is_empty()).then(|| id.to_string())
}

/// The bulk level `options` ask for.
fn bulk_level(options: &SyncOptions) -> BulkLevel {
    match (&options.group, options.system_export) {
        (Some(g), _) => BulkLevel::Group(g.clone()),
        (None, true) => BulkLevel::System,
        (None, false) => BulkLevel::Patient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subject_ids_from_relative_and_absolute_references() {
        assert_eq!(
            subject_id(&json!({"subject": {"reference": "Patient/a1"}})).as_deref(),
            Some("a1")
        );
        assert_eq!(
            subject_id(&json!({"subject": {"reference": "http://h/fhir/Patient/b/_history/2"}})).as_deref(),
            Some("b")
        );
        assert_eq!(subject_id(&json!({"subject": {"reference": "Group/g"}})), None);
    }

    #[test]
    fn cohort_codes_cover_imnm_and_parent_codes() {
        let m = MappingSet::builtin().unwrap();
        let codes = cohort_codes(&m).unwrap();
        assert!(codes.contains("http://snomed.info/sct|715863001"));
        assert!(codes.contains("http://hl7.org/fhir/sid/icd-10-cm|G72.49"));
        assert!(codes.contains("http://snomed.info/sct|26889001"));
        assert!(!codes.contains("396230008"), "differential codes are not searched");
    }

    #[test]
    fn capabilities_read_types_and_params() {
        let cs = json!({"rest": [{"mode": "server", "resource": [
            {"type": "Observation", "searchParam": [{"name": "patient"}, {"name": "category"}]},
            {"type": "Medication", "searchParam": [{"name": "_id"}]}
        ]}]});
        let c = Capabilities::from_statement(&cs);
        assert!(c.supports("Observation") && c.has_param("Observation", "category"));
        assert_eq!(c.patient_param("Observation"), Some("patient"));
        assert!(!c.supports("MedicationStatement"));
    }
}
