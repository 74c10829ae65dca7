//! The consistency lab in simulation: CloudScope's files load (or are
//! refused naming the field), its Raft fixture gives figures in the range
//! of its recorded results, runs are deterministic, wide latency has the
//! published effects, and bad input is exit 2 with nothing written.

mod common;

use std::path::Path;

use common::real::{dz_ok, dz_run};
use distzero::drivers::consistency::experiment::{load_inputs, metrics, simulate};
use distzero::drivers::consistency::settings::RunSettings;
use distzero::topology::Topology;
use serde_json::Value;

const DATA: &str = "tests/data/cloudscope";

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn simulated_cloudscope_files_load_unchanged() {
    for f in ["raft.json", "federated.json", "tag.json"] {
        let t = Topology::load(&Path::new(DATA).join(f)).unwrap();
        assert_eq!(t.system, "consistency", "{f}");
    }
    let fed = Topology::load(&Path::new(DATA).join("federated.json")).unwrap();
    assert_eq!(fed.nodes.len(), 20);
    assert_eq!(fed.links.len(), 380, "190 links, both ways");
    assert_eq!(fed.meta["anti_entropy_delay"], 37, "meta keys stay labels");
    // Shapes of CloudScope's other files: array local_latency, any area,
    // nodes without ids, labels such as files, a link left out of the mesh.
    let t = Topology::parse(
        r#"{"meta": {"title": "Three Tier Hierarchy", "description": "d", "seed": null,
                     "local_latency": [30, 5], "wide_latency": [300, 50], "hearbeat_interval": 300},
            "nodes": [{"consistency": "strong", "location": "Alpha 0", "files": {}},
                      {"id": "a01", "consistency": "STRONG", "location": "Alpha 0", "type": "storage"},
                      {"id": "b00", "consistency": "eventual", "location": "Bravo 0"}],
            "links": [{"source": 0, "target": 1, "connection": "normal", "area": "inner", "latency": [15, 2]},
                      {"source": 1, "target": 2, "connection": "variable", "latency": [300, 1500], "online": false}]}"#,
    )
    .unwrap();
    assert_eq!(t.nodes[0].name, "r0");
    assert_eq!(t.links[0].area, "inner");
    assert_eq!(t.links[2].area, "wide", "inferred from the locations");
    assert_eq!(t.faults.len(), 2, "an offline link starts down both ways");
}

#[test]
fn simulated_retired_consistency_names_are_refused_with_the_field() {
    for (name, hint) in [
        ("medium", "eventual"),
        ("low", "eventual"),
        ("causal", "no protocol"),
        ("federated", "--integration"),
    ] {
        let text = format!(
            r#"{{"nodes": [{{"id": "r0", "consistency": "strong"}}, {{"id": "r1", "consistency": "{name}"}}]}}"#
        );
        let e = Topology::parse(&text).unwrap_err();
        assert!(
            e.starts_with("nodes[1].consistency:") && e.contains(hint),
            "{name}: {e}"
        );
    }
    let e = Topology::parse(
        r#"{"nodes": [{"id": "r0", "consistency": "eventual", "election_timeout": [300, 150]}]}"#,
    )
    .unwrap_err();
    assert!(e.starts_with("nodes[0].election_timeout"), "{e}");
}

fn raft_fixture() -> Value {
    let t = Topology::load(&Path::new(DATA).join("raft.json")).unwrap();
    let (s, given) = RunSettings::load(&Path::new(DATA).join("raft-settings.json")).unwrap();
    let seed = s.random_seed;
    let exp = load_inputs(t, "raft.json".into(), s, given, seed, None, None).unwrap();
    let run = simulate(&exp, &mut |_| {}).unwrap();
    let (series, m) = metrics(&exp, &run).unwrap();
    let files = distzero::drivers::consistency::results::build(
        &exp,
        &run,
        &series,
        &m,
        distzero::node::Mode::Simulated,
    );
    files.summary
}

