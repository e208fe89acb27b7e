//! Where `verify` and `rebuild` hold the fresh fold they compare the live projections
//! with ([`FoldSpace`]): in memory while the log is small enough, or else in a scratch
//! store on disk ([`ScratchFold`]), so that a national store (60 million persons, about
//! 1.4 KiB each in memory) is verified and rebuilt in bounded memory.
//!
//! The scratch store is fjall's ([`FjallStore`]), whose memory stays bounded by its
//! memtables and block cache however much it holds; sled 0.34's grows with its store.
//! It is created empty beside the data (a stale one, left by a fold that was killed,
//! is removed first) and deleted when the fold is done with it. It holds projection
//! values only, as the live store holds them: sealed, never personal data in clear.
//! Its `match_keys` holds the changes that make the duplicate search's blocks (a
//! person id and a birth-date tag each, as a block's entries do), which
//! `dedup::blocks::LaidOut` lays out as the live store's chunks when they are compared.

use std::path::{Path, PathBuf};

use crate::storage::fjall_store::FjallStore;
use crate::storage::{Storage, StorageError, Tree, WriteBatch};

/// The scratch store's directory under a data directory.
pub const SCRATCH_DIR: &str = "fold-scratch";

/// Logs of up to this many records are folded in memory by default: about 2.7 GiB at
/// the ~0.7 KiB a record a rebuild in memory adds at 1,000,000 persons, each linked
/// to one agency (BENCHMARKS.md, "The write-once trees compared as they are folded").
pub const DEFAULT_IN_MEMORY_RECORDS: u64 = 4_000_000;

/// How many pending writes a fold into a scratch store holds in memory before
/// committing them (~40 MB): the store's memtables answer the fold's reads of recent
/// writes nearly as fast.
pub const SCRATCH_COMMIT_WRITES: usize = 50_000;

/// The block cache of a scratch store: its reads are mostly the fold's own recent
/// writes, still in its memtables.
const SCRATCH_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Where a fresh fold is held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoldSpace {
    /// Where a scratch store may be made; `None`: always in memory.
    pub scratch: Option<PathBuf>,
    /// Logs of up to this many records are folded in memory, larger ones in the
    /// scratch store.
    pub in_memory_up_to: u64,
}

impl FoldSpace {
    /// Always in memory: for stores known to fit (tests, benchmarks, small stores).
    pub const IN_MEMORY: FoldSpace = FoldSpace { scratch: None, in_memory_up_to: u64::MAX };

    /// In memory up to `in_memory_up_to` records, beyond that in a scratch store under
    /// the data directory `dir` ([`SCRATCH_DIR`]).
    pub fn under(dir: &Path, in_memory_up_to: u64) -> Self {
        Self { scratch: Some(dir.join(SCRATCH_DIR)), in_memory_up_to }
    }

    /// Where a log of `records` records is folded: the scratch directory, or `None`
    /// for memory.
    pub fn scratch_for(&self, records: u64) -> Option<&Path> {
        self.scratch.as_deref().filter(|_| records > self.in_memory_up_to)
    }
}

impl Default for FoldSpace {
    /// In memory up to [`DEFAULT_IN_MEMORY_RECORDS`]; no scratch directory until one is
    /// given (a registry opened on a directory gives its own).
    fn default() -> Self {
        Self { scratch: None, in_memory_up_to: DEFAULT_IN_MEMORY_RECORDS }
    }
}

/// A fresh fold's target on disk: a scratch store for the projections, the live
/// store for the keyring entries the fold reads (the fold writes only erasures'
/// tombstones into its keyring, which shadow the live ones here as in memory).
pub struct ScratchFold<'a> {
    scratch: FjallStore,
    live: &'a dyn Storage,
}

impl<'a> ScratchFold<'a> {
    /// An empty scratch store at `dir` (whatever was there removed), reading keyring
    /// entries through from `live`. The directory is deleted when this is dropped.
    pub fn create(dir: &Path, live: &'a dyn Storage) -> Result<Self, StorageError> {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => tracing::warn!(dir = %dir.display(), "removed a scratch fold left by an interrupted run"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StorageError::Engine(format!("{}: cannot clear the scratch fold: {e}", dir.display())));
            }
        }
        let scratch = FjallStore::open_scratch(dir, SCRATCH_CACHE_BYTES)?;
        Ok(Self { scratch, live })
    }

    /// The projections folded so far (every tree but the keyring's is the fold's own).
    pub fn folded(&self) -> &dyn Storage {
        &self.scratch
    }
}

impl Storage for ScratchFold<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.scratch.get(tree, key)? {
            None if tree == Tree::Keyring => self.live.get(tree, key),
            found => Ok(found),
        }
    }
    crate::forward_scans!(scratch);
    /// Never durable: a fold cut short is started again from nothing.
    fn commit(&self, batch: &WriteBatch, _durable: bool) -> Result<(), StorageError> {
        self.scratch.commit(batch, false)
    }
    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
