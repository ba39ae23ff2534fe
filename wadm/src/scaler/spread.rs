//! The arithmetic every placement scaler shares: splitting `instances` over spreads by
//! weight, finding the hosts a spread may use, and matching spread slots to the hosts that
//! already run something so that a converged lattice stays put.
//!
//! # Splitting by weight (wadm's rule)
//!
//! [`split_by_weight`] reproduces `compute_spread` of wadm 0.21's spreadscaler
//! (`crates/wadm/src/scaler/spreadscaler/mod.rs`):
//!
//! 1. order the spreads by weight, heaviest first (a stable sort: equal weights keep manifest
//!    order);
//! 2. each spread gets `floor(instances × weight / total_weight)`;
//! 3. the instances lost to rounding go one each to the spreads in that order, heaviest first.
//!
//! So 10 at 40/40/20 gives 4/4/2, 7 at 100/100 gives 4/3, and 103 at 42/3/37/384 gives
//! 10/0/8/85, and the counts always sum to `instances`. Where wadm would divide by zero (every
//! weight 0) the spreads count as equally weighted.
//!
//! # Slots and matching
//!
//! Inside a spread, placement is even: with `count` instances over `k` eligible hosts every
//! host gets `count / k` and `count % k` hosts get one more (the spread's "extra slots"; for a
//! provider every slot is an extra, one per host). Which hosts get the extras is where
//! stability comes from: hosts that already run more than their base are offered first.
//! When spreads overlap (a host matches several), handing those hosts out greedily spread by
//! spread could give a host's surplus to the wrong spread and move an instance for nothing;
//! [`Matcher`] instead finds a maximum matching of slots to surplus (augmenting paths, as in
//! bipartite matching), so whenever the observed placement is one the scaler could have
//! produced, it is reproduced exactly and no command follows.

use std::collections::BTreeSet;

use crate::model::{Requirements, Spread};

/// Indices of `spreads` heaviest first, equal weights in manifest order: the order wadm
/// hands out rounding remainders in, and the order the scalers place spreads in.
pub(crate) fn weight_order(spreads: &[Spread]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..spreads.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(spreads[i].weight));
    order
}

/// Splits `instances` over `spreads` by weight, exactly like wadm (see the module docs).
/// Returns one count per spread, in the order of `spreads`; the counts sum to `instances`
/// (an empty `spreads` gives an empty vector).
pub fn split_by_weight(instances: u32, spreads: &[Spread]) -> Vec<u32> {
    if spreads.is_empty() {
        return Vec::new();
    }
    let total: u64 = spreads.iter().map(|s| u64::from(s.weight)).sum();
    let weight = |s: &Spread| if total == 0 { 1 } else { u64::from(s.weight) };
    let total = if total == 0 {
        spreads.len() as u64
    } else {
        total
    };
    let mut counts: Vec<u32> = spreads
        .iter()
        .map(|s| {
            // floor(instances × weight / total) ≤ instances, so it fits back into a u32.
            u32::try_from(u64::from(instances) * weight(s) / total).unwrap_or(instances)
        })
        .collect();
    let mut left = instances.saturating_sub(counts.iter().sum());
    // Floors lose less than one instance per spread, so one round suffices; loop anyway.
    while left > 0 {
        for i in weight_order(spreads) {
            if left == 0 {
                break;
            }
            counts[i] += 1;
            left -= 1;
        }
    }
    counts
}

