//! A read-your-writes view over a store: reads see pending writes first, writes
//! accumulate into one [`WriteBatch`]. Values pass through the checksum envelope here,
//! so nothing above this layer touches raw stored bytes.

use std::cell::RefCell;
use std::collections::HashMap;

use huduma_log::record::HashedRecord;

use super::checksum;
use super::written_keys::WrittenKeys;
use super::{KeyValue, Storage, StorageError, Tree, WriteBatch};

/// A stored value failed its checksum or could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corruption in tree {tree}, key {key}: {reason}")]
pub struct Corruption {
    pub tree: &'static str,
    pub key: String,
    pub reason: String,
}

impl Corruption {
    pub fn new(tree: Tree, key: &[u8], reason: impl Into<String>) -> Self {
        Self { tree: tree.name(), key: hex(key), reason: reason.into() }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Either the engine failed or a value is corrupt.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Corrupt(#[from] Corruption),
}

/// Opens a stored envelope or names the corrupt entry.
pub fn open_value(tree: Tree, key: &[u8], stored: &[u8]) -> Result<Vec<u8>, Corruption> {
    checksum::open(stored).map(<[u8]>::to_vec).ok_or_else(|| Corruption::new(tree, key, "checksum mismatch"))
}

/// [`open_value`] of an owned envelope, without copying the value.
pub fn open_owned(tree: Tree, key: &[u8], stored: Vec<u8>) -> Result<Vec<u8>, Corruption> {
    checksum::open_owned(stored).ok_or_else(|| Corruption::new(tree, key, "checksum mismatch"))
}

/// [`open_owned`] of a stored log record, hashed once for its checksum and its chain
/// ([`checksum::open_record`]).
pub fn open_record(key: &[u8], stored: Vec<u8>) -> Result<HashedRecord, Corruption> {
    checksum::open_record(stored).ok_or_else(|| Corruption::new(Tree::Log, key, "checksum mismatch"))
}

/// Reads one checksummed value straight from a store ([`Storage::get_checked`]).
pub fn get_checked(store: &dyn Storage, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
    store.get_checked(tree, key)
}

/// Pending writes over a base store, optionally over a parent batch that is being
/// committed (the sequencer builds the next batch while the last one is flushed).
pub struct View<'a> {
    base: &'a dyn Storage,
    parent: Option<&'a WriteBatch>,
    pending: WriteBatch,
    /// Which keys the parent batch and the pending writes may hold, once either holds
    /// [`WrittenKeys::FROM`] writes or more (see [`WrittenKeys`]): a read of a key
    /// neither writes then skips both.
    parent_keys: Option<WrittenKeys>,
    pending_keys: Option<WrittenKeys>,
    /// What the store answered to [`View::get_remembered`], per tree, until the pending
    /// writes are taken (a key written here meanwhile is answered from the writes,
    /// which are looked at first).
    remembered: RefCell<HashMap<Tree, Remembered>>,
}

/// The fingerprints of a large batch's keys, as the view that wrote the batch kept
/// them ([`View::take_batch_and_keys`]): for the view built over that batch next
/// ([`View::over_with_keys`]), which then need not fingerprint it again (a fresh set
/// of a batch's keys was about 4% of the sequencer thread, most of it the kernel
/// zeroing the pages it landed on). Only a view makes them, from its own writes.
#[derive(Debug)]
pub struct BatchKeys(WrittenKeys);

/// One tree's remembered answers: key → the value the store held (`None`: absent).
type Remembered = HashMap<Vec<u8>, Option<Vec<u8>>>;

impl<'a> View<'a> {
    pub fn new(base: &'a dyn Storage) -> Self {
        Self::over(base, None)
    }

    /// A view that reads `parent`'s writes as if they were committed.
    pub fn over(base: &'a dyn Storage, parent: Option<&'a WriteBatch>) -> Self {
        Self::over_with_keys(base, parent, None)
    }

