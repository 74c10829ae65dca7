//! The simulator's node lifecycles: spawned nodes, work handed to the
//! runtime, records, fail-stop on storage errors, exit, and the guard
//! against a run that spins without time passing.

use std::any::Any;
use std::time::Duration;

use distzero::net::{ClockSkew, DropReason, Latency};
use distzero::node::{
    CodecError, Ctx, MachineId, Message, Node, NodeId, Placement, Storage, StorageFaults, TimerId,
    Work, WorkId, decode_postcard, encode_postcard,
};
use distzero::sim::{SimConfig, Simulation};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Msg {
    Hello(u32),
    Loop,
    Ack,
}

impl Message for Msg {
    fn kinds() -> &'static [&'static str] {
        &["Hello", "Loop", "Ack"]
    }
    fn kind(&self) -> usize {
        match self {
            Msg::Hello(_) => 0,
            Msg::Loop => 1,
            Msg::Ack => 2,
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out);
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("msg", bytes)
    }
}

/// Squares a number, slowly.
struct Square(u64);

impl Work for Square {
    fn name(&self) -> &'static str {
        "square"
    }
    fn run(self: Box<Self>) -> Box<dyn Any + Send> {
        Box::new(self.0 * self.0)
    }
    fn simulated_duration(&self) -> Duration {
        Duration::from_millis(5)
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Seen {
    node: u32,
    what: String,
}

#[derive(Default)]
struct Tester {
    /// Role: 0 parent, 1 child, 2 spinner, 3 worker, 4 durable acker,
    /// 5 pinger of node 0.
    role: u8,
    children: Vec<NodeId>,
    heard: Vec<u32>,
    work_results: Vec<(WorkId, u64, Duration)>,
}

impl Node for Tester {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.record(&Seen {
            node: ctx.me().0,
            what: "start".into(),
        });
        match self.role {
            0 => {
                for _ in 0..3 {
                    let id = ctx
                        .spawn("child", serde_json::json!({}), Placement::LeastLoaded)
                        .unwrap();
                    self.children.push(id);
                    // Too early: the child does not run yet.
                    ctx.send(id, Msg::Hello(0));
                }
                ctx.set_timer(Duration::from_millis(50), 0);
            }
            2 => ctx.send(ctx.me(), Msg::Loop),
            3 => {
                ctx.start_work(Square(7));
                ctx.start_work(Square(9));
            }
            5 => {
                ctx.set_timer(Duration::from_millis(10), 0);
            }
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Hello(n) => {
                self.heard.push(n);
                if self.role == 4 {
                    let _ = ctx.storage().append("log", &[n as u8]);
                    let _ = ctx.storage().sync("log");
                }
                ctx.send(from, Msg::Ack);
                if n == 9 {
                    ctx.exit();
                }
            }
            Msg::Loop => ctx.send(ctx.me(), Msg::Loop),
            Msg::Ack => self.heard.push(from.0),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _: TimerId, _: u64) {
        if self.role == 5 {
            ctx.send(NodeId(0), Msg::Hello(self.heard.len() as u32 + 1));
            ctx.set_timer(Duration::from_millis(10), 0);
            return;
        }
        for (i, &c) in self.children.iter().enumerate() {
            ctx.send(c, Msg::Hello(i as u32 + 1));
        }
        ctx.send(self.children[0], Msg::Hello(9));
    }

    fn on_work_done(&mut self, ctx: &mut Ctx<'_, Msg>, id: WorkId, out: Box<dyn Any + Send>) {
        let v = *out.downcast::<u64>().expect("a square");
        self.work_results.push((id, v, ctx.now()));
    }
}

fn sim(seed: u64, machines: u32) -> Simulation<Tester> {
    let mut cfg = SimConfig::new(seed);
    cfg.default_latency = Some(Latency::Constant { ms: 1.0 });
    let mut sim = Simulation::new(cfg);
    for _ in 0..machines {
        sim.add_machine(ClockSkew::default());
    }
    sim.set_spawner(Box::new(|_, role, _| {
        assert_eq!(role, "child");
        Ok(Box::new(|| Tester {
            role: 1,
            ..Default::default()
        }))
    }));
    sim
}

#[test]
fn simulated_spawned_nodes_start_late_spread_out_and_exit() {
    let mut s = sim(1, 3);
    let parent = s.add_node(MachineId(0), Tester::default);
    s.run_until(Duration::from_millis(200));
    let p = s.node(parent).unwrap();
    assert_eq!(
        p.children,
        vec![NodeId(1), NodeId(2), NodeId(3)],
        "dense ids, at once"
    );
    // Least loaded: machine 0 holds the parent, so the children go to 1, 2, then 0.
    let machines: Vec<u32> = p.children.iter().map(|&c| s.machine_of(c).0).collect();
    assert_eq!(machines, vec![1, 2, 0]);
    assert_eq!(
        s.stats().dropped(DropReason::NoSuchNode),
        3,
        "hellos sent before the children started are dropped"
    );
    // Children answered the later hellos; the first child exited on Hello(9).
    assert_eq!(s.node(NodeId(2)).unwrap().heard, vec![2]);
    assert!(s.node(NodeId(1)).is_none(), "the first child exited");
    assert_eq!(
        s.machine_load(MachineId(1)),
        0,
        "its machine holds nothing now"
    );
    let starts: Vec<u32> = s
        .records()
        .iter()
        .map(|r| r.decode::<Seen>().unwrap().node)
        .collect();
    assert_eq!(starts, vec![0, 1, 2, 3], "each node recorded its start");
    assert_eq!(
        s.records()[1].at_ns,
        10_000_000,
        "children start after the spawn delay"
    );
    // Deterministic.
    let mut again = sim(1, 3);
    again.add_node(MachineId(0), Tester::default);
    again.run_until(Duration::from_millis(200));
    assert_eq!(s.trace_hash(), again.trace_hash());
}

#[test]
fn simulated_work_completes_after_its_duration_and_not_after_a_crash() {
    let mut s = sim(2, 1);
    let w = s.add_node(MachineId(0), || Tester {
        role: 3,
        ..Default::default()
    });
    s.run_until(Duration::from_millis(20));
    let got: Vec<(u64, Duration)> = s
        .node(w)
        .unwrap()
        .work_results
        .iter()
        .map(|&(_, v, t)| (v, t))
        .collect();
    assert_eq!(
        got,
        vec![
            (49, Duration::from_millis(5)),
            (81, Duration::from_millis(5))
        ]
    );
    // Crash before the work of the next start finishes: it is dropped.
    s.crash(MachineId(0));
    s.restart(MachineId(0));
    s.run_for(Duration::from_millis(2));
    s.crash(MachineId(0));
    s.restart(MachineId(0));
    s.run_for(Duration::from_millis(20));
    assert_eq!(
        s.node(w).unwrap().work_results.len(),
        2,
        "only this start's work"
    );
}

#[test]
fn simulated_storage_failure_stops_the_node_and_restart_brings_it_back() {
    let mut s = sim(3, 2);
    let acker = s.add_node(MachineId(0), || Tester {
        role: 4,
        ..Default::default()
    });
    let pinger = s.add_node(MachineId(1), || Tester {
        role: 5,
        ..Default::default()
    });
    s.run_until(Duration::from_millis(25));
    assert_eq!(s.node(pinger).unwrap().heard, vec![0, 0], "two acks");
    assert_eq!(s.storage(acker).read("log"), Some(&[1, 2][..]));
    // The acker's disk starts refusing syncs.
    s.set_storage_faults(
        Some(MachineId(0)),
        &StorageFaults {
            sync_error: 1.0,
            ..Default::default()
        },
    )
    .unwrap();
    s.run_until(Duration::from_millis(55));
    assert_eq!(s.failures().len(), 1, "{:?}", s.failures());
    assert_eq!(s.failures()[0].node, acker);
    assert!(s.failures()[0].why.contains("sync"), "{:?}", s.failures());
    assert!(s.node(acker).is_none(), "the acker stopped");
    assert_eq!(
        s.node(pinger).unwrap().heard,
        vec![0, 0],
        "no ack left after the failed sync"
    );
    // What it synced survives; the unsynced append may or may not (a torn
    // write), as after a crash.
    let log = s.storage(acker).read("log").unwrap();
    assert!(log == [1, 2] || log == [1, 2, 3], "{log:?}");
    // Restarting the (running) machine restarts the stopped node.
    s.set_storage_faults(Some(MachineId(0)), &StorageFaults::default())
        .unwrap();
    s.restart(MachineId(0));
    s.run_for(Duration::from_millis(25));
    assert!(s.node(acker).is_some(), "restarted");
    assert!(s.node(pinger).unwrap().heard.len() > 2, "acks again");
}

#[test]
fn simulated_a_spinning_node_halts_the_run_naming_it() {
    let mut cfg = SimConfig::new(4);
    cfg.max_events_per_instant = 100_000;
    let mut s = Simulation::new(cfg);
    let m = s.add_machine(ClockSkew::default());
    s.add_node(m, || Tester {
        role: 2,
        ..Default::default()
    });
    s.run_until(Duration::from_secs(1));
    let why = s.halted().expect("halted");
    assert!(why.contains("spins"), "{why}");
    assert!(why.contains("Loop message from node 0 to node 0"), "{why}");
    let events = s.stats().events;
    s.run_until(Duration::from_secs(2));
    assert_eq!(s.stats().events, events, "nothing runs after a halt");
}