/// `k=v, k2=v2`, for messages.
pub(crate) fn describe(requirements: &Requirements) -> String {
    requirements
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a spread with work to do has no host: for the plan's problems.
pub(crate) fn no_host_problem(
    what: &str,
    spread: Option<&Spread>,
    matching: usize,
    blocked_note: &str,
) -> String {
    let spread_name = spread.map_or_else(String::new, |s| format!("spread `{}` of ", s.name));
    let needs = match spread {
        Some(s) if !s.requirements.is_empty() => {
            format!("hosts labelled {}", describe(&s.requirements))
        }
        _ => "a live host".to_string(),
    };
    if matching == 0 {
        format!("{spread_name}{what} needs {needs}; none are live")
    } else {
        format!("{spread_name}{what} needs {needs}; the {matching} live one(s) {blocked_note}")
    }
}

/// Maximum matching of spread slots to host capacity (see the module docs).
///
/// Spread `s` may take each host of `candidates[s]` at most once; host `h` may be taken by at
/// most `capacity[h]` spreads in total. [`Matcher::grow`] adds slots by augmenting paths: a
/// new slot may move another spread's slot to a different host, but a host that was taken
/// stays taken, so calling `grow` first with "what already runs" capacities and then with
/// wider ones keeps every running host in use.
pub(crate) struct Matcher {
    candidates: Vec<Vec<usize>>,
    /// Spreads holding a slot on each host.
    users: Vec<Vec<usize>>,
    chosen: Vec<BTreeSet<usize>>,
    seen: Vec<u32>,
    stamp: u32,
}

impl Matcher {
    /// A matcher over `hosts` hosts where spread `s` may use `candidates[s]`.
    pub(crate) fn new(hosts: usize, candidates: Vec<Vec<usize>>) -> Self {
        let spreads = candidates.len();
        Matcher {
            candidates,
            users: vec![Vec::new(); hosts],
            chosen: vec![BTreeSet::new(); spreads],
            seen: vec![0; hosts],
            stamp: 0,
        }
    }

    /// Gives spread `s` up to `want` more slots within `capacity`; returns how many it got.
    pub(crate) fn grow(&mut self, s: usize, want: usize, capacity: &[u32]) -> usize {
        let mut got = 0;
        while got < want {
            self.stamp = self.stamp.wrapping_add(1);
            if self.stamp == 0 {
                self.seen.fill(0);
                self.stamp = 1;
            }
            if !self.augment(s, capacity) {
                break;
            }
            got += 1;
        }
        got
    }

    fn augment(&mut self, s: usize, capacity: &[u32]) -> bool {
        for i in 0..self.candidates[s].len() {
            let h = self.candidates[s][i];
            if capacity[h] == 0 || self.seen[h] == self.stamp || self.chosen[s].contains(&h) {
                continue;
            }
            self.seen[h] = self.stamp;
            if (self.users[h].len() as u64) < u64::from(capacity[h]) {
                self.take(s, h);
                return true;
            }
            // Full: try to move one of its holders elsewhere, then take its place.
            let holders = self.users[h].clone();
            for other in holders {
                if other != s && self.augment(other, capacity) {
                    self.users[h].retain(|&u| u != other);
                    self.chosen[other].remove(&h);
                    self.take(s, h);
                    return true;
                }
            }
        }
        false
    }

    fn take(&mut self, s: usize, h: usize) {
        self.users[h].push(s);
        self.chosen[s].insert(h);
    }

    /// The hosts spread `s` holds a slot on.
    pub(crate) fn chosen(&self, s: usize) -> &BTreeSet<usize> {
        &self.chosen[s]
    }

    /// Whether any spread holds a slot on host `h`.
    pub(crate) fn is_taken(&self, h: usize) -> bool {
        !self.users[h].is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spreads(weights: &[u32]) -> Vec<Spread> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Spread {
                name: format!("s{i}"),
                requirements: Requirements::new(),
                weight,
            })
            .collect()
    }

    #[test]
    fn splits_like_wadm() {
        assert_eq!(split_by_weight(10, &spreads(&[40, 40, 20])), [4, 4, 2]);
        assert_eq!(split_by_weight(1, &spreads(&[100])), [1]);
        assert_eq!(split_by_weight(10, &spreads(&[100, 100])), [5, 5]);
        assert_eq!(split_by_weight(7, &spreads(&[30, 40])), [3, 4]);
        assert_eq!(split_by_weight(7, &spreads(&[100, 100])), [4, 3]);
        // wadm's "complex" case: remainders go heaviest first, not to the largest fraction.
        assert_eq!(
            split_by_weight(103, &spreads(&[42, 3, 37, 384])),
            [10, 0, 8, 85]
        );
        assert_eq!(split_by_weight(5, &spreads(&[0, 0])), [3, 2]);
        assert!(split_by_weight(5, &[]).is_empty());
    }

    #[test]
    fn split_always_sums_to_instances() {
        for instances in 0..60 {
            for weights in [
                &[1, 1, 1][..],
                &[7, 3],
                &[50, 25, 25, 1],
                &[0, 9],
                &[u32::MAX, 1],
            ] {
                let counts = split_by_weight(instances, &spreads(weights));
                assert_eq!(counts.iter().sum::<u32>(), instances, "{weights:?}");
            }
        }
    }

    #[test]
    fn matcher_moves_a_slot_to_free_a_shared_host() {
        // Spread 0 may use hosts 0 and 1, spread 1 only host 0; both run once already.
        let mut m = Matcher::new(2, vec![vec![0, 1], vec![0]]);
        let capacity = [1, 1];
        assert_eq!(m.grow(0, 1, &capacity), 1);
        assert_eq!(m.chosen(0), &BTreeSet::from([0]));
        assert_eq!(m.grow(1, 1, &capacity), 1);
        assert_eq!(m.chosen(0), &BTreeSet::from([1]));
        assert_eq!(m.chosen(1), &BTreeSet::from([0]));
        assert!(m.is_taken(0) && m.is_taken(1));
    }
}
