//! The fresh fold `verify` and `rebuild` compare the live projections with: the whole
//! log folded into one hash map per tree ([`FreshFold`]) or, for a log too large for
//! memory, into a scratch store on disk ([`super::ScratchFold`]), but for the trees
//! compared as the fold writes them ([`super::streamed`]); and the comparison of each
//! other tree with the live store's, tree by tree on every core ([`TreePair`]).

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Mutex;

use super::fresh_tree::FreshTree;
use super::scratch::{FoldSpace, ScratchFold};
use super::streamed::{Difference, FirstDifferences, OnDifference, fold_streaming};
use super::{CHUNK, Folding, LogTap, Reached, ReplayError, fold_records, log_size};
use crate::dedup::blocks::LaidOut;
use crate::secrets::Secrets;
use crate::storage::in_key_order::InKeyOrder;
use crate::storage::{KeyValue, Storage, StorageError, Tree, WriteBatch};

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
    /// An empty fold, reading keyring entries through from `store`.
    fn new(store: &'a dyn Storage) -> Self {
        Self { trees: Mutex::new(BTreeMap::new()), live: store }
    }

    /// Folds every record of `store`'s log, every tree held (handing each handful read
    /// to `tap` too, when there is one).
    pub fn of(
        store: &'a dyn Storage,
        secrets: &Secrets,
        tap: Option<LogTap>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Self, ReplayError> {
        let fresh = Self::new(store);
        fold_records(store, &fresh, secrets, 0, Folding::IN_MEMORY, tap, progress)?;
        Ok(fresh)
    }
}

impl Storage for FreshFold<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let found = self.trees.lock().map_err(|_| poisoned())?.get(&tree).and_then(|t| t.get(key)).map(<[u8]>::to_vec);
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
                    Some(value) => entries.insert(&key, &value)?,
                    None => drop(entries.take(&key)),
                }
            }
        }
        Ok(())
    }
    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// One projection tree as a fresh fold made it, to compare with the live store's.
pub struct TreePair<'a> {
    pub tree: Tree,
    fresh: FreshSide<'a>,
}

/// Where one tree of a fresh fold is.
enum FreshSide<'a> {
    InMemory(FreshTree),
    /// In a scratch store, read in key order beside the live tree.
    Stored(&'a dyn Storage),
    /// The duplicate search's blocks in a scratch store, as the changes the fold logged
    /// (`blocks::Upkeep::Logged`): laid out as chunks as they are read in key order.
    LaidOut(&'a dyn Storage),
    /// Compared already, as the fold wrote it: its first difference, when reporting
    /// (when repairing, the differences are written already).
    Streamed(Option<Difference>),
}

/// A fresh fold of the whole log, wherever [`FoldSpace`] put it, and what the
/// comparison of the streamed trees found.
pub struct FreshProjections<'a> {
    held: Held<'a>,
    streamed: FirstDifferences,
}

/// Where a fresh fold holds the trees it does not stream.
enum Held<'a> {
    InMemory(BTreeMap<Tree, FreshTree>),
    Scratch(ScratchFold<'a>),
}

