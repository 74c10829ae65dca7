//! The kv service on local processes: kill -9 of the master under load loses
//! no acknowledged write, a corrupt log tail is cut and reported, the client
//! and REST gateway answer properly, bad input is refused, checked benches
//! hold on a cluster that already holds data, and kv-bench drives etcd too.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use common::real::{DZ, block_local, dz_ok, dz_run, settings};
use distzero::backends::cluster::{ClusterController, down, up};
use distzero::backends::state::ClusterState;
use distzero::controller::{Fault, one_node_per_machine};
use distzero::drivers::kv::bench::{TargetSpec, run};
use distzero::drivers::kv::check::check_history;
use distzero::drivers::kv::remote::{KvRemote, ServerAddr};
use distzero::node::{MachineId, Mode, NodeId};
use distzero::systems::kv::msg::{Op, Response};
use distzero::systems::kv::workload::Workload;

/// Three kv servers on local processes.
async fn kv_cluster(
    s: &distzero::settings::Settings,
    name: &str,
) -> (ClusterController, ClusterState) {
    let config = serde_json::json!({"election_timeout_ms": 400.0});
    let (machines, placement) = one_node_per_machine(3, "kv", "server", &config);
    up(s, name, Mode::Local, &machines, placement, Path::new(DZ))
        .await
        .unwrap()
}

/// The servers' data addresses: server i runs on machine i.
fn addrs(ctl: &ClusterController) -> Vec<ServerAddr> {
    let records = ctl.backend().records();
    records
        .iter()
        .enumerate()
        .map(|(i, r)| ServerAddr {
            node: NodeId(i as u32),
            address: r.data.clone(),
        })
        .collect()
}

