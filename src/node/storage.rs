//! Durable bytes for a node: a few named files with explicit sync.
//!
//! The contract every runtime honours: reads see every write at once; after
//! a crash a file holds what was last synced, plus possibly a prefix of the
//! bytes appended since (a torn write). `write` replaces a file's content
//! atomically: after a crash you see the old synced content or, once synced,
//! the new. `remove` is immediately durable.

use std::collections::BTreeMap;
use std::io;

use rand::RngExt;

use crate::rng::DetRng;

pub trait Storage {
    /// The file's current content, unsynced writes included.
    fn read(&self, file: &str) -> Option<&[u8]>;
    /// Replaces the file's content (creating it).
    fn write(&mut self, file: &str, data: &[u8]) -> io::Result<()>;
    /// Appends to the file (creating it).
    fn append(&mut self, file: &str, data: &[u8]) -> io::Result<()>;
    /// Cuts the file to `len` bytes; a longer `len` is an error.
    fn truncate(&mut self, file: &str, len: usize) -> io::Result<()>;
    fn remove(&mut self, file: &str) -> io::Result<()>;
    /// Makes the file's current content durable.
    fn sync(&mut self, file: &str) -> io::Result<()>;
    fn files(&self) -> Vec<String>;
}

/// What of a file survives a crash.
#[derive(Debug, Clone)]
enum Durable {
    /// The durable content is the first `n` bytes of the current content;
    /// the common case for append-only logs, and free of copies.
    Prefix(usize),
    /// The file was rewritten since the last sync: this is the old content.
    Copy(Vec<u8>),
}

#[derive(Debug, Clone)]
struct MemFile {
    data: Vec<u8>,
    durable: Durable,
    /// Whether the file has ever been synced (else a crash may drop it).
    synced_once: bool,
}

impl MemFile {
    fn new() -> Self {
        MemFile {
            data: Vec::new(),
            durable: Durable::Prefix(0),
            synced_once: false,
        }
    }

    /// Before a change that is not an append beyond the durable prefix.
    fn keep_durable_copy(&mut self, new_len: usize) {
        if let Durable::Prefix(n) = self.durable
            && new_len < n
        {
            self.durable = Durable::Copy(self.data[..n].to_vec());
        }
    }
}

/// Disk faults the simulator can inject into a node's storage: calls that
/// fail at random, and a disk that fills up.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageFaults {
    /// Probability that an append or a write fails (EIO).
    pub write_error: f64,
    /// Probability that a sync fails (EIO; what was written may or may not
    /// be durable, as with a real fsync error).
    pub sync_error: f64,
    /// Bytes the disk holds; writes beyond fail with ENOSPC.
    pub capacity: Option<usize>,
}

impl StorageFaults {
    pub fn is_none(&self) -> bool {
        self.write_error == 0.0 && self.sync_error == 0.0 && self.capacity.is_none()
    }

    pub fn validate(&self) -> Result<(), String> {
        for (name, p) in [
            ("write_error", self.write_error),
            ("sync_error", self.sync_error),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!(
                    "storage fault rate {name}={p} is not between 0 and 1"
                ));
            }
        }
        Ok(())
    }
}

/// The simulator's storage: in memory, with the crash semantics above, and
/// optional injected faults.
#[derive(Debug, Default, Clone)]
pub struct MemStorage {
    files: BTreeMap<String, MemFile>,
    faults: Option<Box<(StorageFaults, DetRng)>>,
}

impl MemStorage {
    /// Applies a crash: unsynced data is lost, except a random prefix of
    /// unsynced appends, as a disk would leave a torn write.
    pub fn crash(&mut self, rng: &mut DetRng) {
        self.files.retain(|_, f| {
            match std::mem::replace(&mut f.durable, Durable::Prefix(0)) {
                Durable::Prefix(n) => {
                    let tail = f.data.len() - n;
                    let keep = if tail == 0 {
                        n
                    } else {
                        n + rng.random_range(0..=tail)
                    };
                    f.data.truncate(keep);
                }
                Durable::Copy(old) => f.data = old,
            }
            f.durable = Durable::Prefix(f.data.len());
            f.synced_once || !f.data.is_empty()
        });
    }

    /// Bytes held, for memory accounting.
    pub fn bytes(&self) -> usize {
        self.files.values().map(|f| f.data.len()).sum()
    }

    /// Injects `faults` from now on (drawn from `rng`); none clears them.
    pub fn set_faults(&mut self, faults: &StorageFaults, rng: DetRng) {
        self.faults = (!faults.is_none()).then(|| Box::new((faults.clone(), rng)));
    }

