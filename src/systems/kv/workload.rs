//! Workloads for the kv service: what `dz kv-bench` and simulated clients
//! send. A workload file is TOML:
//!
//! ```toml
//! reads = 50          # percent of requests that are reads
//! interval_ms = 10    # a client pauses up to this long between requests
//! keys = 100
//! key_size = 8
//! value_size = 64
//! requests = 10000    # per client
//! clients = 16
//! ```

use std::path::Path;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::msg::{MAX_KEY, MAX_VALUE, Op};
use crate::error::{Error, Result};
use crate::rng::DetRng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    /// Percent of requests that read (get or exists).
    pub reads: u32,
    /// Percent of writes that delete instead of update.
    pub deletes: u32,
    /// Upper bound of a client's random pause between requests.
    pub interval_ms: f64,
    pub keys: u32,
    pub key_size: usize,
    pub value_size: usize,
    /// Requests per client.
    pub requests: u64,
    pub clients: u32,
    /// Requests a client keeps in flight.
    pub outstanding: usize,
    /// A client sends a request again (to the next server) after this long.
    pub retry_ms: f64,
    /// Pause before a client's first request.
    pub start_ms: f64,
    /// After its requests, a client reads every key once more.
    pub final_reads: bool,
    /// A client stops sending new requests after this long (0: never).
    pub duration_ms: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            reads: 50,
            deletes: 10,
            interval_ms: 10.0,
            keys: 10,
            key_size: 4,
            value_size: 8,
            requests: 100,
            clients: 4,
            outstanding: 1,
            retry_ms: 100.0,
            start_ms: 10.0,
            final_reads: false,
            duration_ms: 0.0,
        }
    }
}

impl Workload {
    pub fn load(path: &Path) -> Result<Workload> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        let w: Workload = toml::from_str(&text)
            .map_err(|e| Error::input(format!("{}: {}", path.display(), e.message())))?;
        w.validate()
            .map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        Ok(w)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        let checks = [
            (
                self.reads > 100,
                "reads is a percentage (0 to 100)".to_string(),
            ),
            (
                self.deletes > 100,
                "deletes is a percentage (0 to 100)".into(),
            ),
            (
                !self.interval_ms.is_finite() || self.interval_ms < 0.0,
                "interval_ms must be a finite number, not negative".into(),
            ),
            (self.keys == 0, "keys must be at least 1".into()),
            (
                self.key_size == 0 || self.key_size > MAX_KEY,
                format!("key_size must be 1 to {MAX_KEY}"),
            ),
            (
                self.value_size > MAX_VALUE,
                format!("value_size must be at most {MAX_VALUE}"),
            ),
            (self.clients == 0, "clients must be at least 1".into()),
            (
                self.outstanding == 0,
                "outstanding must be at least 1".into(),
            ),
            (
                !self.retry_ms.is_finite() || self.retry_ms <= 0.0,
                "retry_ms must be a positive finite number".into(),
            ),
        ];
        match checks.into_iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err(why),
            None => Ok(()),
        }
    }

    /// Key number `k`, padded to `key_size`.
    pub fn key(&self, k: u32) -> String {
        let base = format!("k{k}");
        if base.len() >= self.key_size {
            base
        } else {
            format!("{base:_<width$}", width = self.key_size)
        }
    }

    pub fn op(&self, rng: &mut DetRng) -> Op {
        let key = self.key(rng.random_range(0..self.keys));
        if rng.random_range(0..100) < self.reads {
            if rng.random_range(0..10) == 0 {
                Op::Exists(key)
            } else {
                Op::Get(key)
            }
        } else if rng.random_range(0..100) < self.deletes {
            Op::Delete(key)
        } else {
            let value: String = (0..self.value_size)
                .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                .collect();
            Op::Update(key, value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_workload_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.toml");
        std::fs::write(&p, "reads = 50\nkeys = 4\nrequests = 7\nclients = 2\n").unwrap();
        let w = Workload::load(&p).unwrap();
        assert_eq!((w.reads, w.keys, w.requests, w.clients), (50, 4, 7, 2));
        std::fs::write(&p, "reads = 150\n").unwrap();
        assert!(
            Workload::load(&p)
                .unwrap_err()
                .to_string()
                .contains("percentage")
        );
        std::fs::write(&p, "reeds = 5\n").unwrap();
        assert!(
            Workload::load(&p)
                .unwrap_err()
                .to_string()
                .contains("reeds")
        );
        std::fs::write(&p, "reads = \"many\"\n").unwrap();
        assert!(Workload::load(&p).is_err());
        assert_eq!(
            Workload {
                key_size: 6,
                ..Default::default()
            }
            .key(3),
            "k3____"
        );
    }
}
