//! Every fault kind of the simulator, shown by its effect on what nodes
//! receive and on the counters.

mod common;

use common::{Probe, ms, probes, probes_with};
use distzero::net::{ClockSkew, DropReason, MessageFaults};
use distzero::node::{MachineId, NodeId, Storage};
use distzero::sim::Simulation;
use rstest::rstest;

fn node(sim: &Simulation<Probe>, i: u32) -> &Probe {
    sim.node(NodeId(i)).expect("node is running")
}

fn sent_by(sim: &Simulation<Probe>, i: u32) -> u64 {
    sim.stats().node(i).iter().map(|c| c.sent).sum()
}

#[test]
fn simulated_no_faults_delivers_everything_in_order() {
    let mut sim = probes(3, 1);
    sim.run_until(ms(1000));
    let totals = sim.stats().totals();
    let sent: u64 = totals.iter().map(|c| c.sent).sum();
    let delivered: u64 = totals.iter().map(|c| c.delivered).sum();
    // Messages sent in the last 5 ms are still in flight.
    assert!(sent - delivered <= 6, "sent {sent}, delivered {delivered}");
    assert_eq!(sim.stats().drops.iter().sum::<u64>(), 0);
    for i in 0..3 {
        for peer in 0..3 {
            let seqs: Vec<u64> = node(&sim, i).from(peer).iter().map(|r| r.2).collect();
            assert!(
                seqs.windows(2).all(|w| w[1] == w[0] + 1),
                "gap or reorder from {peer} at {i}"
            );
        }
    }
}

#[rstest]
#[case(0.1)]
#[case(0.5)]
fn simulated_loss_drops_about_the_rate(#[case] rate: f64) {
    let mut sim = probes(3, 2);
    let faults = MessageFaults {
        loss: rate,
        ..Default::default()
    };
    sim.set_faults(Some(MachineId(0)), &faults).unwrap();
    sim.run_until(ms(5000));
    let lost = sim.stats().dropped(DropReason::Loss);
    let sent = sent_by(&sim, 0);
    let share = lost as f64 / sent as f64;
    assert!((share - rate).abs() < 0.06, "lost {lost} of {sent}");
    // Only what machine 0 sends is affected.
    let from_others: u64 = [1, 2]
        .iter()
        .map(|&i| sim.stats().node(i).iter().map(|c| c.dropped).sum::<u64>())
        .sum();
    assert_eq!(from_others, 0);
}

#[test]
fn simulated_loss_filter_hits_only_named_kind() {
    let mut sim = probes(2, 3);
    let faults = MessageFaults {
        loss: 1.0,
        kinds: vec!["B".into()],
        ..Default::default()
    };
    sim.set_faults(None, &faults).unwrap();
    sim.run_until(ms(500));
    let got = &node(&sim, 1).received;
    assert!(!got.is_empty());
    assert!(got.iter().all(|r| r.1 == 0), "a B message got through");
    let b = sim.stats().node(0)[1];
    assert_eq!(b.delivered, 0);
    assert_eq!(b.dropped, b.sent);
}

#[test]
fn simulated_duplicate_delivers_twice() {
    let mut sim = probes(2, 4);
    sim.set_faults(
        None,
        &MessageFaults {
            duplicate: 0.3,
            ..Default::default()
        },
    )
    .unwrap();
    sim.run_until(ms(2000));
    let got = &node(&sim, 1).received;
    let mut seqs: Vec<u64> = got.iter().map(|r| r.2).collect();
    let n = seqs.len();
    seqs.sort();
    seqs.dedup();
    assert!(
        n > seqs.len() + 20,
        "{} copies of {} messages",
        n,
        seqs.len()
    );
    let c = sim.stats().totals();
    assert!(c.iter().map(|c| c.duplicated).sum::<u64>() > 20);
}

#[test]
fn simulated_reorder_breaks_send_order() {
    let mut sim = probes(2, 5);
    let faults = MessageFaults {
        reorder: 0.3,
        reorder_ms: Some(40.0),
        ..Default::default()
    };
    sim.set_faults(None, &faults).unwrap();
    sim.run_until(ms(2000));
    let seqs: Vec<u64> = node(&sim, 1).from(0).iter().map(|r| r.2).collect();
    let inversions = seqs.windows(2).filter(|w| w[1] < w[0]).count();
    assert!(inversions > 5, "only {inversions} inversions");
    // Nothing is lost by reordering.
    assert_eq!(sim.stats().drops.iter().sum::<u64>(), 0);
}

#[test]
fn simulated_delay_adds_latency() {
    let mut sim = probes(2, 6);
    sim.set_faults(
        Some(MachineId(0)),
        &MessageFaults {
            delay_ms: 50.0,
            ..Default::default()
        },
    )
    .unwrap();
    sim.run_until(ms(1000));
    for r in node(&sim, 1).from(0) {
        assert_eq!(r.4 - r.3, 55_000_000, "5 ms link + 50 ms delay");
    }
    for r in node(&sim, 0).from(1) {
        assert_eq!(r.4 - r.3, 5_000_000);
    }
}

