//! A simulation trace (`trace.jsonl`) read once into compact events, each
//! send paired with its delivery or drop, so that any moment of the run is
//! answered without reading the file again.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// What happened; the names are the trace's own `ev` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ev {
    Send,
    Deliver,
    Drop,
    Duplicate,
    Timer,
    Start,
    Crash,
    Restart,
    Link,
    Isolate,
    Heal,
    Faults,
    KillNode,
    Spawn,
    Exit,
    FailStop,
    WorkDone,
    StorageFaults,
}

const NAMES: [&str; 18] = [
    "send",
    "deliver",
    "drop",
    "duplicate",
    "timer",
    "start",
    "crash",
    "restart",
    "link",
    "isolate",
    "heal",
    "faults",
    "kill_node",
    "spawn",
    "exit",
    "fail_stop",
    "work_done",
    "storage_faults",
];

impl Ev {
    fn parse(s: &str) -> Option<Ev> {
        let i = NAMES.iter().position(|n| *n == s)?;
        // NAMES and ALL list the events in the same order.
        Some(ALL[i])
    }

    pub fn name(self) -> &'static str {
        NAMES[self as usize]
    }

    fn is_message(self) -> bool {
        matches!(self, Ev::Send | Ev::Deliver | Ev::Drop | Ev::Duplicate)
    }
}

const ALL: [Ev; 18] = [
    Ev::Send,
    Ev::Deliver,
    Ev::Drop,
    Ev::Duplicate,
    Ev::Timer,
    Ev::Start,
    Ev::Crash,
    Ev::Restart,
    Ev::Link,
    Ev::Isolate,
    Ev::Heal,
    Ev::Faults,
    Ev::KillNode,
    Ev::Spawn,
    Ev::Exit,
    Ev::FailStop,
    Ev::WorkDone,
    Ev::StorageFaults,
];

pub const NONE: u32 = u32::MAX;

/// One trace line. `a`/`b` are from/to for messages, node or machine
/// otherwise; `pair` links a send (or duplicate) to its delivery or drop
/// and back.
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub t: f64,
    pub ev: Ev,
    /// Message kind, or drop reason for drops (both index `strings`).
    pub kind: u16,
    pub reason: u16,
    pub a: u32,
    pub b: u32,
    pub pair: u32,
    /// Timer tag, spawn's machine, link/isolate's on flag.
    pub x: u64,
}

#[derive(Deserialize)]
struct Raw<'a> {
    t: f64,
    #[serde(borrow)]
    ev: &'a str,
    from: Option<u32>,
    to: Option<u32>,
    #[serde(borrow)]
    kind: Option<&'a str>,
    #[serde(borrow)]
    reason: Option<&'a str>,
    node: Option<u32>,
    machine: Option<u32>,
    tag: Option<u64>,
    up: Option<bool>,
    on: Option<bool>,
    new: Option<u32>,
    /// Sends: when the message arrives (ns), so deliveries pair exactly.
    arr: Option<u64>,
    /// Sends: the message's contents, read later from the file.
    msg: Option<serde::de::IgnoredAny>,
}

pub struct TraceIndex {
    pub events: Vec<Event>,
    /// Message kinds, by the number events carry.
    pub strings: Vec<String>,
    /// Drop reasons, likewise.
    pub reasons: Vec<String>,
    /// Indices of machine events (crash, restart, link, isolate, heal...).
    faults: Vec<u32>,
    /// The longest time a message spent between send and delivery.
    pub max_flight: f64,
    /// The largest node and machine number seen, plus one.
    pub nodes: u32,
    pub machines: u32,
    /// (event, byte offset of its line) of the sends that carry contents.
    pub msg_lines: Vec<(u32, u64)>,
}

/// Message contents, read on demand from a trace written with them.
pub struct Contents {
    pub path: std::path::PathBuf,
    /// As [`TraceIndex::msg_lines`].
    pub lines: Vec<(u32, u64)>,
}

