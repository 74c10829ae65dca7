//! A self-scaling dataset in virtual mode (Docker containers): the tree
//! grows to 27 leaves over 3 machines, the exact total arrives, it shrinks
//! back, and no container or network is left after the run.
#![cfg(feature = "virtual")]

mod common;

use common::datasets::{check, grow_and_shrink};
use common::real::{DockerCleanup, assert_nothing_left, docker_available};

#[test]
fn virtual_dataset_grows_to_27_leaves_over_3_machines_and_shrinks_back() {
    if !docker_available() {
        return;
    }
    let name = "virtual-datasets";
    let _cleanup = DockerCleanup(name.into());
    let tmp = tempfile::tempdir().unwrap();
    let (r, out) = grow_and_shrink(tmp.path(), "virtual", name);
    check(&r, &out);
    assert_eq!(r["mode"], "virtual");
    assert_nothing_left(name);
}
