//! Mutual TLS on local processes: a cluster with TLS on runs clocks and kv,
//! a kv value cannot be read on the wire, peers without a certificate from
//! the cluster's CA are refused with one log line while the agent keeps
//! serving, and garbage still closes only its own connection.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::agent::{Agent, clocks_node};
use common::real::{DZ, block_local, clocks_scenario, settings};
use distzero::backends::cluster::{down, up};
use distzero::controller::one_node_per_machine;
use distzero::drivers::kv::remote::{KvRemote, ServerAddr};
use distzero::node::{Mode, NodeId};
use distzero::runtime::client::AgentClient;
use distzero::runtime::framing::{read_frame, write_frame};
use distzero::runtime::tls::{CREDENTIALS_VAR, ClusterCa, Credentials, TlsContext};
use distzero::runtime::transport::dial_with;
use distzero::systems::clocks::ClockMsg;
use distzero::systems::kv::msg::{Op, Response};
use distzero::wire::{Envelope, Frame};
use rand::{RngExt, SeedableRng};
use tokio::io::AsyncWriteExt;

const SECRET: &str = "tls-test-secret";

/// Forwards connections to `target` and keeps every byte either way.
struct Tap {
    address: String,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    fn new(target: String) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let log = log.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            log.lock().unwrap().extend_from_slice(&buf[..n]);
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Tap { address, seen }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Writes a kv value through taps on every server's data port and reads it
/// back; returns what crossed the taps.
fn tapped_kv_update(tls: bool, name: &str, value: &str) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path());
    s.tls = Some(tls);
    block_local(async {
        let config = serde_json::json!({"election_timeout_ms": 400.0});
        let (machines, placement) = one_node_per_machine(3, "kv", "server", &config);
        let (mut ctl, state) = up(&s, name, Mode::Local, &machines, placement, Path::new(DZ))
            .await
            .unwrap();
        assert_eq!(state.tls.is_some(), tls);
        let record = tmp.path().join(name).join("cluster.json");
        let mode = std::fs::metadata(&record).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the record holds the secret and CA key"
        );
        let taps: Vec<Tap> = ctl
            .backend()
            .records()
            .iter()
            .map(|r| Tap::new(r.data.clone()))
            .collect();
        let servers = taps
            .iter()
            .enumerate()
            .map(|(i, t)| ServerAddr {
                node: NodeId(i as u32),
                address: t.address.clone(),
            })
            .collect();
        let mut client = KvRemote::new(servers, state.secret.clone());
        let put = client.call(Op::Update("tapped".into(), value.into())).await;
        let got = client.call(Op::Get("tapped".into())).await;
        drop(client);
        down(&mut ctl, &state, &s.tmp_dir).await.unwrap();
        assert_eq!(put.unwrap().0, Response::Ok);
        assert_eq!(got.unwrap().0, Response::Value(value.into()));
        let seen = taps
            .iter()
            .flat_map(|t| t.seen.lock().unwrap().clone())
            .collect::<Vec<u8>>();
        assert!(seen.len() > 100, "the taps saw the traffic: {}", seen.len());
        seen
    })
}

#[test]
fn local_tls_kv_values_cannot_be_read_on_the_wire() {
    let value = "plain-as-day-7f3a9c41";
    // The tap works: without TLS the value is on the wire.
    let plain = tapped_kv_update(false, "tls-kv-plain", value);
    assert!(contains(&plain, value.as_bytes()));
    let secret = tapped_kv_update(true, "tls-kv", value);
    assert!(!contains(&secret, value.as_bytes()));
    assert!(!contains(&secret, b"tapped"), "nor is the key");
}

#[test]
fn local_tls_cluster_runs_the_clocks_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path());
    s.tls = Some(true);
    let state = block_local(clocks_scenario(&s, Mode::Local, "tls-clocks"));
    assert!(state.tls.is_some());
}

fn context(creds: &Credentials) -> Arc<TlsContext> {
    creds.context().unwrap()
}

/// The transport's counters, asked over TLS with a good certificate.
async fn counters(control: &str, good: &TlsContext) -> std::collections::BTreeMap<String, u64> {
    let c = AgentClient::connect_with(control, SECRET, Some(good))
        .await
        .expect("a client with the cluster's certificate is served");
    c.stats().await.unwrap().transport
}

