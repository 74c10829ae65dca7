//! Dataset scripts: what happens to a dataset over time, one command a
//! line (see docs/datasets.md):
//!
//! ```text
//! # leaves come and go; their users send numbers
//! at 0s     add a b
//! at 330ms  input a +2
//! at 2s     faults loss=0.4 kinds=InputAction
//! at 2.5s   input b 3
//! at 4s     remove a
//! at 5s     isolate m1
//! at 6s     heal
//! at 7s     faults none
//! end 60s
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::net::{Fault, MessageFaults};
use crate::node::MachineId;
use crate::systems::datasets::msg::DsMsg;
use crate::systems::datasets::user::{Action, Step};

/// A parsed script: the user's steps, the faults at their times, the end.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Script {
    pub steps: Vec<Step>,
    pub faults: Vec<(Duration, Fault)>,
    pub end: Duration,
}

impl Script {
    pub fn read(path: &Path, machines: usize) -> Result<Script> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Script::parse(&path.display().to_string(), &text, machines)
    }

    /// Parses `text`; an error names `file` and the line.
    pub fn parse(file: &str, text: &str, machines: usize) -> Result<Script> {
        let mut s = Script::default();
        let mut live = BTreeSet::new();
        let mut last = Duration::ZERO;
        for (i, raw) in text.lines().enumerate() {
            let bad = |why: String| Error::input(format!("{file}:{}: {why}", i + 1));
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            let time = |w: Option<&&str>| -> Result<Duration> {
                let w = w.ok_or_else(|| bad("a time is missing".into()))?;
                crate::topology::parse_duration(w).map_err(&bad)
            };
            match words[0] {
                "end" => {
                    s.end = time(words.get(1))?;
                    if words.len() > 2 {
                        return Err(bad(format!("unexpected {:?} after the end time", words[2])));
                    }
                    continue;
                }
                "at" => {}
                other => {
                    return Err(bad(format!(
                        "expected `at TIME COMMAND` or `end TIME`, found {other:?}"
                    )));
                }
            }
            let at = time(words.get(1))?;
            if at < last {
                return Err(bad(format!("time {} is before the line before", words[1])));
            }
            last = at;
            let at_ms = at.as_millis() as u64;
            let Some(&cmd) = words.get(2) else {
                return Err(bad("a command is missing after the time".into()));
            };
            let args = &words[3..];
            let mut step = |action| s.steps.push(Step { at_ms, action });
            match cmd {
                "add" | "remove" if args.is_empty() => {
                    return Err(bad(format!("`{cmd}` needs leaf names")));
                }
                "add" => {
                    for n in args {
                        if !live.insert(n.to_string()) {
                            return Err(bad(format!("leaf {n:?} is already there")));
                        }
                        step(Action::AddLeaf {
                            name: n.to_string(),
                        });
                    }
                }
                "remove" => {
                    for n in args {
                        if !live.remove(*n) {
                            return Err(bad(format!("leaf {n:?} is not there")));
                        }
                        step(Action::RemoveLeaf {
                            name: n.to_string(),
                        });
                    }
                }
                "input" => {
                    let [name, amount] = args else {
                        return Err(bad("`input` needs a leaf name and a whole number".into()));
                    };
                    if !live.contains(*name) {
                        return Err(bad(format!("leaf {name:?} is not there")));
                    }
                    let amount: i64 = amount
                        .trim_start_matches('+')
                        .parse()
                        .map_err(|_| bad(format!("{amount:?} is not a whole number")))?;
                    step(Action::Input {
                        name: name.to_string(),
                        amount,
                    });
                }
                "faults" => {
                    let faults = parse_faults(args).map_err(&bad)?;
                    s.faults.push((
                        at,
                        Fault::Messages {
                            machine: None,
                            faults,
                        },
                    ));
                }
                "isolate" => {
                    let [m] = args else {
                        return Err(bad("`isolate` needs one machine, like m1".into()));
                    };
                    let m = m
                        .strip_prefix('m')
                        .and_then(|n| n.parse::<u32>().ok())
                        .filter(|&n| (n as usize) < machines)
                        .ok_or_else(|| {
                            bad(format!(
                                "{m:?} is not a data machine (m0 to m{})",
                                machines - 1
                            ))
                        })?;
                    s.faults.push((
                        at,
                        Fault::Isolate {
                            machine: MachineId(m),
                        },
                    ));
                }
                "heal" if args.is_empty() => s.faults.push((at, Fault::Heal { machine: None })),
                other => {
                    return Err(bad(format!(
                        "unknown command {other:?} (add, remove, input, faults, isolate, heal)"
                    )));
                }
            }
        }
        let last_step = s.steps.last().map(|st| Duration::from_millis(st.at_ms));
        let latest = last_step
            .into_iter()
            .chain(s.faults.iter().map(|f| f.0))
            .max();
        if s.end == Duration::ZERO {
            // Time to settle after the last command.
            s.end = latest.unwrap_or_default() + Duration::from_secs(30);
        } else if latest.is_some_and(|l| l > s.end) {
            return Err(Error::input(format!(
                "{file}: `end` comes before the last command"
            )));
        }
        Ok(s)
    }

    /// The sum of every input and the leaves left at the end.
    pub fn outcome(&self) -> (i64, u64) {
        super::script_outcome(&self.steps)
    }
}

