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
    /// `kv` or `shell`; empty for the site's default. Only a new
    /// resource takes it.
    pub backend: String,
}

/// A resource as a site holds it, for the machine's API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub resource: String,
    /// `None`: the site does not hold it.
    pub doc: Option<ResourceDoc>,
    pub replies: Vec<Reply>,
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
    /// An outside client (the machine's API) asks for the resource now and
    /// after each change, for a lease it renews by asking again.
    Watch {
        resource: String,
    },
    /// The resource as the site holds it (answer to `Watch`).
    Update(View),
    /// Runs a read-only command at `sites` (at the receiver alone when
    /// empty) and answers one `ShowReply` per site.
    Show {
        ask: u64,
        resource: String,
        command: String,
        sites: Vec<String>,
    },
    ShowReply {
        ask: u64,
        site: String,
        ok: bool,
        output: String,
    },
}

impl Message for CheopsMsg {
    fn kinds() -> &'static [&'static str] {
        &[
            "Exec",
            "ExecAck",
            "Digest",
            "Docs",
            "Watch",
            "Update",
            "Show",
            "ShowReply",
        ]
    }

    fn kind(&self) -> usize {
        match self {
            CheopsMsg::Exec(_) => 0,
            CheopsMsg::ExecAck { .. } => 1,
            CheopsMsg::Digest(_) => 2,
            CheopsMsg::Docs { .. } => 3,
            CheopsMsg::Watch { .. } => 4,
            CheopsMsg::Update(_) => 5,
            CheopsMsg::Show { .. } => 6,
            CheopsMsg::ShowReply { .. } => 7,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out)
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("cheops", bytes)
    }
}
