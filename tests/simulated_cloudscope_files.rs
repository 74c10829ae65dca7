//! Every CloudScope input copied into `tests/data/cloudscope/repo/` (its
//! topologies from `data/`, `deploy/data/`, `fixtures/topologies/` and
//! `tests/fixtures/`, old versions included, and its traces) loads through
//! the real loaders, or is refused with one line naming the file and the
//! field. A few also run through `dz consistency simulate`.

mod common;

use std::path::{Path, PathBuf};

use common::real::{dz_ok, dz_run};
use distzero::drivers::consistency::experiment::{load_inputs, metrics, simulate};
use distzero::drivers::consistency::settings::RunSettings;
use distzero::drivers::consistency::{outages, trace};
use distzero::topology::Topology;
use serde_json::Value;

const REPO: &str = "tests/data/cloudscope/repo";

/// Each topology file and what must happen: `None` loads; `Some((field,
/// hint))` is refused naming `field` and saying what to write instead.
const TOPOLOGIES: &[(&str, Option<(&str, &str)>)] = &[
    (
        "data/bottleneck.json",
        Some(("nodes[0].consistency", "\"medium\" is a retired")),
    ),
    (
        "data/causal.json",
        Some(("nodes[0].consistency", "\"medium\" is a retired")),
    ),
    (
        "data/division.json",
        Some(("nodes[0].consistency", "\"low\" is a retired")),
    ),
    (
        "data/eventual.json",
        Some(("nodes[0].consistency", "write \"eventual\"")),
    ),
    ("data/raft.json", None),
    (
        "data/simulation.json",
        Some(("nodes[3].consistency", "\"medium\" is a retired")),
    ),
    (
        "data/simulation-6b2c698.json",
        Some(("nodes[3].consistency", "\"medium\"")),
    ),
    (
        "deploy/data/backbone.json",
        Some(("nodes[1].consistency", "\"causal\" has no protocol")),
    ),
    (
        "deploy/data/backbone-ecf60db.json",
        Some(("nodes[1].consistency", "\"medium\"")),
    ),
    (
        "deploy/data/bottleneck.json",
        Some(("nodes[0].consistency", "write \"eventual\" or \"stentor\"")),
    ),
    ("deploy/data/cluster.json", None),
    (
        "deploy/data/division.json",
        Some(("nodes[1].consistency", "\"causal\"")),
    ),
    ("deploy/data/eventual.json", None),
    ("deploy/data/federated.json", None),
    ("deploy/data/federated/eventual-7a75cc1.json", None),
    ("deploy/data/federated/federated.json", None),
    ("deploy/data/federated/sequential.json", None),
    ("deploy/data/hierarchy.json", None),
    ("deploy/data/raft.json", None),
    (
        "deploy/data/simulation.json",
        Some(("nodes[3].consistency", "\"medium\"")),
    ),
    ("deploy/data/tagging.json", None),
    ("deploy/data/tiered.json", None),
    ("deploy/data/tiered-9e8beb7.json", None),
    ("deploy/data/topology.json", None),
    (
        "deploy/data/workgroup.json",
        Some(("nodes[1].consistency", "\"low\"")),
    ),
    ("fixtures/topologies/eventual.json", None),
    ("tests/fixtures/eventual.json", None),
    (
        "tests/fixtures/eventual-47df350.json",
        Some(("nodes[0].consistency", "\"low\"")),
    ),
    ("tests/fixtures/raft.json", None),
    (
        "tests/fixtures/simulation.json",
        Some(("nodes[3].consistency", "\"medium\"")),
    ),
    ("tests/fixtures/tag.json", None),
];

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            json_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn short_settings() -> RunSettings {
    RunSettings {
        max_sim_time: 5_000.0,
        ..RunSettings::default()
    }
}

#[test]
fn simulated_every_cloudscope_topology_loads_or_is_refused_naming_the_field() {
    let mut found = Vec::new();
    json_files(Path::new(REPO), &mut found);
    for p in &found {
        let rel = p.strip_prefix(REPO).unwrap().to_str().unwrap();
        assert!(
            TOPOLOGIES.iter().any(|(f, _)| *f == rel),
            "{rel} is not in the table"
        );
    }
    let (mut loaded, mut refused) = (0, 0);
    for (file, expect) in TOPOLOGIES {
        let path = Path::new(REPO).join(file);
        match (Topology::load(&path), expect) {
            (Ok(t), None) => {
                loaded += 1;
                assert_eq!(t.system, "consistency", "{file}");
                // The replicas build and a short run goes through.
                let exp = load_inputs(
                    t,
                    file.to_string(),
                    short_settings(),
                    Default::default(),
                    42,
                    None,
                    None,
                )
                .unwrap_or_else(|e| panic!("{file}: {e}"));
                let run = simulate(&exp, &mut |_| {}).unwrap_or_else(|e| panic!("{file}: {e}"));
                metrics(&exp, &run).unwrap_or_else(|e| panic!("{file}: {e}"));
            }
            (Err(e), Some((field, hint))) => {
                refused += 1;
                let e = e.to_string();
                assert!(!e.contains('\n'), "{file}: one line: {e}");
                assert!(
                    e.contains(file) && e.contains(&format!("{field}:")) && e.contains(hint),
                    "{file}: {e}"
                );
            }
            (Ok(_), Some(_)) => panic!("{file} loaded but should be refused"),
            (Err(e), None) => panic!("{file}: {e}"),
        }
    }
    assert_eq!((loaded, refused), (17, 14));
}

