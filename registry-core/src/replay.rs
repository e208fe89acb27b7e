//! Reading the log back: records in order, chunk by chunk, and folding them into
//! projections. `rebuild`, start-up catch-up and `verify` are built on this.

use crate::event::Event;
use crate::projection::fold::{self, FoldError};
use crate::record::RecordRef;
use crate::secrets::Secrets;
use crate::storage::view::{Corruption, ReadError, View, open_value};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

use crate::projection::state::meta;
use crate::storage::memory::MemoryStore;
use crate::storage::{KeyValue, Storage, StorageError, Tree, WriteBatch};
use crate::writer::seq_key;

/// How many records are read (and folded) per chunk.
pub const CHUNK: usize = 4096;

/// How many pending writes a fold holds in memory before committing them (~100 MB).
pub const FOLD_COMMIT_WRITES: usize = 500_000;

/// Why the log could not be replayed; names the record.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("record {seq}: {reason}")]
    Record { seq: u64, reason: String },
    #[error("record {seq}: {cause}")]
    Fold { seq: u64, cause: FoldError },
}

impl ReplayError {
    /// The sequence number of the first bad record, when one is to blame.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ReplayError::Storage(_) => None,
            ReplayError::Record { seq, .. } | ReplayError::Fold { seq, .. } => Some(*seq),
        }
    }
}

/// Reads records `from..` in chunks, calling `each(seq, stored bytes)` for each after
/// checking the key sequence is continuous and the checksum holds.
pub fn for_each_record(
    store: &dyn Storage,
    from: u64,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), ReplayError>,
) -> Result<u64, ReplayError> {
    let mut next = from;
    loop {
        let chunk = store.range_from(Tree::Log, &seq_key(next), CHUNK)?;
        if chunk.is_empty() {
            return Ok(next);
        }
        for (key, stored) in chunk {
            if key.as_slice() != seq_key(next) {
                return Err(ReplayError::Record { seq: next, reason: "missing (the sequence has a gap)".into() });
            }
            let bytes = open_value(Tree::Log, &key, &stored)
                .map_err(|c: Corruption| ReplayError::Record { seq: next, reason: c.reason })?;
            each(next, &bytes)?;
            next += 1;
        }
    }
}

/// Decodes a record's event, naming the record on failure.
pub fn decode_event(seq: u64, record: &RecordRef<'_>) -> Result<Event, ReplayError> {
    Event::decode(record.header.kind, record.payload).map_err(|e| ReplayError::Record { seq, reason: e.to_string() })
}

/// Folds records `from..` of `log` into the projections of `target`, committing every
/// chunk (without flushing; the caller flushes). Returns the log size.
pub fn fold_log(
    log: &dyn Storage,
    target: &dyn Storage,
    secrets: &Secrets,
    from: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, ReplayError> {
    let mut view = View::new(target);
    let mut last_applied = None;
    let mut tree = crate::merkle_store::TreeEdge::load(target, from)
        .map_err(|e| ReplayError::Fold { seq: from, cause: e.into() })?;
    let end = for_each_record(log, from, |seq, bytes| {
        let record = RecordRef::parse(bytes).map_err(|e| ReplayError::Record { seq, reason: e.to_string() })?;
        let event = decode_event(seq, &record)?;
        fold::fold(&mut view, secrets, seq, &event).map_err(|cause| ReplayError::Fold { seq, cause })?;
        crate::merkle_store::append(&mut view, &mut tree, seq, bytes)
            .map_err(|c| ReplayError::Fold { seq, cause: ReadError::from(c).into() })?;
        last_applied = Some(seq);
        if (seq + 1) % CHUNK as u64 == 0 {
            // Commit in large chunks: reads of what is pending stay in memory.
            if view.pending_len() >= FOLD_COMMIT_WRITES {
                fold::mark_applied(&mut view, seq);
                target.commit(&view.take_batch(), false)?;
            }
            progress(seq + 1);
        }
        Ok(())
    })?;
    if let Some(seq) = last_applied {
        fold::mark_applied(&mut view, seq);
    }
    target.commit(&view.take_batch(), false)?;
    progress(end);
    Ok(end)
}

/// The sequence number every projection has applied, or `None` if none has.
///
/// A projection with no marker at all (one added by a newer version, or one whose
/// rebuild was interrupted) makes the answer `None`, so that the registry rebuilds;
/// two markers that disagree are corruption.
pub fn applied(store: &dyn Storage) -> Result<Option<u64>, ReadError> {
    let view = View::new(store);
    let mut applied = None;
    for tree in Tree::PROJECTIONS {
        let seq = crate::projection::state::read_u64(&view, &crate::projection::state::meta::applied(tree))?;
        let Some(seq) = seq else { return Ok(None) };
        match applied {
            None => applied = Some(seq),
            Some(a) if a != seq => {
                return Err(Corruption::new(
                    Tree::Meta,
                    &crate::projection::state::meta::applied(tree),
                    "projections disagree on the sequence applied",
                )
                .into());
            }
            Some(_) => {}
        }
    }
    Ok(applied)
}

/// A fresh fold of the whole log, in memory: projections folded into a
/// [`MemoryStore`], keyring entries read through from the live store (the fold needs
/// the keys; it never changes the live store).
pub struct FreshFold<'a> {
    memory: MemoryStore,
    live: &'a dyn Storage,
}

impl<'a> FreshFold<'a> {
    /// Folds every record of `store`'s log.
    pub fn of(store: &'a dyn Storage, secrets: &Secrets, progress: &mut dyn FnMut(u64)) -> Result<Self, ReplayError> {
        let fresh = Self { memory: MemoryStore::new(), live: store };
        fold_log(store, &fresh, secrets, 0, progress)?;
        Ok(fresh)
    }