impl<'a> FreshProjections<'a> {
    /// Folds every record of `store`'s log, in memory or in a scratch store as `space`
    /// says for a log of its size, handing each handful of records read to `tap` too
    /// when there is one (`verify` checks the log from it). The streamed trees are
    /// compared with `store`'s as they are folded, each difference handled as
    /// `on_difference` says.
    pub fn fold(
        store: &'a dyn Storage,
        secrets: &Secrets,
        space: &FoldSpace,
        tap: Option<LogTap>,
        on_difference: OnDifference,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Self, ReplayError> {
        let records = log_size(store)?;
        match space.scratch_for(records) {
            None => {
                let fresh = FreshFold::new(store);
                let ((), streamed) = fold_streaming(&fresh, store, on_difference, |target| {
                    fold_records(store, target, secrets, 0, Folding::IN_MEMORY, tap, progress).map(drop)
                })?;
                Ok(Self { held: Held::InMemory(fresh.trees.into_inner().map_err(|_| poisoned())?), streamed })
            }
            Some(dir) => {
                tracing::info!(records, dir = %dir.display(), "folding the log in a scratch store on disk");
                let scratch = ScratchFold::create(dir, store)?;
                let ((), streamed) = fold_streaming(&scratch, store, on_difference, |target| {
                    fold_records(store, target, secrets, 0, Folding::ON_DISK, tap, progress).map(drop)
                })?;
                Ok(Self { held: Held::Scratch(scratch), streamed })
            }
        }
    }

    /// Whether the fold is on disk.
    pub fn on_disk(&self) -> bool {
        matches!(self.held, Held::Scratch(_))
    }

    /// One pair per projection tree, in [`Tree`] order, for `verify` and `rebuild` to
    /// compare with the live trees. Call it once: the trees in memory and the streamed
    /// trees' first differences are handed over, and a second call would find them gone.
    pub fn pairs(&mut self) -> Vec<TreePair<'_>> {
        if self.on_disk() {
            tracing::info!(
                "the log is folded; comparing each projection with the fold, in key order (a line as each is done)"
            );
        }
        let mut streamed = std::mem::take(&mut self.streamed);
        let mut streamed_side =
            |tree| streamed.iter().position(|(t, _)| *t == tree).map(|at| streamed.swap_remove(at).1);
        let pair = |tree, fresh| TreePair { tree, fresh };
        match &mut self.held {
            Held::InMemory(trees) => Tree::PROJECTIONS
                .into_iter()
                .map(|tree| match streamed_side(tree) {
                    Some(first) => pair(tree, FreshSide::Streamed(first)),
                    None => pair(tree, FreshSide::InMemory(trees.remove(&tree).unwrap_or_default())),
                })
                .collect(),
            Held::Scratch(scratch) => {
                let folded = scratch.folded();
                Tree::PROJECTIONS
                    .into_iter()
                    .map(|tree| match streamed_side(tree) {
                        Some(first) => pair(tree, FreshSide::Streamed(first)),
                        None if tree == Tree::MatchKeys => pair(tree, FreshSide::LaidOut(folded)),
                        None => pair(tree, FreshSide::Stored(folded)),
                    })
                    .collect()
            }
        }
    }
}

impl TreePair<'_> {
    /// How many entries the fresh tree holds, where known (a tree in memory).
    fn size_hint(&self) -> usize {
        match &self.fresh {
            FreshSide::InMemory(fresh) => fresh.len(),
            FreshSide::Stored(_) | FreshSide::LaidOut(_) | FreshSide::Streamed(_) => 0,
        }
    }

    /// Reads the live tree from `store`, chunk by chunk in key order, and calls
    /// `differs(key, fresh value)` for every key whose live value is not the fresh one
    /// (`None`: the key should not exist). From a fold in memory: the live keys that
    /// differ in key order, then the keys missing from the live tree, in key order;
    /// from a scratch store: all of them in key order; for a streamed tree, the first
    /// difference its comparison kept, if any. Stops early when `differs` breaks.
    pub fn diff(
        self,
        store: &dyn Storage,
        differs: impl FnMut(&[u8], Option<&[u8]>) -> ControlFlow<()>,
    ) -> Result<(), StorageError> {
        match self.fresh {
            FreshSide::InMemory(fresh) => diff_in_memory(self.tree, fresh, store, differs),
            FreshSide::Stored(fresh) => {
                diff_stored(self.tree, InKeyOrder::new(fresh, self.tree, &[], CHUNK), store, differs)
            }
            FreshSide::LaidOut(fresh) => {
                let chunks = LaidOut::new(InKeyOrder::new(fresh, self.tree, &[], CHUNK));
                diff_stored(self.tree, chunks, store, differs)
            }
            FreshSide::Streamed(first) => {
                let mut differs = differs;
                if let Some(Difference { key, fresh }) = first {
                    let _ = differs(&key, fresh.as_deref());
                }
                Ok(())
            }
        }
    }
}

