//! The trees a fresh fold writes once a key and in key order (an agency's changes,
//! by sequence number; the RFC 6962 tree's nodes and blocks), compared with the live
//! store's as the fold writes them: a merge join with the live tree read in key order
//! ([`Streamed`]), on a thread of its own ([`fold_streaming`]), instead of being held
//! until the fold ends. At 1 M persons they are half of a fresh fold's bytes (310 MB
//! of 636), which a fold in memory no longer holds and a fold on disk no longer writes
//! and reads back.

use std::sync::Mutex;

use super::CHUNK;
use crate::storage::in_key_order::InKeyOrder;
use crate::storage::{KeyValue, Storage, StorageError, Tree, WriteBatch};

/// The trees compared as the fold writes them (in [`Tree::PROJECTIONS`] order).
pub const STREAMED_TREES: [Tree; 3] = [Tree::AgencyChanges, Tree::MerkleNodes, Tree::MerkleBlocks];

/// The part of a streamed tree's key within which the fold writes in key order: an
/// agency's changes are written in the order of their sequence numbers (the key's last
/// 8 bytes) under the agency's code and a 0 byte, which no code holds; the RFC 6962
/// tree's entries in order over the whole tree (a node entry by the sequence number
/// that completed it, a block by its number).
fn prefix_of(tree: Tree, key: &[u8]) -> &[u8] {
    match tree {
        Tree::AgencyChanges => key.get(..key.len().saturating_sub(8)).unwrap_or_default(),
        _ => &[],
    }
}

/// The least key after every key that starts with `prefix`; `None` if there is none.
fn after_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

/// Each streamed tree's first difference, in [`STREAMED_TREES`] order (none when
/// repairing).
pub type FirstDifferences = Vec<(Tree, Option<Difference>)>;

/// How many repairs a streamed comparison holds before writing them.
const REPAIR_WRITES: usize = 65_536;

/// What a streamed comparison does with a key whose live value is not the fresh one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDifference {
    /// Keeps the first (the least key) to report, and compares no further where it
    /// was found (`verify`).
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

/// Where the differences go.
struct Differences<'a> {
    live: &'a dyn Storage,
    on_difference: OnDifference,
    /// Repairs not yet written (when repairing).
    repairs: WriteBatch,
}

impl Differences<'_> {
    /// Hands back a difference to report, or adds it to the repairs (writing them once
    /// there are [`REPAIR_WRITES`]).
    fn found(&mut self, tree: Tree, difference: Difference) -> Result<Option<Difference>, StorageError> {
        match self.on_difference {
            OnDifference::Report => Ok(Some(difference)),
            OnDifference::Repair => {
                match difference.fresh {
                    Some(value) => self.repairs.put(tree, difference.key, value),
                    None => self.repairs.remove(tree, difference.key),
                }
                if self.repairs.len() >= REPAIR_WRITES {
                    self.live.write_in_order(&std::mem::take(&mut self.repairs), false)?;
                }
                Ok(None)
            }
        }
    }
}

/// One run of a tree's keys (those under one prefix, see [`prefix_of`]) compared: the
/// live entries under the prefix read in key order beside the fold's writes.
struct Stream<'a> {
    tree: Tree,
    prefix: Vec<u8>,
    live: InKeyOrder<'a>,
    /// The least live entry under the prefix not yet compared; `None` once they are
    /// all read (the walk never reads again, so keys repaired behind it are not seen
    /// twice).
    head: Option<KeyValue>,
    /// The last key the fold wrote, to check that its writes come in key order.
    last: Option<Vec<u8>>,
    /// The first difference, when reporting: the stream compares no further.
    first: Option<Difference>,
}

impl<'a> Stream<'a> {
    fn new(live: &'a dyn Storage, tree: Tree, prefix: &[u8]) -> Result<Self, StorageError> {
        let walk = InKeyOrder::new(live, tree, prefix, CHUNK);
        let mut stream = Self { tree, prefix: prefix.to_vec(), live: walk, head: None, last: None, first: None };
        stream.advance()?;
        Ok(stream)
    }