    /// One freshly folded projection tree (stored values, checksums included).
    pub fn tree(&self, tree: Tree) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, StorageError> {
        self.memory.snapshot(tree)
    }
}

impl Storage for FreshFold<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        match self.memory.get(tree, key)? {
            None if tree == Tree::Keyring => self.live.get(tree, key),
            found => Ok(found),
        }
    }
    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StorageError> {
        self.memory.scan_prefix(tree, prefix)
    }
    fn range_from(&self, tree: Tree, from: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError> {
        self.memory.range_from(tree, from, limit)
    }
    fn range_back(
        &self,
        tree: Tree,
        prefix: &[u8],
        before: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        self.memory.range_back(tree, prefix, before, limit)
    }
    fn last(&self, tree: Tree) -> Result<Option<KeyValue>, StorageError> {
        self.memory.last(tree)
    }
    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.memory.commit(batch, durable)
    }
    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// One tree's entries, as stored (checksums included), in key order.
pub type TreeEntries = BTreeMap<Vec<u8>, Vec<u8>>;

/// Reads every entry of the live projection trees into memory, chunk by chunk.
pub fn live_projections(store: &dyn Storage) -> Result<BTreeMap<Tree, TreeEntries>, StorageError> {
    let mut trees = BTreeMap::new();
    for tree in Tree::PROJECTIONS {
        let mut entries = TreeEntries::new();
        let mut from = Vec::new();
        loop {
            let chunk = store.range_from(tree, &from, CHUNK)?;
            let Some((last_key, _)) = chunk.last() else {
                break;
            };
            from = [last_key.as_slice(), &[0]].concat();
            entries.extend(chunk);
        }
        trees.insert(tree, entries);
    }
    Ok(trees)
}

/// Folds the log afresh and, at the same time on another thread, reads the live
/// projections: the two halves of both `verify` and `rebuild`.
pub fn fresh_and_live<'a>(
    store: &'a dyn Storage,
    secrets: &Secrets,
    progress: &mut dyn FnMut(u64),
) -> Result<(FreshFold<'a>, BTreeMap<Tree, TreeEntries>), ReplayError> {
    std::thread::scope(|scope| {
        let live = scope.spawn(|| live_projections(store));
        let fresh = FreshFold::of(store, secrets, progress);
        let live = live.join().map_err(|_| StorageError::Engine("reading the projections panicked".into()))?;
        Ok((fresh?, live?))
    })
}

/// Merges a live projection tree with its fresh fold, in key order, and calls
/// `differs(key, fresh value)` for every key whose live value is not the fresh one
/// (`None`: the key should not exist). Stops early when `differs` breaks.
pub fn diff_tree(
    live: &TreeEntries,
    fresh: &TreeEntries,
    mut differs: impl FnMut(&[u8], Option<&[u8]>) -> ControlFlow<()>,
) {
    let mut fresh_entries = fresh.iter().peekable();
    for (key, value) in live {
        while let Some((fresh_key, fresh_value)) = fresh_entries.next_if(|(k, _)| *k < key) {
            if differs(fresh_key, Some(fresh_value)).is_break() {
                return;
            }
        }
        let verdict = match fresh_entries.next_if(|(k, _)| *k == key) {
            Some((_, fresh_value)) if fresh_value == value => ControlFlow::Continue(()),
            Some((_, fresh_value)) => differs(key, Some(fresh_value)),
            None => differs(key, None),
        };
        if verdict.is_break() {
            return;
        }
    }
    for (fresh_key, fresh_value) in fresh_entries {
        if differs(fresh_key, Some(fresh_value)).is_break() {
            return;
        }
    }
}

/// How many corrections `rebuild` commits at a time.
const PATCH_WRITES: usize = 65_536;

/// Rebuilds the projections from the log: folds the whole log afresh (in memory) and
/// writes only the differences into the live projections. Correct from any starting
/// state (empty, stale, corrupt or half-rebuilt) and nearly write-free on a healthy
/// store. Run with the registry stopped. Returns the number of records folded.
///
/// The projections' applied markers are removed first and restored last, so that a
/// rebuild interrupted half-way is redone when the registry next opens.
pub fn rebuild(store: &dyn Storage, secrets: &Secrets, progress: &mut dyn FnMut(u64)) -> Result<u64, ReplayError> {
    let mut unmark = WriteBatch::default();
    for tree in Tree::PROJECTIONS {
        unmark.remove(Tree::Meta, meta::applied(tree));
    }
    store.commit(&unmark, true)?;
    let (fresh, live) = fresh_and_live(store, secrets, progress)?;
    let empty = TreeEntries::new();
    for tree in Tree::PROJECTIONS {
        let wanted = fresh.tree(tree)?;
        let mut patch = WriteBatch::default();
        let mut failed = None;
        diff_tree(live.get(&tree).unwrap_or(&empty), &wanted, |key, value| {
            match value {
                Some(value) => patch.put(tree, key.to_vec(), value.to_vec()),
                None => patch.remove(tree, key.to_vec()),
            }
            if patch.len() >= PATCH_WRITES
                && let Err(e) = store.commit(&std::mem::take(&mut patch), false)
            {
                failed = Some(e);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
        store.commit(&patch, false)?;
    }
    store.flush()?;
    Ok(log_size(store)?)
}

/// How many records the log holds.
pub fn log_size(store: &dyn Storage) -> Result<u64, StorageError> {
    Ok(store
        .last(Tree::Log)?
        .and_then(|(k, _)| <[u8; 8]>::try_from(k.as_slice()).ok())
        .map_or(0, |k| u64::from_be_bytes(k) + 1))
}
