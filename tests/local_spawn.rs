//! Nodes that create nodes on real machines (local processes): the
//! `spawner` system's parents spawn children on the next machine and on the
//! least loaded ones; children answer, some exit; `cluster status` shows
//! where they run and `down` leaves nothing behind.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::real::{dz_ok, dz_run};

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// One node line of `cluster status`, under its machine.
#[derive(Debug)]
struct NodeLine {
    machine: String,
    id: u64,
    role: String,
    spawned: bool,
    exited: bool,
    text: String,
}

/// The node lines, and each machine's transport counters.
fn parse_status(out: &str) -> (Vec<NodeLine>, BTreeMap<String, BTreeMap<String, u64>>) {
    let (mut nodes, mut counters) = (Vec::new(), BTreeMap::new());
    let mut machine = String::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("  m") {
            machine = format!("m{}", rest.split_whitespace().next().unwrap());
        } else if let Some(rest) = line.strip_prefix("    transport: ") {
            let m: &mut BTreeMap<String, u64> = counters.entry(machine.clone()).or_default();
            for pair in rest.split(", ") {
                let (k, v) = pair.rsplit_once(' ').unwrap();
                m.insert(k.to_string(), v.parse().unwrap());
            }
        } else if let Some(rest) = line.strip_prefix("    n") {
            let mut words = rest.split_whitespace();
            let id = words.next().unwrap().parse().unwrap();
            let role = words.next().unwrap().to_string();
            nodes.push(NodeLine {
                machine: machine.clone(),
                id,
                role,
                spawned: line.contains("  spawned  "),
                exited: line.ends_with("exited"),
                text: line.to_string(),
            });
        }
    }
    (nodes, counters)
}

#[test]
fn local_nodes_spawn_children_on_every_machine_and_exited_ones_are_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let config = r#"{"children": 6, "exit_every": 2, "start_after_ms": 300, "round_ms": 800}"#;
    let out = dz_ok(
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
            "sp",
            "--config",
            config,
        ],
    );
    assert!(out.contains("3 machines running spawner"), "{out}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("sp/cluster.json")).unwrap())
            .unwrap();
    let pids: Vec<u32> = state["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pid"].as_u64().unwrap() as u32)
        .collect();

    // Both rounds done: every parent heard 6 hellos, 6 pongs, then 3.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let out = dz_ok(tmp.path(), &["cluster", "status", "sp"]);
        let done = out.matches(r#""hellos":6,"pongs":[6,3]"#).count() == 3;
        if done || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    let (nodes, counters) = parse_status(&status);
    let parents: Vec<&NodeLine> = nodes.iter().filter(|n| n.role == "parent").collect();
    assert_eq!(parents.len(), 3, "{status}");
    for p in &parents {
        assert!(!p.spawned, "{}", p.text);
        assert!(p.text.contains(r#""hellos":6,"pongs":[6,3]"#), "{status}");
        assert!(p.text.contains(r#""refused":0"#), "{status}");
    }
    let children: Vec<&NodeLine> = nodes.iter().filter(|n| n.role == "child").collect();
    assert_eq!(children.len(), 18, "{status}");
    assert!(children.iter().all(|c| c.spawned), "{status}");
    // Ids are unique and outside the controller's range.
    let mut ids: Vec<u64> = children.iter().map(|c| c.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 18);
    assert!(ids[0] >= 1 << 24, "{ids:?}");
    // Every machine got children, and still runs some.
    for m in ["m0", "m1", "m2"] {
        let here: Vec<_> = children.iter().filter(|c| c.machine == m).collect();
        assert!(
            here.iter().any(|c| !c.exited),
            "no running child on {m}: {status}"
        );
        assert!(
            here.len() >= 3,
            "least loaded should spread children: {status}"
        );
    }
    let exited: Vec<_> = children.iter().filter(|c| c.exited).collect();
    assert_eq!(exited.len(), 9, "{status}");
    for c in children.iter().filter(|c| !c.exited) {
        assert!(c.text.contains(r#""pings":2"#), "{}", c.text);
    }
    // The second round's pings to the 9 exited children were dropped and counted.
    let total = |k: &str| counters.values().filter_map(|m| m.get(k)).sum::<u64>();
    assert_eq!(total("no_such_node"), 9, "{status}");
    assert_eq!(total("spawned"), 18, "{status}");
    assert_eq!(total("exited"), 9, "{status}");

    // The logs name the spawned nodes.
    let logs: String = ["m0", "m1", "m2"]
        .iter()
        .map(|m| std::fs::read_to_string(tmp.path().join(format!("sp/{m}.json.log"))).unwrap())
        .collect();
    for id in &ids {
        assert!(
            logs.lines()
                .any(|l| l.contains("spawned node started")
                    && l.contains(&format!("\"node_id\":{id}"))),
            "no start logged for {id}"
        );
    }

    let (code, _, err) = dz_run(tmp.path(), &["cluster", "down", "sp"]);
    assert_eq!(code, Some(0), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived `down`");
    }
}

/// The JSON status a node line ends with.
fn status_json(line: &str) -> serde_json::Value {
    line.find('{')
        .and_then(|i| serde_json::from_str(&line[i..]).ok())
        .unwrap_or_default()
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
