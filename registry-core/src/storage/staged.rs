//! The batch being written, kept from readers until it is durable: [`StagedStore`]
//! wraps the registry's store, and while [`Storage::commit_staged`] writes a batch key
//! by key beneath it and flushes it, every read answers as if none of the batch were
//! there (each of the batch's keys with the value it held before the batch, from the
//! intent's before-image in memory; every other key from the store). Once the batch
//! is durable it is unstaged, and reads find all of it.
//!
//! So a reader never sees half a batch, and never anything a crash could take back:
//! what a look-up answered is on disk. (The batch's commands are answered only after
//! that too; the sequencer builds the next batch over the one in flight with its own
//! overlay, not through this store.)
//!
//! Why no read sees part of a batch: the before-image is staged before the batch's
//! first write reaches the store and unstaged after its flush. A read of one of its
//! keys is answered from the before-image; a read of any other key finds the same
//! value before, during and after the batch. A read of several keys (a scan, `last`)
//! holds the staged slot for its whole length, so that no batch is staged or unstaged
//! in the middle of it. So each read answers as the durable store stands between two
//! batches, and a later read never as an earlier state than a read before it (what an
//! atomic batch gave readers, without stopping them).
//!
//! A staged commit that fails part-way leaves part of its batch in the store. The
//! before-image stays staged, so readers go on seeing the store as it was before the
//! batch (what the opening's undo restores), and every later write is refused, so
//! that nothing is built on it, until the registry is restarted and the opening
//! undoes it from the intent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use super::written_keys::WrittenKeys;
use super::{Intent, KeyValue, Storage, StorageError, Tree, WriteBatch};

/// A store that shows readers the batch being committed only once it is durable.
pub struct StagedStore {
    inner: Arc<dyn Storage>,
    /// The before-image of the batch being committed (its keys with their values
    /// before it), while it is written and flushed.
    staged: RwLock<Option<Staged>>,
    /// Set when a staged commit failed part-way: the store needs the opening's undo.
    broken: AtomicBool,
}

type Writes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A staged before-image, with its keys' fingerprints when it is large: most point
/// reads during a commit are of keys the batch does not write (the sequencer's, which
/// builds the next batch meanwhile), and skip its ordered maps by one hash.
struct Staged {
    before: Arc<WriteBatch>,
    keys: Option<WrittenKeys>,
}

fn broken() -> StorageError {
    StorageError::Engine("an earlier commit failed part-way; restart the registry to undo it".into())
}

impl StagedStore {
    pub fn new(inner: Arc<dyn Storage>) -> Self {
        Self { inner, staged: RwLock::new(None), broken: AtomicBool::new(false) }
    }

    /// `read` with the staged before-image's entries in `tree` (`None`: no batch is
    /// staged, or it writes nothing there), the slot held throughout: the committer
    /// stages and unstages between reads, never during one.
    fn over_staged<R>(&self, tree: Tree, read: impl FnOnce(Option<&Writes>) -> R) -> R {
        let staged = self.staged.read().unwrap_or_else(|e| e.into_inner());
        read(staged.as_ref().and_then(|staged| staged.before.writes.get(&tree)))
    }

    /// `read` with the staged before-image's entry for `key` (`None`: no batch is
    /// staged, or it does not write `key`), the slot held throughout as in
    /// [`Self::over_staged`].
    fn over_staged_key<R>(&self, tree: Tree, key: &[u8], read: impl FnOnce(Option<&Option<Vec<u8>>>) -> R) -> R {
        let staged = self.staged.read().unwrap_or_else(|e| e.into_inner());
        read(staged.as_ref().and_then(|staged| WrittenKeys::in_batch(staged.keys.as_ref(), &staged.before, tree, key)))
    }

    /// Stages `before` (or unstages, with `None`), fingerprinting its keys first, out
    /// of the readers' way.
    fn stage(&self, before: Option<Arc<WriteBatch>>) {
        let staged = before.map(|before| Staged { keys: WrittenKeys::of_large(&before), before });
        *self.staged.write().unwrap_or_else(|e| e.into_inner()) = staged;
    }