#[test]
fn simulated_raft_fixture_is_in_the_range_of_cloudscopes_recorded_results() {
    let s = raft_fixture();
    let f = |k: &str| s[k].as_f64().unwrap_or_else(|| panic!("{k} in {s}"));
    eprintln!("{}", serde_json::to_string_pretty(&s).unwrap());
    // CloudScope recorded: commit 121 ms, write 46 ms, visibility 96 ms,
    // 10,762 messages of which 5,020 heartbeats and 5,320 AE responses.
    assert!((80.0..170.0).contains(&f("mean_commit_latency_ms")), "{s}");
    assert!((25.0..80.0).contains(&f("mean_write_latency_ms")), "{s}");
    assert!(
        (60.0..150.0).contains(&f("mean_visibility_latency_ms")),
        "{s}"
    );
    assert!((8_000.0..14_000.0).contains(&f("messages_sent")), "{s}");
    let by_type = &s["messages_by_type"];
    let hb = by_type["Heartbeat"].as_f64().unwrap() + by_type["AEResponse"].as_f64().unwrap();
    assert!(hb > 0.8 * f("messages_sent"), "heartbeats dominate: {s}");
    assert!((25.0..35.0).contains(&f("mean_message_latency_ms")), "{s}");
    assert!(
        f("writes") > 40.0 && f("committed_writes") >= 0.9 * f("writes"),
        "{s}"
    );
}

#[test]
fn simulated_same_seed_same_results_file() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &str, seed: &str| {
        let dir = tmp.path().join(out);
        dz_ok(
            tmp.path(),
            &[
                "consistency",
                "simulate",
                &format!("{DATA}/federated.json"),
                "--integration",
                "federated",
                "--sim-time",
                "60s",
                "--users",
                "3",
                "--seed",
                seed,
                "--out",
                dir.to_str().unwrap(),
            ],
        );
        std::fs::read(dir.join("results.json")).unwrap()
    };
    let (a, b, c) = (run("a", "7"), run("b", "7"), run("c", "8"));
    assert!(a == b, "same seed, same results.json");
    assert!(a != c, "another seed, another run");
    let r: Value = serde_json::from_slice(&a).unwrap();
    for key in [
        "simulation",
        "version",
        "randseed",
        "timesteps",
        "settings",
        "timer",
        "results",
        "messages",
        "latencies",
        "topology",
    ] {
        assert!(
            r.get(key).is_some(),
            "results.json has CloudScope's key {key}"
        );
    }
    assert!(
        r["results"]["visibility latency"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    );
}

