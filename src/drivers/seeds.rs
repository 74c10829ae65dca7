//! Many independent seeds over a pool of threads, for the checkers that
//! run thousands of simulations (`dz kv sim-check`, `dz cheops sim-check`, `dz datasets sim-check`).

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Result;

/// Runs one seed's check; a panic comes back as its message, so that a
/// broken invariant is that seed's failure, not the end of the check.
pub fn catch_panic<R>(check: impl FnOnce() -> R) -> std::result::Result<R, String> {
    catch_unwind(AssertUnwindSafe(check)).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic".into())
    })
}

/// What `dz view` reads beside a seed's trace (`results.json`): the
/// system, the seed, its trace hash and the machines' names, in order.
pub fn view_results(
    system: &str,
    seed: u64,
    trace_hash: &str,
    machines: &[String],
) -> serde_json::Value {
    let nodes: Vec<_> = machines
        .iter()
        .enumerate()
        .map(|(i, name)| serde_json::json!({"id": i, "name": name, "machine": name}))
        .collect();
    serde_json::json!({
        "settings": {"system": system, "title": format!("{system} sim-check seed")},
        "seed": seed,
        "trace_hash": trace_hash,
        "nodes": nodes,
    })
}

/// Runs `one(seed)` for every seed on `threads` threads, calling
/// `progress(done)` after each; results come back in seed order. The first
/// error stops the pool and is returned.
pub fn run_seeds<R: Send>(
    seeds: Range<u64>,
    threads: usize,
    one: &(dyn Fn(u64) -> Result<R> + Sync),
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<R>> {
    let next = AtomicU64::new(seeds.start);
    let done = AtomicU64::new(0);
    let results = Mutex::new(Vec::new());
    let error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        return;
                    }
                    match one(seed) {
                        Ok(r) => results.lock().expect("results lock").push((seed, r)),
                        Err(e) => {
                            error.lock().expect("error lock").get_or_insert(e);
                            return;
                        }
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                }
            });
        }
    });
    if let Some(e) = error.into_inner().expect("error lock") {
        return Err(e);
    }
    let mut results = results.into_inner().expect("results lock");
    results.sort_by_key(|(seed, _)| *seed);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}
