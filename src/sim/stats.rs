//! Message counters of a simulation: per node and message kind, optionally
//! per directed machine pair, and drops by reason.

use rustc_hash::FxHashMap;

use crate::net::{Counts, DropReason};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Tally {
    Sent,
    Delivered,
    Dropped,
    Duplicated,
}

pub struct SimStats {
    kinds: usize,
    /// Indexed by `node * kinds + kind`. Sends and drops count at the
    /// sender, deliveries at the receiver.
    nodes: Vec<Counts>,
    /// Per directed machine pair, when enabled.
    links: Option<FxHashMap<(u32, u32), Vec<Counts>>>,
    pub drops: [u64; DropReason::ALL.len()],
    pub events: u64,
    pub deliveries: u64,
    pub timers: u64,
}

impl SimStats {
    pub fn new(kinds: usize, link_stats: bool) -> Self {
        SimStats {
            kinds,
            nodes: Vec::new(),
            links: link_stats.then(FxHashMap::default),
            drops: [0; DropReason::ALL.len()],
            events: 0,
            deliveries: 0,
            timers: 0,
        }
    }

    pub fn add_node(&mut self) {
        self.nodes
            .extend(std::iter::repeat_n(Counts::default(), self.kinds));
    }

    #[inline(always)]
    pub(crate) fn tally(&mut self, node: u32, link: Option<(u32, u32)>, kind: usize, what: Tally) {
        let c = &mut self.nodes[node as usize * self.kinds + kind];
        bump(c, what);
        if let (Some(links), Some(link)) = (self.links.as_mut(), link) {
            let kinds = self.kinds;
            let per_kind = links
                .entry(link)
                .or_insert_with(|| vec![Counts::default(); kinds]);
            bump(&mut per_kind[kind], what);
        }
    }

    pub fn node(&self, node: u32) -> &[Counts] {
        let i = node as usize * self.kinds;
        &self.nodes[i..i + self.kinds]
    }

    /// Every directed machine pair that carried traffic, sorted.
    pub fn links(&self) -> Vec<((u32, u32), &[Counts])> {
        let mut v: Vec<_> = self
            .links
            .iter()
            .flatten()
            .map(|(k, c)| (*k, c.as_slice()))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// Totals per kind over all nodes.
    pub fn totals(&self) -> Vec<Counts> {
        let mut t = vec![Counts::default(); self.kinds];
        for chunk in self.nodes.chunks(self.kinds.max(1)) {
            for (acc, c) in t.iter_mut().zip(chunk) {
                acc.add(c);
            }
        }
        t
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }
}

#[inline(always)]
fn bump(c: &mut Counts, what: Tally) {
    match what {
        Tally::Sent => c.sent += 1,
        Tally::Delivered => c.delivered += 1,
        Tally::Dropped => c.dropped += 1,
        Tally::Duplicated => c.duplicated += 1,
    }
}
