//! The consistency lab in Docker containers: the same run as in local
//! mode, the summary from the containers' records.
#![cfg(feature = "virtual")]

mod common;

use common::real::{DockerCleanup, assert_nothing_left, docker_available, dz_ok};

#[test]
fn virtual_consistency_run_gives_summary_from_real_records() {
    if !docker_available() {
        return;
    }
    let name = "consistency-virtual";
    let _cleanup = DockerCleanup(name.into());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    dz_ok(
        tmp.path(),
        &[
            "consistency",
            "run",
            "--mode",
            "virtual",
            "--name",
            name,
            "tests/data/cloudscope/raft.json",
            "--trace",
            "tests/data/cloudscope/traces.tsv",
            "--sim-time",
            "6s",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["mode"], "virtual");
    assert_eq!(s["writes"], 12, "{s}");
    assert_eq!(s["reads"], 6, "{s}");
    let f = |k: &str| s[k].as_f64().unwrap();
    assert!(f("committed_writes") >= 8.0, "{s}");
    assert!((20.0..60.0).contains(&f("mean_message_latency_ms")), "{s}");
    assert_nothing_left(name);
}
