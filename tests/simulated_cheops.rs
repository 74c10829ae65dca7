//! Cheops in simulation: convergence of every site of each resource under
//! partitions, crashes, drops and duplicates; the original's three-site
//! scenario and its failure variant; the checker catching a cluster that
//! did not converge.

use std::time::Duration;

use assert_cmd::Command;
use distzero::drivers::cheops::check::{build, check};
use distzero::drivers::cheops::scenario::{redis_workload, run_redis};
use distzero::drivers::cheops::sim_check::{SimCheckOptions, run_many, run_seed};
use distzero::drivers::kv::sim_check::Faults;
use distzero::node::MachineId;
use distzero::sim::SimConfig;

#[test]
fn every_seed_converges_under_all_faults() {
    let opts = SimCheckOptions::default();
    let results = run_many(1..121, 2, &opts, &|_| {}).unwrap();
    for r in &results {
        assert!(r.failure.is_none(), "seed {}: {:?}", r.seed, r.failure);
        assert!(
            r.operations > 50,
            "seed {}: {} operations",
            r.seed,
            r.operations
        );
    }
    // The faults did make blocks diverge, so merges were exercised.
    let merges: u64 = results.iter().map(|r| r.merges).sum();
    assert!(merges > 100, "{merges} merges");
}

#[test]
fn crashes_alone_and_partitions_alone_converge() {
    for faults in ["crash", "partition,duplicate"] {
        let opts = SimCheckOptions {
            faults: Faults::parse(faults).unwrap(),
            sites: 3,
            ..Default::default()
        };
        for r in run_many(500..540, 2, &opts, &|_| {}).unwrap() {
            assert!(
                r.failure.is_none(),
                "{faults} seed {}: {:?}",
                r.seed,
                r.failure
            );
        }
    }
}

#[test]
fn a_seed_replays_identically() {
    let opts = SimCheckOptions::default();
    let a = run_seed(7, &opts).unwrap();
    let b = run_seed(7, &opts).unwrap();
    assert_eq!(a.trace_hash, b.trace_hash);
    assert_eq!(a.operations, b.operations);
}

#[test]
fn the_three_site_scenario_converges_to_the_value_the_rules_give() {
    for seed in 1..=10 {
        let out = run_redis(seed, false).unwrap();
        // SET 29 superseded SET 23 (take-one); both increments follow it
        // (set then inc in order; inc/inc commutative): 29 + 13 - 12.
        assert_eq!(
            out.state.get("r").map(String::as_str),
            Some("30"),
            "seed {seed}: {out:?}"
        );
        assert_eq!(out.block[0], "SET r 29", "seed {seed}: {out:?}");
        assert_eq!(out.block.len(), 3, "seed {seed}: {out:?}");
        assert_eq!(out.ko_replies, 0);
    }
}

#[test]
fn the_failure_variant_converges_with_the_failure_at_every_site() {
    for seed in 1..=10 {
        let out = run_redis(seed, true).unwrap();
        // SADD fails everywhere and changes nothing: 29 + 12.
        assert_eq!(
            out.state.get("r").map(String::as_str),
            Some("41"),
            "seed {seed}: {out:?}"
        );
        assert_eq!(out.ko_replies, 3, "seed {seed}: one KO per site");
    }
}

#[test]
fn the_checker_catches_sites_that_never_heal() {
    let names: Vec<String> = (1..=3).map(|i| format!("site{i}")).collect();
    let wl = redis_workload(false);
    let mut sim = build(SimConfig::new(3), &names, &wl).unwrap();
    sim.run_until(Duration::from_secs(1));
    for a in 0..3 {
        for b in 0..3 {
            if a != b {
                sim.set_link_up(MachineId(a), MachineId(b), false);
            }
        }
    }
    sim.run_until(Duration::from_secs(8));
    let err = check(&sim, &names, &wl).unwrap_err();
    // Cut apart, the sites lack each other's operations and replies.
    assert!(
        err.contains("different documents") || err.contains("has no reply of"),
        "{err}"
    );
}

#[test]
fn the_cli_checks_seeds_and_refuses_bad_input() {
    let out = Command::cargo_bin("dz")
        .unwrap()
        .args(["cheops", "sim-check", "--seeds", "4", "--threads", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("4 seeds") && stdout.contains("0 seeds did not converge"),
        "{stdout}"
    );
    let out = Command::cargo_bin("dz")
        .unwrap()
        .args(["cheops", "sim-check", "--sites", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = Command::cargo_bin("dz")
        .unwrap()
        .args(["cheops", "scenario", "--seed", "2"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"30\""));
}
