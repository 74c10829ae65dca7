//! The shape of a link between two datasets (DistZero's LinkGraphManager
//! idea, as a pure planner): a layered graph of link nodes from the input
//! dataset's leaves (sources) to the output dataset's leaves (targets) in
//! which every link node has at most `max_senders` senders (fan-in) and
//! `max_receivers` receivers (fan-out), every source feeds exactly one
//! first-layer node and every source has exactly one path to every target.
//!
//! Construction: sources are gathered in groups of `max_senders` by a
//! reducing tree until at most `max_senders` *tops* are left; targets are
//! fed by a broadcasting tree whose nodes each send to at most
//! `max_receivers` below, up to at most `max_receivers` *heads*; every top
//! sends to every head. Paths are unique: a source climbs one chain to one
//! top, which reaches each head once, which reaches each target once.

use serde::Serialize;

/// Where a link node sends.
/// DistZero's link test shapes (input leaves, output leaves), from
/// test_link_trees.py.
pub const SHAPES: [(usize, usize); 9] = [
    (1, 1),
    (3, 1),
    (1, 3),
    (3, 3),
    (3, 16),
    (16, 3),
    (16, 16),
    (16, 1),
    (1, 16),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum To {
    Node(usize),
    Target(usize),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanNode {
    /// 0 for the nodes sources feed; receivers are one layer up.
    pub layer: usize,
    pub receivers: Vec<To>,
    /// Sources and nodes sending to this one.
    pub senders: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    pub max_senders: usize,
    pub max_receivers: usize,
    pub nodes: Vec<PlanNode>,
    /// Source `i` feeds node `sources[i]`.
    pub sources: Vec<usize>,
    pub n_targets: usize,
    /// Reducing levels, `up[0]` fed by sources; the last level is the tops.
    up: Vec<Vec<usize>>,
    /// Broadcasting levels, `down[0]` sends to targets; the last is the heads.
    down: Vec<Vec<usize>>,
}

/// What adding a source changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Added {
    /// The node the new source feeds.
    pub node: usize,
    /// Nodes created, each after the nodes it sends to.
    pub new_nodes: Vec<usize>,
    /// Nodes whose receivers changed (the old tops, when a level grew).
    pub rewired: Vec<usize>,
}

impl Plan {
    pub fn new(
        n_sources: usize,
        n_targets: usize,
        max_senders: usize,
        max_receivers: usize,
    ) -> Result<Plan, String> {
        if max_senders < 2 || max_receivers < 2 {
            return Err(format!(
                "a link needs max senders and max receivers of 2 or more (got {max_senders} and {max_receivers})"
            ));
        }
        let mut p = Plan {
            max_senders,
            max_receivers,
            nodes: Vec::new(),
            sources: Vec::new(),
            n_targets,
            up: Vec::new(),
            down: Vec::new(),
        };
        // Broadcasting side, from the targets up to the heads.
        let mut below: Vec<To> = (0..n_targets).map(To::Target).collect();
        loop {
            let level: Vec<usize> = if below.is_empty() {
                vec![p.node(Vec::new())]
            } else {
                below
                    .chunks(max_receivers)
                    .map(|c| p.node(c.to_vec()))
                    .collect()
            };
            let done = level.len() <= max_receivers;
            below = level.iter().map(|&i| To::Node(i)).collect();
            p.down.push(level);
            if done {
                break;
            }
        }
        // Reducing side, from the sources up to the tops.
        let mut count = n_sources.div_ceil(max_senders).max(1);
        loop {
            let level: Vec<usize> = (0..count).map(|_| p.node(Vec::new())).collect();
            p.up.push(level);
            if count <= max_senders {
                break;
            }
            count = count.div_ceil(max_senders);
        }
        for k in 0..p.up.len() - 1 {
            for (j, &n) in p.up[k].clone().iter().enumerate() {
                let to = p.up[k + 1][j / max_senders];
                p.connect(n, To::Node(to));
            }
        }
        for &top in &p.up[p.up.len() - 1].clone() {
            for &head in &p.down[p.down.len() - 1].clone() {
                p.connect(top, To::Node(head));
            }
        }
        for &n in &p.down.clone().concat() {
            for r in p.nodes[n].receivers.clone() {
                if let To::Node(m) = r {
                    p.nodes[m].senders += 1;
                }
            }
        }
        for i in 0..n_sources {
            let n = p.up[0][i / max_senders];
            p.nodes[n].senders += 1;
            p.sources.push(n);
        }
        p.set_layers();
        Ok(p)
    }

    fn node(&mut self, receivers: Vec<To>) -> usize {
        self.nodes.push(PlanNode {
            layer: 0,
            receivers,
            senders: 0,
        });
        self.nodes.len() - 1
    }

    fn connect(&mut self, from: usize, to: To) {
        self.nodes[from].receivers.push(to);
        if let To::Node(m) = to {
            self.nodes[m].senders += 1;
        }
    }

    fn set_layers(&mut self) {
        let ups = self.up.len();
        for (k, level) in self.up.iter().enumerate() {
            for &n in level {
                self.nodes[n].layer = k;
            }
        }
        for (k, level) in self.down.iter().enumerate() {
            for &n in level {
                self.nodes[n].layer = ups + self.down.len() - 1 - k;
            }
        }
    }

    /// Connects one more source: to a first-layer node with room, else to
    /// new nodes hung under the lowest level with room (a new top if the
    /// heads can take one more sender). A full link grows a level: a new
    /// node above the tops takes them all (they are `rewired` to it) and
    /// sends to the heads, which leaves room for more tops.
    pub fn add_source(&mut self) -> Added {
        let has_room = |p: &Plan, n: usize| p.nodes[n].senders < p.max_senders;
        let lowest = (0..self.up.len()).find_map(|k| {
            self.up[k]
                .iter()
                .copied()
                .find(|&n| has_room(self, n))
                .map(|n| (k, n))
        });
        let mut new_nodes = Vec::new();
        let mut rewired = Vec::new();
        let heads = self.down[self.down.len() - 1].clone();
        let (mut k, mut at) = match lowest {
            Some(found) => found,
            None => {
                if self.up[self.up.len() - 1].len() >= self.max_senders {
                    let tops = self.up[self.up.len() - 1].clone();
                    let above = self.node(Vec::new());
                    for &t in &tops {
                        for r in std::mem::take(&mut self.nodes[t].receivers) {
                            if let To::Node(m) = r {
                                self.nodes[m].senders -= 1;
                            }
                        }
                        self.connect(t, To::Node(above));
                    }
                    for &h in &heads {
                        self.connect(above, To::Node(h));
                    }
                    self.up.push(vec![above]);
                    new_nodes.push(above);
                    rewired = tops;
                }
                let top = self.node(Vec::new());
                for &h in &heads {
                    self.connect(top, To::Node(h));
                }
                let k = self.up.len() - 1;
                self.up[k].push(top);
                new_nodes.push(top);
                (k, top)
            }
        };
        while k > 0 {
            let n = self.node(Vec::new());
            self.connect(n, To::Node(at));
            k -= 1;
            self.up[k].push(n);
            new_nodes.push(n);
            at = n;
        }
        self.nodes[at].senders += 1;
        self.sources.push(at);
        self.set_layers();
        Added {
            node: at,
            new_nodes,
            rewired,
        }
    }

    /// Node indices by layer, first layer first.
    pub fn layers(&self) -> Vec<Vec<usize>> {
        let mut layers = vec![Vec::new(); self.up.len() + self.down.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            layers[n.layer].push(i);
        }
        layers
    }

    /// The limits hold and every source has exactly one path to every
    /// target (and none elsewhere).
    pub fn check(&self) -> Result<(), String> {
        for (i, n) in self.nodes.iter().enumerate() {
            if n.senders > self.max_senders || n.receivers.len() > self.max_receivers {
                return Err(format!(
                    "node {i} has {} senders and {} receivers (limits {} and {})",
                    n.senders,
                    n.receivers.len(),
                    self.max_senders,
                    self.max_receivers
                ));
            }
        }
        let mut memo = vec![None; self.nodes.len()];
        for (s, &n) in self.sources.iter().enumerate() {
            if self.nodes[n].layer != 0 {
                return Err(format!("source {s} feeds node {n}, not in the first layer"));
            }
            let paths = paths_to_targets(self, n, &mut memo);
            if paths.len() != self.n_targets || paths.iter().any(|&c| c != 1) {
                return Err(format!("source {s}: paths to the targets {paths:?}"));
            }
        }
        Ok(())
    }
}

/// How many paths lead from node `n` to each target.
fn paths_to_targets(p: &Plan, n: usize, memo: &mut Vec<Option<Vec<u64>>>) -> Vec<u64> {
    if let Some(v) = &memo[n] {
        return v.clone();
    }
    let mut v = vec![0; p.n_targets];
    for r in &p.nodes[n].receivers {
        match *r {
            To::Target(t) => v[t] += 1,
            To::Node(m) => {
                for (t, c) in paths_to_targets(p, m, memo).into_iter().enumerate() {
                    v[t] += c;
                }
            }
        }
    }
    memo[n] = Some(v.clone());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distzero_120_by_110_with_limits_10_has_four_layers() {
        let p = Plan::new(120, 110, 10, 10).unwrap();
        p.check().unwrap();
        assert_eq!(p.layers().len(), 4, "{:?}", p.layers());
        assert!(p.nodes.iter().any(|n| n.senders == 10));
        assert!(p.nodes.iter().any(|n| n.receivers.len() == 10));
    }

    #[test]
    fn the_nine_shapes_hold_their_invariants() {
        for (n, m) in SHAPES {
            for lim in [2, 3, 4, 200] {
                let p = Plan::new(n, m, lim, lim).unwrap();
                p.check()
                    .unwrap_or_else(|e| panic!("{n}x{m} limit {lim}: {e}"));
                assert_eq!(p.sources.len(), n);
            }
        }
        assert_eq!(Plan::new(16, 16, 3, 3).unwrap().layers().len(), 4);
        assert_eq!(Plan::new(1, 1, 200, 200).unwrap().layers().len(), 2);
    }

    #[test]
    fn sources_added_later_keep_the_invariants_and_grow_levels() {
        let mut p = Plan::new(1, 7, 3, 3).unwrap();
        let mut grew = 0;
        for added in 1..=100 {
            let before = p.layers().len();
            let a = p.add_source();
            p.check()
                .unwrap_or_else(|e| panic!("after {added} added: {e}"));
            assert_eq!(p.nodes[a.node].layer, 0);
            for (pos, &n) in a.new_nodes.iter().enumerate() {
                for r in &p.nodes[n].receivers {
                    if let To::Node(m) = r {
                        assert!(
                            !a.new_nodes[pos..].contains(m),
                            "a new node sends to one created after it"
                        );
                    }
                }
            }
            if !a.rewired.is_empty() {
                grew += 1;
                assert_eq!(p.layers().len(), before + 1);
            }
        }
        // 1, 2, 3, 4 levels of 3 hold 9, 27, 81, 243 sources: grown at
        // the 10th, 28th and 82nd.
        assert_eq!(grew, 3);
        assert_eq!(p.sources.len(), 101);
    }

    #[test]
    fn empty_sides_and_bad_limits() {
        Plan::new(0, 0, 10, 10).unwrap().check().unwrap();
        Plan::new(0, 5, 10, 10).unwrap().check().unwrap();
        let mut p = Plan::new(0, 5, 10, 10).unwrap();
        p.add_source();
        p.check().unwrap();
        assert!(Plan::new(3, 3, 1, 10).is_err());
        assert!(Plan::new(3, 3, 10, 0).is_err());
    }
}
