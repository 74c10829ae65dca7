//! One `dz machine` process on ephemeral ports, for tests that talk to an
//! agent directly; killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use distzero::node::NodeId;
use distzero::runtime::agent::Ready;
use distzero::systems::NodeSpec;
use distzero::wire::convert::PlacedNode;

use super::real::DZ;

pub struct Agent {
    pub child: Child,
    pub ready: Ready,
    pub dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    /// Machine `m0` with the cluster `secret` and any further environment
    /// (TLS credentials).
    pub fn start(secret: &str, env: &[(&str, String)]) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready.json");
        let child = Command::new(DZ)
            .args([
                "machine",
                "--name",
                "m0",
                "--control",
                "127.0.0.1:0",
                "--data",
                "127.0.0.1:0",
                "--dir",
            ])
            .arg(dir.path())
            .arg("--ready-file")
            .arg(&ready)
            .env("DZ_CLUSTER_SECRET", secret)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let ready = loop {
            if let Ok(t) = std::fs::read_to_string(&ready)
                && let Ok(r) = serde_json::from_str::<Ready>(&t)
            {
                break r;
            }
            assert!(Instant::now() < deadline, "agent did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        Agent { child, ready, dir }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Log lines containing `text`, once at least `at_least` are there (or
    /// after 5 s).
    pub fn log_lines(&self, text: &str, at_least: usize) -> usize {
        let path = self.dir.path().join("agent.json.log");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            let n = log.lines().filter(|l| l.contains(text)).count();
            if n >= at_least || Instant::now() > deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One clocks node on `m0` at `data`: spawning it tells the agent its
/// system's message kinds.
pub fn clocks_node(data: &str) -> (NodeSpec, Vec<PlacedNode>) {
    let spec = NodeSpec {
        id: NodeId(0),
        name: "n0".into(),
        system: "clocks".into(),
        role: "machine".into(),
        config: serde_json::json!({"rate": 1}),
    };
    let roster = vec![PlacedNode {
        spec: spec.clone(),
        machine: "m0".into(),
        machine_id: 0,
        address: data.to_string(),
    }];
    (spec, roster)
}
