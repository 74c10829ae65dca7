//! `dz kv-bench`: a workload against a DistZero kv cluster or etcd, with
//! latency figures and, on request, a linearizability check.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::default_out;
use super::progress::Progress;
use crate::drivers::kv::bench::{TargetSpec, latency_csv, percentiles, results_csv, run};
use crate::drivers::kv::check::check_history;
use crate::drivers::kv::history_file;
use crate::error::Error;
use crate::settings::Settings;
use crate::systems::kv::workload::Workload;

#[derive(clap::Args)]
pub struct Args {
    /// Workload file (TOML: reads, interval_ms, keys, key_size, value_size, requests, clients).
    #[arg(long)]
    workload: PathBuf,
    /// A DistZero kv cluster started by `dz cluster up --system kv`.
    #[arg(long, conflicts_with_all = ["servers", "target"])]
    cluster: Option<String>,
    /// Or its servers' data addresses in node order (needs DZ_CLUSTER_SECRET).
    #[arg(long, value_delimiter = ',', conflicts_with = "target")]
    servers: Vec<String>,
    /// Or another service: etcd://HOST:PORT.
    #[arg(long)]
    target: Option<String>,
    /// Output directory [default: .tmp/kv-bench/<target>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Check the recorded history for linearizability.
    #[arg(long)]
    check: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run_cmd(settings: &Settings, a: Args) -> anyhow::Result<()> {
    let workload = Workload::load(&a.workload)?;
    let (spec, label) = match &a.target {
        Some(url) => (TargetSpec::parse_url(url)?, "etcd".to_string()),
        None => {
            let (servers, secret) = super::kv::servers(settings, &a.cluster, &a.servers)?;
            let label = a.cluster.clone().unwrap_or_else(|| "servers".into());
            (TargetSpec::DistZero { servers, secret }, label)
        }
    };
    let out = a
        .out
        .unwrap_or_else(|| default_out(settings, &["kv-bench", &label]));
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let total = workload.requests * u64::from(workload.clients);
    let duration = if workload.duration_ms > 0.0 {
        format!(" (for at most {:.1} s)", workload.duration_ms / 1e3)
    } else {
        String::new()
    };
    println!(
        "{}: {} clients x {} requests{duration}, {}% reads, {} keys",
        spec.describe(),
        workload.clients,
        workload.requests,
        workload.reads,
        workload.keys
    );
    let rt = tokio::runtime::Runtime::new().map_err(|e| Error::runtime(e.to_string()))?;
    let done = Arc::new(AtomicU64::new(0));
    let result = rt.block_on(async {
        let task = tokio::spawn({
            let (spec, workload, done) = (spec.clone(), workload.clone(), done.clone());
            async move { run(&spec, &workload, a.seed, done).await }
        });
        let mut progress = Progress::new("kv-bench");
        let started = std::time::Instant::now();
        while !task.is_finished() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let by_count = done.load(Ordering::Relaxed) as f64 / total as f64;
            let by_time = started.elapsed().as_secs_f64() * 1e3 / workload.duration_ms;
            progress.update(if workload.duration_ms > 0.0 {
                by_count.max(by_time).min(1.0)
            } else {
                by_count
            });
        }
        progress.finish();
        task.await.map_err(|e| Error::runtime(e.to_string()))?
    })?;
    let write = |name: &str, text: String| -> anyhow::Result<()> {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        Ok(())
    };
    history_file::write(&out.join("history.jsonl"), &result.history)?;
    write("latency.csv", latency_csv(result.load()))?;
    write("results.csv", results_csv(workload.clients, &result))?;
    let issued = result.load().count();
    let answered = result.load().filter(|o| o.ret_ns.is_some()).count();
    let (p50, p99, p999) = percentiles(result.load());
    println!(
        "{answered} of {issued} requests answered in {:.2} s: {:.0} requests/s; latency p50 {p50} µs, p99 {p99} µs, p99.9 {p999} µs",
        result.seconds,
        answered as f64 / result.seconds
    );
    if let Some(e) = result.errors.first() {
        println!("{} requests got no answer; first: {e}", result.errors.len());
    }
    println!(
        "wrote {0}/history.jsonl, {0}/latency.csv and {0}/results.csv",
        out.display()
    );
    if a.check {
        let verdict = check_history(&result.history);
        super::kv_check::report(&verdict, Some(&out.join("violation.jsonl")))?;
    }
    Ok(())
}
