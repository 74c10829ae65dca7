//! DistZero's own dataset tests, rewritten for the simulator: a tree grows
//! and shrinks with the leaves (kids limit 3: 9 leaves make height 3, 27
//! height 4, none height 2 again), intervals stay valid, and the sum
//! example gives the exact total at every output under each of DistZero's
//! fault settings; plus determinism, a larger tree and a few sim-check
//! seeds.

use std::time::Duration;

use distzero::drivers::datasets::script::Script;
use distzero::drivers::datasets::sim_check::{SimCheckOptions, run_seed};
use distzero::drivers::datasets::{Layout, Setup, TreeView, check_running, check_settled, view};
use distzero::net::{Fault, MessageFaults};
use distzero::node::{MachineId, NodeId};
use distzero::sim::{SimConfig, Simulation};
use distzero::systems::datasets::DatasetNode;
use distzero::systems::datasets::data::Limits;
use distzero::systems::datasets::user::{Action, Step};

#[path = "common/cli.rs"]
mod cli;
use cli::dz;

fn limits(kids_limit: u32) -> Limits {
    Limits {
        kids_limit,
        trigger: 0,
        ..Limits::default()
    }
}

fn add(at_ms: u64, name: &str) -> Step {
    Step {
        at_ms,
        action: Action::AddLeaf { name: name.into() },
    }
}

fn input(at_ms: u64, name: &str, amount: i64) -> Step {
    Step {
        at_ms,
        action: Action::Input {
            name: name.into(),
            amount,
        },
    }
}

fn remove(at_ms: u64, name: &str) -> Step {
    Step {
        at_ms,
        action: Action::RemoveLeaf { name: name.into() },
    }
}

/// Runs to `until`, checking every node's own invariants every 100 ms.
fn run_checked(sim: &mut Simulation<DatasetNode>, layout: &Layout, until: Duration) -> TreeView {
    while sim.now() < until {
        let next = (sim.now() + Duration::from_millis(100)).min(until);
        sim.run_until(next);
        let v = view(sim, layout, false);
        if let Err(e) = check_running(&v) {
            panic!("at {:?}: {e}", sim.now());
        }
    }
    assert!(sim.halted().is_none(), "{:?}", sim.halted());
    view(sim, layout, true)
}

#[test]
fn a_tree_of_kids_limit_3_grows_to_height_4_with_27_leaves_and_back_to_2() {
    let names: Vec<String> = (0..27).map(|i| format!("u{i}")).collect();
    let mut steps = Vec::new();
    for (i, n) in names.iter().enumerate().take(9) {
        steps.push(add(i as u64 * 1000, n));
    }
    // After the first 9 and a 6 s wait, 18 more.
    for (i, n) in names.iter().enumerate().skip(9) {
        steps.push(add(16_000 + (i as u64 - 9) * 1000, n));
    }
    for (i, n) in names.iter().enumerate() {
        steps.push(remove(40_000 + i as u64 * 1000, n));
    }
    let setup = Setup {
        limits: limits(3),
        steps,
        ..Setup::default()
    };
    let layout = setup.layout();
    let mut sim = setup.build(SimConfig::new(7)).unwrap();
    let v = run_checked(&mut sim, &layout, Duration::from_millis(100));
    assert_eq!(v.height, 2, "a new dataset has height 2");
    let v = run_checked(&mut sim, &layout, Duration::from_secs(15));
    assert_eq!((v.height, v.leaves), (3, 9), "{v:?}");
    assert_eq!(v.problem, None);
    let v = run_checked(&mut sim, &layout, Duration::from_secs(39));
    assert_eq!((v.height, v.leaves), (4, 27), "{v:?}");
    assert_eq!(v.problem, None);
    let v = run_checked(&mut sim, &layout, Duration::from_secs(67 + 50));
    assert_eq!((v.height, v.leaves), (2, 0), "{v:?}");
    assert_eq!(v.problem, None);
    assert_eq!(v.nodes, 2, "a root and one height-1 kid are left: {v:?}");
}

