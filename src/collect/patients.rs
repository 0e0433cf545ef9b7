//! Every patient's collected data, in memory or partly in sorted runs on disk.
//!
//! The `Collector` moves patients to a run (a `spill::Log` of `(id, data)` records
//! sorted by patient id) whenever what it holds passes
//! [`ReadOptions::spill_after`](crate::pipeline::ReadOptions::spill_after), so memory
//! stays flat however many patients an export has. [`Patients`] gives them
//! back merged, in id order, one patient at a time: a patient seen in several
//! runs gets the facts of each in run order, then those still in memory — the
//! order a run without spilling gives, so outputs are the same.
//!
//! This module owns the merge only; the file format is `spill`'s, what goes in
//! a patient's data is decided by the `Collector`, how it is used by `cohort`.

use std::collections::BTreeMap;

use super::PatientData;
use crate::domain::{DiagnosisFact, Fact, SourceRef};
use crate::spill::{Log, Reader};

/// Every patient's data, by patient id.
#[derive(Debug)]
pub struct Patients {
    /// Each flushed, in id order.
    runs: Vec<Log>,
    memory: BTreeMap<String, PatientData>,
    /// About how many bytes of what is made from them (the cohort's rows) may stay in memory.
    budget: usize,
}

impl Default for Patients {
    fn default() -> Self {
        Self::new(Vec::new(), BTreeMap::new())
    }
}

impl Patients {
    /// Patients with `runs` written earlier (see [`write_run`]) and `memory`
    /// after them; no memory budget.
    pub(crate) fn new(runs: Vec<Log>, memory: BTreeMap<String, PatientData>) -> Self {
        Self {
            runs,
            memory,
            budget: usize::MAX,
        }
    }

    /// The same, with about `bytes` of what is made from them allowed in
    /// memory (the read's [`ReadOptions::spill_after`](crate::pipeline::ReadOptions::spill_after)).
    pub(crate) fn with_budget(mut self, bytes: usize) -> Self {
        self.budget = bytes;
        self
    }

    /// About how many bytes of what is made from them (the cohort's rows) may stay in memory.
    pub fn budget(&self) -> usize {
        self.budget
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
        merge(&self.runs, &self.memory, f)
    }

    /// Every patient in memory, merged.
    #[cfg(test)]
    fn to_map(&self) -> std::io::Result<BTreeMap<String, PatientData>> {
        let mut out = BTreeMap::new();
        self.try_for_each(|id, data| {
            out.insert(id.to_string(), data.clone());
            Ok::<_, std::io::Error>(())
        })?;
        Ok(out)
    }
}

impl PatientData {
    /// Stamps the facts, diagnoses and record of one resource with the number of its text.
    pub(crate) fn number_texts(&mut self, number: crate::domain::TextNumber) {
        for fact in &mut self.facts {
            fact.text = number;
        }
        for dx in &mut self.diagnoses {
            dx.text = number;
        }
        if let Some(record) = &mut self.record {
            record.text = number;
        }
    }

    /// Adds `later`'s data after this one's (a later record replaces the demographics).
    pub(crate) fn absorb(&mut self, later: PatientData) {
        if later.record.is_some() {
            self.record = later.record;
        }
        // Into nothing yet, not even room (the first part of a patient merged from the
        // runs): moved, not copied; the bytes held never shrink (`Collector::add_to`).
        match self.facts.capacity() == 0 {
            true => self.facts = later.facts,
            false => self.facts.extend(later.facts),
        }
        match self.diagnoses.capacity() == 0 {
            true => self.diagnoses = later.diagnoses,
            false => self.diagnoses.extend(later.diagnoses),
        }
    }

