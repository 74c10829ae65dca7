//! `dz clean --mode virtual` finds what a run that died left behind.
//! (Its own test binary: it removes every DistZero container it sees.)
#![cfg(feature = "virtual")]

mod common;

use assert_cmd::Command;
use common::real::{DZ, DockerCleanup, docker_available, docker_leftovers};

#[test]
fn virtual_clean_removes_what_a_dead_run_left() {
    if !docker_available() {
        return;
    }
    let name = "virtual-orphan";
    let _cleanup = DockerCleanup(name.into());
    let tmp = tempfile::tempdir().unwrap();
    let up = Command::new(DZ)
        .env("DZ_TMP_DIR", tmp.path())
        .args([
            "cluster",
            "up",
            "--mode",
            "virtual",
            "--machines",
            "2",
            "--name",
            name,
        ])
        .output()
        .unwrap();
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    // The controller "dies": its record is lost, the containers run on.
    std::fs::remove_dir_all(tmp.path().join(name)).unwrap();
    assert_eq!(docker_leftovers(name).containers.len(), 2);
    let clean = Command::new(DZ)
        .env("DZ_TMP_DIR", tmp.path())
        .args(["clean", "--mode", "virtual"])
        .output()
        .unwrap();
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let left = docker_leftovers(name);
    assert!(
        left.containers.is_empty() && left.networks.is_empty(),
        "left behind: {left:?}"
    );
}
