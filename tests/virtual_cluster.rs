//! Virtual mode: machines are Docker containers from the locally built
//! image, on a private network. After every test, nothing of it remains.
#![cfg(feature = "virtual")]

mod common;

use assert_cmd::Command;
use common::real::{
    DZ, DockerCleanup, assert_nothing_left, block_local, clocks_scenario, docker_available,
    docker_leftovers, dz_ok, settings,
};
use distzero::node::Mode;

#[test]
fn virtual_clocks_cluster_keeps_lamport_rules_and_recovers_from_faults() {
    if !docker_available() {
        return;
    }
    let name = "virtual-scenario";
    let _cleanup = DockerCleanup(name.into());
    let tmp = tempfile::tempdir().unwrap();
    let state = block_local(clocks_scenario(&settings(tmp.path()), Mode::Virtual, name));
    assert!(state.machines.iter().all(|m| m.container.is_some()));
    let log = std::fs::read_to_string(tmp.path().join(name).join("m1.json.log")).unwrap();
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert_eq!(first["mode"], "virtual");
    assert_eq!(first["machine"], "m1");
    assert_nothing_left(name);
}

#[test]
fn virtual_cluster_commands_pause_and_resume_containers() {
    if !docker_available() {
        return;
    }
    let name = "virtual-cli";
    let _cleanup = DockerCleanup(name.into());
    let tmp = tempfile::tempdir().unwrap();
    let dz = |args: &[&str]| dz_ok(tmp.path(), args);
    let out = dz(&[
        "cluster",
        "up",
        "--mode",
        "virtual",
        "--machines",
        "3",
        "--name",
        name,
    ]);
    assert!(out.contains("container dz-virtual-cli-m0"), "{out}");
    assert_eq!(docker_leftovers(name).containers.len(), 3);
    dz(&["cluster", "fault", name, "pause", "m2"]);
    let status = dz(&["cluster", "status", name]);
    assert!(status.contains("m2  Paused"), "{status}");
    assert!(status.contains("m0  Running"), "{status}");
    dz(&["cluster", "fault", name, "resume", "m2"]);
    let status = dz(&["cluster", "status", name]);
    assert!(
        status.contains("m2  Running") && status.contains("\"clock\""),
        "{status}"
    );
    dz(&["cluster", "down", name]);
    assert_nothing_left(name);
}

#[test]
fn virtual_clocks_experiment_runs_in_containers() {
    if !docker_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(DZ)
        .env("DZ_TMP_DIR", tmp.path())
        .args([
            "clocks",
            "--mode",
            "virtual",
            "--rates",
            "6,2,1",
            "--duration",
            "4s",
            "--out",
        ])
        .arg(tmp.path().join("c"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let cluster = text
        .lines()
        .find_map(|l| l.strip_prefix("ran on cluster "))
        .and_then(|l| l.split(';').next())
        .map(str::to_string);
    if let Some(c) = &cluster {
        drop(DockerCleanup(c.clone()));
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("invariants hold"), "{text}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("c/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["mode"], "virtual");
    assert_nothing_left(&cluster.unwrap());
}

#[test]
fn virtual_kv_cluster_serves_clients_and_survives_a_killed_container() {
    if !docker_available() {
        return;
    }
    let name = "virtual-kv";
    let _cleanup = DockerCleanup(name.into());
    let tmp = tempfile::tempdir().unwrap();
    let dz = |args: &[&str]| dz_ok(tmp.path(), args);
    dz(&[
        "cluster",
        "up",
        "--mode",
        "virtual",
        "--machines",
        "3",
        "--system",
        "kv",
        "--name",
        name,
    ]);
    dz(&["kv", "--cluster", name, "update", "colour", "blue"]);
    // The master of view 0 is on m0: kill it; the others elect a new one.
    dz(&["cluster", "fault", name, "kill", "m0"]);
    dz(&["kv", "--cluster", name, "update", "shape", "round"]);
    let out = dz(&["kv", "--cluster", name, "get", "colour"]);
    assert!(out.contains("blue"), "{out}");
    dz(&["cluster", "fault", name, "restart", "m0"]);
    let out = dz(&["kv", "--cluster", name, "count"]);
    assert_eq!(out.trim(), "2", "{out}");
    dz(&["cluster", "down", name]);
    assert_nothing_left(name);
}
