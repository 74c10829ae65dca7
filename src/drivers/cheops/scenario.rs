//! The original's three-site scenario (tests/g5k test_redis): a resource
//! on three sites, one operation synced, the sites cut apart, one
//! concurrent operation at each site, healed; every site must end with
//! the same block and value.

use std::collections::BTreeMap;
use std::time::Duration;

use super::check::{ResourceOutcome, build, check};
use super::sim_check::REDIS_MATRIX;
use crate::error::{Error, Result};
use crate::net::Latency;
use crate::node::MachineId;
use crate::sim::SimConfig;
use crate::systems::cheops::client::{ResourceSpec, ScriptedOp, Workload};

/// The scenario's workload: `SET 23` at site1, synced; then, cut apart,
/// `SET 29` at site1 and two increments at site2 and site3 (with
/// `failure`, `INCRBY 12` and a command that fails, as the original's
/// failure variant).
pub fn redis_workload(failure: bool) -> Workload {
    let op = |at_ms: f64, site: &str, kind: &str, command: &str, config: &str| ScriptedOp {
        at_ms,
        site: site.into(),
        resource: "r".into(),
        kind: kind.into(),
        command: command.into(),
        config: config.into(),
    };
    let (second, third) = if failure {
        ("INCRBY r 12", "SADD r error")
    } else {
        ("INCRBY r 13", "INCRBY r -12")
    };
    Workload {
        resources: vec![ResourceSpec {
            id: "r".into(),
            sites: vec!["site1".into(), "site2".into(), "site3".into()],
        }],
        script: vec![
            op(0.0, "site1", "set", "SET r 23", REDIS_MATRIX),
            op(1500.0, "site1", "set", "SET r 29", ""),
            op(1500.0, "site2", "inc", second, ""),
            op(1500.0, "site3", "inc", third, ""),
        ],
        ..Default::default()
    }
}

/// Runs the scenario with `seed`; the converged resource, or what went
/// wrong.
pub fn run_redis(seed: u64, failure: bool) -> Result<ResourceOutcome> {
    let names: Vec<String> = (1..=3).map(|i| format!("site{i}")).collect();
    let wl = redis_workload(failure);
    let mut cfg = SimConfig::new(seed);
    cfg.default_latency = Some(Latency::Uniform { lo: 0.5, hi: 5.0 });
    let mut sim = build(cfg, &names, &wl)?;
    sim.run_until(Duration::from_secs(1));
    for a in 0..3 {
        for b in 0..3 {
            if a != b {
                sim.set_link_up(MachineId(a), MachineId(b), false);
            }
        }
    }
    sim.run_until(Duration::from_secs(3));
    sim.heal();
    sim.run_until(Duration::from_secs(8));
    let mut out: BTreeMap<String, ResourceOutcome> =
        check(&sim, &names, &wl).map_err(Error::runtime)?;
    out.remove("r")
        .ok_or_else(|| Error::runtime("the resource was never created"))
}
