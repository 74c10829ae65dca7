//! A node's storage on a real disk, with the contract of [`Storage`]: reads
//! see every write; appends reach the OS at once and the disk on `sync`
//! (fsync); a rewrite (`write`, `truncate`) is kept in memory and replaces
//! the file atomically on `sync` (temporary file, fsync, rename, fsync of
//! the directory), so a crash shows the old synced content or the new.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::node::Storage;

pub struct DiskStorage {
    dir: PathBuf,
    files: BTreeMap<String, Vec<u8>>,
    /// Files rewritten since their last sync (the disk has the old content).
    rewritten: BTreeSet<String>,
}

/// File names are the node's own; keep them to a safe alphabet.
fn check_name(name: &str) -> io::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad storage file name {name:?}"),
        ))
    }
}

impl DiskStorage {
    /// Opens (creating) the directory and loads every file in it.
    pub fn open(dir: &Path) -> io::Result<DiskStorage> {
        fs::create_dir_all(dir)?;
        let mut files = BTreeMap::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") || check_name(&name).is_err() || !entry.file_type()?.is_file()
            {
                continue;
            }
            files.insert(name, fs::read(entry.path())?);
        }
        Ok(DiskStorage {
            dir: dir.to_path_buf(),
            files,
            rewritten: BTreeSet::new(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

impl Storage for DiskStorage {
    fn read(&self, file: &str) -> Option<&[u8]> {
        self.files.get(file).map(Vec::as_slice)
    }

    fn write(&mut self, file: &str, data: &[u8]) -> io::Result<()> {
        check_name(file)?;
        self.files.insert(file.to_string(), data.to_vec());
        self.rewritten.insert(file.to_string());
        Ok(())
    }

    fn append(&mut self, file: &str, data: &[u8]) -> io::Result<()> {
        check_name(file)?;
        if self.rewritten.contains(file) {
            // The disk holds old content: the whole file goes out on sync.
            self.files
                .entry(file.to_string())
                .or_default()
                .extend_from_slice(data);
            return Ok(());
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(file))?;
        f.write_all(data)?;
        self.files
            .entry(file.to_string())
            .or_default()
            .extend_from_slice(data);
        Ok(())
    }

    fn truncate(&mut self, file: &str, len: usize) -> io::Result<()> {
        let content = self
            .files
            .get_mut(file)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file {file}")))?;
        if len > content.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot truncate {file} of {} bytes to {len}", content.len()),
            ));
        }
        content.truncate(len);
        self.rewritten.insert(file.to_string());
        Ok(())
    }

    fn remove(&mut self, file: &str) -> io::Result<()> {
        self.files.remove(file);
        self.rewritten.remove(file);
        match fs::remove_file(self.path(file)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.sync_dir()
    }

    fn sync(&mut self, file: &str) -> io::Result<()> {
        let Some(content) = self.files.get(file) else {
            return Ok(());
        };
        if self.rewritten.remove(file) {
            let tmp = self.path(&format!("{file}.tmp"));
            let mut f = File::create(&tmp)?;
            f.write_all(content)?;
            f.sync_all()?;
            fs::rename(&tmp, self.path(file))?;
            self.sync_dir()
        } else {
            let path = self.path(file);
            if !path.exists() {
                File::create(&path)?;
                self.sync_dir()?;
            }
            OpenOptions::new().append(true).open(path)?.sync_all()
        }
    }

    fn files(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_disk_storage_survives_reopen_and_drops_unsynced_rewrites() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = DiskStorage::open(dir.path()).unwrap();
            s.append("log", b"abc").unwrap();
            s.sync("log").unwrap();
            s.write("view", b"1").unwrap();
            s.sync("view").unwrap();
            s.write("view", b"2").unwrap(); // never synced: a crash loses it
            s.append("log", b"def").unwrap(); // reached the OS
            assert_eq!(s.read("view"), Some(&b"2"[..]));
        }
        let mut s = DiskStorage::open(dir.path()).unwrap();
        assert_eq!(s.read("view"), Some(&b"1"[..]));
        assert_eq!(s.read("log"), Some(&b"abcdef"[..]));
        s.truncate("log", 2).unwrap();
        s.sync("log").unwrap();
        s.remove("view").unwrap();
        let s = DiskStorage::open(dir.path()).unwrap();
        assert_eq!(s.read("log"), Some(&b"ab"[..]));
        assert_eq!(s.files(), vec!["log".to_string()]);
    }

    #[test]
    fn local_disk_storage_refuses_path_tricks() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = DiskStorage::open(dir.path()).unwrap();
        for bad in ["../x", "a/b", "", ".hidden"] {
            assert!(s.write(bad, b"x").is_err(), "{bad}");
            assert!(s.append(bad, b"x").is_err(), "{bad}");
        }
    }
}
