//! Crawl mode: the cohort (Condition search by code, a Patient id list, or a
//! Group's members), then per patient, `concurrency` at a time, one search per
//! declared type. Incremental runs add `_lastUpdated=gt…`, or with
//! [`SinceMode::Created`] each type's clinical date parameter.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::MEDICATION_TYPES;
use super::{
    cohort_codes, lock, patient_ref_id, subject_id, Capabilities, Ctx, Progress, SinceMode, SyncError, SyncOptions,
};
use crate::mapping::MappingSet;

/// Observation categories sent when the server declares `category` for
/// Observation (the nine of the FHIR observation-category code system plus
/// `exam`, `procedure` and `imaging`, as SMART Fetch does): Epic refuses an
/// Observation search without one.
pub const OBSERVATION_CATEGORIES: &[&str] = &[
    "social-history",
    "vital-signs",
    "imaging",
    "laboratory",
    "procedure",
    "survey",
    "exam",
    "therapy",
    "activity",
    "smartdata",
    "functional-status",
    "core-characteristics",
];

/// DocumentReference categories sent where a server refuses a DocumentReference
/// search without one (a 400): `clinical-note`, the US Core category of notes.
/// Epic is not asked for one (SMART Fetch, tested against Epic, sends none either).
pub const DOCUMENT_CATEGORIES: &[&str] = &["clinical-note"];

/// The types searched per patient that may need `category`, with the categories sent.
const CATEGORY_SEARCHES: &[(&str, &[&str])] = &[
    ("Observation", OBSERVATION_CATEGORIES),
    ("DocumentReference", DOCUMENT_CATEGORIES),
];

/// `rtype` and its searches' categories, if a server may need them.
fn categories(rtype: &str) -> Option<(&'static str, &'static [&'static str])> {
    CATEGORY_SEARCHES.iter().find(|(t, _)| *t == rtype).copied()
}

/// `--since-mode created`, and any type whose `_lastUpdated` the server does not
/// declare: the date search parameter used per type (with `ge` and the
/// watermark's date) when the server declares it. These are clinical
/// dates, not record creation times: a result entered late with an early date
/// is missed, which is why `_lastUpdated` is the default. Patient is always
/// fetched whole (one resource per patient).
pub const SINCE_CREATED_PARAMS: &[(&str, &str)] = &[
    ("Condition", "recorded-date"),
    ("Observation", "date"),
    ("DiagnosticReport", "date"),
    ("DocumentReference", "date"),
    ("MedicationStatement", "effective"),
    ("MedicationRequest", "authoredon"),
    ("MedicationAdministration", "effective-time"),
    ("MedicationDispense", "whenhandedover"),
];

/// How one run filters its searches.
struct Filter<'a> {
    since: Option<&'a str>,
    mode: SinceMode,
}

impl Filter<'_> {
    /// The parameter that limits a search of `rtype` to changes, if any.
    fn param(&self, caps: &Capabilities, rtype: &str) -> Option<(&'static str, String)> {
        let since = self.since?;
        match self.mode {
            SinceMode::LastUpdated if caps.has_param(rtype, "_lastUpdated") => {
                Some(("_lastUpdated", format!("gt{since}")))
            }
            // Created, or `_lastUpdated` not declared for this type (Epic): a clinical date.
            _ => {
                let (_, param) = SINCE_CREATED_PARAMS
                    .iter()
                    .find(|(t, p)| *t == rtype && caps.has_param(rtype, p))?;
                let date = since.split('T').next().unwrap_or(since);
                Some((param, format!("ge{date}")))
            }
        }
    }
}

/// The CapabilityStatement as the cohort's requests wait for it: `None` until read.
type CapsWatch = watch::Receiver<Option<Arc<Capabilities>>>;