impl Contents {
    /// The contents of send (or duplicate) `i`, if recorded.
    pub fn get(&self, i: u32) -> Option<String> {
        use std::io::{BufRead, Seek};
        let k = self.lines.binary_search_by_key(&i, |l| l.0).ok()?;
        let mut f = std::io::BufReader::new(std::fs::File::open(&self.path).ok()?);
        f.seek(std::io::SeekFrom::Start(self.lines[k].1)).ok()?;
        let mut line = String::new();
        f.read_line(&mut line).ok()?;
        let v: Value = serde_json::from_str(&line).ok()?;
        v["msg"].as_str().map(str::to_string)
    }
}

impl TraceIndex {
    pub fn open(path: &Path) -> Result<TraceIndex> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
        Self::parse(&bytes).map_err(|e| Error::input(format!("{}: {e}", path.display())))
    }

    pub fn parse(bytes: &[u8]) -> std::result::Result<TraceIndex, String> {
        let mut ix = TraceIndex {
            events: Vec::with_capacity(bytes.len() / 60),
            strings: Vec::new(),
            reasons: Vec::new(),
            faults: Vec::new(),
            max_flight: 0.0,
            nodes: 0,
            machines: 0,
            msg_lines: Vec::new(),
        };
        let mut names: HashMap<String, u16> = HashMap::new();
        let mut reasons: HashMap<String, u16> = HashMap::new();
        let (mut first_spawned, mut spawn_machines) = (u32::MAX, 0u32);
        // Sends in flight by link, kind and arrival time (ns; NO_ARR when
        // the trace does not say): deliveries and drops on arrival pair with
        // the send due then, in scheduling order, which the simulator keeps.
        let mut pending: HashMap<(u32, u32, u16, u64), VecDeque<u32>> = HashMap::new();
        const NO_ARR: u64 = u64::MAX;
        let mut last_t = 0.0;
        let mut offset = 0u64;
        for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let at = offset;
            offset += line.len() as u64 + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let raw: Raw = serde_json::from_slice(line)
                .map_err(|e| format!("line {}: not a trace event ({e})", n + 1))?;
            let ev = Ev::parse(raw.ev)
                .ok_or_else(|| format!("line {}: unknown event {:?}", n + 1, raw.ev))?;
            if !raw.t.is_finite() || raw.t < last_t {
                return Err(format!("line {}: time {} goes backwards", n + 1, raw.t));
            }
            last_t = raw.t;
            let intern =
                |s: Option<&str>, map: &mut HashMap<String, u16>, list: &mut Vec<String>| -> u16 {
                    let s = s.unwrap_or("?");
                    if let Some(&i) = map.get(s) {
                        return i;
                    }
                    let i = list.len() as u16;
                    list.push(s.to_string());
                    map.insert(s.to_string(), i);
                    i
                };
            let mut e = Event {
                t: raw.t,
                ev,
                kind: 0,
                reason: 0,
                a: NONE,
                b: NONE,
                pair: NONE,
                x: 0,
            };
            let need = |v: Option<u32>, f: &str| {
                v.ok_or_else(|| format!("line {}: {} without {f}", n + 1, ev.name()))
            };
            if ev.is_message() {
                e.a = need(raw.from, "from")?;
                e.b = need(raw.to, "to")?;
                e.kind = intern(raw.kind, &mut names, &mut ix.strings);
                ix.nodes = ix.nodes.max(e.a + 1).max(e.b + 1);
            }
            let i = ix.events.len() as u32;
            match ev {
                Ev::Send | Ev::Duplicate => {
                    if raw.msg.is_some() {
                        ix.msg_lines.push((i, at));
                    }
                    let q = pending
                        .entry((e.a, e.b, e.kind, raw.arr.unwrap_or(NO_ARR)))
                        .or_default();
                    // A duplicate due with its original was queued first,
                    // so it arrives first.
                    if ev == Ev::Duplicate && i > 0 && q.back() == Some(&(i - 1)) {
                        q.insert(q.len() - 1, i);
                    } else {
                        q.push_back(i);
                    }
                }
                Ev::Deliver | Ev::Drop => {
                    if ev == Ev::Drop {
                        e.reason = intern(raw.reason, &mut reasons, &mut ix.reasons);
                    }
                    let ns = (e.t * 1e9).round() as u64;
                    let mut take = |arr| {
                        pending
                            .get_mut(&(e.a, e.b, e.kind, arr))
                            .and_then(VecDeque::pop_front)
                    };
                    if let Some(s) = take(ns).or_else(|| take(NO_ARR)) {
                        e.pair = s;
                        let send = &mut ix.events[s as usize];
                        send.pair = i;
                        ix.max_flight = ix.max_flight.max(e.t - send.t);
                    }
                }
                Ev::Timer | Ev::Start | Ev::KillNode | Ev::Exit | Ev::FailStop | Ev::WorkDone => {
                    e.a = need(raw.node, "node")?;
                    e.x = raw.tag.unwrap_or(0);
                    ix.nodes = ix.nodes.max(e.a + 1);
                }
                Ev::Spawn => {
                    e.a = need(raw.node, "node")?;
                    e.b = need(raw.new, "new")?;
                    e.x = need(raw.machine, "machine")?.into();
                    ix.nodes = ix.nodes.max(e.b + 1);
                    first_spawned = first_spawned.min(e.b);
                    spawn_machines = spawn_machines.max(e.x as u32 + 1);
                }
                Ev::Crash | Ev::Restart | Ev::Isolate => {
                    e.a = need(raw.machine, "machine")?;
                    e.x = raw.on.unwrap_or(false).into();
                    ix.machines = ix.machines.max(e.a + 1);
                }
                Ev::Link => {
                    e.a = need(raw.from, "from")?;
                    e.b = need(raw.to, "to")?;
                    e.x = raw.up.unwrap_or(false).into();
                }
                Ev::Heal | Ev::Faults | Ev::StorageFaults => {
                    e.a = raw.machine.unwrap_or(NONE);
                }
            }
            if !ev.is_message() && !matches!(ev, Ev::Timer | Ev::WorkDone) {
                ix.faults.push(i);
            }
            ix.events.push(e);
        }
        // Nodes not spawned run one per machine unless told otherwise.
        ix.machines = ix
            .machines
            .max(ix.nodes.min(first_spawned))
            .max(spawn_machines);
        Ok(ix)
    }

    pub fn end(&self) -> f64 {
        self.events.last().map_or(0.0, |e| e.t)
    }

    /// The index of the first event at or after `t`.
    pub fn at(&self, t: f64) -> usize {
        self.events.partition_point(|e| e.t < t)
    }

    /// The index of the first event after `t`.
    pub fn after(&self, t: f64) -> usize {
        self.events.partition_point(|e| e.t <= t)
    }

    /// Messages sent at or before `t` and not yet delivered or dropped;
    /// at most `limit`, newest first.
    pub fn in_flight(&self, t: f64, limit: usize) -> Vec<u32> {
        let end = self.after(t);
        let start = self.at(t - self.max_flight - 1e-9);
        let mut out = Vec::new();
        for i in (start..end).rev() {
            let e = &self.events[i];
            if matches!(e.ev, Ev::Send | Ev::Duplicate)
                && (e.pair == NONE || self.events[e.pair as usize].t > t)
            {
                out.push(i as u32);
                if out.len() >= limit {
                    break;
                }
            }
        }
        out
    }

    /// Machine and link state just after the events at or before `t`.
    pub fn machines_at(&self, t: f64, machines: usize, node_machine: &[u32]) -> Value {
        let mut up = vec![true; machines];
        let mut isolated = vec![false; machines];
        let mut cut: Vec<(u32, u32)> = Vec::new();
        let mut stopped: Vec<u32> = Vec::new();
        for &i in &self.faults {
            let e = &self.events[i as usize];
            if e.t > t {
                break;
            }
            let m = e.a as usize;
            match e.ev {
                Ev::Crash if m < machines => up[m] = false,
                Ev::Restart if m < machines => {
                    up[m] = true;
                    stopped.retain(|&n| node_machine.get(n as usize) != Some(&e.a));
                }
                Ev::Isolate if m < machines => isolated[m] = e.x == 1,
                Ev::Link => {
                    let (a, b) = (e.a, e.b);
                    cut.retain(|&l| l != (a, b));
                    if e.x == 0 {
                        cut.push((a, b));
                    }
                }
                Ev::Heal if e.a == NONE => {
                    cut.clear();
                    isolated.iter_mut().for_each(|i| *i = false);
                }
                Ev::Heal if m < machines => {
                    isolated[m] = false;
                    cut.retain(|&(a, b)| a != e.a && b != e.a);
                }
                Ev::Exit | Ev::FailStop | Ev::KillNode => stopped.push(e.a),
                Ev::Start => stopped.retain(|&n| n != e.a),
                _ => {}
            }
        }
        json!({"up": up, "isolated": isolated, "cut": cut, "stopped": stopped})
    }

    /// One event as the page sees it, with its pair's time.
    pub fn describe(&self, i: usize) -> Value {
        let e = &self.events[i];
        let mut v = json!({"i": i, "t": e.t, "ev": e.ev.name()});
        let o = v.as_object_mut().expect("an object");
        let s = |k: u16| {
            self.strings
                .get(usize::from(k))
                .cloned()
                .unwrap_or_default()
        };
        if e.ev.is_message() {
            o.insert("from".into(), e.a.into());
            o.insert("to".into(), e.b.into());
            o.insert("kind".into(), s(e.kind).into());
            if e.ev == Ev::Drop {
                let r = self
                    .reasons
                    .get(usize::from(e.reason))
                    .cloned()
                    .unwrap_or_default();
                o.insert("reason".into(), r.into());
            }
            if e.pair != NONE {
                let p = &self.events[e.pair as usize];
                o.insert("pair".into(), e.pair.into());
                o.insert("pair_t".into(), p.t.into());
                o.insert("pair_ev".into(), p.ev.name().into());
                if p.ev == Ev::Drop {
                    let r = self.reasons.get(usize::from(p.reason)).cloned();
                    o.insert("pair_reason".into(), r.unwrap_or_default().into());
                }
            }
            return v;
        }
        match e.ev {
            Ev::Link => {
                o.insert("from".into(), e.a.into());
                o.insert("to".into(), e.b.into());
                o.insert("up".into(), (e.x == 1).into());
            }
            Ev::Crash | Ev::Restart => {
                o.insert("machine".into(), e.a.into());
            }
            Ev::Isolate => {
                o.insert("machine".into(), e.a.into());
                o.insert("on".into(), (e.x == 1).into());
            }
            Ev::Spawn => {
                o.insert("node".into(), e.a.into());
                o.insert("new".into(), e.b.into());
                o.insert("machine".into(), e.x.into());
            }
            Ev::Heal | Ev::Faults | Ev::StorageFaults => {
                let m = (e.a != NONE).then_some(e.a);
                o.insert("machine".into(), json!(m));
            }
            Ev::Timer => {
                o.insert("node".into(), e.a.into());
                o.insert("tag".into(), e.x.into());
            }
            _ => {
                o.insert("node".into(), e.a.into());
            }
        }
        v
    }

    /// Whether event `i` involves node `n` (as sender, receiver or subject).
    pub fn involves(&self, i: usize, n: u32) -> bool {
        let e = &self.events[i];
        match e.ev {
            Ev::Send | Ev::Duplicate => e.a == n,
            Ev::Deliver | Ev::Drop => e.b == n,
            Ev::Timer | Ev::Start | Ev::KillNode | Ev::Exit | Ev::FailStop | Ev::WorkDone => {
                e.a == n
            }
            Ev::Spawn => e.a == n || e.b == n,
            _ => false,
        }
    }

    /// Messages node `n` sent and received (by kind) before `t`.
    pub fn counters(&self, n: u32, t: f64) -> Value {
        let end = self.after(t);
        let mut sent: HashMap<u16, u64> = HashMap::new();
        let mut received: HashMap<u16, u64> = HashMap::new();
        let mut dropped = 0u64;
        let mut timers = 0u64;
        for e in &self.events[..end] {
            match e.ev {
                Ev::Send if e.a == n => *sent.entry(e.kind).or_default() += 1,
                Ev::Deliver if e.b == n => *received.entry(e.kind).or_default() += 1,
                Ev::Drop if e.b == n => dropped += 1,
                Ev::Timer if e.a == n => timers += 1,
                _ => {}
            }
        }
        let named = |m: HashMap<u16, u64>| {
            let mut v: Vec<_> = m
                .into_iter()
                .map(|(k, c)| (self.strings[k as usize].clone(), c))
                .collect();
            v.sort();
            serde_json::Map::from_iter(v.into_iter().map(|(k, c)| (k, Value::from(c))))
        };
        json!({"sent": named(sent), "received": named(received), "dropped_to": dropped, "timers": timers})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"{"t":0,"ev":"start","node":0}
{"t":0.001,"ev":"send","from":0,"to":1,"kind":"Ping"}
{"t":0.002,"ev":"send","from":0,"to":1,"kind":"Ping"}
{"t":0.011,"ev":"deliver","from":0,"to":1,"kind":"Ping"}
{"t":0.02,"ev":"crash","machine":1}
{"t":0.03,"ev":"drop","from":0,"to":1,"kind":"Ping","reason":"crashed"}
"#;

    #[test]
    fn sends_pair_with_their_delivery_and_drop() {
        let ix = TraceIndex::parse(TRACE.as_bytes()).unwrap();
        assert_eq!(ix.events.len(), 6);
        assert_eq!(ix.events[1].pair, 3);
        assert_eq!(ix.events[2].pair, 5);
        assert_eq!(ix.in_flight(0.005, 10), vec![2, 1]);
        assert_eq!(ix.in_flight(0.015, 10), vec![2]);
        assert!(ix.in_flight(0.04, 10).is_empty());
        let m = ix.machines_at(0.025, 2, &[0, 1]);
        assert_eq!(m["up"], json!([true, false]));
        assert_eq!(ix.describe(5)["reason"], "crashed");
    }

    /// With arrival times, a later send that arrives first pairs with the
    /// first delivery; contents are read back from the file.
    #[test]
    fn sends_pair_by_arrival_not_fifo() {
        let trace = r#"{"t":0.001,"ev":"send","from":0,"to":1,"kind":"Ping","arr":20000000,"msg":"Ping(1)"}
{"t":0.002,"ev":"send","from":0,"to":1,"kind":"Ping","arr":5000000,"msg":"Ping(\"2\")"}
{"t":0.005,"ev":"deliver","from":0,"to":1,"kind":"Ping"}
{"t":0.02,"ev":"deliver","from":0,"to":1,"kind":"Ping"}
"#;
        let ix = TraceIndex::parse(trace.as_bytes()).unwrap();
        assert_eq!(ix.events[1].pair, 2);
        assert_eq!(ix.events[0].pair, 3);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.jsonl");
        std::fs::write(&path, trace).unwrap();
        let c = Contents {
            path,
            lines: ix.msg_lines.clone(),
        };
        assert_eq!(c.get(0).as_deref(), Some("Ping(1)"));
        assert_eq!(c.get(1).as_deref(), Some("Ping(\"2\")"));
        assert_eq!(c.get(2), None);
    }

    #[test]
    fn corrupt_lines_are_named() {
        let err = TraceIndex::parse(b"{\"t\":0,\"ev\":\"start\",\"node\":0}\n{not json\n")
            .err()
            .unwrap();
        assert!(err.starts_with("line 2:"), "{err}");
        let err = TraceIndex::parse(b"{\"t\":1,\"ev\":\"bogus\"}\n")
            .err()
            .unwrap();
        assert!(err.contains("unknown event"), "{err}");
        let err = TraceIndex::parse(b"{\"t\":1,\"ev\":\"heal\"}\n{\"t\":0.5,\"ev\":\"heal\"}\n")
            .err()
            .unwrap();
        assert!(err.contains("backwards"), "{err}");
    }
}
