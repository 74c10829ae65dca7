//! The `dz` command line in simulated mode: outputs of the happy paths, and
//! one clear line with exit code 2 for every kind of bad input.

use std::path::Path;

use rstest::rstest;

#[path = "common/cli.rs"]
mod cli;
use cli::dz;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const OK_NODES: &str = r#""nodes": [{"id": "a"}, {"id": "b"}]"#;

#[rstest]
#[case::not_json("{ nodes: ", "not valid JSON")]
#[case::unknown_system(
    r#"{"nodes": [{"id": "a", "system": "warp"}]}"#,
    "nodes[0].system: unknown system \"warp\""
)]
#[case::missing_node(
    &format!(r#"{{"meta": {{"system": "pingpong"}}, {OK_NODES}, "links": [{{"source": 0, "target": 5, "latency": 3}}]}}"#),
    "links[0].target: no node 5"
)]
#[case::negative_latency(
    &format!(r#"{{"meta": {{"system": "pingpong"}}, {OK_NODES}, "links": [{{"source": 0, "target": 1, "latency": -2}}]}}"#),
    "links[0].latency: negative latency"
)]
#[case::malformed_latency(
    &format!(r#"{{"meta": {{"system": "pingpong"}}, {OK_NODES}, "links": [{{"source": 0, "target": 1, "connection": "variable", "latency": "fast"}}]}}"#),
    "links[0].latency: expected [lo, hi]"
)]
#[case::bad_fault(
    &format!(r#"{{"meta": {{"system": "pingpong", "faults": [{{"at": 5, "kind": "meteor"}}]}}, {OK_NODES}}}"#),
    "meta.faults[0]: kind: unknown fault \"meteor\""
)]
fn simulated_bad_topology_is_one_line_and_exit_2(#[case] text: &str, #[case] says: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "topo.json", text);
    let out = dz(tmp.path()).args(["simulate", &file]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("topo.json") && err.contains(says),
        "{err}"
    );
}

#[rstest]
#[case(&["simulate", "no-such-file.json"], "no-such-file.json")]
#[case(&["simulate", "examples/topologies/three-sites.json", "--duration", "soon"], "--duration")]
#[case(&["clocks", "--rates", "6,0,1"], "rate 0 of machine 1 must be a positive number")]
#[case(&["clocks", "--rates", "6,x"], "is not a number")]
#[case(&["clocks", "--duration", "3 parsecs"], "--duration")]
#[case(&["clocks", "--internal-prob", "1.5"], "not in [0, 1)")]
#[case(&["bench", "pingpong", "--nodes", "1"], "at least 2")]
#[case(&["frobnicate"], "unrecognized subcommand")]
fn simulated_bad_flags_are_one_line_and_exit_2(#[case] args: &[&str], #[case] says: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let out = dz(tmp.path()).args(args).output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(says) && !err.contains("panicked"), "{err}");
}

#[test]
fn simulated_simulate_writes_results_trace_and_log() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("run");
    let run = |seed: &str| {
        let out = dz(tmp.path())
            .args([
                "simulate",
                "examples/topologies/three-sites.json",
                "--seed",
                seed,
                "--check-wire",
            ])
            .arg("--out")
            .arg(&out_dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let hash = text
            .lines()
            .find_map(|l| l.strip_prefix("trace hash "))
            .unwrap()
            .to_string();
        hash.split_whitespace().next().unwrap().to_string()
    };
    let h1 = run("5");
    assert_eq!(h1, run("5"));
    assert_ne!(h1, run("6"));

    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["seed"], 6);
    assert_eq!(results["settings"]["system"], "pingpong");
    assert!(results["events"].as_u64().unwrap() > 1000);
    assert!(results["sim_time_s"].as_f64().unwrap() == 10.0);
    assert!(results["wall_time_s"].as_f64().is_some());
    let nodes = results["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 4);
    assert!(nodes[0]["messages"]["Ping"]["sent"].as_u64().unwrap() > 0);
    // The schedule crashed tokyo-1 and partitioned the sites.
    assert!(results["drops_by_reason"]["machine_down"].as_u64().unwrap() > 0);
    assert!(results["drops_by_reason"]["link_down"].as_u64().unwrap() > 0);
    let links = results["links"].as_array().unwrap();
    assert!(
        links
            .iter()
            .any(|l| l["source"] == "paris-1" && l["target"] == "tokyo-1")
    );

    let trace = std::fs::read_to_string(out_dir.join("trace.jsonl")).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for line in trace.lines() {
        let ev: serde_json::Value = serde_json::from_str(line).unwrap();
        kinds.insert(ev["ev"].as_str().unwrap().to_string());
    }
    for k in [
        "send", "deliver", "drop", "timer", "crash", "restart", "link",
    ] {
        assert!(kinds.contains(k), "no {k} event in the trace");
    }

    let log = std::fs::read_to_string(out_dir.join("dz.json.log")).unwrap();
    let line: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    for field in ["mode", "machine", "node", "vtime_ms"] {
        assert!(
            line.get(field).is_some(),
            "log line without {field}: {line}"
        );
    }
    assert_eq!(line["mode"], "simulated");
}

