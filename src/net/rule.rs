//! Message faults and the one decision every mode makes on a message: the
//! simulator's network and the agents' transport both call [`decide`] (in
//! the spirit of turmoil's `Rule::on_packet`), so loss, duplication,
//! reordering and delay mean the same everywhere.

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::counts::DropReason;
use super::latency::Sampler;
use crate::error::{Error, Result};
use crate::rng::DetRng;

/// The reorder window when a fault plan names none.
pub const DEFAULT_REORDER_MS: f64 = 50.0;

/// Message faults: applied to every message they match, in order loss,
/// duplication, reordering, extra delay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessageFaults {
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice (the copy with a latency of
    /// its own).
    pub duplicate: f64,
    /// Probability a message is held back by up to `reorder_ms`, so later
    /// messages overtake it.
    pub reorder: f64,
    /// The reorder window [default: 50 ms].
    pub reorder_ms: Option<f64>,
    /// Extra delay for every matching message.
    pub delay_ms: f64,
    /// Message kinds the faults apply to; empty means every kind.
    pub kinds: Vec<String>,
}

impl MessageFaults {
    pub fn is_none(&self) -> bool {
        self.loss == 0.0 && self.duplicate == 0.0 && self.reorder == 0.0 && self.delay_ms == 0.0
    }

    /// The one place fault rates and delays are checked.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, p) in [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("fault rate {name}={p} is not between 0 and 1"));
            }
        }
        let window = self.reorder_ms.unwrap_or(DEFAULT_REORDER_MS);
        for (name, ms) in [("delay_ms", self.delay_ms), ("reorder_ms", window)] {
            if !(ms.is_finite() && ms >= 0.0) {
                return Err(format!(
                    "fault delay {name}={ms} must be a non-negative number"
                ));
            }
        }
        Ok(())
    }

    /// Checks the plan and resolves kind names against the system's kinds;
    /// an unknown kind is refused in every mode.
    pub fn compile(&self, kinds: &[&str]) -> Result<CompiledFaults> {
        self.validate().map_err(Error::input)?;
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
            reorder_ns: (self.reorder_ms.unwrap_or(DEFAULT_REORDER_MS) * 1e6) as u64,
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

/// The fate of one message: delivered after `delay` ns (and a second copy
/// after `duplicate` ns), or dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Deliver { delay: u64, duplicate: Option<u64> },
    Drop(DropReason),
}

/// Decides one message of kind `kind` on a link that is up, with latency
/// `latency` and the fault plans that cover it (link, sender, everyone).
/// Pure: everything it depends on is in its arguments.
#[inline]
pub fn decide(
    latency: &Sampler,
    faults: [Option<&CompiledFaults>; 3],
    kind: usize,
    rng: &mut DetRng,
) -> Verdict {
    let mut delay = latency.sample(rng);
    let mut duplicate = None;
    for f in faults.into_iter().flatten() {
        if !f.matches(kind) {
            continue;
        }
        if f.loss > 0.0 && rng.random_bool(f.loss) {
            return Verdict::Drop(DropReason::Loss);
        }
        if f.duplicate > 0.0 && duplicate.is_none() && rng.random_bool(f.duplicate) {
            duplicate = Some(latency.sample(rng) + f.delay_ns);
        }
        if f.reorder > 0.0 && rng.random_bool(f.reorder) {
            delay += rng.random_range(0..=f.reorder_ns);
        }
        delay += f.delay_ns;
    }
    Verdict::Deliver { delay, duplicate }
}

/// "Drop this message": a one-shot rule that drops the `nth` (from 0)
/// message of one kind that node `from` sends to node `to` after it is
/// armed, then retires. Deterministic runs make "the nth after this moment"
/// name the same message in the run and in its what-if branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneShotDrop {
    from: u32,
    to: u32,
    kind: usize,
    /// Matching messages still to let through before the one to drop.
    skip: u64,
}

impl OneShotDrop {
    /// Resolves `kind` against the system's kinds (unknown kinds refused).
    pub fn new(from: u32, to: u32, kind: &str, nth: u64, kinds: &[&str]) -> Result<Self> {
        let kind = kinds.iter().position(|k| *k == kind).ok_or_else(|| {
            Error::input(format!(
                "drop_message names unknown message kind {kind:?} (known: {})",
                kinds.join(", ")
            ))
        })?;
        Ok(OneShotDrop {
            from,
            to,
            kind,
            skip: nth,
        })
    }

    /// Whether this message is the one to drop; counts the matching ones.
    /// Once it has said yes the rule is spent (the caller removes it).
    pub fn hits(&mut self, from: u32, to: u32, kind: usize) -> bool {
        if (from, to, kind) != (self.from, self.to, self.kind) {
            return false;
        }
        if self.skip == 0 {
            return true;
        }
        self.skip -= 1;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::Latency;
    use crate::rng::stream;

    const KINDS: &[&str] = &["Ping", "Pong"];

    #[test]
    fn simulated_unknown_fault_kind_is_refused() {
        let faults = MessageFaults {
            loss: 0.5,
            kinds: vec!["Nope".into()],
            ..Default::default()
        };
        let err = faults.compile(KINDS).unwrap_err().to_string();
        assert!(err.contains("Nope"), "{err}");
        for bad in [
            MessageFaults {
                loss: 1.5,
                ..Default::default()
            },
            MessageFaults {
                delay_ms: f64::NAN,
                ..Default::default()
            },
            MessageFaults {
                reorder_ms: Some(-1.0),
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
            assert!(bad.compile(KINDS).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn simulated_decide_rates_match_the_plan() {
        let plan = MessageFaults {
            loss: 0.2,
            duplicate: 0.1,
            reorder: 0.3,
            reorder_ms: Some(10.0),
            ..Default::default()
        }
        .compile(KINDS)
        .unwrap();
        let latency = Latency::Constant { ms: 1.0 }.sampler();
        let mut rng = stream(5, "t", 0);
        let (mut lost, mut dup, mut late) = (0, 0, 0);
        let n = 100_000;
        for _ in 0..n {
            match decide(&latency, [Some(&plan), None, None], 0, &mut rng) {
                Verdict::Drop(DropReason::Loss) => lost += 1,
                Verdict::Drop(r) => panic!("{r:?}"),
                Verdict::Deliver { delay, duplicate } => {
                    dup += usize::from(duplicate.is_some());
                    late += usize::from(delay > 1_000_000);
                    assert!(delay <= 11_000_000);
                }
            }
        }
        let rate = |k: usize, of: usize| k as f64 / of as f64;
        assert!((rate(lost, n) - 0.2).abs() < 0.01, "loss {lost}");
        assert!((rate(dup, n - lost) - 0.1).abs() < 0.01, "dup {dup}");
        assert!((rate(late, n - lost) - 0.3).abs() < 0.01, "reorder {late}");
    }

    #[test]
    fn simulated_one_shot_drop_takes_the_nth_match_only() {
        assert!(OneShotDrop::new(0, 1, "Nope", 0, KINDS).is_err());
        let mut r = OneShotDrop::new(0, 1, "Pong", 2, KINDS).unwrap();
        // Other links and kinds do not count.
        assert!(!r.hits(1, 0, 1));
        assert!(!r.hits(0, 1, 0));
        assert!(!r.hits(0, 1, 1));
        assert!(!r.hits(0, 1, 1));
        assert!(r.hits(0, 1, 1));
    }
}
