//! Every patient's collected data, in memory or partly in sorted runs on disk.
//!
//! The `Collector` moves patients to a run (an anonymous temporary file in
//! `TMPDIR`, unlinked at creation and readable by this process only; records
//! sorted by patient id, postcard-encoded) whenever what it holds
//! passes [`ReadOptions::patients_after`](super::ReadOptions::patients_after),
//! so memory stays flat however many patients an export has. [`Patients`]
//! gives them back merged, in id order, one patient at a time: a patient seen
//! in several runs gets the facts of each in run order, then those still in
//! memory — the order a run without spilling gives, so outputs are the same.
//!
//! This module owns the run format and the merge only; what goes in a
//! patient's data is decided by the `Collector`, how it is used by `cohort`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::PatientData;

/// One sorted run on disk.
#[derive(Debug)]
struct Run {
    /// Anonymous (unlinked at creation): nothing is left behind, even after a crash.
    file: File,
    records: u64,
}

/// Every patient's data, by patient id.
#[derive(Debug, Default)]
pub struct Patients {
    runs: Vec<Run>,
    memory: BTreeMap<String, PatientData>,
}

impl From<BTreeMap<String, PatientData>> for Patients {
    fn from(memory: BTreeMap<String, PatientData>) -> Self {
        Self {
            runs: Vec::new(),
            memory,
        }
    }
}

impl Patients {
    /// Patients with `runs` written earlier (see [`write_run`]) and `memory` after them.
    pub(super) fn new(runs: Vec<RunFile>, memory: BTreeMap<String, PatientData>) -> Self {
        let runs = runs.into_iter().map(|r| r.0).collect();
        Self { runs, memory }
    }

    /// How many runs went to disk.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Calls `f` with each patient, in id order, its data merged across runs.
    /// Errors are reading a run back.
    pub fn try_for_each<E: From<std::io::Error>>(
        &self,
        f: impl FnMut(&str, &PatientData) -> Result<(), E>,
    ) -> Result<(), E> {
        let runs: Vec<&Run> = self.runs.iter().collect();
        merge(&runs, &self.memory, f)
    }

    /// How many patients (a pass over the runs).
    pub fn count(&self) -> std::io::Result<usize> {
        let mut n = 0;
        self.try_for_each(|_, _| {
            n += 1;
            Ok::<_, std::io::Error>(())
        })?;
        Ok(n)
    }

    /// Every patient in memory, merged (for tests and small inputs).
    pub fn to_map(&self) -> std::io::Result<BTreeMap<String, PatientData>> {
        let mut out = BTreeMap::new();
        self.try_for_each(|id, data| {
            out.insert(id.to_string(), data.clone());
            Ok::<_, std::io::Error>(())
        })?;
        Ok(out)
    }
}

impl PatientData {
    /// Adds `later`'s data after this one's (a later record replaces the demographics).
    pub(super) fn absorb(&mut self, later: PatientData) {
        if later.record.is_some() {
            self.record = later.record;
        }
        self.facts.extend(later.facts);
        self.diagnoses.extend(later.diagnoses);
    }

    /// About how many heap bytes this holds (for the spill limit).
    pub(super) fn approx_bytes(&self) -> usize {
        let facts: usize = self
            .facts
            .iter()
            .map(|f| {
                let via = f.via.as_ref().map_or(0, |v| v.id.len() + v.resource_type.len() + 48);
                std::mem::size_of_val(f) + f.code.len() + f.detail.len() + f.source.id.len() + 16 + via
            })
            .sum();
        let diagnoses: usize = self
            .diagnoses
            .iter()
            .map(|d| std::mem::size_of_val(d) + d.code.len() + d.source.id.len() + 16)
            .sum();
        std::mem::size_of::<Self>() + facts + diagnoses
    }
}

