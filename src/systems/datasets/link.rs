//! Reliable links over a lossy network, as DistZero's linker had them: each
//! directed pair of nodes numbers its messages; the receiver delivers them
//! once and in order (dropping duplicates, holding early ones) and
//! acknowledges in batches; the sender retransmits what stays
//! unacknowledged. Timers run only while there is something to do, so an
//! idle node costs nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::msg::{Body, DsMsg};
use crate::node::{Ctx, NodeId};

/// Timer tags the link owns.
pub const TIMER_RETRANSMIT: u64 = 1;
pub const TIMER_ACK: u64 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    /// A message unacknowledged this long is sent again (DistZero: 2000).
    pub retransmit_ms: u64,
    /// Acknowledgements wait this long to batch (DistZero: 50).
    pub ack_ms: u64,
    /// A message sent this many times without an ack is given up (its
    /// receiver is gone for good); counted as `link_gave_up`.
    pub max_tries: u32,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            retransmit_ms: 2000,
            ack_ms: 50,
            max_tries: 30,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Pending {
    body: Body,
    sent_at: Duration,
    tries: u32,
}

#[derive(Default, Serialize, Deserialize)]
struct Outgoing {
    next_seq: u64,
    unacked: BTreeMap<u64, Pending>,
}

#[derive(Default, Serialize, Deserialize)]
struct Incoming {
    next: u64,
    early: BTreeMap<u64, Body>,
}

/// Counters of one node's links (DistZero's per-node stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    pub sent_messages: u64,
    pub acknowledged_messages: u64,
    pub n_retransmissions: u64,
    pub n_duplicates: u64,
    pub n_reorders: u64,
    pub gave_up: u64,
}

/// Saved with its node, but for the timer flags.
#[derive(Serialize, Deserialize)]
pub struct Link {
    cfg: LinkConfig,
    out: BTreeMap<NodeId, Outgoing>,
    inc: BTreeMap<NodeId, Incoming>,
    acks_owed: BTreeSet<NodeId>,
    #[serde(skip)]
    retransmit_armed: bool,
    #[serde(skip)]
    ack_armed: bool,
    pub stats: LinkStats,
}

impl Link {
    pub fn new(cfg: LinkConfig) -> Self {
        Link {
            cfg,
            out: BTreeMap::new(),
            inc: BTreeMap::new(),
            acks_owed: BTreeSet::new(),
            retransmit_armed: false,
            ack_armed: false,
            stats: LinkStats::default(),
        }
    }

    pub fn config(&self) -> LinkConfig {
        self.cfg
    }

    /// After a restart from saved state: whatever is unacknowledged goes
    /// again at once (send times of the last run mean nothing now) and owed
    /// acknowledgements are sent.
    pub fn resume(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        let mut pending = false;
        for p in self.out.values_mut().flat_map(|o| o.unacked.values_mut()) {
            p.sent_at = Duration::ZERO;
            pending = true;
        }
        self.retransmit_armed = pending;
        if pending {
            ctx.set_timer(Duration::from_millis(1), TIMER_RETRANSMIT);
        }
        self.ack_armed = !self.acks_owed.is_empty();
        if self.ack_armed {
            ctx.set_timer(Duration::from_millis(self.cfg.ack_ms), TIMER_ACK);
        }
    }

    fn retransmit_after(&self) -> Duration {
        Duration::from_millis(self.cfg.retransmit_ms.max(1))
    }

    /// Sends `body` to `to`, again and again until acknowledged.
    pub fn send(&mut self, ctx: &mut Ctx<'_, DsMsg>, to: NodeId, body: Body) {
        let out = self.out.entry(to).or_default();
        let seq = out.next_seq;
        out.next_seq += 1;
        out.unacked.insert(
            seq,
            Pending {
                body: body.clone(),
                sent_at: ctx.now(),
                tries: 1,
            },
        );
        self.stats.sent_messages += 1;
        ctx.send(to, DsMsg::Data { seq, body });
        if !self.retransmit_armed {
            self.retransmit_armed = true;
            ctx.set_timer(self.retransmit_after(), TIMER_RETRANSMIT);
        }
    }

