//! Reading on several threads with the same result as on one.
//!
//! Every worker takes its next task itself: under one lock it either cuts
//! the next block of about [`ReadOptions::chunk_bytes`] out of the NDJSON
//! file being read (after a newline, so one big file is shared out by chunk;
//! a gzip file is decompressed under the lock, by whichever worker cuts),
//! or the next run of whole entries of a Bundle (`fhir::bundle::cut`: one big
//! Bundle is shared out by chunk too), into its own reused buffer, or takes
//! a whole JSON file (parallel by file). A piece of a Bundle that meets a
//! problem ends that Bundle: the later pieces' batches are dropped unapplied,
//! as one thread stops reading there. It scans the task into a [`Batch`]
//! with [`scan`] and hands the batch in by its number; whichever worker hands
//! in the batch the [`Collector`] waits for applies it and every later one that is there,
//! in task order, so issues, provenance and every output are byte-identical
//! to a one-thread run. No thread only cuts or only applies: on two cores a
//! cutting thread and an applying thread beside two workers cost wake-ups
//! and blocks moved between cores (see BENCHMARKS.md, 2026-12-03 afternoon).
//! Memory: one block per worker, and at most [`AHEAD_PER_THREAD`] × threads
//! scanned batches waiting for an earlier one (a worker waits before taking
//! a task further ahead); a whole-file task (a Bundle whose `resourceType`
//! does not come first, which is not cut, or a gzipped JSON document) applies its events in parts of
//! `PART_EVENTS` as it goes, in its turn ([`InOrder::apply_part`]), so that
//! a big file is never held as one batch.
//!
//! This module owns the thread plumbing only; what a resource contributes is
//! decided in `scan`, what is kept in `Collector`.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

mod bundles;
mod rows;

pub(crate) use rows::read_rows;

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
    /// `crate::fhir::prefilter`; their syntax is checked in the same pass, so outputs are
    /// the same either way). Default: on.
    pub prefilter: bool,
    /// About how many bytes of relevant resources' raw JSON, and as many of
    /// patients' facts, are kept in memory (and 1/64 of it of the duplicate
    /// check's keys); past this they go to temporary files (see
    /// [`crate::collect::texts`], [`crate::collect::patients`]). Default: 2 MiB (measured: the
    /// same time as 8 MiB, 48 against 65 MB at 10 GB; see BENCHMARKS.md).
    pub spill_after: usize,
    /// Keep what a reference names outside this input open instead of
    /// reporting it (a MedicationRequest naming a Medication in another shard,
    /// the Medications it may name): [`crate::collect::Collected::open`], for
    /// `imnm facts`, whose SQL joins them across shards. Default: off.
    pub keep_open: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            chunk_bytes: 2 << 20,
            prefilter: true,
            spill_after: 2 << 20,
            keep_open: false,
        }
    }
}

/// How many scanned batches per worker may wait for an earlier one before
/// workers stop taking tasks further ahead.
pub const AHEAD_PER_THREAD: usize = 8;

/// A unit of work.
enum Task {
    /// Lines of an NDJSON file (plain or gzip) in the worker's block, `block[..len]`;
    /// `first_line` is the 1-based number of the first.
    Lines {
        file: Arc<str>,
        first_line: u64,
        len: usize,
        /// The block's first byte in its file, when it is a regular plain file
        /// (the texts of its lines are then kept as places in it).
        at: Option<u64>,
    },
    /// A piece of a Bundle, in the worker's block unless it is the rest of the file.
    Piece(bundles::PieceTask),
    /// A whole JSON document (one that is not cut: not a plain file, no entries,
    /// or a one-thread run).
    File(PathBuf),
    /// An issue met while cutting a file.
    Issue(Issue),
}

/// What the workers share.
struct Shared<'a, 'm> {
    cutter: Mutex<Cutter<'a>>,
    in_order: InOrder<'a, 'm>,
    /// At most this many tasks handed out past the next batch to apply.
    ahead: usize,
    /// The numbering of Bundle entries across pieces.
    chains: bundles::Chains,
}

