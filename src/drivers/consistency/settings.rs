//! The settings of a consistency run: CloudScope's names and defaults
//! (its `SimulationConfiguration`), read from a JSON file (a settings
//! object, or a CloudScope results file whose `settings` it takes) and
//! overridden by flags.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::systems::consistency::{CommitQuorum, Integration, ReadPolicy};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSettings {
    pub random_seed: u64,
    /// Simulated time, ms.
    pub max_sim_time: f64,
    pub users: usize,
    pub max_objects_accessed: usize,
    pub conflict_prob: f64,
    pub object_prob: f64,
    pub access_mean: f64,
    pub access_stddev: f64,
    pub read_prob: f64,
    pub outage_prob: f64,
    pub outage_mean: f64,
    pub outage_stddev: f64,
    pub online_mean: f64,
    pub online_stddev: f64,
    pub partition_across: String,
    pub integration: Integration,
    pub anti_entropy_delay: f64,
    pub num_neighbors: usize,
    pub do_gossip: bool,
    pub election_timeout: [f64; 2],
    pub heartbeat_interval: f64,
    pub aggregate_writes: bool,
    pub read_policy: ReadPolicy,
    pub session_timeout: f64,
    pub sync_prob: f64,
    pub local_prob: f64,
    /// DistZero's: `majority` (textbook Raft) or `followers` (CloudScope's).
    pub commit_quorum: CommitQuorum,
    /// Federated: a Raft leader raises an object's forte on commit / on
    /// append (CloudScope's; both off by default).
    pub forte_on_commit: bool,
    pub forte_on_append: bool,
    /// Write CloudScope's per-message `sent` and `recv` series (its default
    /// is on; here off, as they hold two rows per message).
    pub trace_messages: bool,
    /// Mobile users: after an access a user moves to another location with
    /// `move_prob`, else switches to another device of its location with
    /// `switch_prob` (CloudScope's MobileWorkload).
    pub move_prob: f64,
    pub switch_prob: f64,
    /// Whether generated users move at all (CloudScope's default workload
    /// does not; its `--mobile` traces do).
    pub mobile: bool,
    /// Where mobile users never go: locations and device types.
    pub invalid_locations: Vec<String>,
    pub invalid_types: Vec<String>,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            random_seed: 42,
            max_sim_time: 4_320_000.0,
            users: 1,
            max_objects_accessed: 1,
            conflict_prob: 0.0,
            object_prob: 0.3,
            access_mean: 3000.0,
            access_stddev: 96.0,
            read_prob: 0.6,
            outage_prob: 0.0,
            outage_mean: 5400.0,
            outage_stddev: 512.0,
            online_mean: 10800.0,
            online_stddev: 512.0,
            partition_across: "wide".into(),
            integration: Integration::Default,
            anti_entropy_delay: 600.0,
            num_neighbors: 1,
            do_gossip: true,
            election_timeout: [150.0, 300.0],
            heartbeat_interval: 75.0,
            aggregate_writes: false,
            read_policy: ReadPolicy::Latest,
            session_timeout: 4096.0,
            sync_prob: 0.3,
            local_prob: 0.6,
            commit_quorum: CommitQuorum::Majority,
            forte_on_commit: false,
            forte_on_append: false,
            trace_messages: false,
            move_prob: 0.2,
            switch_prob: 0.3,
            mobile: false,
            invalid_locations: vec!["cloud".into()],
            invalid_types: vec!["backup".into()],
        }
    }
}

/// Keys a settings file may carry that are labels here (CloudScope's
/// results store its whole configuration, ours too).
const PARTITIONS: &[&str] = &["wide", "local", "both", "node", "global"];

