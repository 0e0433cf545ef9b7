//! Tables published into the store's database for researchers to query (the
//! cohort outputs, issue 26 item 3). The store knows them only as named tables
//! of text cells; what they hold is [`crate::cohort`]'s. In PostgreSQL they sit
//! in the schema [`SCHEMA`]; in SQLite, whose databases have no schemas, each
//! name is prefixed `imnm_cohort_`.

use super::StoreError;

/// The PostgreSQL schema of the published tables.
pub const SCHEMA: &str = "imnm_cohort";

/// One table to publish: every column text, `None` a SQL NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The table's name: `[a-z][a-z0-9_]*`.
    pub name: String,
    /// Column names (any text; quoted in SQL).
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<Option<String>>>,
}

impl Table {
    /// Refuses a name that is not `[a-z][a-z0-9_]*` or a row of the wrong width.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        let ok_name = self.name.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !ok_name || self.columns.is_empty() {
            return Err(StoreError::BadTable {
                table: self.name.clone(),
                reason: "a name of a-z, 0-9 and _ and at least one column".into(),
            });
        }
        match self.rows.iter().position(|r| r.len() != self.columns.len()) {
            Some(i) => Err(StoreError::BadTable {
                table: self.name.clone(),
                reason: format!("row {i} has not {} cells", self.columns.len()),
            }),
            None => Ok(()),
        }
    }

    /// `CREATE TABLE <qualified> ("c1" TEXT, …)`.
    pub(super) fn create_sql(&self, qualified: &str) -> String {
        let cols: Vec<String> = self.columns.iter().map(|c| format!("{} TEXT", quote(c))).collect();
        format!("CREATE TABLE {qualified} ({})", cols.join(", "))
    }

    /// The quoted column list.
    pub(super) fn column_list(&self) -> String {
        self.columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
    }
}

/// A SQL identifier in double quotes.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
