//! `dz cheops bench`: how fast a Cheops cluster takes operations through
//! a site's HTTP API. Two numbers: operations per second one site accepts
//! (answers 200, i.e. the operation is durable there), with several
//! clients at once; and the time from a request until every site of the
//! resource has replied, one request at a time.

use std::time::{Duration, Instant};

use super::http::{Part, request};
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// The accepting site's API base URL.
    pub url: String,
    /// The resource's sites, joined by '&'.
    pub sites: String,
    pub accepted_ops: usize,
    pub clients: usize,
    pub e2e_ops: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchResult {
    pub accepted_ops: usize,
    pub clients: usize,
    pub accepted_per_s: f64,
    pub e2e_ops: usize,
    pub e2e_median_ms: f64,
    pub e2e_p90_ms: f64,
    pub e2e_max_ms: f64,
}

fn parts(sites: &str, command: &str) -> Vec<Part> {
    vec![
        Part::text("sites", sites),
        Part::text("command", command),
        Part::text("type", "inc"),
        Part::text("backend", "kv"),
    ]
}

/// One exec; with `all`, waits for every site's reply (and checks each
/// is OK), otherwise only for the site's acceptance.
async fn one(url: &str, sites: &str, id: &str, all: bool) -> Result<()> {
    let p = parts(sites, &format!("INCRBY {id} 1"));
    let mut r = request(url, "POST", &format!("/exec/{id}"), Some(&p)).await?;
    if r.status != 200 {
        let why = r.text().await.unwrap_or_default();
        return Err(Error::runtime(format!("HTTP {}: {}", r.status, why.trim())));
    }
    if !all {
        return Ok(());
    }
    let n = sites.split('&').filter(|s| !s.trim().is_empty()).count();
    for _ in 0..n {
        let line = r
            .line()
            .await?
            .ok_or_else(|| Error::runtime("the reply stream ended early"))?;
        if !line.contains("\"Status\":\"OK\"") {
            return Err(Error::runtime(format!("not OK: {line}")));
        }
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

pub async fn run(o: &BenchOptions) -> Result<BenchResult> {
    if o.clients == 0 || o.accepted_ops == 0 || o.e2e_ops == 0 {
        return Err(Error::input("need --ops, --clients and --e2e-ops >= 1"));
    }
    // Accepted: `clients` loops, each on a resource of its own.
    let started = Instant::now();
    let per = o.accepted_ops.div_ceil(o.clients);
    let mut tasks = Vec::new();
    for c in 0..o.clients {
        let (url, sites) = (o.url.clone(), o.sites.clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("bench-accept-{c}");
            for _ in 0..per {
                one(&url, &sites, &id, false).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| Error::runtime(e.to_string()))??;
    }
    let accepted_s = started.elapsed().as_secs_f64();
    // Let the runs and replication of that burst finish first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut e2e = Vec::new();
    for _ in 0..o.e2e_ops {
        let t = Instant::now();
        one(&o.url, &o.sites, "bench-e2e", true).await?;
        e2e.push(t.elapsed().as_secs_f64() * 1e3);
    }
    e2e.sort_by(f64::total_cmp);
    Ok(BenchResult {
        accepted_ops: per * o.clients,
        clients: o.clients,
        accepted_per_s: (per * o.clients) as f64 / accepted_s,
        e2e_ops: e2e.len(),
        e2e_median_ms: percentile(&e2e, 0.5),
        e2e_p90_ms: percentile(&e2e, 0.9),
        e2e_max_ms: e2e.last().copied().unwrap_or(0.0),
    })
}
