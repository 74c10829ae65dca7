//! Outputs of a clocks run: one CSV log per machine, `summary.json`, two
//! plots, and the Lamport invariants checked on the logs themselves.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::experiment::ClocksRun;
use crate::analysis::plot::{Chart, Series, line_chart};
use crate::error::{Error, Result};
use crate::systems::clocks::{ClockEvent, LogRow};

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MachineSummary {
    pub name: String,
    pub rate: f64,
    pub final_clock: u64,
    pub ticks: u64,
    pub receives: u64,
    pub sends: u64,
    pub internals: u64,
    pub max_jump: u64,
    pub max_queue: usize,
    pub mean_queue: f64,
    pub final_queue: usize,
    /// Final clock of the fastest machine minus this one's.
    pub drift: i64,
    /// The largest such gap seen at any of this machine's events.
    pub max_drift: i64,
}

pub struct Outputs {
    pub dir: PathBuf,
    pub logs: Vec<PathBuf>,
    pub summary: PathBuf,
    pub clock_plot: PathBuf,
    pub queue_plot: PathBuf,
}

/// The fastest machine (highest rate; the first of equals).
fn fastest(run: &ClocksRun) -> usize {
    let mut best = 0;
    for (i, m) in run.machines.iter().enumerate() {
        if m.rate > run.machines[best].rate {
            best = i;
        }
    }
    best
}

/// Clock of `rows` at time `t`: the last event at or before `t`.
fn clock_at(rows: &[LogRow], t: f64) -> u64 {
    match rows.partition_point(|r| r.time_s <= t) {
        0 => 0,
        i => rows[i - 1].clock_after,
    }
}

pub fn summarize(run: &ClocksRun) -> Vec<MachineSummary> {
    let fast = &run.machines[fastest(run)];
    run.machines
        .iter()
        .map(|m| {
            let s = &m.summary;
            let max_drift = m
                .rows
                .iter()
                .map(|r| clock_at(&fast.rows, r.time_s) as i64 - r.clock_after as i64)
                .max()
                .unwrap_or(0);
            MachineSummary {
                name: m.name.clone(),
                rate: m.rate,
                final_clock: s.clock,
                ticks: s.ticks,
                receives: s.receives,
                sends: s.sends,
                internals: s.internals,
                max_jump: s.max_jump,
                max_queue: s.max_queue,
                mean_queue: s.mean_queue(),
                final_queue: s.queue_now,
                drift: fast.summary.clock as i64 - s.clock as i64,
                max_drift,
            }
        })
        .collect()
}

/// The Lamport rules, checked on a machine's log: the clock never goes
/// back, a receive lands strictly above the received timestamp, and every
/// other event adds exactly one.
pub fn check_invariants(name: &str, rows: &[LogRow]) -> Vec<String> {
    let mut bad = Vec::new();
    let mut last = None;
    for r in rows {
        let at = format!("{name} event {} at {:.3}s", r.index, r.time_s);
        if let Some(prev) = last
            && r.clock_before < prev
        {
            bad.push(format!(
                "{at}: clock went back from {prev} to {}",
                r.clock_before
            ));
        }
        if r.clock_after < r.clock_before || r.jump != r.clock_after - r.clock_before {
            bad.push(format!(
                "{at}: clock {} -> {} (jump {})",
                r.clock_before, r.clock_after, r.jump
            ));
        }
        match (r.event, r.received) {
            (ClockEvent::Receive, Some(ts)) if r.clock_after <= ts => {
                bad.push(format!(
                    "{at}: received {ts} but clock is only {}",
                    r.clock_after
                ));
            }
            (ClockEvent::Receive, Some(ts)) if r.clock_after != r.clock_before.max(ts) + 1 => {
                bad.push(format!(
                    "{at}: receive of {ts} from clock {} gave {}",
                    r.clock_before, r.clock_after
                ));
            }
            (ClockEvent::Receive, None) => bad.push(format!("{at}: receive without a timestamp")),
            (ClockEvent::Send | ClockEvent::Internal, _) if r.clock_after != r.clock_before + 1 => {
                bad.push(format!("{at}: {:?} moved the clock by {}", r.event, r.jump));
            }
            _ => {}
        }
        last = Some(r.clock_after);
    }
    bad
}

fn csv(rows: &[LogRow]) -> String {
    let mut s =
        String::from("event,time_s,queue_len,clock_before,clock_after,jump,received,sent_to\n");
    for r in rows {
        let event = match r.event {
            ClockEvent::Receive => "receive",
            ClockEvent::Send => "send",
            ClockEvent::Internal => "internal",
        };
        let received = r.received.map(|v| v.to_string()).unwrap_or_default();
        let sent_to: Vec<String> = r.sent_to.iter().map(|n| format!("n{n}")).collect();
        let _ = writeln!(
            s,
            "{event},{:.6},{},{},{},{},{received},{}",
            r.time_s,
            r.queue_len,
            r.clock_before,
            r.clock_after,
            r.jump,
            sent_to.join(" ")
        );
    }
    s
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Writes `<machine>.csv` per machine, `summary.json`, `clock.png` and
/// `queue.png` into `dir`.
pub fn write_outputs(run: &ClocksRun, summaries: &[MachineSummary], dir: &Path) -> Result<Outputs> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut logs = Vec::new();
    for m in &run.machines {
        let path = dir.join(format!("{}.csv", m.name));
        write(&path, &csv(&m.rows))?;
        logs.push(path);
    }
    let p = &run.params;
    let summary = serde_json::json!({
        "mode": run.mode,
        "seed": p.seed,
        "rates": p.rates,
        "internal_prob": p.internal_prob,
        "duration_s": p.duration.as_secs_f64(),
        "machines": summaries,
    });
    let summary_path = dir.join("summary.json");
    crate::drivers::simulate::write_json(&summary_path, &summary)?;

    let label = |m: &super::experiment::MachineLog| format!("{} ({} ticks/s)", m.name, m.rate);
    let title_tail = format!("rates {:?}, p = {}", p.rates, p.internal_prob);
    let series = |value: fn(&LogRow) -> f64| -> Vec<Series> {
        run.machines
            .iter()
            .map(|m| Series {
                name: label(m),
                points: m.rows.iter().map(|r| (r.time_s, value(r))).collect(),
            })
            .collect()
    };
    let clocks = series(|r| r.clock_after as f64);
    let queues = series(|r| r.queue_len as f64);
    let clock_plot = dir.join("clock.png");
    line_chart(
        &clock_plot,
        &Chart {
            title: &format!("Logical clock vs time: {title_tail}"),
            x_label: "system time (s)",
            y_label: "logical clock",
            series: &clocks,
        },
    )?;
    let queue_plot = dir.join("queue.png");
    line_chart(
        &queue_plot,
        &Chart {
            title: &format!("Queue length vs time: {title_tail}"),
            x_label: "system time (s)",
            y_label: "messages queued",
            series: &queues,
        },
    )?;
    Ok(Outputs {
        dir: dir.to_path_buf(),
        logs,
        summary: summary_path,
        clock_plot,
        queue_plot,
    })
}
