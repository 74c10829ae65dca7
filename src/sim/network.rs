//! The simulated network: per directed link a latency model, an up/down
//! state and message faults; per machine isolation and outgoing faults.
//!
//! Pairs of machines without an explicit link use the default link (or,
//! without a full mesh, cannot talk at all). Explicit links draw from their
//! own random stream; default links from the sending machine's stream, so a
//! 100,000-machine mesh costs nothing per pair. What becomes of a message
//! on a link that is up is [`crate::net::decide`]'s call, as on real machines.

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::net::{
    CompiledFaults, DropReason, Latency, LinkSpec, MessageFaults, OneShotDrop, Sampler, Verdict,
    decide,
};
use crate::rng::DetRng;

struct Link {
    /// `None`: the machines are not connected (no link in a non-mesh).
    latency: Option<Sampler>,
    faults: Option<CompiledFaults>,
    up: bool,
    rng: Option<DetRng>,
}

/// Up to this many machines the link index is a table (4 MiB at most).
const DENSE_MACHINES: usize = 1024;

pub struct Network {
    kinds: &'static [&'static str],
    seed: u64,
    local: Sampler,
    default: Option<Sampler>,
    global_faults: Option<CompiledFaults>,
    index: FxHashMap<(u32, u32), usize>,
    /// `index` as a table by `from * machines + to` (`u32::MAX`: no explicit
    /// link), rebuilt when stale; hashing the pair on every message cost
    /// as much as the rest of routing. Only up to [`DENSE_MACHINES`].
    dense: Vec<u32>,
    dense_fresh: bool,
    links: Vec<Link>,
    isolated: Vec<bool>,
    machine_faults: Vec<Option<Box<CompiledFaults>>>,
    /// True once any link went down or any machine was isolated; lets the
    /// common case skip the checks at delivery.
    partitions: bool,
    /// No explicit links, faults or partitions: every message takes the
    /// default (or local) latency.
    plain: bool,
    /// Explicit links, all up, none with faults, and no other faults or
    /// isolation: a message only needs its link's latency.
    plain_links: bool,
    /// Explicit links with message faults of their own.
    faulty_links: usize,
    /// Armed "drop this message" rules, by node ids; almost always none.
    one_shots: Vec<OneShotDrop>,
}

