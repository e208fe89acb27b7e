//! A read cache in front of a store for the trees a look-up reads by key (numbers,
//! persons, agency links, the keyring): [`CachedStore`] answers their point reads from
//! memory and forgets every key a write touches, after the write reaches the store.
//!
//! What it holds is what the store holds: each value as [`Storage::get_checked`]
//! returns it, its checksum checked as it entered (so corruption on disk is still
//! reported, never cached), person entries with their demographics sealed, keyring
//! entries sealed under the master secret. No plaintext personal data and no opened
//! data key is ever cached; an erasure's write drops the person's cached keyring entry
//! in the batch that erases it. Raw reads ([`Storage::get`]: the stored envelope) are
//! not cached.
//!
//! Why a miss never leaves a stale value behind: each shard counts the writes that
//! touched it. A read that misses notes the count, reads the store, and keeps what it
//! read only if the count has not moved. A write first reaches the store, then (under
//! the shard's lock) drops its keys and moves the count. So a value read before a
//! write reached the store is either dropped by that write or never kept.
//!
//! A miss is kept only on a key's second miss (a doorkeeper, as in TinyLFU): with 55
//! million persons and a cache of a fraction of them, most look-ups read a key once,
//! and inserting each would cost every miss an insert and an eviction for nothing.

use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, MutexGuard};

use quick_cache::unsync::{Cache, DefaultLifecycle};
use quick_cache::{Equivalent, OptionsBuilder, Weighter};

use super::view::ReadError;
use super::{Intent, Storage, StorageError, Tree, WriteBatch};

/// The trees whose point reads are cached: what a resolve and the writer's checks read.
pub const CACHED_TREES: [Tree; 4] = [Tree::Numbers, Tree::Persons, Tree::AgencyLinks, Tree::Keyring];

/// What the registry gives the read cache unless told otherwise: 256 MiB.
pub const DEFAULT_READ_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// How many shards the cache is split into (each its own lock).
const SHARDS: usize = 32;

/// What an entry is counted as beyond its key and value bytes: the cache's own
/// bookkeeping and two heap allocations.
const ENTRY_OVERHEAD: u64 = 64;

/// A rough size of an entry, for sizing the shards' tables and doorkeepers.
const TYPICAL_ENTRY: u64 = 256;

/// The doorkeeper's bits for each entry a shard holds.
const DOORKEEPER_BITS_PER_ENTRY: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    tree: Tree,
    key: Vec<u8>,
}

/// A borrowed [`Key`]: hashes as a `Key` does (field by field; `Vec<u8>` hashes as its
/// slice), so a look-up allocates nothing.
#[derive(Hash)]
struct KeyRef<'a> {
    tree: Tree,
    key: &'a [u8],
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.tree == key.tree && self.key == key.key.as_slice()
    }
}

#[derive(Clone)]
struct Bytes;

impl Weighter<Key, Vec<u8>> for Bytes {
    fn weight(&self, key: &Key, value: &Vec<u8>) -> u64 {
        key.key.len() as u64 + value.len() as u64 + ENTRY_OVERHEAD
    }
}

type ShardCache = Cache<Key, Vec<u8>, Bytes, foldhash::fast::RandomState, DefaultLifecycle<Key, Vec<u8>>>;

struct Shard {
    entries: ShardCache,
    /// How many writes have touched this shard's keys.
    writes: u64,
    /// The doorkeeper: one bit per key hash missed once since the last reset. A miss
    /// is kept only when its bit was already set, so a key read once (most keys, when
    /// the population is far larger than the cache) costs no insert and evicts
    /// nothing. Cleared after as many first misses as the shard holds entries.
    seen: Vec<u64>,
    first_misses: usize,
    /// After how many first misses `seen` is cleared.
    reset_after: usize,
    hits: u64,
    misses: u64,
}

impl Shard {
    /// Whether a missed key (by its hash) has missed before; marks it if not.
    fn admit(&mut self, hash: u64) -> bool {
        let bit = (hash >> 32) as usize % (self.seen.len() * 64);
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if self.seen[word] & mask != 0 {
            return true;
        }
        self.first_misses += 1;
        if self.first_misses >= self.reset_after {
            self.seen.iter_mut().for_each(|w| *w = 0);
            self.first_misses = 0;
        }
        self.seen[word] |= mask;
        false
    }
}

