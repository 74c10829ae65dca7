//! Data-plane frames: node messages with sequence numbers, acks and the
//! authenticating hellos, each one Cap'n Proto message.

use capnp::message::Builder;

use super::distzero_capnp::frame;
use super::{Envelope, WireError, reader_options};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub machine: String,
    pub session: u64,
    pub nonce: Vec<u8>,
    pub proof: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Message { seq: u64, envelope: Envelope },
    Ack(u64),
    Hello(Hello),
}

pub fn encode_frame(f: &Frame) -> Vec<u8> {
    let mut message = Builder::new_default();
    let root = message.init_root::<frame::Builder>();
    match f {
        Frame::Message { seq, envelope } => {
            let mut m = root.init_message();
            m.set_seq(*seq);
            let mut e = m.init_envelope();
            e.set_from(envelope.from);
            e.set_to(envelope.to);
            e.set_kind(envelope.kind);
            e.set_payload(&envelope.payload);
        }
        Frame::Ack(seq) => {
            let mut root = root;
            root.set_ack(*seq);
        }
        Frame::Hello(h) => {
            let mut b = root.init_hello();
            b.set_machine(h.machine.as_str());
            b.set_session(h.session);
            b.set_nonce(&h.nonce);
            b.set_proof(&h.proof);
        }
    }
    capnp::serialize::write_message_to_words(&message)
}

pub fn decode_frame(bytes: &[u8]) -> Result<Frame, WireError> {
    let reader = capnp::serialize::read_message(&mut &bytes[..], reader_options())?;
    let root = reader.get_root::<frame::Reader>()?;
    Ok(
        match root.which().map_err(|e| WireError::Capnp(e.into()))? {
            frame::Which::Message(m) => {
                let m = m?;
                let e = m.get_envelope()?;
                Frame::Message {
                    seq: m.get_seq(),
                    envelope: Envelope {
                        from: e.get_from(),
                        to: e.get_to(),
                        kind: e.get_kind(),
                        payload: e.get_payload()?.to_vec(),
                    },
                }
            }
            frame::Which::Ack(seq) => Frame::Ack(seq),
            frame::Which::Hello(h) => {
                let h = h?;
                Frame::Hello(Hello {
                    machine: h
                        .get_machine()?
                        .to_string()
                        .map_err(|e| WireError::Capnp(capnp::Error::failed(e.to_string())))?,
                    session: h.get_session(),
                    nonce: h.get_nonce()?.to_vec(),
                    proof: h.get_proof()?.to_vec(),
                })
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_frames_round_trip() {
        let frames = [
            Frame::Message {
                seq: 7,
                envelope: Envelope {
                    from: 1,
                    to: 2,
                    kind: 3,
                    payload: vec![9; 100],
                },
            },
            Frame::Ack(u64::MAX),
            Frame::Hello(Hello {
                machine: "m0".into(),
                session: 5,
                nonce: vec![1; 32],
                proof: vec![],
            }),
        ];
        for f in frames {
            assert_eq!(decode_frame(&encode_frame(&f)).unwrap(), f);
        }
    }
}
