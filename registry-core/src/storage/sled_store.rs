//! The embedded default engine: one sled database, one sled tree per [`Tree`], atomic
//! multi-tree commits through a sled transaction, durability through `flush`.

use std::path::Path;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::{KeyValue, Storage, StorageError, Tree, WriteBatch};

/// sled 0.34.7, opened at a directory.
pub struct SledStore {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

fn engine(e: sled::Error) -> StorageError {
    StorageError::Engine(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(512 * 1024 * 1024)
            .open()
            .map_err(engine)?;
        let trees = Tree::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(engine)?;
        Ok(Self { db, trees })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        // `Tree::ALL` lists every variant once, in declaration order.
        &self.trees[tree as usize]
    }

    fn collect(iter: sled::Iter, limit: usize) -> Result<Vec<KeyValue>, StorageError> {
        iter.take(limit)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(engine))
            .collect()
    }
}

impl Storage for SledStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.tree(tree).get(key).map_err(engine)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StorageError> {
        Self::collect(self.tree(tree).scan_prefix(prefix), usize::MAX)
    }

    fn range_from(&self, tree: Tree, from: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError> {
        Self::collect(self.tree(tree).range(from..), limit)
    }

    fn last(&self, tree: Tree) -> Result<Option<KeyValue>, StorageError> {
        Ok(self
            .tree(tree)
            .last()
            .map_err(engine)?
            .map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    fn commit(&self, batch: WriteBatch, durable: bool) -> Result<(), StorageError> {
        let mut trees = Vec::with_capacity(batch.writes.len());
        let mut batches = Vec::with_capacity(batch.writes.len());
        for (tree, writes) in batch.writes {
            if writes.is_empty() {
                continue;
            }
            let mut sled_batch = sled::Batch::default();
            for (key, value) in writes {
                match value {
                    Some(value) => sled_batch.insert(key, value),
                    None => sled_batch.remove(key),
                }
            }
            trees.push(self.tree(tree).clone());
            batches.push(sled_batch);
        }
        if trees.is_empty() {
            return Ok(());
        }
        let result: Result<(), TransactionError<()>> = trees[..].transaction(|views| {
            for (view, sled_batch) in views.iter().zip(&batches) {
                view.apply_batch(sled_batch)?;
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        result.map_err(|e| StorageError::Engine(format!("{e:?}")))?;
        if durable {
            self.db.flush().map_err(engine)?;
        }
        Ok(())
    }

    fn clear(&self, tree: Tree) -> Result<(), StorageError> {
        self.tree(tree).clear().map_err(engine)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map(|_| ()).map_err(engine)
    }
}