    /// The live entry after the head, if it is under the prefix.
    fn advance(&mut self) -> Result<(), StorageError> {
        self.head = self.live.next().transpose()?.filter(|(key, _)| key.starts_with(&self.prefix));
        Ok(())
    }

    /// Compares the fold's write of `key` (`None`: a removal) with the live entries:
    /// first every live key before it, which the fold never wrote, then the key itself
    /// if its live value is not the fresh one.
    fn compare(
        &mut self,
        key: Vec<u8>,
        fresh: Option<Vec<u8>>,
        differences: &mut Differences<'_>,
    ) -> Result<(), StorageError> {
        if self.first.is_some() {
            return Ok(());
        }
        if self.last.as_ref().is_some_and(|last| key <= *last) {
            return Err(StorageError::Engine(format!(
                "the fresh fold wrote {} out of key order, which its streamed comparison relies on",
                self.tree.name()
            )));
        }
        self.extras_before(Some(&key), differences)?;
        if self.first.is_some() {
            return Ok(());
        }
        let live = match self.head.take_if(|(live_key, _)| *live_key == key) {
            Some((_, value)) => {
                self.advance()?;
                Some(value)
            }
            None => None,
        };
        if live != fresh {
            self.first = differences.found(self.tree, Difference { key: key.clone(), fresh })?;
        }
        self.last = Some(key);
        Ok(())
    }

    /// Hands over as differences the live keys before `bound` (every one left, for
    /// `None`), which the fold never wrote, until one is kept to report.
    fn extras_before(&mut self, bound: Option<&[u8]>, differences: &mut Differences<'_>) -> Result<(), StorageError> {
        while self.first.is_none()
            && let Some((key, _)) = self.head.take_if(|(key, _)| bound.is_none_or(|bound| key.as_slice() < bound))
        {
            self.first = differences.found(self.tree, Difference { key, fresh: None })?;
            self.advance()?;
        }
        Ok(())
    }
}

/// The comparison of every streamed tree, fed the fold's writes as it commits them.
pub struct Streamed<'a> {
    /// One stream for each prefix written so far (a handful: one for each agency).
    streams: Vec<Stream<'a>>,
    differences: Differences<'a>,
}

impl<'a> Streamed<'a> {
    /// A comparison with `live`'s streamed trees (each stream starts at the fold's
    /// first write under its prefix).
    pub fn new(live: &'a dyn Storage, on_difference: OnDifference) -> Self {
        Self { streams: Vec::new(), differences: Differences { live, on_difference, repairs: WriteBatch::default() } }
    }

    /// Compares one of the fold's writes to a streamed tree.
    fn compare(&mut self, (tree, key, value): StreamedWrite) -> Result<(), StorageError> {
        let at = self.stream_for(tree, prefix_of(tree, &key))?;
        self.streams[at].compare(key, value, &mut self.differences)
    }

    /// Where in `streams` the stream of `tree`'s `prefix` is, started if need be. The
    /// prefixes of one tree must not nest (the streams would compare the same keys).
    fn stream_for(&mut self, tree: Tree, prefix: &[u8]) -> Result<usize, StorageError> {
        let mut same_tree = self.streams.iter().enumerate().filter(|(_, s)| s.tree == tree);
        if let Some((at, _)) = same_tree.clone().find(|(_, s)| s.prefix == prefix) {
            return Ok(at);
        }
        if same_tree.any(|(_, s)| s.prefix.starts_with(prefix) || prefix.starts_with(&s.prefix)) {
            return Err(StorageError::Engine(format!(
                "the fresh fold wrote {} under nested key prefixes, which its streamed comparison cannot tell apart",
                tree.name()
            )));
        }
        self.streams.push(Stream::new(self.differences.live, tree, prefix)?);
        Ok(self.streams.len() - 1)
    }

