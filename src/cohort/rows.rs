//! The case rows of a cohort: the first ones in memory, the rest in a
//! temporary file (`spill::List`), with the counts Table 1 and completeness
//! need kept as they come ([`Tally`]), so a large cohort's memory does not
//! grow with its cases (but for the tally's numbers, 8 bytes a case per
//! numeric column).
//!
//! This module owns where rows are kept only; what is in a row is `build`'s.

use super::tally::Tally;
use crate::domain::CaseRow;
use crate::spill;

/// Rows kept in memory when no budget is given ([`Rows::with_budget`]).
const IN_MEMORY: usize = usize::MAX;

/// About how many bytes a row takes in memory (21 cells of 32 bytes, its
/// strings): a budget of bytes keeps `budget / ROW_BYTES` rows.
pub(crate) const ROW_BYTES: usize = 1024;

/// A cohort's case rows, in order.
#[derive(Debug)]
pub struct Rows {
    list: spill::List<CaseRow>,
    tally: Tally,
}

impl Default for Rows {
    fn default() -> Self {
        Self {
            list: spill::List::new(IN_MEMORY),
            tally: Tally::default(),
        }
    }
}

impl From<Vec<CaseRow>> for Rows {
    fn from(rows: Vec<CaseRow>) -> Self {
        let mut out = Rows::default();
        for row in rows {
            out.push(row);
        }
        out
    }
}

impl Rows {
    /// Rows of which about `budget` bytes stay in memory.
    pub fn with_budget(budget: usize) -> Self {
        Self {
            list: spill::List::new(budget / ROW_BYTES),
            tally: Tally::default(),
        }
    }

    /// Appends a row; the error is the temporary file's first failure (the
    /// row, and later ones, are then kept in memory).
    pub(crate) fn push(&mut self, row: CaseRow) -> Option<std::io::Error> {
        self.tally.add(&row);
        self.list.push_keeping(row)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.list.len() == 0
    }

    /// The counts of the rows (Table 1, completeness, the sites).
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Calls `f` with every row in order; stops at the first error (reading
    /// the temporary file back, or one `f` returns).
    pub fn try_for_each<E: From<std::io::Error>>(&self, f: impl FnMut(&CaseRow) -> Result<(), E>) -> Result<(), E> {
        self.list.try_for_each(f)
    }

    /// Every row, in memory (tests, the service's snapshot, small cohorts).
    ///
    /// # Errors
    ///
    /// Reading the temporary file back.
    pub fn all(&self) -> std::io::Result<Vec<CaseRow>> {
        self.list.all()
    }

    /// Writes out what is buffered (before [`Rows::try_for_each`]).
    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.list.flush()
    }
}