/// Batches waiting to be applied in task order.
#[derive(Default)]
struct Order {
    waiting: BTreeMap<usize, Batch>,
    /// The number of the next batch to apply.
    next: usize,
    /// A worker is applying batches.
    applying: bool,
    /// A worker panicked: the others stop taking tasks.
    stop: bool,
    /// The most batches that were waiting at once.
    most_waiting: usize,
    /// The most events applied to the collector at once.
    largest_applied: usize,
}

/// Reads `files` into `collector` on `opts.threads` threads (the calling one included).
pub fn read_files<P>(files: &[PathBuf], collector: &mut Collector<'_>, opts: ReadOptions, progress: P)
where
    P: Fn(u64) + Clone + Send + Sync + 'static,
{
    read_files_counted(files, collector, opts, progress);
}

/// As [`read_files`]; the most scanned batches that waited at once for an
/// earlier one, and the most events applied at once.
fn read_files_counted<P>(
    files: &[PathBuf],
    collector: &mut Collector<'_>,
    opts: ReadOptions,
    progress: P,
) -> (usize, usize)
where
    P: Fn(u64) + Clone + Send + Sync + 'static,
{
    let mappings = collector.mappings;
    let deleted = collector.deleted().clone();
    let prefilter = collector.prefilter().clone();
    let scanner = Scanner {
        mappings,
        deleted: &deleted,
        prefilter: &prefilter,
    };
    let threads = opts.threads.max(1);
    let shared = Shared {
        cutter: Mutex::new(Cutter::new(files, opts.chunk_bytes.max(1))),
        in_order: InOrder::new(collector),
        ahead: AHEAD_PER_THREAD * threads,
        chains: bundles::Chains::default(),
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            let (shared, progress) = (&shared, progress.clone());
            s.spawn(move || work(shared, scanner, &progress));
        }
        work(&shared, scanner, &progress);
    });
    let order = shared
        .in_order
        .order
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    (order.most_waiting, order.largest_applied)
}

/// A lock whose holder may have panicked: the panic reaches the caller when
/// the thread scope ends, so the others only need to get out.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stops the other workers when this one panics.
struct Leaving<'s, 'a, 'm>(&'s Shared<'a, 'm>);

impl Drop for Leaving<'_, '_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.in_order.stop();
            self.0.chains.stop();
        }
    }
}

fn work<P: Fn(u64) + Clone + 'static>(shared: &Shared<'_, '_>, scanner: Scanner<'_>, progress: &P) {
    let _leaving = Leaving(shared);
    let mut block = Vec::new();
    while let Some((seq, task)) = shared.take(&mut block, progress) {
        let mut batch = Batch::reusing(shared.in_order.spare());
        let issue = match task {
            Task::Lines {
                file,
                first_line,
                len,
                at,
            } => {
                // A copy of the name per block: every line clones it, and one count
                // shared by all workers would bounce between their cores.
                let own: Arc<str> = Arc::from(&*file);
                let lines = &block[..len];
                let mut sink = |item: Item<'_>| {
                    let place = match (&item, at) {
                        (Item::Resource { text, .. }, Some(at)) => place_in(lines, text, at),
                        _ => None,
                    };
                    scan::scan_item_at(scanner, item, place, &mut batch);
                };
                source::read_ndjson_from(own, lines, first_line, &mut sink)
                    .err()
                    .map(|e| unreadable(&file, &format!("read failed part-way: {e}")))
            }
            Task::Piece(piece) => {
                let mut sink = |item: Item<'_>| scan::scan_item(scanner, item, &mut batch);
                bundles::read(&shared.chains, piece, &mut block, progress, &mut sink);
                None
            }
            Task::File(path) => {
                // A whole file is one task (an uncut Bundle, a gzipped or other JSON
                // document): its events are applied as they come, in their turn, not held.
                let mut sink = |item: Item<'_>| {
                    scan::scan_item(scanner, item, &mut batch);
                    if batch.events.len() >= PART_EVENTS {
                        shared.in_order.apply_part(seq, &mut batch);
                    }
                };
                super::read_file_items(&path, progress.clone(), &mut sink)
            }
            Task::Issue(issue) => Some(issue),
        };
        if let Some(issue) = issue {
            batch.events.push(Event::Issue(issue));
        }
        shared.in_order.hand_in(seq, batch);
    }
}