/// A read cache's counts (the registry's `/metrics` publishes them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCacheStats {
    /// Point reads of the cached trees answered from memory.
    pub hits: u64,
    /// Point reads of the cached trees that went to the store.
    pub misses: u64,
    pub entries: u64,
    /// What the entries are counted as: key and value bytes, plus a fixed overhead each.
    pub bytes: u64,
}

/// Why a read cache could not be built.
#[derive(Debug, thiserror::Error)]
#[error("read cache of {bytes} bytes: {reason}")]
pub struct ReadCacheError {
    bytes: u64,
    reason: String,
}

/// A store with a read cache over [`CACHED_TREES`]. Every write must go through it
/// (a write straight to the inner store would leave cached values stale); the
/// registry opens its store this way and hands out only the wrapper.
pub struct CachedStore {
    inner: Arc<dyn Storage>,
    shards: Vec<Mutex<Shard>>,
    hasher: foldhash::fast::RandomState,
}

fn cached(tree: Tree) -> bool {
    CACHED_TREES.contains(&tree)
}

impl CachedStore {
    /// `inner` behind a cache of about `bytes` (split evenly between the shards).
    pub fn new(inner: Arc<dyn Storage>, bytes: u64) -> Result<Self, ReadCacheError> {
        let per_shard = (bytes / SHARDS as u64).max(1);
        let hasher = foldhash::fast::RandomState::default();
        let shards = (0..SHARDS)
            .map(|_| {
                let options = OptionsBuilder::new()
                    .estimated_items_capacity((per_shard / TYPICAL_ENTRY).max(1) as usize)
                    .weight_capacity(per_shard)
                    .build()
                    .map_err(|e| ReadCacheError { bytes, reason: e.to_string() })?;
                let entries = Cache::with_options(options, Bytes, hasher.clone(), DefaultLifecycle::default());
                let items = (per_shard / TYPICAL_ENTRY).max(1) as usize;
                // Four bits per entry the shard holds: few false admissions before a reset.
                let seen = vec![0u64; (items * DOORKEEPER_BITS_PER_ENTRY).div_ceil(64)];
                Ok(Mutex::new(Shard {
                    entries,
                    writes: 0,
                    seen,
                    first_misses: 0,
                    reset_after: items,
                    hits: 0,
                    misses: 0,
                }))
            })
            .collect::<Result<Vec<_>, ReadCacheError>>()?;
        Ok(Self { inner, shards, hasher })
    }

    /// The store behind the cache.
    pub fn inner(&self) -> &Arc<dyn Storage> {
        &self.inner
    }

    /// How many entries the cache holds (`stats().entries`).
    pub fn cached_entries(&self) -> usize {
        self.stats().entries as usize
    }

    /// What the cache holds and how its reads went, since it was opened.
    pub fn stats(&self) -> ReadCacheStats {
        let mut stats = ReadCacheStats::default();
        for shard in &self.shards {
            let shard = lock(shard);
            stats.hits += shard.hits;
            stats.misses += shard.misses;
            stats.entries += shard.entries.len() as u64;
            stats.bytes += shard.entries.weight();
        }
        stats
    }

    /// The key's hash: its low bits pick the shard, its high bits the doorkeeper's bit.
    fn hash(&self, key: &KeyRef<'_>) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        &self.shards[(hash as usize) % SHARDS]
    }

    /// Drops every cached key the batch writes, after the batch reached the store.
    fn forget(&self, batch: &WriteBatch) {
        for (tree, writes) in &batch.writes {
            if !cached(*tree) {
                continue;
            }
            for key in writes.keys() {
                let key = KeyRef { tree: *tree, key };
                let mut shard = lock(self.shard(self.hash(&key)));
                shard.entries.remove(&key);
                shard.writes += 1;
            }
        }
    }

    /// A hit, or the shard's write count for a miss to note before it reads the store.
    fn ticket(&self, key: &KeyRef<'_>, hash: u64) -> (Option<Vec<u8>>, u64) {
        let mut shard = lock(self.shard(hash));
        let hit = shard.entries.get(key).cloned();
        match hit {
            Some(_) => shard.hits += 1,
            None => shard.misses += 1,
        }
        (hit, shard.writes)
    }

    /// Keeps what a miss read, unless a write touched the shard since `ticket` or the
    /// key has not missed before (the doorkeeper). Whether it was kept.
    fn keep(&self, key: KeyRef<'_>, hash: u64, ticket: u64, value: &[u8]) -> bool {
        let mut shard = lock(self.shard(hash));
        if shard.writes != ticket || !shard.admit(hash) {
            return false;
        }
        shard.entries.insert(Key { tree: key.tree, key: key.key.to_vec() }, value.to_vec());
        true
    }
}

