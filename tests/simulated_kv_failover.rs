//! A server that comes back costs no second outage: after the master's
//! machine is killed and restarted, or a follower is cut off and healed,
//! the master stays and no gap between answered operations is longer than
//! two heartbeats. Times are simulated, so they can be asserted.

use std::time::Duration;

use distzero::drivers::kv::outage::{Outage, Scene, measure, scene_options};
use distzero::drivers::kv::sim_check::SimCheckOptions;
use distzero::drivers::seeds::run_seeds;

fn opts() -> SimCheckOptions {
    scene_options(3, Duration::from_secs(7))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Min, median and max of one gap over the seeds, in ms.
fn spread(outages: &[Outage], gap: impl Fn(&Outage) -> Duration) -> String {
    let mut v: Vec<f64> = outages.iter().map(|o| ms(gap(o))).collect();
    v.sort_by(f64::total_cmp);
    format!(
        "min {:.0} / median {:.0} / max {:.0} ms",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1]
    )
}

fn scene(scene: Scene) -> Vec<Outage> {
    let o = opts();
    let heartbeat = Duration::from_secs_f64(o.config.heartbeat_ms / 1e3);
    let at = Duration::from_secs(2);
    let outages = run_seeds(
        1..51,
        2,
        &|seed| measure(seed, &o, scene, at, Duration::from_secs(2)),
        &|_| {},
    )
    .unwrap();
    for out in &outages {
        let r = &out.result;
        assert!(
            !r.failed(),
            "seed {}: {:?} {:?}",
            r.seed,
            r.problem,
            r.verdict
        );
        assert_eq!(r.unanswered, 0, "seed {}", r.seed);
        assert!(
            out.master_kept(),
            "seed {}: the master changed when the server came back: {:?} -> {:?}",
            out.seed,
            out.master_before,
            out.master_after
        );
        assert!(
            out.back.len() <= 2 * heartbeat,
            "seed {}: a gap of {:.0} ms when the server came back",
            out.seed,
            ms(out.back.len())
        );
    }
    eprintln!(
        "{scene:?} over {} seeds: quiet {}; at the fault {}; at the return {}",
        outages.len(),
        spread(&outages, |o| o.quiet.len()),
        spread(&outages, |o| o.fault.len()),
        spread(&outages, |o| o.back.len()),
    );
    outages
}

#[test]
fn simulated_kv_restarted_master_causes_no_second_outage() {
    let outages = scene(Scene::KillMaster);
    let heartbeat = Duration::from_millis(50);
    // The kill itself does cost a failover: the measure sees outages.
    assert!(
        outages.iter().all(|o| o.fault.len() > 2 * heartbeat),
        "a killed master went unnoticed?"
    );
}

#[test]
fn simulated_kv_healed_follower_leaves_the_master_alone() {
    scene(Scene::IsolateFollower);
}
