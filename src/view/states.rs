//! Node states over time (`states.jsonl`, written by the viewer's re-run):
//! each line is a node's `status` when it changed, so the state at `t` is
//! the node's last line at or before `t`.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

#[derive(Default)]
pub struct States {
    /// Per node: (time, state) in time order.
    by_node: Vec<Vec<(f64, Value)>>,
}

#[derive(Deserialize)]
struct Line {
    t: f64,
    node: usize,
    state: Value,
}

impl States {
    pub fn open(path: &Path) -> Result<States> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut s = States::default();
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let l: Line = serde_json::from_str(line)
                .map_err(|e| Error::input(format!("{}: line {}: {e}", path.display(), n + 1)))?;
            if s.by_node.len() <= l.node {
                s.by_node.resize_with(l.node + 1, Vec::new);
            }
            s.by_node[l.node].push((l.t, l.state));
        }
        Ok(s)
    }

    pub fn nodes(&self) -> usize {
        self.by_node.len()
    }

    /// The state of `node` at `t` (`null` before its first sample).
    pub fn at(&self, node: usize, t: f64) -> Value {
        let Some(v) = self.by_node.get(node) else {
            return Value::Null;
        };
        let i = v.partition_point(|(s, _)| *s <= t);
        if i == 0 {
            Value::Null
        } else {
            v[i - 1].1.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_is_the_last_sample_before_t() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("states.jsonl");
        std::fs::write(
            &p,
            "{\"t\":0,\"node\":1,\"state\":{\"view\":1}}\n{\"t\":0.5,\"node\":1,\"state\":{\"view\":2}}\n",
        )
        .unwrap();
        let s = States::open(&p).unwrap();
        assert_eq!(s.at(1, 0.4)["view"], 1);
        assert_eq!(s.at(1, 0.5)["view"], 2);
        assert_eq!(s.at(0, 0.5), Value::Null);
        std::fs::write(&p, "{\"t\":0}\n").unwrap();
        assert!(States::open(&p).is_err());
    }
}
