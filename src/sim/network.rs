//! The simulated network: per directed link a latency model, an up/down
//! state and message faults; per machine isolation and outgoing faults.
//!
//! Pairs of machines without an explicit link use the default link (or,
//! without a full mesh, cannot talk at all). Explicit links draw from their
//! own random stream; default links from the sending machine's stream, so a
//! 100,000-machine mesh costs nothing per pair.

use std::time::Duration;

use rand::{Rng, RngExt};
use rand_distr::{Distribution, Normal};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::rng::DetRng;

/// One-way latency of a link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "connection", rename_all = "lowercase")]
pub enum Latency {
    Constant {
        ms: f64,
    },
    /// Uniform in `[lo, hi]` milliseconds (CloudScope's "variable").
    Uniform {
        lo: f64,
        hi: f64,
    },
    /// Normal with the given mean and standard deviation, never below zero.
    Normal {
        mean: f64,
        sd: f64,
    },
}

impl Latency {
    pub fn validate(&self) -> std::result::Result<(), String> {
        let finite = |v: f64| v.is_finite();
        match *self {
            Latency::Constant { ms } if !finite(ms) || ms < 0.0 => {
                Err(format!("negative latency {ms}"))
            }
            Latency::Uniform { lo, hi } if !finite(lo) || !finite(hi) || lo < 0.0 || hi < 0.0 => {
                Err(format!("negative latency [{lo}, {hi}]"))
            }
            Latency::Uniform { lo, hi } if lo > hi => {
                Err(format!("latency range [{lo}, {hi}] has lo > hi"))
            }
            Latency::Normal { mean, sd }
                if !finite(mean) || !finite(sd) || mean < 0.0 || sd < 0.0 =>
            {
                Err(format!("negative latency mean or stddev [{mean}, {sd}]"))
            }
            _ => Ok(()),
        }
    }

    /// The latency in nanoseconds, ready to sample.
    pub fn sampler(&self) -> Sampler {
        let ns = |ms: f64| (ms * 1e6) as u64;
        match *self {
            Latency::Constant { ms } => Sampler::Constant(ns(ms)),
            Latency::Uniform { lo, hi } if lo == hi => Sampler::Constant(ns(lo)),
            Latency::Uniform { lo, hi } => Sampler::Uniform(ns(lo), ns(hi)),
            Latency::Normal { mean, sd } => match Normal::new(mean * 1e6, sd * 1e6) {
                Ok(n) => Sampler::Normal(n),
                Err(_) => Sampler::Constant(ns(mean)),
            },
        }
    }

    pub fn mean_ms(&self) -> f64 {
        match *self {
            Latency::Constant { ms } => ms,
            Latency::Uniform { lo, hi } => (lo + hi) / 2.0,
            Latency::Normal { mean, .. } => mean,
        }
    }
}

/// A [`Latency`] in nanoseconds, cheap to sample on every message.
#[derive(Clone, Debug, PartialEq)]
pub enum Sampler {
    Constant(u64),
    Uniform(u64, u64),
    Normal(Normal<f64>),
}

impl Sampler {
    #[inline]
    pub fn sample(&self, rng: &mut DetRng) -> u64 {
        match self {
            Sampler::Constant(ns) => *ns,
            // Lemire's multiply-shift: a bias below 2^-40 for any latency
            // range, and no rejection loop on the hot path.
            Sampler::Uniform(lo, hi) => {
                lo + ((u128::from(rng.next_u64()) * u128::from(hi - lo + 1)) >> 64) as u64
            }
            Sampler::Normal(n) => n.sample(rng).max(0.0) as u64,
        }
    }
}

/// Whether a link stays inside one location or crosses the wide area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    #[default]
    Local,
    Wide,
}

/// Message faults: applied to every message they match, in order loss,
/// duplication, reordering, extra delay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessageFaults {
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Probability a message is held back by up to `reorder_ms`, so later
    /// messages overtake it.
    pub reorder: f64,
    pub reorder_ms: Option<f64>,
    /// Extra delay for every matching message.
    pub delay_ms: f64,
    /// Message kinds the faults apply to; empty means every kind.
    pub kinds: Vec<String>,
}

const DEFAULT_REORDER_MS: f64 = 50.0;

impl MessageFaults {
    pub fn is_none(&self) -> bool {
        self.loss == 0.0 && self.duplicate == 0.0 && self.reorder == 0.0 && self.delay_ms == 0.0
    }

