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
//! room to grow, and it grows while serving: once it holds as many distinct keys as
//! it was sized for, a filter twice the size is filled beside it (every write enters
//! both; a scan on its own thread enters what the store holds) and replaces it when
//! that scan ends. The scan begins only after every write in flight has reached the
//! store (writes hold [`State::gate`] shared; installing the new filter takes it
//! whole), so the new filter too holds every key present when it starts to serve.
//! Its false-positive rate, fill and growths are in [`FilterStats`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use fastbloom::AtomicBloomFilter;

use super::in_key_order::InKeyOrder;
use super::view::ReadError;
use super::{Intent, Storage, StorageError, Tree, WriteBatch};

/// The trees whose keys the filter holds.
pub const FILTERED_TREES: [Tree; 3] = [Tree::Requests, Tree::MatchKeys, Tree::NameCounts];

/// The false-positive rate the filter is sized for (about 9.6 bits per key).
const FALSE_POSITIVE_RATE: f64 = 0.01;

/// Keys the filter is sized for beyond what the store holds at open.
const HEADROOM_KEYS: u64 = 4 << 20;

/// How many entries a scan reads per call to the store.
const SCAN_PAGE: usize = 4096;

fn filtered(tree: Tree) -> bool {
    FILTERED_TREES.contains(&tree)
}

/// One Bloom filter and what it holds.
struct Filter {
    bloom: AtomicBloomFilter<foldhash::fast::RandomState>,
    /// Set once every key the store held when this filter began has entered it.
    ready: AtomicBool,
    /// Distinct keys entered (a key the filter may already hold is not counted
    /// again: its false positives aside, the keys it holds).
    entered: AtomicU64,
    /// What the filter was sized for.
    capacity: u64,
}

impl Filter {
    fn sized_for(capacity: u64) -> Self {
        let bloom = AtomicBloomFilter::with_false_pos(FALSE_POSITIVE_RATE)
            .hasher(foldhash::fast::RandomState::default())
            .expected_items(usize::try_from(capacity.max(1)).unwrap_or(usize::MAX));
        Self { bloom, ready: AtomicBool::new(false), entered: AtomicU64::new(0), capacity }
    }

