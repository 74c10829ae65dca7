//! Links between datasets, as DistZero's test_link_trees.py had them: for
//! each of the 9 shapes (n input leaves, m output leaves), with a kids
//! limit of 4 and fan-in and fan-out limits small enough that the bigger
//! shapes need several layers, the link read from the running nodes holds
//! its invariants (one first-layer node per input leaf, exactly one path
//! from it to each output, limits kept, exact totals), also under message
//! loss, duplication and reordering, and with leaves joining afterwards.

use distzero::drivers::datasets::links::{LinkResult, LinkSetup, check};
use distzero::net::MessageFaults;
use distzero::systems::datasets::plan::SHAPES;

#[path = "common/cli.rs"]
mod cli;
use cli::dz;

fn setup(n: usize, m: usize, limit: u32) -> LinkSetup {
    LinkSetup {
        inputs: n,
        outputs: m,
        max_senders: limit,
        max_receivers: limit,
        ..LinkSetup::default()
    }
}

fn run_ok(s: &LinkSetup, seed: u64) -> LinkResult {
    let (r, _) = s.run(seed).unwrap();
    assert!(
        r.failure.is_none(),
        "{}x{} (+{} late), seed {seed}: {:?}\n{:#?}",
        s.inputs,
        s.outputs,
        s.late_inputs,
        r.failure,
        r.layers
    );
    r
}

fn fans(r: &LinkResult) -> (usize, usize) {
    let nodes = r.layers.iter().flatten();
    let fan_in = nodes.clone().map(|n| n.senders.len()).max().unwrap();
    let fan_out = nodes.map(|n| n.receivers.len()).max().unwrap();
    (fan_in, fan_out)
}

#[test]
fn the_nine_shapes_hold_their_invariants_with_limits_of_3() {
    for (n, m) in SHAPES {
        let r = run_ok(&setup(n, m, 3), 1);
        let expected: i64 = (0..n as i64).map(|i| i % 7 + 1 + 10 * i - 3).sum();
        assert_eq!(r.sent_total, expected, "{n}x{m}");
        assert_eq!(r.output_totals, vec![expected; m], "{n}x{m}");
        assert_eq!(r.leaves.len(), n);
        let (fan_in, fan_out) = fans(&r);
        assert!(fan_in <= 3 && fan_out <= 3, "{n}x{m}: {fan_in} {fan_out}");
        // Sixteen leaves or outputs do not fit in one node of 3: layers.
        let layers = r.layers.len();
        match (n, m) {
            (16, 16) => assert_eq!(layers, 4, "{n}x{m}"),
            (16, _) | (_, 16) => assert_eq!(layers, 3, "{n}x{m}"),
            _ => assert_eq!(layers, 2, "{n}x{m}"),
        }
    }
}

#[test]
fn with_distzero_default_limits_a_link_is_two_nodes_deep_whatever_the_shape() {
    for (n, m) in [(16, 16), (1, 1)] {
        let r = run_ok(&setup(n, m, 200), 2);
        assert_eq!(r.layers.len(), 2);
        assert_eq!(r.layers.iter().flatten().count(), 2);
    }
}

#[test]
fn the_nine_shapes_hold_under_loss_duplication_and_reordering() {
    let faults = MessageFaults {
        loss: 0.2,
        duplicate: 0.2,
        reorder: 0.2,
        reorder_ms: Some(1200.0),
        ..Default::default()
    };
    for (i, (n, m)) in SHAPES.into_iter().enumerate() {
        let s = LinkSetup {
            faults: Some(faults.clone()),
            ..setup(n, m, 4)
        };
        run_ok(&s, 10 + i as u64);
    }
}

#[test]
fn leaves_joining_after_the_link_is_built_are_connected() {
    // 3 leaves at creation: one node of the 4 allowed; 9 more fill it and
    // need new first-layer nodes, each sending to every head.
    let s = LinkSetup {
        late_inputs: 9,
        ..setup(3, 5, 4)
    };
    let r = run_ok(&s, 3);
    assert_eq!(r.leaves.len(), 12);
    assert_eq!(r.layers.len(), 2, "{:#?}", r.layers);
    assert!(r.layers[0].len() >= 3, "{:#?}", r.layers);
    // 2 leaves at creation, limits of 3: a link of 2 layers holds 9 input
    // leaves, one of 3 layers 27; 26 more make it grow two levels.
    let s = LinkSetup {
        late_inputs: 26,
        ..setup(2, 5, 3)
    };
    let r = run_ok(&s, 5);
    assert_eq!(r.leaves.len(), 28);
    assert_eq!(r.layers.len(), 4, "{:#?}", r.layers);
    // Under faults too.
    let s = LinkSetup {
        faults: Some(MessageFaults {
            loss: 0.3,
            duplicate: 0.2,
            reorder: 0.2,
            reorder_ms: Some(1200.0),
            ..Default::default()
        }),
        ..s
    };
    run_ok(&s, 4);
}

#[test]
fn the_checks_catch_a_broken_link() {
    let (good, _) = setup(3, 3, 3).run(5).unwrap();
    assert!(check(&good, 3).is_ok());
    let mut twice = good.clone();
    let first = twice.layers[0][0].clone();
    let extra = first.receivers[0];
    twice.layers[0][0].receivers.push(extra);
    assert!(check(&twice, 3).is_err(), "two paths to the same outputs");
    let mut wrong = good.clone();
    wrong.output_totals[0] += 1;
    assert!(check(&wrong, 3).unwrap_err().contains("holds"));
    let mut unlinked = good.clone();
    unlinked.leaves[0].1 = None;
    assert!(check(&unlinked, 3).unwrap_err().contains("not linked"));
    let mut crowded = good;
    crowded.max_senders = 2;
    assert!(check(&crowded, 3).unwrap_err().contains("senders"));
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let s = LinkSetup {
        faults: Some(MessageFaults {
            loss: 0.2,
            ..Default::default()
        }),
        ..setup(16, 3, 3)
    };
    let a = run_ok(&s, 7);
    let b = run_ok(&s, 7);
    assert_eq!(a.trace_hash, b.trace_hash);
}

#[test]
fn dz_datasets_link_prints_the_layers_and_writes_results_and_a_picture() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let ok = dz(tmp.path())
        .args(["datasets", "link", "--inputs", "16", "--outputs", "3"])
        .args([
            "--max-senders",
            "3",
            "--max-receivers",
            "3",
            "--loss",
            "0.1",
        ])
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
    assert!(text.contains("layer 2: 1 nodes"), "{text}");
    assert!(text.contains("ok: every input leaf"), "{text}");
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert!(results["failure"].is_null());
    assert_eq!(results["output_totals"][2], results["sent_total"]);
    let svg = std::fs::read_to_string(out.join("link.svg")).unwrap();
    assert_eq!(svg.matches("<rect x=").count(), 9, "6 + 2 + 1 link nodes");
    for bad in [
        vec!["--inputs", "0", "--outputs", "3"],
        vec!["--inputs", "3", "--outputs", "3", "--max-senders", "1"],
        vec!["--inputs", "3", "--outputs", "3", "--loss", "1.5"],
        vec!["--inputs", "3", "--outputs", "3", "--loss", "1"],
    ] {
        let o = dz(tmp.path())
            .args(["datasets", "link"])
            .args(&bad)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{bad:?}: {err}");
    }
}