    /// Checks rates and resolves kind names against the system's kinds.
    pub fn compile(&self, kinds: &[&str]) -> Result<CompiledFaults> {
        for (name, p) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::input(format!(
                    "fault rate {name}={p} is not between 0 and 1"
                )));
            }
        }
        let reorder_ms = self.reorder_ms.unwrap_or(DEFAULT_REORDER_MS);
        if !(self.delay_ms >= 0.0 && reorder_ms >= 0.0) {
            return Err(Error::input("fault delays must not be negative"));
        }
        let mut mask = if self.kinds.is_empty() { u64::MAX } else { 0 };
        for k in &self.kinds {
            let i = kinds.iter().position(|n| n == k).ok_or_else(|| {
                Error::input(format!(
                    "fault filter names unknown message kind {k:?} (known: {})",
                    kinds.join(", ")
                ))
            })?;
            if i >= 64 {
                return Err(Error::input(
                    "fault filters support the first 64 message kinds",
                ));
            }
            mask |= 1 << i;
        }
        Ok(CompiledFaults {
            loss: self.loss,
            duplicate: self.duplicate,
            reorder: self.reorder,
            reorder_ns: (reorder_ms * 1e6) as u64,
            delay_ns: (self.delay_ms * 1e6) as u64,
            mask,
        })
    }
}

/// [`MessageFaults`] resolved for fast matching.
#[derive(Clone, Debug, PartialEq)]
pub struct CompiledFaults {
    loss: f64,
    duplicate: f64,
    reorder: f64,
    reorder_ns: u64,
    delay_ns: u64,
    mask: u64,
}

impl CompiledFaults {
    fn matches(&self, kind: usize) -> bool {
        self.mask == u64::MAX || (kind < 64 && self.mask & (1 << kind) != 0)
    }
}

/// A directed link's model.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkSpec {
    pub latency: Latency,
    pub area: Area,
    pub faults: MessageFaults,
}

impl LinkSpec {
    pub fn new(latency: Latency) -> Self {
        LinkSpec {
            latency,
            area: Area::Local,
            faults: MessageFaults::default(),
        }
    }
}

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    Loss,
    LinkDown,
    Isolated,
    NoLink,
    MachineDown,
    NoSuchNode,
    Codec,
}

impl DropReason {
    pub const ALL: [DropReason; 7] = [
        DropReason::Loss,
        DropReason::LinkDown,
        DropReason::Isolated,
        DropReason::NoLink,
        DropReason::MachineDown,
        DropReason::NoSuchNode,
        DropReason::Codec,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Loss => "loss",
            DropReason::LinkDown => "link_down",
            DropReason::Isolated => "isolated",
            DropReason::NoLink => "no_link",
            DropReason::MachineDown => "machine_down",
            DropReason::NoSuchNode => "no_such_node",
            DropReason::Codec => "codec",
        }
    }
}

/// The network's decision for one message.
#[derive(Debug, PartialEq)]
pub enum Route {
    Deliver { delay: u64, duplicate: Option<u64> },
    Drop(DropReason),
}

struct Link {
    /// `None`: the machines are not connected (no link in a non-mesh).
    latency: Option<Sampler>,
    faults: Option<CompiledFaults>,
    up: bool,
    rng: Option<DetRng>,
}

