//! The embedded default engine: sled 0.34.7. Every logical [`Tree`] is a namespace
//! (its one-byte tag, then the key) inside one sled tree, so that a [`WriteBatch`]
//! across trees is a single atomic `apply_batch`, durable with one `flush`.
//!
//! Why not one sled tree per logical tree: atomicity across sled trees needs a sled
//! transaction, which measured five times slower than a plain batch for the writer's
//! batches (see BENCHMARKS.md); one namespace-tagged tree gets atomicity at the cost
//! of a raw batch.

use std::path::Path;

use super::{Intent, KeyValue, Storage, StorageError, Tree, WriteBatch, read_capacity};

/// sled, opened at a directory.
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
}

fn engine(e: sled::Error) -> StorageError {
    StorageError::Engine(e.to_string())
}

/// The namespace tag of a logical tree: its position in [`Tree::ALL`].
fn tag(tree: Tree) -> u8 {
    tree as u8
}

/// `key` of `tree` as an engine that keeps every tree in one key space stores it:
/// behind the tree's tag.
pub fn tagged(tree: Tree, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(tag(tree));
    out.extend_from_slice(key);
    out
}

/// The page cache [`SledStore::open`] gives sled: 512 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 512 * 1024 * 1024;

/// How long an open waits for the directory's lock before reporting it in use: sled
/// 0.34 lets go of the lock from its background threads some moments after the last
/// handle is dropped, so a store opened just after another closed (an operator's
/// `verify` after the server stops, a reopen after a refused open) would otherwise
/// be refused. A running registry holds the lock for good, and is reported after this.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl SledStore {
    /// Opens (or creates) the database at `path`, with a page cache of
    /// [`DEFAULT_CACHE_BYTES`].
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) the database at `path` with a page cache of `cache_bytes`.
    /// A lock still held after [`LOCK_WAIT`] is [`StorageError::InUse`].
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match sled::Config::new().path(path).cache_capacity(cache_bytes).open() {
                Ok(db) => break db,
                // sled 0.34.7 reports a held lock only as this message (ErrorKind::Other);
                // sled is pinned, and a test keeps this match honest.
                Err(sled::Error::Io(io)) if io.to_string().starts_with("could not acquire lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StorageError::InUse(path.display().to_string()));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(engine(e)),
            }
        };
        let tree = db.open_tree("registry").map_err(engine)?;
        Ok(Self { db, tree })
    }

    /// The entries of `iter` (all in one tree), untagged, with room reserved for
    /// `expected` of them.
    fn untag(
        iter: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
        expected: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        let mut entries = Vec::with_capacity(expected);
        for entry in iter {
            let (key, value) = entry.map_err(engine)?;
            entries.push((key[1..].to_vec(), value.to_vec()));
        }
        Ok(entries)
    }

    /// The key range of one namespace.
    fn bounds(tree: Tree) -> (Vec<u8>, Vec<u8>) {
        (vec![tag(tree)], vec![tag(tree) + 1])
    }
}

impl Storage for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.tree.get(tagged(tree, key)).map_err(engine)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StorageError> {
        Self::untag(self.tree.scan_prefix(tagged(tree, prefix)), 0)
    }

    fn range_from(&self, tree: Tree, from: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError> {
        let (_, end) = Self::bounds(tree);
        Self::untag(self.tree.range(tagged(tree, from)..end).take(limit), read_capacity(limit))
    }

    fn range_back(
        &self,
        tree: Tree,
        prefix: &[u8],
        before: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        if before <= prefix {
            return Ok(Vec::new());
        }
        Self::untag(self.tree.range(tagged(tree, prefix)..tagged(tree, before)).rev().take(limit), read_capacity(limit))
    }

    fn last(&self, tree: Tree) -> Result<Option<KeyValue>, StorageError> {
        let (start, end) = Self::bounds(tree);
        Ok(Self::untag(self.tree.range(start..end).next_back().into_iter(), 1)?.pop())
    }

    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        let mut sled_batch = sled::Batch::default();
        for (tree, writes) in &batch.writes {
            for (key, value) in writes {
                match value {
                    Some(value) => sled_batch.insert(tagged(*tree, key), value.as_slice()),
                    None => sled_batch.remove(tagged(*tree, key)),
                }
            }
        }
        self.tree.apply_batch(sled_batch).map_err(engine)?;
        if durable {
            self.db.flush().map_err(engine)?;
        }
        Ok(())
    }

    fn write_in_order(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        for (tree, writes) in &batch.writes {
            for (key, value) in writes {
                match value {
                    Some(value) => self.tree.insert(tagged(*tree, key), value.as_slice()).map(|_| ()),
                    None => self.tree.remove(tagged(*tree, key)).map(|_| ()),
                }
                .map_err(engine)?;
            }
        }
        if durable {
            self.db.flush().map_err(engine)?;
        }
        Ok(())
    }

    /// sled recovers a prefix of the writes in the order they were made (its log is
    /// replayed up to the first write that did not reach the disk), so after a crash
    /// the intent is there whenever any of the batch is, and gone only once all of it
    /// is. Plain inserts take none of the process-wide lock an atomic batch holds for
    /// its whole application, so readers and the next batch's build go on meanwhile.
    fn commit_staged(
        &self,
        batch: &std::sync::Arc<WriteBatch>,
        intent: &Intent,
        durable: bool,
    ) -> Result<(), StorageError> {
        let (tree, key) = super::INTENT_KEY;
        self.tree.insert(tagged(tree, key), intent.stored.as_slice()).map_err(engine)?;
        self.write_in_order(batch, false)?;
        self.tree.remove(tagged(tree, key)).map_err(engine)?;
        if durable {
            self.db.flush().map_err(engine)?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map(|_| ()).map_err(engine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_opener_is_told_the_directory_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path()).unwrap();
        match SledStore::open(dir.path()) {
            Err(StorageError::InUse(path)) => assert_eq!(path, dir.path().display().to_string()),
            Err(other) => panic!("expected InUse, got {other}"),
            Ok(_) => panic!("a second opener must be refused"),
        }
    }
}
