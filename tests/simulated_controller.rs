//! The controller over the simulated backend: machines, placement, a fault
//! schedule, node queries and results, as every backend offers them.

use std::time::Duration;

use distzero::controller::{
    Controller, Fault, MachineSpec, MachineState, ScheduledFault, SimBackend,
};
use distzero::drivers::clocks::experiment::{ClocksParams, deployment};
use distzero::node::{MachineId, NodeId};
use distzero::sim::SimConfig;
use distzero::systems::clocks::Clocks;
use distzero::systems::pingpong::PingPong;
use distzero::systems::{NodeSpec, System};
use futures::executor::block_on;

fn clocks_controller() -> Controller<SimBackend<Clocks>> {
    let mut ctl = Controller::new(Box::new(SimBackend::<Clocks>::new(SimConfig::new(9))));
    let (machines, nodes) = deployment(&ClocksParams::new(vec![4.0, 2.0, 1.0])).unwrap();
    block_on(async {
        ctl.create_machines(&machines).await.unwrap();
        ctl.deploy(nodes).await.unwrap();
    });
    ctl
}

#[test]
fn simulated_controller_runs_a_schedule_and_answers_queries() {
    let mut ctl = clocks_controller();
    let m1 = ctl.machine_named("m1").unwrap();
    let m2 = MachineId(2);
    let schedule = vec![
        ScheduledFault {
            at: Duration::from_secs(8),
            fault: Fault::Restart { machine: m1 },
        },
        ScheduledFault {
            at: Duration::from_secs(5),
            fault: Fault::Crash { machine: m1 },
        },
        ScheduledFault {
            at: Duration::from_secs(1),
            fault: Fault::Isolate { machine: m2 },
        },
        ScheduledFault {
            at: Duration::from_secs(4),
            fault: Fault::Heal { machine: Some(m2) },
        },
    ];
    let mut progress = Vec::new();
    block_on(ctl.run(Duration::from_secs(10), &schedule, |f| progress.push(f))).unwrap();
    assert_eq!(ctl.elapsed(), Duration::from_secs(10));
    assert!(progress.len() >= 100 && (progress.last().unwrap() - 1.0).abs() < 1e-9);
    assert!(progress.windows(2).all(|w| w[0] <= w[1]));

    let summary = block_on(ctl.query(NodeId(1), "summary")).unwrap();
    // m1 ran 5 s, was down 3 s, then ran 2 s at 2 ticks/s; its clock survived.
    let ticks = summary["ticks"].as_u64().unwrap();
    assert!((3..=5).contains(&ticks), "ticks since restart: {ticks}");
    assert!(
        summary["clock"].as_u64().unwrap() > 10,
        "clock persisted across the crash"
    );

    let stats = block_on(ctl.stats()).unwrap();
    assert_eq!(stats.nodes.len(), 3);
    assert!(stats.drops["machine_down"] > 0);
    assert!(stats.drops["isolated"] > 0);
    assert_eq!(ctl.machines()[1].state, MachineState::Running);
}

#[test]
fn simulated_controller_refuses_bad_requests() {
    let mut ctl = clocks_controller();
    let err = block_on(ctl.query(NodeId(9), "summary")).unwrap_err();
    assert!(err.is_input(), "{err}");
    let err = block_on(ctl.query(NodeId(0), "what is love")).unwrap_err();
    assert!(err.to_string().contains("does not answer"), "{err}");
    assert!(ctl.machine_named("m7").is_err());
    let err = block_on(ctl.inject(&Fault::Crash {
        machine: MachineId(42),
    }))
    .unwrap_err();
    assert!(err.is_input());

    // A node of another system cannot join this simulation.
    let mut ctl = Controller::new(Box::new(SimBackend::<Clocks>::new(SimConfig::new(1))));
    let spec = NodeSpec {
        id: NodeId(0),
        name: "p".into(),
        system: PingPong::NAME.into(),
        role: "node".into(),
        config: serde_json::Value::Null,
    };
    block_on(ctl.create_machines(&[MachineSpec::named("m0")])).unwrap();
    let err = block_on(ctl.deploy(vec![(spec.clone(), MachineId(0))])).unwrap_err();
    assert!(
        err.to_string().contains("this simulation runs \"clocks\""),
        "{err}"
    );
    // Nor can a node be placed on a machine that does not exist.
    let err = block_on(ctl.deploy(vec![(spec, MachineId(3))])).unwrap_err();
    assert!(err.to_string().contains("unknown machine"), "{err}");
}

#[test]
fn simulated_controller_rejects_bad_node_config() {
    let mut ctl = Controller::new(Box::new(SimBackend::<Clocks>::new(SimConfig::new(1))));
    block_on(ctl.create_machines(&[MachineSpec::named("m0")])).unwrap();
    let spec = NodeSpec {
        id: NodeId(0),
        name: "m0".into(),
        system: Clocks::NAME.into(),
        role: "machine".into(),
        config: serde_json::json!({"rate": 0}),
    };
    let err = block_on(ctl.deploy(vec![(spec, MachineId(0))])).unwrap_err();
    assert!(
        err.is_input() && err.to_string().contains("rate 0"),
        "{err}"
    );
}
