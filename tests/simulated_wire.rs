//! `--check-wire`: every message goes through its codec and the Cap'n Proto
//! envelope; a codec that loses or garbles data is caught.

use std::time::Duration;

use distzero::net::{ClockSkew, DropReason};
use distzero::node::{CodecError, Ctx, Message, Node, NodeId, TimerId};
use distzero::sim::{SimConfig, Simulation};
use distzero::wire::{self, WireError};
use rstest::rstest;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    Lossy,
    Garbage,
}

#[derive(Clone, Debug)]
struct Note {
    id: u32,
    text: String,
    fault: Fault,
}

impl Message for Note {
    fn kinds() -> &'static [&'static str] {
        &["Note"]
    }
    fn kind(&self) -> usize {
        0
    }
    fn encode(&self, out: &mut Vec<u8>) {
        match self.fault {
            Fault::Garbage => out.extend_from_slice(&[0xff; 3]),
            _ => {
                out.extend_from_slice(&self.id.to_le_bytes());
                out.push(self.fault as u8);
                // The lossy codec forgets the text.
                if self.fault == Fault::None {
                    out.extend_from_slice(self.text.as_bytes());
                }
            }
        }
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let err = |reason: &str| CodecError {
            kind: "Note",
            reason: reason.into(),
        };
        if bytes.len() < 5 {
            return Err(err("too short"));
        }
        let id = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        let fault = match bytes[4] {
            0 => Fault::None,
            1 => Fault::Lossy,
            _ => return Err(err("bad fault byte")),
        };
        let text = String::from_utf8(bytes[5..].to_vec()).map_err(|_| err("not utf-8"))?;
        Ok(Note { id, text, fault })
    }
}

struct Chatty(Fault);

impl Node for Chatty {
    type Msg = Note;
    fn on_start(&mut self, ctx: &mut Ctx<'_, Note>) {
        ctx.set_timer(Duration::from_millis(10), 0);
    }
    fn on_message(&mut self, _: &mut Ctx<'_, Note>, _: NodeId, _: Note) {}
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Note>, _: TimerId, _: u64) {
        let to = NodeId(1 - ctx.me().0);
        ctx.send(
            to,
            Note {
                id: ctx.me().0,
                text: "hello".into(),
                fault: self.0,
            },
        );
        ctx.set_timer(Duration::from_millis(10), 0);
    }
}

fn run(fault: Fault) -> Simulation<Chatty> {
    let mut cfg = SimConfig::new(1);
    cfg.check_wire = true;
    let mut sim = Simulation::new(cfg);
    for _ in 0..2 {
        let m = sim.add_machine(ClockSkew::default());
        sim.add_node(m, move || Chatty(fault));
    }
    sim.run_until(Duration::from_millis(200));
    sim
}

#[test]
fn simulated_check_wire_passes_a_good_codec() {
    let sim = run(Fault::None);
    assert!(sim.wire_errors().is_empty());
    assert!(sim.stats().deliveries > 30);
}

#[rstest]
#[case(Fault::Lossy, "loses information")]
#[case(Fault::Garbage, "cannot decode")]
fn simulated_check_wire_catches_a_bad_codec(#[case] fault: Fault, #[case] says: &str) {
    let sim = run(fault);
    assert!(!sim.wire_errors().is_empty());
    assert!(
        sim.wire_errors()[0].contains(says),
        "{}",
        sim.wire_errors()[0]
    );
    assert_eq!(
        sim.stats().deliveries,
        0,
        "a message that fails the check is not delivered"
    );
    assert!(sim.stats().dropped(DropReason::Codec) > 30);
}

#[test]
fn simulated_envelope_refuses_unknown_kinds_and_garbage() {
    let bytes = wire::encode_envelope(1, 2, 9, b"x");
    let env = wire::decode_envelope(&bytes).unwrap();
    assert_eq!((env.from, env.to, env.kind), (1, 2, 9));
    assert!(matches!(
        wire::decode_message::<Note>(env.kind, &env.payload),
        Err(WireError::UnknownKind { .. })
    ));
    assert!(wire::decode_envelope(b"not capnp at all").is_err());
    assert!(wire::decode_envelope(&[]).is_err());
}