/// Crawls; returns the server's capabilities (for the steps after) and the server
/// time the run started at (the watermark), when the server gave one.
///
/// The CapabilityStatement is read beside the cohort's first request when that
/// request does not depend on it (a full run: the Condition search by code, or the
/// Group read), saving a round trip per site. Patients' searches wait for it, and a
/// refusal it gives (a type or the `code` parameter not declared) is the run's error
/// even when the cohort's own request failed first.
pub(super) async fn run(
    ctx: &Arc<Ctx>,
    mappings: &MappingSet,
    options: &SyncOptions,
    since: Option<&str>,
) -> Result<(Capabilities, Option<String>), SyncError> {
    let filter = Filter {
        since,
        mode: options.since_mode,
    };
    ctx.progress(Progress::Phase {
        name: "searches",
        total: Some(0),
    });
    let (caps_tx, caps_rx) = watch::channel(None);
    let (ids_tx, mut ids_rx) = mpsc::unbounded_channel::<String>();
    let searching = async {
        let caps = Arc::new(ctx.capabilities().await?);
        refusal(&caps, options).map_or(Ok(()), Err)?;
        caps_tx.send_replace(Some(caps.clone()));
        let mut searches = Searches::new(ctx, caps, options, since);
        // Patients' searches start as the cohort's pages arrive (dropping `searches`
        // on an error aborts those already started).
        while let Some(pid) = ids_rx.recv().await {
            searches.start(&pid);
        }
        Ok::<_, SyncError>(searches)
    };
    let finding = async {
        let ids = ids_tx;
        let mut known = caps_rx.clone();
        let found = cohort(ctx, caps_rx, mappings, options, &filter, &mut |pid| {
            // The receiver lives until this sender is dropped, below.
            let _ = ids.send(pid.to_string());
        })
        .await;
        if found.is_err() {
            // The CapabilityStatement's refusal, if any, comes first.
            read(&mut known).await;
        }
        drop(ids);
        found
    };
    let (mut searches, ()) = tokio::try_join!(searching, finding)?;
    let patients = std::mem::take(&mut searches.patients);
    lock(&ctx.store).add_cohort(&ctx.site, patients.iter().map(String::as_str))?;
    tracing::info!(patients = patients.len(), "cohort found");
    let caps = searches.caps.clone();
    searches.finish().await?;
    ctx.report.lock().unwrap_or_else(|e| e.into_inner()).patients = patients.len() as u64;
    let watermark = ctx.server_time.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok((Arc::unwrap_or_clone(caps), watermark))
}

/// Why a server cannot be crawled, from its CapabilityStatement: Patient or
/// Condition not declared, or no Condition `code` search when the cohort is found by one.
fn refusal(caps: &Capabilities, options: &SyncOptions) -> Option<SyncError> {
    if let Some(needed) = ["Patient", "Condition"].into_iter().find(|t| !caps.supports(t)) {
        return Some(SyncError::NotDeclared { resource_type: needed });
    }
    let by_search = options.patients.is_none() && options.group.is_none();
    (by_search && !caps.has_param("Condition", "code")).then_some(SyncError::NoSearchParam {
        resource_type: "Condition",
        param: "code",
    })
}

/// The capabilities once read. When they never will be (their request failed or
/// refused the run, whose error that is), this waits forever: the run stops on that error.
async fn read(caps: &mut CapsWatch) -> Arc<Capabilities> {
    match caps.wait_for(Option::is_some).await.ok().and_then(|c| c.clone()) {
        Some(caps) => caps,
        None => std::future::pending().await,
    }
}

/// The per-patient searches of a crawl: every (patient, type) search is a task.
struct Searches {
    ctx: Arc<Ctx>,
    caps: Arc<Capabilities>,
    types: Arc<Vec<&'static str>>,
    filter: Arc<(Option<String>, SinceMode)>,
    permits: Arc<Semaphore>,
    tasks: JoinSet<Result<(), SyncError>>,
    /// The patients started so far.
    patients: BTreeSet<String>,
}

impl Searches {
    fn new(ctx: &Arc<Ctx>, caps: Arc<Capabilities>, options: &SyncOptions, since: Option<&str>) -> Self {
        Searches {
            ctx: ctx.clone(),
            types: Arc::new(patient_types(&caps)),
            caps,
            filter: Arc::new((since.map(str::to_string), options.since_mode)),
            // Twice `concurrency` searches may run at once, so a request slot freed by one is
            // taken at once by another (the client's own limit keeps `concurrency` requests in
            // flight) instead of idling while a page is parsed and stored.
            permits: Arc::new(Semaphore::new(options.concurrency.max(1) * 2)),
            tasks: JoinSet::new(),
            patients: BTreeSet::new(),
        }
    }