fn diff_in_memory(
    tree: Tree,
    mut fresh: FreshTree,
    store: &dyn Storage,
    mut differs: impl FnMut(&[u8], Option<&[u8]>) -> ControlFlow<()>,
) -> Result<(), StorageError> {
    for entry in InKeyOrder::new(store, tree, &[], CHUNK) {
        let (key, live) = entry?;
        let verdict = match fresh.take(&key) {
            Some(wanted) if wanted.value() == live => ControlFlow::Continue(()),
            wanted => differs(&key, wanted.as_ref().map(|entry| entry.value())),
        };
        if verdict.is_break() {
            return Ok(());
        }
    }
    // What the live tree lacks, in key order too: a report names the same keys first
    // every time, and a rebuild from empty writes each whole tree front to back (no
    // faster at 100 k persons, where each patch was already sorted within itself).
    for wanted in fresh.into_sorted() {
        if differs(wanted.key(), Some(wanted.value())).is_break() {
            break;
        }
    }
    Ok(())
}

/// The live tree and the fresh one (`fresh_entries`, in key order, sealed as stored)
/// read side by side (a merge join): memory bounded by two chunks whatever their size.
fn diff_stored(
    tree: Tree,
    mut fresh_entries: impl Iterator<Item = Result<KeyValue, StorageError>>,
    store: &dyn Storage,
    mut differs: impl FnMut(&[u8], Option<&[u8]>) -> ControlFlow<()>,
) -> Result<(), StorageError> {
    use std::cmp::Ordering;
    let mut live_entries = InKeyOrder::new(store, tree, &[], CHUNK);
    let (mut live, mut wanted) = (live_entries.next().transpose()?, fresh_entries.next().transpose()?);
    loop {
        // What differs here, and which side to read on from.
        let (verdict, next_live, next_fresh) = match (&live, &wanted) {
            (None, None) => {
                tracing::info!(tree = tree.name(), "projection compared with the fold on disk");
                return Ok(());
            }
            (Some((key, _)), None) => (differs(key, None), true, false),
            (None, Some((key, value))) => (differs(key, Some(value)), false, true),
            (Some((live_key, live_value)), Some((key, value))) => match live_key.cmp(key) {
                Ordering::Less => (differs(live_key, None), true, false),
                Ordering::Greater => (differs(key, Some(value)), false, true),
                Ordering::Equal if live_value == value => (ControlFlow::Continue(()), true, true),
                Ordering::Equal => (differs(key, Some(value)), true, true),
            },
        };
        if verdict.is_break() {
            return Ok(());
        }
        if next_live {
            live = live_entries.next().transpose()?;
        }
        if next_fresh {
            wanted = fresh_entries.next().transpose()?;
        }
    }
}

/// Runs `each` on every pair, on as many threads as there are cores, the largest
/// trees first, telling `progress` as each is done; the answers come back in the
/// pairs' order.
pub fn each_pair_in_parallel<'a, R: Send>(
    pairs: Vec<TreePair<'a>>,
    progress: &mut dyn FnMut(Reached),
    each: impl Fn(TreePair<'a>) -> R + Sync,
) -> Vec<(Tree, R)> {
    let order: Vec<Tree> = pairs.iter().map(|pair| pair.tree).collect();
    let total = order.len() as u64;
    let mut queue = pairs;
    queue.sort_by_key(|pair| pair.size_hint());
    let (queue, each) = (&Mutex::new(queue), &each);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(order.len()).max(1);
    let (finished, each_finished) = std::sync::mpsc::channel();
    progress(Reached::projections(0, total));
    let mut answers: Vec<(Tree, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let finished = finished.clone();
                scope.spawn(move || {
                    let mut answers = Vec::new();
                    loop {
                        // The lock guards only the queue (a worker that panicked left it
                        // whole), and is let go before the work.
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                        let Some(pair) = next else { return answers };
                        answers.push((pair.tree, each(pair)));
                        // The receiving side outlives every worker.
                        let _ = finished.send(());
                    }
                })
            })
            .collect();
        // Ends when every worker has hung up.
        drop(finished);
        for (done, ()) in (1..).zip(each_finished) {
            progress(Reached::projections(done, total));
        }
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    });
    answers.sort_by_key(|(tree, _)| order.iter().position(|t| t == tree));
    answers
}