    /// An injected failure of a call that would leave `new_len` bytes in
    /// `file`, if one happens now.
    fn injected(&mut self, file: &str, new_len: Option<usize>, sync: bool) -> io::Result<()> {
        let Some(f) = self.faults.as_deref_mut() else {
            return Ok(());
        };
        let (faults, rng) = (&f.0, &mut f.1);
        if let (Some(cap), Some(len)) = (faults.capacity, new_len) {
            let others: usize = self
                .files
                .iter()
                .filter(|(n, _)| n.as_str() != file)
                .map(|(_, f)| f.data.len())
                .sum();
            if others + len > cap {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "no space left on device (injected)",
                ));
            }
        }
        let p = if sync {
            faults.sync_error
        } else {
            faults.write_error
        };
        if p > 0.0 && rng.random_bool(p) {
            return Err(io::Error::other("input/output error (injected)"));
        }
        Ok(())
    }
}

impl Storage for MemStorage {
    fn read(&self, file: &str) -> Option<&[u8]> {
        self.files.get(file).map(|f| f.data.as_slice())
    }

    fn write(&mut self, file: &str, data: &[u8]) -> io::Result<()> {
        self.injected(file, Some(data.len()), false)?;
        let f = self
            .files
            .entry(file.to_string())
            .or_insert_with(MemFile::new);
        if let Durable::Prefix(n) = f.durable {
            f.durable = Durable::Copy(f.data[..n].to_vec());
        }
        f.data.clear();
        f.data.extend_from_slice(data);
        Ok(())
    }

    fn append(&mut self, file: &str, data: &[u8]) -> io::Result<()> {
        let len = self.files.get(file).map_or(0, |f| f.data.len()) + data.len();
        self.injected(file, Some(len), false)?;
        let f = self
            .files
            .entry(file.to_string())
            .or_insert_with(MemFile::new);
        f.data.extend_from_slice(data);
        Ok(())
    }

    fn truncate(&mut self, file: &str, len: usize) -> io::Result<()> {
        let f = self
            .files
            .get_mut(file)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file {file}")))?;
        if len > f.data.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot truncate {file} of {} bytes to {len}", f.data.len()),
            ));
        }
        f.keep_durable_copy(len);
        f.data.truncate(len);
        Ok(())
    }

    fn remove(&mut self, file: &str) -> io::Result<()> {
        self.files.remove(file);
        Ok(())
    }

    fn sync(&mut self, file: &str) -> io::Result<()> {
        self.injected(file, None, true)?;
        if let Some(f) = self.files.get_mut(file) {
            f.durable = Durable::Prefix(f.data.len());
            f.synced_once = true;
        }
        Ok(())
    }

    fn files(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    #[test]
    fn simulated_storage_keeps_synced_and_loses_rewrites() {
        let mut rng = stream(1, "test", 0);
        let mut s = MemStorage::default();
        s.write("view", b"1").unwrap();
        s.sync("view").unwrap();
        s.write("view", b"2").unwrap();
        assert_eq!(s.read("view"), Some(&b"2"[..]));
        s.crash(&mut rng);
        assert_eq!(s.read("view"), Some(&b"1"[..]));
    }

    #[test]
    fn simulated_storage_unsynced_file_never_survives_whole() {
        for seed in 0..50 {
            let mut rng = stream(seed, "test", 0);
            let mut s = MemStorage::default();
            s.append("log", b"abcdef").unwrap();
            s.sync("log").unwrap();
            s.append("log", b"ghij").unwrap();
            s.crash(&mut rng);
            let got = s.read("log").unwrap();
            assert!(got.starts_with(b"abcdef"), "synced prefix lost: {got:?}");
            assert!(b"abcdefghij".starts_with(got), "not a prefix: {got:?}");
        }
    }

    #[test]
    fn simulated_storage_faults_fail_calls_and_fill_the_disk() {
        let mut s = MemStorage::default();
        let full = StorageFaults {
            capacity: Some(8),
            ..Default::default()
        };
        s.set_faults(&full, stream(1, "disk", 0));
        s.append("log", b"12345").unwrap();
        let e = s.append("log", b"6789").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(
            s.read("log"),
            Some(&b"12345"[..]),
            "a refused append changes nothing"
        );
        s.write("view", b"abc").unwrap();
        assert!(s.write("view", b"abcd").is_err());
        let flaky = StorageFaults {
            sync_error: 1.0,
            ..Default::default()
        };
        s.set_faults(&flaky, stream(1, "disk", 0));
        assert!(s.sync("log").is_err());
        s.set_faults(&StorageFaults::default(), stream(1, "disk", 0));
        assert!(s.sync("log").is_ok());
        assert!(
            StorageFaults {
                write_error: 2.0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn simulated_storage_truncate_below_synced_restores_on_crash() {
        let mut rng = stream(3, "test", 0);
        let mut s = MemStorage::default();
        s.append("log", b"abcdef").unwrap();
        s.sync("log").unwrap();
        s.truncate("log", 2).unwrap();
        s.crash(&mut rng);
        assert_eq!(s.read("log"), Some(&b"abcdef"[..]));
        assert!(s.truncate("log", 100).is_err());
    }
}
