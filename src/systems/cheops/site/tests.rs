use super::super::doc::Status;
use super::super::msg::View;
use super::*;
use crate::node::testing::Step;
use crate::node::{Stop, StorageFaults};
use crate::rng::stream;

fn site() -> Site {
    let sites = [("a", 0), ("b", 1)]
        .iter()
        .map(|(s, n)| (s.to_string(), NodeId(*n)))
        .collect();
    Site::new("a".into(), sites, Duration::from_millis(100))
}

fn exec(id: &str, command: &str) -> CheopsMsg {
    CheopsMsg::Exec(ExecRequest {
        resource: "r".into(),
        sites: vec!["a".into(), "b".into()],
        kind: "set".into(),
        command: command.into(),
        config: String::new(),
        files: Vec::new(),
        request_id: id.into(),
        backend: String::new(),
    })
}

struct One(Site);
impl crate::node::Node for One {
    type Msg = CheopsMsg;
    fn on_start(&mut self, ctx: &mut Ctx<'_, CheopsMsg>) {
        self.0.start(ctx)
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, CheopsMsg>, from: NodeId, msg: CheopsMsg) {
        self.0.on_message(ctx, from, msg)
    }
    fn on_work_done(
        &mut self,
        ctx: &mut Ctx<'_, CheopsMsg>,
        work: WorkId,
        output: Box<dyn std::any::Any + Send>,
    ) {
        self.0.work_done(ctx, work, output)
    }
}

#[test]
fn an_operation_is_durable_before_it_is_acknowledged() {
    let mut step = Step::new(NodeId(0), One(site()));
    step.start();
    let fx = step.message(NodeId(9), exec("x", "SET r 1"));
    let ack = fx.sends.iter().find(|(to, _)| *to == NodeId(9));
    assert!(matches!(
        ack,
        Some((_, CheopsMsg::ExecAck { result: Ok(()), .. }))
    ));
    // Replicated to b, and run asynchronously.
    assert!(fx.sends.iter().any(|(to, _)| *to == NodeId(1)));
    assert_eq!(fx.work.len(), 1);
    // A crash keeps it: a new site on the same storage has it.
    let mut storage = std::mem::take(&mut step.storage);
    storage.crash(&mut stream(1, "crash", 0));
    let mut again = Step::new(NodeId(0), One(site()));
    again.storage = storage;
    let fx = again.start();
    assert_eq!(fx.work.len(), 1, "the un-run operation runs after restart");
    let doc = again.node.0.resources()["r"].doc.clone().unwrap();
    assert_eq!(doc.ops[0].request_id, "x");
    // A retry is acknowledged again but not taken twice.
    again.message(NodeId(9), exec("x", "SET r 1"));
    assert_eq!(
        again.node.0.resources()["r"]
            .doc
            .as_ref()
            .unwrap()
            .ops
            .len(),
        1
    );
}

