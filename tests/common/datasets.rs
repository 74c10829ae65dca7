//! The dataset scenario both real modes run: `dz datasets run` grows a
//! tree to 27 leaves over 3 machines (kids limit 3) and back; the checks
//! read its results.json.

use std::path::Path;

use super::real::dz_run;

/// What each of the 27 leaves sends (`grow_and_shrink`): 1..=7 in turn.
pub const EXPECTED_TOTAL: i64 = 105;

/// Runs the scenario on a fresh cluster `name` in `mode`; returns the
/// results and the printed lines.
pub fn grow_and_shrink(tmp: &Path, mode: &str, name: &str) -> (serde_json::Value, String) {
    let out_dir = tmp.join("out");
    let (code, out, err) = dz_run(
        tmp,
        &[
            "datasets",
            "run",
            "--mode",
            mode,
            "--machines",
            "3",
            "--kids-limit",
            "3",
            "--leaves",
            "27",
            "--every",
            "300ms",
            "--settle",
            "10s",
            "--sample",
            "500ms",
            "--name",
            name,
            "--out",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let text = std::fs::read_to_string(out_dir.join("results.json")).unwrap();
    for plot in ["height", "nodes", "leaves", "totals"] {
        assert!(out_dir.join(format!("{plot}.svg")).exists(), "{plot}.svg");
    }
    // The final tree, drawn from the nodes' statuses: the root, back at
    // height 2, with the exact total.
    let tree = std::fs::read_to_string(out_dir.join("tree.svg")).unwrap();
    assert!(tree.contains(&format!(">h2 {EXPECTED_TOTAL}<")), "{tree}");
    (serde_json::from_str(&text).unwrap(), out)
}

/// 27 leaves at the peak, height 4, data nodes spawned on every machine,
/// the exact total at the root and every output, back to height 2.
pub fn check(r: &serde_json::Value, out: &str) {
    assert!(r["failure"].is_null(), "{}\n{out}", r["failure"]);
    assert_eq!(r["expected_total"], EXPECTED_TOTAL, "{out}");
    assert_eq!(r["expected_leaves"], 0, "{out}");
    let samples = r["samples"].as_array().unwrap();
    let most = samples.iter().filter_map(|s| s["leaves"].as_u64()).max();
    assert_eq!(most, Some(27), "{out}");
    assert_eq!(r["peak_height"], 4, "{out}");
    // The total arrived while the leaves were all there.
    assert!(
        samples
            .iter()
            .any(|s| s["leaves"] == 27 && s["root_total"] == EXPECTED_TOTAL),
        "{out}"
    );
    let end = &r["final"];
    assert_eq!(end["height"], 2, "{out}");
    assert_eq!(end["leaves"], 0, "{out}");
    assert!(end["problem"].is_null(), "{out}");
    assert_eq!(end["root_total"], EXPECTED_TOTAL, "{out}");
    let outputs = end["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2, "{out}");
    assert!(outputs.iter().all(|t| *t == EXPECTED_TOTAL), "{out}");
    assert!(r["settled_s"].is_number(), "{out}");
    let machines = r["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 3, "{out}");
    for m in machines {
        assert!(
            m["spawned"].as_u64() >= Some(3),
            "no data nodes spawned on {m}\n{out}"
        );
        assert!(m["data_nodes"].as_u64() >= Some(3), "{m}\n{out}");
    }
    assert!(out.contains("ok: a valid tree"), "{out}");
}
