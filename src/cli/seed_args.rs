//! The seed flags every `sim-check` takes, and running its seeds over the
//! cores behind one progress bar.

use std::ops::Range;
use std::sync::Mutex;
use std::time::Instant;

use super::progress::Progress;

#[derive(clap::Args)]
pub struct SeedArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 1000)]
    pub seeds: u64,
    /// The first seed (seeds are first, first+1, ...).
    #[arg(long, default_value_t = 1)]
    pub first_seed: u64,
    /// Run exactly this seed (a replay).
    #[arg(long, conflicts_with_all = ["seeds", "first_seed"])]
    pub seed: Option<u64>,
    /// Worker threads [default: one per core].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// What a pool of seeds gave back, and what it took.
pub struct Pooled<R> {
    pub results: Vec<R>,
    pub wall_s: f64,
    pub threads: usize,
}

impl SeedArgs {
    pub fn range(&self) -> Range<u64> {
        match self.seed {
            Some(s) => s..s + 1,
            None => self.first_seed..self.first_seed + self.seeds,
        }
    }

    /// Runs `check(seeds, threads, progress)` with a progress bar.
    pub fn run<R>(
        &self,
        check: impl FnOnce(Range<u64>, usize, &(dyn Fn(u64) + Sync)) -> crate::error::Result<Vec<R>>,
    ) -> anyhow::Result<Pooled<R>> {
        let seeds = self.range();
        let total = seeds.end - seeds.start;
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let progress = Mutex::new(Progress::new(format!("checking {total} seeds")));
        let start = Instant::now();
        let results = check(seeds, threads, &|done| {
            if let Ok(mut p) = progress.lock() {
                p.update(done as f64 / total as f64);
            }
        })?;
        if let Ok(p) = progress.into_inner() {
            p.finish();
        }
        Ok(Pooled {
            results,
            wall_s: start.elapsed().as_secs_f64(),
            threads,
        })
    }
}
