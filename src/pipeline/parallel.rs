//! Reading on several threads with the same result as on one.
//!
//! One thread reads plain NDJSON files in blocks of about
//! [`ReadOptions::chunk_bytes`], cut after a newline (so one big file is
//! shared out by chunk); gzip NDJSON and JSON files go out whole (parallel by
//! file). Worker threads turn each task into a [`Batch`] with
//! [`scan`]; the calling thread applies batches to the
//! [`Collector`] in task order, so issues, provenance and every output are
//! byte-identical to a one-thread run. Memory: at most `2 × threads` blocks
//! wait to be scanned, plus the (small) batches waiting for an earlier one.
//!
//! This module owns the thread plumbing only; what a resource contributes is
//! decided in `scan`, what is kept in `Collector`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use super::scan::{self, Batch, Event, Scanner};
use super::Collector;
use crate::fhir::source::{self, Format, Item};
use crate::report::{Issue, IssueCode, Severity};

/// How inputs are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Worker threads; 1 reads everything on the calling thread. Default: the available cores.
    pub threads: usize,
    /// Size of the blocks a plain NDJSON file is cut into. Default: 2 MiB.
    pub chunk_bytes: usize,
    /// Skip lines that are surely irrelevant from their bytes alone (see
    /// [`crate::fhir::prefilter`]; their syntax is checked in the same pass, so outputs are
    /// the same either way). Default: on.
    pub prefilter: bool,
    /// About how many bytes of relevant resources' raw JSON, and as many of
    /// patients' facts, are kept in memory; past this they go to temporary
    /// files (see [`super::texts`], [`super::patients`]). Default: 8 MiB.
    pub spill_after: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk_bytes: 2 << 20,
            prefilter: true,
            spill_after: 8 << 20,
        }
    }
}

/// A unit of work, numbered in input order.
enum Task {
    /// Lines of a plain NDJSON file; `first_line` is the 1-based number of the first.
    Lines {
        file: Arc<str>,
        first_line: u64,
        bytes: Vec<u8>,
    },
    /// A whole file (gzip, or a JSON document).
    File(PathBuf),
    /// An issue met while cutting a file.
    Issue(Issue),
}

/// Reads `files` into `collector` on `opts.threads` worker threads.
pub fn read_files<P>(files: &[PathBuf], collector: &mut Collector<'_>, opts: ReadOptions, progress: P)
where
    P: Fn(u64) + Clone + Send + Sync + 'static,
{
    let mappings = collector.mappings;
    let deleted = collector.deleted().clone();
    let prefilter = collector.prefilter().clone();
    let threads = opts.threads.max(1);
    let (task_tx, task_rx) = mpsc::sync_channel::<(usize, Task)>(threads * 2);
    let task_rx = Mutex::new(task_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Batch)>();
    std::thread::scope(|s| {
        let producer_progress = progress.clone();
        s.spawn(move || produce(files, opts.chunk_bytes.max(1), &task_tx, producer_progress));
        for _ in 0..threads {
            let scanner = Scanner {
                mappings,
                deleted: &deleted,
                prefilter: &prefilter,
            };
            let (rx, tx, progress) = (&task_rx, done_tx.clone(), progress.clone());
            s.spawn(move || work(rx, &tx, scanner, progress));
        }
        drop(done_tx);
        apply_in_order(&done_rx, collector);
    });
}

fn apply_in_order(done: &Receiver<(usize, Batch)>, collector: &mut Collector<'_>) {
    let mut waiting: BTreeMap<usize, Batch> = BTreeMap::new();
    let mut next = 0usize;
    for (seq, batch) in done {
        waiting.insert(seq, batch);
        while let Some(batch) = waiting.remove(&next) {
            collector.apply(batch);
            next += 1;
        }
    }
}

fn work<P: Fn(u64) + Clone + 'static>(
    tasks: &Mutex<Receiver<(usize, Task)>>,
    done: &mpsc::Sender<(usize, Batch)>,
    scanner: Scanner<'_>,
    progress: P,
) {
    loop {
        // A poisoned lock means another worker panicked: stop taking work.
        let next = match tasks.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, task)) = next else { return };
        let mut batch = Batch::default();
        let mut sink = |item: Item<'_>| scan::scan_item(scanner, item, &mut batch);
        let issue = match task {
            Task::Lines {
                file,
                first_line,
                bytes,
            } => {
                // A copy of the name per block: every line clones it, and one count
                // shared by all workers would bounce between their cores.
                let own: Arc<str> = Arc::from(&*file);
                source::read_ndjson_from(own, &bytes[..], first_line, &mut sink)
                    .err()
                    .map(|e| unreadable(&file, &format!("read failed part-way: {e}")))
            }
            Task::File(path) => super::read_file_items(&path, progress.clone(), &mut sink),
            Task::Issue(issue) => Some(issue),
        };
        if let Some(issue) = issue {
            batch.events.push(Event::Issue(issue));
        }
        if done.send((seq, batch)).is_err() {
            return;
        }
    }
}

fn unreadable(location: &str, message: &str) -> Issue {
    Issue::new(Severity::Error, IssueCode::UnreadableFile, location, message)
}

fn produce<P: Fn(u64) + Clone + 'static>(
    files: &[PathBuf],
    chunk: usize,
    tasks: &SyncSender<(usize, Task)>,
    progress: P,
) {
    let mut seq = 0usize;
    let mut send = |task: Task| {
        let ok = tasks.send((seq, task)).is_ok();
        seq += 1;
        ok
    };
    for path in files {
        let plain_ndjson = source::format_of(path) == Some(Format::Ndjson { gzip: false });
        let ok = if plain_ndjson {
            cut(path, chunk, progress.clone(), &mut send)
        } else {
            send(Task::File(path.clone()))
        };
        if !ok {
            return;
        }
    }
}

/// Cuts a plain NDJSON file into blocks ending after a newline. False when the workers are gone.
fn cut<P: Fn(u64) + 'static>(path: &Path, chunk: usize, progress: P, send: &mut dyn FnMut(Task) -> bool) -> bool {
    let name: Arc<str> = path.display().to_string().into();
    // The file itself, not a `BufReader`: `read_to_end` then reads into the
    // block's spare capacity without zeroing it first (a tenth of the work of a
    // two-thread run went to that memset).
    let mut reader = match std::fs::File::open(path) {
        Ok(r) => r,
        Err(e) => return send(Task::Issue(unreadable(&name, &format!("cannot open: {e}")))),
    };
    let mut first_line = 1u64;
    let mut carry = Vec::new();
    loop {
        // `carry` holds no newline: only the new bytes need a look.
        let mut block = std::mem::take(&mut carry);
        let start = block.len();
        block.reserve(chunk);
        let n = match (&mut reader).take(chunk as u64).read_to_end(&mut block) {
            Ok(n) => n,
            Err(e) => return send(Task::Issue(unreadable(&name, &format!("read failed part-way: {e}")))),
        };
        progress(n as u64);
        let eof = n < chunk;
        if !eof {
            match memchr::memrchr(b'\n', &block[start..]) {
                Some(pos) => carry = block.split_off(start + pos + 1),
                None => {
                    carry = block; // a line longer than a block: read on
                    continue;
                }
            }
        }
        if !block.is_empty() {
            let lines = memchr::memchr_iter(b'\n', &block).count() as u64;
            let task = Task::Lines {
                file: name.clone(),
                first_line,
                bytes: block,
            };
            if !send(task) {
                return false;
            }
            first_line += lines;
        }
        if eof {
            return true;
        }
    }
}
