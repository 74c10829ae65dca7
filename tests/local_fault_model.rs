//! One fault model in every mode: the same topology (link latency) and the
//! same message-fault plan give the same loss, duplication and delay in the
//! simulator and on local processes, measured by the `probe` system.

mod common;

use std::time::Duration;

use common::real::{block_local, settings, sleep_ms};
use distzero::backends::cluster::{down, up_shaped};
use distzero::controller::{Controller, Fault, SimBackend};
use distzero::net::MessageFaults;
use distzero::node::{MachineId, Mode, NodeId};
use distzero::sim::SimConfig;
use distzero::systems::probe::Probe;
use distzero::topology::Topology;

const COUNT: u64 = 3000;

/// Two machines, a uniform 5–15 ms link both ways; a sender and a receiver.
fn topology() -> Topology {
    Topology::parse(&format!(
        r#"{{
        "meta": {{"system": "probe", "config": {{"count": {COUNT}, "interval_ms": 1.5, "start_after_ms": 300}}}},
        "nodes": [{{"id": "rx", "role": "receiver"}}, {{"id": "tx", "role": "sender"}}],
        "links": [{{"source": 0, "target": 1, "connection": "variable", "latency": [5, 15]}}]
    }}"#
    ))
    .unwrap()
}

fn plan() -> Fault {
    Fault::Messages {
        machine: Some(MachineId(1)),
        faults: MessageFaults {
            loss: 0.2,
            duplicate: 0.1,
            reorder: 0.3,
            reorder_ms: Some(20.0),
            delay_ms: 5.0,
            kinds: vec!["Data".into()],
        },
    }
}

#[derive(Debug)]
struct Observed {
    loss: f64,
    duplicate: f64,
    mean_ms: f64,
}

fn observed(status: &serde_json::Value) -> Observed {
    let received = status["received"].as_u64().unwrap() as f64;
    Observed {
        loss: 1.0 - received / COUNT as f64,
        duplicate: status["duplicates"].as_u64().unwrap() as f64 / received,
        mean_ms: status["mean_ms"].as_f64().unwrap(),
    }
}

fn simulated() -> Observed {
    let t = topology();
    block_local(async {
        let mut ctl = Controller::new(Box::new(SimBackend::<Probe>::new(SimConfig::new(11))));
        ctl.create_machines(&t.machines()).await.unwrap();
        ctl.set_network(&t.network()).await.unwrap();
        ctl.deploy(t.placement().unwrap()).await.unwrap();
        ctl.inject(&plan()).await.unwrap();
        ctl.run_for(Duration::from_secs(6)).await.unwrap();
        observed(&ctl.query(NodeId(0), "status").await.unwrap())
    })
}

#[test]
fn local_fault_plan_matches_the_simulator() {
    let sim = simulated();
    // Expected: 20% lost; 10% of the rest twice; 10 ms link + 5 ms delay +
    // 30% held back by up to 20 ms (3 ms on average) = 18 ms.
    assert!((sim.loss - 0.2).abs() < 0.03, "simulated {sim:?}");
    assert!((sim.duplicate - 0.1).abs() < 0.03, "simulated {sim:?}");
    assert!((sim.mean_ms - 18.0).abs() < 1.0, "simulated {sim:?}");

    let tmp = tempfile::tempdir().unwrap();
    let settings = settings(tmp.path());
    let t = topology();
    let real = block_local(async {
        let (mut ctl, state) = up_shaped(
            &settings,
            "fault-model",
            Mode::Local,
            &t.machines(),
            &t.network(),
            t.placement().unwrap(),
            std::path::Path::new(common::real::DZ),
        )
        .await
        .unwrap();
        ctl.inject(&plan()).await.unwrap();
        // The sender starts 300 ms after it starts and sends for 4.5 s.
        let mut status = serde_json::Value::Null;
        for _ in 0..200 {
            sleep_ms(100).await;
            let sender = ctl.query(NodeId(1), "status").await.unwrap();
            if sender["sent"].as_u64() == Some(COUNT) {
                sleep_ms(500).await;
                status = ctl.query(NodeId(0), "status").await.unwrap();
                break;
            }
        }
        down(&mut ctl, &state, &settings.tmp_dir).await.unwrap();
        assert!(!status.is_null(), "the sender did not finish within 20 s");
        observed(&status)
    });
    eprintln!("simulated {sim:?}\nlocal     {real:?}");
    // Binomial noise on 3,000 messages is about 0.007 for the loss rate; a
    // real machine adds a fraction of a millisecond of its own latency.
    assert!(
        (real.loss - sim.loss).abs() < 0.04,
        "local {real:?} vs simulated {sim:?}"
    );
    assert!(
        (real.duplicate - sim.duplicate).abs() < 0.04,
        "local {real:?} vs simulated {sim:?}"
    );
    assert!(
        real.mean_ms > sim.mean_ms - 1.5 && real.mean_ms < sim.mean_ms + 4.0,
        "local {real:?} vs simulated {sim:?}"
    );
}