/// Merges `runs` (each in id order), then `memory`, calling `f` once per patient in id order.
fn merge<E: From<std::io::Error>>(
    runs: &[&Run],
    memory: &BTreeMap<String, PatientData>,
    mut f: impl FnMut(&str, &PatientData) -> Result<(), E>,
) -> Result<(), E> {
    if runs.is_empty() {
        return memory.iter().try_for_each(|(id, data)| f(id, data));
    }
    let mut readers = Vec::with_capacity(runs.len());
    for run in runs {
        readers.push(RunReader::open(run)?);
    }
    let mut heads = Vec::with_capacity(readers.len());
    for r in &mut readers {
        heads.push(r.next()?);
    }
    let mut memory = memory.iter().peekable();
    loop {
        let from_runs = heads.iter().flatten().map(|(id, _)| id.as_str()).min();
        let from_memory = memory.peek().map(|(id, _)| id.as_str());
        let Some(id) = from_runs.into_iter().chain(from_memory).min().map(str::to_string) else {
            return Ok(());
        };
        let mut merged = PatientData::default();
        for (head, reader) in heads.iter_mut().zip(&mut readers) {
            if let Some((_, data)) = head.take_if(|(h, _)| *h == id) {
                merged.absorb(data);
                *head = reader.next()?;
            }
        }
        if let Some((_, data)) = memory.next_if(|(m, _)| **m == id) {
            merged.absorb(data.clone());
        }
        f(&id, &merged)?;
    }
}

/// Past this many runs, [`compact`] folds them into one (open files stay few).
pub(super) const MAX_RUNS: usize = 32;

/// Folds `runs` into one run, in order.
pub(super) fn compact(runs: &[RunFile]) -> std::io::Result<RunFile> {
    let runs: Vec<&Run> = runs.iter().map(|r| &r.0).collect();
    let file = tempfile::tempfile()?;
    let mut w = BufWriter::with_capacity(1 << 16, &file);
    let (mut records, mut buf) = (0u64, Vec::new());
    merge(&runs, &BTreeMap::new(), |id, data| {
        records += 1;
        write_record(&mut w, &(id, data), &mut buf)
    })?;
    w.flush()?;
    drop(w);
    Ok(RunFile(Run { file, records }))
}

/// A run written by [`write_run`], not yet handed to [`Patients`].
#[derive(Debug)]
pub(super) struct RunFile(Run);

/// Writes `patients` (already in id order) as one run.
pub(super) fn write_run<'a>(patients: impl Iterator<Item = (&'a String, &'a PatientData)>) -> std::io::Result<RunFile> {
    let file = tempfile::tempfile()?;
    let mut w = BufWriter::with_capacity(1 << 16, &file);
    let mut records = 0u64;
    let mut buf = Vec::new();
    for record in patients {
        write_record(&mut w, &record, &mut buf)?;
        records += 1;
    }
    w.flush()?;
    drop(w);
    Ok(RunFile(Run { file, records }))
}

struct RunReader<'r> {
    r: BufReader<ReadAt<'r>>,
    left: u64,
    buf: Vec<u8>,
}

impl<'r> RunReader<'r> {
    fn open(run: &'r Run) -> std::io::Result<Self> {
        let at = ReadAt {
            file: &run.file,
            pos: 0,
        };
        Ok(Self {
            r: BufReader::with_capacity(1 << 16, at),
            left: run.records,
            buf: Vec::new(),
        })
    }

    fn next(&mut self) -> std::io::Result<Option<(String, PatientData)>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        read_record(&mut self.r, &mut self.buf).map(Some)
    }
}

/// Reads a file from `pos` on with positional reads, so several readers can
/// share one open (anonymous) file.
struct ReadAt<'f> {
    file: &'f File,
    pos: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.pos)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// One record: its postcard length (u64 LE), then its postcard bytes.
fn write_record(w: &mut impl Write, record: &impl Serialize, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    *buf = postcard::to_extend(record, std::mem::take(buf)).map_err(std::io::Error::other)?;
    w.write_all(&(buf.len() as u64).to_le_bytes())?;
    w.write_all(buf)
}

