//! Crash durability. A node writes its whole state to storage and syncs it
//! at the end of every handler that changed it; the runtime lets nothing
//! the handler sent leave before that sync, so whatever a node sent or
//! acknowledged survives a crash of its machine. A restarted node reads its
//! state back and re-arms its timers; its links then send again whatever
//! stayed unacknowledged. A write or sync that fails stops the node
//! (fail-stop, by the node API), it never goes on as if it had been saved.

use std::hash::{Hash, Hasher};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::msg::DsMsg;
use crate::node::Ctx;

/// The one file a dataset node keeps.
pub const STATE_FILE: &str = "dataset-state";

/// Whether a node saves its state, and a fingerprint of what it saved
/// last (an unchanged state is not written again).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Saved {
    pub on: bool,
    last: u64,
}

impl Saved {
    pub fn new(on: bool) -> Self {
        Saved { on, last: 0 }
    }
}

/// Writes and syncs `state` when saving is on and it changed.
pub fn save<T: Serialize>(ctx: &mut Ctx<'_, DsMsg>, state: &T, saved: Saved) -> Saved {
    if !saved.on {
        return saved;
    }
    let bytes = postcard::to_allocvec(state).expect("a dataset node's state is plain data");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let fingerprint = h.finish() | 1;
    if fingerprint == saved.last {
        return saved;
    }
    let storage = ctx.storage();
    if storage.write(STATE_FILE, &bytes).is_err() || storage.sync(STATE_FILE).is_err() {
        // The node API has stopped the node already; nothing it sent leaves.
        return saved;
    }
    Saved {
        on: true,
        last: fingerprint,
    }
}

pub enum Loaded<T> {
    /// Nothing saved: a first start.
    Fresh,
    /// The state saved before the machine restarted.
    Restored(T),
    /// Saved but unreadable: the node has been stopped.
    Unreadable,
}

/// What this node saved before its machine restarted. A state that cannot
/// be read stops the node with one line saying why.
pub fn load<T: DeserializeOwned>(ctx: &mut Ctx<'_, DsMsg>) -> Loaded<T> {
    let Some(bytes) = ctx.storage().read(STATE_FILE).map(<[u8]>::to_vec) else {
        return Loaded::Fresh;
    };
    match postcard::from_bytes(&bytes) {
        Ok(state) => Loaded::Restored(state),
        Err(e) => {
            ctx.fail(format!(
                "cannot read the saved dataset state ({} bytes): {e}",
                bytes.len()
            ));
            Loaded::Unreadable
        }
    }
}
