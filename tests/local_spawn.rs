//! Nodes that create nodes on real machines (local processes): the
//! `spawner` system's parents spawn children on the next machine and on the
//! least loaded ones; children answer, some exit; `cluster status` shows
//! where they run and `down` leaves nothing behind.

mod common;

use std::time::{Duration, Instant};

use common::real::{dz_ok, dz_run, process_alive};
use common::spawn::{NodeLine, children_everywhere, parse_status, status_json};

#[test]
fn local_nodes_spawn_children_on_every_machine_and_exited_ones_are_gone() {
    let tmp = tempfile::tempdir().unwrap();
    children_everywhere(tmp.path(), "local", "sp");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("sp/cluster.json")).unwrap())
            .unwrap();
    let pids: Vec<u32> = state["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pid"].as_u64().unwrap() as u32)
        .collect();

    let (code, _, err) = dz_run(tmp.path(), &["cluster", "down", "sp"]);
    assert_eq!(code, Some(0), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    for pid in pids {
        assert!(!process_alive(pid), "pid {pid} survived `down`");
    }
}

#[test]
fn local_a_restarted_machine_starts_its_spawned_nodes_again() {
    let tmp = tempfile::tempdir().unwrap();
    let config = r#"{"children": 6, "exit_every": 0, "start_after_ms": 300, "round_ms": 800}"#;
    dz_ok(
        tmp.path(),
        &[
            "cluster",
            "up",
            "--mode",
            "local",
            "--machines",
            "3",
            "--system",
            "spawner",
            "--name",
            "rs",
            "--config",
            config,
        ],
    );
    let status = |want: &dyn Fn(&[NodeLine]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = dz_ok(tmp.path(), &["cluster", "status", "rs"]);
            let (nodes, _) = parse_status(&out);
            if want(&nodes) || Instant::now() > deadline {
                return (nodes, out);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let (before, out) = status(&|n| n.iter().filter(|n| n.role == "child").count() == 18);
    let old: Vec<u64> = before.iter().filter(|n| n.spawned).map(|n| n.id).collect();
    assert_eq!(old.len(), 18, "{out}");
    let old_m1: Vec<u64> = before
        .iter()
        .filter(|n| n.spawned && n.machine == "m1")
        .map(|n| n.id)
        .collect();
    assert!(!old_m1.is_empty(), "{out}");

    dz_ok(tmp.path(), &["cluster", "fault", "rs", "kill", "m1"]);
    dz_ok(tmp.path(), &["cluster", "fault", "rs", "restart", "m1"]);
    // m1's children run again and hear from their parents (on any machine);
    // the restarted parent n1 spawns six new ones with fresh ids.
    let (after, out) = status(&|nodes| {
        let pinged = |id: u64| {
            nodes.iter().any(|n| {
                n.id == id && n.machine == "m1" && status_json(&n.text)["pings"].as_u64() >= Some(1)
            })
        };
        old_m1.iter().all(|&id| pinged(id)) && nodes.iter().filter(|n| n.spawned).count() == 24
    });
    for id in &old_m1 {
        let n = after.iter().find(|n| n.id == *id && n.machine == "m1");
        assert!(n.is_some_and(|n| !n.exited), "{id} not back on m1: {out}");
    }
    let n1 = after.iter().find(|n| n.id == 1).expect("n1");
    let new: Vec<u64> = status_json(&n1.text)["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(new.len(), 6, "{out}");
    assert!(
        new.iter().all(|id| !old.contains(id)),
        "ids reused: {new:?} {old:?}"
    );
    assert_eq!(after.iter().filter(|n| n.spawned).count(), 24, "{out}");
    dz_ok(tmp.path(), &["cluster", "down", "rs"]);
}
