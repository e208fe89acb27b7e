//! One tree of a fresh fold held in memory ([`FreshTree`]), compactly: each entry is
//! one allocation holding its key and its value, and the hash table holds a pointer to
//! it. At 1,000,000 persons the fresh fold holds about 6.5 million entries whose keys
//! average 12 bytes and values under 100, so a table of (key, value) vectors spent
//! more on its slots (48 bytes each, at a load of at most 7/8, doubled as the table
//! grows) and on a second allocation per entry than on the data itself.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use crate::storage::StorageError;

/// How many bytes before the key say its length (little-endian).
const KEY_LEN_BYTES: usize = size_of::<u32>();

/// One entry: the key's length (`u32`, little-endian), the key, then the value, in one
/// allocation. Hashed and compared by its key alone, and borrowed as its key, so that
/// the table is looked up by a key.
#[derive(Debug)]
pub struct FreshEntry(Box<[u8]>);

impl FreshEntry {
    fn new(key: &[u8], value: &[u8]) -> Result<Self, StorageError> {
        let key_len = u32::try_from(key.len())
            .map_err(|_| StorageError::Engine(format!("a fresh fold's key of {} bytes is too long", key.len())))?;
        let mut bytes = Vec::with_capacity(KEY_LEN_BYTES + key.len() + value.len());
        bytes.extend_from_slice(&key_len.to_le_bytes());
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        Ok(Self(bytes.into_boxed_slice()))
    }

    /// Where the key ends (and the value begins). Only [`FreshEntry::new`] makes an
    /// entry, so the length is there and within the entry.
    fn key_end(&self) -> usize {
        let mut len = [0; KEY_LEN_BYTES];
        len.copy_from_slice(&self.0[..KEY_LEN_BYTES]);
        KEY_LEN_BYTES + u32::from_le_bytes(len) as usize
    }

    pub fn key(&self) -> &[u8] {
        &self.0[KEY_LEN_BYTES..self.key_end()]
    }

    pub fn value(&self) -> &[u8] {
        &self.0[self.key_end()..]
    }
}

impl Borrow<[u8]> for FreshEntry {
    fn borrow(&self) -> &[u8] {
        self.key()
    }
}

// Hashed and compared as its key (`Borrow`'s contract): a look-up by key finds it.
impl Hash for FreshEntry {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for FreshEntry {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for FreshEntry {}

/// One tree of a fresh fold: key → stored value (checksum included). Hashed with
/// foldhash (hashbrown's default hasher, seeded per table), which costs far less than
/// std's SipHash on keys this short.
#[derive(Debug, Default)]
pub struct FreshTree {
    entries: HashSet<FreshEntry, foldhash::fast::RandomState>,
}

impl FreshTree {
    /// The value under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.entries.get(key).map(FreshEntry::value)
    }

    /// Puts `value` under `key`, replacing any value there.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
        self.entries.replace(FreshEntry::new(key, value)?);
        Ok(())
    }

    /// Removes `key`'s entry, returning it if there was one.
    pub fn take(&mut self, key: &[u8]) -> Option<FreshEntry> {
        self.entries.take(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in key order.
    pub fn into_sorted(self) -> Vec<FreshEntry> {
        let mut entries: Vec<FreshEntry> = self.entries.into_iter().collect();
        entries.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        entries
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// A write to a tree: a put (`Some`) or a removal (`None`).
    type Write = (Vec<u8>, Option<Vec<u8>>);

    fn writes() -> impl Strategy<Value = Vec<Write>> {
        // Few, short keys, so that writes land on one another's keys; keys that are
        // prefixes of one another, and empty keys and values, included.
        let key = prop::collection::vec(0u8..3, 0..4);
        let value = prop::option::of(prop::collection::vec(any::<u8>(), 0..40));
        prop::collection::vec((key, value), 0..64)
    }

    proptest! {
        /// Any writes leave the tree answering as an ordered map given the same
        /// writes: every key's value, the count, and every entry in key order.
        #[test]
        fn a_fresh_tree_holds_what_a_map_holds(writes in writes()) {
            let (mut tree, mut map) = (FreshTree::default(), BTreeMap::new());
            for (key, value) in &writes {
                match value {
                    Some(value) => {
                        tree.insert(key, value).unwrap();
                        map.insert(key.clone(), value.clone());
                    }
                    None => {
                        prop_assert_eq!(tree.take(key).map(|e| e.value().to_vec()), map.remove(key));
                    }
                }
                prop_assert_eq!(tree.get(key), map.get(key).map(Vec::as_slice));
            }
            prop_assert_eq!(tree.len(), map.len());
            for (key, _) in &writes {
                prop_assert_eq!(tree.get(key), map.get(key).map(Vec::as_slice));
            }
            let sorted: Vec<(Vec<u8>, Vec<u8>)> =
                tree.into_sorted().iter().map(|e| (e.key().to_vec(), e.value().to_vec())).collect();
            prop_assert_eq!(sorted, map.into_iter().collect::<Vec<_>>());
        }
    }
}
