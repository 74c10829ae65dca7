//! The `spawner` system in the simulator, through the controller: the same
//! outcome as on real machines (tests/local_spawn.rs).

use std::time::Duration;

use distzero::controller::{Controller, SimBackend, one_node_per_machine};
use distzero::node::NodeId;
use distzero::sim::SimConfig;
use distzero::systems::spawner::Spawner;
use futures::executor::block_on;

#[test]
fn simulated_spawner_children_spread_answer_and_exit() {
    let mut ctl = Controller::new(Box::new(SimBackend::<Spawner>::new(SimConfig::new(5))));
    let cfg =
        serde_json::json!({"children": 6, "exit_every": 2, "start_after_ms": 300, "round_ms": 800});
    let (machines, nodes) = one_node_per_machine(3, "spawner", "parent", &cfg);
    block_on(async {
        ctl.create_machines(&machines).await.unwrap();
        ctl.deploy(nodes).await.unwrap();
        ctl.run(Duration::from_secs(3), &[], |_| {}).await.unwrap();
    });
    for i in 0..3 {
        let s = block_on(ctl.query(NodeId(i), "status")).unwrap();
        assert_eq!(s["hellos"], 6, "{s}");
        assert_eq!(s["pongs"], serde_json::json!([6, 3]), "{s}");
    }
    let stats = block_on(ctl.stats()).unwrap();
    let children: Vec<_> = stats.nodes.iter().filter(|n| n.id.0 >= 3).collect();
    assert_eq!(children.len(), 18);
    for m in 0..3 {
        assert!(children.iter().filter(|n| n.machine.0 == m).count() >= 3);
    }
    assert_eq!(
        stats.drops.get("no_such_node"),
        Some(&9),
        "{:?}",
        stats.drops
    );
}