    /// Compares what is left of each live tree (keys the fold never wrote, all of
    /// them differences: after the last it wrote under a prefix, or under no prefix it
    /// wrote), writes the last repairs, and returns each tree's first difference (none
    /// when repairing).
    pub fn finish(mut self) -> Result<FirstDifferences, StorageError> {
        for stream in &mut self.streams {
            stream.extras_before(None, &mut self.differences)?;
        }
        let mut firsts = Vec::with_capacity(STREAMED_TREES.len());
        for tree in STREAMED_TREES {
            let mut prefixes: Vec<&[u8]> =
                self.streams.iter().filter(|s| s.tree == tree).map(|s| s.prefix.as_slice()).collect();
            prefixes.sort_unstable();
            let outside = outside_prefixes(tree, &prefixes, &mut self.differences)?;
            let first = self
                .streams
                .iter_mut()
                .filter(|s| s.tree == tree)
                .filter_map(|s| s.first.take())
                .chain(outside)
                .min_by(|a, b| a.key.cmp(&b.key));
            firsts.push((tree, first));
        }
        let differences = self.differences;
        if !differences.repairs.is_empty() {
            differences.live.write_in_order(&differences.repairs, false)?;
        }
        Ok(firsts)
    }
}

/// Walks the live `tree`'s keys under none of `prefixes` (sorted), which the fold
/// never wrote: each a difference. Returns the first, when reporting.
fn outside_prefixes(
    tree: Tree,
    prefixes: &[&[u8]],
    differences: &mut Differences<'_>,
) -> Result<Option<Difference>, StorageError> {
    if prefixes.contains(&&[][..]) {
        // The whole tree was one stream's.
        return Ok(None);
    }
    let live = differences.live;
    let mut walk = InKeyOrder::new(live, tree, &[], CHUNK);
    while let Some(entry) = walk.next() {
        let (key, _) = entry?;
        if let Some(prefix) = prefixes.iter().find(|prefix| key.starts_with(prefix)) {
            // Past the prefix's keys, which its stream compared.
            match after_prefix(prefix) {
                Some(next) => walk = InKeyOrder::new(live, tree, &next, CHUNK),
                None => return Ok(None),
            }
            continue;
        }
        if let Some(first) = differences.found(tree, Difference { key, fresh: None })? {
            return Ok(Some(first));
        }
    }
    Ok(None)
}

/// One write of the fold to a streamed tree: the tree, the key, the value (`None`: a
/// removal).
type StreamedWrite = (Tree, Vec<u8>, Option<Vec<u8>>);

/// The streamed trees' writes taken out of `batch`, tree by tree in key order.
fn take_streamed(batch: &mut WriteBatch) -> Vec<StreamedWrite> {
    let mut taken = Vec::new();
    for tree in STREAMED_TREES {
        if let Some(writes) = batch.writes.remove(&tree) {
            taken.extend(writes.into_iter().map(|(key, value)| (tree, key, value)));
        }
    }
    taken
}

/// How many of the fold's streamed writes are handed to the comparing thread at a time.
const HANDOVER_WRITES: usize = 4096;

/// What the fold hands the comparing thread.
enum Handed {
    Writes(Vec<StreamedWrite>),
    /// The fold has written everything: the comparison may finish (it must not when
    /// the fold stopped early, or a rebuild would remove what the fold never reached).
    Done,
}

