//! CloudScope's forte numbers (federated integration). A Raft leader raises
//! an object's forte when it appends (`forte_on_append`) or commits
//! (`forte_on_commit`) a version; both are off by default, as in CloudScope,
//! and then every forte stays 0. Versions order by forte first, so a
//! version the strong group raised beats a longer eventual line; a replica
//! that learns a raised forte passes it down to the descendants of that
//! version it holds (CloudScope's "backpressure" from Raft to eventual).

use rustc_hash::FxHashMap;

use super::{VKey, Version};

/// What one replica knows for forte: the versions it has held (to find a
/// version's descendants) and the highest forte seen per object (a
/// leader's next one is one more).
#[derive(Default)]
pub(crate) struct Forte {
    on: bool,
    held: FxHashMap<VKey, Version>,
    top: Vec<u32>,
}

impl Forte {
    /// `on`: some leader may raise fortes; otherwise nothing is tracked.
    pub fn new(on: bool) -> Forte {
        Forte {
            on,
            ..Forte::default()
        }
    }

    #[inline]
    pub fn is_on(&self) -> bool {
        self.on
    }

    fn note(&mut self, v: &Version) {
        let i = v.key.object as usize;
        if i >= self.top.len() {
            self.top.resize(i + 1, 0);
        }
        self.top[i] = self.top[i].max(v.forte);
    }

    /// This replica now holds `v`.
    pub fn hold(&mut self, v: &Version) {
        if self.on {
            self.note(v);
            self.held.insert(v.key, *v);
        }
    }

    /// A leader raises `v`'s forte to one above the highest it has seen
    /// for the object (CloudScope's global counter, kept locally).
    pub fn raise(&mut self, v: &mut Version) {
        self.note(v);
        let top = &mut self.top[v.key.object as usize];
        *top += 1;
        v.forte = *top;
        self.held.insert(v.key, *v);
    }

    /// A remote version arrives while `current` is mine: what my current
    /// becomes before the two are compared. The same version with a higher
    /// forte takes it; a newer remote with a higher forte gives it to the
    /// versions I hold that descend from it, and the newest of them wins.
    pub fn reconcile(&mut self, current: Option<Version>, remote: &Version) -> Option<Version> {
        if !self.on {
            return current;
        }
        self.note(remote);
        let cur = current?;
        if cur.key == remote.key {
            if remote.forte <= cur.forte {
                return Some(cur);
            }
            let raised = Version {
                forte: remote.forte,
                ..cur
            };
            self.held.insert(raised.key, raised);
            return Some(raised);
        }
        if remote.forte <= cur.forte || !remote.newer_than(&cur) {
            return Some(cur);
        }
        let mut best = cur;
        let object = remote.key.object;
        let below: Vec<VKey> = self
            .held
            .keys()
            .filter(|k| k.object == object && self.descends(**k, remote.key))
            .copied()
            .collect();
        for k in below {
            let v = self.held.get_mut(&k).expect("listed above");
            v.forte = remote.forte;
            if v.key == best.key || v.newer_than(&best) {
                best = *v;
            }
        }
        Some(best)
    }

    /// Whether `k` descends from `ancestor` through versions I have held
    /// (numbers fall toward the root, so the walk ends).
    fn descends(&self, mut k: VKey, ancestor: VKey) -> bool {
        while let Some(p) = self.held.get(&k).and_then(|v| v.parent) {
            if p == ancestor {
                return true;
            }
            k = p;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(seq: u32, writer: u32, parent: Option<&Version>, forte: u32) -> Version {
        Version {
            key: VKey {
                seq,
                writer,
                object: 0,
            },
            parent: parent.map(|p| p.key),
            forte,
        }
    }

    #[test]
    fn simulated_forte_is_inherited_from_the_parent() {
        let root = v(1, 0, None, 3);
        assert_eq!(Version::next(0, Some(&root), 1).forte, 3);
        assert_eq!(Version::next(0, None, 1).forte, 0);
    }

    #[test]
    fn simulated_a_higher_forte_orders_first_even_with_a_lower_number() {
        let a = v(9, 1, None, 0);
        let b = v(2, 0, None, 1);
        assert!(b.newer_than(&a) && !a.newer_than(&b));
        // Equal forte: the key decides (last writer wins).
        assert!(a.newer_than(&v(8, 2, None, 0)));
    }

    #[test]
    fn simulated_a_leader_raises_above_the_highest_forte_it_saw() {
        let mut f = Forte::new(true);
        f.hold(&v(1, 1, None, 4));
        let mut w = v(2, 0, None, 0);
        f.raise(&mut w);
        assert_eq!(w.forte, 5);
        let mut x = v(3, 0, Some(&w), 5);
        f.raise(&mut x);
        assert_eq!(x.forte, 6);
    }

    #[test]
    fn simulated_the_same_version_takes_the_higher_forte() {
        let mut f = Forte::new(true);
        let mine = v(2, 1, None, 0);
        f.hold(&mine);
        let raised = Version { forte: 2, ..mine };
        assert_eq!(f.reconcile(Some(mine), &raised), Some(raised));
        // A lower forte changes nothing.
        assert_eq!(f.reconcile(Some(raised), &mine), Some(raised));
    }

    #[test]
    fn simulated_descendants_of_a_raised_version_take_its_forte() {
        // I hold r -> a -> b; the strong group raised r to forte 1.
        let mut f = Forte::new(true);
        let r = v(1, 0, None, 0);
        let a = v(2, 1, Some(&r), 0);
        let b = v(3, 1, Some(&a), 0);
        let other = v(4, 2, None, 0);
        for x in [r, a, b, other] {
            f.hold(&x);
        }
        let raised = Version { forte: 1, ..r };
        // My current `other` (no relation, number 4) loses to `b`, which
        // descends from r and now carries forte 1.
        let now = f.reconcile(Some(other), &raised).unwrap();
        assert_eq!((now.key, now.forte), (b.key, 1));
        // When my current descends from it, it stays current, raised.
        let mut g = Forte::new(true);
        for x in [r, a, b] {
            g.hold(&x);
        }
        let now = g.reconcile(Some(b), &raised).unwrap();
        assert_eq!((now.key, now.forte), (b.key, 1));
    }

    #[test]
    fn simulated_forte_off_changes_nothing() {
        let mut f = Forte::new(false);
        let cur = v(2, 1, None, 0);
        assert_eq!(f.reconcile(Some(cur), &v(1, 0, None, 5)), Some(cur));
    }
}