    /// Starts `pid`'s searches, once per patient.
    fn start(&mut self, pid: &str) {
        if !self.patients.insert(pid.to_string()) {
            return;
        }
        self.ctx.progress(Progress::More(self.types.len() as u64));
        for i in 0..self.types.len() {
            let (ctx, caps, permits, filter, types) = (
                self.ctx.clone(),
                self.caps.clone(),
                self.permits.clone(),
                self.filter.clone(),
                self.types.clone(),
            );
            let pid = pid.to_string();
            self.tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let f = Filter {
                    since: filter.0.as_deref(),
                    mode: filter.1,
                };
                let done = search(&ctx, &caps, &pid, types[i], &f).await;
                ctx.progress(Progress::Step);
                done
            });
        }
    }

    /// Waits for every search; the first failure stops the others.
    async fn finish(mut self) -> Result<(), SyncError> {
        let mut first_error = None;
        while let Some(done) = self.tasks.join_next().await {
            let outcome = done.unwrap_or_else(|source| Err(SyncError::Task { task: "crawl", source }));
            if let (Err(e), None) = (outcome, &first_error) {
                self.tasks.abort_all();
                first_error = Some(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Calls `found` with each Patient id to crawl: the given list, a Group's members, or
/// the subjects of a Condition search by code, page by page (plus, when incremental,
/// the cohort remembered from earlier runs).
async fn cohort(
    ctx: &Ctx,
    mut caps: CapsWatch,
    mappings: &MappingSet,
    options: &SyncOptions,
    filter: &Filter<'_>,
    found: &mut (dyn FnMut(&str) + Send),
) -> Result<(), SyncError> {
    if let Some(ids) = &options.patients {
        ids.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).for_each(found);
        return Ok(());
    }
    if let Some(group) = &options.group {
        let Some(g) = ctx.client.read("Group", group).await? else {
            return Err(SyncError::NoGroup { group: group.clone() });
        };
        let members = g["member"].as_array().into_iter().flatten();
        members
            .filter_map(|m| m["entity"]["reference"].as_str())
            .filter_map(patient_ref_id)
            .for_each(|id| found(&id));
        return Ok(());
    }
    // `code` is declared: checked by [`refusal`] before any patient's search starts.
    let mut params = vec![("code", cohort_codes(mappings)?)];
    if filter.since.is_some() {
        // An incremental run's date parameter depends on what the server declares.
        let caps = read(&mut caps).await;
        params.extend(filter.param(&caps, "Condition"));
    }
    ctx.crawl_pages("Condition", params, |page| {
        page.iter().filter_map(subject_id).for_each(|id| found(&id));
    })
    .await?;
    if filter.since.is_some() {
        lock(&ctx.store).cohort(&ctx.site)?.iter().for_each(|id| found(id));
    }
    Ok(())
}

/// The types searched per patient: Patient, Condition, Observation and the
/// declared DiagnosticReport, DocumentReference and medication types.
fn patient_types(caps: &Capabilities) -> Vec<&'static str> {
    let mut types = vec!["Patient", "Condition", "Observation"];
    types.extend(
        ["DiagnosticReport", "DocumentReference"]
            .into_iter()
            .filter(|t| caps.supports(t)),
    );
    types.extend(MEDICATION_TYPES.iter().copied().filter(|t| caps.supports(t)));
    types
}

/// One patient's search of one type (Patient by `_id`, others by `patient`/`subject`).
async fn search(ctx: &Ctx, caps: &Capabilities, pid: &str, rtype: &str, filter: &Filter<'_>) -> Result<(), SyncError> {
    let param = match rtype {
        "Patient" => "_id",
        _ => match caps.patient_param(rtype) {
            Some(p) => p,
            None => return Ok(()),
        },
    };
    let mut params = vec![(param, pid.to_string())];
    params.extend(filter.param(caps, rtype));
    match categories(rtype) {
        Some((rtype, categories)) => by_category(ctx, caps, rtype, categories, params).await,
        None => ctx.crawl(rtype, params).await.map(drop),
    }
}

/// One search of a type that may need `category` (Observation, DocumentReference)
/// without it (it finds uncategorised resources too); where the server needs it
/// (Epic, or a 400 here), the type's categories instead.
async fn by_category(
    ctx: &Ctx,
    caps: &Capabilities,
    rtype: &'static str,
    categories: &[&str],
    mut params: Vec<(&str, String)>,
) -> Result<(), SyncError> {
    let needs = || lock(&ctx.categorised).contains(rtype);
    if !needs() {
        match ctx.crawl(rtype, params.clone()).await {
            Ok(_) => return Ok(()),
            Err(SyncError::Client(e)) if e.status() == Some(400) && caps.has_param(rtype, "category") => {
                tracing::info!("the server refuses {rtype} searches without category; sending categories");
                lock(&ctx.categorised).insert(rtype);
            }
            Err(e) => return Err(e),
        }
    }
    params.push(("category", categories.join(",")));
    ctx.crawl(rtype, params).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn since_filters_per_mode_and_declared_params() {
        let caps = Capabilities::from_statement(&json!({"rest": [{"resource": [
            {"type": "Observation", "searchParam": [{"name": "patient"}, {"name": "date"}]},
            {"type": "Condition", "searchParam": [{"name": "patient"}, {"name": "_lastUpdated"}]}
        ]}]}));
        let at = "2024-03-01T10:00:00Z";
        let last = Filter {
            since: Some(at),
            mode: SinceMode::LastUpdated,
        };
        assert_eq!(
            last.param(&caps, "Condition"),
            Some(("_lastUpdated", "gt2024-03-01T10:00:00Z".into()))
        );
        let created = Filter {
            since: Some(at),
            mode: SinceMode::Created,
        };
        assert_eq!(
            created.param(&caps, "Observation"),
            Some(("date", "ge2024-03-01".into()))
        );
        assert_eq!(
            created.param(&caps, "Condition"),
            None,
            "recorded-date not declared: full"
        );
        let full = Filter {
            since: None,
            mode: SinceMode::Created,
        };
        assert_eq!(full.param(&caps, "Observation"), None);
    }
}
