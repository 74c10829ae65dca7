//! The world a seed runs in. `fixed`: the options as given. `swarm`:
//! drawn from the seed, as TigerBeetle's VOPR does, so thousands of seeds
//! also cover thousands of configurations: servers 3–7, quorum system,
//! delegation, persistence, window and batch size, message-fault rates and
//! disk faults. A failing seed prints its world; the seed alone replays it.

use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::{Faults, SimCheckOptions};
use crate::rng::stream;
use crate::systems::kv::Persistence;
use crate::systems::kv::quorum::Quorum;

/// Message-fault rates while the load runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub loss: f64,
    pub duplicate: f64,
    pub reorder: f64,
}

impl Default for Rates {
    fn default() -> Self {
        Rates {
            loss: 0.05,
            duplicate: 0.05,
            reorder: 0.1,
        }
    }
}

/// Disk-fault episodes: a minority of servers whose appends and syncs fail
/// at `error_rate`, or whose disk fills `full_after` bytes from now.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiskFaults {
    pub error_rate: f64,
    pub full_after: usize,
}

impl Default for DiskFaults {
    fn default() -> Self {
        DiskFaults {
            error_rate: 0.02,
            full_after: 4096,
        }
    }
}

/// How sim-check chooses each seed's world.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum World {
    /// Every seed runs the options as given.
    Fixed,
    /// Each seed draws its world (see the module docs).
    #[default]
    Swarm,
}

impl World {
    pub fn parse(s: &str) -> Result<World, String> {
        match s {
            "fixed" => Ok(World::Fixed),
            "swarm" => Ok(World::Swarm),
            other => Err(format!("{other:?}: the world is fixed or swarm")),
        }
    }

    /// The options seed `seed` runs with.
    pub fn options(self, seed: u64, base: &SimCheckOptions) -> SimCheckOptions {
        match self {
            World::Fixed => base.clone(),
            World::Swarm => draw(seed, base),
        }
    }
}

/// A world drawn from the seed; `base` gives the load, settle time, the
/// fault kinds allowed and the fail-stop switch.
pub fn draw(seed: u64, base: &SimCheckOptions) -> SimCheckOptions {
    let mut rng = stream(seed, "kv-world", 0);
    let mut o = base.clone();
    let n = rng.random_range(3..=7usize);
    o.servers = n;
    // A flexible-quorum pair (recovery meets replication) or majorities.
    let (replication, recovery) = if rng.random_bool(0.3) {
        let q = rng.random_range(n / 2..=n - 1).max(1);
        (Quorum::Fixed(n + 1 - q), Quorum::Fixed(q))
    } else if n % 2 == 0 && rng.random_bool(0.5) {
        (Quorum::NonStrictMajority, Quorum::StrictMajority)
    } else {
        (Quorum::StrictMajority, Quorum::StrictMajority)
    };
    o.config.replication_quorum = replication;
    o.config.recovery_quorum = recovery;
    o.config.delegate = rng.random_bool(0.5);
    o.config.persistence = if rng.random_bool(0.8) {
        Persistence::Fsync
    } else {
        Persistence::None
    };
    o.config.window = [1, 4, 32][rng.random_range(0..3)];
    o.config.max_batch = [1, 8, 64][rng.random_range(0..3)];
    o.config.snapshot_every = [50, 1000][rng.random_range(0..2)];
    o.rates = Rates {
        loss: rng.random_range(0.0..0.1),
        duplicate: rng.random_range(0.0..0.1),
        reorder: rng.random_range(0.0..0.2),
    };
    o.disk = DiskFaults {
        error_rate: rng.random_range(0.005..0.05),
        full_after: rng.random_range(256..16384),
    };
    // Without fsync a crashed server must catch up before it may vote
    // again; crashes that come faster than that can stall the cluster.
    o.gap = Duration::from_millis(if o.config.persistence == Persistence::None {
        3000
    } else {
        100
    });
    o.faults = Faults {
        disk: base.faults.disk && rng.random_bool(0.7),
        ..base.faults
    };
    o
}

/// One line naming a world, printed with a failing seed.
pub fn describe(o: &SimCheckOptions) -> String {
    let c = &o.config;
    format!(
        "{} servers, quorums replication {} / recovery {}, {}{} persistence, window {}, batch {}, snapshot every {}, \
         faults {}, loss {:.3} dup {:.3} reorder {:.3}, disk errors {:.3} / full after {} B{}",
        o.servers,
        String::from(c.replication_quorum),
        String::from(c.recovery_quorum),
        if c.delegate { "delegated, " } else { "" },
        match c.persistence {
            Persistence::Fsync => "fsync",
            Persistence::None => "no",
        },
        c.window,
        c.max_batch,
        c.snapshot_every,
        o.faults.names(),
        o.rates.loss,
        o.rates.duplicate,
        o.rates.reorder,
        o.disk.error_rate,
        o.disk.full_after,
        if o.fail_stop { "" } else { ", NOT fail-stop" },
    )
}
