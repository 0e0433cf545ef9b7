//! External sorting: records pushed in any order come back sorted, with at
//! most a budget of them in memory. Past the budget the records held are
//! sorted and written as a run (a `spill::Log`); reading back merges the runs
//! and the records still held. Equal records come back in the order pushed
//! (each run is sorted stably, and a tie goes to the earlier run), so a
//! sorted stream is the same whatever the budget.
//!
//! This module owns the sorting only; the file format is `spill`'s, what is
//! sorted and why is the caller's (the keys behind an export's cells, the
//! resources of a bundle).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::spill::{Log, Reader};

/// Past this many runs, they are merged into one (few open files).
const MAX_RUNS: usize = 32;

/// Records being sorted.
#[derive(Debug)]
pub(crate) struct Sorter<T> {
    held: Vec<T>,
    budget: usize,
    runs: Vec<Log>,
}

impl<T: Ord + Clone + Serialize + DeserializeOwned> Sorter<T> {
    /// A sorter holding at most `budget` records (at least one) in memory.
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            held: Vec::new(),
            budget: budget.max(1),
            runs: Vec::new(),
        }
    }

    /// Adds one record (a full budget goes to a run first).
    pub(crate) fn push(&mut self, record: T) -> std::io::Result<()> {
        if self.held.len() >= self.budget {
            self.write_run()?;
        }
        self.held.push(record);
        Ok(())
    }

    /// How many records were pushed.
    pub(crate) fn len(&self) -> usize {
        self.held.len() + self.runs.iter().map(|r| r.len() as usize).sum::<usize>()
    }

    fn write_run(&mut self) -> std::io::Result<()> {
        self.held.sort();
        let mut run = Log::default();
        for record in self.held.drain(..) {
            run.push(&record)?;
        }
        run.flush()?;
        self.runs.push(run);
        if self.runs.len() >= MAX_RUNS {
            let mut one = Log::default();
            merge::<T, std::io::Error>(&self.runs, &[], |r| one.push(&r))?;
            one.flush()?;
            self.runs = vec![one];
        }
        Ok(())
    }

    /// The records sorted, ready to be read (any number of times).
    pub(crate) fn finish(mut self) -> Sorted<T> {
        self.held.sort();
        Sorted {
            runs: self.runs,
            held: self.held,
        }
    }
}

/// Sorted records, on disk and in memory.
#[derive(Debug)]
pub(crate) struct Sorted<T> {
    runs: Vec<Log>,
    held: Vec<T>,
}

impl<T: Ord + Clone + DeserializeOwned> Sorted<T> {
    /// The records in order, one at a time.
    ///
    /// # Errors
    ///
    /// Opening a run.
    pub(crate) fn iter(&self) -> std::io::Result<Merger<'_, T>> {
        Merger::new(&self.runs, &self.held)
    }
}

/// Merges `runs` (each sorted) and `held` (sorted, after them), a tie to the earliest.
fn merge<T: Ord + Clone + DeserializeOwned, E: From<std::io::Error>>(
    runs: &[Log],
    held: &[T],
    mut f: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    let mut merger = Merger::new(runs, held)?;
    while let Some(record) = merger.next()? {
        f(record)?;
    }
    Ok(())
}

/// Sorted runs and records in memory, merged one record at a time.
pub(crate) struct Merger<'a, T> {
    readers: Vec<Reader<'a, T>>,
    memory: std::slice::Iter<'a, T>,
    /// The next record of each reader, then of `memory`.
    heads: Vec<Option<T>>,
}

impl<'a, T: Ord + Clone + DeserializeOwned> Merger<'a, T> {
    fn new(runs: &'a [Log], held: &'a [T]) -> std::io::Result<Self> {
        let mut readers: Vec<Reader<'a, T>> = Vec::with_capacity(runs.len());
        for run in runs {
            readers.push(run.reader()?);
        }
        let mut heads: Vec<Option<T>> = Vec::with_capacity(readers.len() + 1);
        for r in &mut readers {
            heads.push(r.next()?);
        }
        let mut memory = held.iter();
        heads.push(memory.next().cloned());
        Ok(Self { readers, memory, heads })
    }

    /// The next record in order (`None` after the last).
    ///
    /// # Errors
    ///
    /// Reading a run back.
    pub(crate) fn next(&mut self) -> std::io::Result<Option<T>> {
        let mut best: Option<usize> = None;
        for (i, head) in self.heads.iter().enumerate() {
            if let Some(h) = head {
                if best.is_none_or(|b| self.heads[b].as_ref().is_some_and(|x| h < x)) {
                    best = Some(i);
                }
            }
        }
        let Some(i) = best else { return Ok(None) };
        let next = match self.readers.get_mut(i) {
            Some(r) => r.next()?,
            None => self.memory.next().cloned(),
        };
        Ok(std::mem::replace(&mut self.heads[i], next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(records: &[(u32, u32)], budget: usize) -> Vec<(u32, u32)> {
        let mut s = Sorter::new(budget);
        for r in records {
            s.push(*r).unwrap();
        }
        assert_eq!(s.len(), records.len());
        let done = s.finish();
        let mut out = Vec::new();
        let mut records = done.iter().unwrap();
        while let Some(r) = records.next().unwrap() {
            out.push(r);
        }
        out
    }

    #[test]
    fn any_budget_gives_the_same_order_as_an_in_memory_sort() {
        // Pseudo-random keys with many ties; the second field is the push order.
        let records: Vec<(u32, u32)> = (0..5000u32).map(|i| ((i * 7919) % 97, i)).collect();
        let mut want = records.clone();
        want.sort();
        for budget in [0, 1, 3, 100, 4999, 5000, 10_000] {
            assert_eq!(sorted(&records, budget), want, "budget {budget}");
        }
        assert!(sorted(&[], 2).is_empty());
    }
}
