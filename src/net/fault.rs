//! The fault vocabulary: what the controller, fault schedules and sim-check
//! inject, the same words in every mode.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rule::MessageFaults;
use crate::node::{MachineId, NodeId, StorageFaults};

/// Something going wrong on purpose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// The machine stops abruptly; unsynced storage is lost.
    Crash {
        machine: MachineId,
    },
    /// A crashed machine starts again (and a running one restarts the nodes
    /// that stopped); nodes restart from storage.
    Restart {
        machine: MachineId,
    },
    /// The machine can neither send nor receive.
    Isolate {
        machine: MachineId,
    },
    /// Ends one machine's isolation, or every partition when `None`.
    Heal {
        machine: Option<MachineId>,
    },
    /// The directed link `from → to` goes down (call twice for both ways).
    LinkDown {
        from: MachineId,
        to: MachineId,
    },
    LinkUp {
        from: MachineId,
        to: MachineId,
    },
    /// Faults on what `machine` sends (`None`: every machine).
    Messages {
        machine: Option<MachineId>,
        faults: MessageFaults,
    },
    /// Disk faults on the nodes of `machine` (`None`: every machine);
    /// simulated machines only: real disks fail for real (see the disk-full
    /// test).
    Storage {
        machine: Option<MachineId>,
        faults: StorageFaults,
    },
    Pause {
        machine: MachineId,
    },
    Resume {
        machine: MachineId,
    },
    KillNode {
        node: NodeId,
    },
    /// Drops the `nth` (from 0) message of kind `kind` that node `from`
    /// sends to node `to` after this fault (simulated runs only: it is the
    /// viewer's "drop this message").
    DropMessage {
        from: NodeId,
        to: NodeId,
        #[serde(rename = "message")]
        kind: String,
        nth: u64,
    },
}

/// A fault at a point of the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduledFault {
    pub at: Duration,
    pub fault: Fault,
}