impl Network {
    /// `default`: the latency between machines without an explicit link,
    /// or `None` when such machines cannot talk.
    pub fn new(
        kinds: &'static [&'static str],
        seed: u64,
        local: Latency,
        default: Option<Latency>,
    ) -> Self {
        Network {
            kinds,
            seed,
            local: local.sampler(),
            default: default.as_ref().map(Latency::sampler),
            global_faults: None,
            index: FxHashMap::default(),
            dense: Vec::new(),
            dense_fresh: false,
            links: Vec::new(),
            isolated: Vec::new(),
            machine_faults: Vec::new(),
            partitions: false,
            plain: true,
            plain_links: false,
            faulty_links: 0,
            one_shots: Vec::new(),
        }
    }

    /// Arms a one-shot rule: the `nth` message of `kind` from node `from`
    /// to node `to` routed from now on is dropped.
    pub fn drop_one(&mut self, from: u32, to: u32, kind: &str, nth: u64) -> Result<()> {
        let rule = OneShotDrop::new(from, to, kind, nth, self.kinds)?;
        self.one_shots.push(rule);
        self.refresh_plain();
        Ok(())
    }

    /// Whether a one-shot rule takes this message (and is spent by it).
    #[cold]
    fn one_shot(&mut self, nodes: (u32, u32), kind: usize) -> bool {
        let mut hit = false;
        self.one_shots.retain_mut(|r| {
            let h = r.hits(nodes.0, nodes.1, kind);
            hit |= h;
            !h
        });
        if hit {
            self.refresh_plain();
        }
        hit
    }

    pub fn add_machine(&mut self) {
        self.dense_fresh = false;
        self.isolated.push(false);
        self.machine_faults.push(None);
    }

    /// Declares the directed link `from → to`.
    pub fn set_link(&mut self, from: u32, to: u32, spec: &LinkSpec) -> Result<()> {
        spec.validate().map_err(Error::input)?;
        let faults = (!spec.faults.is_none())
            .then(|| spec.faults.compile(self.kinds))
            .transpose()?;
        let i = self.link_index(from, to);
        let link = &mut self.links[i];
        link.latency = Some(spec.latency.sampler());
        let had = link.faults.is_some();
        link.faults = faults;
        let has = link.faults.is_some();
        self.faulty_links = self.faulty_links + usize::from(has) - usize::from(had);
        self.refresh_plain();
        Ok(())
    }

    fn link_index(&mut self, from: u32, to: u32) -> usize {
        if let Some(&i) = self.index.get(&(from, to)) {
            return i;
        }
        let i = self.links.len();
        let stream = (u64::from(from) << 32) | u64::from(to);
        self.links.push(Link {
            latency: self.default.clone(),
            faults: None,
            up: true,
            rng: Some(crate::rng::stream(self.seed, "link", stream)),
        });
        self.index.insert((from, to), i);
        self.dense_fresh = false;
        i
    }

    /// The explicit link `from → to`, if any.
    #[inline(always)]
    fn find(&self, from: u32, to: u32) -> Option<usize> {
        if self.dense_fresh {
            let n = self.isolated.len();
            let i = self.dense[from as usize * n + to as usize];
            return (i != u32::MAX).then_some(i as usize);
        }
        self.index.get(&(from, to)).copied()
    }

    fn refresh_dense(&mut self) {
        let n = self.isolated.len();
        if n > DENSE_MACHINES {
            return;
        }
        self.dense.clear();
        self.dense.resize(n * n, u32::MAX);
        for (&(from, to), &i) in &self.index {
            self.dense[from as usize * n + to as usize] = i as u32;
        }
        self.dense_fresh = true;
    }

    pub fn set_link_up(&mut self, from: u32, to: u32, up: bool) {
        let i = self.link_index(from, to);
        self.links[i].up = up;
        self.partitions |= !up;
        self.refresh_plain();
    }

    pub fn link_up(&self, from: u32, to: u32) -> bool {
        match self.find(from, to) {
            Some(i) => self.links[i].up,
            None => true,
        }
    }

    pub fn set_isolated(&mut self, machine: u32, on: bool) {
        self.isolated[machine as usize] = on;
        self.partitions |= on;
        self.refresh_plain();
    }

    /// Brings every link up and ends every isolation.
    pub fn heal_all(&mut self) {
        self.isolated.iter_mut().for_each(|i| *i = false);
        self.links.iter_mut().for_each(|l| l.up = true);
        self.partitions = false;
        self.refresh_plain();
    }

    /// Faults on everything `machine` sends (`None`: every machine).
    pub fn set_faults(&mut self, machine: Option<u32>, faults: &MessageFaults) -> Result<()> {
        let compiled = (!faults.is_none())
            .then(|| faults.compile(self.kinds))
            .transpose()?;
        match machine {
            Some(m) => self.machine_faults[m as usize] = compiled.map(Box::new),
            None => self.global_faults = compiled,
        }
        self.refresh_plain();
        Ok(())
    }

    fn refresh_plain(&mut self) {
        let no_faults = self.one_shots.is_empty()
            && !self.partitions
            && self.global_faults.is_none()
            && self.machine_faults.iter().all(Option::is_none);
        self.plain = self.index.is_empty() && no_faults;
        // A link down means `partitions`, so only link faults are left.
        self.plain_links = !self.index.is_empty() && no_faults && self.faulty_links == 0;
    }

    /// Decides the fate of one message from machine `from` to `to`, sent
    /// by node `nodes.0` to node `nodes.1`. `sender_rng` is the sending
    /// machine's network stream.
    #[inline(always)]
    pub fn route(
        &mut self,
        from: u32,
        to: u32,
        nodes: (u32, u32),
        kind: usize,
        sender_rng: &mut DetRng,
    ) -> Verdict {
        if self.plain
            && from != to
            && let Some(latency) = &self.default
        {
            return Verdict::Deliver {
                delay: latency.sample(sender_rng),
                duplicate: None,
            };
        }
        if self.plain_links && from != to && self.dense_fresh {
            let n = self.isolated.len();
            let i = self.dense[from as usize * n + to as usize];
            if let Some(link) = self.links.get_mut(i as usize)
                && let (Some(latency), Some(rng)) = (&link.latency, link.rng.as_mut())
            {
                return Verdict::Deliver {
                    delay: latency.sample(rng),
                    duplicate: None,
                };
            }
        }
        self.route_slow(from, to, nodes, kind, sender_rng)
    }

    fn route_slow(
        &mut self,
        from: u32,
        to: u32,
        nodes: (u32, u32),
        kind: usize,
        sender_rng: &mut DetRng,
    ) -> Verdict {
        // First, so that every routed message counts toward `nth`.
        if !self.one_shots.is_empty() && self.one_shot(nodes, kind) {
            return Verdict::Drop(DropReason::Chosen);
        }
        if from == to {
            return Verdict::Deliver {
                delay: self.local.sample(sender_rng),
                duplicate: None,
            };
        }
        if self.partitions && (self.isolated[from as usize] || self.isolated[to as usize]) {
            return Verdict::Drop(DropReason::Isolated);
        }
        if !self.dense_fresh && !self.index.is_empty() {
            self.refresh_dense();
        }
        let machine_faults = self.machine_faults[from as usize].as_deref();
        let (latency, link_faults, rng) = if self.index.is_empty() {
            match &self.default {
                Some(l) => (l, None, sender_rng),
                None => return Verdict::Drop(DropReason::NoLink),
            }
        } else {
            match self.find(from, to) {
                Some(i) => {
                    let link = &mut self.links[i];
                    let Some(latency) = &link.latency else {
                        return Verdict::Drop(DropReason::NoLink);
                    };
                    if !link.up {
                        return Verdict::Drop(DropReason::LinkDown);
                    }
                    let rng = link.rng.as_mut().expect("explicit links own a stream");
                    (latency, link.faults.as_ref(), rng)
                }
                None => match &self.default {
                    Some(l) => (l, None, sender_rng),
                    None => return Verdict::Drop(DropReason::NoLink),
                },
            }
        };
        if link_faults.is_none() && machine_faults.is_none() && self.global_faults.is_none() {
            return Verdict::Deliver {
                delay: latency.sample(rng),
                duplicate: None,
            };
        }
        decide(
            latency,
            [link_faults, machine_faults, self.global_faults.as_ref()],
            kind,
            rng,
        )
    }

    /// Whether a message already in flight may still arrive now.
    pub fn can_arrive(&self, from: u32, to: u32) -> Option<DropReason> {
        if !self.partitions || from == to {
            return None;
        }
        if self.isolated[from as usize] || self.isolated[to as usize] {
            return Some(DropReason::Isolated);
        }
        (!self.link_up(from, to)).then_some(DropReason::LinkDown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    const KINDS: &[&str] = &["Ping", "Pong"];

    #[test]
    fn simulated_latency_validation() {
        assert!(Latency::Constant { ms: -1.0 }.validate().is_err());
        assert!(Latency::Uniform { lo: 5.0, hi: 1.0 }.validate().is_err());
        assert!(
            Latency::Normal {
                mean: 10.0,
                sd: -3.0
            }
            .validate()
            .is_err()
        );
        assert!(Latency::Uniform { lo: 1.0, hi: 5.0 }.validate().is_ok());
    }

    #[test]
    fn simulated_uniform_latency_stays_in_range() {
        let mut rng = stream(1, "t", 0);
        let l = Latency::Uniform { lo: 1.0, hi: 5.0 }.sampler();
        for _ in 0..1000 {
            let ns = l.sample(&mut rng);
            assert!((1_000_000..=5_000_000).contains(&ns), "{ns}");
        }
    }

    #[test]
    fn simulated_loss_filter_only_hits_named_kind() {
        let mut net = Network::new(
            KINDS,
            1,
            Latency::Constant { ms: 0.0 },
            Some(Latency::Constant { ms: 1.0 }),
        );
        net.add_machine();
        net.add_machine();
        let faults = MessageFaults {
            loss: 1.0,
            kinds: vec!["Pong".into()],
            ..Default::default()
        };
        net.set_faults(Some(0), &faults).unwrap();
        let mut rng = stream(1, "t", 0);
        assert_eq!(
            net.route(0, 1, (0, 1), 1, &mut rng),
            Verdict::Drop(DropReason::Loss)
        );
        assert!(matches!(
            net.route(0, 1, (0, 1), 0, &mut rng),
            Verdict::Deliver {
                delay: 1_000_000,
                ..
            }
        ));
        // Faults are on what machine 0 sends only.
        assert!(matches!(
            net.route(1, 0, (1, 0), 1, &mut rng),
            Verdict::Deliver { .. }
        ));
    }

    /// The dense link table follows links and machines added at any time.
    #[test]
    fn simulated_link_table_follows_new_links_and_machines() {
        let mut net = Network::new(KINDS, 1, Latency::Constant { ms: 0.0 }, None);
        net.add_machine();
        net.add_machine();
        let slow = LinkSpec::new(Latency::Constant { ms: 7.0 });
        net.set_link(0, 1, &slow).unwrap();
        let mut rng = stream(1, "t", 0);
        let delay = |v| match v {
            Verdict::Deliver { delay, .. } => Some(delay),
            Verdict::Drop(_) => None,
        };
        assert_eq!(delay(net.route(0, 1, (0, 1), 0, &mut rng)), Some(7_000_000));
        assert_eq!(
            delay(net.route(1, 0, (1, 0), 0, &mut rng)),
            None,
            "no link back"
        );
        net.add_machine();
        net.set_link(2, 0, &LinkSpec::new(Latency::Constant { ms: 3.0 }))
            .unwrap();
        assert_eq!(delay(net.route(2, 0, (2, 0), 0, &mut rng)), Some(3_000_000));
        assert_eq!(delay(net.route(0, 1, (0, 1), 0, &mut rng)), Some(7_000_000));
        // A link's own faults apply while the others stay plain.
        let lossy = LinkSpec {
            faults: MessageFaults {
                loss: 1.0,
                ..Default::default()
            },
            ..LinkSpec::new(Latency::Constant { ms: 3.0 })
        };
        net.set_link(2, 0, &lossy).unwrap();
        assert_eq!(delay(net.route(2, 0, (2, 0), 0, &mut rng)), None);
        assert_eq!(delay(net.route(0, 1, (0, 1), 0, &mut rng)), Some(7_000_000));
        net.set_link(2, 0, &LinkSpec::new(Latency::Constant { ms: 3.0 }))
            .unwrap();
        assert_eq!(delay(net.route(2, 0, (2, 0), 0, &mut rng)), Some(3_000_000));
        net.set_link_up(0, 1, false);
        assert_eq!(delay(net.route(0, 1, (0, 1), 0, &mut rng)), None);
        assert_eq!(net.can_arrive(0, 1), Some(DropReason::LinkDown));
        assert_eq!(net.can_arrive(2, 0), None);
    }

    #[test]
    fn simulated_one_shot_drops_once() {
        let mut net = Network::new(
            KINDS,
            1,
            Latency::Constant { ms: 0.0 },
            Some(Latency::Constant { ms: 1.0 }),
        );
        net.add_machine();
        net.add_machine();
        assert!(net.drop_one(3, 4, "Nope", 0).is_err());
        net.drop_one(3, 4, "Ping", 1).unwrap();
        let mut rng = stream(1, "t", 0);
        let mut route = |nodes| net.route(0, 1, nodes, 0, &mut rng);
        assert!(
            matches!(route((4, 3)), Verdict::Deliver { .. }),
            "other nodes"
        );
        assert!(
            matches!(route((3, 4)), Verdict::Deliver { .. }),
            "the first Ping"
        );
        assert_eq!(
            route((3, 4)),
            Verdict::Drop(DropReason::Chosen),
            "the second"
        );
        assert!(
            matches!(route((3, 4)), Verdict::Deliver { .. }),
            "the rule is spent"
        );
        assert!(net.plain, "and the network plain again");
    }

    #[test]
    fn simulated_one_way_link_down() {
        let mut net = Network::new(
            KINDS,
            1,
            Latency::Constant { ms: 0.0 },
            Some(Latency::Constant { ms: 1.0 }),
        );
        net.add_machine();
        net.add_machine();
        net.set_link_up(0, 1, false);
        let mut rng = stream(1, "t", 0);
        assert_eq!(
            net.route(0, 1, (0, 1), 0, &mut rng),
            Verdict::Drop(DropReason::LinkDown)
        );
        assert!(matches!(
            net.route(1, 0, (1, 0), 0, &mut rng),
            Verdict::Deliver { .. }
        ));
        net.heal_all();
        assert!(matches!(
            net.route(0, 1, (0, 1), 0, &mut rng),
            Verdict::Deliver { .. }
        ));
    }
}