    /// About how many bytes this holds (for the spill limit).
    pub(crate) fn approx_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.vec_bytes() + self.string_bytes()
    }

    /// Bytes of the fact and diagnosis vectors, spare capacity included.
    pub(crate) fn vec_bytes(&self) -> usize {
        self.facts.capacity() * std::mem::size_of::<Fact>()
            + self.diagnoses.capacity() * std::mem::size_of::<DiagnosisFact>()
    }

    /// Bytes of the strings the facts and diagnoses hold, rounded up to
    /// 16 as an allocator does.
    pub(crate) fn string_bytes(&self) -> usize {
        let s = |t: &str| t.len().next_multiple_of(16);
        let r = |r: &SourceRef| s(&r.resource_type) + s(&r.id);
        let facts: usize = self
            .facts
            .iter()
            .map(|f| s(&f.code) + s(&f.detail) + r(&f.source) + f.via.as_ref().map_or(0, r))
            .sum();
        let diagnoses: usize = self.diagnoses.iter().map(|d| s(&d.code) + r(&d.source)).sum();
        facts + diagnoses
    }
}

/// Merges `runs` (each in id order), then `memory`, calling `f` once per patient in id order.
fn merge<E: From<std::io::Error>>(
    runs: &[Log],
    memory: &BTreeMap<String, PatientData>,
    mut f: impl FnMut(&str, &PatientData) -> Result<(), E>,
) -> Result<(), E> {
    if runs.is_empty() {
        return memory.iter().try_for_each(|(id, data)| f(id, data));
    }
    let mut readers: Vec<Reader<'_, (String, PatientData)>> = Vec::with_capacity(runs.len());
    for run in runs {
        readers.push(run.reader()?);
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
pub(crate) const MAX_RUNS: usize = 32;

/// Folds `runs` into one run, in order.
pub(crate) fn compact(runs: &[Log]) -> std::io::Result<Log> {
    let mut one = Log::default();
    merge(runs, &BTreeMap::new(), |id, data| one.push(&(id, data)))?;
    one.flush()?;
    Ok(one)
}

/// Writes `patients` (already in id order) as one run.
pub(crate) fn write_run<'a>(patients: impl Iterator<Item = (&'a String, &'a PatientData)>) -> std::io::Result<Log> {
    let mut run = Log::default();
    for record in patients {
        run.push(&record)?;
    }
    run.flush()?;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FactValue, FhirDate};

    #[test]
    fn the_spill_estimate_counts_spare_capacity_and_rounded_strings() {
        let one = data(0, 1.0);
        let fact = std::mem::size_of::<Fact>();
        let strings = one.string_bytes();
        // "http://loinc.org|2157-6" (23 bytes), "1 U/L", "Observation", "o0": 32 + 16 * 3.
        assert_eq!(strings, 80);
        let mut roomy = PatientData {
            facts: Vec::with_capacity(100),
            ..PatientData::default()
        };
        roomy.absorb(one);
        assert!(roomy.approx_bytes() >= 100 * fact + strings, "{}", roomy.approx_bytes());
    }

    fn data(rule: usize, value: f64) -> PatientData {
        let fact = Fact {
            rule,
            value: FactValue::Quantity(value),
            date: FhirDate::parse("2020-02").ok(),
            source: SourceRef::new("Observation", format!("o{rule}")),
            code: "http://loinc.org|2157-6".into(),
            detail: format!("{value} U/L"),
            via: None,
            evidence: Default::default(),
            text: None,
            via_text: None,
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
    }

    #[test]
    fn compacted_runs_merge_as_the_runs_did() {
        let maps = [
            map(&[("a", 0, 1.0), ("b", 1, 2.0)]),
            map(&[("b", 2, 3.0)]),
            map(&[("a", 3, 4.0)]),
        ];
        let runs: Vec<Log> = maps.iter().map(|m| write_run(m.iter()).unwrap()).collect();
        let one = compact(&runs).unwrap();
        let before = Patients::new(runs, BTreeMap::new()).to_map().unwrap();
        let after = Patients::new(vec![one], BTreeMap::new()).to_map().unwrap();
        assert_eq!(after, before);
        assert_eq!(after["b"].facts.iter().map(|f| f.rule).collect::<Vec<_>>(), [1, 2]);
    }
}