#[test]
fn local_tls_peers_without_a_certificate_from_the_cluster_ca_are_refused() {
    let ours = ClusterCa::new("ours").unwrap();
    let theirs = ClusterCa::new("theirs").unwrap();
    let mut agent = Agent::start(
        SECRET,
        &[(CREDENTIALS_VAR, ours.issue("m0").unwrap().encode())],
    );
    let good = context(&ours.issue("controller").unwrap());
    // Another cluster's client: trusts only its own CA.
    let foreign = context(&theirs.issue("intruder").unwrap());
    // Trusts our CA, but its own certificate is from another CA.
    let stolen_ca = {
        let mut c = theirs.issue("intruder").unwrap();
        c.ca_pem = ours.cert_pem.clone();
        context(&c)
    };
    let (control, data) = (agent.ready.control.clone(), agent.ready.data.clone());
    block_local(async {
        for (what, tls) in [
            ("another cluster's CA", Some(&*foreign)),
            ("a certificate from another CA", Some(&*stolen_ca)),
            ("no certificate (plain TCP)", None),
        ] {
            assert!(
                AgentClient::connect_with(&control, SECRET, tls)
                    .await
                    .is_err(),
                "control plane accepted {what}"
            );
            assert!(
                dial_with(&data, SECRET, "m9", 1, tls).await.is_err(),
                "data plane accepted {what}"
            );
        }
        // The agent goes on serving peers with the right certificate.
        let (_, _, name) = dial_with(&data, SECRET, "m9", 1, Some(&good))
            .await
            .expect("a peer with the cluster's certificate is accepted");
        assert_eq!(name, "m0");
        let t = counters(&control, &good).await;
        assert_eq!(t["refused_connections"], 3, "{t:?}");
    });
    assert!(agent.alive());
    // One log line per refused connection, on each plane.
    assert_eq!(agent.log_lines("refused a data connection", 3), 3);
    assert_eq!(agent.log_lines("refused a control connection", 3), 3);
}

#[test]
fn local_tls_garbage_and_oversized_frames_close_only_their_connection() {
    const PATIENCE: Duration = Duration::from_secs(30);
    let ca = ClusterCa::new("garbage").unwrap();
    let mut agent = Agent::start(
        SECRET,
        &[(CREDENTIALS_VAR, ca.issue("m0").unwrap().encode())],
    );
    let good = context(&ca.issue("controller").unwrap());
    let mut rng = distzero::rng::DetRng::seed_from_u64(7);
    for round in 0..40 {
        let port = if round % 2 == 0 {
            &agent.ready.data
        } else {
            &agent.ready.control
        };
        let Ok(mut s) = TcpStream::connect(port) else {
            continue;
        };
        let len = [0, 1, 5, 17, 512, 4096][rng.random_range(0..6)];
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes[..]);
        if round % 4 == 0 {
            // What looks like a TLS record header promising a huge record.
            bytes.splice(0..0, [0x16, 0x03, 0x01, 0xff, 0xff]);
        }
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.alive(), "the agent died of garbage");
    let (control, data) = (agent.ready.control.clone(), agent.ready.data.clone());
    block_local(async {
        // Inside TLS: an oversized frame closes that connection...
        let (mut rd, mut wr, _) = dial_with(&data, SECRET, "m9", 1, Some(&good))
            .await
            .unwrap();
        wr.write_all(&(64u32 << 20).to_be_bytes()).await.unwrap();
        wr.flush().await.unwrap();
        let mut buf = Vec::new();
        // Liveness bounds, not speed: a loaded CI machine can stall the
        // agent's thread for seconds (it failed once at 6 s).
        let end = tokio::time::timeout(PATIENCE, read_frame(&mut rd, &mut buf))
            .await
            .expect("the agent closes an oversized frame's connection");
        assert!(end.is_err(), "{end:?}");
        // ...and a well-behaved peer is still acknowledged, once a clocks
        // node has told the agent its system's message kinds.
        let (spec, roster) = clocks_node(&data);
        AgentClient::connect_with(&control, SECRET, Some(&good))
            .await
            .unwrap()
            .spawn_node(&spec, &roster, 0, 0)
            .await
            .unwrap();
        let (mut rd, mut wr, _) = dial_with(&data, SECRET, "m7", 1, Some(&good))
            .await
            .unwrap();
        let mut payload = Vec::new();
        distzero::node::Message::encode(&ClockMsg::Stamp(41), &mut payload);
        let msg = Frame::Message {
            seq: 1,
            envelope: Envelope {
                from: 3,
                to: 0,
                kind: 0,
                payload,
            },
        };
        write_frame(&mut wr, &msg).await.unwrap();
        wr.flush().await.unwrap();
        let ack = tokio::time::timeout(PATIENCE, read_frame(&mut rd, &mut buf))
            .await
            .expect("an acknowledgement");
        assert_eq!(ack.unwrap(), Frame::Ack(1));
        let t = counters(&control, &good).await;
        assert!(t["refused_connections"] >= 15, "{t:?}");
        assert!(t["bad_frames"] >= 1, "{t:?}");
    });
    assert!(agent.alive());
}
