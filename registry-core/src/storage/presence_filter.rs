//! A filter of the keys present in the trees whose reads mostly miss: [`FilteredStore`]
//! answers a point read of a key it has never seen written with "absent" without
//! reading the store.
//!
//! Which reads those are: the writer reads the request index for every command (a
//! new request id is absent by definition), and the duplicate search reads each of a
//! registration's 5-22 blocks and the counts of its name words, most of them empty
//! or never counted (80% of the blocks probed at 100,000 persons). From sled each
//! such miss costs a full tree descent (3-7 µs here), and while the committer's
//! `apply_batch` holds sled's global lock it waits for the whole batch.
//!
//! The filter is a Bloom filter (fastbloom's, updated without a lock) of every key
//! ever written to [`FILTERED_TREES`] through this store or found there at open. It
//! never answers "absent" for a key that is present:
//! - a write's keys enter the filter before the write is passed to the store, so no
//!   reader can find a key in the store that the filter has not seen;
//! - the keys stored before the open are read by a scan on a thread of its own, and
//!   until that scan has finished every read goes to the store (the open does not
//!   wait for it: at national scale it reads hundreds of millions of keys).
//!
//! Removals leave their keys in the filter (a later read of one costs a store read,
//! as without the filter). It is sized at open for the store as it then is, with
//! room to grow; a store that outgrows that has more false positives (more reads,
//! never a wrong answer) until it is next opened. Its false-positive rate and fill
//! are in [`FilterStats`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use fastbloom::AtomicBloomFilter;

use super::view::ReadError;
use super::{Intent, Storage, StorageError, Tree, WriteBatch};

/// The trees whose keys the filter holds.
pub const FILTERED_TREES: [Tree; 3] = [Tree::Requests, Tree::MatchKeys, Tree::NameCounts];

/// The false-positive rate the filter is sized for (about 9.6 bits per key).
const FALSE_POSITIVE_RATE: f64 = 0.01;

/// Keys the filter is sized for beyond what the store holds at open.
const HEADROOM_KEYS: u64 = 4 << 20;

/// How many entries the opening scan reads per call to the store.
const SCAN_PAGE: usize = 4096;

fn filtered(tree: Tree) -> bool {
    FILTERED_TREES.contains(&tree)
}

/// The filter and the state of its opening scan, shared with the scan's thread.
struct Shared {
    filter: AtomicBloomFilter<foldhash::fast::RandomState>,
    /// Set once every key stored before the open has entered the filter.
    ready: AtomicBool,
    /// Set to stop the scan early (the store is closing).
    stop: AtomicBool,
    /// Keys entered (writes and the scan; a key written twice counts twice).
    entered: AtomicU64,
    /// Reads answered without the store.
    skipped: AtomicU64,
    /// What the filter was sized for.
    capacity: u64,
}

impl Shared {
    fn enter(&self, tree: Tree, key: &[u8]) {
        self.filter.insert(&(tree as u8, key));
        if self.entered.fetch_add(1, Ordering::Relaxed) == self.capacity {
            tracing::warn!(
                capacity = self.capacity,
                "the presence filter is past the size it was given at open: more reads reach the store until the next open"
            );
        }
    }

    /// Whether the store certainly does not hold `key` in `tree`.
    fn absent(&self, tree: Tree, key: &[u8]) -> bool {
        if !filtered(tree) || !self.ready.load(Ordering::Acquire) {
            return false;
        }
        let absent = !self.filter.contains(&(tree as u8, key));
        if absent {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        absent
    }
}

/// What the filter holds and has saved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterStats {
    /// Whether the opening scan has finished (before it has, no read is skipped).
    pub ready: bool,
    /// Keys entered so far.
    pub entered: u64,
    /// Keys it was sized for.
    pub capacity: u64,
    /// Reads answered "absent" without reading the store.
    pub skipped: u64,
    /// The filter's false-positive rate at its present fill, estimated.
    pub false_positive_rate: f64,
}

/// A store behind a filter of the keys present in [`FILTERED_TREES`].
pub struct FilteredStore {
    inner: Arc<dyn Storage>,
    shared: Arc<Shared>,
    scan: Mutex<Option<JoinHandle<()>>>,
}