/// `loss=P duplicate=P reorder=P reorder_ms=MS kinds=A,B` or `none`.
fn parse_faults(args: &[&str]) -> std::result::Result<MessageFaults, String> {
    let mut f = MessageFaults::default();
    if args == ["none"] {
        return Ok(f);
    }
    if args.is_empty() {
        return Err("`faults` needs settings (loss=0.1 ...) or `none`".into());
    }
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| format!("{a:?} is not key=value"))?;
        let num = || {
            v.parse::<f64>()
                .map_err(|_| format!("{v:?} is not a number"))
        };
        match k {
            "loss" | "drop" => f.loss = num()?,
            "duplicate" => f.duplicate = num()?,
            "reorder" => f.reorder = num()?,
            "reorder_ms" => f.reorder_ms = Some(num()?),
            "kinds" => f.kinds = v.split(',').map(str::to_string).collect(),
            _ => return Err(format!("unknown fault setting {k:?}")),
        }
    }
    f.compile(<DsMsg as crate::node::Message>::kinds())
        .map_err(|e| e.to_string())?;
    Ok(f)
}

/// The `--leaves N` script: N leaves added `every` apart, each sending a
/// number, then removed again the same way.
pub fn grow_and_shrink(leaves: usize, every: Duration, settle: Duration) -> Script {
    let mut steps = Vec::new();
    let ms = every.as_millis() as u64;
    let settle_ms = settle.as_millis() as u64;
    for i in 0..leaves {
        let at_ms = i as u64 * ms;
        let name = format!("l{i}");
        steps.push(Step {
            at_ms,
            action: Action::AddLeaf { name: name.clone() },
        });
    }
    let grown = leaves as u64 * ms + settle_ms;
    for i in 0..leaves {
        steps.push(Step {
            at_ms: grown + i as u64,
            action: Action::Input {
                name: format!("l{i}"),
                amount: (i % 7) as i64 + 1,
            },
        });
    }
    let shrink = grown + leaves as u64 + settle_ms;
    for i in 0..leaves {
        steps.push(Step {
            at_ms: shrink + i as u64 * ms,
            action: Action::RemoveLeaf {
                name: format!("l{i}"),
            },
        });
    }
    let end = Duration::from_millis(shrink + leaves as u64 * ms) + settle * 3;
    Script {
        steps,
        faults: Vec::new(),
        end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_script_reads_into_steps_faults_and_an_end() {
        let s = Script::parse(
            "t",
            "at 0s add a b # two\nat 330ms input a +2\nat 1s faults loss=0.4 kinds=InputAction\n\
             at 2s remove a\nat 3s isolate m1\nat 4s heal\nend 9s\n",
            3,
        )
        .unwrap();
        assert_eq!(s.steps.len(), 4);
        assert_eq!(s.faults.len(), 3);
        assert_eq!(s.end, Duration::from_secs(9));
        assert_eq!(s.outcome(), (2, 1));
    }

    #[test]
    fn a_bad_line_is_named() {
        for (text, want) in [
            ("at 1s input a 2", "t:1: leaf \"a\" is not there"),
            (
                "at 0s add a\nat 1s input a two",
                "t:2: \"two\" is not a whole number",
            ),
            ("at 2s add a\nat 1s add b", "t:2: time 1s is before"),
            (
                "at 0s add a\nat 0s add a",
                "t:2: leaf \"a\" is already there",
            ),
            ("at 0s faults loss=2", "t:1: fault rate loss=2"),
            (
                "at 0s faults kinds=Nope loss=0.1",
                "t:1: fault filter names unknown",
            ),
            ("at 0s isolate m7", "t:1: \"m7\" is not a data machine"),
            ("at 0s jump", "t:1: unknown command \"jump\""),
            ("at soon add a", "t:1: \"soon\" is not a duration"),
            ("hello", "t:1: expected `at TIME COMMAND`"),
        ] {
            let e = Script::parse("t", text, 3).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
