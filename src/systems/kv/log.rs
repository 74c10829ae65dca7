//! What a kv server keeps on disk: its view, a log of CRC-checked records,
//! and a snapshot that lets the log be truncated. A torn or corrupt record
//! at the tail (a crash during a write) is detected on restart and cut,
//! never replayed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::msg::{LogEntry, Snapshot};
use crate::node::Storage;

pub const VIEW_FILE: &str = "view";
pub const LOG_FILE: &str = "log";
pub const SNAPSHOT_FILE: &str = "snapshot";

const HEADER: usize = 8;

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    index: u64,
    #[serde(borrow)]
    entry: std::borrow::Cow<'a, LogEntry>,
}

/// `[payload length u32][CRC-32 of payload u32][payload]`, little-endian.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads one framed payload at `at`: Ok(Some((payload, next))), Ok(None) at
/// the end, Err(why) for a torn or corrupt frame.
fn unframe(bytes: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, String> {
    if at == bytes.len() {
        return Ok(None);
    }
    let header = bytes.get(at..at + HEADER).ok_or("a torn record header")?;
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let payload = bytes
        .get(at + HEADER..at + HEADER + len)
        .ok_or("a torn record")?;
    if crc32fast::hash(payload) != crc {
        return Err("a record whose checksum does not match".into());
    }
    Ok(Some((payload, at + HEADER + len)))
}

pub fn encode_record(index: u64, entry: &LogEntry) -> Vec<u8> {
    let rec = Record {
        index,
        entry: std::borrow::Cow::Borrowed(entry),
    };
    frame(&postcard::to_allocvec(&rec).expect("encoding a log record into a Vec"))
}

/// The log's entries (a later record for an index replaces an earlier one),
/// how many bytes are sound, and why the rest is not, if it is not.
pub struct Replay {
    pub entries: BTreeMap<u64, LogEntry>,
    pub sound: usize,
    pub damage: Option<String>,
}

pub fn replay(bytes: &[u8]) -> Replay {
    let mut entries = BTreeMap::new();
    let mut at = 0;
    loop {
        match unframe(bytes, at) {
            Ok(Some((payload, next))) => match postcard::from_bytes::<Record<'_>>(payload) {
                Ok(r) => {
                    entries.insert(r.index, r.entry.into_owned());
                    at = next;
                }
                Err(e) => {
                    return Replay {
                        entries,
                        sound: at,
                        damage: Some(format!("an undecodable record ({e})")),
                    };
                }
            },
            Ok(None) => {
                return Replay {
                    entries,
                    sound: at,
                    damage: None,
                };
            }
            Err(why) => {
                return Replay {
                    entries,
                    sound: at,
                    damage: Some(why),
                };
            }
        }
    }
}

fn encode_value<T: Serialize>(v: &T) -> Vec<u8> {
    frame(&postcard::to_allocvec(v).expect("encoding into a Vec"))
}

fn decode_value<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let (payload, _) = unframe(bytes, 0)?.ok_or("an empty file")?;
    postcard::from_bytes(payload).map_err(|e| e.to_string())
}

/// What a restarting server finds.
pub struct Loaded {
    pub view: u64,
    pub snapshot: Option<Snapshot>,
    pub entries: BTreeMap<u64, LogEntry>,
    /// A cut corrupt tail: bytes kept, bytes dropped, why.
    pub cut: Option<(usize, usize, String)>,
}

/// Reads view, snapshot and log; cuts (and syncs away) a damaged log tail.
pub fn load(storage: &mut dyn Storage) -> Result<Loaded, String> {
    let view = match storage.read(VIEW_FILE) {
        Some(b) => decode_value(b).map_err(|e| format!("view file: {e}"))?,
        None => 0,
    };
    let snapshot = match storage.read(SNAPSHOT_FILE) {
        Some(b) => Some(decode_value::<Snapshot>(b).map_err(|e| format!("snapshot file: {e}"))?),
        None => None,
    };
    let (mut entries, cut) = match storage.read(LOG_FILE) {
        Some(bytes) => {
            let total = bytes.len();
            let r = replay(bytes);
            let cut = r.damage.map(|why| (r.sound, total - r.sound, why));
            if let Some((sound, _, _)) = &cut {
                storage
                    .truncate(LOG_FILE, *sound)
                    .map_err(|e| format!("cutting the log: {e}"))?;
                storage
                    .sync(LOG_FILE)
                    .map_err(|e| format!("syncing the log: {e}"))?;
            }
            (r.entries, cut)
        }
        None => (BTreeMap::new(), None),
    };
    if let Some(s) = &snapshot {
        entries = entries.split_off(&(s.index + 1));
    }
    Ok(Loaded {
        view,
        snapshot,
        entries,
        cut,
    })
}

/// A view must never go back: it is synced whatever the persistence mode.
pub fn save_view(storage: &mut dyn Storage, view: u64) -> std::io::Result<()> {
    storage.write(VIEW_FILE, &encode_value(&view))?;
    storage.sync(VIEW_FILE)
}

pub fn append(
    storage: &mut dyn Storage,
    index: u64,
    entry: &LogEntry,
    sync: bool,
) -> std::io::Result<()> {
    storage.append(LOG_FILE, &encode_record(index, entry))?;
    if sync { storage.sync(LOG_FILE) } else { Ok(()) }
}

/// Writes a snapshot, then a log of only the entries after it.
pub fn compact(
    storage: &mut dyn Storage,
    snapshot: &Snapshot,
    rest: &BTreeMap<u64, LogEntry>,
) -> std::io::Result<()> {
    storage.write(SNAPSHOT_FILE, &encode_value(snapshot))?;
    storage.sync(SNAPSHOT_FILE)?;
    let mut log = Vec::new();
    for (i, e) in rest {
        log.extend_from_slice(&encode_record(*i, e));
    }
    storage.write(LOG_FILE, &log)?;
    storage.sync(LOG_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::MemStorage;
    use crate::systems::kv::msg::Entry;

    fn entry(view: u64) -> LogEntry {
        LogEntry {
            view,
            entry: Entry::Noop,
        }
    }

    #[test]
    fn simulated_log_replays_and_cuts_a_torn_tail() {
        let mut s = MemStorage::default();
        append(&mut s, 1, &entry(1), true).unwrap();
        append(&mut s, 2, &entry(1), true).unwrap();
        append(&mut s, 2, &entry(3), true).unwrap();
        let good = s.read(LOG_FILE).unwrap().len();
        // A torn write: half a record at the end.
        let half = encode_record(3, &entry(3));
        s.append(LOG_FILE, &half[..half.len() / 2]).unwrap();
        let l = load(&mut s).unwrap();
        assert_eq!(l.entries.len(), 2);
        assert_eq!(l.entries[&2].view, 3, "the later record wins");
        let (kept, dropped, why) = l.cut.unwrap();
        assert_eq!((kept, dropped), (good, half.len() / 2));
        assert!(why.contains("torn"), "{why}");
        assert_eq!(
            s.read(LOG_FILE).unwrap().len(),
            good,
            "the tail is cut on disk too"
        );
        assert!(load(&mut s).unwrap().cut.is_none());
    }

    #[test]
    fn simulated_log_detects_a_flipped_bit() {
        let mut s = MemStorage::default();
        append(&mut s, 1, &entry(1), true).unwrap();
        let mut bytes = s.read(LOG_FILE).unwrap().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        s.write(LOG_FILE, &bytes).unwrap();
        let l = load(&mut s).unwrap();
        assert!(l.entries.is_empty());
        assert!(l.cut.unwrap().2.contains("checksum"));
    }
}