    /// A numbered message from `from`: what can now be delivered, in order
    /// (nothing for a duplicate, nothing yet for an early one).
    pub fn receive(
        &mut self,
        ctx: &mut Ctx<'_, DsMsg>,
        from: NodeId,
        seq: u64,
        body: Body,
    ) -> Vec<Body> {
        let inc = self.inc.entry(from).or_default();
        let mut ready = Vec::new();
        if seq < inc.next || inc.early.contains_key(&seq) {
            self.stats.n_duplicates += 1;
        } else if seq > inc.next {
            self.stats.n_reorders += 1;
            inc.early.insert(seq, body);
        } else {
            ready.push(body);
            inc.next += 1;
            while let Some(b) = inc.early.remove(&inc.next) {
                ready.push(b);
                inc.next += 1;
            }
        }
        // A duplicate is acknowledged too: the sender missed the last ack.
        self.acks_owed.insert(from);
        if !self.ack_armed {
            self.ack_armed = true;
            ctx.set_timer(Duration::from_millis(self.cfg.ack_ms), TIMER_ACK);
        }
        ready
    }

    /// A message off the wire: an acknowledgement is taken in (nothing to
    /// deliver); numbered data is delivered as [`Link::receive`] does.
    pub fn accept(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, msg: DsMsg) -> Vec<Body> {
        match msg {
            DsMsg::Ack { next } => {
                self.on_ack(from, next);
                Vec::new()
            }
            DsMsg::Data { seq, body } => self.receive(ctx, from, seq, body),
        }
    }

    pub fn on_ack(&mut self, from: NodeId, next: u64) {
        if let Some(out) = self.out.get_mut(&from) {
            let before = out.unacked.len();
            out.unacked = out.unacked.split_off(&next);
            self.stats.acknowledged_messages += (before - out.unacked.len()) as u64;
        }
    }

