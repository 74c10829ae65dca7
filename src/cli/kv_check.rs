//! `dz kv check FILE`: checks a kv history file (`history.jsonl`, as
//! kv-bench, sim-check and the demo write it, or from another tool) for
//! linearizability, and shows where the service stopped answering.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::drivers::kv::check::{Verdict, check_history};
use crate::drivers::kv::history_file;
use crate::drivers::kv::outage::longest_gaps;
use crate::error::Error;

#[derive(clap::Args)]
pub struct Args {
    /// The history: one JSON object per operation (see docs/kv.md).
    file: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let history = history_file::read(&a.file)?;
    let clients: BTreeSet<u32> = history.iter().map(|h| h.client).collect();
    let initial = history.iter().filter(|h| h.initial).count();
    let unanswered = history.iter().filter(|h| h.ret_ns.is_none()).count();
    println!(
        "{}: {} operations by {} clients ({initial} initial reads), {unanswered} unanswered",
        a.file.display(),
        history.len(),
        clients.len()
    );
    let gaps: Vec<String> = longest_gaps(&history, 3)
        .iter()
        .map(|g| {
            format!(
                "{:.1} ms from {:.3} s",
                g.len().as_secs_f64() * 1e3,
                g.from_ns as f64 / 1e9
            )
        })
        .collect();
    if !gaps.is_empty() {
        println!("longest gaps between answers: {}", gaps.join(", "));
    }
    report(&check_history(&history), None)
}

/// Prints the verdict. On a violation it prints the smallest failing
/// sub-history found, writes it to `keep` if given (a history file itself,
/// so `dz kv check` runs on it), and fails.
pub(super) fn report(verdict: &Verdict, keep: Option<&Path>) -> anyhow::Result<()> {
    let Some((key, core)) = &verdict.violation else {
        println!(
            "linearizable: yes ({} operations on {} keys checked, {} count/print skipped)",
            verdict.operations - verdict.skipped,
            verdict.keys,
            verdict.skipped
        );
        return Ok(());
    };
    let lines = history_file::to_jsonl(core);
    println!("NOT linearizable: key {key:?}; the smallest failing sub-history found:");
    print!("{lines}");
    match keep {
        Some(path) => {
            std::fs::write(path, &lines).map_err(|e| Error::io(path, e))?;
            anyhow::bail!(
                "NOT linearizable: the smallest failing history found is in {}",
                path.display()
            )
        }
        None => anyhow::bail!("NOT linearizable (key {key:?})"),
    }
}