pub struct Network {
    kinds: &'static [&'static str],
    seed: u64,
    local: Sampler,
    default: Option<Sampler>,
    global_faults: Option<CompiledFaults>,
    index: FxHashMap<(u32, u32), usize>,
    links: Vec<Link>,
    isolated: Vec<bool>,
    machine_faults: Vec<Option<Box<CompiledFaults>>>,
    /// True once any link went down or any machine was isolated; lets the
    /// common case skip the checks at delivery.
    partitions: bool,
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
            links: Vec::new(),
            isolated: Vec::new(),
            machine_faults: Vec::new(),
            partitions: false,
        }
    }

    pub fn add_machine(&mut self) {
        self.isolated.push(false);
        self.machine_faults.push(None);
    }

    /// Declares the directed link `from → to`.
    pub fn set_link(&mut self, from: u32, to: u32, spec: &LinkSpec) -> Result<()> {
        spec.latency.validate().map_err(Error::input)?;
        let faults = (!spec.faults.is_none())
            .then(|| spec.faults.compile(self.kinds))
            .transpose()?;
        let i = self.link_index(from, to);
        let link = &mut self.links[i];
        link.latency = Some(spec.latency.sampler());
        link.faults = faults;
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
        i
    }

    pub fn set_link_up(&mut self, from: u32, to: u32, up: bool) {
        let i = self.link_index(from, to);
        self.links[i].up = up;
        self.partitions |= !up;
    }

    pub fn link_up(&self, from: u32, to: u32) -> bool {
        match self.index.get(&(from, to)) {
            Some(&i) => self.links[i].up,
            None => true,
        }
    }

    pub fn set_isolated(&mut self, machine: u32, on: bool) {
        self.isolated[machine as usize] = on;
        self.partitions |= on;
    }

    /// Brings every link up and ends every isolation.
    pub fn heal_all(&mut self) {
        self.isolated.iter_mut().for_each(|i| *i = false);
        self.links.iter_mut().for_each(|l| l.up = true);
        self.partitions = false;
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
        Ok(())
    }

    /// Decides the fate of one message from machine `from` to `to`.
    /// `sender_rng` is the sending machine's network stream.
    pub fn route(&mut self, from: u32, to: u32, kind: usize, sender_rng: &mut DetRng) -> Route {
        if from == to {
            return Route::Deliver {
                delay: self.local.sample(sender_rng),
                duplicate: None,
            };
        }
        if self.partitions && (self.isolated[from as usize] || self.isolated[to as usize]) {
            return Route::Drop(DropReason::Isolated);
        }
        let machine_faults = self.machine_faults[from as usize].as_deref();
        let (latency, link_faults, rng) = if self.index.is_empty() {
            match &self.default {
                Some(l) => (l, None, sender_rng),
                None => return Route::Drop(DropReason::NoLink),
            }
        } else {
            match self.index.get(&(from, to)) {
                Some(&i) => {
                    let link = &mut self.links[i];
                    let Some(latency) = &link.latency else {
                        return Route::Drop(DropReason::NoLink);
                    };
                    if !link.up {
                        return Route::Drop(DropReason::LinkDown);
                    }
                    let rng = link.rng.as_mut().expect("explicit links own a stream");
                    (latency, link.faults.as_ref(), rng)
                }
                None => match &self.default {
                    Some(l) => (l, None, sender_rng),
                    None => return Route::Drop(DropReason::NoLink),
                },
            }
        };
        let mut delay = latency.sample(rng);
        if link_faults.is_none() && machine_faults.is_none() && self.global_faults.is_none() {
            return Route::Deliver {
                delay,
                duplicate: None,
            };
        }
        let mut duplicate = None;
        let global_faults = self.global_faults.as_ref();
        for f in [link_faults, machine_faults, global_faults]
            .into_iter()
            .flatten()
        {
            if !f.matches(kind) {
                continue;
            }
            if f.loss > 0.0 && rng.random_bool(f.loss) {
                return Route::Drop(DropReason::Loss);
            }
            if f.duplicate > 0.0 && duplicate.is_none() && rng.random_bool(f.duplicate) {
                duplicate = Some(latency.sample(rng) + f.delay_ns);
            }
            if f.reorder > 0.0 && rng.random_bool(f.reorder) {
                delay += rng.random_range(0..=f.reorder_ns);
            }
            delay += f.delay_ns;
        }
        Route::Deliver { delay, duplicate }
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

    pub fn duration_ns(d: Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
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
        assert_eq!(net.route(0, 1, 1, &mut rng), Route::Drop(DropReason::Loss));
        assert!(matches!(
            net.route(0, 1, 0, &mut rng),
            Route::Deliver {
                delay: 1_000_000,
                ..
            }
        ));
        // Faults are on what machine 0 sends only.
        assert!(matches!(
            net.route(1, 0, 1, &mut rng),
            Route::Deliver { .. }
        ));
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
            net.route(0, 1, 0, &mut rng),
            Route::Drop(DropReason::LinkDown)
        );
        assert!(matches!(
            net.route(1, 0, 0, &mut rng),
            Route::Deliver { .. }
        ));
        net.heal_all();
        assert!(matches!(
            net.route(0, 1, 0, &mut rng),
            Route::Deliver { .. }
        ));
    }

    #[test]
    fn simulated_unknown_fault_kind_is_refused() {
        let faults = MessageFaults {
            loss: 0.5,
            kinds: vec!["Nope".into()],
            ..Default::default()
        };
        let err = faults.compile(KINDS).unwrap_err().to_string();
        assert!(err.contains("Nope"), "{err}");
        let bad = MessageFaults {
            loss: 1.5,
            ..Default::default()
        };
        assert!(bad.compile(KINDS).is_err());
    }
}
