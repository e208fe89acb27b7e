//! fjall (a log-structured merge tree) behind [`Storage`]: every [`Tree`] in one
//! keyspace behind its one-byte tag, as in [`super::sled_store`].
//!
//! The registry's truth stays in sled. fjall holds what is thrown away: the fresh fold
//! of a log too large for memory (`replay::ScratchFold`), where its memory stays
//! bounded by its memtables and block cache at any size (sled 0.34's grows with its
//! store: BENCHMARKS.md, "Verify and rebuild in bounded memory"). The benchmarks also
//! run the registry over it (`sequencer_load`, `ENGINE=fjall`) to measure what the
//! engine costs.

use std::path::Path;

use super::sled_store::tagged;
use super::{KeyValue, Storage, StorageError, Tree, WriteBatch, read_capacity};

/// A fjall database and its one keyspace.
pub struct FjallStore {
    db: fjall::Database,
    keys: fjall::Keyspace,
}

fn engine(e: impl std::fmt::Display) -> StorageError {
    StorageError::Engine(format!("fjall: {e}"))
}

/// A scratch store's memtables: flushed to disk at this size. 64 MiB (fjall's default)
/// rather than 16: fewer, larger tables to flush and compact, and more of the fold's
/// recent writes read back from memory; verify on disk at 1 M persons used 12% less
/// CPU in seven alternated pairs, for about 100 MB more at its peak (BENCHMARKS.md,
/// "The duplicate-search blocks logged").
const SCRATCH_MEMTABLE_BYTES: u64 = 64 << 20;

/// A scratch store's journal: the least fjall allows (64 MiB), so that memtables are
/// flushed early.
const SCRATCH_JOURNAL_BYTES: u64 = 64 << 20;

/// fjall's background workers (flushes and compactions): its default, one a core up
/// to four, but never fewer than three. With two workers (the default on two cores),
/// fjall 3.1's worker 0 hands each compaction message back to the queue for the other
/// worker and takes it again at once while that one is busy: a spin that took about
/// 11% of the CPU of a verify folded on disk here, and 0.2% with a third worker to
/// take the message. One worker would not spin, but fjall 3.1 can deadlock with one
/// (a worker blocked sending to its own full queue: fjall-rs/fjall#323).
fn worker_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(3, 4)
}

impl FjallStore {
    /// Opens (or creates) a store at `dir`, with a block cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let db = fjall::Database::builder(dir)
            .cache_size(cache_bytes)
            .worker_threads(worker_threads())
            .open()
            .map_err(engine)?;
        let keys = db.keyspace("registry", fjall::KeyspaceCreateOptions::default).map_err(engine)?;
        Ok(Self { db, keys })
    }

    /// Creates a throwaway store at `dir`, deleted when dropped, with a block cache of
    /// `cache_bytes` and memtables of [`SCRATCH_MEMTABLE_BYTES`].
    pub fn open_scratch(dir: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let db = fjall::Database::builder(dir)
            .cache_size(cache_bytes)
            .max_journaling_size(SCRATCH_JOURNAL_BYTES)
            .temporary(true)
            .worker_threads(worker_threads())
            .open()
            .map_err(engine)?;
        let keys = db
            .keyspace("registry", || fjall::KeyspaceCreateOptions::default().max_memtable_size(SCRATCH_MEMTABLE_BYTES))
            .map_err(engine)?;
        Ok(Self { db, keys })
    }

    /// The entries of `iter` (all in one tree), untagged, at most `limit`, with room
    /// reserved for `expected` of them.
    fn collect(
        iter: impl Iterator<Item = fjall::Guard>,
        limit: usize,
        expected: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        let mut entries = Vec::with_capacity(expected);
        for guard in iter.take(limit) {
            let (key, value) = guard.into_inner().map_err(engine)?;
            entries.push((key.get(1..).unwrap_or_default().to_vec(), value.to_vec()));
        }
        Ok(entries)
    }
}

impl Storage for FjallStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.keys.get(tagged(tree, key)).map_err(engine)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StorageError> {
        Self::collect(self.keys.prefix(tagged(tree, prefix)), usize::MAX, 0)
    }

    fn range_from(&self, tree: Tree, from: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError> {
        let end = [tree as u8 + 1];
        Self::collect(self.keys.range(tagged(tree, from).as_slice()..end.as_slice()), limit, read_capacity(limit))
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
        let (lo, hi) = (tagged(tree, prefix), tagged(tree, before));
        Self::collect(self.keys.range(lo.as_slice()..hi.as_slice()).rev(), limit, read_capacity(limit))
    }

    fn last(&self, tree: Tree) -> Result<Option<KeyValue>, StorageError> {
        Ok(Self::collect(self.keys.prefix([tree as u8]).rev(), 1, 1)?.pop())
    }

    /// One atomic fjall batch; when `durable`, the journal is then synced.
    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        let mut writes = self.db.batch();
        for (tree, entries) in &batch.writes {
            for (key, value) in entries {
                match value {
                    Some(value) => writes.insert(&self.keys, tagged(*tree, key), value.as_slice()),
                    None => writes.remove(&self.keys, tagged(*tree, key)),
                }
            }
        }
        writes.commit().map_err(engine)?;
        if durable {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.persist(fjall::PersistMode::SyncAll).map_err(engine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_store_reads_back_its_trees_apart_and_is_deleted_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scratch");
        let store = FjallStore::open_scratch(&path, 1 << 20).unwrap();
        let mut batch = WriteBatch::default();
        for i in 0u8..10 {
            batch.put(Tree::Persons, vec![i], vec![i, i]);
            batch.put(Tree::Numbers, vec![i], vec![0xff - i]);
        }
        batch.remove(Tree::Persons, vec![3]);
        store.commit(&batch, false).unwrap();
        assert_eq!(store.get(Tree::Persons, &[2]).unwrap(), Some(vec![2, 2]));
        assert_eq!(store.get(Tree::Persons, &[3]).unwrap(), None);
        let from: Vec<u8> = store.range_from(Tree::Persons, &[7], 10).unwrap().into_iter().map(|(k, _)| k[0]).collect();
        assert_eq!(from, [7, 8, 9], "one tree's keys only, untagged, in order");
        let back: Vec<u8> =
            store.range_back(Tree::Numbers, &[], &[5], 2).unwrap().into_iter().map(|(k, _)| k[0]).collect();
        assert_eq!(back, [4, 3]);
        assert_eq!(store.last(Tree::Persons).unwrap(), Some((vec![9], vec![9, 9])));
        assert_eq!(store.scan_prefix(Tree::Numbers, &[]).unwrap().len(), 10);
        assert!(path.exists());
        drop(store);
        assert!(!path.exists(), "a scratch store is deleted when dropped");
    }
}