    /// [`View::over`], given `parent`'s fingerprints as the view that wrote it took
    /// them with it ([`View::take_batch_and_keys`]), so that they are not computed
    /// again (without them, a large parent is fingerprinted here).
    pub fn over_with_keys(base: &'a dyn Storage, parent: Option<&'a WriteBatch>, keys: Option<BatchKeys>) -> Self {
        let parent_keys = match keys {
            Some(BatchKeys(keys)) => Some(keys),
            None => parent.and_then(WrittenKeys::of_large),
        };
        Self {
            base,
            parent,
            pending: WriteBatch::default(),
            parent_keys,
            pending_keys: None,
            remembered: RefCell::default(),
        }
    }

    pub fn base(&self) -> &'a dyn Storage {
        self.base
    }

    /// The value under `key`: pending writes first, then the parent's, then the
    /// store's, checked. The pending and parent writes were sealed in memory by this
    /// process and never left it, so their checksums are cut off unchecked (a check
    /// guards what was stored, and cost a hash of every value a batch reads back).
    pub fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        match self.written(tree, key) {
            Some(found) => found,
            None => get_checked(self.base, tree, key),
        }
    }

    /// [`View::get`], remembering what the store answers until the key is written here
    /// or the pending writes are taken: for a value read more than once while one
    /// batch is built (a person, before an event and as the event changes them). Only
    /// for a tree that nothing but this view's owner writes while the view lives.
    pub fn get_remembered(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        if let Some(found) = self.written(tree, key) {
            return found;
        }
        if let Some(found) = self.remembered.borrow().get(&tree).and_then(|t| t.get(key)) {
            return Ok(found.clone());
        }
        let found = get_checked(self.base, tree, key)?;
        self.remembered.borrow_mut().entry(tree).or_default().insert(key.to_vec(), found.clone());
        Ok(found)
    }

    /// Whether this view has written (or removed) `key` of `tree` since its writes were
    /// last taken; the parent's writes do not count.
    pub fn writes(&self, tree: Tree, key: &[u8]) -> bool {
        self.pending_write(tree, key).is_some()
    }

    /// The pending writes' word on `key` (`Some(None)`: they remove it).
    fn pending_write(&self, tree: Tree, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        WrittenKeys::in_batch(self.pending_keys.as_ref(), &self.pending, tree, key)
    }

    /// The value of `key` as the pending writes, then the parent's, have it; `None`
    /// if neither writes it.
    fn written(&self, tree: Tree, key: &[u8]) -> Option<Result<Option<Vec<u8>>, ReadError>> {
        let written = match self.pending_write(tree, key) {
            Some(written) => written,
            None => {
                self.parent.and_then(|parent| WrittenKeys::in_batch(self.parent_keys.as_ref(), parent, tree, key))?
            }
        };
        Some(match written {
            Some(sealed) => match checksum::sealed_here(sealed) {
                Some(value) => Ok(Some(value.to_vec())),
                None => Err(Corruption::new(tree, key, "shorter than its checksum").into()),
            },
            None => Ok(None),
        })
    }

    /// The checked entries under `prefix`, as the store, the parent batch and the
    /// pending writes together have them, in key order.
    pub fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, ReadError> {
        let mut entries: std::collections::BTreeMap<Vec<u8>, Vec<u8>> =
            self.base.scan_prefix(tree, prefix)?.into_iter().collect();
        for batch in self.parent.into_iter().chain(std::iter::once(&self.pending)) {
            let Some(writes) = batch.writes.get(&tree) else { continue };
            for (key, value) in writes.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)) {
                match value {
                    Some(stored) => entries.insert(key.clone(), stored.clone()),
                    None => entries.remove(key),
                };
            }
        }
        entries
            .into_iter()
            .map(|(key, stored)| {
                let value = open_value(tree, &key, &stored)?;
                Ok((key, value))
            })
            .collect()
    }

    pub fn put(&mut self, tree: Tree, key: Vec<u8>, value: &[u8]) {
        self.written_key(tree, &key);
        self.pending.put(tree, key, checksum::seal(value));
    }

    /// Appends a log record under `key`, its checksum cut from the hash it carries.
    pub fn put_record(&mut self, key: Vec<u8>, record: HashedRecord) {
        self.written_key(Tree::Log, &key);
        self.pending.put(Tree::Log, key, checksum::seal_record(record));
    }

    pub fn remove(&mut self, tree: Tree, key: Vec<u8>) {
        self.written_key(tree, &key);
        self.pending.remove(tree, key);
    }

    /// Keeps the pending writes' fingerprints as `key` is about to be written: the
    /// new key's added, or all of them taken once the writes become many.
    fn written_key(&mut self, tree: Tree, key: &[u8]) {
        match &mut self.pending_keys {
            Some(keys) => keys.insert(tree, key),
            None if self.pending.len() + 1 >= WrittenKeys::FROM => {
                let mut keys = WrittenKeys::of(&self.pending);
                keys.insert(tree, key);
                self.pending_keys = Some(keys);
            }
            None => {}
        }
    }

    /// How many writes are pending.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The pending writes with their fingerprints (if the view kept them: from
    /// [`WrittenKeys::FROM`] writes), for [`View::over_with_keys`]; the view is left
    /// empty.
    pub fn take_batch_and_keys(&mut self) -> (WriteBatch, Option<BatchKeys>) {
        let keys = self.pending_keys.take().map(BatchKeys);
        (self.take_batch(), keys)
    }

    /// The pending writes, leaving the view empty.
    pub fn take_batch(&mut self) -> WriteBatch {
        // Each tree's map kept, emptied: a fold takes its writes after every record.
        self.remembered.get_mut().values_mut().for_each(HashMap::clear);
        self.pending_keys = None;
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;

    fn store_value(store: &MemoryStore, value: &[u8]) {
        let mut batch = WriteBatch::default();
        batch.put(Tree::Persons, b"p".to_vec(), checksum::seal(value));
        store.commit(&batch, false).unwrap();
    }

    /// A remembered read is answered from memory until the view writes the key (its
    /// write then answers) or its writes are taken (the store answers again).
    #[test]
    fn a_remembered_read_holds_until_the_key_is_written_or_the_writes_are_taken() {
        let store = MemoryStore::new();
        store_value(&store, b"first");
        let mut view = View::new(&store);
        assert_eq!(view.get_remembered(Tree::Persons, b"p").unwrap(), Some(b"first".to_vec()));
        // The store changed behind the view (which its contract rules out): the view
        // still answers what it read, so it did not read again.
        store_value(&store, b"second");
        assert_eq!(view.get_remembered(Tree::Persons, b"p").unwrap(), Some(b"first".to_vec()));
        assert_eq!(view.get(Tree::Persons, b"p").unwrap(), Some(b"second".to_vec()), "a plain read reads");
        view.put(Tree::Persons, b"p".to_vec(), b"written");
        assert_eq!(view.get_remembered(Tree::Persons, b"p").unwrap(), Some(b"written".to_vec()));
        view.take_batch();
        assert_eq!(view.get_remembered(Tree::Persons, b"p").unwrap(), Some(b"second".to_vec()));
        view.remove(Tree::Persons, b"p".to_vec());
        assert_eq!(view.get_remembered(Tree::Persons, b"p").unwrap(), None);
        // An absent key is remembered as absent.
        assert_eq!(view.get_remembered(Tree::Persons, b"q").unwrap(), None);
    }

    /// One step of the model test below: a write or removal in the pending writes, a
    /// read, or the pending writes taken.
    #[derive(Debug, Clone)]
    enum Step {
        Put(Tree, Vec<u8>, Vec<u8>),
        Remove(Tree, Vec<u8>),
        Get(Tree, Vec<u8>),
        Take,
    }

    /// Two trees, and keys few enough that writes and reads meet (273 a tree), yet
    /// enough that a batch passes `WrittenKeys::FROM` writes and is fingerprinted.
    fn tree() -> impl proptest::strategy::Strategy<Value = Tree> {
        proptest::sample::select(vec![Tree::Persons, Tree::Numbers])
    }

    fn key() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0u8..16, 0..3)
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            40 => (tree(), key(), key()).prop_map(|(t, k, v)| Step::Put(t, k, v)),
            15 => (tree(), key()).prop_map(|(t, k)| Step::Remove(t, k)),
            60 => (tree(), key()).prop_map(|(t, k)| Step::Get(t, k)),
            // Rare, so that the pending writes grow past `WrittenKeys::FROM` between takes.
            1 => Just(Step::Take),
        ]
    }

    proptest::proptest! {
        /// A view over a batch, given the fingerprints the batch's own view took with
        /// it, reads every key as a view that fingerprints the batch itself: no key the
        /// batch writes is skipped for the store's older value.
        #[test]
        fn a_batchs_handed_over_fingerprints_skip_none_of_its_keys(
            writes in proptest::collection::vec((tree(), key(), proptest::option::of(key())), 0..200),
            probes in proptest::collection::vec((tree(), key()), 0..64),
        ) {
            let store = MemoryStore::new();
            let mut older = WriteBatch::default();
            for (tree, key, _) in &writes {
                older.put(*tree, key.clone(), checksum::seal(b"older"));
            }
            store.commit(&older, false).unwrap();
            let mut writer = View::new(&store);
            for (tree, key, value) in &writes {
                match value {
                    Some(value) => writer.put(*tree, key.clone(), value),
                    None => writer.remove(*tree, key.clone()),
                }
            }
            let (batch, keys) = writer.take_batch_and_keys();
            proptest::prop_assert!(batch.len() < WrittenKeys::FROM || keys.is_some(), "a large batch's keys kept");
            let handed = View::over_with_keys(&store, Some(&batch), keys);
            let fresh = View::over(&store, Some(&batch));
            let written = writes.iter().map(|(tree, key, _)| (*tree, key.clone()));
            for (tree, key) in written.chain(probes) {
                proptest::prop_assert_eq!(handed.get(tree, &key).unwrap(), fresh.get(tree, &key).unwrap());
            }
        }

        /// A view answers every read as the pending writes, then the parent batch,
        /// then the store have the key, whatever was written, removed and taken
        /// before: the fingerprints that let reads skip the batches never skip a key
        /// that one of them writes.
        #[test]
        fn a_view_reads_its_writes_then_the_parents_then_the_stores(
            stored in proptest::collection::vec((tree(), key(), key()), 0..64),
            parent_writes in proptest::collection::vec((tree(), key(), proptest::option::of(key())), 0..160),
            steps in proptest::collection::vec(step(), 0..400),
        ) {
            use std::collections::BTreeMap;
            let store = MemoryStore::new();
            let mut base = WriteBatch::default();
            for (tree, key, value) in &stored {
                base.put(*tree, key.clone(), checksum::seal(value));
            }
            store.commit(&base, false).unwrap();
            let mut parent = WriteBatch::default();
            for (tree, key, value) in &parent_writes {
                match value {
                    Some(value) => parent.put(*tree, key.clone(), checksum::seal(value)),
                    None => parent.remove(*tree, key.clone()),
                }
            }
            // The model: each layer's last word on a key (`None` inside: removed).
            let mut model: BTreeMap<(Tree, Vec<u8>), Option<Vec<u8>>> = BTreeMap::new();
            for (tree, key, value) in &stored {
                model.insert((*tree, key.clone()), Some(value.clone()));
            }
            for (tree, key, value) in &parent_writes {
                model.insert((*tree, key.clone()), value.clone());
            }
            let under_pending = model.clone();
            let mut view = View::over(&store, Some(&parent));
            for step in steps {
                match step {
                    Step::Put(tree, key, value) => {
                        view.put(tree, key.clone(), &value);
                        model.insert((tree, key), Some(value));
                    }
                    Step::Remove(tree, key) => {
                        view.remove(tree, key.clone());
                        model.insert((tree, key), None);
                    }
                    Step::Get(tree, key) => {
                        let wanted = model.get(&(tree, key.clone())).cloned().flatten();
                        proptest::prop_assert_eq!(view.get(tree, &key).unwrap(), wanted.clone());
                        proptest::prop_assert_eq!(view.get_remembered(tree, &key).unwrap(), wanted);
                    }
                    Step::Take => {
                        view.take_batch();
                        model = under_pending.clone();
                    }
                }
            }
        }
    }
}
