//! The logical-clocks experiment on real simulated runs: Lamport's rules
//! hold on every machine's log, and the known drift findings show up.

use std::time::Duration;

use distzero::drivers::clocks::experiment::{ClocksParams, parse_rates, run_simulated};
use distzero::drivers::clocks::report::{check_invariants, summarize};
use distzero::systems::clocks::ClockEvent;
use rstest::rstest;

fn run(
    rates: &[f64],
    p: f64,
    seed: u64,
    secs: u64,
) -> distzero::drivers::clocks::experiment::ClocksRun {
    let mut params = ClocksParams::new(rates.to_vec());
    params.internal_prob = p;
    params.seed = seed;
    params.duration = Duration::from_secs(secs);
    run_simulated(&params, &mut |_| {}).unwrap()
}

#[rstest]
#[case(&[6.0, 1.0, 1.0], 0.7)]
#[case(&[6.0, 1.0, 1.0], 0.25)]
#[case(&[6.0, 5.0, 4.0], 0.25)]
#[case(&[3.0, 3.0, 3.0, 3.0, 3.0], 0.5)]
#[case(&[2.5, 0.5], 0.1)]
fn simulated_lamport_invariants_hold(#[case] rates: &[f64], #[case] p: f64) {
    for seed in 1..=5 {
        let run = run(rates, p, seed, 60);
        for (m, &rate) in run.machines.iter().zip(rates) {
            let bad = check_invariants(&m.name, &m.rows);
            assert!(bad.is_empty(), "seed {seed}: {bad:?}");
            // Ticks happen at the machine's rate.
            let expected = rate * 60.0;
            assert!(
                (m.rows.len() as f64 - expected).abs() <= 1.0,
                "{} rows, expected {expected}",
                m.rows.len()
            );
            assert!(m.rows.iter().any(|r| r.event != ClockEvent::Internal) || rates.len() == 1);
        }
        let receives: u64 = run.machines.iter().map(|m| m.summary.receives).sum();
        assert!(receives > 0, "machines must actually exchange timestamps");
    }
}

#[test]
fn simulated_invariant_checker_catches_a_broken_log() {
    let mut run = run(&[6.0, 1.0, 1.0], 0.7, 1, 20);
    let rows = &mut run.machines[1].rows;
    let i = rows
        .iter()
        .position(|r| r.event == ClockEvent::Receive)
        .unwrap();
    let ts = rows[i].received.unwrap();
    rows[i].clock_after = ts; // not strictly above the received timestamp
    rows[i].jump = rows[i].clock_after.saturating_sub(rows[i].clock_before);
    assert!(!check_invariants("m1", rows).is_empty());
}

#[test]
fn simulated_order_of_magnitude_slower_machine_drifts() {
    // One fast machine and two 6x slower ones: the slow ones build a backlog
    // and their clocks fall behind.
    let s = summarize(&run(&[6.0, 1.0, 1.0], 0.7, 1, 60));
    for slow in &s[1..] {
        assert!(slow.mean_queue > 3.0, "{slow:?}");
        assert!(slow.drift > 30, "{slow:?}");
    }
    // Less than an order of magnitude: no lasting backlog, no drift.
    let s = summarize(&run(&[6.0, 4.0, 2.0], 0.7, 1, 60));
    for m in &s {
        assert!(m.final_queue < 10 && m.drift.abs() <= 5, "{m:?}");
    }
}

#[rstest]
#[case("0", "must be a positive number")]
#[case("6,x,1", "is not a number")]
#[case("6,-1", "must be a positive number")]
#[case("", "is not a number")]
fn simulated_bad_rates_are_refused(#[case] input: &str, #[case] says: &str) {
    let e = parse_rates(input).unwrap_err();
    assert!(e.contains(says), "{e}");
}
