//! The trees a fresh fold writes once a key and in key order (the RFC 6962 tree's
//! nodes and blocks), compared with the live store's as the fold writes them: a merge
//! join with the live tree read in key order ([`Streamed`]), instead of being held
//! until the fold ends. At 1 M persons they are a third of a fresh fold's bytes (207 MB
//! of 636), which a fold in memory no longer holds and a fold on disk no longer writes
//! and reads back. [`StreamingTarget`] is the fold's target that hands them over.

use std::ops::ControlFlow;
use std::sync::Mutex;

use super::CHUNK;
use crate::storage::in_key_order::InKeyOrder;
use crate::storage::{KeyValue, Storage, StorageError, Tree, WriteBatch};

/// The trees compared as the fold writes them: written once a key, in key order (a
/// node entry by the sequence number that completed it, a block by its number).
pub const STREAMED_TREES: [Tree; 2] = [Tree::MerkleNodes, Tree::MerkleBlocks];

/// How many repairs a streamed comparison holds before writing them.
const REPAIR_WRITES: usize = 65_536;

/// What a streamed comparison does with a key whose live value is not the fresh one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDifference {
    /// Keeps the first (the least key) to report, and compares that tree no further
    /// (`verify`).
    Report,
    /// Writes the fresh value into the live store, or removes a key the fold never
    /// wrote (`rebuild`).
    Repair,
}

/// A key whose live value is not the fresh one: the fresh value, or `None` where the
/// key should not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub key: Vec<u8>,
    pub fresh: Option<Vec<u8>>,
}

/// One tree's comparison: the live tree read in key order beside the fold's writes.
struct Stream<'a> {
    tree: Tree,
    live: InKeyOrder<'a>,
    /// The least live entry not yet compared; `None` once the live tree is read to its
    /// end (the walk never reads again, so keys repaired behind it are not seen twice).
    head: Option<KeyValue>,
    /// The last key the fold wrote, to check that its writes come in key order.
    last: Option<Vec<u8>>,
    /// The first difference, when reporting.
    first: Option<Difference>,
}

impl<'a> Stream<'a> {
    fn new(live: &'a dyn Storage, tree: Tree) -> Result<Self, StorageError> {
        let mut walk = InKeyOrder::new(live, tree, &[], CHUNK);
        let head = walk.next().transpose()?;
        Ok(Self { tree, live: walk, head, last: None, first: None })
    }

    /// The live entry after the head.
    fn advance(&mut self) -> Result<(), StorageError> {
        self.head = self.live.next().transpose()?;
        Ok(())
    }

    /// Compares the fold's write of `key` (`None`: a removal) with the live tree,
    /// handing each difference to `found`: first every live key before it, which the
    /// fold never wrote, then the key itself if its live value is not the fresh one.
    fn compare(
        &mut self,
        key: Vec<u8>,
        fresh: Option<Vec<u8>>,
        found: &mut impl FnMut(&mut Self, Difference) -> Result<ControlFlow<()>, StorageError>,
    ) -> Result<ControlFlow<()>, StorageError> {
        if self.last.as_ref().is_some_and(|last| key <= *last) {
            return Err(StorageError::Engine(format!(
                "the fresh fold wrote {} out of key order, which its streamed comparison relies on",
                self.tree.name()
            )));
        }
        while let Some((live_key, _)) = self.head.take_if(|(live_key, _)| *live_key < key) {
            if found(self, Difference { key: live_key, fresh: None })?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
            self.advance()?;
        }
        let live = match self.head.take_if(|(live_key, _)| *live_key == key) {
            Some((_, value)) => {
                self.advance()?;
                Some(value)
            }
            None => None,
        };
        let verdict = if live == fresh {
            ControlFlow::Continue(())
        } else {
            found(self, Difference { key: key.clone(), fresh })?
        };
        self.last = Some(key);
        Ok(verdict)
    }
}

/// The comparison of every streamed tree, fed the fold's writes as it commits them.
pub struct Streamed<'a> {
    live: &'a dyn Storage,
    on_difference: OnDifference,
    streams: Vec<Stream<'a>>,
    /// Repairs not yet written (when repairing).
    repairs: WriteBatch,
}

impl<'a> Streamed<'a> {
    /// A comparison with `live`'s streamed trees, each read from its first key.
    pub fn new(live: &'a dyn Storage, on_difference: OnDifference) -> Result<Self, StorageError> {
        let streams = STREAMED_TREES.into_iter().map(|tree| Stream::new(live, tree)).collect::<Result<_, _>>()?;
        Ok(Self { live, on_difference, streams, repairs: WriteBatch::default() })
    }

