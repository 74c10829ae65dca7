//! The simulation trace: every send, delivery, drop, timer and machine event
//! folds into a running hash (same seed → same hash, on any machine) and, on
//! request, is written as one JSON line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::net::DropReason;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    Send {
        from: u32,
        to: u32,
        kind: u16,
    },
    Deliver {
        from: u32,
        to: u32,
        kind: u16,
    },
    Drop {
        from: u32,
        to: u32,
        kind: u16,
        reason: DropReason,
    },
    Duplicate {
        from: u32,
        to: u32,
        kind: u16,
    },
    Timer {
        node: u32,
        tag: u64,
    },
    Start {
        node: u32,
    },
    Crash {
        machine: u32,
    },
    Restart {
        machine: u32,
    },
    Link {
        from: u32,
        to: u32,
        up: bool,
    },
    Isolate {
        machine: u32,
        on: bool,
    },
    Heal,
    Faults {
        machine: Option<u32>,
    },
    KillNode {
        node: u32,
    },
    /// Node `node` asked for node `new` on `machine`.
    Spawn {
        node: u32,
        new: u32,
        machine: u32,
    },
    /// The node stopped for good, by its own choice.
    Exit {
        node: u32,
    },
    /// The node stopped because its storage failed (or it could not read
    /// its durable state).
    FailStop {
        node: u32,
    },
    WorkDone {
        node: u32,
    },
    StorageFaults {
        machine: Option<u32>,
    },
}

impl TraceEvent {
    /// The words hashed for this event: a code with the kind and reason,
    /// and up to two fields.
    #[inline(always)]
    fn words(&self) -> [u64; 3] {
        use TraceEvent::*;
        let w = |a: u32, b: u32| (u64::from(a) << 32) | u64::from(b);
        let code = |c: u64, kind: u16, extra: u64| c | (u64::from(kind) << 8) | (extra << 24);
        match *self {
            Send { from, to, kind } => [code(1, kind, 0), w(from, to), 0],
            Deliver { from, to, kind } => [code(2, kind, 0), w(from, to), 0],
            Drop {
                from,
                to,
                kind,
                reason,
            } => [code(3, kind, reason as u64), w(from, to), 0],
            Duplicate { from, to, kind } => [code(4, kind, 0), w(from, to), 0],
            Timer { node, tag } => [5, node.into(), tag],
            Start { node } => [6, node.into(), 0],
            Crash { machine } => [7, machine.into(), 0],
            Restart { machine } => [8, machine.into(), 0],
            Link { from, to, up } => [code(9, 0, up.into()), w(from, to), 0],
            Isolate { machine, on } => [code(10, 0, on.into()), machine.into(), 0],
            Heal => [11, 0, 0],
            Faults { machine } => [12, machine.map_or(u64::MAX, u64::from), 0],
            KillNode { node } => [13, node.into(), 0],
            Spawn { node, new, machine } => [14, w(node, new), machine.into()],
            Exit { node } => [15, node.into(), 0],
            FailStop { node } => [16, node.into(), 0],
            WorkDone { node } => [17, node.into(), 0],
            StorageFaults { machine } => [18, machine.map_or(u64::MAX, u64::from), 0],
        }
    }
}

pub struct Trace {
    hash: u64,
    kinds: &'static [&'static str],
    out: Option<BufWriter<File>>,
    error: Option<std::io::Error>,
    /// Also write each message's contents (its `Debug` form) on its send.
    contents: bool,
}

/// Longest message contents written, in bytes; the rest is cut.
const CONTENTS_MAX: usize = 2000;

const MUL: u64 = 0x517c_c1b7_2722_0a95;
const MUL_B: u64 = 0x9e37_79b9_7f4a_7c15;
const START: u64 = 0xcbf2_9ce4_8422_2325;

