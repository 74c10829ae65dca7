//! What sites and clients say to each other.

use serde::{Deserialize, Serialize};

use super::doc::{Reply, ResourceDoc};
use crate::node::{CodecError, Message, decode_postcard, encode_postcard};

/// A request to take an operation, as `POST /exec/{id}` carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub resource: String,
    pub sites: Vec<String>,
    pub kind: String,
    pub command: String,
    /// The resolution matrix as JSON; empty for none.
    pub config: String,
    pub files: Vec<(String, Vec<u8>)>,
    /// Chosen by the client, so a retry is recognised.
    pub request_id: String,
}

/// One resource in an anti-entropy digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigestItem {
    pub resource: String,
    pub seen: std::collections::BTreeMap<String, u64>,
    pub doc_digest: [u8; 32],
    pub replies_digest: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CheopsMsg {
    Exec(ExecRequest),
    /// The operation is durable at the site (or refused, with a reason).
    ExecAck {
        request_id: String,
        result: Result<(), String>,
    },
    /// What a site has for the resources it shares with the receiver.
    Digest(Vec<DigestItem>),
    /// Copies and replies the receiver lacks.
    Docs {
        docs: Vec<ResourceDoc>,
        replies: Vec<Reply>,
    },
}

impl Message for CheopsMsg {
    fn kinds() -> &'static [&'static str] {
        &["Exec", "ExecAck", "Digest", "Docs"]
    }

    fn kind(&self) -> usize {
        match self {
            CheopsMsg::Exec(_) => 0,
            CheopsMsg::ExecAck { .. } => 1,
            CheopsMsg::Digest(_) => 2,
            CheopsMsg::Docs { .. } => 3,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out)
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("cheops", bytes)
    }
}