    /// Takes the streamed trees' writes out of `batch` and compares them.
    pub fn take_from(&mut self, batch: &mut WriteBatch) -> Result<(), StorageError> {
        let (live, on_difference, repairs) = (self.live, self.on_difference, &mut self.repairs);
        let mut found = |stream: &mut Stream<'_>, difference| note(live, on_difference, repairs, stream, difference);
        for stream in &mut self.streams {
            let Some(writes) = batch.writes.remove(&stream.tree) else { continue };
            if stream.first.is_some() {
                continue;
            }
            for (key, value) in writes {
                if stream.compare(key, value, &mut found)?.is_break() {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Compares what is left of each live tree (keys the fold never wrote, all of
    /// them differences), writes the last repairs, and returns each tree's first
    /// difference (none when repairing).
    pub fn finish(mut self) -> Result<Vec<(Tree, Option<Difference>)>, StorageError> {
        let (live, on_difference, repairs) = (self.live, self.on_difference, &mut self.repairs);
        for stream in &mut self.streams {
            while stream.first.is_none()
                && let Some((key, _)) = stream.head.take()
            {
                if note(live, on_difference, repairs, stream, Difference { key, fresh: None })?.is_break() {
                    break;
                }
                stream.advance()?;
            }
        }
        if !self.repairs.is_empty() {
            self.live.write_in_order(&self.repairs, false)?;
        }
        Ok(self.streams.into_iter().map(|stream| (stream.tree, stream.first)).collect())
    }
}

/// Does with one difference what `on_difference` says: keeps it as the stream's first
/// (and stops that stream), or adds it to the repairs, writing them once there are
/// [`REPAIR_WRITES`].
fn note(
    live: &dyn Storage,
    on_difference: OnDifference,
    repairs: &mut WriteBatch,
    stream: &mut Stream<'_>,
    Difference { key, fresh }: Difference,
) -> Result<ControlFlow<()>, StorageError> {
    match on_difference {
        OnDifference::Report => {
            stream.first = Some(Difference { key, fresh });
            Ok(ControlFlow::Break(()))
        }
        OnDifference::Repair => {
            match fresh {
                Some(value) => repairs.put(stream.tree, key, value),
                None => repairs.remove(stream.tree, key),
            }
            if repairs.len() >= REPAIR_WRITES {
                live.write_in_order(&std::mem::take(repairs), false)?;
            }
            Ok(ControlFlow::Continue(()))
        }
    }
}

/// A fresh fold's target that keeps every tree in `held` but the streamed ones, whose
/// writes it hands to their comparison ([`Streamed`]). It answers no read of a
/// streamed tree (the fold makes none): it does not hold them.
pub struct StreamingTarget<'a> {
    held: &'a dyn Storage,
    streamed: Mutex<Streamed<'a>>,
}

impl<'a> StreamingTarget<'a> {
    pub fn new(held: &'a dyn Storage, streamed: Streamed<'a>) -> Self {
        Self { held, streamed: Mutex::new(streamed) }
    }

    /// Ends the streamed comparison ([`Streamed::finish`]).
    pub fn finish(self) -> Result<Vec<(Tree, Option<Difference>)>, StorageError> {
        self.streamed.into_inner().map_err(|_| poisoned())?.finish()
    }

    /// Refuses a read of a streamed tree.
    fn held(&self, tree: Tree) -> Result<&'a dyn Storage, StorageError> {
        if STREAMED_TREES.contains(&tree) {
            return Err(StorageError::Engine(format!(
                "the fresh fold does not hold {}: it is compared with the live tree as it is written",
                tree.name()
            )));
        }
        Ok(self.held)
    }
}

fn poisoned() -> StorageError {
    StorageError::Engine("the streamed comparison's lock was poisoned".into())
}

impl Storage for StreamingTarget<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.held(tree)?.get(tree, key)
    }
    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StorageError> {
        self.held(tree)?.scan_prefix(tree, prefix)
    }
    fn range_from(&self, tree: Tree, from: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError> {
        self.held(tree)?.range_from(tree, from, limit)
    }
    fn range_back(
        &self,
        tree: Tree,
        prefix: &[u8],
        before: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        self.held(tree)?.range_back(tree, prefix, before, limit)
    }
    fn last(&self, tree: Tree) -> Result<Option<KeyValue>, StorageError> {
        self.held(tree)?.last(tree)
    }
    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.commit_owned(batch.clone(), durable)
    }
    fn commit_owned(&self, mut batch: WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.streamed.lock().map_err(|_| poisoned())?.take_from(&mut batch)?;
        self.held.commit_owned(batch, durable)
    }
    fn flush(&self) -> Result<(), StorageError> {
        self.held.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

    /// Short keys over few bytes (so that live and fresh share many, and some are
    /// prefixes of others), short values over fewer (so that shared keys often agree).
    fn entries() -> impl Strategy<Value = Entries> {
        proptest::collection::btree_map(
            proptest::collection::vec(0u8..4, 0..4),
            proptest::collection::vec(0u8..2, 0..3),
            0..40,
        )
    }

    /// A live store whose first streamed tree holds `live`, and a tree of another kind.
    fn live_store(live: &Entries) -> MemoryStore {
        let store = MemoryStore::new();
        let mut batch = WriteBatch::default();
        for (key, value) in live {
            batch.put(STREAMED_TREES[0], key.clone(), value.clone());
        }
        batch.put(Tree::Persons, vec![1], vec![1]);
        store.commit(&batch, false).unwrap();
        store
    }

    /// Feeds `fresh` in key order to a comparison with `store`, in batches of the sizes
    /// `cuts` gives (each batch also writing a tree that is not streamed, which must be
    /// left in it), and finishes it.
    fn compare(
        store: &MemoryStore,
        fresh: &Entries,
        cuts: &[usize],
        on_difference: OnDifference,
    ) -> Vec<(Tree, Option<Difference>)> {
        let mut streamed = Streamed::new(store, on_difference).unwrap();
        let mut writes = fresh.iter().peekable();
        let mut cuts = cuts.iter().cycle();
        while writes.peek().is_some() {
            let mut batch = WriteBatch::default();
            for (key, value) in writes.by_ref().take(*cuts.next().unwrap()) {
                batch.put(STREAMED_TREES[0], key.clone(), value.clone());
            }
            batch.put(Tree::Numbers, vec![2], vec![2]);
            streamed.take_from(&mut batch).unwrap();
            assert_eq!(batch.writes.keys().collect::<Vec<_>>(), [&Tree::Numbers], "only the streamed trees are taken");
        }
        streamed.finish().unwrap()
    }

    proptest! {
        /// Reporting, the comparison keeps the least key whose live value is not the
        /// fresh one (with the fresh value, or none where the fold never wrote it), and
        /// nothing for a tree that agrees; repairing, it leaves the live tree equal to
        /// the fresh one, other trees untouched.
        #[test]
        fn a_streamed_comparison_finds_the_least_difference_and_repairs_all(
            live in entries(),
            fresh in entries(),
            cuts in proptest::collection::vec(1usize..6, 1..4),
        ) {
            let keys: std::collections::BTreeSet<&Vec<u8>> = live.keys().chain(fresh.keys()).collect();
            let least = keys
                .into_iter()
                .find(|key| live.get(*key) != fresh.get(*key))
                .map(|key| Difference { key: key.clone(), fresh: fresh.get(key).cloned() });
            let store = live_store(&live);
            let found = compare(&store, &fresh, &cuts, OnDifference::Report);
            prop_assert_eq!(found, vec![(STREAMED_TREES[0], least), (STREAMED_TREES[1], None)]);
            prop_assert_eq!(&store.snapshot(STREAMED_TREES[0]).unwrap(), &live, "a report writes nothing");

            let found = compare(&store, &fresh, &cuts, OnDifference::Repair);
            prop_assert!(found.iter().all(|(_, first)| first.is_none()));
            prop_assert_eq!(&store.snapshot(STREAMED_TREES[0]).unwrap(), &fresh);
            prop_assert_eq!(store.snapshot(Tree::Persons).unwrap().len(), 1);
        }
    }

    /// The merge join holds only for writes in key order: a fold that broke it is
    /// refused, not compared wrongly.
    #[test]
    fn writes_out_of_key_order_are_refused() {
        let store = live_store(&Entries::new());
        // Repairing, so that the first write (a difference) does not end the comparison.
        let mut streamed = Streamed::new(&store, OnDifference::Repair).unwrap();
        let mut batch = WriteBatch::default();
        batch.put(STREAMED_TREES[1], vec![5], vec![0]);
        streamed.take_from(&mut batch).unwrap();
        let mut batch = WriteBatch::default();
        batch.put(STREAMED_TREES[1], vec![5], vec![1]);
        let refused = streamed.take_from(&mut batch).unwrap_err();
        assert!(refused.to_string().contains("out of key order"), "{refused}");
    }

    /// A read of a streamed tree through the fold's target is refused (the target does
    /// not hold it); other trees are read from what it holds.
    #[test]
    fn the_target_answers_no_read_of_a_streamed_tree() {
        let (live, held) = (live_store(&Entries::new()), MemoryStore::new());
        let target = StreamingTarget::new(&held, Streamed::new(&live, OnDifference::Report).unwrap());
        let mut batch = WriteBatch::default();
        batch.put(STREAMED_TREES[0], vec![1], vec![1]);
        batch.put(Tree::Numbers, vec![1], vec![1]);
        target.commit(&batch, false).unwrap();
        assert_eq!(target.get(Tree::Numbers, &[1]).unwrap(), Some(vec![1]));
        assert!(target.get(STREAMED_TREES[0], &[1]).is_err());
        assert!(target.range_from(STREAMED_TREES[0], &[], 1).is_err());
        assert!(held.snapshot(STREAMED_TREES[0]).unwrap().is_empty(), "the streamed tree is not held");
        let found = target.finish().unwrap();
        assert_eq!(found[0], (STREAMED_TREES[0], Some(Difference { key: vec![1], fresh: Some(vec![1]) })));
    }
}
