use super::*;

const GOOD: &str = r#"{
    "meta": {"seed": 7, "title": "three sites", "system": "pingpong", "duration": "2s",
             "faults": [{"at": 500, "kind": "crash", "machine": "b"},
                        {"at": "1s", "kind": "restart", "machine": 1},
                        {"at": 0, "kind": "partition", "groups": [["a"], ["b", "c"]]}]},
    "nodes": [{"id": "a", "location": "paris"}, {"id": "b", "location": "paris"}, {"id": "c", "location": "tokyo"}],
    "links": [{"source": 0, "target": 1, "connection": "constant", "latency": 2},
              {"source": 1, "target": 2, "connection": "normal", "latency": [120, 10]},
              {"source": 0, "target": 2, "latency": [100, 140], "oneway": true}]
}"#;

#[test]
fn simulated_topology_parses_cloudscope_shape() {
    let t = Topology::parse(GOOD).unwrap();
    assert_eq!(t.system, "pingpong");
    assert_eq!(t.seed, Some(7));
    assert_eq!(t.duration, Some(Duration::from_secs(2)));
    assert_eq!(t.nodes.len(), 3);
    assert_eq!(
        t.links.len(),
        5,
        "two directed links per link, one for the oneway"
    );
    assert_eq!(
        t.links[2].spec.latency,
        Latency::Normal {
            mean: 120.0,
            sd: 10.0
        }
    );
    assert_eq!(t.links[2].spec.area, Area::Wide, "inferred from locations");
    assert_eq!(t.links[0].spec.area, Area::Local);
    assert_eq!(
        t.links[4].spec.latency,
        Latency::Uniform {
            lo: 100.0,
            hi: 140.0
        }
    );
    assert_eq!(
        t.faults[0].fault,
        Fault::Crash {
            machine: MachineId(1)
        }
    );
    assert_eq!(t.faults[1].at, Duration::from_secs(1));
    // a | b c: four directed links down.
    assert_eq!(t.faults.len(), 2 + 4);
}

fn err(text: &str) -> String {
    Topology::parse(text).unwrap_err()
}

#[test]
fn simulated_topology_errors_name_the_field() {
    assert!(err("{nope").starts_with("not valid JSON"));
    let e = err(r#"{"nodes": [{"id": "a", "system": "nosuch"}]}"#);
    assert!(
        e.contains("nodes[0].system") && e.contains("unknown system \"nosuch\""),
        "{e}"
    );
    let e = err(
        r#"{"meta": {"system": "pingpong"}, "nodes": [{"id": "a"}], "links": [{"source": 0, "target": 3, "latency": 1}]}"#,
    );
    assert!(e.contains("links[0].target: no node 3"), "{e}");
    let e = err(
        r#"{"meta": {"system": "pingpong"}, "nodes": [{"id": "a"}, {"id": "b"}], "links": [{"source": 0, "target": 1, "latency": -3}]}"#,
    );
    assert!(e.contains("links[0].latency: negative latency"), "{e}");
    let e = err(
        r#"{"meta": {"system": "pingpong"}, "nodes": [{"id": "a"}, {"id": "b"}], "links": [{"source": 0, "target": 1, "connection": "normal", "latency": 5}]}"#,
    );
    assert!(
        e.contains("links[0].latency: expected [mean, stddev]"),
        "{e}"
    );
    let e = err(
        r#"{"meta": {"system": "pingpong"}, "nodes": [{"id": "a"}, {"id": "b"}], "links": [{"source": 0, "target": 1, "connection": "warp", "latency": 5}]}"#,
    );
    assert!(e.contains("unknown connection \"warp\""), "{e}");
    let e = err(
        r#"{"meta": {"system": "pingpong"}, "nodes": [{"id": "a"}], "links": [{"source": "x", "target": 1, "latency": 1}]}"#,
    );
    assert!(e.contains("links[0].source"), "{e}");
    let e = err(r#"{"meta": {"system": "pingpong", "duration": "soon"}, "nodes": [{"id": "a"}]}"#);
    assert!(e.contains("meta.duration"), "{e}");
    let e = err(
        r#"{"meta": {"system": "pingpong", "faults": [{"at": 1, "kind": "crash", "machine": "zz"}]}, "nodes": [{"id": "a"}]}"#,
    );
    assert!(
        e.contains("meta.faults[0]: machine: no machine \"zz\""),
        "{e}"
    );
    let e = err(r#"{"meta": {"system": "clocks"}, "nodes": [{"id": "a", "role": "boss"}]}"#);
    assert!(e.contains("nodes[0].role"), "{e}");
}