    /// Handles the link's own timers; false for a tag it does not own.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, DsMsg>, tag: u64) -> bool {
        match tag {
            TIMER_ACK => {
                self.ack_armed = false;
                for to in std::mem::take(&mut self.acks_owed) {
                    if let Some(inc) = self.inc.get(&to) {
                        ctx.send(to, DsMsg::Ack { next: inc.next });
                    }
                }
                true
            }
            TIMER_RETRANSMIT => {
                self.retransmit_armed = false;
                self.retransmit(ctx);
                true
            }
            _ => false,
        }
    }

    fn retransmit(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
        let now = ctx.now();
        let after = self.retransmit_after();
        let mut oldest: Option<Duration> = None;
        for (&to, out) in &mut self.out {
            let mut gave_up = Vec::new();
            for (&seq, p) in &mut out.unacked {
                if p.sent_at + after <= now {
                    if p.tries >= self.cfg.max_tries {
                        gave_up.push(seq);
                        continue;
                    }
                    p.tries += 1;
                    p.sent_at = now;
                    self.stats.n_retransmissions += 1;
                    ctx.send(
                        to,
                        DsMsg::Data {
                            seq,
                            body: p.body.clone(),
                        },
                    );
                }
                oldest = Some(oldest.map_or(p.sent_at, |o| o.min(p.sent_at)));
            }
            for seq in gave_up {
                out.unacked.remove(&seq);
                self.stats.gave_up += 1;
                ctx.count("link_gave_up", 1);
            }
        }
        if let Some(oldest) = oldest {
            self.retransmit_armed = true;
            let wait = (oldest + after)
                .saturating_sub(now)
                .max(Duration::from_millis(1));
            ctx.set_timer(wait, TIMER_RETRANSMIT);
        }
    }

    /// Takes back what `to` has not acknowledged (a kid leaving an old
    /// parent re-sends some of it to the new one). Each message still goes
    /// as `Cancelled`, so later messages to `to` are not held behind a gap.
    pub fn forget(&mut self, to: NodeId) -> Vec<Body> {
        match self.out.get_mut(&to) {
            Some(out) => out
                .unacked
                .values_mut()
                .map(|p| std::mem::replace(&mut p.body, Body::Cancelled))
                .filter(|b| *b != Body::Cancelled)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Everything sent was acknowledged (or given up).
    pub fn drained(&self) -> bool {
        self.out.values().all(|o| o.unacked.is_empty())
    }

    /// Messages sent and not yet acknowledged.
    pub fn unacked(&self) -> usize {
        self.out.values().map(|o| o.unacked.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::testing::Step;
    use crate::node::{Node, TimerCmd, TimerId};

    /// A node that is nothing but a link, to step by hand.
    struct Bare(Link, Vec<Body>);

    impl Node for Bare {
        type Msg = DsMsg;
        fn on_start(&mut self, ctx: &mut Ctx<'_, DsMsg>) {
            self.0.send(ctx, NodeId(9), Body::InputAction { amount: 1 });
            self.0.send(ctx, NodeId(9), Body::InputAction { amount: 2 });
        }
        fn on_message(&mut self, ctx: &mut Ctx<'_, DsMsg>, from: NodeId, msg: DsMsg) {
            match msg {
                DsMsg::Data { seq, body } => {
                    let got = self.0.receive(ctx, from, seq, body);
                    self.1.extend(got);
                }
                DsMsg::Ack { next } => self.0.on_ack(from, next),
            }
        }
        fn on_timer(&mut self, ctx: &mut Ctx<'_, DsMsg>, _t: TimerId, tag: u64) {
            self.0.on_timer(ctx, tag);
        }
    }

    fn bare() -> Step<Bare> {
        Step::new(
            NodeId(1),
            Bare(Link::new(LinkConfig::default()), Vec::new()),
        )
    }

    fn data(seq: u64, amount: i64) -> DsMsg {
        DsMsg::Data {
            seq,
            body: Body::InputAction { amount },
        }
    }

    #[test]
    fn delivers_once_and_in_order_whatever_arrives() {
        let mut s = bare();
        s.message(NodeId(5), data(1, 20));
        assert!(s.node.1.is_empty(), "seq 1 waits for seq 0");
        s.message(NodeId(5), data(0, 10));
        s.message(NodeId(5), data(0, 10));
        s.message(NodeId(5), data(1, 20));
        let amounts: Vec<_> = s.node.1.iter().map(|b| format!("{b:?}")).collect();
        assert_eq!(amounts.len(), 2, "{amounts:?}");
        assert!(amounts[0].contains("10") && amounts[1].contains("20"));
        assert_eq!(s.node.0.stats.n_duplicates, 2);
        assert_eq!(s.node.0.stats.n_reorders, 1);
        let acks = s.timer(TimerId(0), TIMER_ACK);
        assert_eq!(acks.sends, vec![(NodeId(5), DsMsg::Ack { next: 2 })]);
    }

    #[test]
    fn retransmits_until_acknowledged_then_stops() {
        let mut s = bare();
        let start = s.start();
        assert_eq!(start.sends.len(), 2);
        assert!(matches!(
            start.timers[0],
            TimerCmd::Set {
                tag: TIMER_RETRANSMIT,
                ..
            }
        ));
        s.advance(Duration::from_millis(2000));
        let again = s.timer(TimerId(0), TIMER_RETRANSMIT);
        assert_eq!(
            again.sends.len(),
            2,
            "both unacknowledged messages go again"
        );
        s.message(NodeId(9), DsMsg::Ack { next: 1 });
        s.advance(Duration::from_millis(2000));
        let again = s.timer(TimerId(1), TIMER_RETRANSMIT);
        assert_eq!(again.sends, vec![(NodeId(9), data(1, 2))]);
        s.message(NodeId(9), DsMsg::Ack { next: 2 });
        assert!(s.node.0.drained());
        s.advance(Duration::from_millis(2000));
        let idle = s.timer(TimerId(2), TIMER_RETRANSMIT);
        assert!(
            idle.sends.is_empty() && idle.timers.is_empty(),
            "an idle link sets no timer"
        );
    }
}
