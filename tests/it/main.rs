//! One integration test binary (see STYLE.md): each module's purpose is in its comment.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test, benchmark or example: a failure should stop it loudly"
)]

// Helpers: building small inputs, running the pipeline and the binary.
mod support;

// Every mapping rule, one resource style at a time (antibody styles, units, onset, medications, statuses).
mod rules;

// Bad input: each problem yields an issue naming the place, and the rest still maps; no panics.
mod bad_input;

// Input layouts: folders, gzip, symlinked work folders, error/ and deleted/ files.
mod inputs;

// Golden files: the demo's and a generated export's outputs byte for byte (IMNM_UPDATE_EXPECTED=1 rewrites).
mod golden;

// The `imnm` binary end to end on the demo data: the seed's Table 1 from a Bundle and from NDJSON.
mod cli;

// The data dictionary is data: columns added by TOML reach every output; wrong kinds are refused.
mod dictionary;

// A registry across hospitals: sites kept apart in every output, Table 1 per site.
mod sites;

// Study bundles: de-identification of the demo export, suppression, verify, merge, keygen.
mod export;
// Study bundles, second round: --store input, urn:uuid references resolved, verify dates, merge --mappings, onset age.
mod export_gaps;
// The mock EHR driven with plain reqwest: reads, search, paging, vendor quirks, faults, SMART auth, $export, writes, CLI.
mod mock;

// Sync (crawl) from the mock EHR into the SQLite store: the seed's Table 1 from the store, idempotent
// re-sync, faults leave the store identical, Epic's quirks (Observation category, MedicationRequest + Medication).
mod sync;

// Reading at scale: the parallel path (by chunk and by file) writes byte-identical outputs to one thread.
mod scale;

// Parquet outputs: read back, the same rows as the CSV files; facts.parquet per fact.
mod parquet;

// Software nobody here wrote: SMART Fetch against the mock EHR and its folders as input; `imnm sync`
// against Medplum's FHIR router. Needs `.ci/interop-install` (skips loudly without, fails with IMNM_INTEROP=1).
mod interop;

// Modules form a DAG: each module of src/ imports only lower layers, siblings one way (issue 22).
mod layers;

// Case report → FHIR: profiles up to date, to-fhir round trips (demo + proptest), validate findings, bad CSV.
mod casefhir;

// The registry config: the example file loads, every problem of a bad file with its line, `imnm registry check`.
mod registry;

// Linkage (issue 23): one child at two sites is one case `a+b` with --link-identifier; identifiers in no output.
mod linkage;

// Sites in one store (issue 23): same ids from two EHRs kept apart, the old store upgraded, sync --config per site.
mod sync_sites;

// Real hospital data shapes (issue 24): panels (component, hasMember), DiagnosticReports, nothing counted twice.
mod shapes;

// Antibody cutoffs by unit form (CU, U, U/mL, AU/mL, [arb'U]/mL, titres), method, referenceRange, order of evidence.
mod cutoffs;

// The registry service (issue 25): imnm serve against mock sites, its API, tokens, audit, metrics, the page in Chromium.
mod serve;

// The shared registry database: PostgreSQL beside SQLite, several sync workers (issue 26).
mod postgres;
