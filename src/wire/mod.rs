//! The wire format: Cap'n Proto envelopes around each system's own message
//! encoding. `distzero_capnp` is generated from `schema/distzero.capnp` by
//! `scripts/gen-schema` and committed, so a fresh clone builds without the
//! Cap'n Proto compiler.

#[allow(clippy::all, unused, unsafe_op_in_unsafe_fn, mismatched_lifetime_syntaxes)]
#[rustfmt::skip]
pub mod distzero_capnp;
pub mod convert;
mod frame;

pub use frame::{Frame, Hello, decode_frame, encode_frame};

use capnp::message::{Builder, ReaderOptions};

use crate::node::{CodecError, Message};
use distzero_capnp::envelope;

/// The largest envelope a peer may send; anything bigger is refused.
pub const MAX_ENVELOPE_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed envelope: {0}")]
    Capnp(#[from] capnp::Error),
    #[error("unknown message kind {kind} (the system has {known})")]
    UnknownKind { kind: u16, known: usize },
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// A decoded envelope whose payload is still in the system's encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub from: u32,
    pub to: u32,
    pub kind: u16,
    pub payload: Vec<u8>,
}

pub(crate) fn reader_options() -> ReaderOptions {
    let mut o = ReaderOptions::new();
    o.traversal_limit_in_words(Some(MAX_ENVELOPE_BYTES / 8 + 64));
    o.nesting_limit(8);
    o
}

pub fn encode_envelope(from: u32, to: u32, kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut message = Builder::new_default();
    let mut env = message.init_root::<envelope::Builder>();
    env.set_from(from);
    env.set_to(to);
    env.set_kind(kind);
    env.set_payload(payload);
    capnp::serialize::write_message_to_words(&message)
}

pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, WireError> {
    let reader = capnp::serialize::read_message(&mut &bytes[..], reader_options())?;
    let env = reader.get_root::<envelope::Reader>()?;
    Ok(Envelope {
        from: env.get_from(),
        to: env.get_to(),
        kind: env.get_kind(),
        payload: env.get_payload()?.to_vec(),
    })
}

/// Encodes a system message into an envelope.
pub fn encode_message<M: Message>(from: u32, to: u32, msg: &M) -> Vec<u8> {
    let mut payload = Vec::new();
    msg.encode(&mut payload);
    encode_envelope(from, to, msg.kind() as u16, &payload)
}

/// Decodes a system message from an envelope's kind and payload, refusing
/// kinds the system does not have.
pub fn decode_message<M: Message>(kind: u16, payload: &[u8]) -> Result<M, WireError> {
    let known = M::kinds().len();
    if usize::from(kind) >= known {
        return Err(WireError::UnknownKind { kind, known });
    }
    let msg = M::decode(payload)?;
    if msg.kind() != usize::from(kind) {
        return Err(WireError::UnknownKind { kind, known });
    }
    Ok(msg)
}
