//! Counts of case rows, fed one row at a time: everything Table 1 and
//! completeness need, so neither needs the rows themselves (a large cohort's
//! rows are on disk, see [`super::rows::Rows`]). Per group (every site pooled, and
//! each site in order of first appearance; a linked case `a+b` counts in `a`
//! and in `b`): the number of cases, per column the cases with a value and
//! each level's count, and the numbers of the numeric columns (onset age, lab
//! peaks: a median needs them all, 8 bytes a case per numeric column, the only
//! part that grows with the cases).
//!
//! This module owns the counting only; what a row is worth is `domain`'s,
//! the tables are `table1`'s and `completeness`'s.

use crate::domain::CaseRow;

/// The counts of one group of rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    /// Rows counted.
    pub(crate) total: u64,
    /// Per dictionary column, rows with a value (`Cell::has_value`).
    pub(crate) with_value: Vec<u64>,
    /// Per dictionary column, rows at each level (`Cell::level`).
    levels: Vec<Vec<(&'static str, u64)>>,
    /// Per dictionary column, the numbers of its cells (`Cell::number`), in row order.
    numbers: Vec<Vec<f64>>,
}

impl Group {
    fn add(&mut self, row: &CaseRow) {
        self.total += 1;
        let columns = row.values.len();
        if self.with_value.len() < columns {
            self.with_value.resize(columns, 0);
            self.levels.resize(columns, Vec::new());
            self.numbers.resize(columns, Vec::new());
        }
        for (i, cell) in row.values.iter().enumerate() {
            if cell.has_value() {
                self.with_value[i] += 1;
            }
            if let Some(x) = cell.number() {
                self.numbers[i].push(x);
            }
            if let Some(level) = cell.level() {
                let counts = &mut self.levels[i];
                match counts.iter_mut().find(|(l, _)| *l == level) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((level, 1)),
                }
            }
        }
    }

    /// Rows of column `i` at `level`.
    pub(crate) fn at_level(&self, i: usize, level: &str) -> u64 {
        let counts = self.levels.get(i).map_or(&[][..], Vec::as_slice);
        counts.iter().find(|(l, _)| *l == level).map_or(0, |(_, n)| *n)
    }

    /// The values of continuous column `i`, in row order.
    pub(crate) fn numbers(&self, i: usize) -> Vec<f64> {
        self.numbers.get(i).cloned().unwrap_or_default()
    }

    /// Rows of column `i` with a value.
    pub(crate) fn valued(&self, i: usize) -> u64 {
        self.with_value.get(i).copied().unwrap_or(0)
    }
}

/// Counts of every row fed, pooled and per site.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    all: Group,
    sites: Vec<(String, Group)>,
}

impl Tally {
    /// The tally of `rows`.
    pub fn of<'r>(rows: impl IntoIterator<Item = &'r CaseRow>) -> Self {
        let mut t = Self::default();
        rows.into_iter().for_each(|r| t.add(r));
        t
    }

    /// Counts one row.
    pub fn add(&mut self, row: &CaseRow) {
        self.all.add(row);
        for (k, site) in row.site.split('+').enumerate() {
            if row.site.split('+').take(k).any(|s| s == site) {
                continue; // a site named twice counts once, as `at_site` says
            }
            match self.sites.iter_mut().find(|(s, _)| s == site) {
                Some((_, group)) => group.add(row),
                None => {
                    let mut group = Group::default();
                    group.add(row);
                    self.sites.push((site.to_string(), group));
                }
            }
        }
    }

    /// Every row counted.
    pub(crate) fn all(&self) -> &Group {
        &self.all
    }

    /// The sites of the rows, in order of first appearance.
    pub fn sites(&self) -> Vec<&str> {
        self.sites.iter().map(|(s, _)| s.as_str()).collect()
    }

    /// The rows of `site` (none: an empty group).
    pub(crate) fn site(&self, site: &str) -> std::borrow::Cow<'_, Group> {
        let held = self.sites.iter().find(|(s, _)| s == site);
        held.map_or_else(
            || std::borrow::Cow::Owned(Group::default()),
            |(_, g)| std::borrow::Cow::Borrowed(g),
        )
    }
}