/// Runs `fold` on a target that keeps every tree in `held` but the streamed ones, whose
/// writes another thread compares with `live`'s as they come ([`Streamed`], each
/// difference handled as `on_difference` says). Returns what the fold returned and each
/// streamed tree's first difference (none when repairing). A fold that fails is
/// reported as it failed, and its comparison is not finished.
pub fn fold_streaming<T>(
    held: &dyn Storage,
    live: &dyn Storage,
    on_difference: OnDifference,
    fold: impl FnOnce(&dyn Storage) -> Result<T, super::ReplayError>,
) -> Result<(T, FirstDifferences), super::ReplayError> {
    let mut streamed = Streamed::new(live, on_difference);
    std::thread::scope(|scope| {
        let (hand, handed) = std::sync::mpsc::sync_channel(8);
        let comparer = scope.spawn(move || {
            for handed in handed {
                match handed {
                    Handed::Writes(writes) => {
                        for write in writes {
                            streamed.compare(write)?;
                        }
                    }
                    Handed::Done => return streamed.finish().map(Some),
                }
            }
            Ok(None)
        });
        let target = StreamingTarget { held, pending: Mutex::new(Vec::new()), hand };
        let folded = fold(&target).and_then(|answer| {
            target.hand_over(true)?;
            Ok(answer)
        });
        drop(target);
        let compared = comparer.join().map_err(|_| StorageError::Engine("the streamed comparison panicked".into()))?;
        // The comparison's own failure first: a fold it stopped says only that it stopped.
        match (folded, compared?) {
            (Ok(answer), Some(firsts)) => Ok((answer, firsts)),
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(StorageError::Engine("the streamed comparison ended early".into()).into()),
        }
    })
}

/// A fresh fold's target that keeps every tree in `held` but the streamed ones, whose
/// writes it hands to the comparing thread ([`fold_streaming`]). It answers no read of
/// a streamed tree (the fold makes none): it does not hold them.
struct StreamingTarget<'a> {
    held: &'a dyn Storage,
    /// Streamed writes not yet handed over.
    pending: Mutex<Vec<StreamedWrite>>,
    hand: std::sync::mpsc::SyncSender<Handed>,
}

impl<'a> StreamingTarget<'a> {
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

    /// Hands the pending writes over (once there are [`HANDOVER_WRITES`], or all of
    /// them and then the end when `done`).
    fn hand_over(&self, done: bool) -> Result<(), StorageError> {
        let mut pending = self.pending.lock().map_err(|_| poisoned())?;
        let stopped = |_| StorageError::Engine("the streamed comparison stopped".into());
        if pending.len() >= HANDOVER_WRITES || (done && !pending.is_empty()) {
            self.hand.send(Handed::Writes(std::mem::take(&mut *pending))).map_err(stopped)?;
        }
        if done {
            self.hand.send(Handed::Done).map_err(stopped)?;
        }
        Ok(())
    }
}

