//! Message counters, the same in every mode.

use serde::{Deserialize, Serialize};

/// Sent / delivered / dropped / duplicated counts of one message kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub sent: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.sent += o.sent;
        self.delivered += o.delivered;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
    }
}

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    Loss,
    LinkDown,
    Isolated,
    NoLink,
    MachineDown,
    NoSuchNode,
    Codec,
    /// Dropped on purpose by a one-shot "drop this message" fault.
    Chosen,
}

impl DropReason {
    pub const ALL: [DropReason; 8] = [
        DropReason::Loss,
        DropReason::LinkDown,
        DropReason::Isolated,
        DropReason::NoLink,
        DropReason::MachineDown,
        DropReason::NoSuchNode,
        DropReason::Codec,
        DropReason::Chosen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Loss => "loss",
            DropReason::LinkDown => "link_down",
            DropReason::Isolated => "isolated",
            DropReason::NoLink => "no_link",
            DropReason::MachineDown => "machine_down",
            DropReason::NoSuchNode => "no_such_node",
            DropReason::Codec => "codec",
            DropReason::Chosen => "chosen",
        }
    }
}
