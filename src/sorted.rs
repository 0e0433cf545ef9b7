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
        let run = sorted_run(&mut self.held)?;
        self.add_run(run)
    }

    fn add_run(&mut self, run: Log) -> std::io::Result<()> {
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
    ///
    /// # Errors
    ///
    /// None today (reading runs back fails later, in [`Sorted::iter`]).
    pub(crate) fn finish(mut self) -> std::io::Result<Sorted<T>> {
        self.held.sort();
        Ok(Sorted {
            runs: self.runs,
            held: self.held,
        })
    }
}

/// `held` sorted (stably) into a new run; `held` is left empty.
fn sorted_run<T: Ord + Serialize>(held: &mut Vec<T>) -> std::io::Result<Log> {
    held.sort();
    let mut run = Log::default();
    for record in held.drain(..) {
        run.push(&record)?;
    }
    run.flush()?;
    Ok(run)
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

/// Sorted runs and records in memory, merged one record at a time by a
/// tournament of losers: each record costs about log2(sources) comparisons
/// (a scan of every source's next record cost one per source, 32 at most).
pub(crate) struct Merger<'a, T> {
    readers: Vec<Reader<'a, T>>,
    memory: std::slice::Iter<'a, T>,
    /// The next record of each reader, then of `memory` (`None`: done).
    heads: Vec<Option<T>>,
    /// `losers[0]`: the source whose head comes next; `losers[n]` for `n` in
    /// `1..heads.len()`: the source that lost the match at node `n` (node
    /// `n`'s children are `2n` and `2n + 1`; source `i` is leaf `heads.len() + i`).
    losers: Vec<usize>,
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
        let mut merger = Self {
            readers,
            memory,
            heads,
            losers: Vec::new(),
        };
        merger.losers = merger.first_round();
        Ok(merger)
    }

    /// Plays every match once, from the leaves up.
    fn first_round(&self) -> Vec<usize> {
        let k = self.heads.len();
        let mut winners: Vec<usize> = (0..2 * k).map(|node| node.saturating_sub(k)).collect();
        let mut losers = vec![0; k];
        for node in (1..k).rev() {
            let (a, b) = (winners[2 * node], winners[2 * node + 1]);
            let (won, lost) = if self.beats(a, b) { (a, b) } else { (b, a) };
            winners[node] = won;
            losers[node] = lost;
        }
        losers[0] = winners[1.min(2 * k - 1)];
        losers
    }

    /// True when source `a`'s head comes before source `b`'s: the smaller
    /// record, a tie to the earlier source, any record before none.
    fn beats(&self, a: usize, b: usize) -> bool {
        match (&self.heads[a], &self.heads[b]) {
            (Some(x), Some(y)) => x.cmp(y).then(a.cmp(&b)).is_lt(),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => a < b,
        }
    }

    /// The next record in order (`None` after the last).
    ///
    /// # Errors
    ///
    /// Reading a run back.
    pub(crate) fn next(&mut self) -> std::io::Result<Option<T>> {
        let Some(&won) = self.losers.first() else {
            return Ok(None);
        };
        if self.heads[won].is_none() {
            return Ok(None);
        }
        let refill = match self.readers.get_mut(won) {
            Some(r) => r.next()?,
            None => self.memory.next().cloned(),
        };
        let record = std::mem::replace(&mut self.heads[won], refill);
        // Its new head replays the matches on its way up.
        let (mut node, mut up) = ((won + self.heads.len()) / 2, won);
        while node >= 1 {
            if self.beats(self.losers[node], up) {
                std::mem::swap(&mut self.losers[node], &mut up);
            }
            node /= 2;
        }
        self.losers[0] = up;
        Ok(record)
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
        let done = s.finish().unwrap();
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

    /// Ordered by its first field only: the second tells equal records apart.
    #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
    struct ByFirst(u32, u32);

    impl PartialOrd for ByFirst {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }

    impl Ord for ByFirst {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.0.cmp(&other.0)
        }
    }

    #[test]
    fn equal_records_come_back_in_the_order_pushed_across_runs() {
        // Few distinct keys, so every run and the records held share them.
        let records: Vec<ByFirst> = (0..3000u32).map(|i| ByFirst((i * 7919) % 7, i)).collect();
        let mut want = records.clone();
        want.sort(); // stable: equal keys keep their push order
        for budget in [1, 2, 5, 64, 999, 2999, 3000, 5000] {
            let mut s = Sorter::new(budget);
            for r in &records {
                s.push(r.clone()).unwrap();
            }
            let done = s.finish().unwrap();
            let (mut out, mut it) = (Vec::new(), done.iter().unwrap());
            while let Some(r) = it.next().unwrap() {
                out.push(r);
            }
            let order = |v: &[ByFirst]| v.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>();
            assert_eq!(order(&out), order(&want), "budget {budget}");
        }
    }
}
