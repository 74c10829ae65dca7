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
