//! Key intervals. Every node owns one: the root all keys, a manager's kids
//! split its interval into adjacent pieces, a leaf one key. Half-open
//! `[start, stop)`; a node spawned to take kids has an empty one until
//! they arrive.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub start: u64,
    pub stop: u64,
}

impl Interval {
    /// Every key: the root's interval.
    pub const ALL: Interval = Interval {
        start: 0,
        stop: u64::MAX,
    };

    pub fn new(start: u64, stop: u64) -> Self {
        Interval { start, stop }
    }

    /// A leaf's interval: its one key.
    pub fn key(key: u64) -> Self {
        Interval::new(key, key + 1)
    }

    pub fn is_empty(&self) -> bool {
        self.start >= self.stop
    }

    pub fn contains(&self, other: &Interval) -> bool {
        self.start <= other.start && other.stop <= self.stop
    }

    /// The smallest interval covering both (they are adjacent in use).
    pub fn join(&self, other: &Interval) -> Interval {
        if self.is_empty() {
            return *other;
        }
        if other.is_empty() {
            return *self;
        }
        Interval::new(self.start.min(other.start), self.stop.max(other.stop))
    }
}

/// Checks the kids' intervals of a node of `height` owning `parent`:
/// leaves (under height 1) hold distinct keys inside it; managers' kids
/// are adjacent and cover it exactly (a kid still waiting for its kids has
/// an empty interval, which fits anywhere adjacent).
pub fn check_kids(parent: &Interval, height: u32, kids: &[Interval]) -> Result<(), String> {
    let mut kids = kids.to_vec();
    kids.sort_by_key(|k| (k.start, k.stop));
    if height <= 1 {
        for w in kids.windows(2) {
            if w[0].start == w[1].start {
                return Err(format!("two leaves hold key {}", w[0].start));
            }
        }
        if let Some(k) = kids.iter().find(|k| !parent.contains(k) || k.is_empty()) {
            return Err(format!("leaf {k:?} is not one key inside {parent:?}"));
        }
        return Ok(());
    }
    if kids.is_empty() {
        return Ok(());
    }
    let mut at = parent.start;
    for k in kids.iter().filter(|k| !k.is_empty()) {
        if k.start != at {
            return Err(format!(
                "kid interval {k:?} does not start where the previous stops ({at}) in {parent:?}"
            ));
        }
        at = k.stop;
    }
    let covered = kids.iter().any(|k| !k.is_empty());
    if covered && at != parent.stop {
        return Err(format!("kids stop at {at}, not at the end of {parent:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_kids_covering_the_parent_are_valid_and_gaps_are_not() {
        let p = Interval::new(10, 100);
        let ok = [Interval::new(50, 100), Interval::new(10, 50)];
        assert_eq!(check_kids(&p, 2, &ok), Ok(()));
        let gap = [Interval::new(10, 40), Interval::new(50, 100)];
        assert!(check_kids(&p, 2, &gap).is_err());
        let short = [Interval::new(10, 40), Interval::new(40, 90)];
        assert!(check_kids(&p, 2, &short).is_err());
        let pending = [Interval::new(10, 100), Interval::new(100, 100)];
        assert_eq!(check_kids(&p, 2, &pending), Ok(()));
    }

    #[test]
    fn leaves_hold_distinct_keys_inside_the_parent() {
        let p = Interval::new(10, 100);
        assert_eq!(
            check_kids(&p, 1, &[Interval::key(10), Interval::key(99)]),
            Ok(())
        );
        assert!(check_kids(&p, 1, &[Interval::key(20), Interval::key(20)]).is_err());
        assert!(check_kids(&p, 1, &[Interval::key(100)]).is_err());
    }

    #[test]
    fn join_ignores_empty_intervals() {
        let a = Interval::new(5, 9);
        assert_eq!(Interval::new(9, 9).join(&a), a);
        assert_eq!(a.join(&Interval::new(9, 20)), Interval::new(5, 20));
    }
}