#[test]
fn simulated_wide_latency_has_the_published_effects() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    dz_ok(
        tmp.path(),
        &[
            "consistency",
            "sweep",
            "--param",
            "wide-latency",
            "--values",
            "30,480",
            "--protocols",
            "eventual,raft",
            "--tick-model",
            "conservative",
            "--users",
            "3",
            "--conflict",
            "0.8",
            "--objects",
            "2",
            "--access-mean",
            "1200",
            "--access-stddev",
            "180",
            "--sim-time",
            "5m",
            "--jobs",
            "2",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let text = std::fs::read_to_string(out.join("sweep.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let get = |p: &str, v: f64, k: &str| {
        lines
            .iter()
            .find(|l| l["protocol"] == p && l["value"].as_f64() == Some(v))
            .and_then(|l| l[k].as_f64())
            .unwrap_or_else(|| panic!("{p} {v} {k}: {text}"))
    };
    assert!(
        get("eventual", 480.0, "percent_stale_reads")
            > get("eventual", 30.0, "percent_stale_reads")
    );
    assert!(get("raft", 480.0, "percent_stale_reads") > get("raft", 30.0, "percent_stale_reads"));
    assert!(
        get("eventual", 480.0, "percent_forked_writes")
            > get("eventual", 30.0, "percent_forked_writes")
    );
    assert!(
        get("eventual", 480.0, "percent_visible_writes")
            < get("eventual", 30.0, "percent_visible_writes")
    );
    assert_eq!(
        get("eventual", 480.0, "mean_write_latency_ms"),
        0.0,
        "eventual writes are local"
    );
    assert!(
        get("raft", 480.0, "mean_commit_latency_ms")
            > 2.0 * get("raft", 30.0, "mean_commit_latency_ms")
    );
    for f in [
        "sweep.csv",
        "percent_stale_reads.png",
        "percent_stale_reads.svg",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
}

#[test]
fn simulated_every_protocol_runs_the_small_trace() {
    let tmp = tempfile::tempdir().unwrap();
    for (topology, extra) in [
        ("raft.json", vec!["--commit-quorum", "followers"]),
        ("tag.json", vec![]),
        ("federated.json", vec!["--integration", "floated"]),
    ] {
        let out = tmp.path().join(topology.replace(".json", ""));
        let (file, trace) = (format!("{DATA}/{topology}"), format!("{DATA}/traces.tsv"));
        let mut args = vec![
            "consistency",
            "simulate",
            &file,
            "--trace",
            &trace,
            "--sim-time",
            "10s",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let (code, stdout, stderr) = dz_run(tmp.path(), &args);
        if topology == "federated.json" {
            // traces.tsv names r0 and r1, which federated.json does not have.
            assert_eq!(code, Some(2), "{stdout}{stderr}");
            assert!(
                stderr.contains("traces.tsv:1: replica: no node \"r0\""),
                "{stderr}"
            );
            assert!(!out.exists(), "nothing written");
            continue;
        }
        assert_eq!(code, Some(0), "{topology}: {stdout}{stderr}");
        let s = summary(&out);
        assert_eq!(s["writes"], 12, "{topology}: {s}");
        assert_eq!(s["reads"], 6, "{topology}: {s}");
    }
}

#[test]
fn simulated_bad_input_is_one_line_exit_2_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    let bad_trace = tmp.path().join("bad.tsv");
    std::fs::write(&bad_trace, "10 r0 A write\n20 r1 A rd\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "simulate".into(),
                format!("{DATA}/raft.json"),
                "--trace".into(),
                bad_trace.display().to_string(),
            ],
            "bad.tsv:2: method",
        ),
        (
            vec![
                "simulate".into(),
                format!("{DATA}/raft.json"),
                "--read-prob".into(),
                "1.5".into(),
            ],
            "read_prob",
        ),
        (
            vec![
                "simulate".into(),
                format!("{DATA}/raft.json"),
                "--integration".into(),
                "tiered-ish".into(),
            ],
            "--integration",
        ),
        (
            vec!["simulate".into(), format!("{DATA}/nope.json")],
            "nope.json",
        ),
        (
            vec![
                "simulate".into(),
                format!("{DATA}/raft.json"),
                "--trace".into(),
                format!("{DATA}/traces.tsv"),
                "--mobile".into(),
            ],
            "--mobile",
        ),
        (
            vec![
                "sweep".into(),
                "--protocols".into(),
                "eventual,paxos".into(),
            ],
            "--protocols: unknown protocol \"paxos\"",
        ),
        (
            vec![
                "multisim".into(),
                format!("{DATA}/raft.json"),
                "--shard".into(),
                "3/2".into(),
            ],
            "--shard",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["consistency".to_string()];
        full.extend(args.clone());
        full.extend(["--out".to_string(), o.to_string()]);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = dz_run(tmp.path(), &full);
        assert_eq!(code, Some(2), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!out.exists(), "{args:?} wrote {o}");
    }
}

#[test]
fn simulated_multisim_shards_merge_into_the_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).display().to_string();
    let files = [
        format!("{DATA}/raft.json"),
        format!("{DATA}/tag.json"),
        format!("{DATA}/raft.json"),
    ];
    let common = [
        "--trace",
        "tests/data/cloudscope/traces.tsv",
        "--sim-time",
        "5s",
        "--jobs",
        "1",
    ];
    let mut all = vec!["consistency", "multisim"];
    all.extend(files.iter().map(String::as_str));
    all.extend(common);
    let whole = p("all.jsonl");
    let mut a = all.clone();
    a.extend(["--out", &whole]);
    dz_ok(tmp.path(), &a);
    for k in 0..2 {
        let shard = format!("{k}/2");
        let out = p(&format!("s{k}.jsonl"));
        let mut a = all.clone();
        a.extend(["--shard", &shard, "--out", &out]);
        dz_ok(tmp.path(), &a);
    }
    let merged = p("merged.jsonl");
    dz_ok(
        tmp.path(),
        &[
            "consistency",
            "merge",
            &p("s0.jsonl"),
            &p("s1.jsonl"),
            "--out",
            &merged,
        ],
    );
    let strip = |path: &str| -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("wall_ms");
                v
            })
            .collect()
    };
    let (w, m) = (strip(&whole), strip(&merged));
    assert_eq!(w.len(), 3);
    assert_eq!(w, m, "the shards merged are the whole");
}