#[test]
fn simulated_meta_labels_are_copied_into_the_results() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    dz_ok(
        tmp.path(),
        &[
            "consistency",
            "simulate",
            &format!("{REPO}/deploy/data/federated/sequential.json"),
            "--sim-time",
            "3s",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(r["simulation"], "Large Raft Consensus Group");
    // Labels, not settings: CloudScope's typo'd `hearbeat_interval` and its
    // tick labels are copied, the run keeps its own heartbeat.
    assert_eq!(r["settings"]["hearbeat_interval"], 300);
    assert_eq!(r["settings"]["tick_param_model"], "bailis");
    assert_eq!(r["settings"]["local_latency"], serde_json::json!([15, 2]));
    assert_eq!(r["settings"]["heartbeat_interval"].as_f64(), Some(75.0));
}

#[test]
fn simulated_cloudscope_files_run_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, (file, trace)) in [
        (
            "tests/fixtures/raft.json",
            Some("tests/fixtures/traces.tsv"),
        ),
        ("tests/fixtures/tag.json", None),
        ("deploy/data/hierarchy.json", None),
        (
            "deploy/data/tagging.json",
            Some("fixtures/traces/tagging-head.tsv"),
        ),
        ("fixtures/topologies/eventual.json", None),
    ]
    .into_iter()
    .enumerate()
    {
        let out = tmp.path().join(format!("out{i}"));
        let topo = format!("{REPO}/{file}");
        let mut args = vec!["consistency", "simulate", &topo, "--sim-time", "5s"];
        let trace = trace.map(|t| format!("{REPO}/{t}"));
        if let Some(t) = &trace {
            args.extend(["--trace", t.as_str()]);
        }
        let o = out.display().to_string();
        args.extend(["--out", &o]);
        dz_ok(tmp.path(), &args);
        assert!(out.join("summary.json").exists(), "{file}");
    }
    // A refused file: exit 2, one line naming file and field, nothing written.
    let out = tmp.path().join("refused");
    let topo = format!("{REPO}/deploy/data/backbone.json");
    let (code, _, err) = dz_run(
        tmp.path(),
        &[
            "consistency",
            "simulate",
            &topo,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("backbone.json: nodes[1].consistency"), "{err}");
    assert!(!out.exists());
}

#[test]
fn simulated_traces_load_as_cloudscope_writes_them() {
    let raft = Topology::load(&Path::new(REPO).join("tests/fixtures/raft.json")).unwrap();
    let tagging = Topology::load(&Path::new(REPO).join("deploy/data/tagging.json")).unwrap();
    let fed = Topology::load(&Path::new(REPO).join("deploy/data/federated.json")).unwrap();
    let load = |t: &Topology, f: &str| trace::load(&Path::new(REPO).join(f), t).unwrap();
    // Space-aligned columns (simple.tsv, traces.tsv), tabs (tagging.tsv).
    assert_eq!(load(&raft, "fixtures/traces/simple.tsv").len(), 15);
    let t = load(&raft, "tests/fixtures/traces.tsv");
    assert_eq!(t.len(), 18);
    assert!(t[0].write && t[1].at_ms == 200.0 && t[2].object == "B");
    assert_eq!(load(&tagging, "fixtures/traces/tagging-head.tsv").len(), 20);
    let gz = trace::load(
        Path::new("tests/data/cloudscope/federated-1200mms-180sdms-1user.tsv.gz"),
        &fed,
    )
    .unwrap();
    assert_eq!(gz.len(), 3593);

    // The same lines with Windows line endings, blank and comment lines,
    // float timesteps, a three-field line (no object), and gzipped.
    let text = std::fs::read_to_string(Path::new(REPO).join("fixtures/traces/simple.tsv")).unwrap();
    let mut odd = String::from("# timestep replica object method\r\n\r\n");
    for line in text.lines() {
        odd.push_str(line);
        odd.push_str("\r\n");
    }
    odd.push_str("1800.9\tr2\twrite\r\n");
    let rows = trace::parse(&odd, &raft).unwrap();
    assert_eq!(rows.len(), 16);
    assert_eq!((rows[15].at_ms, rows[15].object.as_str()), (1800.0, "None"));
    let tmp = tempfile::tempdir().unwrap();
    let gz_path = tmp.path().join("simple.tsv.gz");
    trace::write_text(&gz_path, &odd).unwrap();
    assert_eq!(trace::load(&gz_path, &raft).unwrap(), rows);
    // A gzipped trace without the .gz name is still read by its content.
    let renamed = tmp.path().join("simple-gz.tsv");
    std::fs::copy(&gz_path, &renamed).unwrap();
    assert_eq!(trace::load(&renamed, &raft).unwrap(), rows);
}

#[test]
fn simulated_outage_scripts_load_as_cloudscope_writes_them() {
    let t = Topology::load(&Path::new(REPO).join("deploy/data/tiered.json")).unwrap();
    // CloudScope's OutagesWriter: `{}\t{}\t{}\t{}\n`, timestep state source target.
    let text = "1200\toffline\tr0\tr3\n1200\toffline\tr3\tr0\r\n\n5000.0\tonline\tr0\tr3\n";
    let rows = outages::parse(text, &t).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(!rows[0].online && rows[2].online);
    assert_eq!((rows[1].source, rows[1].target), (3, 0));
    let e = outages::parse("10 down r0 r3\n", &t).unwrap_err();
    assert!(e.starts_with("1: state:"), "{e}");
}