async fn master(ctl: &mut ClusterController) -> u32 {
    for _ in 0..100 {
        for i in 0..3 {
            if let Ok(s) = ctl.query(NodeId(i), "status").await
                && s["master"] == true
            {
                return i;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no master");
}

#[test]
fn local_kv_kill_9_of_the_master_under_load_loses_no_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let s = settings(tmp.path());
    block_local(async {
        let (mut ctl, state) = kv_cluster(&s, "kv-kill").await;
        let spec = TargetSpec::DistZero {
            servers: addrs(&ctl),
            secret: state.secret.clone(),
        };
        let workload = Workload {
            clients: 4,
            requests: 300,
            interval_ms: 2.0,
            keys: 8,
            ..Default::default()
        };
        let load = tokio::spawn({
            let spec = spec.clone();
            async move { run(&spec, &workload, 1, Arc::new(AtomicU64::new(0))).await }
        });
        tokio::time::sleep(Duration::from_millis(400)).await;
        let m = master(&mut ctl).await;
        ctl.inject(&Fault::Crash {
            machine: MachineId(m),
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        ctl.inject(&Fault::Restart {
            machine: MachineId(m),
        })
        .await
        .unwrap();
        let mut result = load.await.unwrap().unwrap();
        assert!(result.errors.is_empty(), "{:?}", result.errors.first());
        // Read every key at the end: acknowledged writes must all be there.
        let mut reader = KvRemote::new(addrs(&ctl), state.secret.clone());
        let t0 = Instant::now();
        for k in 0..8 {
            let op = Op::Get(
                Workload {
                    key_size: 4,
                    ..Default::default()
                }
                .key(k),
            );
            let call = result
                .history
                .iter()
                .map(|h| h.ret_ns.unwrap_or(0))
                .max()
                .unwrap()
                + 1;
            let (r, _) = reader.call(op.clone()).await.unwrap();
            let ret = call + t0.elapsed().as_nanos() as u64 + 1;
            result
                .history
                .push(distzero::systems::kv::client::HistoryOp {
                    client: 99,
                    id: u64::from(k),
                    op,
                    call_ns: call,
                    ret_ns: Some(ret),
                    output: Some(r),
                    tries: 1,
                    initial: false,
                });
        }
        let verdict = check_history(&result.history);
        assert!(verdict.linearizable, "{verdict:?}");
        assert!(
            ctl.query(NodeId(m), "status").await.is_ok(),
            "the killed master is back"
        );
        down(&mut ctl, &state, &s.tmp_dir).await.unwrap();
    });
}

#[test]
fn local_kv_corrupt_log_tail_is_cut_and_reported_on_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let s = settings(tmp.path());
    block_local(async {
        let (mut ctl, state) = kv_cluster(&s, "kv-torn").await;
        let mut client = KvRemote::new(addrs(&ctl), state.secret.clone());
        for i in 0..20 {
            client
                .call(Op::Update(format!("k{i}"), format!("v{i}")))
                .await
                .unwrap();
        }
        let victim = (master(&mut ctl).await + 1) % 3;
        ctl.inject(&Fault::Crash {
            machine: MachineId(victim),
        })
        .await
        .unwrap();
        let log = tmp
            .path()
            .join(format!("kv-torn/machines/m{victim}/nodes/{victim}/log"));
        let good = std::fs::metadata(&log).unwrap().len();
        // Half a record: a length that promises more than is there.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(&[200, 0, 0, 0, 1, 2, 3])
            .unwrap();
        ctl.inject(&Fault::Restart {
            machine: MachineId(victim),
        })
        .await
        .unwrap();
        // The restarted server reports the cut once it has loaded its log.
        let deadline = Instant::now() + Duration::from_secs(10);
        let counters = loop {
            let stats = ctl.stats().await.unwrap();
            let node = stats.nodes.into_iter().find(|n| n.id == NodeId(victim));
            match node {
                Some(n) if n.counters.get("log_tail_cut").is_some() => break n.counters,
                _ if Instant::now() > deadline => panic!("the restarted server reported no cut"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        assert_eq!(counters["log_tail_cut"], 1, "{counters:?}");
        assert_eq!(counters["log_tail_cut_bytes"], 7);
        assert!(std::fs::metadata(&log).unwrap().len() >= good);
        // The agent's log is written in the background: wait for the line.
        let log_path = tmp
            .path()
            .join(format!("kv-torn/machines/m{victim}/agent.json.log"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log_path)
            .unwrap()
            .contains("cut a damaged log tail")
        {
            assert!(Instant::now() < deadline, "not reported in the log");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The data is intact and the service goes on.
        for i in [0, 19] {
            let (r, _) = client.call(Op::Get(format!("k{i}"))).await.unwrap();
            assert_eq!(r, Response::Value(format!("v{i}")));
        }
        down(&mut ctl, &state, &s.tmp_dir).await.unwrap();
    });
}

fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let json = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (
        status,
        serde_json::from_str(json).unwrap_or(serde_json::Value::Null),
    )
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn local_kv_client_rest_gateway_and_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (code, _, err) = dz_run(
        t,
        &[
            "cluster",
            "up",
            "--mode",
            "local",
            "--machines",
            "3",
            "--system",
            "kv",
            "--name",
            "kvc",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, out, _) = dz_run(
        t,
        &["kv", "--cluster", "kvc", "update", "a", "hello", "world"],
    );
    assert_eq!((code, out.trim()), (Some(0), "OK"));
    let (_, out, _) = dz_run(t, &["kv", "--cluster", "kvc", "get", "a"]);
    assert_eq!(out.trim(), "hello world");
    // Bad input: one clear line, exit 2, nothing applied.
    let big = "x".repeat(70_000);
    for (args, says) in [
        (
            vec!["kv", "--cluster", "kvc", "frob", "a"],
            "unrecognized subcommand",
        ),
        (vec!["kv", "--cluster", "kvc", "get"], "required"),
        (
            vec!["kv", "--cluster", "kvc", "update", "b", big.as_str()],
            "at most 65536",
        ),
        (vec!["kv", "--cluster", "nope", "count"], "no cluster named"),
        (
            vec![
                "cluster",
                "up",
                "--system",
                "kv",
                "--name",
                "bad",
                "--config",
                r#"{"replication_quorum": "one-in", "recovery_quorum": "one-in"}"#,
            ],
            "need not intersect",
        ),
    ] {
        let (code, _, err) = dz_run(t, &args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
    }
    let (_, out, _) = dz_run(t, &["kv", "--cluster", "kvc", "count"]);
    assert_eq!(out.trim(), "1", "the refused update must not be applied");
    std::fs::write(t.join("bad.toml"), "reads = 120\n").unwrap();
    let bad = t.join("bad.toml");
    let (code, _, err) = dz_run(
        t,
        &[
            "kv-bench",
            "--workload",
            bad.to_str().unwrap(),
            "--cluster",
            "kvc",
        ],
    );
    assert_eq!(code, Some(2));
    assert!(
        err.contains("bad.toml") && err.contains("percentage"),
        "{err}"
    );
    // Interactive: bad lines are reported, the session goes on.
    let mut child = Command::new(DZ)
        .env("DZ_TMP_DIR", t)
        .args(["kv", "--cluster", "kvc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"frob\nexists a\ndelete zz\nupdate\ncount\n")
        .unwrap();
    let out = String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec![
            "error: unknown command \"frob\" (commands: get, exists, update, delete, count, print)",
            "true",
            "key not found",
            "error: usage: update KEY VALUE",
            "1"
        ]
    );

    // The REST gateway.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = Kill(
        Command::new(DZ)
            .env("DZ_TMP_DIR", t)
            .args([
                "kv",
                "--cluster",
                "kvc",
                "rest",
                "--port",
                &port.to_string(),
                "--timeout",
                "2s",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "gateway did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(http(port, "PUT", "/kv/b", r#"{"value": "2"}"#).0, 200);
    let (status, body) = http(port, "GET", "/kv/b", "");
    assert_eq!((status, body["value"].as_str()), (200, Some("2")));
    assert_eq!(http(port, "GET", "/kv/zz", "").0, 404);
    assert_eq!(http(port, "PUT", "/kv/c", "not json").0, 400);
    let huge = format!(r#"{{"value": "{}"}}"#, "y".repeat(70_000));
    assert_eq!(http(port, "PUT", "/kv/c", &huge).0, 400);
    let (status, body) = http(port, "GET", "/kv", "");
    assert_eq!((status, body["count"].as_u64()), (200, Some(2)));
    assert_eq!(http(port, "DELETE", "/kv/b", "").0, 200);
    assert_eq!(http(port, "DELETE", "/kv/b", "").0, 404);
    // No quorum: 503.
    for m in ["m1", "m2"] {
        let (code, _, err) = dz_run(t, &["cluster", "fault", "kvc", "kill", m]);
        assert_eq!(code, Some(0), "{err}");
    }
    assert_eq!(http(port, "PUT", "/kv/d", r#"{"value": "4"}"#).0, 503);
    drop(gateway);
    let (code, _, err) = dz_run(t, &["cluster", "down", "kvc"]);
    assert_eq!(code, Some(0), "{err}");
}

/// A single etcd member on free ports, stopped when dropped.
#[cfg(feature = "etcd")]
struct Etcd {
    _child: Kill,
    address: String,
    _dir: tempfile::TempDir,
}

#[cfg(feature = "etcd")]
fn etcd() -> Option<Etcd> {
    let require = distzero::settings::Settings::from_env()
        .map(|s| s.require_etcd)
        .unwrap_or(false);
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (client, peer) = (free(), free());
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("etcd")
        .args(["--name", "e", "--data-dir"])
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &format!("http://127.0.0.1:{client}"),
        ])
        .args([
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{client}"),
        ])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .args(["--initial-cluster", &format!("e=http://127.0.0.1:{peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => Kill(c),
        Err(e) if require => {
            panic!("DZ_REQUIRE_ETCD=1 but etcd cannot start: {e} (apt-get install etcd-server)")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED: this test needs etcd ({e}); apt-get install etcd-server, or DZ_REQUIRE_ETCD=1 to fail instead"
            );
            return None;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", client)).is_err() {
        assert!(Instant::now() < deadline, "etcd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Etcd {
        _child: child,
        address: format!("127.0.0.1:{client}"),
        _dir: dir,
    })
}

/// `dz kv-bench --target etcd` exists only with the `etcd` feature.
#[cfg(feature = "etcd")]
#[test]
fn local_kv_bench_drives_etcd_with_the_same_workload() {
    let Some(etcd) = etcd() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // Twice on the same etcd: the second starts from the first's data.
    for run in ["bench", "again"] {
        let (code, out, err) = dz_run(
            t,
            &[
                "kv-bench",
                "--workload",
                "examples/workloads/small.toml",
                "--target",
                &format!("etcd://{}", etcd.address),
                "--check",
                "--out",
                t.join(run).to_str().unwrap(),
            ],
        );
        assert_eq!(code, Some(0), "{run}: {err}");
        assert!(
            out.contains("800 of 800 requests answered") && out.contains("linearizable: yes"),
            "{run}: {out}"
        );
    }
    let out_dir = t.join("bench");
    let results = std::fs::read_to_string(out_dir.join("results.csv")).unwrap();
    assert!(
        results.starts_with("clients,seconds,requests_per_s,p50_us,p99_us,p999_us\n4,"),
        "{results}"
    );
    let latency = std::fs::read_to_string(out_dir.join("latency.csv")).unwrap();
    assert!(latency.starts_with("start_us,client,request,op,key,latency_us,tries,result\n"));
    assert_eq!(latency.lines().count(), 801);
    // The history holds the initial reads of the 10 keys besides the load.
    let history = std::fs::read_to_string(out_dir.join("history.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 810);
    let _ = TargetSpec::parse_url("http://x").unwrap_err();
}

/// The second bench runs on the data the first left: it reads every key
/// before its load and records those reads, so its check is right too.
#[test]
fn local_kv_two_checked_benches_back_to_back_both_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    dz_ok(
        t,
        &[
            "cluster",
            "up",
            "--mode",
            "local",
            "--machines",
            "3",
            "--system",
            "kv",
            "--name",
            "kvb",
        ],
    );
    let mut histories = Vec::new();
    for run in ["first", "second"] {
        let dir = t.join(run);
        let out = dz_ok(
            t,
            &[
                "kv-bench",
                "--workload",
                "examples/workloads/small.toml",
                "--cluster",
                "kvb",
                "--check",
                "--out",
                dir.to_str().unwrap(),
            ],
        );
        assert!(
            out.contains("800 of 800 requests answered") && out.contains("linearizable: yes"),
            "{run}: {out}"
        );
        let latency = std::fs::read_to_string(dir.join("latency.csv")).unwrap();
        assert!(
            latency.starts_with("start_us,client,request,op,key,latency_us,tries,result\n"),
            "{latency}"
        );
        assert_eq!(latency.lines().count(), 801);
        let history = dir.join("history.jsonl");
        let text = std::fs::read_to_string(&history).unwrap();
        let initial: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(r#""initial":true"#))
            .collect();
        assert_eq!(initial.len(), 10, "one read per key first");
        histories.push((
            history,
            initial.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
        ));
    }
    // The first found an empty cluster, the second the first's data.
    assert!(
        histories[0]
            .1
            .iter()
            .all(|l| l.contains(r#""outcome":"not_found""#))
    );
    assert!(
        histories[1]
            .1
            .iter()
            .any(|l| l.contains(r#""outcome":"value""#)),
        "{:?}",
        histories[1].1
    );
    // The saved history checks again, from the file.
    let out = dz_ok(t, &["kv", "check", histories[1].0.to_str().unwrap()]);
    assert!(out.contains("linearizable: yes"), "{out}");
    dz_ok(t, &["cluster", "down", "kvb"]);
}
