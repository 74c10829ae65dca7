//! CloudScope's topology generator: N replicas over L sites (alpha-site,
//! bravo-site, ...), fully connected by normal links, local within a site
//! and wide between sites, timing from the wide latency by a tick model.
//! Unlike CloudScope, which only labels them in `meta`, the timing is also
//! written on every node, so a generated file means what it says.

use serde_json::{Value, json};

use super::settings::{TickModel, timing};

const SITES: &[&str] = &[
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu",
];

/// What kind of system to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Family {
    Eventual,
    Stentor,
    /// Every replica in one Raft group (CloudScope's "sequential").
    Raft,
    Tag,
    /// One strong replica per site, the rest eventual (run with
    /// `--integration federated`).
    Federated,
    /// Every replica strong, a Raft group per site (run with
    /// `--integration floated`).
    Floated,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Eventual => "eventual",
            Family::Stentor => "stentor",
            Family::Raft => "raft",
            Family::Tag => "tag",
            Family::Federated => "federated",
            Family::Floated => "floated",
        }
    }

    /// The integration a family runs under.
    pub fn integration(self) -> &'static str {
        match self {
            Family::Federated => "federated",
            Family::Floated => "floated",
            _ => "default",
        }
    }

    pub fn parse(s: &str) -> Result<Family, String> {
        <Family as clap::ValueEnum>::from_str(s, true).map_err(|_| {
            format!(
                "unknown protocol {s:?} (expected eventual, stentor, raft, tag, federated or floated)"
            )
        })
    }
}

pub struct TopologySpec {
    pub nodes: usize,
    pub locations: usize,
    pub family: Family,
    pub local: (f64, f64),
    pub wide: (f64, f64),
    pub tick_model: TickModel,
}

impl TopologySpec {
    pub fn check(&self) -> Result<(), String> {
        if self.locations == 0 || self.locations > SITES.len() {
            return Err(format!("locations: between 1 and {}", SITES.len()));
        }
        if self.nodes < self.locations {
            return Err(format!(
                "nodes: {} nodes cannot fill {} locations",
                self.nodes, self.locations
            ));
        }
        for (name, (m, s)) in [("local", self.local), ("wide", self.wide)] {
            if !(m.is_finite() && m > 0.0 && s.is_finite() && s >= 0.0) {
                return Err(format!(
                    "{name}: expected MEAN,STDDEV with mean > 0, got {m},{s}"
                ));
            }
        }
        Ok(())
    }

    /// The topology as CloudScope writes it (plus applied timing per node).
    pub fn build(&self) -> Value {
        let tick = self.tick_model.tick(self.wide.0, self.wide.1);
        let (eto, hb, ae) = timing(tick);
        let site_of = |i: usize| i * self.locations / self.nodes;
        let mut nodes = Vec::with_capacity(self.nodes);
        let mut first_in_site = vec![true; self.locations];
        let mut count = vec![0; self.locations];
        for i in 0..self.nodes {
            let s = site_of(i);
            let first = std::mem::replace(&mut first_in_site[s], false);
            let consistency = match self.family {
                Family::Eventual => "eventual",
                Family::Stentor => "stentor",
                Family::Tag => "tag",
                Family::Raft | Family::Floated => "strong",
                Family::Federated if first => "strong",
                Family::Federated => "eventual",
            };
            let name = SITES[s];
            let id = format!("{}{}", &name[..1], count[s]);
            let label = format!("{}{} {}", name[..1].to_uppercase(), &name[1..], count[s]);
            count[s] += 1;
            nodes.push(json!({
                "id": id, "label": label, "location": format!("{name}-site"),
                "type": if first { "desktop" } else { "laptop" }, "consistency": consistency,
                "election_timeout": eto, "heartbeat_interval": hb, "anti_entropy_delay": ae,
            }));
        }
        let mut links = Vec::new();
        for a in 0..self.nodes {
            for b in a + 1..self.nodes {
                let local = site_of(a) == site_of(b);
                let (m, s) = if local { self.local } else { self.wide };
                links.push(json!({
                    "source": a, "target": b, "connection": "normal",
                    "area": if local { "local" } else { "wide" }, "latency": [m, s],
                }));
            }
        }
        let title = format!(
            "{} {} nodes, {} sites, wide N({}, {})",
            self.family.as_str(),
            self.nodes,
            self.locations,
            self.wide.0,
            self.wide.1
        );
        json!({
            "meta": {
                "title": title,
                "description": format!("Generated by dz consistency topology ({} tick model).", self.tick_model.as_str()),
                "type": self.family.as_str(), "integration": self.family.integration(),
                "seed": null, "constant": "N/A",
                "variable": format!("{}-{}ms", self.wide.0 - 2.0 * self.wide.1, self.wide.0 + 2.0 * self.wide.1),
                "local_latency": [self.local.0, self.local.1],
                "wide_latency": [self.wide.0, self.wide.1],
                "tick_param_model": self.tick_model.as_str(), "tick_metric": tick,
                "election_timeout": eto, "heartbeat_interval": hb, "anti_entropy_delay": ae,
            },
            "nodes": nodes,
            "links": links,
        })
    }
}
