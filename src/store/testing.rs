//! Test support (the crate's unit tests and its integration tests): a fresh
//! PostgreSQL database per test, on the server named by `IMNM_PG_URL`
//! (`bash .ci/postgres start` prints one). Without it a test's PostgreSQL half
//! is skipped with a note, unless `IMNM_PG=1` (CI) makes that a failure.

use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A URL of a new, empty database; `Ok(None)` when no server is configured
/// (and `IMNM_PG` is not `1`).
pub fn fresh_database() -> Result<Option<String>, String> {
    let Ok(admin) = std::env::var("IMNM_PG_URL") else {
        if std::env::var("IMNM_PG").as_deref() == Ok("1") {
            return Err("IMNM_PG=1 but IMNM_PG_URL is not set (bash .ci/postgres start prints it)".into());
        }
        eprintln!("IMNM_PG_URL not set: the PostgreSQL half of this test is skipped");
        return Ok(None);
    };
    let name = format!(
        "imnm_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    // On a thread of its own: the driver's runtime must not start inside a test's.
    let (admin_url, db) = (admin.clone(), name.clone());
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin_url, postgres::NoTls).map_err(|e| format!("IMNM_PG_URL: {e}"))?;
        c.batch_execute(&format!("CREATE DATABASE {db}"))
            .map_err(|e| format!("creating a test database: {e}"))
    })
    .join()
    .map_err(|_| "creating a test database: the thread panicked".to_string())??;
    let base = admin.split(['?', '#']).next().unwrap_or(&admin);
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    Ok(Some(format!("{root}/{name}")))
}
