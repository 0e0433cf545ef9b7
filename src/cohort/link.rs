//! Linkage: the same child at several sites (a referral) as one case.
//!
//! Patients of *different* sites that share one `system|value` of an
//! identifier system the user names (`imnm cohort --link-identifier`, the
//! registry config's `link_identifiers`) are one child, transitively
//! (union-find). Two patients of the same site are never merged: a union that
//! would put two of one site together is left out. Without named systems
//! nothing is linked.
//!
//! This module only groups patients; [`super::build`] builds a group's row
//! and [`super::run`] sets its members aside from their sites' cohorts.
//! Identifier values are read here and never leave it: no group, issue or
//! log carries one.

use std::collections::{BTreeMap, BTreeSet};

/// A source of a linked case's cell names its site before the resource:
/// `SITE:Type/id`. Gives the site (none for a plain `Type/id`) and `Type/id`.
pub fn split_source(source: &str) -> (Option<&str>, &str) {
    match source.split_once(':') {
        Some((site, rest)) => (Some(site), rest),
        None => (None, source),
    }
}

/// One patient of a site: the site's index (in the order sites are given) and the patient id.
pub type Member = (usize, String);

/// Patients to link: each site's patients that hold an identifier of a named
/// system, with those identifiers (`system|value`), and whether the patient
/// has a qualifying IMNM diagnosis.
#[derive(Debug, Default)]
pub struct Linkage {
    systems: Vec<String>,
    members: Vec<(Member, bool)>,
    by_key: BTreeMap<String, Vec<usize>>,
}

impl Linkage {
    /// Linkage by `systems` (canonical URIs); none: nothing is linked.
    pub fn new(systems: &[String]) -> Self {
        Self {
            systems: systems.to_vec(),
            ..Self::default()
        }
    }

    /// True when systems are named.
    pub fn is_on(&self) -> bool {
        !self.systems.is_empty()
    }

    /// Notes a patient's identifiers (those of other systems are ignored) and
    /// whether it is a case on its own.
    pub fn add(&mut self, site: usize, id: &str, identifiers: &[String], case: bool) {
        let named = identifiers.iter().filter(|i| {
            i.split_once('|')
                .is_some_and(|(system, value)| !value.is_empty() && self.systems.iter().any(|s| s == system))
        });
        let named: BTreeSet<&String> = named.collect();
        if named.is_empty() {
            return;
        }
        let index = self.members.len();
        self.members.push(((site, id.to_string()), case));
        for key in named {
            self.by_key.entry(key.clone()).or_default().push(index);
        }
    }

    /// The groups of two or more patients of different sites of which at
    /// least one is a case: members in (site, id) order, groups in the order
    /// of their first member.
    pub fn groups(&self) -> Vec<Vec<Member>> {
        let mut sets = Sets::new(self.members.iter().map(|((site, _), _)| *site));
        for indices in self.by_key.values() {
            for pair in indices.windows(2) {
                sets.union(pair[0], pair[1]);
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in 0..self.members.len() {
            groups.entry(sets.find(i)).or_default().push(i);
        }
        let mut out: Vec<Vec<Member>> = groups
            .into_values()
            .filter(|g| g.len() > 1 && g.iter().any(|&i| self.members[i].1))
            .map(|g| {
                let mut m: Vec<Member> = g.into_iter().map(|i| self.members[i].0.clone()).collect();
                m.sort();
                m
            })
            .collect();
        out.sort();
        out
    }
}

/// Union-find over patients, each set knowing its sites: a union of two sets
/// that share a site is refused.
struct Sets {
    parent: Vec<usize>,
    sites: Vec<BTreeSet<usize>>,
}

impl Sets {
    fn new(sites: impl Iterator<Item = usize>) -> Self {
        let sites: Vec<BTreeSet<usize>> = sites.map(|s| BTreeSet::from([s])).collect();
        Self {
            parent: (0..sites.len()).collect(),
            sites,
        }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a == b || !self.sites[a].is_disjoint(&self.sites[b]) {
            return;
        }
        let moved = std::mem::take(&mut self.sites[b]);
        self.sites[a].extend(moved);
        self.parent[b] = a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NHS: &str = "https://nhs.example/nhs-number";
    const MRN: &str = "https://mrn.example";

    fn id(system: &str, value: &str) -> Vec<String> {
        vec![format!("{system}|{value}")]
    }

    #[test]
    fn groups_are_transitive_across_sites_and_never_within_one() {
        let mut l = Linkage::new(&[NHS.to_string(), MRN.to_string()]);
        l.add(0, "a1", &id(NHS, "1"), true);
        l.add(1, "b1", &[format!("{NHS}|1"), format!("{MRN}|x")], false);
        l.add(2, "c1", &id(MRN, "x"), false);
        // Same number at site a again: never merged with a1.
        l.add(0, "a2", &id(NHS, "1"), true);
        // Linked to each other only within site b: not a group.
        l.add(1, "b2", &id(NHS, "2"), true);
        l.add(1, "b3", &id(NHS, "2"), true);
        // Another system than the named ones: ignored.
        l.add(0, "a4", &id("https://other", "9"), true);
        l.add(1, "b4", &id("https://other", "9"), true);
        let expected = vec![vec![
            (0, "a1".to_string()),
            (1, "b1".to_string()),
            (2, "c1".to_string()),
        ]];
        assert_eq!(l.groups(), expected);
    }

    #[test]
    fn no_systems_no_groups_and_a_group_needs_a_case() {
        let mut off = Linkage::new(&[]);
        off.add(0, "a1", &id(NHS, "1"), true);
        off.add(1, "b1", &id(NHS, "1"), true);
        assert!(!off.is_on());
        assert!(off.groups().is_empty());
        let mut l = Linkage::new(&[NHS.to_string()]);
        l.add(0, "a1", &id(NHS, "1"), false);
        l.add(1, "b1", &id(NHS, "1"), false);
        assert!(l.groups().is_empty(), "candidates are not linked");
    }
}
