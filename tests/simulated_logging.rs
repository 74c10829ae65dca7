//! Log shipping to logstash: lines arrive as JSON with the run's fields, and
//! an unreachable logstash never holds a run up.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::time::Duration;

use assert_cmd::Command;

#[test]
fn simulated_logs_reach_logstash_as_json_lines() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let reader = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        BufReader::new(conn)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("dz")
        .unwrap()
        .env("LOGSTASH_HOST", "127.0.0.1")
        .env("LOGSTASH_PORT", port.to_string())
        .args([
            "simulate",
            "examples/topologies/clocks-skewed.json",
            "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("dropped") && stdout.contains(" 0 dropped"),
        "{stdout}"
    );
    let lines = reader.join().unwrap();
    assert!(lines.len() >= 4, "{lines:?}");
    let node_line = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["msg"] == "clock machine started" && v["machine"] == "m2")
        .expect("a node's line");
    assert_eq!(node_line["mode"], "simulated");
    assert_eq!(node_line["node"], "n2");
    // m2's clock is 250 ms ahead in that topology.
    assert_eq!(node_line["vtime_ms"], 250.0);
}

#[test]
fn simulated_unreachable_logstash_does_not_block() {
    // A port nobody listens on: bind, take the number, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("dz")
        .unwrap()
        .env("LOGSTASH_HOST", "127.0.0.1")
        .env("LOGSTASH_PORT", port.to_string())
        .args(["simulate", "examples/topologies/three-sites.json", "--out"])
        .arg(tmp.path())
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let line = stdout.lines().find(|l| l.starts_with("logstash:")).unwrap();
    assert!(
        line.contains("0 lines sent") && !line.contains(" 0 dropped"),
        "{line}"
    );
    // The file log is complete regardless.
    assert!(
        std::fs::read_to_string(tmp.path().join("dz.json.log"))
            .unwrap()
            .contains("simulation finished")
    );
}

#[test]
fn simulated_bad_logstash_port_is_refused() {
    let out = Command::cargo_bin("dz")
        .unwrap()
        .env("LOGSTASH_HOST", "127.0.0.1")
        .env("LOGSTASH_PORT", "http")
        .args(["clocks", "--duration", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("LOGSTASH_PORT")
    );
}
