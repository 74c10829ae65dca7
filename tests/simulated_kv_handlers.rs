//! The kv server's handlers stepped one at a time (`node::testing::Step`):
//! storage errors stop the server before anything it would send leaves, and
//! a server asks whether anyone hears a master (pre-vote) before it starts a
//! view change, so a restarted master learns the view instead of unseating
//! the healthy one.

use std::sync::Arc;
use std::time::Duration;

use distzero::node::testing::Step;
use distzero::node::{NodeId, Stop, Storage, StorageFaults};
use distzero::rng::stream;
use distzero::systems::kv::msg::{Entry, KvMsg, LogEntry, Op, Request};
use distzero::systems::kv::{Kv, KvNode};
use distzero::systems::{NodeSpec, Roster, System};

/// Server 1 of three.
fn follower() -> Step<KvNode> {
    server(1)
}

/// Server `me` of three.
fn server(me: u32) -> Step<KvNode> {
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
    let node = Kv::build(&roster.nodes[me as usize], &roster).unwrap();
    Step::new(NodeId(me), node)
}

/// The same server after its machine restarted: a new node, the same disk.
fn restarted(old: &Step<KvNode>) -> Step<KvNode> {
    let mut s = server(old.me.0);
    s.storage = old.storage.clone();
    s.now = old.now;
    s
}

fn status(s: &Step<KvNode>) -> serde_json::Value {
    distzero::node::Node::query(&s.node, "status").unwrap()
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

#[test]
fn kv_restarted_master_asks_before_it_acts_and_learns_the_view() {
    let mut first = server(0);
    first.start();
    assert_eq!(status(&first)["master"], true, "server 0 leads view 0");
    let mut s = restarted(&first);
    let e = s.start();
    let asked: Vec<_> = e.sends.iter().map(|(to, m)| (to.0, m)).collect();
    assert_eq!(asked.len(), 2, "{:?}", e.sends);
    assert!(
        asked
            .iter()
            .all(|(_, m)| matches!(m, KvMsg::PreVote { view: 0 })),
        "a restarted master asks; it starts no view: {:?}",
        e.sends
    );
    assert_eq!(status(&s)["status"], "PreVote");
    assert_eq!(status(&s)["master"], false);
    // Server 1 leads view 1 by now: it says so, and server 0 follows it.
    let e = s.message(NodeId(1), KvMsg::Nack { view: 1 });
    assert!(e.sends.is_empty(), "{:?}", e.sends);
    let st = status(&s);
    assert_eq!(
        (st["view"].as_u64(), st["status"].as_str()),
        (Some(1), Some("Normal"))
    );
    // ... and keeps following it while it hears from it.
    for _ in 0..20 {
        s.advance(Duration::from_millis(50));
        s.message(NodeId(1), KvMsg::Commit { view: 1, commit: 0 });
        let e = s.timer(distzero::node::TimerId(0), 1);
        assert!(
            !e.sends
                .iter()
                .any(|(_, m)| matches!(m, KvMsg::StartView { .. } | KvMsg::PreVote { .. })),
            "{:?}",
            e.sends
        );
    }
}

#[test]
fn kv_restarted_master_whose_followers_agree_takes_over_in_a_new_view() {
    let mut first = server(0);
    first.start();
    let mut s = restarted(&first);
    s.start();
    // One agreement makes a quorum of two with its own.
    let e = s.message(NodeId(2), KvMsg::PreVoteOk { view: 0 });
    assert!(
        e.sends
            .iter()
            .any(|(_, m)| matches!(m, KvMsg::StartView { view: 3, .. })),
        "{:?}",
        e.sends
    );
    assert_eq!(status(&s)["status"], "ViewChange");
}

#[test]
fn kv_follower_hearing_its_master_refuses_a_pre_vote() {
    let mut s = follower();
    s.start();
    s.advance(Duration::from_millis(100));
    s.message(NodeId(0), KvMsg::Commit { view: 0, commit: 0 });
    s.advance(Duration::from_millis(100));
    let e = s.message(NodeId(2), KvMsg::PreVote { view: 0 });
    assert!(e.sends.is_empty(), "it hears server 0: {:?}", e.sends);
    // A pre-vote changes nothing at the receiver, even from a newer view.
    let e = s.message(NodeId(2), KvMsg::PreVote { view: 5 });
    assert!(e.sends.is_empty(), "{:?}", e.sends);
    assert_eq!(status(&s)["view"], 0);
    // The master itself asking means it restarted: nothing left to keep.
    let e = s.message(NodeId(0), KvMsg::PreVote { view: 0 });
    assert!(
        matches!(e.sends[..], [(NodeId(0), KvMsg::PreVoteOk { view: 0 })]),
        "{:?}",
        e.sends
    );
    // Once the master has been silent for an election timeout, it agrees.
    s.advance(Duration::from_millis(300));
    let e = s.message(NodeId(2), KvMsg::PreVote { view: 0 });
    assert!(
        matches!(e.sends[..], [(NodeId(2), KvMsg::PreVoteOk { view: 0 })]),
        "{:?}",
        e.sends
    );
    // One from an older view is told the current one.
    s.message(NodeId(2), KvMsg::Commit { view: 2, commit: 0 });
    let e = s.message(NodeId(0), KvMsg::PreVote { view: 0 });
    assert!(
        matches!(e.sends[..], [(NodeId(0), KvMsg::Nack { view: 2 })]),
        "{:?}",
        e.sends
    );
}

#[test]
fn kv_master_never_agrees_to_replace_itself() {
    let mut s = server(0);
    s.start();
    s.advance(Duration::from_secs(5));
    let e = s.message(NodeId(1), KvMsg::PreVote { view: 0 });
    assert!(e.sends.is_empty(), "{:?}", e.sends);
}

#[test]
fn kv_silent_master_makes_a_follower_ask_before_a_view_change() {
    let mut s = follower();
    s.start();
    // Ticks until the election timeout (300 to 600 ms) passes.
    let mut asked = None;
    for _ in 0..40 {
        s.advance(Duration::from_millis(25));
        let e = s.timer(distzero::node::TimerId(0), 1);
        assert!(
            !e.sends
                .iter()
                .any(|(_, m)| matches!(m, KvMsg::StartView { .. })),
            "no view change before the others agree: {:?}",
            e.sends
        );
        if e.sends
            .iter()
            .any(|(_, m)| matches!(m, KvMsg::PreVote { view: 0 }))
        {
            asked = Some(s.now);
            break;
        }
    }
    assert!(asked.is_some(), "the follower never asked");
    let e = s.message(NodeId(2), KvMsg::PreVoteOk { view: 0 });
    assert!(
        e.sends
            .iter()
            .any(|(_, m)| matches!(m, KvMsg::StartView { view: 1, .. })),
        "{:?}",
        e.sends
    );
}