#[test]
fn simulated_clocks_command_writes_logs_summary_and_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let out = dz(tmp.path())
        .args([
            "clocks",
            "--rates",
            "6,2,1,1",
            "--duration",
            "30s",
            "--seed",
            "3",
            "--out",
        ])
        .arg(tmp.path().join("c"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tmp.path().join("c");
    for f in ["summary.json", "clock.png", "queue.png"] {
        assert!(std::fs::metadata(dir.join(f)).unwrap().len() > 1000, "{f}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let machines = summary["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 4);
    for key in [
        "rate",
        "final_clock",
        "max_jump",
        "max_queue",
        "mean_queue",
        "drift",
    ] {
        assert!(machines[3].get(key).is_some(), "summary lacks {key}");
    }
    // Check Lamport's rules straight from the CSV files.
    for m in 0..4 {
        let csv = std::fs::read_to_string(dir.join(format!("m{m}.csv"))).unwrap();
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("event,time_s,queue_len,clock_before,clock_after,jump,received,sent_to")
        );
        let mut last = 0u64;
        let mut rows = 0;
        for line in lines {
            let f: Vec<&str> = line.split(',').collect();
            let (before, after): (u64, u64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
            assert!(before >= last && after > before, "{line}");
            if f[0] == "receive" {
                assert!(after > f[6].parse::<u64>().unwrap(), "{line}");
            }
            last = after;
            rows += 1;
        }
        assert!(rows >= 29);
    }
}

#[test]
fn simulated_bench_and_demo_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = dz(tmp.path())
        .args(["bench", "pingpong", "--nodes", "50", "--sim-ms", "300"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("deliveries per wall second"), "{text}");

    let out = dz(tmp.path()).args(["demo", "--history"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("invariants hold"), "{text}");
    assert!(tmp.path().join("demo/clocks-p0.7/clock.png").exists());
    assert!(text.contains("the history is linearizable"), "{text}");
    let scene: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("demo/kv-scene.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(scene["verdict"]["linearizable"], true);
    assert!(
        scene["view_changes"].as_u64().unwrap() >= 2,
        "a crash and a partition: {scene}"
    );
    assert_eq!(scene["unanswered"], 0);
    // The scene's whole history, checked again from its file.
    let history = tmp.path().join("demo/kv-history.jsonl");
    let out = dz(tmp.path())
        .args(["kv", "check", history.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("linearizable: yes"), "{text}");
}

/// `dz kv check`: a history sim-check wrote checks again from its file; a
/// hand-made violation is reported (exit 1); a malformed file is one line
/// naming the line (exit 2).
#[test]
fn simulated_kv_check_reads_history_files() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let out = dz(t)
        .args([
            "kv",
            "sim-check",
            "--seed",
            "3",
            "--seconds",
            "2",
            "--histories",
        ])
        .args(["--out", t.join("sc").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = t.join("sc/seed-3.history.jsonl");
    let out = dz(t)
        .args(["kv", "check", file.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("linearizable: yes") && text.contains("longest gaps between answers"),
        "{text}"
    );

    // A write acknowledged, then lost: the later read sees the old value.
    let lost = write(
        t,
        "lost.jsonl",
        concat!(
            r#"{"client":1,"id":1,"op":"update","key":"a","value":"1","call_ns":0,"return_ns":10,"outcome":"ok"}"#,
            "\n",
            r#"{"client":1,"id":2,"op":"update","key":"a","value":"2","call_ns":20,"return_ns":30,"outcome":"ok"}"#,
            "\n",
            r#"{"client":2,"id":1,"op":"get","key":"a","call_ns":40,"return_ns":50,"outcome":"value","read":"1"}"#,
            "\n",
        ),
    );
    let out = dz(t).args(["kv", "check", &lost]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("NOT linearizable: key \"a\""), "{text}");
    assert_eq!(text.matches(r#""key":"a""#).count(), 3, "{text}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");

    let bad = write(
        t,
        "bad.jsonl",
        concat!(
            r#"{"client":1,"id":1,"op":"get","key":"a","call_ns":0,"return_ns":10,"outcome":"not_found"}"#,
            "\n",
            r#"{"client":1,"id":2,"op":"get","key":"a","call_ns":20}"#,
            "\n",
        ),
    );
    for (file, says) in [
        (bad.as_str(), "bad.jsonl: line 2: missing field `outcome`"),
        ("nope.jsonl", "nope.jsonl"),
    ] {
        let out = dz(t).args(["kv", "check", file]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{file}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(says), "{err}");
    }
}

#[rstest]
#[case(&["--help"], "simulate")]
#[case(&["simulate", "--help"], "--check-wire")]
#[case(&["clocks", "--help"], "--internal-prob")]
#[case(&["bench", "pingpong", "--help"], "--sim-ms")]
#[case(&["demo", "--help"], "--out")]
#[case(&["kv", "check", "--help"], "linearizability")]
#[case(&["kv", "sim-check", "--help"], "--histories")]
#[case(&["kv", "failover", "--help"], "--scene")]
fn simulated_help_explains_each_command(#[case] args: &[&str], #[case] says: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let out = dz(tmp.path()).args(args).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout).unwrap().contains(says));
}
