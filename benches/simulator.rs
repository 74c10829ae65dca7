//! `cargo bench`: the simulator on the pingpong workload. The side-by-side
//! comparison with SimPy is `scripts/bench-sim`, which writes the numbers
//! in docs/performance.md.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use distzero::cli::pingpong_sim;

fn pingpong(c: &mut Criterion) {
    let mut group = c.benchmark_group("pingpong");
    group.sample_size(10);
    for nodes in [100u32, 1000, 10_000] {
        // About 200 deliveries per node per simulated second.
        group.throughput(Throughput::Elements(u64::from(nodes) * 200));
        group.bench_with_input(BenchmarkId::new("1s simulated", nodes), &nodes, |b, &n| {
            b.iter(|| {
                let mut sim = pingpong_sim(n, 1);
                sim.run_until(Duration::from_secs(1));
                sim.stats().deliveries
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Criterion's plots need system fonts; the numbers are what we keep.
    config = Criterion::default().without_plots();
    targets = pingpong
}
criterion_main!(benches);
