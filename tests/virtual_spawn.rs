//! Nodes that create nodes in Docker containers: the spawner scenario of
//! `local_spawn`, with children on all three containers; `down` leaves
//! nothing of the cluster.
#![cfg(feature = "virtual")]

mod common;

use common::real::{DockerCleanup, assert_nothing_left, docker_available, dz_ok};
use common::spawn::children_everywhere;

#[test]
fn virtual_nodes_spawn_children_on_every_container() {
    if !docker_available() {
        return;
    }
    let name = "virtual-spawn";
    let _cleanup = DockerCleanup(name.into());
    let tmp = tempfile::tempdir().unwrap();
    children_everywhere(tmp.path(), "virtual", name);
    dz_ok(tmp.path(), &["cluster", "down", name]);
    assert_nothing_left(name);
}
