//! A read-your-writes view over a store: reads see pending writes first, writes
//! accumulate into one [`WriteBatch`]. Values pass through the checksum envelope here,
//! so nothing above this layer touches raw stored bytes.

use std::cell::RefCell;
use std::collections::HashMap;

use super::checksum;
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
    /// What the store answered to [`View::get_remembered`], per tree, until the pending
    /// writes are taken (a key written here meanwhile is answered from the writes,
    /// which are looked at first).
    remembered: RefCell<HashMap<Tree, Remembered>>,
}

/// One tree's remembered answers: key → the value the store held (`None`: absent).
type Remembered = HashMap<Vec<u8>, Option<Vec<u8>>>;

impl<'a> View<'a> {
    pub fn new(base: &'a dyn Storage) -> Self {
        Self::over(base, None)
    }

    /// A view that reads `parent`'s writes as if they were committed.
    pub fn over(base: &'a dyn Storage, parent: Option<&'a WriteBatch>) -> Self {
        Self { base, parent, pending: WriteBatch::default(), remembered: RefCell::default() }
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

    /// The value of `key` as the pending writes, then the parent's, have it; `None`
    /// if neither writes it.
    fn written(&self, tree: Tree, key: &[u8]) -> Option<Result<Option<Vec<u8>>, ReadError>> {
        let written = std::iter::once(&self.pending)
            .chain(self.parent)
            .find_map(|batch| batch.writes.get(&tree).and_then(|m| m.get(key)))?;
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
        self.pending.put(tree, key, checksum::seal(value));
    }

    pub fn remove(&mut self, tree: Tree, key: Vec<u8>) {
        self.pending.remove(tree, key);
    }

    /// How many writes are pending.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The pending writes, leaving the view empty.
    pub fn take_batch(&mut self) -> WriteBatch {
        // Each tree's map kept, emptied: a fold takes its writes after every record.
        self.remembered.get_mut().values_mut().for_each(HashMap::clear);
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
}
