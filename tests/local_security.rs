//! The agent against hostile and broken peers: without the cluster secret
//! nothing is accepted, and garbage, oversized frames and unknown message
//! kinds close only the connection that sent them.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::agent::{Agent, clocks_node};
use common::real::{DZ, block_local};
use distzero::runtime::auth::{self, Role};
use distzero::runtime::client::AgentClient;
use distzero::runtime::framing::frame_bytes;
use distzero::wire::{Envelope, Frame, Hello, decode_frame};
use rand::{RngExt, SeedableRng};

const SECRET: &str = "test-secret-123";

/// The agent's transport counters, asked with the right secret.
fn transport(agent: &Agent) -> std::collections::BTreeMap<String, u64> {
    let control = agent.ready.control.clone();
    block_local(async move {
        let c = AgentClient::connect(&control, SECRET)
            .await
            .expect("agent answers");
        c.stats().await.unwrap().transport
    })
}

/// Reads until the peer closes (true) or a timeout (false).
fn closed_by_peer(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn read_frame(s: &mut TcpStream) -> Frame {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    decode_frame(&body).unwrap()
}

/// A data connection that passed the handshake, as a real peer would.
fn authenticated_peer(agent: &Agent, name: &str) -> TcpStream {
    let mut s = TcpStream::connect(&agent.ready.data).unwrap();
    let nonce = auth::nonce();
    s.write_all(&frame_bytes(&Frame::Hello(Hello {
        machine: name.into(),
        session: 1,
        nonce: nonce.clone(),
        proof: vec![],
    })))
    .unwrap();
    let Frame::Hello(theirs) = read_frame(&mut s) else {
        panic!("no hello")
    };
    assert!(
        auth::verify(SECRET, Role::Server, &nonce, &theirs.proof),
        "the agent proves the secret too"
    );
    let proof = auth::prove(SECRET, Role::Client, &theirs.nonce);
    s.write_all(&frame_bytes(&Frame::Hello(Hello {
        machine: name.into(),
        session: 1,
        nonce: vec![],
        proof,
    })))
    .unwrap();
    s
}

#[test]
fn local_agent_refuses_to_run_without_a_secret() {
    let out = Command::new(DZ)
        .args([
            "machine",
            "--name",
            "m0",
            "--control",
            "127.0.0.1:0",
            "--data",
            "127.0.0.1:0",
        ])
        .env_remove("DZ_CLUSTER_SECRET")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DZ_CLUSTER_SECRET"));
}

#[test]
fn local_control_client_without_the_secret_is_refused() {
    let agent = Agent::start(SECRET, &[]);
    let control = agent.ready.control.clone();
    block_local(async move {
        let err = AgentClient::connect(&control, "wrong secret")
            .await
            .err()
            .expect("refused");
        assert!(err.to_string().contains("authentication failed"), "{err}");
        let ok = AgentClient::connect(&control, SECRET)
            .await
            .expect("accepted");
        assert_eq!(ok.stats().await.unwrap().machine, "m0");
    });
}

#[test]
fn local_data_plane_refuses_unauthenticated_peers() {
    let mut agent = Agent::start(SECRET, &[]);
    // A peer that cannot prove the secret.
    let mut s = TcpStream::connect(&agent.ready.data).unwrap();
    s.write_all(&frame_bytes(&Frame::Hello(Hello {
        machine: "evil".into(),
        session: 9,
        nonce: auth::nonce(),
        proof: vec![],
    })))
    .unwrap();
    let Frame::Hello(_) = read_frame(&mut s) else {
        panic!("no hello")
    };
    s.write_all(&frame_bytes(&Frame::Hello(Hello {
        machine: "evil".into(),
        session: 9,
        nonce: vec![],
        proof: vec![7; 32],
    })))
    .unwrap();
    assert!(closed_by_peer(&mut s));
    // A peer that skips the handshake.
    let mut s = TcpStream::connect(&agent.ready.data).unwrap();
    let msg = Frame::Message {
        seq: 1,
        envelope: Envelope {
            from: 1,
            to: 0,
            kind: 0,
            payload: vec![1],
        },
    };
    s.write_all(&frame_bytes(&msg)).unwrap();
    assert!(closed_by_peer(&mut s));
    assert!(agent.alive());
    assert!(transport(&agent)["refused_connections"] >= 2);
}

#[test]
fn local_random_bytes_never_crash_the_agent() {
    let mut agent = Agent::start(SECRET, &[]);
    let mut rng = distzero::rng::DetRng::seed_from_u64(99);
    for round in 0..60 {
        let port = if round % 2 == 0 {
            &agent.ready.data
        } else {
            &agent.ready.control
        };
        let Ok(mut s) = TcpStream::connect(port) else {
            continue;
        };
        let len = [0, 1, 3, 4, 17, 512, 4096][rng.random_range(0..7)];
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes[..]);
        if round % 5 == 0 {
            // A length prefix that lies about a huge frame.
            bytes.splice(0..0, u32::MAX.to_be_bytes());
        }
        let _ = s.write_all(&bytes);
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.alive(), "the agent died of garbage");
    let t = transport(&agent);
    assert!(t["refused_connections"] >= 20, "{t:?}");
}

#[test]
fn local_oversized_frames_and_unknown_kinds_close_only_their_connection() {
    let agent = Agent::start(SECRET, &[]);
    let control = agent.ready.control.clone();
    let data = agent.ready.data.clone();
    // A clocks node, so the agent knows its system's message kinds.
    block_local(async move {
        let c = AgentClient::connect(&control, SECRET).await.unwrap();
        let (spec, roster) = clocks_node(&data);
        c.spawn_node(&spec, &roster, 0, 0).await.unwrap();
    });

    let mut big = authenticated_peer(&agent, "m9");
    big.write_all(&(64u32 << 20).to_be_bytes()).unwrap();
    assert!(
        closed_by_peer(&mut big),
        "an oversized frame must close the connection"
    );

    let mut odd = authenticated_peer(&agent, "m8");
    let unknown = Frame::Message {
        seq: 1,
        envelope: Envelope {
            from: 5,
            to: 0,
            kind: 77,
            payload: vec![],
        },
    };
    odd.write_all(&frame_bytes(&unknown)).unwrap();
    assert!(
        closed_by_peer(&mut odd),
        "an unknown kind must close the connection"
    );

    // A well-behaved peer still gets through and is acknowledged.
    let mut good = authenticated_peer(&agent, "m7");
    let mut payload = Vec::new();
    distzero::node::Message::encode(
        &distzero::systems::clocks::ClockMsg::Stamp(41),
        &mut payload,
    );
    let ok = Frame::Message {
        seq: 1,
        envelope: Envelope {
            from: 3,
            to: 0,
            kind: 0,
            payload,
        },
    };
    good.write_all(&frame_bytes(&ok)).unwrap();
    assert_eq!(read_frame(&mut good), Frame::Ack(1));
    let t = transport(&agent);
    assert!(t["bad_frames"] >= 2, "{t:?}");
    assert_eq!(t["received_frames"], 2, "{t:?}");
}
