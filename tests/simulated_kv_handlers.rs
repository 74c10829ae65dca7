//! The kv server's handlers stepped one at a time (`node::testing::Step`):
//! storage errors stop the server before anything it would send leaves.

use std::sync::Arc;

use distzero::node::testing::Step;
use distzero::node::{NodeId, Stop, Storage, StorageFaults};
use distzero::rng::stream;
use distzero::systems::kv::msg::{Entry, KvMsg, LogEntry, Op, Request};
use distzero::systems::kv::{Kv, KvNode};
use distzero::systems::{NodeSpec, Roster, System};

/// Server 1 of three.
fn follower() -> Step<KvNode> {
    let nodes = (0..3)
        .map(|i| NodeSpec {
            id: NodeId(i),
            name: format!("s{i}"),
            system: "kv".into(),
            role: "server".into(),
            config: serde_json::json!({}),
        })
        .collect();
    let roster = Arc::new(Roster { nodes });
    let node = Kv::build(&roster.nodes[1], &roster).unwrap();
    Step::new(NodeId(1), node)
}

fn prepare(index: u64) -> KvMsg {
    let req = Request {
        client: NodeId(9),
        id: index,
        op: Op::Update("k".into(), "v".into()),
        min_outstanding: 0,
    };
    KvMsg::Prepare {
        view: 0,
        index,
        entry: Arc::new(LogEntry {
            view: 0,
            entry: Entry::Batch(vec![req]),
        }),
        commit: 0,
    }
}

fn failed(stop: &Option<Stop>) -> &str {
    match stop {
        Some(Stop::Failed(why)) => why,
        other => panic!("expected a fail-stop, got {other:?}"),
    }
}

#[test]
fn kv_follower_acknowledges_a_prepare_it_stored() {
    let mut s = follower();
    s.start();
    let e = s.message(NodeId(0), prepare(1));
    assert!(e.stop.is_none());
    assert!(
        e.sends
            .iter()
            .any(|(to, m)| *to == NodeId(0) && matches!(m, KvMsg::PrepareOk { index: 1, .. })),
        "{:?}",
        e.sends
    );
    assert!(s.storage.read("log").is_some_and(|l| !l.is_empty()));
}

#[test]
fn kv_follower_whose_append_fails_stops_without_acknowledging() {
    let mut s = follower();
    s.start();
    let faults = StorageFaults {
        write_error: 1.0,
        ..Default::default()
    };
    s.storage.set_faults(&faults, stream(1, "disk", 0));
    let e = s.message(NodeId(0), prepare(1));
    assert!(failed(&e.stop).contains("log"), "{:?}", e.stop);
    assert!(e.sends.is_empty(), "nothing leaves: {:?}", e.sends);
}

#[test]
fn kv_follower_on_a_full_disk_stops_without_acknowledging() {
    let mut s = follower();
    s.start();
    let used: usize = ["view", "log"]
        .iter()
        .filter_map(|f| s.storage.read(f).map(<[u8]>::len))
        .sum();
    let faults = StorageFaults {
        capacity: Some(used + 8),
        ..Default::default()
    };
    s.storage.set_faults(&faults, stream(1, "disk", 0));
    let e = s.message(NodeId(0), prepare(1));
    let why = failed(&e.stop);
    assert!(why.to_lowercase().contains("space"), "{why}");
    assert!(e.sends.is_empty(), "nothing leaves: {:?}", e.sends);
}

#[test]
fn kv_server_with_unreadable_state_refuses_to_start() {
    let mut s = follower();
    s.storage.write("view", b"not a view").unwrap();
    s.storage.sync("view").unwrap();
    let e = s.start();
    let why = failed(&e.stop);
    assert!(why.contains("cannot read durable state"), "{why}");
    assert!(e.sends.is_empty() && e.timers.is_empty());
}