    fn check_whole(&self) -> Result<(), StorageError> {
        if self.broken.load(Ordering::Acquire) { Err(broken()) } else { Ok(()) }
    }
}

/// The stored entries of `chunk` with `writes` (those in the range `chunk` covers)
/// applied over them.
fn overlay<'w>(
    chunk: Vec<KeyValue>,
    writes: impl Iterator<Item = (&'w Vec<u8>, &'w Option<Vec<u8>>)>,
) -> Vec<KeyValue> {
    let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = chunk.into_iter().collect();
    for (key, value) in writes {
        match value {
            Some(value) => merged.insert(key.clone(), value.clone()),
            None => merged.remove(key),
        };
    }
    merged.into_iter().collect()
}

/// The smallest key after `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    [key, &[0]].concat()
}

impl StagedStore {
    fn range_from_over(
        &self,
        writes: &Writes,
        tree: Tree,
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        let mut out = Vec::new();
        let mut cursor = from.to_vec();
        while out.len() < limit {
            let chunk = self.inner.range_from(tree, &cursor, limit)?;
            // The keys this chunk speaks for: from the cursor to its last key, or to
            // the end of the tree if it ran out.
            let upper = (chunk.len() >= limit).then(|| chunk.last().map(|(k, _)| k.clone())).flatten();
            let covered = writes.range(cursor.clone()..).take_while(|(k, _)| upper.as_ref().is_none_or(|u| *k <= u));
            out.extend(overlay(chunk, covered));
            match upper {
                Some(upper) => cursor = successor(&upper),
                None => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    fn range_back_over(
        &self,
        writes: &Writes,
        tree: Tree,
        low: &[u8],
        before: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        let mut out = Vec::new();
        let mut high = before.to_vec();
        while out.len() < limit && low < high.as_slice() {
            let chunk = self.inner.range_back(tree, low, &high, limit)?;
            // The keys this chunk speaks for: from its smallest key (or `low`, if it
            // ran out) up to `high`.
            let full = chunk.len() >= limit;
            let lower = match chunk.last() {
                Some((k, _)) if full => k.clone(),
                _ => low.to_vec(),
            };
            let covered = writes.range(lower.clone()..high.clone());
            out.extend(overlay(chunk, covered).into_iter().rev());
            if !full {
                break;
            }
            high = lower;
        }
        out.truncate(limit);
        Ok(out)
    }
    /// The greatest key, `writes` applied over the store.
    fn last_over(&self, writes: &Writes, tree: Tree) -> Result<Option<KeyValue>, StorageError> {
        let staged_last = writes.iter().rev().find_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())));
        // The store's greatest key that the batch does not remove.
        let mut stored_last = self.inner.last(tree)?;
        while let Some((key, _)) = &stored_last
            && matches!(writes.get(key), Some(None))
        {
            stored_last = self.inner.range_back(tree, &[], key, 1)?.pop();
        }
        Ok(match (staged_last, stored_last) {
            (Some(staged), Some(stored)) if stored.0 > staged.0 => Some(stored),
            (Some(staged), _) => Some(staged),
            (None, stored) => stored,
        })
    }
}