/// A shard's lock; a shard left poisoned by a panicking holder is still consistent
/// (each operation on it is one call), so its guard is taken back.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Storage for CachedStore {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(tree, key)
    }

    fn get_checked(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, ReadError> {
        if !cached(tree) {
            return self.inner.get_checked(tree, key);
        }
        let borrowed = KeyRef { tree, key };
        let hash = self.hash(&borrowed);
        let (hit, ticket) = self.ticket(&borrowed, hash);
        if hit.is_some() {
            return Ok(hit);
        }
        let value = self.inner.get_checked(tree, key)?;
        // Absent keys are not cached: a look-up of a number never issued reads the store.
        if let Some(value) = &value {
            self.keep(borrowed, hash, ticket, value);
        }
        Ok(value)
    }

    crate::forward_scans!(inner);

    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        let result = self.inner.commit(batch, durable);
        // Forgotten even when the commit failed: part of it may have reached the store.
        self.forget(batch);
        result
    }

    fn write_in_order(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        let result = self.inner.write_in_order(batch, durable);
        self.forget(batch);
        result
    }

    fn commit_staged(&self, batch: &Arc<WriteBatch>, intent: &Intent, durable: bool) -> Result<(), StorageError> {
        let result = self.inner.commit_staged(batch, intent, durable);
        self.forget(batch);
        result
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
    use std::sync::Arc;

    /// A write of a test: the tree, the key and the value (`None`: a removal).
    type TestWrite<'a> = (Tree, &'a [u8], Option<&'a [u8]>);

    fn batch(writes: &[TestWrite<'_>]) -> WriteBatch {
        let mut batch = WriteBatch::default();
        for (tree, key, value) in writes {
            match value {
                Some(value) => batch.put(*tree, key.to_vec(), crate::storage::checksum::seal(value)),
                None => batch.remove(*tree, key.to_vec()),
            }
        }
        batch
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let store = CachedStore::new(Arc::new(MemoryStore::default()), 1 << 20).unwrap();
        store.commit(&batch(&[(Tree::Persons, b"p", Some(b"old"))]), false).unwrap();
        // The key has missed once before (the doorkeeper lets a second miss in).
        assert_eq!(store.get_checked(Tree::Persons, b"p").unwrap().as_deref(), Some(&b"old"[..]));
        assert_eq!(store.cached_entries(), 0, "a first miss is not kept");
        // A reader misses and notes the shard's write count...
        let key = KeyRef { tree: Tree::Persons, key: b"p" };
        let hash = store.hash(&key);
        let (hit, ticket) = store.ticket(&key, hash);
        assert_eq!(hit, None);
        let read_before_the_write = store.inner().get_checked(Tree::Persons, b"p").unwrap().unwrap();
        // ...a write reaches the store and forgets the key...
        store.commit(&batch(&[(Tree::Persons, b"p", Some(b"new"))]), false).unwrap();
        // ...and the reader's stale value is refused.
        assert!(!store.keep(key, hash, ticket, &read_before_the_write));
        assert_eq!(store.get_checked(Tree::Persons, b"p").unwrap().as_deref(), Some(&b"new"[..]));
        // Without a write in between, a second miss is kept and the next read is a hit.
        assert_eq!(store.cached_entries(), 1);
    }

    #[test]
    fn only_the_look_up_trees_are_cached() {
        let store = CachedStore::new(Arc::new(MemoryStore::default()), 1 << 20).unwrap();
        store.commit(&batch(&[(Tree::Log, b"0", Some(b"r")), (Tree::Keyring, b"k", Some(b"s"))]), false).unwrap();
        for _ in 0..2 {
            store.get_checked(Tree::Log, b"0").unwrap();
            store.get_checked(Tree::Keyring, b"k").unwrap();
            store.get_checked(Tree::Numbers, b"never issued").unwrap();
        }
        assert_eq!(store.cached_entries(), 1, "the keyring entry only: not the log, not an absent key");
        let stats = store.stats();
        // Keyring: miss, miss (kept), then nothing more; numbers: two misses; the log
        // is not counted.
        assert_eq!((stats.hits, stats.misses, stats.entries), (0, 4, 1));
        store.get_checked(Tree::Keyring, b"k").unwrap();
        assert_eq!(store.stats().hits, 1);
        assert_eq!(store.stats().bytes, 1 + 1 + ENTRY_OVERHEAD, "a 1-byte key and value, and the overhead");
    }

    #[test]
    fn a_corrupt_value_is_reported_every_time_and_never_cached() {
        let store = CachedStore::new(Arc::new(MemoryStore::default()), 1 << 20).unwrap();
        let mut bad = WriteBatch::default();
        bad.put(Tree::Persons, b"p".to_vec(), b"no checksum here".to_vec());
        store.commit(&bad, false).unwrap();
        for _ in 0..3 {
            match store.get_checked(Tree::Persons, b"p") {
                Err(ReadError::Corrupt(c)) => assert_eq!((c.tree, c.key.as_str()), ("persons", "70")),
                other => panic!("expected the corruption named, got {other:?}"),
            }
        }
        assert_eq!(store.cached_entries(), 0);
    }

    #[test]
    fn the_cache_stays_within_its_bytes() {
        let bytes = 64 * 1024;
        let store = CachedStore::new(Arc::new(MemoryStore::default()), bytes).unwrap();
        for i in 0u32..10_000 {
            let key = i.to_be_bytes();
            store.commit(&batch(&[(Tree::Persons, &key, Some(&[7u8; 100]))]), false).unwrap();
            for _ in 0..2 {
                assert_eq!(store.get_checked(Tree::Persons, &key).unwrap().as_deref(), Some(&[7u8; 100][..]));
            }
        }
        let held = store.cached_entries() as u64 * (4 + 100 + ENTRY_OVERHEAD);
        assert!(held <= bytes, "{held} bytes held in a cache of {bytes}");
        assert!(store.cached_entries() > 0);
    }

    /// Readers racing a writer never see a value older than the last write that had
    /// returned when their read began.
    #[test]
    fn no_read_is_older_than_a_finished_write() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let store = Arc::new(CachedStore::new(Arc::new(MemoryStore::default()), 1 << 20).unwrap());
        let committed = Arc::new(AtomicU64::new(0));
        store.commit(&batch(&[(Tree::Persons, b"p", Some(&0u64.to_be_bytes()))]), false).unwrap();
        std::thread::scope(|scope| {
            for _ in 0..2 {
                let (store, committed) = (Arc::clone(&store), Arc::clone(&committed));
                scope.spawn(move || {
                    while committed.load(Ordering::Acquire) < 20_000 {
                        let floor = committed.load(Ordering::Acquire);
                        let value = store.get_checked(Tree::Persons, b"p").unwrap().unwrap();
                        let seen = u64::from_be_bytes(value.as_slice().try_into().unwrap());
                        assert!(seen >= floor, "read {seen} after write {floor} had returned");
                    }
                });
            }
            for i in 1..=20_000u64 {
                store.commit(&batch(&[(Tree::Persons, b"p", Some(&i.to_be_bytes()))]), false).unwrap();
                committed.store(i, Ordering::Release);
            }
        });
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(usize, usize, u8),
        Remove(usize, usize),
        Get(usize, usize),
    }

    const TREES: [Tree; 3] = [Tree::Persons, Tree::Keyring, Tree::Log];

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..3usize, 0..8usize, any::<u8>()).prop_map(|(t, k, v)| Op::Put(t, k, v)),
            (0..3usize, 0..8usize).prop_map(|(t, k)| Op::Remove(t, k)),
            (0..3usize, 0..8usize).prop_map(|(t, k)| Op::Get(t, k)),
        ]
    }

    proptest! {
        /// Through any mix of writes and reads, and a cache small enough to evict, every
        /// read answers what the store itself holds.
        #[test]
        fn reads_through_the_cache_equal_the_store(ops in proptest::collection::vec(op(), 1..200), bytes in 1u64..2_000) {
            let store = CachedStore::new(Arc::new(MemoryStore::default()), bytes).unwrap();
            for op in ops {
                match op {
                    Op::Put(t, k, v) => store.commit(&batch(&[(TREES[t], &[k as u8], Some(&[v; 3]))]), false).unwrap(),
                    Op::Remove(t, k) => store.write_in_order(&batch(&[(TREES[t], &[k as u8], None)]), false).unwrap(),
                    Op::Get(t, k) => {
                        let through = store.get_checked(TREES[t], &[k as u8]).unwrap();
                        prop_assert_eq!(through, store.inner().get_checked(TREES[t], &[k as u8]).unwrap());
                    }
                }
            }
        }
    }
}