#[test]
fn a_failed_sync_stops_the_site_before_it_acknowledges() {
    let mut step = Step::new(NodeId(0), One(site()));
    step.start();
    let faults = StorageFaults {
        sync_error: 1.0,
        ..Default::default()
    };
    step.storage.set_faults(&faults, stream(1, "disk", 0));
    let fx = step.message(NodeId(9), exec("x", "SET r 1"));
    assert!(fx.sends.is_empty());
    assert!(matches!(fx.stop, Some(Stop::Failed(_))));
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    let mut step = Step::new(NodeId(0), One(site()));
    step.start();
    let mut bad = |f: &dyn Fn(&mut ExecRequest)| {
        let CheopsMsg::Exec(mut r) = exec("y", "SET r 1") else {
            unreachable!()
        };
        f(&mut r);
        let fx = step.message(NodeId(9), CheopsMsg::Exec(r));
        match &fx.sends[..] {
            [(_, CheopsMsg::ExecAck { result: Err(e), .. })] => e.clone(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(bad(&|r| r.kind.clear()), "missing type");
    assert_eq!(bad(&|r| r.sites.clear()), "empty site list");
    assert_eq!(
        bad(&|r| r.sites = vec!["b".into()]),
        "Site is not in locations"
    );
    assert!(bad(&|r| r.sites.push("zz".into())).contains("unknown site"));
    assert!(bad(&|r| r.config = "{".into()).starts_with("malformed config"));
}

/// Runs the work a handler started and hands its output back.
fn finish(step: &mut Step<One>, fx: crate::node::Effects<CheopsMsg>) -> Vec<(NodeId, CheopsMsg)> {
    let mut sends = fx.sends;
    for (id, w) in fx.work {
        sends.extend(step.work_done(id, w.run()).sends);
    }
    sends
}

#[test]
fn a_watcher_gets_the_resource_now_and_after_each_change() {
    let mut step = Step::new(NodeId(0), One(site()));
    step.start();
    let watcher = NodeId(0x8000_0001);
    let watch = CheopsMsg::Watch {
        resource: "r".into(),
    };
    let fx = step.message(watcher, watch.clone());
    match &fx.sends[..] {
        [(to, CheopsMsg::Update(v))] => assert!(*to == watcher && v.doc.is_none()),
        other => panic!("{other:?}"),
    }
    let fx = step.message(NodeId(9), exec("x", "SET r 1"));
    let updates = |sends: &[(NodeId, CheopsMsg)]| -> Vec<View> {
        sends
            .iter()
            .filter_map(|(to, m)| match m {
                CheopsMsg::Update(v) if *to == watcher => Some(v.clone()),
                _ => None,
            })
            .collect()
    };
    let taken = updates(&fx.sends);
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].doc.as_ref().unwrap().ops.len(), 1);
    // The run's reply reaches the watcher too.
    // (`finish` returns the taking handler's sends too.)
    let ran = updates(&finish(&mut step, fx));
    assert_eq!(ran.len(), 2);
    assert_eq!(ran[1].replies.len(), 1);
    assert_eq!(ran[1].replies[0].status, Status::Ok);
    // The lease ends unless renewed.
    step.advance(api::WATCH_LEASE + Duration::from_secs(1));
    step.timer(crate::node::TimerId(0), ANTI_ENTROPY);
    let fx = step.message(NodeId(9), exec("y", "SET r 2"));
    assert!(updates(&fx.sends).is_empty());
}

#[test]
fn show_runs_here_and_is_relayed_to_the_other_sites() {
    let mut step = Step::new(NodeId(0), One(site()));
    step.start();
    let fx = step.message(NodeId(9), exec("x", "SET r 7"));
    finish(&mut step, fx);
    let asker = NodeId(0x8000_0002);
    let fx = step.message(
        asker,
        CheopsMsg::Show {
            ask: 5,
            resource: "r".into(),
            command: "GET __ID__".into(),
            sites: vec!["a".into(), "b".into()],
        },
    );
    // b is asked for its own answer under the site's ask.
    let relayed = fx.sends.iter().find_map(|(to, m)| match m {
        CheopsMsg::Show { ask, sites, .. } if *to == NodeId(1) && sites.is_empty() => Some(*ask),
        _ => None,
    });
    let relayed = relayed.expect("relayed to b");
    // a answers itself, on a copy of its keyspace.
    let here = finish(&mut step, fx);
    assert!(here.iter().any(|(to, m)| *to == asker
        && *m
            == CheopsMsg::ShowReply {
                ask: 5,
                site: "a".into(),
                ok: true,
                output: "7".into()
            }));
    let back = CheopsMsg::ShowReply {
        ask: relayed,
        site: "b".into(),
        ok: true,
        output: "7".into(),
    };
    let fx = step.message(NodeId(1), back);
    assert!(matches!(
        &fx.sends[..],
        [(to, CheopsMsg::ShowReply { ask: 5, site, .. })] if *to == asker && site == "b"
    ));
}

#[test]
fn the_shell_backend_is_refused_in_simulation_and_where_it_is_off() {
    let mut step = Step::new(NodeId(0), One(site().with_shell(true, String::new())));
    step.start();
    let CheopsMsg::Exec(mut r) = exec("x", "echo hi") else {
        unreachable!()
    };
    r.backend = "shell".into();
    let fx = step.message(NodeId(9), CheopsMsg::Exec(r.clone()));
    match &fx.sends[..] {
        [(_, CheopsMsg::ExecAck { result: Err(e), .. })] => {
            assert!(e.contains("not in simulation"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // Without the flag, the reason names it (checked before the mode).
    let off = Site::new("a".into(), BTreeMap::new(), Duration::from_millis(100));
    assert!(
        off.shell_refused(crate::node::Mode::Local)
            .unwrap()
            .contains("--allow-shell")
    );
    // Unset, a simulated site takes kv.
    r.backend.clear();
    r.command = "SET r 1".into();
    let fx = step.message(NodeId(9), CheopsMsg::Exec(r));
    assert!(matches!(
        &fx.sends.last(),
        Some((_, CheopsMsg::ExecAck { result: Ok(()), .. }))
    ));
    assert_eq!(
        step.node.0.resources()["r"].doc.as_ref().unwrap().backend,
        Backend::Kv
    );
}