    fn enter(&self, tree: Tree, key: &[u8]) {
        // `insert` answers whether the key may have been there already.
        if !self.bloom.insert(&(tree as u8, key)) {
            self.entered.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn full(&self) -> bool {
        self.entered.load(Ordering::Relaxed) >= self.capacity
    }

    fn false_positive_rate(&self) -> f64 {
        let hashes = self.bloom.num_hashes();
        let entered = usize::try_from(self.entered.load(Ordering::Relaxed)).unwrap_or(usize::MAX);
        fastbloom::expected_false_pos(hashes, fastbloom::expected_density(hashes, self.bloom.num_bits(), entered))
    }
}

/// The filter reads consult and, while it grows, the one being filled to replace it.
struct Filters {
    serving: Arc<Filter>,
    next: Option<Arc<Filter>>,
}

/// What the store, its scans and its growth share.
struct State {
    inner: Arc<dyn Storage>,
    filters: RwLock<Filters>,
    /// Held shared by a write from the moment its keys enter the filters until the
    /// store has it; held whole while a growth installs its new filter, so that the
    /// growth's scan begins with no write in flight.
    gate: RwLock<()>,
    /// Set to stop the scans early (the store is closing).
    stop: AtomicBool,
    /// Set once a growth has begun; cleared when it has replaced the filter.
    growing: AtomicBool,
    /// Reads answered without the store.
    skipped: AtomicU64,
    /// Times the filter has grown since the open.
    growths: AtomicU64,
    /// Keys a growth adds beyond twice those held (the open's headroom).
    headroom: u64,
}

impl State {
    fn filters(&self) -> std::sync::RwLockReadGuard<'_, Filters> {
        self.filters.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the store certainly does not hold `key` in `tree`.
    fn absent(&self, tree: Tree, key: &[u8]) -> bool {
        if !filtered(tree) {
            return false;
        }
        let filters = self.filters();
        if !filters.serving.ready.load(Ordering::Acquire) {
            return false;
        }
        let absent = !filters.serving.bloom.contains(&(tree as u8, key));
        if absent {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        absent
    }

    fn enter_batch(&self, batch: &WriteBatch) {
        let filters = self.filters();
        for (tree, writes) in &batch.writes {
            if filtered(*tree) {
                for (key, value) in writes {
                    if value.is_some() {
                        filters.serving.enter(*tree, key);
                        if let Some(next) = &filters.next {
                            next.enter(*tree, key);
                        }
                    }
                }
            }
        }
    }

    /// Enters every key the filtered trees hold into `filter`, page by page, then
    /// marks it ready. False if it stopped or failed (the filter is then not ready).
    fn scan_into(&self, filter: &Filter, what: &str) -> bool {
        let began = std::time::Instant::now();
        for tree in FILTERED_TREES {
            for entry in InKeyOrder::new(&*self.inner, tree, &[], SCAN_PAGE) {
                if self.stop.load(Ordering::Relaxed) {
                    return false;
                }
                match entry {
                    Ok((key, _)) => filter.enter(tree, &key),
                    Err(e) => {
                        tracing::error!(error = %e, tree = tree.name(), "presence filter {what} failed; reads go on as before it");
                        return false;
                    }
                }
            }
        }
        filter.ready.store(true, Ordering::Release);
        tracing::info!(
            keys = filter.entered.load(Ordering::Relaxed),
            capacity = filter.capacity,
            seconds = began.elapsed().as_secs_f64(),
            "presence filter {what} done"
        );
        true
    }

    /// Fills a filter twice the size beside the serving one and puts it in its place.
    fn grow(&self) {
        let (held, capacity) = {
            let filters = self.filters();
            (filters.serving.entered.load(Ordering::Relaxed), filters.serving.capacity)
        };
        let next = Arc::new(Filter::sized_for(held.saturating_mul(2).saturating_add(self.headroom)));
        tracing::info!(held, capacity, new_capacity = next.capacity, "the presence filter is full: growing it");
        {
            // No write is in flight once the gate is held whole: each has reached the
            // store (and the scan below finds it) or has yet to enter its keys.
            let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
            self.filters.write().unwrap_or_else(|p| p.into_inner()).next = Some(Arc::clone(&next));
        }
        let grown = self.scan_into(&next, "growth");
        let mut filters = self.filters.write().unwrap_or_else(|p| p.into_inner());
        filters.next = None;
        if grown {
            filters.serving = next;
            self.growths.fetch_add(1, Ordering::Relaxed);
            drop(filters);
            self.growing.store(false, Ordering::Release);
        }
        // A growth that failed is not tried again before the next open: reads go on
        // through the full filter (more of them reach the store, none is wrong).
    }
}

/// What the filter holds and has saved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterStats {
    /// Whether the opening scan has finished (before it has, no read is skipped).
    pub ready: bool,
    /// Distinct keys the serving filter holds.
    pub entered: u64,
    /// Keys the serving filter was sized for (it grows past them).
    pub capacity: u64,
    /// Reads answered "absent" without reading the store.
    pub skipped: u64,
    /// Times the filter has grown since the open.
    pub growths: u64,
    /// The filter's false-positive rate at its present fill, estimated.
    pub false_positive_rate: f64,
}

/// A store behind a filter of the keys present in [`FILTERED_TREES`].
pub struct FilteredStore {
    inner: Arc<dyn Storage>,
    state: Arc<State>,
    scan: Mutex<Option<JoinHandle<()>>>,
    growth: Mutex<Option<JoinHandle<()>>>,
}

impl FilteredStore {
    /// Puts the filter in front of `inner` and starts reading the keys it already holds
    /// on a thread of its own. The filter is sized from the log's length.
    pub fn open(inner: Arc<dyn Storage>) -> Result<Self, StorageError> {
        Self::open_with_headroom(inner, HEADROOM_KEYS)
    }

    /// [`FilteredStore::open`], sized for `headroom` keys beyond the store's (and
    /// each growth for as many beyond twice those it holds).
    fn open_with_headroom(inner: Arc<dyn Storage>, headroom: u64) -> Result<Self, StorageError> {
        let records = match inner.last(Tree::Log)? {
            Some((key, _)) => key.get(..8).and_then(|k| k.try_into().ok()).map_or(0, u64::from_be_bytes) + 1,
            None => 0,
        };
        // A record adds at most one request and, for a registration, a few blocks.
        let capacity = records.saturating_mul(4).saturating_add(headroom);
        let state = Arc::new(State {
            inner: Arc::clone(&inner),
            filters: RwLock::new(Filters { serving: Arc::new(Filter::sized_for(capacity)), next: None }),
            gate: RwLock::new(()),
            stop: AtomicBool::new(false),
            growing: AtomicBool::new(false),
            skipped: AtomicU64::new(0),
            growths: AtomicU64::new(0),
            headroom,
        });
        let scan_state = Arc::clone(&state);
        let scan = std::thread::Builder::new()
            .name("huduma-presence-filter".into())
            .spawn(move || {
                let serving = Arc::clone(&scan_state.filters().serving);
                scan_state.scan_into(&serving, "opening scan");
            })
            .map_err(|e| StorageError::Engine(format!("cannot start the presence filter's scan: {e}")))?;
        Ok(Self { inner, state, scan: Mutex::new(Some(scan)), growth: Mutex::new(None) })
    }

    /// Waits until the opening scan has finished (tests and benchmarks, which want
    /// the filter in use from their first read).
    pub fn wait_ready(&self) {
        join(&self.scan, "scan");
    }

    /// Waits until a growth under way, if any, has replaced the filter.
    pub fn wait_grown(&self) {
        join(&self.growth, "growth");
    }

    pub fn stats(&self) -> FilterStats {
        let serving = Arc::clone(&self.state.filters().serving);
        FilterStats {
            ready: serving.ready.load(Ordering::Acquire),
            entered: serving.entered.load(Ordering::Relaxed),
            capacity: serving.capacity,
            skipped: self.state.skipped.load(Ordering::Relaxed),
            growths: self.state.growths.load(Ordering::Relaxed),
            false_positive_rate: serving.false_positive_rate(),
        }
    }

    /// Enters the batch's keys, then has `write` pass it (borrowed or owned) to the
    /// store, the gate held shared throughout; then starts a growth if the filter is
    /// full.
    fn writing<B: std::borrow::Borrow<WriteBatch>>(
        &self,
        batch: B,
        write: impl FnOnce(B) -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let result = {
            let _gate = self.state.gate.read().unwrap_or_else(|p| p.into_inner());
            self.state.enter_batch(batch.borrow());
            write(batch)
        };
        self.grow_if_full();
        result
    }

    fn grow_if_full(&self) {
        {
            let filters = self.state.filters();
            if !filters.serving.ready.load(Ordering::Acquire) || !filters.serving.full() {
                return;
            }
        }
        if self.state.growing.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut slot = self.growth.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = slot.take()
            && done.join().is_err()
        {
            tracing::error!("an earlier growth of the presence filter panicked");
        }
        let state = Arc::clone(&self.state);
        match std::thread::Builder::new().name("huduma-presence-grow".into()).spawn(move || state.grow()) {
            Ok(handle) => *slot = Some(handle),
            Err(e) => tracing::error!(error = %e, "cannot start the presence filter's growth; it stays at its size"),
        }
    }
}

fn join(slot: &Mutex<Option<JoinHandle<()>>>, what: &str) {
    let handle = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(handle) = handle
        && handle.join().is_err()
    {
        tracing::error!("the presence filter's {what} panicked; reads go on through the filter as it was");
    }
}

impl Drop for FilteredStore {
    /// Stops the scans and waits for them, so that closing the registry releases the store.
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        self.wait_ready();
        self.wait_grown();
    }
}

impl Storage for FilteredStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if self.state.absent(tree, key) {
            return Ok(None);
        }
        self.inner.get(tree, key)
    }

    fn get_checked(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        if self.state.absent(tree, key) {
            return Ok(None);
        }
        self.inner.get_checked(tree, key)
    }

    crate::forward_scans!(inner);

    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.writing(batch, |batch| self.inner.commit(batch, durable))
    }

    fn commit_owned(&self, batch: WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.writing(batch, |batch| self.inner.commit_owned(batch, durable))
    }

    fn write_in_order(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.writing(batch, |batch| self.inner.write_in_order(batch, durable))
    }

    fn commit_staged(&self, batch: &Arc<WriteBatch>, intent: &Intent, durable: bool) -> Result<(), StorageError> {
        self.writing(&**batch, |_| self.inner.commit_staged(batch, intent, durable))
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

    fn key_of(i: u32) -> Vec<u8> {
        [b"k".as_slice(), &i.to_be_bytes()].concat()
    }

    #[test]
    fn a_full_filter_grows_and_still_finds_every_key_and_skips_the_absent() {
        let inner: Arc<dyn Storage> = Arc::new(MemoryStore::default());
        for i in 0..100 {
            inner.commit(&put(Tree::MatchKeys, &key_of(i), b"before"), false).unwrap();
        }
        let store = FilteredStore::open_with_headroom(Arc::clone(&inner), 50).unwrap();
        store.wait_ready();
        assert_eq!(store.stats().capacity, 50, "no log: sized for the headroom alone");
        for i in 100..5_000 {
            store.commit(&put(Tree::Requests, &key_of(i), b"after"), false).unwrap();
            if i % 500 == 0 {
                store.wait_grown();
            }
        }
        store.wait_grown();
        let stats = store.stats();
        assert!(stats.growths >= 3, "grown from 50 keys to hold 5,000: {stats:?}");
        assert!(stats.ready && stats.capacity >= 5_000 && stats.entered >= 4_900, "{stats:?}");
        for i in 0..100 {
            assert!(store.get(Tree::MatchKeys, &key_of(i)).unwrap().is_some(), "key {i} stored before the open");
        }
        for i in 100..5_000 {
            assert!(store.get(Tree::Requests, &key_of(i)).unwrap().is_some(), "key {i} written after");
        }
        let skipped = stats.skipped;
        for i in 10_000..11_000 {
            assert_eq!(store.get(Tree::Requests, &key_of(i)).unwrap(), None);
        }
        let skipped = store.stats().skipped - skipped;
        assert!(skipped >= 950, "a grown filter skips nearly every absent key: {skipped} of 1,000");
    }

    /// A store whose scans are slow, so that writes land while a growth's scan runs
    /// (in the pages it has read and those it has yet to).
    struct SlowScans(MemoryStore);

    impl Storage for SlowScans {
        fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
            self.0.get(tree, key)
        }
        fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<crate::storage::KeyValue>, StorageError> {
            self.0.scan_prefix(tree, prefix)
        }
        fn range_from(
            &self,
            tree: Tree,
            from: &[u8],
            limit: usize,
        ) -> Result<Vec<crate::storage::KeyValue>, StorageError> {
            std::thread::sleep(std::time::Duration::from_millis(1));
            self.0.range_from(tree, from, limit)
        }
        fn range_back(
            &self,
            tree: Tree,
            prefix: &[u8],
            before: &[u8],
            limit: usize,
        ) -> Result<Vec<crate::storage::KeyValue>, StorageError> {
            self.0.range_back(tree, prefix, before, limit)
        }
        fn last(&self, tree: Tree) -> Result<Option<crate::storage::KeyValue>, StorageError> {
            self.0.last(tree)
        }
        /// Slow too: a write is in flight long enough for a growth to begin meanwhile
        /// (and the writes are paced, so that a growth's filter is not overfull: its
        /// false positives would hide a key it lacks).
        fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
            std::thread::sleep(std::time::Duration::from_millis(2));
            self.0.commit(batch, durable)
        }
        fn flush(&self) -> Result<(), StorageError> {
            Ok(())
        }
    }

    /// A key of writer `w`'s `i`-th write: spread over the key space (a permutation
    /// of `i`), so that writes land both before and after a scan's position.
    fn spread_key(w: u8, i: u32) -> Vec<u8> {
        [[w].as_slice(), &i.wrapping_mul(2_654_435_761).to_be_bytes()].concat()
    }

    /// A key and its tree.
    type TreeKey = (Tree, Vec<u8>);

    /// Every key is found the moment its write returns, and ever after, whichever
    /// filter serves: while growths fill new filters beside the serving one (their
    /// scans slow, so that writes land during them and are in flight as they begin)
    /// and put them in its place, under writes from two threads. After each growth
    /// every write acknowledged so far is looked up.
    #[test]
    fn no_key_written_during_a_growth_is_ever_reported_absent() {
        const GROWTHS: u64 = 6;
        let store =
            Arc::new(FilteredStore::open_with_headroom(Arc::new(SlowScans(MemoryStore::default())), 16).unwrap());
        store.wait_ready();
        let acknowledged: Arc<Mutex<Vec<TreeKey>>> = Arc::default();
        let writers: Vec<_> = (0..2u8)
            .map(|w| {
                let (store, acknowledged) = (Arc::clone(&store), Arc::clone(&acknowledged));
                std::thread::spawn(move || {
                    let mut i = 0u32;
                    // Until the filter has grown enough (a bound, should it never).
                    while store.stats().growths < GROWTHS && i < 100_000 {
                        let (key, tree) = (spread_key(w, i), FILTERED_TREES[(i % 3) as usize]);
                        store.commit(&put(tree, &key, b"v"), false).unwrap();
                        assert!(store.get(tree, &key).unwrap().is_some(), "writer {w}: write {i} absent after it");
                        acknowledged.lock().unwrap().push((tree, key));
                        i += 1;
                    }
                })
            })
            .collect();
        let lost = |when: &str| {
            let keys = acknowledged.lock().unwrap().clone();
            for (tree, key) in &keys {
                assert!(store.get(*tree, key).unwrap().is_some(), "{when}: {key:?} lost of {} written", keys.len());
            }
        };
        let mut seen = 0;
        while writers.iter().any(|w| !w.is_finished()) {
            let growths = store.stats().growths;
            if growths > seen {
                lost(&format!("after growth {growths}"));
                seen = growths;
            }
            std::thread::yield_now();
        }
        for writer in writers {
            writer.join().unwrap();
        }
        store.wait_grown();
        lost("at the end");
        let stats = store.stats();
        assert!(stats.growths >= GROWTHS, "{stats:?}");
        assert!(stats.false_positive_rate < 0.05, "{stats:?}");
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
        /// A small headroom has the filter grow, on its own thread, while the
        /// operations run.
        #[test]
        fn reads_through_the_filter_answer_as_the_store_does(
            before in proptest::collection::vec((0..TREES.len(), any::<u8>()), 0..64),
            ops in proptest::collection::vec(op(), 0..256),
            headroom in prop_oneof![Just(HEADROOM_KEYS), 1u64..16],
        ) {
            let inner: Arc<dyn Storage> = Arc::new(MemoryStore::default());
            for (t, k) in &before {
                inner.commit(&put(TREES[*t], &[*k], &[*k]), false).unwrap();
            }
            let store = FilteredStore::open_with_headroom(Arc::clone(&inner), headroom).unwrap();
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
