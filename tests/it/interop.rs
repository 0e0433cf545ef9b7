//! Interoperability with software nobody here wrote: SMART Fetch (PyPI `smart-fetch`) against the mock
//! EHR and its folders as cohort input, and a real FHIR R4 server (Medplum's FHIR router behind
//! tests/medplum-shim) that `imnm push` writes to and `imnm sync` crawls. The tools come from
//! `.ci/interop-install`; without them a test prints `SKIPPED: …` and passes, unless `IMNM_INTEROP=1`
//! (CI) makes a missing tool a failure.

mod medplum;
mod real_server;
mod round_trip;
mod smart_fetch;
mod tools;
