//! Reading a sync store (see [`crate::store`]) into [`Collected`] data:
//! every resource it holds goes through the [`Collector`], as a file's would.

use std::sync::Arc;

use super::Collector;
use crate::collect::Collected;
use crate::fhir::source::{self, Item, Location};
use crate::mapping::MappingSet;

/// Opens the sync store at `path` and reads it as [`collect_store`] does. A
/// missing file is an input error (opening would create an empty store).
pub fn collect_store_at(path: &std::path::Path, mappings: &MappingSet) -> crate::run_error::Result<Collected> {
    if !path.is_file() {
        return Err(crate::run_error::RunError::Input {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no store file there"),
        });
    }
    let err = |source| crate::run_error::RunError::Store {
        path: path.to_path_buf(),
        source,
    };
    let store = crate::store::Store::open(path).map_err(err)?;
    collect_store(&store, &path.display().to_string(), mappings).map_err(err)
}

/// Reads every resource held in a sync store (see [`crate::store`]). Issue
/// locations are `LABEL#entry[N]`, N the row's position (ordered by site, type, id;
/// every site is read).
pub fn collect_store(
    store: &crate::store::Store,
    label: &str,
    mappings: &MappingSet,
) -> Result<Collected, crate::store::StoreError> {
    let mut collector = Collector::new(mappings);
    let file: Arc<str> = label.into();
    let mut index = 0usize;
    store.for_each(|row| {
        collector.accept(Item::Resource {
            location: Location {
                file: file.clone(),
                pos: source::Pos::Entry(index),
            },
            text: &row.json,
            full_url: None,
        });
        index += 1;
    })?;
    let mut collected = collector.finish();
    collected.stats.files = 1;
    Ok(collected)
}
