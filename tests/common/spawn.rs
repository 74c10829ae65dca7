//! The `spawner` scenario both real modes run: parents spawn children on
//! the next machine and on the least loaded ones; children answer, some
//! exit; `cluster status` shows where they run.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::real::dz_ok;

/// One node line of `cluster status`, under its machine.
#[derive(Debug)]
pub struct NodeLine {
    pub machine: String,
    pub id: u64,
    pub role: String,
    pub spawned: bool,
    pub exited: bool,
    pub text: String,
}

/// The node lines, and each machine's transport counters.
pub fn parse_status(out: &str) -> (Vec<NodeLine>, BTreeMap<String, BTreeMap<String, u64>>) {
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

/// The JSON status a node line ends with.
pub fn status_json(line: &str) -> serde_json::Value {
    line.find('{')
        .and_then(|i| serde_json::from_str(&line[i..]).ok())
        .unwrap_or_default()
}

/// Brings up cluster `name` of 3 machines in `mode` running the spawner
/// and checks the scenario; the caller takes it down.
pub fn children_everywhere(tmp: &Path, mode: &str, name: &str) {
    let config = r#"{"children": 6, "exit_every": 2, "start_after_ms": 300, "round_ms": 800}"#;
    let out = dz_ok(
        tmp,
        &[
            "cluster",
            "up",
            "--mode",
            mode,
            "--machines",
            "3",
            "--system",
            "spawner",
            "--name",
            name,
            "--config",
            config,
        ],
    );
    assert!(out.contains("3 machines running spawner"), "{out}");
    // Both rounds done: every parent heard 6 hellos, 6 pongs, then 3.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let out = dz_ok(tmp, &["cluster", "status", name]);
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
        .map(|m| std::fs::read_to_string(tmp.join(format!("{name}/{m}.json.log"))).unwrap())
        .collect();
    for id in &ids {
        assert!(
            logs.lines()
                .any(|l| l.contains("spawned node started")
                    && l.contains(&format!("\"node_id\":{id}"))),
            "no start logged for {id}"
        );
    }
}
