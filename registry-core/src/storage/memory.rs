//! An in-memory engine: a fast, ordered store for tests (a fresh fold for `verify` and
//! `rebuild` goes to `replay::FreshFold` instead). Not durable.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::{KeyValue, Storage, StorageError, Tree, WriteBatch};

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// Every tree as an ordered map behind one lock.
#[derive(Default)]
pub struct MemoryStore {
    trees: RwLock<BTreeMap<Tree, Map>>,
}

fn poisoned() -> StorageError {
    StorageError::Engine("memory store lock poisoned".into())
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of one tree, for comparisons.
    pub fn snapshot(&self, tree: Tree) -> Result<Map, StorageError> {
        let trees = self.trees.read().map_err(|_| poisoned())?;
        Ok(trees.get(&tree).cloned().unwrap_or_default())
    }
}

impl Storage for MemoryStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let trees = self.trees.read().map_err(|_| poisoned())?;
        Ok(trees.get(&tree).and_then(|m| m.get(key)).cloned())
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StorageError> {
        let trees = self.trees.read().map_err(|_| poisoned())?;
        Ok(trees
            .get(&tree)
            .map(|m| {
                m.range(prefix.to_vec()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn range_from(&self, tree: Tree, from: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError> {
        let trees = self.trees.read().map_err(|_| poisoned())?;
        Ok(trees
            .get(&tree)
            .map(|m| m.range(from.to_vec()..).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
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
        let trees = self.trees.read().map_err(|_| poisoned())?;
        Ok(trees
            .get(&tree)
            .map(|m| {
                m.range(prefix.to_vec()..before.to_vec())
                    .rev()
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn last(&self, tree: Tree) -> Result<Option<KeyValue>, StorageError> {
        let trees = self.trees.read().map_err(|_| poisoned())?;
        Ok(trees.get(&tree).and_then(|m| m.last_key_value()).map(|(k, v)| (k.clone(), v.clone())))
    }

    fn commit(&self, batch: &WriteBatch, _durable: bool) -> Result<(), StorageError> {
        let mut trees = self.trees.write().map_err(|_| poisoned())?;
        for (tree, writes) in &batch.writes {
            let map = trees.entry(*tree).or_default();
            for (key, value) in writes {
                match value {
                    Some(value) => map.insert(key.clone(), value.clone()),
                    None => map.remove(key),
                };
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