impl Storage for StagedStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.over_staged_key(tree, key, |staged| match staged {
            Some(value) => Ok(value.clone()),
            None => self.inner.get(tree, key),
        })
    }

    /// The staged value opened, or the inner store's checked read (through its cache).
    fn get_checked(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, super::view::ReadError> {
        self.over_staged_key(tree, key, |staged| match staged {
            Some(Some(stored)) => Ok(Some(super::view::open_value(tree, key, stored)?)),
            Some(None) => Ok(None),
            None => self.inner.get_checked(tree, key),
        })
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StorageError> {
        self.over_staged(tree, |writes| {
            let chunk = self.inner.scan_prefix(tree, prefix)?;
            Ok(match writes {
                Some(writes) => {
                    overlay(chunk, writes.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)))
                }
                None => chunk,
            })
        })
    }

    fn range_from(&self, tree: Tree, from: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError> {
        self.over_staged(tree, |writes| match writes {
            Some(writes) => self.range_from_over(writes, tree, from, limit),
            None => self.inner.range_from(tree, from, limit),
        })
    }

    fn range_back(&self, tree: Tree, low: &[u8], before: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError> {
        self.over_staged(tree, |writes| match writes {
            Some(writes) => self.range_back_over(writes, tree, low, before, limit),
            None => self.inner.range_back(tree, low, before, limit),
        })
    }

    fn last(&self, tree: Tree) -> Result<Option<KeyValue>, StorageError> {
        self.over_staged(tree, |writes| match writes {
            Some(writes) => self.last_over(writes, tree),
            None => self.inner.last(tree),
        })
    }
    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.check_whole()?;
        self.inner.commit(batch, durable)
    }

    fn commit_owned(&self, batch: WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.check_whole()?;
        self.inner.commit_owned(batch, durable)
    }

    fn write_in_order(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.check_whole()?;
        self.inner.write_in_order(batch, durable)
    }

    /// Readers see `intent.before` for the batch's keys until the inner commit has
    /// returned (durable, when `durable`), then the store.
    fn commit_staged(&self, batch: &Arc<WriteBatch>, intent: &Intent, durable: bool) -> Result<(), StorageError> {
        self.check_whole()?;
        self.stage(Some(Arc::clone(&intent.before)));
        let result = self.inner.commit_staged(batch, intent, durable);
        match result {
            Ok(()) => self.stage(None),
            // Kept staged: beneath it the store holds an unknown part of the batch,
            // which the next opening undoes to what the before-image shows.
            Err(_) => self.broken.store(true, Ordering::Release),
        }
        result
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;
    use proptest::prelude::*;

    const TREE: Tree = Tree::Persons;

    /// Keys from a small alphabet, so that the batch and the store overlap often.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0u8..4, 0..4)
    }

    fn writes() -> impl Strategy<Value = Vec<(Vec<u8>, Option<Vec<u8>>)>> {
        writes_of(key(), 24)
    }

    /// Any of [`key`]'s 85 keys, each as likely (`key` favours the short ones, so that
    /// its draws seldom reach `WrittenKeys::FROM` distinct keys).
    fn any_key() -> impl Strategy<Value = Vec<u8>> {
        let all: Vec<Vec<u8>> = (0..4u32)
            .flat_map(|len| (0..4u32.pow(len)).map(move |n| (0..len).map(|i| (n / 4u32.pow(i) % 4) as u8).collect()))
            .collect();
        proptest::sample::select(all)
    }

    /// A batch to stage: up to 200 writes, so that about two batches in five hold
    /// `WrittenKeys::FROM` keys or more and are fingerprinted when staged.
    fn staged_writes() -> impl Strategy<Value = Vec<(Vec<u8>, Option<Vec<u8>>)>> {
        writes_of(any_key(), 200)
    }

    fn writes_of(
        key: impl Strategy<Value = Vec<u8>>,
        most: usize,
    ) -> impl Strategy<Value = Vec<(Vec<u8>, Option<Vec<u8>>)>> {
        let value = proptest::collection::vec(any::<u8>(), 1..3).prop_map(|v| crate::storage::checksum::seal(&v));
        proptest::collection::vec((key, proptest::option::of(value)), 0..most)
    }

    fn batch_of(writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> WriteBatch {
        batch_of_in(TREE, writes)
    }

    fn batch_of_in(tree: Tree, writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> WriteBatch {
        let mut batch = WriteBatch::default();
        for (key, value) in writes {
            match value {
                Some(value) => batch.put(tree, key.clone(), value.clone()),
                None => batch.remove(tree, key.clone()),
            }
        }
        batch
    }

    /// Every read of `store` and of `model` agrees.
    fn reads_agree(store: &dyn Storage, model: &dyn Storage, probes: &[Vec<u8>]) -> Result<(), TestCaseError> {
        prop_assert_eq!(store.last(TREE)?, model.last(TREE)?);
        for probe in probes {
            prop_assert_eq!(store.get(TREE, probe)?, model.get(TREE, probe)?);
            prop_assert_eq!(store.get_checked(TREE, probe)?, model.get_checked(TREE, probe)?);
            prop_assert_eq!(store.scan_prefix(TREE, probe)?, model.scan_prefix(TREE, probe)?);
            for limit in [0, 1, 2, 5, 64] {
                prop_assert_eq!(store.range_from(TREE, probe, limit)?, model.range_from(TREE, probe, limit)?);
                for low in [&[][..], &[1], &[2, 0]] {
                    prop_assert_eq!(
                        store.range_back(TREE, low, probe, limit)?,
                        model.range_back(TREE, low, probe, limit)?
                    );
                }
            }
        }
        Ok(())
    }

    /// The intent of `batch` over `store` as it stands: each of the batch's keys with
    /// its value now (what `commit_intent` derives for the writer's batches).
    fn intent_over(store: &dyn Storage, batch: &WriteBatch) -> Intent {
        let mut before = WriteBatch::default();
        for (tree, writes) in &batch.writes {
            for key in writes.keys() {
                match store.get(*tree, key).unwrap() {
                    Some(value) => before.put(*tree, key.clone(), value),
                    None => before.remove(*tree, key.clone()),
                }
            }
        }
        Intent { stored: b"intent".to_vec(), before: Arc::new(before) }
    }

    proptest! {
        /// While a batch is written key by key beneath it, at every point of the
        /// writing (none of it, any prefix, all of it but not yet unstaged), the
        /// staged store reads as the store before the batch: what a crash then would
        /// be undone to. Once unstaged, it reads as the store with the whole batch.
        /// Batches large and small, so that a staged batch's fingerprints are tried.
        #[test]
        fn readers_see_none_of_a_batch_until_it_is_unstaged_and_then_all_of_it(
            stored in writes(),
            staged in staged_writes(),
            written in 0usize..200,
            probes in proptest::collection::vec(key(), 1..6),
        ) {
            let inner = Arc::new(MemoryStore::new());
            inner.commit(&batch_of(&stored), false)?;
            let before = MemoryStore::new();
            before.commit(&batch_of(&stored), false)?;
            let batch = Arc::new(batch_of(&staged));
            let after = MemoryStore::new();
            after.commit(&batch_of(&stored), false)?;
            after.commit(&batch, false)?;
            let intent = intent_over(&*inner, &batch);
            // Part of the batch has reached the store, in key order.
            let part: Vec<_> =
                batch.writes.get(&TREE).into_iter().flatten().take(written).map(|(k, v)| (k.clone(), v.clone())).collect();
            inner.commit(&batch_of(&part), false)?;
            let store = StagedStore::new(inner.clone());
            store.stage(Some(Arc::clone(&intent.before)));
            reads_agree(&store, &before, &probes)?;
            // Written whole, still staged (not yet durable): still as before.
            inner.commit(&batch, false)?;
            reads_agree(&store, &before, &probes)?;
            store.stage(None);
            reads_agree(&store, &after, &probes)?;
        }
    }

    /// An engine whose staged commit fails half-way.
    struct FailsHalfWay(MemoryStore);

    impl Storage for FailsHalfWay {
        fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            self.0.get(tree, key)
        }
        crate::forward_scans!(0);
        fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
            self.0.commit(batch, durable)
        }
        /// Writes the first of the batch's entries, then fails.
        fn commit_staged(&self, batch: &Arc<WriteBatch>, _: &Intent, _: bool) -> Result<(), StorageError> {
            let mut half = WriteBatch::default();
            if let Some((tree, key, Some(value))) =
                batch.writes.iter().flat_map(|(t, w)| w.iter().map(move |(k, v)| (*t, k, v))).next()
            {
                half.put(tree, key.clone(), value.clone());
            }
            self.0.commit(&half, false)?;
            Err(StorageError::Engine("disk full".into()))
        }
        fn flush(&self) -> Result<(), StorageError> {
            Ok(())
        }
    }

    /// An engine that, as sled does, writes a staged batch one key at a time and scans
    /// one key at a time, letting others run between the keys.
    struct OneByOne(MemoryStore);

    impl Storage for OneByOne {
        fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            self.0.get(tree, key)
        }
        fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StorageError> {
            self.0.scan_prefix(tree, prefix)
        }
        fn range_from(&self, tree: Tree, from: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError> {
            let mut out: Vec<KeyValue> = Vec::new();
            let mut cursor = from.to_vec();
            while out.len() < limit {
                std::thread::yield_now();
                let Some(next) = self.0.range_from(tree, &cursor, 1)?.pop() else { break };
                cursor = successor(&next.0);
                out.push(next);
            }
            Ok(out)
        }
        fn range_back(
            &self,
            tree: Tree,
            low: &[u8],
            before: &[u8],
            limit: usize,
        ) -> Result<Vec<KeyValue>, StorageError> {
            self.0.range_back(tree, low, before, limit)
        }
        fn last(&self, tree: Tree) -> Result<Option<KeyValue>, StorageError> {
            self.0.last(tree)
        }
        fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
            self.0.commit(batch, durable)
        }
        fn commit_staged(&self, batch: &Arc<WriteBatch>, _: &Intent, _: bool) -> Result<(), StorageError> {
            for (tree, writes) in &batch.writes {
                for (key, value) in writes {
                    let one = batch_of_in(*tree, &[(key.clone(), value.clone())]);
                    self.0.commit(&one, false)?;
                    std::thread::yield_now();
                }
            }
            Ok(())
        }
        fn flush(&self) -> Result<(), StorageError> {
            Ok(())
        }
    }

    /// Scans running while batches are written key by key beneath them: every scan
    /// finds all the keys from one batch, none torn between two.
    #[test]
    fn a_scan_racing_the_writing_of_batches_sees_one_batch_whole() {
        const KEYS: u8 = 8;
        const BATCHES: u32 = 1_000;
        let store = Arc::new(StagedStore::new(Arc::new(OneByOne(MemoryStore::new()))));
        let done = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| {
                for n in 0..BATCHES {
                    let writes: Vec<_> = (0..KEYS).map(|k| (vec![k], Some(n.to_be_bytes().to_vec()))).collect();
                    let batch = Arc::new(batch_of(&writes));
                    store.commit_staged(&batch, &intent_over(&*store, &batch), false).unwrap();
                }
                done.store(true, Ordering::Release);
            });
            let mut scans = 0u32;
            while !done.load(Ordering::Acquire) {
                let seen = store.range_from(TREE, &[], 64).unwrap();
                let from: std::collections::BTreeSet<_> = seen.iter().map(|(_, v)| v.clone()).collect();
                assert!(from.len() <= 1, "scan {scans} saw a torn batch: {seen:?}");
                assert!(seen.is_empty() || seen.len() == usize::from(KEYS), "scan {scans}: {seen:?}");
                scans += 1;
            }
            writer.join().unwrap();
        });
    }

    #[test]
    fn after_a_staged_commit_fails_every_write_is_refused_and_readers_see_the_store_as_before_it() {
        let store = StagedStore::new(Arc::new(FailsHalfWay(MemoryStore::new())));
        store.commit(&batch_of(&[(vec![1], Some(vec![7]))]), true).unwrap();
        let batch = Arc::new(batch_of(&[(vec![1], Some(vec![9])), (vec![2], Some(vec![8]))]));
        let intent = intent_over(&store, &batch);
        assert!(store.commit_staged(&batch, &intent, true).is_err());
        // Half of the batch reached the store; readers see none of it, as the next
        // opening's undo will leave it.
        assert_eq!(store.inner.get(TREE, &[1]).unwrap(), Some(vec![9]), "the engine holds half the batch");
        assert_eq!(store.get(TREE, &[1]).unwrap(), Some(vec![7]));
        assert_eq!(store.get(TREE, &[2]).unwrap(), None);
        assert_eq!(store.range_from(TREE, &[], 10).unwrap(), vec![(vec![1], vec![7])]);
        assert_eq!(store.last(TREE).unwrap(), Some((vec![1], vec![7])));
        let refused = store.commit(&batch, true).unwrap_err();
        assert!(refused.to_string().contains("restart the registry"), "{refused}");
        assert!(store.commit_staged(&batch, &intent, true).is_err());
    }
}