/// DistZero's sum test: +2, +1 at one leaf, +1, +1, +1 at another.
fn sum_steps() -> Vec<Step> {
    vec![
        add(0, "b"),
        add(0, "c"),
        input(2030, "b", 2),
        input(2033, "c", 1),
        input(2043, "c", 1),
        input(2060, "b", 1),
        input(2073, "c", 1),
    ]
}

fn sum_with(seed: u64, faults: MessageFaults) -> (TreeView, Simulation<DatasetNode>, Layout) {
    let setup = Setup {
        limits: limits(30),
        steps: sum_steps(),
        ..Setup::default()
    };
    let layout = setup.layout();
    let mut sim = setup.build(SimConfig::new(seed)).unwrap();
    sim.set_faults(None, &faults).unwrap();
    let v = run_checked(&mut sim, &layout, Duration::from_secs(30));
    (v, sim, layout)
}

fn on(kind: &str, loss: f64, duplicate: f64, reorder: f64) -> MessageFaults {
    MessageFaults {
        loss,
        duplicate,
        reorder,
        // DistZero postponed reordered messages by up to 1.2 s.
        reorder_ms: Some(1200.0),
        kinds: vec![kind.into()],
        ..Default::default()
    }
}

#[test]
fn the_sum_is_6_at_every_output_under_each_of_distzeros_fault_settings() {
    let settings: Vec<(&str, u64, MessageFaults)> = vec![
        ("no faults", 1, MessageFaults::default()),
        (
            "drop 2% of increments, seed a",
            11,
            on("KidSummary", 0.02, 0.0, 0.0),
        ),
        (
            "drop 2% of increments, seed b",
            12,
            on("KidSummary", 0.02, 0.0, 0.0),
        ),
        (
            "drop 2% of increments, seed c",
            13,
            on("KidSummary", 0.02, 0.0, 0.0),
        ),
        (
            "drop 2% of increments, seed d",
            14,
            on("KidSummary", 0.02, 0.0, 0.0),
        ),
        (
            "drop 2% of increments, seed e",
            15,
            on("KidSummary", 0.02, 0.0, 0.0),
        ),
        (
            "drop 2% of increments, seed f",
            16,
            on("KidSummary", 0.02, 0.0, 0.0),
        ),
        (
            "drop 2% of increments, seed g",
            17,
            on("KidSummary", 0.02, 0.0, 0.0),
        ),
        (
            "duplicate 27% of increments",
            1,
            on("KidSummary", 0.0, 0.27, 0.0),
        ),
        (
            "reorder 27% of increments",
            1,
            on("KidSummary", 0.0, 0.0, 0.27),
        ),
        ("drop 40% of inputs", 8, on("InputAction", 0.4, 0.0, 0.0)),
        ("drop 40% of outputs", 8, on("OutputAction", 0.4, 0.0, 0.0)),
    ];
    assert_eq!(settings.len(), 12);
    for (name, seed, faults) in settings {
        let duplicates = faults.duplicate > 0.0;
        let (v, sim, layout) = sum_with(seed, faults);
        assert_eq!(check_settled(&v, 6, 2), Ok(()), "{name}: {v:?}");
        assert_eq!(v.outputs, vec![6, 6], "{name}");
        let user = sim
            .node(layout.user)
            .and_then(DatasetNode::as_user)
            .unwrap();
        let stats = user.link_stats();
        assert_eq!(
            stats.sent_messages, stats.acknowledged_messages,
            "{name}: everything the user sent was acknowledged"
        );
        if duplicates {
            let seen: u64 = (0..sim.node_count() as u32)
                .filter_map(|i| sim.node(NodeId(i)).and_then(DatasetNode::as_data))
                .map(|d| d.link_stats().n_duplicates)
                .sum();
            assert!(seen > 0, "{name}: some node saw a duplicate");
        }
    }
}