fn poisoned() -> StorageError {
    StorageError::Engine("the streamed writes' lock was poisoned".into())
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
        let streamed = take_streamed(&mut batch);
        if !streamed.is_empty() {
            self.pending.lock().map_err(|_| poisoned())?.extend(streamed);
            self.hand_over(false)?;
        }
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

    /// Keys as agency changes have them (one of three agency codes, a 0 byte, a
    /// sequence number), with short values.
    fn agency_changes() -> impl Strategy<Value = Entries> {
        let key = (prop::sample::select(vec![&b"KRA"[..], b"NSSF", b"SHA"]), 0u64..12)
            .prop_map(|(agency, seq)| [agency, &[0], &seq.to_be_bytes()].concat());
        proptest::collection::btree_map(key, proptest::collection::vec(0u8..2, 0..3), 0..30)
    }

    /// Takes the streamed trees' writes out of `batch` and compares them, as the
    /// comparing thread does with what the fold hands it.
    fn take_from(streamed: &mut Streamed<'_>, batch: &mut WriteBatch) -> Result<(), StorageError> {
        take_streamed(batch).into_iter().try_for_each(|write| streamed.compare(write))
    }

    /// A live store whose `tree` holds `live`, and a tree that is not streamed.
    fn live_store(tree: Tree, live: &Entries) -> MemoryStore {
        let store = MemoryStore::new();
        let mut batch = WriteBatch::default();
        for (key, value) in live {
            batch.put(tree, key.clone(), value.clone());
        }
        batch.put(Tree::Persons, vec![1], vec![1]);
        store.commit(&batch, false).unwrap();
        store
    }

    /// Feeds `writes` to `tree`'s comparison with `store` in that order, in batches
    /// of the sizes `cuts` gives (each batch also writing a tree that is not streamed,
    /// which must be left in it), and finishes it.
    fn compare(
        store: &MemoryStore,
        tree: Tree,
        writes: &[(&Vec<u8>, &Vec<u8>)],
        cuts: &[usize],
        on_difference: OnDifference,
    ) -> FirstDifferences {
        let mut streamed = Streamed::new(store, on_difference);
        let mut writes = writes.iter().peekable();
        let mut cuts = cuts.iter().cycle();
        while writes.peek().is_some() {
            let mut batch = WriteBatch::default();
            for (key, value) in writes.by_ref().take(*cuts.next().unwrap()) {
                batch.put(tree, key.to_vec(), value.to_vec());
            }
            batch.put(Tree::Numbers, vec![2], vec![2]);
            take_from(&mut streamed, &mut batch).unwrap();
            assert_eq!(batch.writes.keys().collect::<Vec<_>>(), [&Tree::Numbers], "only the streamed trees are taken");
        }
        streamed.finish().unwrap()
    }

    /// Reporting, the comparison of `tree` finds the least key whose live value is not
    /// the fresh one (with the fresh value, or none where the fold never wrote it),
    /// and nothing in a tree that agrees; repairing, it leaves the live tree equal to
    /// the fresh one, other trees untouched.
    fn finds_the_least_difference_and_repairs_all(
        tree: Tree,
        live: &Entries,
        fresh: &Entries,
        writes: &[(&Vec<u8>, &Vec<u8>)],
        cuts: &[usize],
    ) -> Result<(), TestCaseError> {
        let keys: std::collections::BTreeSet<&Vec<u8>> = live.keys().chain(fresh.keys()).collect();
        let least = keys
            .into_iter()
            .find(|key| live.get(*key) != fresh.get(*key))
            .map(|key| Difference { key: key.clone(), fresh: fresh.get(key).cloned() });
        let store = live_store(tree, live);
        let found = compare(&store, tree, writes, cuts, OnDifference::Report);
        let expected: Vec<_> =
            STREAMED_TREES.into_iter().map(|t| (t, if t == tree { least.clone() } else { None })).collect();
        prop_assert_eq!(found, expected);
        prop_assert_eq!(&store.snapshot(tree).unwrap(), live, "a report writes nothing");

        let found = compare(&store, tree, writes, cuts, OnDifference::Repair);
        prop_assert!(found.iter().all(|(_, first)| first.is_none()));
        prop_assert_eq!(&store.snapshot(tree).unwrap(), fresh);
        prop_assert_eq!(store.snapshot(Tree::Persons).unwrap().len(), 1);
        Ok(())
    }

    proptest! {
        /// A tree written in key order over all of it (the RFC 6962 tree's).
        #[test]
        fn a_tree_compared_whole_finds_the_least_difference_and_repairs_all(
            live in entries(),
            fresh in entries(),
            cuts in proptest::collection::vec(1usize..6, 1..4),
        ) {
            let writes: Vec<_> = fresh.iter().collect();
            finds_the_least_difference_and_repairs_all(Tree::MerkleNodes, &live, &fresh, &writes, &cuts)?;
        }

        /// Agency changes, written by sequence number across agencies as a fold writes
        /// them; the live tree also holds keys of no agency the fold wrote, and keys
        /// of other shapes.
        #[test]
        fn agency_changes_compared_by_agency_find_the_least_difference_and_repair_all(
            live in agency_changes(),
            stray in entries(),
            fresh in agency_changes(),
            cuts in proptest::collection::vec(1usize..6, 1..4),
        ) {
            let live: Entries = live.into_iter().chain(stray).collect();
            let mut writes: Vec<_> = fresh.iter().collect();
            writes.sort_by_key(|(key, _)| (key[key.len() - 8..].to_vec(), key.to_vec()));
            finds_the_least_difference_and_repairs_all(Tree::AgencyChanges, &live, &fresh, &writes, &cuts)?;
        }
    }

    /// The merge join holds only for writes in key order: a fold that broke it is
    /// refused, not compared wrongly.
    #[test]
    fn writes_out_of_key_order_are_refused() {
        let store = live_store(Tree::Persons, &Entries::new());
        // Repairing, so that the first write (a difference) does not end the comparison.
        let mut streamed = Streamed::new(&store, OnDifference::Repair);
        let mut batch = WriteBatch::default();
        batch.put(Tree::MerkleBlocks, vec![5], vec![0]);
        take_from(&mut streamed, &mut batch).unwrap();
        let mut batch = WriteBatch::default();
        batch.put(Tree::MerkleBlocks, vec![5], vec![1]);
        let refused = take_from(&mut streamed, &mut batch).unwrap_err();
        assert!(refused.to_string().contains("out of key order"), "{refused}");
    }

    /// Nor can streams of nested prefixes be told apart (agency codes hold no 0 byte,
    /// so a fold never makes them): refused too.
    #[test]
    fn nested_prefixes_are_refused() {
        let store = live_store(Tree::Persons, &Entries::new());
        let mut streamed = Streamed::new(&store, OnDifference::Repair);
        let mut batch = WriteBatch::default();
        batch.put(Tree::AgencyChanges, [&b"KRA\0"[..], &7u64.to_be_bytes()].concat(), vec![0]);
        batch.put(Tree::AgencyChanges, [&b"KRA\0X\0"[..], &7u64.to_be_bytes()].concat(), vec![0]);
        let refused = take_from(&mut streamed, &mut batch).unwrap_err();
        assert!(refused.to_string().contains("nested key prefixes"), "{refused}");
    }

    /// A read of a streamed tree through the fold's target is refused (the target does
    /// not hold it); other trees are read from what it holds.
    #[test]
    fn the_target_answers_no_read_of_a_streamed_tree() {
        let (live, held) = (live_store(Tree::Persons, &Entries::new()), MemoryStore::new());
        let (answer, found) = fold_streaming(&held, &live, OnDifference::Report, |target| {
            let mut batch = WriteBatch::default();
            batch.put(Tree::MerkleNodes, vec![1], vec![1]);
            batch.put(Tree::Numbers, vec![1], vec![1]);
            target.commit(&batch, false)?;
            assert_eq!(target.get(Tree::Numbers, &[1]).unwrap(), Some(vec![1]));
            assert!(target.get(Tree::MerkleNodes, &[1]).is_err());
            assert!(target.range_from(Tree::MerkleNodes, &[], 1).is_err());
            Ok(7)
        })
        .unwrap();
        assert_eq!(answer, 7);
        assert!(held.snapshot(Tree::MerkleNodes).unwrap().is_empty(), "the streamed tree is not held");
        assert_eq!(found[1], (Tree::MerkleNodes, Some(Difference { key: vec![1], fresh: Some(vec![1]) })));
    }

    /// A fold that stops early is reported as it failed, and its comparison is not
    /// finished: a rebuild does not remove the live entries the fold never reached.
    #[test]
    fn a_fold_that_fails_leaves_what_it_never_reached() {
        let live = live_store(Tree::MerkleNodes, &Entries::from([(vec![1], vec![1]), (vec![9], vec![9])]));
        let failed = fold_streaming(&MemoryStore::new(), &live, OnDifference::Repair, |target| {
            let mut batch = WriteBatch::default();
            batch.put(Tree::MerkleNodes, vec![1], vec![2]);
            target.commit(&batch, false)?;
            Err::<(), _>(super::super::ReplayError::Record { seq: 3, reason: "bad".into() })
        })
        .unwrap_err();
        assert_eq!(failed.seq(), Some(3), "{failed}");
        assert_eq!(live.snapshot(Tree::MerkleNodes).unwrap().get(&vec![9]), Some(&vec![9]));
    }
}
