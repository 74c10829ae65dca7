//! One-way link latency, and what a directed link is.

use std::time::Duration;

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use super::rule::MessageFaults;
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
    pub const ZERO: Latency = Latency::Constant { ms: 0.0 };

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

    pub fn is_zero(&self) -> bool {
        matches!(*self, Latency::Constant { ms } if ms == 0.0)
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

/// A directed link's model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkSpec {
    pub latency: Latency,
    #[serde(default)]
    pub area: Area,
    #[serde(default)]
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

    pub fn validate(&self) -> std::result::Result<(), String> {
        self.latency.validate()?;
        self.faults.validate()
    }
}

/// A duration in nanoseconds, saturating.
pub fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