impl FilteredStore {
    /// Puts the filter in front of `inner` and starts reading the keys it already holds
    /// on a thread of its own. The filter is sized from the log's length.
    pub fn open(inner: Arc<dyn Storage>) -> Result<Self, StorageError> {
        let records = match inner.last(Tree::Log)? {
            Some((key, _)) => key.get(..8).and_then(|k| k.try_into().ok()).map_or(0, u64::from_be_bytes) + 1,
            None => 0,
        };
        // A record adds at most one request and, for a registration, a few blocks.
        let capacity = records.saturating_mul(4).saturating_add(HEADROOM_KEYS);
        let filter = AtomicBloomFilter::with_false_pos(FALSE_POSITIVE_RATE)
            .hasher(foldhash::fast::RandomState::default())
            .expected_items(usize::try_from(capacity).unwrap_or(usize::MAX));
        let shared = Arc::new(Shared {
            filter,
            ready: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            entered: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            capacity,
        });
        let (scan_store, scan_shared) = (Arc::clone(&inner), Arc::clone(&shared));
        let scan = std::thread::Builder::new()
            .name("huduma-presence-filter".into())
            .spawn(move || scan_existing(&*scan_store, &scan_shared))
            .map_err(|e| StorageError::Engine(format!("cannot start the presence filter's scan: {e}")))?;
        Ok(Self { inner, shared, scan: Mutex::new(Some(scan)) })
    }

    /// Waits until the opening scan has finished (tests and benchmarks, which want
    /// the filter in use from their first read).
    pub fn wait_ready(&self) {
        let handle = self.scan.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!("the presence filter's scan panicked; reads go to the store");
        }
    }

    pub fn stats(&self) -> FilterStats {
        let entered = self.shared.entered.load(Ordering::Relaxed);
        let hashes = self.shared.filter.num_hashes();
        let density = fastbloom::expected_density(
            hashes,
            self.shared.filter.num_bits(),
            usize::try_from(entered).unwrap_or(usize::MAX),
        );
        FilterStats {
            ready: self.shared.ready.load(Ordering::Acquire),
            entered,
            capacity: self.shared.capacity,
            skipped: self.shared.skipped.load(Ordering::Relaxed),
            false_positive_rate: fastbloom::expected_false_pos(hashes, density),
        }
    }

    fn enter_batch(&self, batch: &WriteBatch) {
        for (tree, writes) in &batch.writes {
            if filtered(*tree) {
                for (key, value) in writes {
                    if value.is_some() {
                        self.shared.enter(*tree, key);
                    }
                }
            }
        }
    }
}

/// Enters every key the filtered trees hold, page by page, then marks the filter ready.
fn scan_existing(store: &dyn Storage, shared: &Shared) {
    let began = std::time::Instant::now();
    for tree in FILTERED_TREES {
        let mut from = Vec::new();
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            let page = match store.range_from(tree, &from, SCAN_PAGE) {
                Ok(page) => page,
                Err(e) => {
                    // Without the scan the filter would miss keys: it stays off.
                    tracing::error!(error = %e, tree = tree.name(), "presence filter scan failed; reads go to the store");
                    return;
                }
            };
            for (key, _) in &page {
                shared.enter(tree, key);
            }
            match page.last() {
                Some((last, _)) if page.len() == SCAN_PAGE => {
                    from = last.clone();
                    from.push(0);
                }
                _ => break,
            }
        }
    }
    shared.ready.store(true, Ordering::Release);
    tracing::info!(
        keys = shared.entered.load(Ordering::Relaxed),
        seconds = began.elapsed().as_secs_f64(),
        "presence filter ready"
    );
}

impl Drop for FilteredStore {
    /// Stops the scan and waits for it, so that closing the registry releases the store.
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.wait_ready();
    }
}

