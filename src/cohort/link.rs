//! Linkage: the same child at several sites (a referral) as one case.
//!
//! Patients of *different* sites that share one `system|value` of an
//! identifier system the user names (`imnm cohort --link-identifier`, the
//! registry config's `link_identifiers`) are one child, transitively
//! (union-find). Two patients of the same site are never merged: a group
//! that would hold two patients of one site is not linked at all (its
//! patients stay with their sites; [`Linked::conflicts`] names it for a
//! `link-conflict` warning). The rule does not depend on the order patients
//! or identifiers are read, so SQL over keyed hashes of the identifiers
//! (`imnm sql`) gives the same groups. Without named systems nothing is
//! linked.
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
    /// least one is a case (members in (site, id) order, groups in the order
    /// of their first member), and the groups left out because they would
    /// hold two patients of one site (likewise ordered).
    pub fn groups(&self) -> Linked {
        let mut parent: Vec<usize> = (0..self.members.len()).collect();
        for indices in self.by_key.values() {
            for pair in indices.windows(2) {
                let (a, b) = (find(&mut parent, pair[0]), find(&mut parent, pair[1]));
                parent[a.max(b)] = a.min(b);
            }
        }
        let mut components: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in 0..self.members.len() {
            components.entry(find(&mut parent, i)).or_default().push(i);
        }
        let mut out = Linked::default();
        for c in components.into_values() {
            if c.len() < 2 || !c.iter().any(|&i| self.members[i].1) {
                continue;
            }
            let mut m: Vec<Member> = c.into_iter().map(|i| self.members[i].0.clone()).collect();
            m.sort();
            let sites: BTreeSet<usize> = m.iter().map(|(s, _)| *s).collect();
            if sites.len() == m.len() {
                out.groups.push(m);
            } else if sites.len() > 1 {
                out.conflicts.push(m);
            }
        }
        out.groups.sort();
        out.conflicts.sort();
        out
    }
}

/// What [`Linkage::groups`] finds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Linked {
    /// The groups linked: one case each.
    pub groups: Vec<Vec<Member>>,
    /// The groups of several sites not linked because two of their patients are of one site.
    pub conflicts: Vec<Vec<Member>>,
}

/// The root of `i`'s set (union-find with path halving).
fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
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
        // Linked to each other only within site b: not a group, no conflict.
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
        assert_eq!(
            l.groups(),
            Linked {
                groups: expected,
                conflicts: vec![]
            }
        );
    }

    /// The same number at site a twice: the whole group a1, a2, b1, c1 is
    /// left out, whatever order the patients and identifiers come in.
    #[test]
    fn a_group_with_two_of_one_site_is_not_linked_in_any_order() {
        let patients: [(usize, &str, Vec<String>); 4] = [
            (0, "a1", id(NHS, "1")),
            (1, "b1", vec![format!("{MRN}|x"), format!("{NHS}|1")]),
            (2, "c1", id(MRN, "x")),
            (0, "a2", id(MRN, "x")),
        ];
        let conflict: Vec<Member> = [(0, "a1"), (0, "a2"), (1, "b1"), (2, "c1")]
            .iter()
            .map(|(s, i)| (*s, i.to_string()))
            .collect();
        for rotation in 0..patients.len() {
            let mut l = Linkage::new(&[NHS.to_string(), MRN.to_string()]);
            for k in 0..patients.len() {
                let (site, p, ids) = &patients[(k + rotation) % patients.len()];
                l.add(*site, p, ids, true);
            }
            let want = Linked {
                groups: vec![],
                conflicts: vec![conflict.clone()],
            };
            assert_eq!(l.groups(), want, "rotation {rotation}");
        }
    }

    #[test]
    fn no_systems_no_groups_and_a_group_needs_a_case() {
        let mut off = Linkage::new(&[]);
        off.add(0, "a1", &id(NHS, "1"), true);
        off.add(1, "b1", &id(NHS, "1"), true);
        assert!(!off.is_on());
        assert_eq!(off.groups(), Linked::default());
        let mut l = Linkage::new(&[NHS.to_string()]);
        l.add(0, "a1", &id(NHS, "1"), false);
        l.add(1, "b1", &id(NHS, "1"), false);
        assert_eq!(l.groups(), Linked::default(), "candidates are not linked");
    }
}