#[test]
fn fifteen_inputs_under_heavy_loss_duplication_and_reordering_give_the_exact_total() {
    let mut steps = Vec::new();
    let mut expected = 0;
    for i in 0..15 {
        steps.push(add(i * 100, &format!("in{i}")));
    }
    // Each input sends a number about every 500 ms for 20 s.
    let mut t = 2000;
    let mut k = 0i64;
    while t < 22_000 {
        let amount = (k * 7919) % 20 - 3;
        steps.push(input(t, &format!("in{}", k % 15), amount));
        expected += amount;
        k += 1;
        t += 33;
    }
    let setup = Setup {
        limits: Limits {
            kids_limit: 15,
            trigger: 0,
            ..Limits::default()
        },
        steps,
        ..Setup::default()
    };
    let layout = setup.layout();
    let mut sim = setup.build(SimConfig::new(3)).unwrap();
    sim.set_faults(
        None,
        &MessageFaults {
            loss: 0.37,
            duplicate: 0.27,
            reorder: 0.27,
            reorder_ms: Some(1200.0),
            kinds: vec!["KidSummary".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let v = run_checked(&mut sim, &layout, Duration::from_secs(90));
    assert_eq!(check_settled(&v, expected, 15), Ok(()), "{v:?}");
    assert!(k > 500, "the inputs really flowed ({k})");
}

#[test]
fn churn_under_faults_on_every_message_kind_keeps_the_total_exact() {
    let setup = Setup {
        limits: limits(3),
        ..Setup::default()
    };
    let text = "at 0s add a b c d e\nat 1s faults loss=0.2 duplicate=0.2 reorder=0.3 reorder_ms=300\n\
                at 1s input a 5\nat 1.2s add f g h i j k\nat 2s input b -2\nat 2s input k 9\n\
                at 3s remove a b\nat 3.1s input c 4\nat 4s isolate m1\nat 5s remove c d e\n\
                at 6s heal\nat 6s add z\nat 6.5s input z 100\nat 8s faults none\nend 70s\n";
    let script = Script::parse("churn", text, 3).unwrap();
    let (r, _) = distzero::drivers::datasets::run::run(
        5,
        &setup,
        &script,
        Duration::from_secs(1),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(r.failure, None, "{:?}", r.end);
    assert_eq!((r.expected_total, r.end.root_total), (116, 116));
    assert_eq!(r.end.leaves, 7);
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    let hash = |seed| {
        let (_, sim, _) = sum_with(seed, on("KidSummary", 0.2, 0.1, 0.1));
        sim.trace_hash()
    };
    assert_eq!(hash(4), hash(4));
    assert_ne!(hash(4), hash(5));
}

#[test]
fn a_tree_of_2000_leaves_with_kids_limit_20_reaches_height_3_with_exact_totals() {
    let n = 2000;
    let mut steps: Vec<Step> = (0..n).map(|i| add(i * 5, &format!("l{i}"))).collect();
    let mut expected = 0;
    for i in 0..n {
        let amount = (i % 11) as i64;
        steps.push(input(12_000 + i, &format!("l{i}"), amount));
        expected += amount;
    }
    let setup = Setup {
        limits: Limits {
            kids_limit: 20,
            ..Limits::default()
        },
        steps,
        ..Setup::default()
    };
    let layout = setup.layout();
    let mut sim = setup.build(SimConfig::new(9)).unwrap();
    // Growth is one split at a time per manager: the tree needs about a minute.
    sim.run_until(Duration::from_secs(150));
    let v = view(&sim, &layout, true);
    assert_eq!(check_settled(&v, expected, n), Ok(()), "{v:?}");
    assert_eq!(v.height, 3);
}

#[test]
fn sim_check_seeds_pass() {
    let opts = SimCheckOptions::default();
    let mut restored = 0;
    for seed in 1..=4 {
        let r = run_seed(seed, &opts).unwrap();
        assert_eq!(r.failure, None, "seed {seed}");
        assert!(r.inputs > 10 && r.leaves_added > 5, "{r:?}");
        restored += r.restored;
    }
    assert!(restored > 0, "the default faults crash machines");
}

/// Every machine crashes in turn (the root's, the other data machines',
/// the outputs' and the user's) while leaves arrive and numbers flow.
fn crash_everything(volatile: bool) -> (TreeView, i64) {
    let mut steps = Vec::new();
    let mut expected = 0;
    for i in 0..9u64 {
        steps.push(add(i * 400, &format!("l{i}")));
    }
    for i in 0..30u64 {
        let amount = (i % 7) as i64 + 1;
        steps.push(input(4_000 + i * 300, &format!("l{}", i % 9), amount));
        expected += amount;
    }
    let setup = Setup {
        limits: limits(3),
        steps,
        volatile,
        ..Setup::default()
    };
    let layout = setup.layout();
    let mut sim = setup.build(SimConfig::new(5)).unwrap();
    let machines = [
        MachineId(0),
        MachineId(1),
        layout.output_machine,
        MachineId(2),
        layout.user_machine,
    ];
    for (i, m) in machines.into_iter().enumerate() {
        let at = Duration::from_millis(3_000 + i as u64 * 2_000);
        advance(&mut sim, &layout, at, !volatile);
        sim.apply(&Fault::Crash { machine: m }).unwrap();
        advance(
            &mut sim,
            &layout,
            at + Duration::from_millis(700),
            !volatile,
        );
        sim.apply(&Fault::Restart { machine: m }).unwrap();
    }
    let restored: u64 = (0..sim.node_count() as u32)
        .map(|i| sim.metrics(NodeId(i)).counter("restored"))
        .sum();
    assert_eq!(restored > 0, !volatile, "{restored} nodes restored");
    let end = Duration::from_secs(60);
    (advance(&mut sim, &layout, end, !volatile), expected)
}

/// [`run_checked`], or just runs when what it sees is not expected to hold.
fn advance(
    sim: &mut Simulation<DatasetNode>,
    layout: &Layout,
    until: Duration,
    checked: bool,
) -> TreeView {
    if checked {
        return run_checked(sim, layout, until);
    }
    sim.run_until(until);
    view(sim, layout, true)
}

#[test]
fn saved_nodes_survive_crashes_of_every_machine_with_the_exact_total() {
    let (v, expected) = crash_everything(false);
    assert_eq!(check_settled(&v, expected, 9), Ok(()), "{v:?}");
    // The same run with state in memory only loses what the crashes hit.
    let (v, expected) = crash_everything(true);
    assert!(check_settled(&v, expected, 9).is_err(), "{v:?}");
}

#[test]
fn dz_datasets_run_writes_results_and_plots_and_refuses_bad_scripts_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("s.txt");
    std::fs::write(
        &script,
        "at 0s add a b\nat 1s input a +2\nat 1s input b 4\nend 20s\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let ok = dz(tmp.path())
        .args(["datasets", "run", "--kids-limit", "3", "--script"])
        .arg(&script)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(text.contains("expected total 6"), "{text}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["final"]["root_total"], 6);
    for f in [
        "height.svg",
        "nodes.svg",
        "leaves.svg",
        "totals.svg",
        "tree.svg",
    ] {
        let svg = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{f}");
    }
    std::fs::write(&script, "at 0s add a\nat 1s input a lots\n").unwrap();
    let bad = dz(tmp.path())
        .args(["datasets", "run", "--script"])
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("s.txt:2: \"lots\" is not a whole number"),
        "{err}"
    );
    // Real modes are tests/local_datasets.rs and tests/virtual_datasets.rs.
    let cloud = dz(tmp.path())
        .args(["datasets", "run", "--mode", "cloud", "--leaves", "3"])
        .output()
        .unwrap();
    assert_eq!(cloud.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&cloud.stderr).contains("not available"));
}

#[test]
fn the_example_script_of_the_docs_ends_with_the_exact_total() {
    let tmp = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/datasets/sum.script");
    let out = tmp.path().join("out");
    let run = dz(tmp.path())
        .args(["datasets", "run", "--kids-limit", "3", "--script", script])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    // +2 +1 from a (which then leaves) and +3 from b, 40 % of inputs lost for a while.
    assert_eq!(results["final"]["root_total"], 6, "{text}");
    assert!(results["failure"].is_null(), "{}", results["failure"]);
}
