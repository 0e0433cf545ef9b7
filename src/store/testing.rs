//! Test support: a fresh PostgreSQL database per test, on the server named by
//! `IMNM_PG_URL` (`.ci/postgres start` prints one). Without it the PostgreSQL
//! half of a store test is skipped with a note, unless `IMNM_PG=1` (CI) makes
//! that a failure.

use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A URL of a new, empty database, or `None` when no server is configured.
pub(crate) fn fresh_database() -> Option<String> {
    let Ok(admin) = std::env::var("IMNM_PG_URL") else {
        assert!(
            std::env::var("IMNM_PG").as_deref() != Ok("1"),
            "IMNM_PG=1 but IMNM_PG_URL is not set (bash .ci/postgres start prints it)"
        );
        eprintln!("IMNM_PG_URL not set: the PostgreSQL half of this store test is skipped");
        return None;
    };
    let name = format!(
        "imnm_unit_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let mut c = postgres::Client::connect(&admin, postgres::NoTls).expect("IMNM_PG_URL: connect");
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let base = admin.split(['?', '#']).next().unwrap_or(&admin);
    let root = base.rsplit_once('/').map(|(r, _)| r).unwrap_or(base);
    Some(format!("{root}/{name}"))
}
