//! Local mode: machines are `dz machine` processes on 127.0.0.1.

mod common;

use assert_cmd::Command;
use common::real::{DZ, block_local, clocks_scenario, dz_run, process_alive, settings};
use distzero::node::Mode;

#[test]
fn local_clocks_cluster_keeps_lamport_rules_and_recovers_from_faults() {
    let tmp = tempfile::tempdir().unwrap();
    let s = settings(tmp.path());
    let state = block_local(clocks_scenario(&s, Mode::Local, "local-scenario"));
    // Everything stopped; the logs came home.
    for m in &state.machines {
        let pid = m.pid.unwrap();
        assert!(!process_alive(pid), "{} (pid {pid}) still runs", m.name);
        let log = std::fs::read_to_string(
            tmp.path()
                .join("local-scenario")
                .join(format!("{}.json.log", m.name)),
        )
        .unwrap();
        assert!(log.lines().count() >= 2);
        let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        assert_eq!(first["machine"], m.name.as_str());
        assert_eq!(first["mode"], "local");
    }
    assert!(!tmp.path().join("local-scenario/cluster.json").exists());
}

#[test]
fn local_cluster_commands_from_separate_invocations() {
    let tmp = tempfile::tempdir().unwrap();
    let dz = |args: &[&str]| dz_run(tmp.path(), args);
    let (code, out, err) = dz(&[
        "cluster",
        "up",
        "--mode",
        "local",
        "--machines",
        "3",
        "--system",
        "clocks",
        "--name",
        "cli",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("cluster cli (local): 3 machines"), "{out}");

    let (code, out, err) = dz(&["cluster", "status", "cli"]);
    assert_eq!(code, Some(0), "{err}");
    for m in ["m0", "m1", "m2"] {
        assert!(out.contains(&format!("  {m}  Running")), "{out}");
    }
    assert!(out.contains("\"clock\""), "node status missing: {out}");

    for fault in [
        &["isolate", "m1"][..],
        &["heal"],
        &["kill", "m2"],
        &["restart", "m2"],
        &["pause", "m0"],
        &["resume", "m0"],
    ] {
        let mut args = vec!["cluster", "fault", "cli"];
        args.extend_from_slice(fault);
        let (code, _, err) = dz(&args);
        assert_eq!(code, Some(0), "{fault:?}: {err}");
    }
    let (code, _, err) = dz(&[
        "cluster", "fault", "cli", "messages", "m1", "--loss", "0.5", "--kinds", "Stamp",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = dz(&["cluster", "fault", "cli", "kill", "m7"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no machine \"m7\""), "{err}");
    let (code, _, err) = dz(&["cluster", "status", "nope"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no cluster named \"nope\""), "{err}");

    // The record follows the faults: m2 has a new process now.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("cli/cluster.json")).unwrap(),
    )
    .unwrap();
    let pids: Vec<u32> = state["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pid"].as_u64().unwrap() as u32)
        .collect();
    assert!(pids.iter().all(|&p| process_alive(p)));
    let (code, out, err) = dz(&["cluster", "down", "cli"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("is down"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    for pid in pids {
        assert!(!process_alive(pid), "pid {pid} survived `down`");
    }
    // The restarted m2 logged both lives.
    let log = std::fs::read_to_string(tmp.path().join("cli/m2.json.log")).unwrap();
    assert_eq!(log.matches("agent listening").count(), 2, "{log}");
}

#[test]
fn local_clocks_experiment_writes_the_same_outputs_as_simulation() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(DZ)
        .env("DZ_TMP_DIR", tmp.path())
        .args([
            "clocks",
            "--mode",
            "local",
            "--rates",
            "6,3,1",
            "--duration",
            "4s",
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
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("invariants hold"), "{text}");
    for f in [
        "m0.csv",
        "m1.csv",
        "m2.csv",
        "summary.json",
        "clock.png",
        "queue.png",
    ] {
        assert!(tmp.path().join("c").join(f).exists(), "{f}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("c/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["mode"], "local");
    let ticks = summary["machines"][0]["ticks"].as_u64().unwrap();
    assert!((20..=26).contains(&ticks), "6 ticks/s for 4 s gave {ticks}");
    // The experiment's cluster is gone.
    assert!(
        std::fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .all(|e| !e.path().join("cluster.json").exists())
    );
}