impl Trace {
    pub fn new(kinds: &'static [&'static str]) -> Self {
        Trace {
            hash: START,
            kinds,
            out: None,
            error: None,
            contents: false,
        }
    }

    /// Written sends (and duplicates) also carry the message's contents.
    pub fn with_contents(&mut self, on: bool) {
        self.contents = on;
    }

    /// Also writes every event to `path` as JSON lines.
    pub fn write_to(&mut self, path: &Path) -> Result<()> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        self.out = Some(BufWriter::with_capacity(1 << 16, f));
        Ok(())
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    #[inline(always)]
    pub fn record(&mut self, time_ns: u64, ev: TraceEvent) {
        self.fold(time_ns, ev);
        if self.out.is_some() {
            self.write_line(time_ns, ev);
        }
    }

    /// Folds the event into the hash.
    #[inline(always)]
    fn fold(&mut self, time_ns: u64, ev: TraceEvent) {
        let [a, b, c] = ev.words();
        // The words mix independently; only one multiply is on the chain
        // from one event's hash to the next.
        let m = (time_ns ^ a.rotate_left(29)).wrapping_mul(MUL)
            ^ b.wrapping_mul(MUL_B)
            ^ c.rotate_left(43);
        self.hash = (self.hash.rotate_left(5) ^ m).wrapping_mul(MUL);
    }

    /// A send or duplicate: hashed like [`Trace::record`]; a written line
    /// also says when it arrives (`arr`, ns; none if dropped at once), and
    /// with contents on, what it holds.
    #[inline(always)]
    pub fn record_msg<M: std::fmt::Debug>(
        &mut self,
        time_ns: u64,
        ev: TraceEvent,
        arrive: Option<u64>,
        msg: &M,
    ) {
        if self.out.is_some() {
            return self.write_msg(time_ns, ev, arrive, msg);
        }
        self.fold(time_ns, ev);
    }

    #[cold]
    fn write_msg(
        &mut self,
        time_ns: u64,
        ev: TraceEvent,
        arrive: Option<u64>,
        msg: &dyn std::fmt::Debug,
    ) {
        self.fold(time_ns, ev);
        let t = time_ns as f64 / 1e9;
        let (name, from, to, k) = match ev {
            TraceEvent::Send { from, to, kind } => ("send", from, to, kind),
            TraceEvent::Duplicate { from, to, kind } => ("duplicate", from, to, kind),
            other => return self.write_line(time_ns, other),
        };
        let kind = self.kinds.get(usize::from(k)).copied().unwrap_or("?");
        let mut line =
            format!(r#"{{"t":{t},"ev":"{name}","from":{from},"to":{to},"kind":"{kind}""#);
        if let Some(a) = arrive {
            line.push_str(&format!(r#","arr":{a}"#));
        }
        if self.contents {
            let mut text = format!("{msg:?}");
            if text.len() > CONTENTS_MAX {
                let mut cut = CONTENTS_MAX;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push('…');
            }
            let json = serde_json::to_string(&text).unwrap_or_default();
            line.push_str(&format!(r#","msg":{json}"#));
        }
        line.push('}');
        let Some(out) = self.out.as_mut() else { return };
        if let Err(e) = writeln!(out, "{line}") {
            self.error.get_or_insert(e);
            self.out = None;
        }
    }

    #[cold]
    fn write_line(&mut self, time_ns: u64, ev: TraceEvent) {
        let Some(out) = self.out.as_mut() else { return };
        let t = time_ns as f64 / 1e9;
        let kind = |k: u16| self.kinds.get(usize::from(k)).copied().unwrap_or("?");
        use TraceEvent::*;
        let res = match ev {
            Send { from, to, kind: k } => writeln!(
                out,
                r#"{{"t":{t},"ev":"send","from":{from},"to":{to},"kind":"{}"}}"#,
                kind(k)
            ),
            Deliver { from, to, kind: k } => {
                writeln!(
                    out,
                    r#"{{"t":{t},"ev":"deliver","from":{from},"to":{to},"kind":"{}"}}"#,
                    kind(k)
                )
            }
            Drop {
                from,
                to,
                kind: k,
                reason,
            } => writeln!(
                out,
                r#"{{"t":{t},"ev":"drop","from":{from},"to":{to},"kind":"{}","reason":"{}"}}"#,
                kind(k),
                reason.as_str()
            ),
            Duplicate { from, to, kind: k } => {
                writeln!(
                    out,
                    r#"{{"t":{t},"ev":"duplicate","from":{from},"to":{to},"kind":"{}"}}"#,
                    kind(k)
                )
            }
            Timer { node, tag } => {
                writeln!(out, r#"{{"t":{t},"ev":"timer","node":{node},"tag":{tag}}}"#)
            }
            Start { node } => writeln!(out, r#"{{"t":{t},"ev":"start","node":{node}}}"#),
            Crash { machine } => writeln!(out, r#"{{"t":{t},"ev":"crash","machine":{machine}}}"#),
            Restart { machine } => {
                writeln!(out, r#"{{"t":{t},"ev":"restart","machine":{machine}}}"#)
            }
            Link { from, to, up } => writeln!(
                out,
                r#"{{"t":{t},"ev":"link","from":{from},"to":{to},"up":{up}}}"#
            ),
            Isolate { machine, on } => writeln!(
                out,
                r#"{{"t":{t},"ev":"isolate","machine":{machine},"on":{on}}}"#
            ),
            Heal => writeln!(out, r#"{{"t":{t},"ev":"heal"}}"#),
            Faults { machine: Some(m) } => {
                writeln!(out, r#"{{"t":{t},"ev":"faults","machine":{m}}}"#)
            }
            Faults { machine: None } => {
                writeln!(out, r#"{{"t":{t},"ev":"faults","machine":null}}"#)
            }
            KillNode { node } => writeln!(out, r#"{{"t":{t},"ev":"kill_node","node":{node}}}"#),
            Spawn { node, new, machine } => writeln!(
                out,
                r#"{{"t":{t},"ev":"spawn","node":{node},"new":{new},"machine":{machine}}}"#
            ),
            Exit { node } => writeln!(out, r#"{{"t":{t},"ev":"exit","node":{node}}}"#),
            FailStop { node } => writeln!(out, r#"{{"t":{t},"ev":"fail_stop","node":{node}}}"#),
            WorkDone { node } => writeln!(out, r#"{{"t":{t},"ev":"work_done","node":{node}}}"#),
            StorageFaults { machine: Some(m) } => {
                writeln!(out, r#"{{"t":{t},"ev":"storage_faults","machine":{m}}}"#)
            }
            StorageFaults { machine: None } => {
                writeln!(out, r#"{{"t":{t},"ev":"storage_faults","machine":null}}"#)
            }
        };
        if let Err(e) = res {
            self.error.get_or_insert(e);
            self.out = None;
        }
    }

    /// Flushes the trace file; reports the first write error, if any.
    pub fn finish(&mut self) -> std::io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}
