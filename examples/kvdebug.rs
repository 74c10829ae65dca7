use distzero::node::NodeId;
use distzero::systems::kv::sim_check::{Faults, SimCheckOptions, run_seed_sim};
use distzero::systems::kv::KvNode;
fn main() {
    let seed: u64 = std::env::args().nth(1).unwrap().parse().unwrap();
    let faults = std::env::args().nth(2).unwrap_or("crash".into());
    let mut o = SimCheckOptions { faults: Faults::parse(&faults).unwrap(), ..Default::default() };
    if std::env::var("NONE").is_ok() {
        o.config.persistence = distzero::systems::kv::Persistence::None;
    }
    let (r, sim) = run_seed_sim(seed, &o).unwrap();
    println!("{} {} {}", r.completed, r.unanswered, r.view_changes);
    for i in 0..5 {
        println!("s{i}: {:?}", sim.query(NodeId(i), "status"));
    }
    for i in 5..8 {
        let c = sim.node(NodeId(i)).and_then(KvNode::as_client).unwrap();
        println!("c{i}: {}", c.status());
        for h in c.full_history(NodeId(i)).iter().filter(|h| h.ret_ns.is_none()) {
            println!("   unanswered {:?}", h);
        }
    }
}
