//! A read-your-writes view over a store: reads see pending writes first, writes
//! accumulate into one [`WriteBatch`]. Values pass through the checksum envelope here,
//! so nothing above this layer touches raw stored bytes.

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
}

impl<'a> View<'a> {
    pub fn new(base: &'a dyn Storage) -> Self {
        Self::over(base, None)
    }

    /// A view that reads `parent`'s writes as if they were committed.
    pub fn over(base: &'a dyn Storage, parent: Option<&'a WriteBatch>) -> Self {
        Self { base, parent, pending: WriteBatch::default() }
    }

    pub fn base(&self) -> &'a dyn Storage {
        self.base
    }

    /// The value under `key`: pending writes first, then the parent's, then the
    /// store's, checked. The pending and parent writes were sealed in memory by this
    /// process and never left it, so their checksums are cut off unchecked (a check
    /// guards what was stored, and cost a hash of every value a batch reads back).
    pub fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        for batch in std::iter::once(&self.pending).chain(self.parent) {
            if let Some(pending) = batch.writes.get(&tree).and_then(|m| m.get(key)) {
                return match pending {
                    Some(sealed) => match checksum::sealed_here(sealed) {
                        Some(value) => Ok(Some(value.to_vec())),
                        None => Err(Corruption::new(tree, key, "shorter than its checksum").into()),
                    },
                    None => Ok(None),
                };
            }
        }
        get_checked(self.base, tree, key)
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
        std::mem::take(&mut self.pending)
    }
}
