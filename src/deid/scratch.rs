//! What de-identifying many resources on one thread keeps between them: the
//! rules fired, and the pseudonyms, date offsets and wordings already
//! computed (every resource of a patient references the patient, and the
//! same lab names recur), so each is computed once a stretch of resources
//! instead of once a resource. Bounded: a memo past `MEMO_MAX` entries
//! starts over.

use std::collections::HashMap;

use super::transform::RulesFired;
use super::SiteKey;

/// Entries a memo holds at most before it starts over.
const MEMO_MAX: usize = 16_384;

/// Per-thread state of de-identification (see the module docs).
#[derive(Debug, Default)]
pub struct Scratch {
    /// How often each rule fired.
    pub fired: RulesFired,
    pseudonyms: Memo<String>,
    offsets: Memo<i64>,
    wordings: Memo<Option<String>>,
}

impl Scratch {
    /// The pseudonym of `Type/id` ([`SiteKey::pseudonym`]).
    pub(crate) fn pseudonym(&mut self, key: &SiteKey, resource_type: &str, id: &str) -> String {
        self.pseudonyms
            .get_or(resource_type, id, || key.pseudonym(resource_type, id))
    }

    /// The date offset of a patient ([`SiteKey::offset_days`]).
    pub(crate) fn offset_days(&mut self, key: &SiteKey, patient_id: &str, max_days: u32) -> i64 {
        self.offsets
            .get_or("", patient_id, || key.offset_days(patient_id, max_days))
    }

    /// The wording `make` gives for `text`.
    pub(crate) fn wording(&mut self, text: &str, make: impl FnOnce(&str) -> Option<String>) -> Option<String> {
        self.wordings.get_or("", text, || make(text))
    }
}

/// Values by a pair of strings.
#[derive(Debug)]
struct Memo<V> {
    map: HashMap<String, HashMap<String, V>>,
    len: usize,
}

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            len: 0,
        }
    }
}

impl<V: Clone> Memo<V> {
    fn get_or(&mut self, a: &str, b: &str, make: impl FnOnce() -> V) -> V {
        if let Some(v) = self.map.get(a).and_then(|m| m.get(b)) {
            return v.clone();
        }
        let v = make();
        if self.len >= MEMO_MAX {
            self.map.clear();
            self.len = 0;
        }
        self.map
            .entry(a.to_string())
            .or_default()
            .insert(b.to_string(), v.clone());
        self.len += 1;
        v
    }
}
