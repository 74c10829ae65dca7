//! Versions, the messages replicas exchange, and the records they make for
//! the analysis.

use serde::{Deserialize, Serialize};

use crate::node::{CodecError, Message, decode_postcard, encode_postcard};

/// A version's name: the object, a Lamport number (one more than the
/// highest the writer knew for the object) and the writer. Ordered by
/// number, then writer: a total order that follows causality, with no
/// global counter.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
pub struct VKey {
    pub seq: u32,
    pub writer: u32,
    pub object: u32,
}

impl VKey {
    /// Newer in last-writer-wins order (same object).
    #[inline]
    pub fn newer_than(&self, o: &VKey) -> bool {
        (self.seq, self.writer) > (o.seq, o.writer)
    }
}

/// A version and the version it was written over (`None`: the first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub key: VKey,
    pub parent: Option<VKey>,
    /// CloudScope's forte number (federated): inherited from the parent,
    /// raised only by a Raft leader; it orders before the key.
    pub forte: u32,
}

impl Version {
    /// The version `writer` makes over `parent` (or as the first).
    pub fn next(object: u32, parent: Option<&Version>, writer: u32) -> Version {
        Version {
            key: VKey {
                seq: parent.map_or(1, |p| p.key.seq + 1),
                writer,
                object,
            },
            parent: parent.map(|p| p.key),
            forte: parent.map_or(0, |p| p.forte),
        }
    }

    /// Newer in CloudScope's federated order: forte, then the key (with no
    /// forte raised, last-writer-wins by key).
    #[inline]
    pub fn newer_than(&self, o: &Version) -> bool {
        (self.forte, self.key.seq, self.key.writer) > (o.forte, o.key.seq, o.key.writer)
    }
}

/// A Raft log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: u64,
    pub version: Version,
}

/// What crosses the wire. `sent_ns` is the sender's clock, for CloudScope's
/// per-link message latency table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Msg {
    pub sent_ns: u64,
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// Anti-entropy: the sender's latest version of objects.
    Gossip(Vec<Version>),
    /// What the receiver of a gossip had that was newer.
    GossipResponse(Vec<Version>),
    AppendEntries {
        term: u64,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    },
    /// An AppendEntries with no entries (counted apart, as in CloudScope).
    Heartbeat {
        term: u64,
        prev_index: u64,
        prev_term: u64,
        commit: u64,
    },
    AeResponse {
        term: u64,
        success: bool,
        /// On success the follower's last matching index; on failure where
        /// the leader should try next.
        index: u64,
    },
    RequestVote {
        term: u64,
        last_index: u64,
        last_term: u64,
    },
    VoteResponse {
        term: u64,
        granted: bool,
    },
    /// A follower's write, for the leader to append.
    RemoteWrite(Version),
    WriteResponse {
        key: VKey,
        ok: bool,
    },
    /// Tag: ask to own `object` for `epoch`.
    RequestTag {
        object: u32,
        epoch: u32,
    },
    TagResponse {
        object: u32,
        epoch: u32,
        granted: bool,
    },
    /// Tag: an owner's session ended; these objects are free.
    ReleaseTag(Vec<(u32, u32)>),
    /// Tag: an owner's new version, to every replica.
    TagAppend(Version),
}

pub const KINDS: &[&str] = &[
    "Gossip",
    "GossipResponse",
    "AppendEntries",
    "Heartbeat",
    "AEResponse",
    "RequestVote",
    "VoteResponse",
    "RemoteWrite",
    "WriteResponse",
    "RequestTag",
    "TagResponse",
    "ReleaseTag",
    "TagAppend",
];

impl Message for Msg {
    fn kinds() -> &'static [&'static str] {
        KINDS
    }
    #[inline]
    fn kind(&self) -> usize {
        match self.body {
            Body::Gossip(_) => 0,
            Body::GossipResponse(_) => 1,
            Body::AppendEntries { .. } => 2,
            Body::Heartbeat { .. } => 3,
            Body::AeResponse { .. } => 4,
            Body::RequestVote { .. } => 5,
            Body::VoteResponse { .. } => 6,
            Body::RemoteWrite(_) => 7,
            Body::WriteResponse { .. } => 8,
            Body::RequestTag { .. } => 9,
            Body::TagResponse { .. } => 10,
            Body::ReleaseTag(_) => 11,
            Body::TagAppend(_) => 12,
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out);
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("consistency", bytes)
    }
}

/// What a replica reports for the analysis. Staleness, forks and
/// visibility need global knowledge; the analysis has it, the replicas
/// do not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Rec {
    /// The workload asked for an access (CloudScope's `read`/`write` series).
    Access { object: u32, write: bool },
    /// A read returned `version` (`None`: the replica had none, an empty read).
    Read { object: u32, version: Option<VKey> },
    /// A read refused: another replica owns the object (tag).
    MissedRead { object: u32 },
    /// A write made a version (at the time of the record).
    Write(Version),
    /// A write finished, `started_ns` after the start.
    WriteDone { key: VKey, started_ns: u64 },
    /// A write was dropped (no leader, not owner, refused by the leader).
    WriteDropped {
        object: u32,
        key: Option<VKey>,
        started_ns: u64,
    },
    /// This replica now holds the version.
    Holds(VKey),
    /// The version is committed (recorded by the leader that commits it).
    Committed(VKey),
    /// A strong replica refused a version that forks its line (federated).
    Unforked(VKey),
    /// A strong replica refused a version older than its own (federated).
    Unordered(VKey),
    /// Tag: this replica now owns the object.
    TagAcquired { object: u32, epoch: u32 },
    /// Tag: a session ended after `length_ns`, releasing `tags` objects.
    SessionEnded { length_ns: u64, tags: u32 },
    /// With `trace_messages`: a message of `kind` (index in [`KINDS`]) sent.
    Sent { to: u32, kind: u8 },
    /// With `trace_messages`: a message received, sent at `sent_ns`.
    Recv { from: u32, kind: u8, sent_ns: u64 },
}
