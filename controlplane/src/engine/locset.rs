//! Locator sets (seed 001 section 2.1 notation): small sorted, de-duplicated vectors.

use std::net::Ipv6Addr;

/// A set of locators, kept sorted and without duplicates so two sets compare equal exactly
/// when they hold the same locators (the simulation compares both ends' views).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocSet(Vec<Ipv6Addr>);

impl LocSet {
    /// The empty set.
    pub fn new() -> LocSet {
        LocSet(Vec::new())
    }

    /// The set of the given locators.
    pub fn from_slice(locs: &[Ipv6Addr]) -> LocSet {
        let mut v = locs.to_vec();
        v.sort_unstable();
        v.dedup();
        LocSet(v)
    }

    /// `{aid}`.
    pub fn single(aid: Ipv6Addr) -> LocSet {
        LocSet(vec![aid])
    }

    /// Whether `l` is a member.
    pub fn contains(&self, l: &Ipv6Addr) -> bool {
        self.0.binary_search(l).is_ok()
    }

    /// Adds `l` (no-op when present).
    pub fn insert(&mut self, l: Ipv6Addr) {
        if let Err(i) = self.0.binary_search(&l) {
            self.0.insert(i, l);
        }
    }

    /// Removes `l` (no-op when absent).
    pub fn remove(&mut self, l: &Ipv6Addr) {
        if let Ok(i) = self.0.binary_search(l) {
            self.0.remove(i);
        }
    }

    /// The members, sorted.
    pub fn as_slice(&self) -> &[Ipv6Addr] {
        &self.0
    }

    /// The members as a vector.
    pub fn to_vec(&self) -> Vec<Ipv6Addr> {
        self.0.clone()
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Members of `self` also in `other`.
    pub fn intersection(&self, other: &LocSet) -> LocSet {
        LocSet(
            self.0
                .iter()
                .filter(|l| other.contains(l))
                .copied()
                .collect(),
        )
    }

    /// Whether every member of `self` is in `other`.
    pub fn is_subset(&self, other: &LocSet) -> bool {
        self.0.iter().all(|l| other.contains(l))
    }

    /// Ls = Lsl ∩ Lsr with the AID always added back: seed 001 sections 4.1 step 6, 7.4,
    /// 7.5, 7.6, 7.8 ("If this intersection does not contain AID ... it is an error and the
    /// AID is added to the set").
    pub fn intersect_with_aid(lsl: &LocSet, lsr: &LocSet, aid: Ipv6Addr) -> LocSet {
        let mut s = lsl.intersection(lsr);
        s.insert(aid);
        s
    }

    /// Iterates over the members.
    pub fn iter(&self) -> std::slice::Iter<'_, Ipv6Addr> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a LocSet {
    type Item = &'a Ipv6Addr;
    type IntoIter = std::slice::Iter<'a, Ipv6Addr>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<Ipv6Addr> for LocSet {
    fn from_iter<I: IntoIterator<Item = Ipv6Addr>>(iter: I) -> LocSet {
        let v: Vec<Ipv6Addr> = iter.into_iter().collect();
        LocSet::from_slice(&v)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn intersection_always_adds_aid() {
        let lsl = LocSet::from_slice(&[a("1::1"), a("2::1")]);
        let lsr = LocSet::from_slice(&[a("2::1"), a("3::1")]);
        let ls = LocSet::intersect_with_aid(&lsl, &lsr, a("9::9"));
        assert_eq!(ls.as_slice(), &[a("2::1"), a("9::9")]);
        // Empty intersection: only the AID.
        let ls = LocSet::intersect_with_aid(&lsl, &LocSet::new(), a("1::1"));
        assert_eq!(ls.as_slice(), &[a("1::1")]);
    }

    #[test]
    fn sorted_and_deduplicated() {
        let s = LocSet::from_slice(&[a("3::"), a("1::"), a("3::")]);
        assert_eq!(s.as_slice(), &[a("1::"), a("3::")]);
        let mut s = s;
        s.insert(a("2::"));
        s.insert(a("2::"));
        s.remove(&a("1::"));
        assert_eq!(s.as_slice(), &[a("2::"), a("3::")]);
    }
}
