//! Interrupted syncs: runs aborted at seeded random moments (and one `kill -9` of
//! `imnm sync`), then a rerun, leave the store identical to an uninterrupted run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imnm_fhir::mock::{FaultPlan, MockEhr, Vendor};
use imnm_fhir::store::{Row, Store};
use imnm_fhir::sync::{self, Mode, SyncOptions};

use super::bulk::bulk_options;
use super::{client, new_store, options, rows};
use crate::mock::demo_path;
use crate::support::mappings;

/// A small seeded generator (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

async fn slow_mock() -> MockEhr {
    MockEhr::builder()
        .dataset(demo_path())
        .vendor(Vendor::Generic)
        .faults(FaultPlan::none().latency(Duration::from_millis(3)))
        .retry_after(Duration::ZERO)
        .bulk_polls(1)
        .start()
        .await
        .unwrap()
}

fn opts(mode: Mode) -> SyncOptions {
    match mode {
        Mode::Crawl => options(),
        Mode::Bulk => bulk_options(),
    }
}

async fn full_run(ehr: &MockEhr, store: &Arc<Mutex<Store>>, mode: Mode) -> Duration {
    let started = Instant::now();
    sync::run(&client(ehr), store.clone(), &mappings(), &opts(mode))
        .await
        .unwrap();
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_aborted_at_random_moments_then_rerun_give_the_clean_store() {
    let mut rng = Rng(0x1D_2024);
    for mode in [Mode::Crawl, Mode::Bulk] {
        let ehr = slow_mock().await;
        let clean = new_store();
        let took = full_run(&ehr, &clean, mode).await;
        let clean_rows = rows(&clean);
        for round in 0..4 {
            let store = new_store();
            // One or two interrupted runs, each cut at a random point of a clean run's duration.
            for _ in 0..1 + round % 2 {
                let (c, store2, mode2) = (client(&ehr), store.clone(), mode);
                let task = tokio::spawn(async move {
                    let _ = sync::run(&c, store2, &mappings(), &opts(mode2)).await;
                });
                tokio::time::sleep(took.mul_f64(rng.next_f64())).await;
                task.abort();
                let _ = task.await;
            }
            let partial = rows(&store).len();
            full_run(&ehr, &store, mode).await;
            assert_eq!(
                rows(&store),
                clean_rows,
                "{mode:?} round {round}: cut after {partial} rows, then rerun"
            );
        }
    }
}

/// Waits for a child process without blocking the runtime the mock runs on.
async fn wait(mut child: std::process::Child) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap()
}

fn file_rows(path: &std::path::Path) -> Vec<Row> {
    Store::open(path).unwrap().rows().unwrap()
}

/// Resource rows in a store another process is writing (0 before its table exists).
fn rows_so_far(path: &std::path::Path) -> usize {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    rusqlite::Connection::open_with_flags(path, flags)
        .and_then(|c| c.query_row("SELECT COUNT(*) FROM resource", [], |r| r.get::<_, i64>(0)))
        .map_or(0, |n| n as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_imnm_sync_then_rerun_gives_the_clean_store() {
    let ehr = MockEhr::builder()
        .dataset(demo_path())
        .faults(FaultPlan::none().latency(Duration::from_millis(15)))
        .start()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = ehr.base_url();
    let sync_into = |db: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_imnm"))
            .args(["sync", "--base-url", &base, "--store", db, "--concurrency", "2"])
            .current_dir(dir.path())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let clean = wait(sync_into("clean.db")).await;
    assert!(clean.success());
    let clean_rows = file_rows(&dir.path().join("clean.db"));
    // Killed once its first pages are stored, a seeded while later: mid-run, whatever the
    // machine's speed (a kill timed by the clean run's duration can land after the end).
    let mut child = sync_into("killed.db");
    let killed_db = dir.path().join("killed.db");
    let started = Instant::now();
    while rows_so_far(&killed_db) == 0 {
        assert!(started.elapsed() < Duration::from_secs(60), "the sync stored nothing");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sync ended before a row was seen"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_millis((Rng(0x9_2024).next_f64() * 60.0) as u64)).await;
    child.kill().unwrap(); // SIGKILL
    let killed = wait(child).await;
    assert!(!killed.success(), "killed before the end");
    let partial = file_rows(&killed_db).len();
    let rerun = wait(sync_into("killed.db")).await;
    assert!(rerun.success());
    assert!(partial < clean_rows.len(), "the kill landed mid-run ({partial} rows)");
    assert_eq!(file_rows(&killed_db), clean_rows);
}