#[test]
fn simulated_generators_write_what_the_loaders_read() {
    let tmp = tempfile::tempdir().unwrap();
    let topo = tmp.path().join("t.json");
    let traces = tmp.path().join("t.tsv.gz");
    let outages = tmp.path().join("o.tsv");
    let (t, tr, o) = (
        topo.to_str().unwrap(),
        traces.to_str().unwrap(),
        outages.to_str().unwrap(),
    );
    dz_ok(
        tmp.path(),
        &[
            "consistency",
            "topology",
            "-n",
            "8",
            "-l",
            "2",
            "--type",
            "federated",
            "--wide",
            "120,20",
            "--tick-model",
            "howard",
            "-o",
            t,
        ],
    );
    let topology = Topology::load(&topo).unwrap();
    assert_eq!(topology.nodes.len(), 8);
    // howard: T = 2 (120 + 2*20) = 320 → heartbeat 160, anti-entropy 80.
    assert_eq!(topology.nodes[0].config["heartbeat_interval"], 160.0);
    assert_eq!(topology.nodes[0].config["consistency"], "strong");
    assert_eq!(topology.nodes[1].config["consistency"], "eventual");
    dz_ok(
        tmp.path(),
        &[
            "consistency",
            "traces",
            t,
            "--users",
            "2",
            "--sim-time",
            "60s",
            "-w",
            tr,
        ],
    );
    dz_ok(
        tmp.path(),
        &[
            "consistency",
            "outages",
            t,
            "--outage-prob",
            "0.5",
            "--online-mean",
            "2000",
            "--outage-mean",
            "1000",
            "--sim-time",
            "60s",
            "-w",
            o,
        ],
    );
    let rows = distzero::drivers::consistency::trace::load(&traces, &topology).unwrap();
    assert!(rows.len() > 20, "about 2 users x 20 accesses");
    let down = distzero::drivers::consistency::outages::load(&outages, &topology).unwrap();
    assert!(down.iter().any(|r| !r.online) && down.iter().any(|r| r.online));
    let out = tmp.path().join("run");
    dz_ok(
        tmp.path(),
        &[
            "consistency",
            "simulate",
            t,
            "--trace",
            tr,
            "--outages",
            o,
            "--sim-time",
            "60s",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let s = summary(&out);
    assert_eq!(s["integration"], "federated", "from the generated meta");
    assert!(
        s["messages_dropped"].as_u64().unwrap() > 0,
        "outages drop messages: {s}"
    );
}

/// `dz consistency simulate DATA/topology ARGS --out tmp/out`: results.json.
fn simulate_file(tmp: &Path, topology: &str, args: &[&str], out: &str) -> Vec<u8> {
    let dir = tmp.join(out);
    let topo = format!("{DATA}/{topology}");
    let o = dir.display().to_string();
    let mut all = vec!["consistency", "simulate", &topo];
    all.extend(args);
    all.extend(["--out", &o]);
    dz_ok(tmp, &all);
    std::fs::read(dir.join("results.json")).unwrap()
}

#[test]
fn simulated_trace_messages_writes_cloudscopes_sent_and_recv_series() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &str, extra: &[&str]| -> Value {
        let mut args = vec!["--sim-time", "5s"];
        args.extend(extra);
        serde_json::from_slice(&simulate_file(tmp.path(), "raft.json", &args, out)).unwrap()
    };
    let plain = run("plain", &[]);
    assert!(plain["results"].get("sent").is_none(), "off by default");
    let r = run("traced", &["--trace-messages"]);
    let sent = r["results"]["sent"].as_array().unwrap();
    let recv = r["results"]["recv"].as_array().unwrap();
    let total: u64 = r["messages"]["messages"]["sent"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(sent.len() as u64, total, "one row a message sent");
    assert!(!recv.is_empty() && recv.len() <= sent.len());
    // CloudScope's tuples: sent [source, target, t, type],
    // recv [target, source, t, type, delay]; links are uniform 15-45 ms.
    let s = sent[0].as_array().unwrap();
    assert_eq!(s.len(), 4);
    assert!(s[0].is_string() && s[1].is_string() && s[2].is_number() && s[3].is_string());
    for row in recv {
        let v = row.as_array().unwrap();
        assert_eq!(v.len(), 5);
        let delay = v[4].as_f64().unwrap();
        assert!((15.0..=45.0).contains(&delay), "{row}");
        assert!(v[0] != v[1], "{row}");
    }
}

#[test]
fn simulated_forte_changes_federated_runs_and_stays_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &str, extra: &[&str]| -> Vec<u8> {
        let mut args = vec![
            "--integration",
            "federated",
            "--sim-time",
            "120s",
            "--users",
            "3",
            "--conflict",
            "0.8",
            "--access-mean",
            "1200",
        ];
        args.extend(extra);
        simulate_file(tmp.path(), "federated.json", &args, out)
    };
    let plain = run("plain", &[]);
    let a = run("a", &["--forte-on-append"]);
    assert_eq!(a, run("b", &["--forte-on-append"]), "same seed, same file");
    assert_ne!(a, plain, "raised fortes change which versions win");
    assert_ne!(run("c", &["--forte-on-commit"]), plain);
}
