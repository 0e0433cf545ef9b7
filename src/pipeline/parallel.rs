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
//! Blocks go back to the reading thread once scanned and are filled again:
//! a fresh 2 MiB allocation per block cost page clearing and cache misses
//! (half of a two-thread run's system time, and reads 2.5 times slower per byte).
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
    /// patients' facts, are kept in memory (and 1/64 of it of the duplicate
    /// check's keys); past this they go to temporary files (see
    /// [`super::texts`], [`super::patients`]). Default: 2 MiB (measured: the
    /// same time as 8 MiB, 48 against 65 MB at 10 GB; see BENCHMARKS.md).
    pub spill_after: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk_bytes: 2 << 20,
            prefilter: true,
            spill_after: 2 << 20,
        }
    }
}

/// A unit of work, numbered in input order.
enum Task {
    /// Lines of a plain NDJSON file, `bytes[..len]`; `first_line` is the 1-based number of the first.
    Lines {
        file: Arc<str>,
        first_line: u64,
        bytes: Vec<u8>,
        len: usize,
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
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let producer_progress = progress.clone();
        let chunk = opts.chunk_bytes.max(1);
        s.spawn(move || produce(files, chunk, &task_tx, &free_rx, producer_progress));
        for _ in 0..threads {
            let scanner = Scanner {
                mappings,
                deleted: &deleted,
                prefilter: &prefilter,
            };
            let (rx, tx, free, progress) = (&task_rx, done_tx.clone(), free_tx.clone(), progress.clone());
            s.spawn(move || work(rx, &tx, &free, scanner, progress));
        }
        drop((done_tx, free_tx));
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
    free: &mpsc::Sender<Vec<u8>>,
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
                len,
            } => {
                // A copy of the name per block: every line clones it, and one count
                // shared by all workers would bounce between their cores.
                let own: Arc<str> = Arc::from(&*file);
                let failed = source::read_ndjson_from(own, &bytes[..len], first_line, &mut sink).err();
                // The reader may be gone (it stops on a closed channel): then the block is freed.
                let _ = free.send(bytes);
                failed.map(|e| unreadable(&file, &format!("read failed part-way: {e}")))
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
    free: &Receiver<Vec<u8>>,
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
            cut(path, chunk, free, progress.clone(), &mut send)
        } else {
            send(Task::File(path.clone()))
        };
        if !ok {
            return;
        }
    }
}

/// Cuts a plain NDJSON file into blocks ending after a newline, filling
/// blocks the workers gave back where there are any. False when the workers are gone.
fn cut<P: Fn(u64) + 'static>(
    path: &Path,
    chunk: usize,
    free: &Receiver<Vec<u8>>,
    progress: P,
    send: &mut dyn FnMut(Task) -> bool,
) -> bool {
    let name: Arc<str> = path.display().to_string().into();
    let mut reader = match std::fs::File::open(path) {
        Ok(r) => r,
        Err(e) => return send(Task::Issue(unreadable(&name, &format!("cannot open: {e}")))),
    };
    let mut first_line = 1u64;
    // The bytes after the last newline of the block before (never a newline).
    let mut carry = Vec::new();
    loop {
        let mut block = free.try_recv().unwrap_or_default();
        let start = carry.len();
        let want = start + chunk;
        if block.len() < want {
            // Zeroed once per buffer, not per use: the buffers go round.
            block.resize(want, 0);
        }
        block[..start].copy_from_slice(&carry);
        let (filled, eof) = match fill(&mut reader, &mut block[..want], start) {
            Ok(done) => done,
            Err(e) => return send(Task::Issue(unreadable(&name, &format!("read failed part-way: {e}")))),
        };
        progress((filled - start) as u64);
        let len = if eof {
            filled
        } else {
            match memchr::memrchr(b'\n', &block[start..filled]) {
                Some(pos) => start + pos + 1,
                None => {
                    // A line longer than a block: read on.
                    carry.clear();
                    carry.extend_from_slice(&block[..filled]);
                    continue;
                }
            }
        };
        carry.clear();
        carry.extend_from_slice(&block[len..filled]);
        if len > 0 {
            let lines = memchr::memchr_iter(b'\n', &block[..len]).count() as u64;
            let task = Task::Lines {
                file: name.clone(),
                first_line,
                bytes: block,
                len,
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

/// Reads into `buf[filled..]` until it is full or the file ends: (bytes now in `buf`, at end of file).
fn fill(reader: &mut impl Read, buf: &mut [u8], mut filled: usize) -> std::io::Result<(usize, bool)> {
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok((filled, true)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((filled, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most 3 bytes per read, and is interrupted every other call.
    struct Trickle<'a>(&'a [u8], bool);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn fill_reads_on_through_short_and_interrupted_reads_and_sees_the_end() {
        let mut r = Trickle(b"0123456789", false);
        let mut buf = *b"ab______";
        assert_eq!(fill(&mut r, &mut buf, 2).unwrap(), (8, false));
        assert_eq!(&buf, b"ab012345");
        let mut rest = [0u8; 8];
        assert_eq!(fill(&mut r, &mut rest, 0).unwrap(), (4, true));
        assert_eq!(&rest[..4], b"6789");
    }
}
