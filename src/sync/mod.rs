//! Sync: what to fetch from a FHIR server and in which order, writing every
//! page into the [`crate::store`] as it arrives.
//!
//! This module owns the crawl plan: read the CapabilityStatement, find the
//! cohort (a Condition search by the IMNM diagnosis codes of the mappings, or
//! a given list of Patient ids), then per patient (bounded concurrency) search
//! Patient, Condition, Observation and every medication type the server
//! declares, and finally fetch each referenced Medication not already held.
//! HTTP is [`crate::client`]'s job and the database is the store's; this
//! module must not touch the cohort rules. Logs hold counts, never ids.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{ClientError, FhirClient};
use crate::mapping::MappingSet;
use crate::store::{Store, StoreError};

/// Why a sync stopped.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A request failed for good.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server's CapabilityStatement does not allow the crawl.
    #[error("the server cannot be crawled: {0}")]
    Unsupported(String),
    /// The mappings lack a value set the cohort search needs.
    #[error("the mappings have no value set '{0}'")]
    Mappings(String),
}

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

/// The medication resource types crawled, when the server declares them.
pub const MEDICATION_TYPES: &[&str] = &[
    "MedicationStatement",
    "MedicationRequest",
    "MedicationAdministration",
    "MedicationDispense",
];

/// Value sets whose codes find the cohort: IMNM codes, and the parent codes
/// that make a case with IMNM wording (or a candidate).
pub const COHORT_VALUESETS: &[&str] = &["imnm-diagnosis", "imnm-parent"];

/// Crawl settings.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Patients crawled at once. Default 4.
    pub concurrency: usize,
    /// Crawl these Patient ids instead of searching the cohort.
    pub patients: Option<Vec<String>>,
    /// `_count` asked for each search page. Default 100.
    pub page_size: usize,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            concurrency: 4,
            patients: None,
            page_size: 100,
        }
    }
}

/// What a sync did (counts only).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Patients crawled.
    pub patients: u64,
    /// Pages written.
    pub pages: u64,
    /// Resources received, per type (repeats included).
    pub received: BTreeMap<String, u64>,
    /// New resources stored.
    pub inserted: u64,
    /// Resources replaced by a newer version.
    pub updated: u64,
    /// Medications fetched by reference.
    pub medications_fetched: u64,
}

/// The types and search parameters a server declares.
#[derive(Debug, Default, Clone)]
pub struct Capabilities {
    params: HashMap<String, HashSet<String>>,
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
        Capabilities { params }
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
            .ok_or_else(|| SyncError::Mappings(id.to_string()))?;
        for (system, code) in &mappings.valuesets[vs].codes {
            codes.insert(format!("{system}|{code}"));
        }
    }
    Ok(codes.into_iter().collect::<Vec<_>>().join(","))
}

struct Ctx {
    client: FhirClient,
    store: Arc<Mutex<Store>>,
    base: String,
    report: Mutex<SyncReport>,
    page_size: usize,
}

impl Ctx {
    /// Runs a search to the end, writing each page in one transaction. Returns its resources.
    async fn crawl(&self, rtype: &str, mut params: Vec<(&str, String)>) -> Result<Vec<Value>, SyncError> {
        params.push(("_count", self.page_size.to_string()));
        let mut pages = self.client.search(rtype, &params);
        let mut all = Vec::new();
        while let Some(page) = pages.next().await? {
            self.write(&page)?;
            all.extend(page);
        }
        Ok(all)
    }

    fn write(&self, page: &[Value]) -> Result<(), SyncError> {
        let stats = {
            let mut store = self.store.lock().unwrap_or_else(|e| e.into_inner());
            store.write_page(&self.base, page)?
        };
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        report.pages += 1;
        report.inserted += stats.inserted;
        report.updated += stats.updated;
        for r in page {
            let t = r["resourceType"].as_str().unwrap_or("?").to_string();
            *report.received.entry(t).or_default() += 1;
        }
        Ok(())
    }
}

/// Crawls the server behind `client` into `store`; see the module docs.
pub async fn crawl(
    client: &FhirClient,
    store: Arc<Mutex<Store>>,
    mappings: &MappingSet,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let base = client.base_url().to_string();
    lock(&store).begin_run(&base)?;
    let result = crawl_inner(client, store.clone(), mappings, options).await;
    lock(&store).finish_run(&base, None, result.is_ok())?;
    result
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|e| e.into_inner())
}