impl RunSettings {
    /// Reads a JSON settings object, or the `settings` of a results file.
    /// Returns the settings and every key the file gave (for the results).
    pub fn load(path: &Path) -> Result<(RunSettings, Map<String, Value>)> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        let fail = |e: String| Error::input(format!("{}: {e}", path.display()));
        let value: Value =
            serde_json::from_str(&text).map_err(|e| fail(format!("not valid JSON: {e}")))?;
        let map = match value {
            Value::Object(mut m) => match m.remove("settings") {
                Some(Value::Object(s)) => s,
                Some(_) => return Err(fail("settings: expected an object".into())),
                None => m,
            },
            _ => return Err(fail("expected a JSON object of settings".into())),
        };
        let s = Self::from_map(&map).map_err(fail)?;
        Ok((s, map))
    }

    pub fn from_map(map: &Map<String, Value>) -> std::result::Result<RunSettings, String> {
        let s: RunSettings =
            serde_path_to_error::deserialize(Value::Object(map.clone())).map_err(|e| {
                let path = e.path().to_string();
                format!("{path}: {}", e.into_inner())
            })?;
        s.check()?;
        Ok(s)
    }

    /// Field-named checks.
    pub fn check(&self) -> std::result::Result<(), String> {
        for (name, p) in [
            ("conflict_prob", self.conflict_prob),
            ("object_prob", self.object_prob),
            ("read_prob", self.read_prob),
            ("outage_prob", self.outage_prob),
            ("sync_prob", self.sync_prob),
            ("local_prob", self.local_prob),
            ("move_prob", self.move_prob),
            ("switch_prob", self.switch_prob),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name}: must be between 0 and 1, got {p}"));
            }
        }
        for (name, v) in [
            ("max_sim_time", self.max_sim_time),
            ("access_mean", self.access_mean),
            ("anti_entropy_delay", self.anti_entropy_delay),
            ("heartbeat_interval", self.heartbeat_interval),
            ("session_timeout", self.session_timeout),
            ("outage_mean", self.outage_mean),
            ("online_mean", self.online_mean),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name}: must be a positive number, got {v}"));
            }
        }
        for (name, v) in [
            ("access_stddev", self.access_stddev),
            ("outage_stddev", self.outage_stddev),
            ("online_stddev", self.online_stddev),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name}: must be zero or more, got {v}"));
            }
        }
        let [lo, hi] = self.election_timeout;
        if !(lo > 0.0 && hi >= lo && hi.is_finite()) {
            return Err(format!(
                "election_timeout: expected [lo, hi] with 0 < lo <= hi, got [{lo}, {hi}]"
            ));
        }
        if self.users == 0 {
            return Err("users: must be at least 1".into());
        }
        if self.max_objects_accessed == 0 {
            return Err("max_objects_accessed: must be at least 1".into());
        }
        if self.num_neighbors == 0 {
            return Err("num_neighbors: must be at least 1".into());
        }
        if !PARTITIONS.contains(&self.partition_across.as_str()) {
            return Err(format!(
                "partition_across: {:?} is not one of {}",
                self.partition_across,
                PARTITIONS.join(", ")
            ));
        }
        Ok(())
    }

    /// The replica settings every node starts from (its own keys override).
    pub fn replica_defaults(&self) -> Map<String, Value> {
        let v = serde_json::json!({
            "integration": self.integration,
            "anti_entropy_delay": self.anti_entropy_delay,
            "num_neighbors": self.num_neighbors,
            "do_gossip": self.do_gossip,
            "election_timeout": self.election_timeout,
            "heartbeat_interval": self.heartbeat_interval,
            "read_policy": self.read_policy,
            "aggregate_writes": self.aggregate_writes,
            "session_timeout": self.session_timeout,
            "sync_prob": self.sync_prob,
            "local_prob": self.local_prob,
            "commit_quorum": self.commit_quorum,
            "forte_on_commit": self.forte_on_commit,
            "forte_on_append": self.forte_on_append,
            "trace_messages": self.trace_messages,
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!("a JSON object literal"),
        }
    }
}

/// How the tick T follows from the wide-area latency N(mean, sd).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TickModel {
    /// T = 10 mean.
    Bailis,
    /// T = 2 (mean + 2 sd).
    Howard,
    /// T = 6 (mean + 4 sd).
    Conservative,
    /// T = 2 (mean + 4 sd).
    Optimistic,
}

impl TickModel {
    pub fn tick(self, mean: f64, sd: f64) -> f64 {
        match self {
            TickModel::Bailis => 10.0 * mean,
            TickModel::Howard => 2.0 * (mean + 2.0 * sd),
            TickModel::Conservative => 6.0 * (mean + 4.0 * sd),
            TickModel::Optimistic => 2.0 * (mean + 4.0 * sd),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TickModel::Bailis => "bailis",
            TickModel::Howard => "howard",
            TickModel::Conservative => "conservative",
            TickModel::Optimistic => "optimistic",
        }
    }
}

/// CloudScope's timing from a tick T: election timeout (T, 2T),
/// heartbeat T/2, anti-entropy T/4.
pub fn timing(t: f64) -> ([f64; 2], f64, f64) {
    ([t, 2.0 * t], t / 2.0, t / 4.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_tick_models_follow_cloudscope() {
        assert_eq!(TickModel::Bailis.tick(300.0, 50.0), 3000.0);
        assert_eq!(TickModel::Howard.tick(300.0, 50.0), 800.0);
        assert_eq!(TickModel::Conservative.tick(300.0, 50.0), 3000.0);
        assert_eq!(TickModel::Optimistic.tick(300.0, 50.0), 1000.0);
        assert_eq!(timing(3000.0), ([3000.0, 6000.0], 1500.0, 750.0));
    }

    #[test]
    fn simulated_settings_errors_name_the_field() {
        let mut m = Map::new();
        m.insert("read_prob".into(), Value::from(1.5));
        assert!(
            RunSettings::from_map(&m)
                .unwrap_err()
                .starts_with("read_prob")
        );
        let mut m = Map::new();
        m.insert("integration".into(), Value::from("tiered-ish"));
        assert!(
            RunSettings::from_map(&m)
                .unwrap_err()
                .starts_with("integration")
        );
        // CloudScope's own results carry labels beside the settings.
        let mut m = Map::new();
        m.insert("title".into(), Value::from("Raft Quorum"));
        m.insert("users".into(), Value::from(5));
        assert_eq!(RunSettings::from_map(&m).unwrap().users, 5);
    }
}
