//! A kv server whose disk fills up stops (fail-stop) instead of answering:
//! the others go on, the clients' history stays linearizable and every
//! acknowledged write is read back. The full disk is real: a 256 KiB tmpfs
//! under one container's node data.
#![cfg(feature = "virtual")]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use common::real::{
    DZ, DockerCleanup, assert_nothing_left, block_local, docker_available, settings,
};
use distzero::backends::cluster::{down, up};
use distzero::controller::one_node_per_machine;
use distzero::drivers::kv::bench::{TargetSpec, run};
use distzero::drivers::kv::check::check_history;
use distzero::drivers::kv::remote::{KvRemote, ServerAddr};
use distzero::node::{Mode, NodeId};
use distzero::systems::kv::client::HistoryOp;
use distzero::systems::kv::msg::Op;
use distzero::systems::kv::workload::Workload;

#[test]
fn virtual_kv_full_disk_stops_its_server_and_loses_no_acknowledged_write() {
    if !docker_available() {
        return;
    }
    let name = "kv-disk-full";
    let _cleanup = DockerCleanup(name.into());
    let tmp = tempfile::tempdir().unwrap();
    let s = settings(tmp.path());
    block_local(async {
        // No snapshots: the log only grows.
        let config = serde_json::json!({"election_timeout_ms": 400.0, "snapshot_every": 1000000});
        let (mut machines, placement) = one_node_per_machine(3, "kv", "server", &config);
        machines[2].disk_kb = Some(256);
        let (mut ctl, state) = up(&s, name, Mode::Virtual, &machines, placement, Path::new(DZ))
            .await
            .unwrap();
        let servers: Vec<ServerAddr> = ctl
            .backend()
            .records()
            .iter()
            .enumerate()
            .map(|(i, r)| ServerAddr {
                node: NodeId(i as u32),
                address: r.data.clone(),
            })
            .collect();
        let spec = TargetSpec::DistZero {
            servers: servers.clone(),
            secret: state.secret.clone(),
        };
        // About 600 writes of 1 KiB: far more log than 256 KiB holds.
        let workload = Workload {
            clients: 4,
            requests: 300,
            interval_ms: 1.0,
            keys: 8,
            value_size: 1024,
            ..Default::default()
        };
        let mut result = run(&spec, &workload, 1, Arc::new(AtomicU64::new(0)))
            .await
            .unwrap();
        assert!(result.errors.is_empty(), "{:?}", result.errors.first());

        let stats = ctl.stats().await.unwrap();
        let failed = |id: u32| {
            stats
                .nodes
                .iter()
                .find(|n| n.id == NodeId(id))
                .and_then(|n| n.failed.clone())
        };
        let why = failed(2).expect("the server on the full disk stopped");
        assert!(why.contains("No space left on device"), "{why}");
        assert_eq!((failed(0), failed(1)), (None, None), "the others run on");

        // Every key read back after the load: acknowledged writes are there.
        let mut reader = KvRemote::new(servers, state.secret.clone());
        let t0 = Instant::now();
        let call = result
            .history
            .iter()
            .filter_map(|h| h.ret_ns)
            .max()
            .unwrap()
            + 1;
        for k in 0..workload.keys {
            let op = Op::Get(workload.key(k));
            let (r, _) = reader.call(op.clone()).await.unwrap();
            result.history.push(HistoryOp {
                client: 99,
                id: u64::from(k),
                op,
                call_ns: call,
                ret_ns: Some(call + t0.elapsed().as_nanos() as u64 + 1),
                output: Some(r),
                tries: 1,
                initial: false,
            });
        }
        let verdict = check_history(&result.history);
        assert!(verdict.linearizable, "{verdict:?}");
        down(&mut ctl, &state, &s.tmp_dir).await.unwrap();
    });
    assert_nothing_left(name);
}
