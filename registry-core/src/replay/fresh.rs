//! The fresh fold `verify` and `rebuild` compare the live projections with: the whole
//! log folded into one hash map per tree ([`FreshFold`]), and the comparison of each
//! tree with the live store's, tree by tree on every core ([`TreePair`]).

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::Mutex;

use super::{CHUNK, Commit, ReplayError, fold_records};
use crate::secrets::Secrets;
use crate::storage::{KeyValue, Storage, StorageError, Tree, WriteBatch};

/// One tree of a fresh fold: key → stored value (checksum included). Hashed with
/// foldhash (hashbrown's default hasher, seeded per map), which costs far less than
/// std's SipHash on keys this short.
pub type FreshTree = HashMap<Vec<u8>, Vec<u8>, foldhash::fast::RandomState>;

/// A fresh fold of the whole log, in memory: projections folded into hash maps (the
/// fold reads and writes single keys, never ranges), keyring entries read through
/// from the live store (the fold needs the keys; it never changes the live store).
pub struct FreshFold<'a> {
    trees: Mutex<BTreeMap<Tree, FreshTree>>,
    live: &'a dyn Storage,
}

fn poisoned() -> StorageError {
    StorageError::Engine("the fresh fold's lock was poisoned".into())
}

/// The fresh fold answers only what a fold asks: single keys.
fn point_reads_only() -> StorageError {
    StorageError::Engine("the fresh fold answers reads of single keys only".into())
}

impl<'a> FreshFold<'a> {
    /// Folds every record of `store`'s log.
    pub fn of(store: &'a dyn Storage, secrets: &Secrets, progress: &mut dyn FnMut(u64)) -> Result<Self, ReplayError> {
        let fresh = Self { trees: Mutex::new(BTreeMap::new()), live: store };
        fold_records(store, &fresh, secrets, 0, Commit::EveryRecord, progress)?;
        Ok(fresh)
    }
}

impl Storage for FreshFold<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let found = self.trees.lock().map_err(|_| poisoned())?.get(&tree).and_then(|t| t.get(key)).cloned();
        match found {
            None if tree == Tree::Keyring => self.live.get(tree, key),
            found => Ok(found),
        }
    }
    fn scan_prefix(&self, _: Tree, _: &[u8]) -> Result<Vec<KeyValue>, StorageError> {
        Err(point_reads_only())
    }
    fn range_from(&self, _: Tree, _: &[u8], _: usize) -> Result<Vec<KeyValue>, StorageError> {
        Err(point_reads_only())
    }
    fn range_back(&self, _: Tree, _: &[u8], _: &[u8], _: usize) -> Result<Vec<KeyValue>, StorageError> {
        Err(point_reads_only())
    }
    fn last(&self, _: Tree) -> Result<Option<KeyValue>, StorageError> {
        Err(point_reads_only())
    }
    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.commit_owned(batch.clone(), durable)
    }
    fn commit_owned(&self, batch: WriteBatch, _durable: bool) -> Result<(), StorageError> {
        let mut trees = self.trees.lock().map_err(|_| poisoned())?;
        for (tree, writes) in batch.writes {
            let entries = trees.entry(tree).or_default();
            for (key, value) in writes {
                match value {
                    Some(value) => entries.insert(key, value),
                    None => entries.remove(&key),
                };
            }
        }
        Ok(())
    }
    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// One projection tree as a fresh fold makes it, to compare with the live store's.
pub struct TreePair {
    pub tree: Tree,
    pub fresh: FreshTree,
}

/// Folds the log afresh: one pair per projection tree, in [`Tree`] order, for
/// `verify` and `rebuild` to compare with the live trees.
pub fn fresh_trees(
    store: &dyn Storage,
    secrets: &Secrets,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<TreePair>, ReplayError> {
    let fresh = FreshFold::of(store, secrets, progress)?;
    let mut fresh = fresh.trees.into_inner().map_err(|_| poisoned())?;
    Ok(Tree::PROJECTIONS
        .into_iter()
        .map(|tree| TreePair { tree, fresh: fresh.remove(&tree).unwrap_or_default() })
        .collect())
}

impl TreePair {
    /// Reads the live tree from `store`, chunk by chunk in key order, and calls
    /// `differs(key, fresh value)` for every key whose live value is not the fresh one
    /// (`None`: the key should not exist): the live keys that differ in key order,
    /// then the keys missing from the live tree, in no order. Stops early when
    /// `differs` breaks.
    pub fn diff(
        self,
        store: &dyn Storage,
        mut differs: impl FnMut(&[u8], Option<&[u8]>) -> ControlFlow<()>,
    ) -> Result<(), StorageError> {
        let mut fresh = self.fresh;
        let mut from = Vec::new();
        loop {
            let chunk = store.range_from(self.tree, &from, CHUNK)?;
            let Some((last_key, _)) = chunk.last() else { break };
            from = [last_key.as_slice(), &[0]].concat();
            for (key, live) in chunk {
                let verdict = match fresh.remove(&key) {
                    Some(wanted) if wanted == live => ControlFlow::Continue(()),
                    wanted => differs(&key, wanted.as_deref()),
                };
                if verdict.is_break() {
                    return Ok(());
                }
            }
        }
        for (key, wanted) in &fresh {
            if differs(key, Some(wanted)).is_break() {
                break;
            }
        }
        Ok(())
    }
}

/// Runs `each` on every pair, on as many threads as there are cores, the largest
/// trees first; the answers come back in the pairs' order.
pub fn each_pair_in_parallel<R: Send>(pairs: Vec<TreePair>, each: impl Fn(TreePair) -> R + Sync) -> Vec<(Tree, R)> {
    let order: Vec<Tree> = pairs.iter().map(|pair| pair.tree).collect();
    let mut queue = pairs;
    queue.sort_by_key(|pair| pair.fresh.len());
    let queue = Mutex::new(queue);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(order.len()).max(1);
    let mut answers: Vec<(Tree, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut answers = Vec::new();
                    loop {
                        // The lock guards only the queue (a worker that panicked left it
                        // whole), and is let go before the work.
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                        let Some(pair) = next else { return answers };
                        answers.push((pair.tree, each(pair)));
                    }
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    answers.sort_by_key(|(tree, _)| order.iter().position(|t| t == tree));
    answers
}
