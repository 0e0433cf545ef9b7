//! Reading a sync store (see [`crate::store`]) into [`Collected`] data, one
//! per site: every resource it holds goes through the site's [`Collector`],
//! as a file's would, with the same memory limit.

use std::sync::Arc;

use super::{Collector, ReadOptions};
use crate::collect::Collected;
use crate::fhir::source::{self, Item, Location};
use crate::mapping::MappingSet;
use crate::store::StoreLocation;

/// Opens the sync store at `at` and reads each of its sites as
/// [`collect_store_sites`] does. A missing file is an input error (opening
/// would create an empty store).
pub fn collect_store_at(at: &StoreLocation, mappings: &MappingSet) -> crate::run_error::Result<Vec<Collected>> {
    collect_store_at_with(at, mappings, ReadOptions::default())
}

/// As [`collect_store_at`], on `opts.threads` threads (any number gives the
/// same result) with `opts`' block size and memory limit.
pub fn collect_store_at_with(
    at: &StoreLocation,
    mappings: &MappingSet,
    opts: ReadOptions,
) -> crate::run_error::Result<Vec<Collected>> {
    read_store_at(at, |store| {
        let sites = store.sites()?;
        let label = at.redacted();
        let each = |site: &String| collect_store_site_with(store, site, &label, mappings, opts);
        sites.iter().map(each).collect()
    })
}

/// Opens the existing sync store at `at` and reads it with `read`; both
/// failures name the store (a missing file is an input error: opening would
/// create an empty store).
pub(super) fn read_store_at<T>(
    at: &StoreLocation,
    read: impl FnOnce(&crate::store::Store) -> Result<T, crate::store::StoreError>,
) -> crate::run_error::Result<T> {
    if let StoreLocation::Path(path) = at {
        if !path.is_file() {
            return Err(crate::run_error::RunError::Input {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no store file there"),
            });
        }
    }
    let err = |source| crate::run_error::RunError::Store {
        store: at.clone(),
        source,
    };
    let store = at.open().map_err(err)?;
    read(&store).map_err(err)
}

/// Reads each site of a sync store (see [`crate::store`]) on its own, in site
/// order: resource ids only have to be unique within a site.
pub fn collect_store_sites(
    store: &crate::store::Store,
    label: &str,
    mappings: &MappingSet,
) -> Result<Vec<Collected>, crate::store::StoreError> {
    let sites = store.sites()?;
    let each = |site: &String| collect_store_site_with(store, site, label, mappings, ReadOptions::default());
    sites.iter().map(each).collect()
}

/// Reads the resources of a store holding one site ([`collect_store_site`]);
/// a store of several sites is refused (its ids may collide), with the sites named.
pub fn collect_store(
    store: &crate::store::Store,
    label: &str,
    mappings: &MappingSet,
) -> Result<Collected, crate::store::StoreError> {
    let sites = store.sites()?;
    match sites.as_slice() {
        [] => collect_store_site(store, crate::collect::LOCAL_SITE, label, mappings),
        [one] => collect_store_site(store, one, label, mappings),
        _ => Err(crate::store::StoreError::SeveralSites { sites }),
    }
}

/// Reads every resource of `site` held in a sync store on all available
/// cores ([`collect_store_site_with`]).
pub fn collect_store_site(
    store: &crate::store::Store,
    site: &str,
    label: &str,
    mappings: &MappingSet,
) -> Result<Collected, crate::store::StoreError> {
    collect_store_site_with(store, site, label, mappings, ReadOptions::default())
}

/// Reads every resource of `site` held in a sync store. Issue locations are
/// `LABEL#entry[N]`, N the row's position in the site (ordered by type, id).
/// On more than one thread the rows are scanned in blocks by the others
/// while this one reads them (`parallel::read_rows`): the same result.
pub fn collect_store_site_with(
    store: &crate::store::Store,
    site: &str,
    label: &str,
    mappings: &MappingSet,
    opts: ReadOptions,
) -> Result<Collected, crate::store::StoreError> {
    // Memory as flat as a file's reading: texts and facts past the limit go to
    // temporary files (held in memory, they cost more in page faults than the spill does).
    let mut collector = Collector::new(mappings)
        .spill_after(opts.spill_after)
        .threads(opts.threads);
    if !opts.prefilter {
        collector = collector.without_prefilter();
    }
    let file: Arc<str> = label.into();
    if opts.threads > 1 {
        let chunk = opts.chunk_bytes.max(1);
        super::parallel::read_rows(&mut collector, opts.threads, chunk, &file, |f| {
            store.for_each_json_in(site, |json| f(json))
        })?;
    } else {
        let mut index = 0usize;
        store.for_each_json_in(site, |json| {
            collector.accept(Item::Resource {
                location: Location {
                    file: file.clone(),
                    pos: source::Pos::Entry(index),
                },
                text: json,
                full_url: None,
            });
            index += 1;
        })?;
    }
    let mut collected = collector.finish();
    collected.stats.files = 1;
    collected.site = site.to_string();
    Ok(collected)
}
