//! One file per object, done safely: write a temporary file, fsync it, rename it over the
//! object's name, fsync the directory. Reads are one open and one read. A key's `/` is a
//! directory level.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Result, bail};

use super::BenchEngine;

/// Bytes a get reads in its one `read` call; larger objects are read on to their end.
const GET_BUFFER: usize = 64 * 1024;

pub struct Files {
    root: PathBuf,
    tmp: AtomicU64,
}

impl Files {
    pub fn open(dir: &Path) -> Result<Self> {
        let root = dir.join("objects");
        fs::create_dir_all(&root)?;
        Ok(Files { root, tmp: AtomicU64::new(0) })
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if key.split('/').any(|part| part.is_empty() || part.starts_with('.')) {
            bail!("key {key:?} has an empty or hidden component");
        }
        Ok(self.root.join(key))
    }

    fn temp_for(&self, path: &Path) -> Result<(PathBuf, PathBuf)> {
        let Some(dir) = path.parent() else { bail!("{} has no parent", path.display()) };
        if !dir.exists() {
            fs::create_dir_all(dir)?;
            sync_dir(dir.parent().unwrap_or(dir))?;
        }
        let n = self.tmp.fetch_add(1, Ordering::Relaxed);
        Ok((dir.join(format!(".tmp.{}.{n}", std::process::id())), dir.to_path_buf()))
    }

    /// Syncs the whole file system holding the objects.
    fn syncfs(&self) -> Result<()> {
        rustix::fs::syncfs(File::open(&self.root)?)?;
        Ok(())
    }

    /// Writes `value` under `key` through a synced temporary file; returns the directory to sync.
    fn write_synced(&self, key: &str, value: &[u8]) -> Result<PathBuf> {
        let path = self.path(key)?;
        let (tmp, dir) = self.temp_for(&path)?;
        let mut f = File::create(&tmp)?;
        f.write_all(value)?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        Ok(dir)
    }

    fn list_dir(dir: &Path) -> Result<Vec<(String, bool)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') {
                out.push((name, entry.file_type()?.is_dir()));
            }
        }
        out.sort();
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl BenchEngine for Files {
    fn name(&self) -> &'static str {
        "files"
    }

    fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        let dir = self.write_synced(key, value)?;
        sync_dir(&dir)
    }

    fn put_batch(&self, items: &[(String, Vec<u8>)], durable: bool) -> Result<()> {
        if !durable {
            for (k, v) in items {
                let path = self.path(k)?;
                if let Some(dir) = path.parent() {
                    fs::create_dir_all(dir)?;
                }
                fs::write(path, v)?;
            }
            return Ok(());
        }
        // The batch's durability in two file-system syncs rather than one fsync per file:
        // every temporary file is written, synced (syncfs), then renamed into place, and the
        // renames are synced. No object is ever visible with partial content, and all are
        // durable at return, as with the per-file protocol of `put`.
        let mut renames = Vec::with_capacity(items.len());
        for (k, v) in items {
            let path = self.path(k)?;
            let (tmp, _) = self.temp_for(&path)?;
            fs::write(&tmp, v)?;
            renames.push((tmp, path));
        }
        self.syncfs()?;
        for (tmp, path) in renames {
            fs::rename(tmp, path)?;
        }
        self.syncfs()
    }

    /// One open and one read into a buffer larger than a small object (`fs::read` also asks for
    /// the file's size and reads again to find its end: five system calls instead of three).
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let mut f = File::open(self.path(key)?)?;
        let mut buf: Vec<u8> = Vec::with_capacity(GET_BUFFER);
        let n = rustix::io::read(&f, rustix::buffer::spare_capacity(&mut buf))?;
        if n == GET_BUFFER {
            f.read_to_end(&mut buf)?;
        }
        Ok(buf)
    }

    fn delete_batch(&self, keys: &[String]) -> Result<()> {
        let mut dirs = BTreeSet::new();
        for k in keys {
            let path = self.path(k)?;
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(dir) = path.parent() {
                dirs.insert(dir.to_path_buf());
            }
        }
        for dir in dirs {
            sync_dir(&dir)?;
        }
        Ok(())
    }

    fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(limit);
        let after_top = after.map(|a| a.split('/').next().unwrap_or(a));
        for (name, is_dir) in Self::list_dir(&self.root)? {
            if out.len() >= limit {
                break;
            }
            if after_top.is_some_and(|t| name.as_str() < t) {
                continue;
            }
            if !is_dir {
                if after.is_none_or(|a| name.as_str() > a) {
                    out.push(name);
                }
                continue;
            }
            for (inner, _) in Self::list_dir(&self.root.join(&name))? {
                let key = format!("{name}/{inner}");
                if after.is_none_or(|a| key.as_str() > a) {
                    out.push(key);
                    if out.len() >= limit {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    fn put_stream(&self, key: &str, src: &mut dyn Read) -> Result<u64> {
        let path = self.path(key)?;
        let (tmp, dir) = self.temp_for(&path)?;
        let mut f = File::create(&tmp)?;
        let total = super::read_pieces(src, 1 << 20, |piece| {
            f.write_all(piece)?;
            Ok(())
        })?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        sync_dir(&dir)?;
        Ok(total)
    }

    fn get_stream(&self, key: &str, sink: &mut dyn FnMut(&[u8])) -> Result<u64> {
        let mut f = File::open(self.path(key)?)?;
        super::read_pieces(&mut f, 1 << 20, |piece| {
            sink(piece);
            Ok(())
        })
    }

    fn disk_bytes(&self) -> Result<u64> {
        super::du(&self.root)
    }

    fn compact(&self) -> Result<()> {
        Ok(()) // the file system frees a deleted file's blocks at once
    }
}
