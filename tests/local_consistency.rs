//! The consistency lab on local processes: the same topology and trace as
//! in simulation, link latency applied by the agents, and the summary
//! computed from the records the real replicas made.

mod common;

use common::real::{dz_ok, dz_run};

#[test]
fn local_consistency_run_gives_summary_from_real_records() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let stdout = dz_ok(
        tmp.path(),
        &[
            "consistency",
            "run",
            "--mode",
            "local",
            "--name",
            "consistency-local",
            "tests/data/cloudscope/raft.json",
            "--trace",
            "tests/data/cloudscope/traces.tsv",
            "--sim-time",
            "4s",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        stdout.contains("mode                        local"),
        "{stdout}"
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["mode"], "local");
    // Every access of the trace happened on a real replica.
    assert_eq!(s["writes"], 12, "{s}");
    assert_eq!(s["reads"], 6, "{s}");
    // A leader was elected over real TCP and committed what reached it.
    let f = |k: &str| s[k].as_f64().unwrap();
    assert!(f("committed_writes") >= 8.0, "{s}");
    assert!(f("visible_writes") >= 8.0, "{s}");
    // Links are uniform 15-45 ms, applied by the agents.
    assert!((20.0..60.0).contains(&f("mean_message_latency_ms")), "{s}");
    assert!(f("mean_commit_latency_ms") > 30.0, "{s}");
    let by_type = &s["messages_by_type"];
    assert!(by_type["Heartbeat"].as_u64().unwrap() > 50, "{s}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert!(results["latencies"]["r0"].is_object() || results["latencies"]["r1"].is_object());
    let (code, _, _) = dz_run(tmp.path(), &["cluster", "status", "consistency-local"]);
    assert_ne!(code, Some(0), "the cluster is down and forgotten");
}