fn read_record<T: DeserializeOwned>(r: &mut impl Read, buf: &mut Vec<u8>) -> std::io::Result<T> {
    let mut len = [0u8; 8];
    r.read_exact(&mut len)?;
    let len = usize::try_from(u64::from_le_bytes(len)).map_err(std::io::Error::other)?;
    buf.resize(len, 0);
    r.read_exact(buf)?;
    postcard::from_bytes(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Records appended to an anonymous temporary file, read back once in order.
#[derive(Debug, Default)]
pub(super) struct Log {
    file: Option<BufWriter<File>>,
    records: u64,
    buf: Vec<u8>,
}

impl Log {
    /// Appends `record`.
    pub(super) fn push(&mut self, record: &impl Serialize) -> std::io::Result<()> {
        if self.file.is_none() {
            self.file = Some(BufWriter::with_capacity(1 << 16, tempfile::tempfile()?));
        }
        let w = self.file.as_mut().expect("created above");
        write_record(w, record, &mut self.buf)?;
        self.records += 1;
        Ok(())
    }

    /// Every record, in the order pushed; the log is empty afterwards.
    pub(super) fn drain<T: DeserializeOwned>(&mut self, mut f: impl FnMut(T)) -> std::io::Result<()> {
        let (Some(w), records) = (self.file.take(), std::mem::take(&mut self.records)) else {
            return Ok(());
        };
        let mut file = w.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        let mut r = BufReader::with_capacity(1 << 16, file);
        for _ in 0..records {
            f(read_record(&mut r, &mut self.buf)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Fact, FactValue, FhirDate, SourceRef};

    fn data(rule: usize, value: f64) -> PatientData {
        let fact = Fact {
            rule,
            value: FactValue::Quantity(value),
            date: FhirDate::parse("2020-02").ok(),
            source: SourceRef::new("Observation", format!("o{rule}")),
            code: "http://loinc.org|2157-6".into(),
            detail: format!("{value} U/L"),
            via: None,
        };
        PatientData {
            record: None,
            facts: vec![fact],
            diagnoses: Vec::new(),
        }
    }

    fn map(entries: &[(&str, usize, f64)]) -> BTreeMap<String, PatientData> {
        entries
            .iter()
            .map(|(id, r, v)| (id.to_string(), data(*r, *v)))
            .collect()
    }

    #[test]
    fn runs_and_memory_merge_in_id_order_with_facts_in_run_order() {
        let first = map(&[("a", 0, 1.5), ("c", 1, 0.1 + 0.2)]);
        let second = map(&[("b", 2, 3.0), ("c", 3, f64::MAX)]);
        let runs = vec![write_run(first.iter()).unwrap(), write_run(second.iter()).unwrap()];
        let patients = Patients::new(runs, map(&[("c", 4, 4.0), ("d", 5, 5.0)]));
        assert_eq!(patients.runs(), 2);
        let all = patients.to_map().unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        let c: Vec<(usize, FactValue)> = all["c"].facts.iter().map(|f| (f.rule, f.value.clone())).collect();
        let expected = [(1, 0.1 + 0.2), (3, f64::MAX), (4, 4.0)].map(|(r, v)| (r, FactValue::Quantity(v)));
        assert_eq!(c, expected);
        assert_eq!(all["a"], data(0, 1.5), "a fact survives the round trip unchanged");
        assert_eq!(patients.count().unwrap(), 4);
    }

    #[test]
    fn compacted_runs_merge_as_the_runs_did() {
        let maps = [
            map(&[("a", 0, 1.0), ("b", 1, 2.0)]),
            map(&[("b", 2, 3.0)]),
            map(&[("a", 3, 4.0)]),
        ];
        let runs: Vec<RunFile> = maps.iter().map(|m| write_run(m.iter()).unwrap()).collect();
        let one = compact(&runs).unwrap();
        let before = Patients::new(runs, BTreeMap::new()).to_map().unwrap();
        let after = Patients::new(vec![one], BTreeMap::new()).to_map().unwrap();
        assert_eq!(after, before);
        assert_eq!(after["b"].facts.iter().map(|f| f.rule).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn a_log_gives_its_records_back_in_order_once() {
        let mut log = Log::default();
        for i in 0..1000u32 {
            log.push(&(i, format!("r{i}"))).unwrap();
        }
        let mut back: Vec<(u32, String)> = Vec::new();
        log.drain(|r| back.push(r)).unwrap();
        assert_eq!(back.len(), 1000);
        assert_eq!(back[999], (999, "r999".to_string()));
        let mut again: Vec<(u32, String)> = Vec::new();
        log.drain(|r| again.push(r)).unwrap();
        assert!(again.is_empty());
    }
}
