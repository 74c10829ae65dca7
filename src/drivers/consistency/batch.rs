//! Many runs at once: on every core (rayon), or one shard of them so that
//! a batch system (a Slurm array, a Kubernetes indexed Job) spreads a
//! sweep over machines; each run gives one JSON line; shards merge.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;
use serde_json::{Value, json};

use super::experiment::{Experiment, metrics, simulate};
use super::results;
use crate::error::{Error, Result};
use crate::node::Mode;

/// `K/N`: run the runs whose index is K modulo N (K from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let bad = || format!("{s:?} is not K/N with 0 <= K < N (e.g. 0/4)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn keeps(&self, i: usize) -> bool {
        i % self.count == self.index
    }
}

/// One run of a batch: an experiment and labels for its line.
pub struct Job {
    pub experiment: Experiment,
    pub labels: serde_json::Map<String, Value>,
    /// Where to write its results.json and summary.json, if anywhere.
    pub out: Option<std::path::PathBuf>,
}

/// Runs `jobs` on `threads` threads; `done(finished, total)` after each.
/// Lines come back in job order: labels, the summary, and the wall time;
/// a failed run gives a line with its error.
pub fn run(
    jobs: Vec<Job>,
    threads: usize,
    done: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Value>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
        .map_err(|e| Error::runtime(format!("cannot start {threads} threads: {e}")))?;
    let total = jobs.len();
    let finished = Mutex::new(0usize);
    Ok(pool.install(|| {
        jobs.into_par_iter()
            .map(|job| {
                let line = run_one(&job);
                let mut n = finished.lock().expect("no panics hold it");
                *n += 1;
                done(*n, total);
                line
            })
            .collect()
    }))
}

fn run_one(job: &Job) -> Value {
    let start = Instant::now();
    let mut line = job.labels.clone();
    let outcome = (|| -> Result<Value> {
        let run = simulate(&job.experiment, &mut |_| {})?;
        let (series, m) = metrics(&job.experiment, &run)?;
        let files = results::build(&job.experiment, &run, &series, &m, Mode::Simulated);
        if let Some(dir) = &job.out {
            results::write(dir, &files)?;
        }
        Ok(files.summary)
    })();
    match outcome {
        Ok(Value::Object(summary)) => line.extend(summary),
        Ok(_) => {}
        Err(e) => {
            line.insert("error".into(), e.to_string().into());
        }
    }
    line.insert("wall_ms".into(), json!(start.elapsed().as_secs_f64() * 1e3));
    Value::Object(line)
}

/// Joins shard files (JSON lines) into one, in the order of their `run`
/// index when they carry one.
pub fn merge(inputs: &[&Path]) -> Result<Vec<Value>> {
    let mut lines = Vec::new();
    for path in inputs {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: Value = serde_json::from_str(line).map_err(|e| {
                Error::input(format!(
                    "{}:{}: not a JSON line: {e}",
                    path.display(),
                    n + 1
                ))
            })?;
            lines.push(v);
        }
    }
    lines.sort_by_key(|v| v.get("run").and_then(Value::as_u64).unwrap_or(u64::MAX));
    Ok(lines)
}

pub fn to_jsonl(lines: &[Value]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&l.to_string());
        out.push('\n');
    }
    out
}
