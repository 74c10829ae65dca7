//! `dz view` over plain HTTP: windows of a kv run, node states and message
//! contents from the re-run, log filters, "what if" branches (a crash, a
//! dropped message; also of a sim-check seed), skewed clocks, and bad
//! requests and paths answered with a reason instead of a panic.

mod view_support;

use serde_json::Value;
use view_support::{Server, dz, kv_run, simulate};

#[test]
fn simulated_view_serves_windows_states_logs_and_branches() {
    let dir = tempfile::tempdir().unwrap();
    let run = kv_run(dir.path());
    let s = Server::start(&run, &dir.path().join("tmp"));
    assert!(s.first_line.contains("6 machines"), "{}", s.first_line);

    let meta = s.get_json("/api/meta");
    assert_eq!(meta["machines"].as_array().unwrap().len(), 6);
    assert_eq!(meta["machines"][0]["name"], "s1");
    assert_eq!(meta["system"], "kv");
    assert!(meta["events"].as_u64().unwrap() > 1000, "{meta}");
    assert!(
        meta["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k == "Prepare" || k == "Request"),
        "{}",
        meta["kinds"]
    );

    // The topology crashes s1 at 1 s and restarts it at 2 s.
    let before = s.get_json("/api/frame?t=0.9");
    let during = s.get_json("/api/frame?t=1.5");
    let after = s.get_json("/api/frame?t=2.5");
    assert_eq!(before["machines"]["up"][0], true);
    assert_eq!(during["machines"]["up"][0], false);
    assert_eq!(after["machines"]["up"][0], true);
    assert!(
        !before["inflight"].as_array().unwrap().is_empty(),
        "{before}"
    );
    for m in before["inflight"].as_array().unwrap() {
        assert!(m["t"].as_f64().unwrap() <= 0.9, "{m}");
        assert!(
            m.get("pair_t").is_none_or(|p| p.as_f64().unwrap() > 0.9),
            "{m}"
        );
    }

    // A window by time holds only events inside it, at most `limit`.
    let w = s.get_json("/api/events?from=1.0&to=1.1&limit=50");
    let evs = w["events"].as_array().unwrap();
    assert!(!evs.is_empty() && evs.len() <= 50);
    assert!(
        evs.iter()
            .all(|e| (1.0..=1.1).contains(&e["t"].as_f64().unwrap()))
    );
    let next = s.get_json("/api/next?t=1.0");
    assert!(next["t"].as_f64().unwrap() > 1.0);

    // States come from the viewer's re-run: same hash, so the same run.
    s.wait_states(0);
    let meta = s.get_json("/api/meta");
    assert!(
        meta["states_note"]
            .as_str()
            .unwrap()
            .contains("same trace hash"),
        "{meta}"
    );
    assert_eq!(meta["verdict"]["linearizable"], true, "{meta}");
    let n = s.get_json("/api/node?node=1&t=2.9");
    assert!(n["state"]["view"].as_u64().is_some(), "{n}");
    assert!(
        n["counters"]["sent"]
            .as_object()
            .is_some_and(|m| !m.is_empty()),
        "{n}"
    );
    // Message contents come from the re-run's trace: a send's and its
    // delivery's are the message's Debug form, starting with its kind.
    assert_eq!(meta["has_contents"], true, "{meta}");
    let w = s.get_json("/api/events?from=0.5&to=0.6&limit=200");
    let send = w["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ev"] == "send" && e["pair_ev"] == "deliver")
        .unwrap()
        .clone();
    let m = s.get_json(&format!("/api/message?i={}", send["i"]));
    let contents = m["contents"].as_str().unwrap_or_else(|| panic!("{m}"));
    assert!(
        contents.starts_with(send["kind"].as_str().unwrap()),
        "{contents} is not a {}",
        send["kind"]
    );
    let d = s.get_json(&format!("/api/message?i={}", send["pair"]));
    assert_eq!(d["ev"], "deliver");
    assert_eq!(d["pair"], send["i"]);
    assert_eq!(d["contents"], m["contents"]);
    let crashed = s.get_json("/api/node?node=0&t=1.5");
    assert_eq!(crashed["up"], false);
    assert_eq!(crashed["state"], Value::Null);

    // Logs: merged, filtered by machine and text, linked to times.
    let all = s.get_json("/api/logs?limit=5");
    assert!(all["total"].as_u64().unwrap() > 0, "{all}");
    let ctl = s.get_json("/api/logs?machine=controller&q=simulation%20started");
    assert_eq!(ctl["total"], 1, "{ctl}");
    assert!(ctl["lines"][0]["t"].as_f64().unwrap() < 0.001);
    let none = s.get_json("/api/logs?q=no-such-text-anywhere");
    assert_eq!(none["total"], 0);

    // What if s2 had crashed at 1.5 s too: a branch, the original kept.
    let (code, body) = s.request(
        "POST",
        "/api/fork",
        Some(r#"{"run":0,"at":1.5,"kind":"crash","machine":1}"#),
    );
    assert_eq!(code, 200, "{body}");
    let b: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(b["id"], 1);
    assert_eq!(b["parent"], 0);
    assert!(b["verdict"]["linearizable"].is_boolean(), "{b}");
    assert_eq!(
        s.get_json("/api/frame?run=1&t=1.6")["machines"]["up"][1],
        false
    );
    assert_eq!(
        s.get_json("/api/frame?run=0&t=1.6")["machines"]["up"][1],
        true
    );
    // Before the fault the branch is the same run.
    let same_a = s.get_json("/api/events?run=0&from=0&to=1.4&limit=5000");
    let same_b = s.get_json("/api/events?run=1&from=0&to=1.4&limit=5000");
    assert_eq!(same_a["events"], same_b["events"]);
    assert_eq!(s.get_json("/api/runs").as_array().unwrap().len(), 2);

    // What if one message had been lost: the first send after 1.2 s that
    // was delivered. The branch has it dropped (reason "chosen"), is the
    // same run before it, and differs after.
    let w = s.get_json("/api/events?run=0&from=1.2&to=1.3&limit=5000");
    let sent = w["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ev"] == "send" && e["pair_ev"] == "deliver")
        .unwrap_or_else(|| panic!("no delivered send in {w}"))
        .clone();
    let i = sent["i"].as_u64().unwrap();
    let (code, body) = s.request(
        "POST",
        "/api/fork",
        Some(&format!(
            r#"{{"run":0,"at":{},"kind":"drop","message":{i}}}"#,
            sent["t"]
        )),
    );
    assert_eq!(code, 200, "{body}");
    let b: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(b["id"], 2, "{b}");
    assert_eq!(b["fault"]["kind"], "drop_message", "{b}");
    assert!(b["label"].as_str().unwrap().contains("drop"), "{b}");
    let m = s.get_json(&format!("/api/message?run=2&i={i}"));
    for k in ["ev", "kind", "from", "to", "t"] {
        assert_eq!(m[k], sent[k], "{k}: {m} vs {sent}");
    }
    assert_eq!(m["pair_ev"], "drop", "{m}");
    assert_eq!(m["pair_reason"], "chosen", "{m}");
    let upto = sent["t"].as_f64().unwrap();
    let k = i.min(4000);
    let before = |run: usize| {
        s.get_json(&format!("/api/events?run={run}&start={}&limit={k}", i - k))["events"].clone()
    };
    assert_eq!(before(0).as_array().unwrap().len() as u64, k);
    assert_eq!(before(0), before(2), "the branch differs before the drop");
    // Exactly one delivery fewer of that kind on that link by the time the
    // original was delivered.
    let deliveries = |run: usize| {
        let to = sent["pair_t"].as_f64().unwrap();
        let w = s.get_json(&format!(
            "/api/events?run={run}&from={upto}&to={to}&limit=5000"
        ));
        w["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["ev"] == "deliver"
                    && e["from"] == sent["from"]
                    && e["to"] == sent["to"]
                    && e["kind"] == sent["kind"]
            })
            .count()
    };
    assert_eq!(deliveries(2) + 1, deliveries(0));
    let runs = s.get_json("/api/runs");
    assert_ne!(runs[0]["trace_hash"], runs[2]["trace_hash"], "{runs}");

    // Bad requests: a status and a reason, and the server lives on.
    for (method, path, body, want) in [
        ("GET", "/api/frame?t=abc", None, 400),
        ("GET", "/api/frame?t=NaN", None, 400),
        ("GET", "/api/frame?run=9", None, 404),
        ("GET", "/api/node?node=99", None, 404),
        ("GET", "/api/node", None, 400),
        ("GET", "/api/message?i=999999999", None, 404),
        ("GET", "/api/logs?level=loud", None, 400),
        ("GET", "/no/such/page", None, 404),
        ("POST", "/api/fork", Some("{not json"), 400),
        (
            "POST",
            "/api/fork",
            Some(r#"{"run":0,"at":1,"kind":"explode","machine":0}"#),
            400,
        ),
        (
            "POST",
            "/api/fork",
            Some(r#"{"run":0,"at":99,"kind":"crash","machine":0}"#),
            400,
        ),
        (
            "POST",
            "/api/fork",
            Some(r#"{"run":0,"at":1,"kind":"crash","machine":42}"#),
            400,
        ),
        (
            "POST",
            "/api/fork",
            Some(r#"{"run":0,"at":1,"kind":"drop"}"#),
            400,
        ),
        (
            "POST",
            "/api/fork",
            Some(r#"{"run":0,"at":1,"kind":"drop","message":999999999}"#),
            400,
        ),
    ] {
        let (code, text) = s.request(method, path, body);
        assert_eq!(code, want, "{method} {path}: {text}");
        assert!(!text.is_empty(), "{method} {path}: no reason given");
    }
    assert_eq!(s.get_json("/api/meta")["id"], 0);
    let (code, page) = s.request("GET", "/", None);
    assert_eq!(code, 200);
    assert!(page.contains("<svg id=\"ring\""));
}

#[test]
fn simulated_view_refuses_bad_paths_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("trace.jsonl");
    std::fs::write(
        &corrupt,
        "{\"t\":0,\"ev\":\"start\",\"node\":0}\n{\"t\":0.1,\"ev\n",
    )
    .unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for (path, want) in [
        (dir.path().join("nope"), "nope"),
        (corrupt.clone(), "line 2"),
        (empty.clone(), "not a run's output"),
    ] {
        let out = dz()
            .env("DZ_TMP_DIR", dir.path().join("tmp"))
            .args(["view", path.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{path:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
    }
}

#[test]
fn simulated_view_reads_a_clusters_collected_logs() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(
        logs.join("alpha.json.log"),
        "{\"time\":\"2026-01-01T10:00:01Z\",\"level\":30,\"msg\":\"node started\",\"machine\":\"alpha\",\"node\":\"n0\"}\n",
    )
    .unwrap();
    std::fs::write(
        logs.join("beta.json.log"),
        "{\"time\":\"2026-01-01T10:00:00.5Z\",\"level\":50,\"msg\":\"disk full\",\"node\":\"n1\"}\n",
    )
    .unwrap();
    let s = Server::start(&logs, &dir.path().join("tmp"));
    let meta = s.get_json("/api/meta");
    assert_eq!(meta["has_trace"], false);
    assert_eq!(meta["machines"].as_array().unwrap().len(), 2);
    let l = s.get_json("/api/logs");
    assert_eq!(l["lines"][0]["machine"], "beta");
    assert_eq!(l["lines"][1]["t"], 0.5);
    assert_eq!(s.get_json("/api/logs?level=error")["total"], 1);
    assert_eq!(
        s.get_json("/api/logs?machine=alpha")["lines"][0]["msg"],
        "node started"
    );
    let (code, _) = s.request("GET", "/api/events", None);
    assert_eq!(code, 404);
}

#[test]
fn simulated_view_opens_a_kv_sim_check_seed() {
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir.path().join("seed-3");
    let out = dz()
        .env("DZ_TMP_DIR", dir.path().join("tmp"))
        .args([
            "kv",
            "sim-check",
            "--seed",
            "3",
            "--seconds",
            "1",
            "--world",
            "fixed",
            "--servers",
            "3",
        ])
        .args(["--trace", seed_dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("view: dz view {}", seed_dir.display())),
        "{text}"
    );
    let s = Server::start(&seed_dir, &dir.path().join("tmp"));
    let meta = s.get_json("/api/meta");
    assert_eq!(meta["machines"][0]["name"], "s0");
    assert_eq!(meta["verdict"]["linearizable"], true, "{meta}");
    assert!(meta["events"].as_u64().unwrap() > 100);
    // The trace hash printed for the seed is the one the viewer shows.
    let hash = meta["trace_hash"].as_str().unwrap();
    assert!(text.contains(hash), "{text}");

    // The seed runs again for its node states (same hash) and branches.
    assert_eq!(meta["can_fork"], true, "{meta}");
    s.wait_states(0);
    let meta = s.get_json("/api/meta");
    let note = meta["states_note"].as_str().unwrap();
    assert!(note.contains(&format!("same trace hash {hash}")), "{note}");
    let f = s.get_json("/api/frame?t=0.3");
    let states = f["states"].as_array().unwrap();
    assert!(states.iter().any(|st| st["view"].as_u64().is_some()), "{f}");
    let (code, body) = s.request(
        "POST",
        "/api/fork",
        Some(r#"{"run":0,"at":0.5,"kind":"isolate","machine":1}"#),
    );
    assert_eq!(code, 200, "{body}");
    let b: Value = serde_json::from_str(&body).unwrap();
    assert!(b["verdict"]["linearizable"].is_boolean(), "{b}");
    assert_eq!(
        s.get_json("/api/frame?run=1&t=0.6")["machines"]["isolated"][1],
        true
    );
    assert_ne!(b["trace_hash"], meta["trace_hash"]);
}

/// A machine with a skewed clock carries its skew in the page's outline;
/// a viewer's scratch directory does not outlive it.
#[test]
fn simulated_view_shows_skewed_clocks() {
    let dir = tempfile::tempdir().unwrap();
    let out = simulate(
        dir.path(),
        "clocks-skewed.json",
        "run",
        &["--duration", "2s"],
    );
    // A dead viewer's scratch directory is swept by the next one.
    let stale = dir.path().join("tmp/view/999999999");
    std::fs::create_dir_all(&stale).unwrap();
    let mut s = Server::start(&out, &dir.path().join("tmp"));
    assert!(!stale.exists(), "stale scratch left");
    let meta = s.get_json("/api/meta");
    let m = meta["machines"].as_array().unwrap();
    assert_eq!(m[2]["clock"]["offset_ms"], 250.0, "{meta}");
    assert_eq!(m[2]["clock"]["drift_ppm"], 5000.0, "{meta}");
    assert!(m[0]["clock"].is_null() && m[3]["clock"].is_null(), "{meta}");

    // Its scratch (the re-run's states) goes when it is stopped.
    s.wait_states(0);
    let n = s.get_json("/api/node?node=2&t=1.5");
    assert!(n["state"]["clock"].as_u64().is_some(), "{n}");
    assert!(n["state"]["queue_now"].as_u64().is_some(), "{n}");
    let work = dir.path().join(format!("tmp/view/{}", s.pid()));
    assert!(work.join("run0/states.jsonl").is_file(), "{work:?}");
    assert!(s.terminate().success());
    assert!(!work.exists(), "{work:?} left behind");
}

/// A consistency replica's state lists, per object, the version it holds
/// and the one reads see (what the node panel draws).
#[test]
fn simulated_view_shows_versions_held() {
    let dir = tempfile::tempdir().unwrap();
    let topo = dir.path().join("raft.json");
    std::fs::write(
        &topo,
        r#"{"meta": {"title": "three raft replicas, two writes", "seed": 5, "duration": "3s", "latency": 10},
 "nodes": [
  {"id": "r0", "consistency": "raft"},
  {"id": "r1", "consistency": "raft",
   "accesses": [{"at_ms": 1000, "object": 0, "write": true}, {"at_ms": 1500, "object": 1, "write": true}]},
  {"id": "r2", "consistency": "raft"}]}"#,
    )
    .unwrap();
    let out = dir.path().join("run");
    let st = dz()
        .env("DZ_TMP_DIR", dir.path().join("tmp"))
        .args([
            "simulate",
            topo.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let s = Server::start(&out, &dir.path().join("tmp"));
    s.wait_states(0);
    let early = s.get_json("/api/node?node=2&t=0.5");
    let objects = early["state"]["objects"].as_array().unwrap();
    assert!(objects.iter().all(|o| o["held"].is_null()), "{early}");
    for n in 0..3 {
        let late = s.get_json(&format!("/api/node?node={n}&t=2.9"));
        let o = &late["state"]["objects"];
        // r1 wrote both objects first (seq 1, writer 1); all hold and see them.
        for k in 0..2 {
            assert_eq!(o[k]["held"], "1.1", "{late}");
            assert_eq!(o[k]["visible"], "1.1", "{late}");
        }
    }
}

#[test]
fn simulated_view_opens_a_datasets_sim_check_seed() {
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir.path().join("seed-2");
    let out = dz()
        .env("DZ_TMP_DIR", dir.path().join("tmp"))
        .args(["datasets", "sim-check", "--seed", "2", "--seconds", "3"])
        .args(["--trace", seed_dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("view: dz view {}", seed_dir.display())),
        "{text}"
    );
    let s = Server::start(&seed_dir, &dir.path().join("tmp"));
    let meta = s.get_json("/api/meta");
    let names: Vec<&str> = meta["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["m0", "m1", "m2", "user", "outputs"], "{meta}");
    // The root on m0, both outputs on their machine, the user on its own;
    // spawned data nodes where their spawns put them (the least loaded).
    let nm: Vec<u64> = meta["node_machine"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(nm[..4], [0, 4, 4, 3], "{meta}");
    let spawned: std::collections::BTreeSet<u64> = nm[4..].iter().copied().collect();
    assert!(
        spawned.len() >= 3 && spawned.iter().all(|&m| m < 5),
        "{meta}"
    );
    assert!(meta["events"].as_u64().unwrap() > 100, "{meta}");
    let hash = meta["trace_hash"].as_str().unwrap();
    assert!(text.contains(hash), "{text}");
}
