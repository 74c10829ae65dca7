//! A self-scaling dataset on real machines (local processes): `dz
//! datasets run --mode local` grows a tree to 27 leaves over 3 machines,
//! the exact total arrives at the root and every output, the tree shrinks
//! back, and `down` leaves no process behind.

mod common;

use std::time::{Duration, Instant};

use common::datasets::{check, grow_and_shrink};
use common::real::{dz_run, process_alive};

#[test]
fn local_dataset_grows_to_27_leaves_over_3_machines_and_shrinks_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (r, out) = grow_and_shrink(tmp.path(), "local", "dsl");
    check(&r, &out);
    assert_eq!(r["mode"], "local");
    // The agents are gone (a dying process may linger a moment).
    let pids: Vec<u32> = r["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["pid"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(pids.len(), 3);
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| process_alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in pids {
        assert!(!process_alive(pid), "pid {pid} survived the run\n{out}");
    }
    assert!(!tmp.path().join("dsl/cluster.json").exists());
}

#[test]
fn local_dataset_bad_input_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["--machines", "0", "--leaves", "3"][..],
        &["--leaves", "0"],
        &["--leaves", "3", "--name", "no/slashes"],
    ] {
        let mut all = vec!["datasets", "run", "--mode", "local"];
        all.extend_from_slice(args);
        let (code, _, err) = dz_run(tmp.path(), &all);
        assert_eq!(code, Some(2), "{all:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{all:?}: {err}");
    }
    let (code, _, err) = dz_run(
        tmp.path(),
        &["datasets", "run", "--mode", "cloud", "--leaves", "3"],
    );
    assert_eq!(code, Some(2), "{err}");
}
