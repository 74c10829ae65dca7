//! The settings every `dz consistency` run takes: a settings file, the
//! topology's meta, then flags.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use super::super::duration_arg;
use crate::drivers::consistency::settings::RunSettings;
use crate::error::Error;
use crate::systems::consistency::{CommitQuorum, Integration, ReadPolicy};
use crate::topology::Topology;

/// Settings every run takes (CloudScope's names in --settings files).
#[derive(clap::Args, Clone, Default)]
pub struct Knobs {
    /// A JSON settings object, or a CloudScope results.json (its settings).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Simulated time [default: settings' max_sim_time, else 15m].
    #[arg(long, value_parser = duration_arg)]
    sim_time: Option<Duration>,
    /// Seed [default: settings' random_seed, else 42].
    #[arg(long)]
    seed: Option<u64>,
    /// Users of the generated workload [default: meta.users, else 1].
    #[arg(long)]
    pub(super) users: Option<usize>,
    /// Objects each user accesses (max_objects_accessed).
    #[arg(long)]
    objects: Option<usize>,
    /// Probability that an object is shared with another user.
    #[arg(long)]
    conflict: Option<f64>,
    #[arg(long)]
    read_prob: Option<f64>,
    #[arg(long)]
    object_prob: Option<f64>,
    /// Mean time between a user's accesses, ms.
    #[arg(long)]
    access_mean: Option<f64>,
    #[arg(long)]
    access_stddev: Option<f64>,
    /// default, federated or floated [default: settings, else meta.integration, else default].
    #[arg(long)]
    integration: Option<String>,
    /// Raft commit rule: majority (textbook) or followers (CloudScope's).
    #[arg(long, value_parser = ["majority", "followers"])]
    commit_quorum: Option<String>,
    /// Raft reads: latest or commit.
    #[arg(long, value_parser = ["latest", "commit"])]
    read_policy: Option<String>,
    /// Probability a link group goes offline after each spell.
    #[arg(long)]
    outage_prob: Option<f64>,
    /// wide, local, both, node or global.
    #[arg(long)]
    partition_across: Option<String>,
    /// Write the per-message `sent` and `recv` series (two rows a message).
    #[arg(long)]
    trace_messages: bool,
    /// Generated users move between locations and devices (CloudScope's
    /// mobile workload), with --move-prob and --switch-prob.
    #[arg(long)]
    mobile: bool,
    /// Mobile users: probability of moving to another location after an access.
    #[arg(long)]
    move_prob: Option<f64>,
    /// Mobile users: probability of switching device within the location.
    #[arg(long)]
    switch_prob: Option<f64>,
    /// Federated: the Raft leader raises the forte of what it commits.
    #[arg(long)]
    forte_on_commit: bool,
    /// Federated: the Raft leader raises the forte of what it appends.
    #[arg(long)]
    forte_on_append: bool,
}

impl Knobs {
    /// Whether users of a generated workload move (`--mobile`).
    pub(super) fn mobile(&self) -> bool {
        self.mobile
    }

    /// Settings from the file, then meta.users / meta.integration, then
    /// flags; and the keys given (for the results).
    pub(super) fn resolve(
        &self,
        topology: &Topology,
    ) -> anyhow::Result<(RunSettings, Map<String, Value>)> {
        let (mut s, mut given) = match &self.settings {
            Some(p) => RunSettings::load(p)?,
            None => (
                RunSettings {
                    max_sim_time: 900_000.0,
                    ..RunSettings::default()
                },
                Map::new(),
            ),
        };
        let meta = &topology.meta;
        if !given.contains_key("users")
            && let Some(u) = meta.get("users")
        {
            s.users = u.as_u64().filter(|&u| u > 0).ok_or_else(|| {
                Error::input(format!("meta.users: expected a positive count, got {u}"))
            })? as usize;
        }
        if !given.contains_key("integration")
            && let Some(i) = meta.get("integration").and_then(Value::as_str)
        {
            s.integration = Integration::parse(i)
                .map_err(|e| Error::input(format!("meta.integration: {e}")))?;
        }
        let mut set = |k: &str, v: Value| {
            given.insert(k.to_string(), v);
        };
        if let Some(d) = self.sim_time {
            s.max_sim_time = d.as_secs_f64() * 1e3;
            set("max_sim_time", s.max_sim_time.into());
        }
        if let Some(v) = self.seed {
            s.random_seed = v;
        }
        if let Some(v) = self.users {
            s.users = v;
            set("users", v.into());
        }
        if let Some(v) = self.objects {
            s.max_objects_accessed = v;
            set("max_objects_accessed", v.into());
        }
        for (name, flag, field) in [
            ("conflict_prob", self.conflict, &mut s.conflict_prob),
            ("read_prob", self.read_prob, &mut s.read_prob),
            ("object_prob", self.object_prob, &mut s.object_prob),
            ("access_mean", self.access_mean, &mut s.access_mean),
            ("access_stddev", self.access_stddev, &mut s.access_stddev),
            ("outage_prob", self.outage_prob, &mut s.outage_prob),
            ("move_prob", self.move_prob, &mut s.move_prob),
            ("switch_prob", self.switch_prob, &mut s.switch_prob),
        ] {
            if let Some(v) = flag {
                *field = v;
                given.insert(name.into(), v.into());
            }
        }
        if let Some(i) = &self.integration {
            s.integration =
                Integration::parse(i).map_err(|e| Error::input(format!("--integration: {e}")))?;
        }
        if let Some(q) = &self.commit_quorum {
            s.commit_quorum = if q == "followers" {
                CommitQuorum::Followers
            } else {
                CommitQuorum::Majority
            };
        }
        if let Some(p) = &self.read_policy {
            s.read_policy = if p == "commit" {
                ReadPolicy::Commit
            } else {
                ReadPolicy::Latest
            };
        }
        if let Some(p) = &self.partition_across {
            s.partition_across = p.clone();
        }
        for (name, flag, field) in [
            ("trace_messages", self.trace_messages, &mut s.trace_messages),
            ("mobile", self.mobile, &mut s.mobile),
            (
                "forte_on_commit",
                self.forte_on_commit,
                &mut s.forte_on_commit,
            ),
            (
                "forte_on_append",
                self.forte_on_append,
                &mut s.forte_on_append,
            ),
        ] {
            if flag {
                *field = true;
                given.insert(name.into(), true.into());
            }
        }
        s.check()
            .map_err(|e| Error::input(format!("settings: {e}")))?;
        Ok((s, given))
    }
}