#[test]
fn simulated_partitioned_pair_exchanges_nothing() {
    let mut sim = probes(3, 7);
    sim.run_until(ms(100));
    let before = (node(&sim, 0).from(1).len(), node(&sim, 1).from(0).len());
    sim.set_link_up(MachineId(0), MachineId(1), false);
    sim.set_link_up(MachineId(1), MachineId(0), false);
    sim.run_until(ms(1100));
    // Messages in flight when the link went down are lost too.
    assert_eq!(node(&sim, 0).from(1).len(), before.0);
    assert_eq!(node(&sim, 1).from(0).len(), before.1);
    // Both still talk to machine 2.
    assert!(node(&sim, 0).from(2).len() > 90);
    assert!(sim.stats().dropped(DropReason::LinkDown) > 150);
    sim.heal();
    sim.run_until(ms(1200));
    assert!(node(&sim, 0).from(1).len() > before.0 + 5);
}

#[test]
fn simulated_one_way_link_down() {
    let mut sim = probes(2, 8);
    sim.set_link_up(MachineId(0), MachineId(1), false);
    sim.run_until(ms(500));
    assert!(node(&sim, 1).from(0).is_empty());
    assert!(node(&sim, 0).from(1).len() > 40);
}

#[test]
fn simulated_isolated_machine_neither_sends_nor_receives() {
    let mut sim = probes(3, 9);
    sim.isolate(MachineId(2), true);
    sim.run_until(ms(500));
    assert!(node(&sim, 2).received.is_empty());
    assert!(node(&sim, 0).from(2).is_empty() && node(&sim, 1).from(2).is_empty());
    assert!(node(&sim, 0).from(1).len() > 40);
    assert!(sim.stats().dropped(DropReason::Isolated) > 0);
    sim.isolate(MachineId(2), false);
    sim.run_until(ms(600));
    assert!(!node(&sim, 2).received.is_empty());
}

#[test]
fn simulated_crash_loses_volatile_state_and_keeps_synced_storage() {
    let mut sim = probes(3, 10);
    sim.run_until(ms(300));
    assert!(node(&sim, 1).received.len() > 40);
    assert_eq!(
        node(&sim, 1).found_synced,
        None,
        "fresh storage at first start"
    );
    sim.crash(MachineId(1));
    assert!(sim.node(NodeId(1)).is_none(), "volatile state is gone");
    assert_eq!(sim.storage(NodeId(1)).read("synced"), Some(&b"kept"[..]));
    assert_eq!(
        sim.storage(NodeId(1)).read("unsynced"),
        None,
        "never synced, lost"
    );
    sim.run_until(ms(600));
    assert!(
        sim.stats().dropped(DropReason::MachineDown) > 50,
        "messages to a crashed machine are dropped"
    );
    sim.restart(MachineId(1));
    sim.run_until(ms(700));
    let n = node(&sim, 1);
    assert_eq!(n.found_synced.as_deref(), Some(&b"kept"[..]));
    assert_eq!(n.found_unsynced, None);
    assert_eq!(
        n.started_at,
        vec![600_000_000],
        "a new incarnation, started at restart"
    );
    // It only got what arrived after the restart; timers from before are gone.
    assert!(n.received.iter().all(|r| r.4 >= 600_000_000));
    assert!(n.timer_fires.iter().all(|&t| t > 600_000_000));
}

#[test]
fn simulated_killed_node_stays_dead() {
    let mut sim = probes(2, 11);
    sim.run_until(ms(100));
    sim.kill_node(NodeId(0));
    sim.crash(MachineId(0));
    sim.restart(MachineId(0));
    sim.run_until(ms(300));
    assert!(sim.node(NodeId(0)).is_none());
    assert!(sim.stats().dropped(DropReason::NoSuchNode) > 0);
}

#[test]
fn simulated_clock_skew_shifts_and_stretches_local_time() {
    let skew = ClockSkew {
        offset_ms: 100.0,
        drift_ppm: 10_000.0,
    };
    let mut sim = probes_with(2, 12, &[(1, skew)]);
    sim.run_until(ms(1000));
    assert_eq!(
        node(&sim, 1).started_at,
        vec![100_000_000],
        "offset shows at start"
    );
    assert_eq!(node(&sim, 0).started_at, vec![0]);
    // A 10 ms timer on a 1% fast clock fires every ~9.9 ms of true time,
    // so the skewed node ticks more often.
    let (fast, true_clock) = (
        node(&sim, 1).timer_fires.len(),
        node(&sim, 0).timer_fires.len(),
    );
    assert_eq!(true_clock, 100);
    assert_eq!(fast, 101);
    // Local readings advance 1% faster than true time between ticks.
    let f = &node(&sim, 1).timer_fires;
    assert!(
        f.windows(2)
            .all(|w| (w[1] - w[0]).abs_diff(10_000_000) <= 1)
    );
}
