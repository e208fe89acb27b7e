//! A tree walked in key order a chunk at a time ([`InKeyOrder`]): how a whole tree, or
//! all that follows a key, is read without holding it in memory (the log replayed, a
//! projection compared, the access log verified, a filter filled).

use super::{KeyValue, Storage, StorageError, Tree};

/// The entries of one tree from a key on, in key order, read `chunk` at a time with
/// [`Storage::range_from`]. It ends after the last entry or after an error.
pub struct InKeyOrder<'a> {
    store: &'a dyn Storage,
    tree: Tree,
    /// Where the next read starts; `None` once a read came back short or failed.
    from: Option<Vec<u8>>,
    chunk: usize,
    read: std::vec::IntoIter<KeyValue>,
}

impl<'a> InKeyOrder<'a> {
    /// The entries of `tree` from `from` on (`&[]`: all), `chunk` (at least 1) a read.
    pub fn new(store: &'a dyn Storage, tree: Tree, from: &[u8], chunk: usize) -> Self {
        Self { store, tree, from: Some(from.to_vec()), chunk: chunk.max(1), read: Vec::new().into_iter() }
    }
}

impl Iterator for InKeyOrder<'_> {
    type Item = Result<KeyValue, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(entry) = self.read.next() {
                return Some(Ok(entry));
            }
            let from = self.from.take()?;
            let read = match self.store.range_from(self.tree, &from, self.chunk) {
                Ok(read) => read,
                Err(e) => return Some(Err(e)),
            };
            // A short read is the tree's end: no further read is needed to know it.
            if read.len() == self.chunk
                && let Some((last, _)) = read.last()
            {
                self.from = Some([last.as_slice(), &[0]].concat());
            }
            self.read = read.into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::WriteBatch;
    use crate::storage::memory::MemoryStore;

    fn store_of(keys: &[&[u8]]) -> MemoryStore {
        let store = MemoryStore::new();
        let mut batch = WriteBatch::default();
        for key in keys {
            batch.put(Tree::Persons, key.to_vec(), key.to_vec());
        }
        // Another tree's entries are never walked.
        batch.put(Tree::Numbers, vec![2], vec![0]);
        store.commit(&batch, false).unwrap();
        store
    }

    #[test]
    fn walks_one_tree_in_key_order_across_chunks_of_any_size() {
        let keys: Vec<&[u8]> = vec![&[1], &[2], &[2, 0], &[2, 1], &[3], &[9, 9]];
        let store = store_of(&keys);
        for chunk in 0..=keys.len() + 1 {
            let walked: Vec<Vec<u8>> =
                InKeyOrder::new(&store, Tree::Persons, &[], chunk).map(|e| e.unwrap().0).collect();
            assert_eq!(walked, keys.iter().map(|k| k.to_vec()).collect::<Vec<_>>(), "chunk {chunk}");
            let from: Vec<Vec<u8>> =
                InKeyOrder::new(&store, Tree::Persons, &[2, 0], chunk).map(|e| e.unwrap().0).collect();
            assert_eq!(from, [vec![2, 0], vec![2, 1], vec![3], vec![9, 9]], "chunk {chunk}");
        }
        assert_eq!(InKeyOrder::new(&store, Tree::AgencyLinks, &[], 2).count(), 0);
    }
}
