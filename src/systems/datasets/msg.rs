//! The messages of a dataset. Every message but an acknowledgement rides a
//! reliable link ([`super::link`]): it carries the link's sequence number
//! and its kind is its body's, so faults can target one kind ("drop 40% of
//! input actions") while the link makes up for them.

use serde::{Deserialize, Serialize};

use super::interval::Interval;
use crate::node::{CodecError, Message, NodeId, decode_postcard, encode_postcard};

/// What a node tells its parent about itself. Totals are cumulative, so a
/// newer summary replaces an older one and nothing is counted twice when a
/// kid moves to another parent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Grows with every summary the node sends, whoever its parent is.
    pub version: u64,
    /// How many times the node changed parent (orders `NewParent`s).
    pub moves: u32,
    pub height: u32,
    pub interval: Interval,
    /// The exact sum of every input that reached a leaf under this node,
    /// leaves that left included.
    pub total: i64,
    /// Leaves under the node (height 1: its kids).
    pub size: u64,
    pub n_kids: u32,
}

/// A kid handed from one parent to another, as the giver last knew it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KidSnapshot {
    pub id: NodeId,
    pub summary: Summary,
    pub reported: bool,
}

/// Kids (and the totals of leaves that left) a node hands to another.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adoption {
    /// Joined to the taker's own interval.
    pub interval: Interval,
    /// The taker's height from now on.
    pub height: u32,
    pub kids: Vec<KidSnapshot>,
    pub retired: i64,
}

/// A request to add a leaf, routed down from the root to a height-1 node
/// with room; `user` hears back which node the leaf is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddLeaf {
    pub name: String,
    pub user: NodeId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// A user's number, to a leaf.
    InputAction {
        amount: i64,
    },
    /// Kid to parent (DistZero's increments and kid summaries in one).
    KidSummary(Summary),
    /// The root's running total, to an output.
    OutputAction {
        total: i64,
    },
    AddLeaf(AddLeaf),
    /// A height-1 node to the user: this is your leaf.
    LeafAdded {
        name: String,
        leaf: NodeId,
    },
    /// The user to a leaf: leave the dataset.
    Leave,
    /// A leaving leaf to its parent, with its final summary.
    Goodbye(Summary),
    /// The parent took the goodbye: the leaf may stop.
    Released,
    /// Parent to kid: hand your right half of kids to `new`.
    SplitTo {
        new: NodeId,
    },
    /// Parent to kid: hand all your kids to your right sibling and stop.
    MergeInto {
        into: NodeId,
    },
    /// The root to its only kid: hand me all your kids and stop.
    GiveKidsTo {
        to: NodeId,
    },
    Adopt(Adoption),
    /// From the kid's old parent: your parent is now `parent`.
    NewParent {
        parent: NodeId,
        moves: u32,
    },
    /// Stands in for a message its sender took back (see `Link::forget`),
    /// so the receiver's sequence has no hole.
    Cancelled,
    /// A link's manager to an input leaf: send your total to `node`.
    LinkTo {
        node: NodeId,
    },
    /// An input leaf or link node to a link node: the sender's whole
    /// running total (cumulative and versioned, as summaries are).
    LinkTotal {
        version: u64,
        total: i64,
    },
    /// The user to a link's manager: this input leaf joined.
    LinkSource {
        leaf: NodeId,
    },
    /// A link's manager to a link node: send to these from now on (the
    /// link grew a level above it).
    Rewire {
        receivers: Vec<NodeId>,
    },
    /// A rewired link node to a receiver it left: drop my total (it now
    /// reaches you through another sender).
    Unlink,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum DsMsg {
    Data {
        seq: u64,
        body: Body,
    },
    /// Everything below `next` arrived.
    Ack {
        next: u64,
    },
}

const KINDS: &[&str] = &[
    "InputAction",
    "KidSummary",
    "OutputAction",
    "AddLeaf",
    "LeafAdded",
    "Leave",
    "Goodbye",
    "Released",
    "SplitTo",
    "MergeInto",
    "GiveKidsTo",
    "Adopt",
    "NewParent",
    "Cancelled",
    "LinkTo",
    "LinkTotal",
    "LinkSource",
    "Rewire",
    "Unlink",
    "Ack",
];

impl Body {
    pub fn kind(&self) -> usize {
        match self {
            Body::InputAction { .. } => 0,
            Body::KidSummary(_) => 1,
            Body::OutputAction { .. } => 2,
            Body::AddLeaf(_) => 3,
            Body::LeafAdded { .. } => 4,
            Body::Leave => 5,
            Body::Goodbye(_) => 6,
            Body::Released => 7,
            Body::SplitTo { .. } => 8,
            Body::MergeInto { .. } => 9,
            Body::GiveKidsTo { .. } => 10,
            Body::Adopt(_) => 11,
            Body::NewParent { .. } => 12,
            Body::Cancelled => 13,
            Body::LinkTo { .. } => 14,
            Body::LinkTotal { .. } => 15,
            Body::LinkSource { .. } => 16,
            Body::Rewire { .. } => 17,
            Body::Unlink => 18,
        }
    }
}

impl Message for DsMsg {
    fn kinds() -> &'static [&'static str] {
        KINDS
    }
    fn kind(&self) -> usize {
        match self {
            DsMsg::Data { body, .. } => body.kind(),
            DsMsg::Ack { .. } => KINDS.len() - 1,
        }
    }
    fn encode(&self, out: &mut Vec<u8>) {
        encode_postcard(self, out)
    }
    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        decode_postcard("datasets", bytes)
    }
}