/// Where `text`, a slice of `block` (whose first byte is at `at` in its
/// file), lies in the file; `None` when it is not in `block` (a copy).
fn place_in(block: &[u8], text: &str, at: u64) -> Option<u64> {
    let (start, p) = (block.as_ptr() as usize, text.as_ptr() as usize);
    let inside = p >= start && p + text.len() <= start + block.len();
    inside.then(|| at + (p - start) as u64)
}

impl Shared<'_, '_> {
    /// The next task and its number, once it is at most `ahead` past the next
    /// batch to apply; `None` when the inputs are done or the run stops.
    fn take(&self, block: &mut Vec<u8>, progress: &dyn Fn(u64)) -> Option<(usize, Task)> {
        // The cutter stays locked while this worker waits: any other would wait too, and
        // the worker the wait is for only needs `order` to hand its batch in.
        let mut cutter = lock(&self.cutter);
        let mut order = lock(&self.in_order.order);
        while cutter.seq >= order.next + self.ahead && !order.stop {
            order = self
                .in_order
                .advanced
                .wait(order)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if order.stop {
            return None;
        }
        drop(order);
        cutter.next(block, progress, self.chains.broken.load(Ordering::Relaxed))
    }
}

/// Batches applied to the collector in their numbers' order, by whichever
/// thread hands in the one due.
pub(super) struct InOrder<'a, 'm> {
    order: Mutex<Order>,
    /// Signalled when `order.next` moves on or the run stops.
    advanced: Condvar,
    collector: Mutex<&'a mut Collector<'m>>,
    /// Applied batches' emptied event lists, for the next batches ([`Collector::apply_reusing`]).
    spare: Mutex<Vec<Vec<Event>>>,
}

/// The most emptied event lists kept for reuse (each up to a block's events,
/// ~0.5 MB at 2 MB of relevant resources).
const SPARE_MAX: usize = 4;

impl<'a, 'm> InOrder<'a, 'm> {
    fn new(collector: &'a mut Collector<'m>) -> Self {
        Self {
            order: Mutex::new(Order::default()),
            advanced: Condvar::new(),
            collector: Mutex::new(collector),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// An emptied event list of an applied batch (or a new one).
    fn spare(&self) -> Vec<Event> {
        lock(&self.spare).pop().unwrap_or_default()
    }

    /// Keeps `events` (emptied) for a later batch, up to [`SPARE_MAX`] lists.
    fn keep_spare(&self, events: Vec<Event>) {
        let mut spare = lock(&self.spare);
        if spare.len() < SPARE_MAX && events.capacity() > 0 {
            spare.push(events);
        }
    }

    /// Stops the run: no more tasks are taken.
    fn stop(&self) {
        lock(&self.order).stop = true;
        self.advanced.notify_all();
    }

    /// Files batch `seq`, and applies every batch now due unless another worker is at it.
    fn hand_in(&self, seq: usize, batch: Batch) {
        let mut order = lock(&self.order);
        order.waiting.insert(seq, batch);
        order.most_waiting = order.most_waiting.max(order.waiting.len());
        if order.applying {
            return;
        }
        order.applying = true;
        loop {
            let next = order.next;
            let Some(batch) = order.waiting.remove(&next) else {
                break;
            };
            order.next += 1;
            order.largest_applied = order.largest_applied.max(batch.events.len());
            drop(order);
            self.advanced.notify_all();
            let events = lock(&self.collector).apply_reusing(batch);
            self.keep_spare(events);
            order = lock(&self.order);
        }
        order.applying = false;
        drop(order);
        // `apply_part` waits for no one applying, besides its turn.
        self.advanced.notify_all();
    }

    /// Waits while batch `seq` is `ahead` or more batches past the next one due
    /// (or until the run stops).
    pub(super) fn wait_within(&self, seq: usize, ahead: usize) {
        let mut order = lock(&self.order);
        while seq >= order.next + ahead && !order.stop {
            order = self.advanced.wait(order).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Applies the events batch `seq` holds so far, leaving it empty, once every
    /// batch before it is applied (waiting for that); the batch is handed in
    /// later as usual. Used by a task that reads a whole file, so that memory
    /// does not grow with the file. Nothing is applied once the run stops.
    fn apply_part(&self, seq: usize, batch: &mut Batch) {
        let mut order = lock(&self.order);
        while (order.next < seq || order.applying) && !order.stop {
            order = self.advanced.wait(order).unwrap_or_else(PoisonError::into_inner);
        }
        if order.stop {
            return;
        }
        order.applying = true;
        order.largest_applied = order.largest_applied.max(batch.events.len());
        drop(order);
        lock(&self.collector).apply(std::mem::take(batch));
        lock(&self.order).applying = false;
        self.advanced.notify_all();
    }
}

/// Events a whole-file task gathers before applying them ([`InOrder::apply_part`]).
const PART_EVENTS: usize = 2048;

fn unreadable(location: &str, message: &str) -> Issue {
    Issue::new(Severity::Error, IssueCode::UnreadableFile, location, message)
}

/// Hands out the inputs as tasks, numbered in input order.
struct Cutter<'a> {
    files: std::slice::Iter<'a, PathBuf>,
    /// The file being cut.
    open: Option<Cutting>,
    chunk: usize,
    /// The number of the next Bundle cut.
    bundle: u64,
    /// The number of the next task.
    seq: usize,
}

/// A file being cut.
enum Cutting {
    Lines(Open),
    Bundle(bundles::OpenBundle),
}

impl<'a> Cutter<'a> {
    fn new(files: &'a [PathBuf], chunk: usize) -> Self {
        Self {
            files: files.iter(),
            open: None,
            chunk,
            bundle: 0,
            seq: 0,
        }
    }

    /// The next task; `broken` is one more than the number of the last Bundle
    /// that a piece ended (0: none), which is not cut further.
    fn next(&mut self, block: &mut Vec<u8>, progress: &dyn Fn(u64), broken: u64) -> Option<(usize, Task)> {
        let task = loop {
            let cut = match &mut self.open {
                Some(Cutting::Lines(open)) => open.cut(block, self.chunk, progress),
                Some(Cutting::Bundle(open)) if open.bundle + 1 == broken => None,
                Some(Cutting::Bundle(open)) => open.cut(block, self.chunk, progress).map(Task::Piece),
                None => None,
            };
            if let Some(task) = cut {
                break task;
            }
            self.open = None;
            let path = self.files.next()?;
            let name: Arc<str> = path.display().to_string().into();
            match source::format_of(path) {
                Some(Format::Ndjson { gzip }) => match Open::new(name.clone(), path, gzip) {
                    Ok(open) => self.open = Some(Cutting::Lines(open)),
                    Err(e) => break Task::Issue(unreadable(&name, &format!("cannot open: {e}"))),
                },
                // Cut on one thread too: a Bundle read whole by one task took 0.54 s
                // against 0.47 s cut, reg10 -t1 (BENCHMARKS.md, 2026-12-07).
                Some(Format::Json { gzip: false }) => match bundles::OpenBundle::new(name, path, self.bundle) {
                    Some(open) => {
                        self.bundle += 1;
                        self.open = Some(Cutting::Bundle(open));
                    }
                    None => break Task::File(path.clone()),
                },
                _ => break Task::File(path.clone()),
            }
        };
        self.seq += 1;
        Some((self.seq - 1, task))
    }
}

/// An NDJSON file being cut into blocks.
struct Open {
    name: Arc<str>,
    reader: Reader,
    /// The bytes after the last newline of the block before (never a newline).
    carry: Vec<u8>,
    first_line: u64,
    /// The end of the file was reached, or a read failed.
    done: bool,
    /// The read failure to hand out after the lines read before it.
    failed: Option<Issue>,
    /// Bytes read from a regular plain file so far (`None`: gzip or not a
    /// regular file, whose texts are not read again in place).
    read: Option<u64>,
    /// The current block's first byte in the file, when `read` is kept.
    block_at: Option<u64>,
}

/// Where a file's bytes come from.
enum Reader {
    /// A plain file, read straight into the block.
    Plain(std::fs::File),
    /// A gzip file, decompressed through the same buffers as a one-thread
    /// read ([`source::gunzip`]) and copied out of them, so a damaged file
    /// fails after the same bytes; `read` counts the compressed bytes read,
    /// for the progress bar.
    Gzip {
        inner: Box<std::io::BufReader<flate2::read::MultiGzDecoder<std::io::BufReader<Tally>>>>,
        read: Arc<AtomicU64>,
        told: u64,
    },
}

/// A file that counts the bytes read from it.
struct Tally(std::fs::File, Arc<AtomicU64>);

impl Read for Tally {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Open {
    fn new(name: Arc<str>, path: &std::path::Path, gzip: bool) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        // Only a regular file can be read again at an offset (not a pipe).
        let regular = !gzip && file.metadata()?.is_file();
        let reader = if gzip {
            let read = Arc::new(AtomicU64::new(0));
            let inner = Box::new(source::gunzip(Tally(file, read.clone())));
            Reader::Gzip { inner, read, told: 0 }
        } else {
            Reader::Plain(file)
        };
        Ok(Self {
            name,
            reader,
            carry: Vec::new(),
            first_line: 1,
            done: false,
            failed: None,
            read: regular.then_some(0),
            block_at: None,
        })
    }

    /// Fills `block` with the next lines (ending after a newline, or at the end
    /// of the file); `None` when the file is done. A read error ends the file,
    /// after the whole lines read before it (as a one-thread read does).
    fn cut(&mut self, block: &mut Vec<u8>, chunk: usize, progress: &dyn Fn(u64)) -> Option<Task> {
        while !self.done {
            let start = self.carry.len();
            let want = start + chunk;
            if block.len() < want {
                // Zeroed once per buffer, not per use: each worker keeps its own.
                block.resize(want, 0);
            }
            block[..start].copy_from_slice(&self.carry);
            self.block_at = self.read.map(|read| read - start as u64);
            let (filled, result) = self.reader.fill(&mut block[..want], start, progress);
            self.read = self.read.map(|read| read + (filled - start) as u64);
            let eof = match result {
                Ok(eof) => eof,
                Err(e) => {
                    let msg = format!("read failed part-way: {e}");
                    self.failed = Some(unreadable(&self.name, &msg));
                    self.done = true;
                    let whole = memchr::memrchr(b'\n', &block[start..filled]).map_or(0, |p| start + p + 1);
                    return self.lines(block, whole).or_else(|| self.failed.take().map(Task::Issue));
                }
            };
            self.done = eof;
            let len = if eof {
                filled
            } else {
                match memchr::memrchr(b'\n', &block[start..filled]) {
                    Some(pos) => start + pos + 1,
                    None => {
                        // A line longer than a block: read on.
                        self.carry.clear();
                        self.carry.extend_from_slice(&block[..filled]);
                        continue;
                    }
                }
            };
            self.carry.clear();
            self.carry.extend_from_slice(&block[len..filled]);
            if let Some(task) = self.lines(block, len) {
                return Some(task);
            }
        }
        self.failed.take().map(Task::Issue)
    }

    /// The task of `block[..len]`, counting its lines; `None` when empty.
    fn lines(&mut self, block: &[u8], len: usize) -> Option<Task> {
        if len == 0 {
            return None;
        }
        let first_line = self.first_line;
        self.first_line += memchr::memchr_iter(b'\n', &block[..len]).count() as u64;
        let file = self.name.clone();
        let at = self.block_at;
        Some(Task::Lines {
            file,
            first_line,
            len,
            at,
        })
    }
}

impl Reader {
    /// Reads into `buf[filled..]` until it is full or the file ends: the bytes
    /// now in `buf`, and whether the file ended (or the error that stopped it).
    fn fill(&mut self, buf: &mut [u8], start: usize, progress: &dyn Fn(u64)) -> (usize, std::io::Result<bool>) {
        match self {
            Reader::Plain(file) => {
                let (filled, result) = fill(file, buf, start);
                progress((filled - start) as u64);
                (filled, result)
            }
            Reader::Gzip { inner, read, told } => {
                let done = fill_from(inner, buf, start);
                let now = read.load(Ordering::Relaxed);
                progress(now - *told);
                *told = now;
                done
            }
        }
    }
}

/// Reads into `buf[filled..]` until it is full or the file ends: (bytes now
/// in `buf`, at end of file or the error that stopped it).
fn fill(reader: &mut impl Read, buf: &mut [u8], mut filled: usize) -> (usize, std::io::Result<bool>) {
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return (filled, Ok(true)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (filled, Err(e)),
        }
    }
    (filled, Ok(false))
}

/// As [`fill`], copying out of `reader`'s buffer: the reader then asks its
/// source for the same amounts whatever the size of `buf`.
fn fill_from(reader: &mut impl BufRead, buf: &mut [u8], mut filled: usize) -> (usize, std::io::Result<bool>) {
    while filled < buf.len() {
        let available = match reader.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return (filled, Err(e)),
        };
        if available.is_empty() {
            return (filled, Ok(true));
        }
        let n = available.len().min(buf.len() - filled);
        buf[filled..filled + n].copy_from_slice(&available[..n]);
        reader.consume(n);
        filled += n;
    }
    (filled, Ok(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::MappingSet;

    #[test]
    fn applied_batches_hand_their_event_lists_on_emptied_with_their_room() {
        let mappings = MappingSet::builtin().unwrap();
        let mut collector = Collector::new(&mappings);
        let in_order = InOrder::new(&mut collector);
        let issue = || Event::Issue(unreadable("f", "m"));
        for seq in 0..SPARE_MAX + 2 {
            let mut batch = Batch::reusing(in_order.spare());
            batch.events.extend((0..100).map(|_| issue()));
            in_order.hand_in(seq, batch);
        }
        // One list went round and round: a worker takes it back, emptied, its room kept.
        assert_eq!(lock(&in_order.spare).len(), 1);
        let reused = in_order.spare();
        assert!(reused.is_empty() && reused.capacity() >= 100);
        // Lists handed in at once are kept up to the bound.
        for _ in 0..SPARE_MAX + 2 {
            in_order.keep_spare(Vec::with_capacity(10));
        }
        assert_eq!(lock(&in_order.spare).len(), SPARE_MAX);
        drop(in_order);
        assert_eq!(collector.finish().issues.total(), (SPARE_MAX as u64 + 2) * 100);
    }

    #[test]
    fn workers_do_not_run_further_ahead_than_the_bound_and_apply_every_batch() {
        let dir = tempfile::tempdir().unwrap();
        let line = |i: usize| format!("{{\"resourceType\":\"Encounter\",\"id\":\"e{i}\"}}\n");
        // A big Bundle first that says `resourceType` last: one worker reads it whole
        // (task 0) while the others cut the files behind it into one-line blocks and
        // one-entry pieces.
        let big = dir.path().join("a.json");
        let entries: Vec<String> = (0..100_000)
            .map(|i| format!("{{\"resource\":{}}}", line(i).trim_end()))
            .collect();
        let bundle = format!(
            r#"{{"type":"collection","entry":[{}],"resourceType":"Bundle"}}"#,
            entries.join(",")
        );
        std::fs::write(&big, bundle).unwrap();
        let cut = dir.path().join("c.json");
        let bundle = format!(
            r#"{{"resourceType":"Bundle","type":"collection","entry":[{}]}}"#,
            entries[..3000].join(",")
        );
        std::fs::write(&cut, bundle).unwrap();
        let plain = dir.path().join("b.ndjson");
        std::fs::write(&plain, (0..2000).map(line).collect::<String>()).unwrap();
        let mappings = MappingSet::builtin().unwrap();
        for threads in [2, 3] {
            let mut collector = Collector::new(&mappings);
            let opts = ReadOptions {
                threads,
                chunk_bytes: 40,
                ..ReadOptions::default()
            };
            let files = [big.clone(), plain.clone(), cut.clone()];
            let (most, _) = read_files_counted(&files, &mut collector, opts, |_| {});
            assert!(most <= AHEAD_PER_THREAD * threads, "{most} batches waited");
            let read = collector.finish();
            assert_eq!(read.stats.seen.get("Encounter"), Some(&105_000), "{threads} threads");
            eprintln!("{threads} threads: at most {most} batches waited");
        }
    }

    /// A CK result `o{id}` of Patient/`subject`, with `components` more CK results in its panel.
    pub(super) fn ck_result(id: usize, subject: &str, components: usize) -> String {
        let code = r#"{"coding":[{"system":"http://loinc.org","code":"2157-6"}]}"#;
        let parts: Vec<String> = (0..components)
            .map(|i| format!(r#"{{"code":{code},"valueQuantity":{{"value":{i},"unit":"U/L"}}}}"#))
            .collect();
        let component = match parts.is_empty() {
            true => String::new(),
            false => format!(r#","component":[{}]"#, parts.join(",")),
        };
        format!(
            r#"{{"resourceType":"Observation","id":"o{id}","status":"final","code":{code},"subject":{{"reference":"Patient/{subject}"}},"effectiveDateTime":"2020-01-01","valueQuantity":{{"value":{id},"unit":"U/L"}}{component}}}"#
        )
    }

    /// A file read as one task (a Bundle whose `resourceType` comes last,
    /// which is not cut, on one thread or two) has its events
    /// applied in parts as they come, not all at the end: memory does not grow
    /// with the file. Same resources read either way.
    #[test]
    fn a_file_read_as_one_task_is_applied_in_parts() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<String> = (0..3 * PART_EVENTS)
            .map(|i| format!(r#"{{"resource":{}}}"#, ck_result(i, &format!("p{}", i % 7), 0)))
            .collect();
        let first = dir.path().join("a.json");
        let body = entries.join(",");
        std::fs::write(
            &first,
            format!(r#"{{"resourceType":"Bundle","type":"collection","entry":[{body}]}}"#),
        )
        .unwrap();
        let last = dir.path().join("b.json");
        std::fs::write(
            &last,
            format!(r#"{{"type":"collection","entry":[{body}],"resourceType":"Bundle"}}"#),
        )
        .unwrap();
        let gzipped = dir.path().join("c.json.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &std::fs::read(&first).unwrap()).unwrap();
        std::fs::write(&gzipped, gz.finish().unwrap()).unwrap();
        let mappings = MappingSet::builtin().unwrap();
        // Neither is cut (`resourceType` last; gzip): each is one task, on one thread or two.
        for (threads, file) in [(1, &gzipped), (2, &last), (1, &last)] {
            let mut collector = Collector::new(&mappings);
            let opts = ReadOptions {
                threads,
                ..ReadOptions::default()
            };
            let (_, largest) = read_files_counted(std::slice::from_ref(file), &mut collector, opts, |_| {});
            assert!(
                largest <= PART_EVENTS,
                "{largest} events applied at once, {threads} threads"
            );
            let read = collector.finish();
            assert_eq!(read.stats.seen.get("Observation"), Some(&(3 * PART_EVENTS as u64)));
        }
    }

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
        let (filled, eof) = fill(&mut r, &mut buf, 2);
        assert_eq!((filled, eof.unwrap()), (8, false));
        assert_eq!(&buf, b"ab012345");
        let mut rest = [0u8; 8];
        let (filled, eof) = fill(&mut r, &mut rest, 0);
        assert_eq!((filled, eof.unwrap()), (4, true));
        assert_eq!(&rest[..4], b"6789");
    }
}
