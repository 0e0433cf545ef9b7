//! Which resources a bundle takes: the cases' Patients, the resources behind
//! their cohort cells and the Medications those reference, in key order,
//! without holding their keys: the keys behind the cells and the places of
//! the run's texts are each sorted on disk past a budget (`sorted`), joined
//! in one pass, and the selection is written to a temporary file that the
//! de-identification reads a stretch at a time. Memory holds the budget, the
//! Medications named and the fullUrls of the input (`links`), not a key per
//! resource.
//!
//! This module owns the selection only; what is done to the resources is
//! `bundle`'s and `deid`'s.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::collect::texts::Place;
use crate::collect::texts::{place_of, PlaceRec};
use crate::collect::Texts;
use crate::deid::transform::Links;
use crate::domain::SourceRef;
use crate::fhir::reference::{self, Ref};
use crate::sorted::Sorter;
use crate::spill::Log;

/// The resources a bundle takes, in key order, on disk.
pub(super) struct Selection {
    /// `(key, place)` records, a key once (its later text), derived keys left out.
    chosen: Log,
    /// The fullUrls of the resources taken: references to them are resolved.
    pub(super) links: Links,
}

impl Selection {
    /// Calls `f` with the chosen resources, `n` at a time, in key order.
    pub(super) fn try_for_each_stretch(
        &self,
        n: usize,
        mut f: impl FnMut(&[(SourceRef, Place)]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut reader = self.chosen.reader::<(SourceRef, PlaceRec)>()?;
        let mut stretch = Vec::with_capacity(n);
        while let Some((key, place)) = reader.next()? {
            stretch.push((key, place_of(place)));
            if stretch.len() >= n.max(1) {
                f(&stretch)?;
                stretch.clear();
            }
        }
        if !stretch.is_empty() {
            f(&stretch)?;
        }
        Ok(())
    }
}

/// Selects the resources of `cohort` among `sources` (see the module doc);
/// `derived` are made by the export (their stored texts are not taken, their
/// keys are selected for `links`). At most `budget` records of each sort are
/// held. Reading a temporary file back can fail.
pub(super) fn select(
    cohort: &crate::cohort::Cohort,
    sources: &mut Texts,
    aliases: &Links,
    derived: &BTreeMap<SourceRef, String>,
    budget: usize,
) -> std::io::Result<Selection> {
    let wanted = wanted_keys(cohort, budget)?;
    sources.flush()?;
    let places = sources.sorted_places(budget)?;
    // The join: the wanted texts, and every Medication (taken if a wanted request names it).
    let mut joined = Log::default();
    let mut meds: BTreeSet<SourceRef> = BTreeSet::new();
    let mut keys = wanted.iter()?;
    let mut next_key = keys.next()?;
    let mut all = places.iter()?;
    while let Some((key, _, place)) = all.next()? {
        while next_key.as_ref().is_some_and(|k| *k < key) {
            next_key = keys.next()?;
        }
        let is_wanted = next_key.as_ref() == Some(&key);
        if is_wanted && key.resource_type.starts_with("Medication") {
            meds.extend(medication_of(&sources.read(place_of(place))?, aliases));
        }
        if is_wanted || key.resource_type == "Medication" {
            joined.push(&(key, place, is_wanted))?;
        }
    }
    joined.flush()?;
    choose(&joined, &meds, aliases, derived)
}

/// The cases' Patients and every resource a provenance record names, sorted (repeats kept).
fn wanted_keys(cohort: &crate::cohort::Cohort, budget: usize) -> std::io::Result<crate::sorted::Sorted<SourceRef>> {
    let mut wanted: Sorter<SourceRef> = Sorter::new(budget);
    cohort
        .rows
        .try_for_each(|r| wanted.push(SourceRef::new("Patient", &r.patient_id)))?;
    cohort.provenance.try_for_each(|p| {
        for s in &p.sources {
            if let Some((t, id)) = crate::cohort::resource_of(s).split_once('/') {
                wanted.push(SourceRef::new(t, id))?;
            }
        }
        Ok::<_, std::io::Error>(())
    })?;
    wanted.finish()
}

/// The joined records kept (wanted, or a Medication in `meds`), a key
/// stored twice once (its later text), derived keys left out; and the
/// fullUrls of what is selected (kept records and derived keys).
fn choose(
    joined: &Log,
    meds: &BTreeSet<SourceRef>,
    aliases: &Links,
    derived: &BTreeMap<SourceRef, String>,
) -> std::io::Result<Selection> {
    let targets: BTreeSet<&SourceRef> = aliases.values().collect();
    let mut linked: BTreeSet<SourceRef> = BTreeSet::new();
    let mut chosen = Log::default();
    let mut last: Option<(SourceRef, PlaceRec)> = None;
    let take = |chosen: &mut Log, held: Option<(SourceRef, PlaceRec)>, next: Option<&SourceRef>| match held {
        Some((key, place)) if next != Some(&key) && !derived.contains_key(&key) => chosen.push(&(key, place)),
        _ => Ok(()),
    };
    let mut reader = joined.reader::<(SourceRef, PlaceRec, bool)>()?;
    while let Some((key, place, is_wanted)) = reader.next()? {
        if !is_wanted && !meds.contains(&key) {
            continue;
        }
        if targets.contains(&key) {
            linked.insert(key.clone());
        }
        take(&mut chosen, last.take(), Some(&key))?;
        last = Some((key, place));
    }
    take(&mut chosen, last, None)?;
    chosen.flush()?;
    linked.extend(derived.keys().filter(|k| targets.contains(k)).cloned());
    let links = aliases
        .iter()
        .filter(|(_, target)| linked.contains(*target))
        .map(|(url, target)| (url.clone(), target.clone()))
        .collect();
    Ok(Selection { chosen, links })
}

fn medication_of(raw: &str, aliases: &Links) -> Option<SourceRef> {
    let v: Value = serde_json::from_str(raw).ok()?;
    let target = match reference::parse(v["medicationReference"]["reference"].as_str()?) {
        Ref::Typed { resource_type, id } => SourceRef::new(resource_type, id),
        Ref::Opaque(url) => aliases.get(&url)?.clone(),
        Ref::Contained(_) => return None,
    };
    (target.resource_type == "Medication").then_some(target)
}