impl Storage for FilteredStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if self.shared.absent(tree, key) {
            return Ok(None);
        }
        self.inner.get(tree, key)
    }

    fn get_checked(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        if self.shared.absent(tree, key) {
            return Ok(None);
        }
        self.inner.get_checked(tree, key)
    }

    crate::forward_scans!(inner);

    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.enter_batch(batch);
        self.inner.commit(batch, durable)
    }

    fn commit_owned(&self, batch: WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.enter_batch(&batch);
        self.inner.commit_owned(batch, durable)
    }

    fn write_in_order(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.enter_batch(batch);
        self.inner.write_in_order(batch, durable)
    }

    fn commit_staged(&self, batch: &Arc<WriteBatch>, intent: &Intent, durable: bool) -> Result<(), StorageError> {
        self.enter_batch(batch);
        self.inner.commit_staged(batch, intent, durable)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;
    use proptest::prelude::*;

    fn put(tree: Tree, key: &[u8], value: &[u8]) -> WriteBatch {
        let mut batch = WriteBatch::default();
        batch.put(tree, key.to_vec(), crate::storage::checksum::seal(value));
        batch
    }

    #[test]
    fn keys_stored_before_the_open_and_written_after_are_found_and_others_skipped() {
        let inner: Arc<dyn Storage> = Arc::new(MemoryStore::default());
        inner.commit(&put(Tree::Requests, b"before", b"1"), false).unwrap();
        let store = FilteredStore::open(Arc::clone(&inner)).unwrap();
        store.wait_ready();
        store.commit(&put(Tree::MatchKeys, b"after", b"2"), false).unwrap();
        assert_eq!(store.get_checked(Tree::Requests, b"before").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(store.get_checked(Tree::MatchKeys, b"after").unwrap().as_deref(), Some(&b"2"[..]));
        assert_eq!(store.stats().skipped, 0);
        for key in 0u32..100 {
            assert_eq!(store.get_checked(Tree::Requests, &key.to_be_bytes()).unwrap(), None);
        }
        let stats = store.stats();
        assert!(stats.ready);
        assert_eq!(stats.entered, 2);
        assert!(stats.skipped >= 95, "at a 1% false-positive rate nearly every absent key is skipped: {stats:?}");
    }

    /// A store that counts the point reads that reach it.
    #[derive(Default)]
    struct Counting(MemoryStore, AtomicU64);

    impl Storage for Counting {
        fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.get(tree, key)
        }
        crate::forward_scans!(0);
        fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
            self.0.commit(batch, durable)
        }
        fn flush(&self) -> Result<(), StorageError> {
            Ok(())
        }
    }

    #[test]
    fn a_skipped_read_does_not_reach_the_store_and_other_trees_always_do() {
        let inner = Arc::new(Counting::default());
        let store = FilteredStore::open(inner.clone()).unwrap();
        store.wait_ready();
        // Requests is filtered and empty: answered without the store (1% may be read).
        for k in 0u32..100 {
            assert_eq!(store.get_checked(Tree::Requests, &k.to_be_bytes()).unwrap(), None);
        }
        let read = inner.1.load(Ordering::Relaxed);
        assert!(read <= 5, "{read} of 100 absent request ids read from the store");
        // Persons is not filtered: every read reaches the store.
        for k in 0u32..10 {
            store.get_checked(Tree::Persons, &k.to_be_bytes()).unwrap();
        }
        assert_eq!(inner.1.load(Ordering::Relaxed), read + 10);
    }

    #[test]
    fn the_scan_pages_through_more_than_one_page_of_each_tree() {
        let inner: Arc<dyn Storage> = Arc::new(MemoryStore::default());
        let mut batch = WriteBatch::default();
        let count = SCAN_PAGE as u32 * 2 + 7;
        for i in 0..count {
            batch.put(Tree::MatchKeys, i.to_be_bytes().to_vec(), crate::storage::checksum::seal(b"v"));
            batch.put(Tree::NameCounts, i.to_be_bytes().to_vec(), crate::storage::checksum::seal(b"v"));
        }
        inner.commit(&batch, false).unwrap();
        let store = FilteredStore::open(inner).unwrap();
        store.wait_ready();
        assert_eq!(store.stats().entered, 2 * u64::from(count));
        for i in 0..count {
            assert!(store.get(Tree::MatchKeys, &i.to_be_bytes()).unwrap().is_some(), "match key {i} lost");
            assert!(store.get(Tree::NameCounts, &i.to_be_bytes()).unwrap().is_some(), "name count {i} lost");
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(usize, u8),
        Remove(usize, u8),
        Get(usize, u8),
    }

    const TREES: [Tree; 4] = [Tree::Requests, Tree::MatchKeys, Tree::NameCounts, Tree::Persons];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..TREES.len(), any::<u8>()).prop_map(|(t, k)| Op::Put(t, k)),
            (0..TREES.len(), any::<u8>()).prop_map(|(t, k)| Op::Remove(t, k)),
            (0..TREES.len(), any::<u8>()).prop_map(|(t, k)| Op::Get(t, k)),
        ]
    }

    proptest! {
        /// Whatever was stored before the open and whatever is written or removed
        /// after, every read through the filter answers what the store alone answers:
        /// no key present is ever reported absent.
        #[test]
        fn reads_through_the_filter_answer_as_the_store_does(
            before in proptest::collection::vec((0..TREES.len(), any::<u8>()), 0..64),
            ops in proptest::collection::vec(op(), 0..256),
        ) {
            let inner: Arc<dyn Storage> = Arc::new(MemoryStore::default());
            for (t, k) in &before {
                inner.commit(&put(TREES[*t], &[*k], &[*k]), false).unwrap();
            }
            let store = FilteredStore::open(Arc::clone(&inner)).unwrap();
            store.wait_ready();
            for op in ops {
                match op {
                    Op::Put(t, k) => store.commit(&put(TREES[t], &[k], &[k, 1]), false).unwrap(),
                    Op::Remove(t, k) => {
                        let mut batch = WriteBatch::default();
                        batch.remove(TREES[t], vec![k]);
                        store.commit(&batch, false).unwrap();
                    }
                    Op::Get(t, k) => {
                        prop_assert_eq!(store.get_checked(TREES[t], &[k]).unwrap(), inner.get_checked(TREES[t], &[k]).unwrap());
                    }
                }
            }
            for t in TREES {
                for k in 0..=u8::MAX {
                    prop_assert_eq!(store.get(t, &[k]).unwrap(), inner.get(t, &[k]).unwrap());
                }
            }
        }
    }
}