async fn crawl_inner(
    client: &FhirClient,
    store: Arc<Mutex<Store>>,
    mappings: &MappingSet,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let caps = Capabilities::from_statement(&client.capabilities().await?);
    for needed in ["Patient", "Condition"] {
        if !caps.supports(needed) {
            return Err(SyncError::Unsupported(format!("no {needed} resource declared")));
        }
    }
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        base: client.base_url().to_string(),
        store,
        report: Mutex::new(SyncReport::default()),
        page_size: options.page_size.max(1),
    });
    let patients: BTreeSet<String> = match &options.patients {
        Some(ids) => ids
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => {
            if !caps.has_param("Condition", "code") {
                return Err(SyncError::Unsupported("Condition has no code search parameter".into()));
            }
            let conditions = ctx.crawl("Condition", vec![("code", cohort_codes(mappings)?)]).await?;
            conditions.iter().filter_map(subject_id).collect()
        }
    };
    tracing::info!(patients = patients.len(), "cohort found");
    let caps = Arc::new(caps);
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for pid in &patients {
        let (ctx, caps, permits, pid) = (ctx.clone(), caps.clone(), permits.clone(), pid.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            crawl_patient(&ctx, &caps, &pid).await
        });
    }
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let outcome = match done {
            Ok(r) => r,
            Err(e) => Err(SyncError::Unsupported(format!("a crawl task failed: {e}"))),
        };
        if let Err(e) = outcome {
            if first_error.is_none() {
                tasks.abort_all();
                first_error = Some(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let fetched = hydrate_medications(&ctx, &caps).await?;
    let mut report = ctx.report.lock().unwrap_or_else(|e| e.into_inner()).clone();
    report.patients = patients.len() as u64;
    report.medications_fetched = fetched;
    tracing::info!(
        patients = report.patients,
        pages = report.pages,
        inserted = report.inserted,
        updated = report.updated,
        "crawl done"
    );
    Ok(report)
}

/// The Patient id of a resource's `subject` or `patient` reference (`Patient/ID`).
fn subject_id(r: &Value) -> Option<String> {
    let reference = r["subject"]["reference"]
        .as_str()
        .or_else(|| r["patient"]["reference"].as_str())?;
    let id = reference.strip_prefix("Patient/").or_else(|| {
        let (_, tail) = reference.rsplit_once("/Patient/")?;
        Some(tail)
    })?;
    let id = id.split('/').next().unwrap_or(id);
    (!id.is_empty()).then(|| id.to_string())
}

async fn crawl_patient(ctx: &Ctx, caps: &Capabilities, pid: &str) -> Result<(), SyncError> {
    ctx.crawl("Patient", vec![("_id", pid.to_string())]).await?;
    let mut types = vec!["Condition", "Observation"];
    types.extend(MEDICATION_TYPES.iter().copied().filter(|t| caps.supports(t)));
    for rtype in types {
        let Some(param) = caps.patient_param(rtype) else {
            continue;
        };
        let mut params = vec![(param, pid.to_string())];
        if rtype == "Observation" && caps.has_param("Observation", "category") {
            params.push(("category", OBSERVATION_CATEGORIES.join(",")));
        }
        ctx.crawl(rtype, params).await?;
    }
    Ok(())
}

/// Fetches every `Medication/ID` referenced by a stored resource and not held, by `_id` searches.
async fn hydrate_medications(ctx: &Ctx, caps: &Capabilities) -> Result<u64, SyncError> {
    if !caps.supports("Medication") {
        return Ok(0);
    }
    let missing: Vec<String> = {
        let store = lock(&ctx.store);
        let mut wanted = BTreeSet::new();
        store.for_each(|row| {
            if MEDICATION_TYPES.contains(&row.rtype.as_str()) {
                if let Ok(v) = serde_json::from_str::<Value>(&row.json) {
                    if let Some(id) = v["medicationReference"]["reference"]
                        .as_str()
                        .and_then(|r| r.strip_prefix("Medication/"))
                    {
                        wanted.insert(id.to_string());
                    }
                }
            }
        })?;
        let mut missing = Vec::new();
        for id in wanted {
            if !store.contains("Medication", &id)? {
                missing.push(id);
            }
        }
        missing
    };
    let mut fetched = 0;
    for chunk in missing.chunks(50) {
        fetched += ctx.crawl("Medication", vec![("_id", chunk.join(","))]).await?.len() as u64;
    }
    Ok(fetched)
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
