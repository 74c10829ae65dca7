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

/// The simulator's storage: in memory, with the crash semantics above.
#[derive(Debug, Default, Clone)]
pub struct MemStorage {
    files: BTreeMap<String, MemFile>,
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
}

impl Storage for MemStorage {
    fn read(&self, file: &str) -> Option<&[u8]> {
        self.files.get(file).map(|f| f.data.as_slice())
    }

    fn write(&mut self, file: &str, data: &[u8]) -> io::Result<()> {
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
