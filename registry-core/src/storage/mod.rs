//! The narrow storage trait the registry is written against, the named trees, and the
//! write batch. Engines: [`sled_store::SledStore`] (the embedded default),
//! [`memory::MemoryStore`] (tests) and [`fjall_store::FjallStore`] (throwaway stores:
//! the fresh fold of a log too large for memory). A replicated engine replaces
//! them by implementing [`Storage`]. [`read_cache::CachedStore`] puts a read cache of
//! the look-up trees in front of any of them, [`presence_filter::FilteredStore`] a
//! filter of the keys that exist, and [`staged::StagedStore`] shows readers a batch
//! only once [`Storage::commit_staged`] has made it durable, and then whole.
//! [`in_key_order::InKeyOrder`] walks a tree in key order, a chunk at a time, and
//! `written_keys` fingerprints a large batch's keys for the layers that read over one.

pub mod checksum;
pub mod fjall_store;
pub mod in_key_order;
pub mod memory;
pub mod presence_filter;
pub mod read_cache;
pub mod sled_store;
pub mod staged;
pub mod view;
mod written_keys;

use std::collections::BTreeMap;

/// The named key spaces. Each engine keeps them apart (sled: a one-byte namespace tag).
/// The discriminants are the sled namespace tags: never reorder, only append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    /// sequence number (u64 BE) -> record bytes. The only truth.
    Log,
    /// keyed hash of (principal, request id) (16 bytes, `Secrets::request_key`; in a
    /// store created before 2026-12-06, also the principal, 0x00 and the request id in
    /// clear) -> the first answer to that request. Durable idempotency.
    Requests,
    /// person id (u64 BE) -> that person's data key, sealed under the master key.
    Keyring,
    /// Projection bookkeeping: the sequence applied, the next issuance counter.
    Meta,
    /// Huduma number (u64 BE) -> the person it names and whether it was superseded.
    Numbers,
    /// person id (u64 BE) -> status, current number, sealed demographics.
    Persons,
    /// keyed hash of (agency code, record id) (16 bytes, `Secrets::agency_link_hash`) ->
    /// person id.
    AgencyLinks,
    /// block hash (16 bytes) ‖ chunk index (u32 BE) -> up to 32 entries of that block,
    /// each a person id and the keyed hash of their birth date. The duplicate search's
    /// blocks (see `dedup::blocks`).
    MatchKeys,
    /// Facts about the store itself, fixed at creation: the secrets fingerprint.
    Settings,
    /// agency code, 0x00, sequence number (u64 BE) -> the change that record made to a
    /// person linked with that agency (what `WatchChanges` streams).
    AgencyChanges,
    /// sequence number (u64 BE) of a record that completed subtrees of the RFC 6962
    /// tree -> their roots (32 bytes each, lowest level first). See `merkle_store`.
    MerkleNodes,
    /// tree size (u64 BE) -> the signed checkpoint (C2SP signed note) at that size.
    /// Signed statements: never rebuilt, never rewritten.
    Checkpoints,
    /// Access store only: subject (32 bytes), sequence number (u64 BE) -> nothing.
    /// Each person's look-ups, found by their keyed subject hash (see `access`).
    AccessBySubject,
    /// keyed hash of a name word (16 bytes) -> how many searchable persons carry it
    /// (u64 BE); `persons` -> how many searchable persons there are. What the duplicate
    /// search weighs a common name down by (see `dedup::name_counts`).
    NameCounts,
    /// block number (u64 BE) -> the lower levels of the RFC 6962 tree over that
    /// block's 64 records (126 hashes of 32 bytes: the leaves, then each level up).
    /// See `merkle_store`.
    MerkleBlocks,
}

impl Tree {
    /// Every tree, in a fixed order.
    pub const ALL: [Tree; 15] = [
        Tree::Log,
        Tree::Requests,
        Tree::Keyring,
        Tree::Meta,
        Tree::Numbers,
        Tree::Persons,
        Tree::AgencyLinks,
        Tree::MatchKeys,
        Tree::Settings,
        Tree::AgencyChanges,
        Tree::MerkleNodes,
        Tree::Checkpoints,
        Tree::AccessBySubject,
        Tree::NameCounts,
        Tree::MerkleBlocks,
    ];

    /// The trees folded from the log: dropped and refolded by `rebuild`, compared by
    /// `verify`.
    pub const PROJECTIONS: [Tree; 9] = [
        Tree::Meta,
        Tree::Numbers,
        Tree::Persons,
        Tree::AgencyLinks,
        Tree::MatchKeys,
        Tree::NameCounts,
        Tree::AgencyChanges,
        Tree::MerkleNodes,
        Tree::MerkleBlocks,
    ];

    /// The tree's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Tree::Log => "log",
            Tree::Requests => "requests",
            Tree::Keyring => "keyring",
            Tree::Meta => "meta",
            Tree::Numbers => "numbers",
            Tree::Persons => "persons",
            Tree::AgencyLinks => "agency_links",
            Tree::MatchKeys => "match_keys",
            Tree::Settings => "settings",
            Tree::AgencyChanges => "agency_changes",
            Tree::MerkleNodes => "merkle_nodes",
            Tree::Checkpoints => "checkpoints",
            Tree::AccessBySubject => "access_by_subject",
            Tree::NameCounts => "name_counts",
            Tree::MerkleBlocks => "merkle_blocks",
        }
    }
}

/// The [`Storage`] methods a store that wraps another passes straight through: the
/// range scans and `last`. Written inside the wrapper's `impl Storage`, naming the
/// field that holds the wrapped store: `forward_scans!(inner);`.
#[macro_export]
macro_rules! forward_scans {
    ($inner:tt) => {
        fn scan_prefix(
            &self,
            tree: $crate::storage::Tree,
            prefix: &[u8],
        ) -> Result<Vec<$crate::storage::KeyValue>, $crate::storage::StorageError> {
            self.$inner.scan_prefix(tree, prefix)
        }

        fn range_from(
            &self,
            tree: $crate::storage::Tree,
            from: &[u8],
            limit: usize,
        ) -> Result<Vec<$crate::storage::KeyValue>, $crate::storage::StorageError> {
            self.$inner.range_from(tree, from, limit)
        }

        fn range_back(
            &self,
            tree: $crate::storage::Tree,
            prefix: &[u8],
            before: &[u8],
            limit: usize,
        ) -> Result<Vec<$crate::storage::KeyValue>, $crate::storage::StorageError> {
            self.$inner.range_back(tree, prefix, before, limit)
        }

        fn last(
            &self,
            tree: $crate::storage::Tree,
        ) -> Result<Option<$crate::storage::KeyValue>, $crate::storage::StorageError> {
            self.$inner.last(tree)
        }
    };
}

/// A key and its value, as stored.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// The entries an engine's read of at most `limit` reserves room for before it reads:
/// all of them, up to a chunk of a whole-tree walk (`replay::CHUNK`). Grown one
/// doubling at a time instead, a walk's 4,096-entry chunk was reallocated a dozen
/// times, each larger buffer on fresh pages the kernel zeroes: about 1.5% of a
/// `verify`'s CPU. Unbounded scans (`scan_prefix`) reserve nothing: most are small.
pub(crate) fn read_capacity(limit: usize) -> usize {
    limit.min(4096)
}

/// Writes to apply atomically: all or none, across trees. `None` removes the key.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    pub writes: BTreeMap<Tree, BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl WriteBatch {
    pub fn put(&mut self, tree: Tree, key: Vec<u8>, value: Vec<u8>) {
        self.writes.entry(tree).or_default().insert(key, Some(value));
    }

    pub fn remove(&mut self, tree: Tree, key: Vec<u8>) {
        self.writes.entry(tree).or_default().insert(key, None);
    }

    pub fn is_empty(&self) -> bool {
        self.writes.values().all(BTreeMap::is_empty)
    }

    /// How many writes the batch holds.
    pub fn len(&self) -> usize {
        self.writes.values().map(BTreeMap::len).sum()
    }
}

/// A failure of the storage engine itself (I/O, the engine's own corruption checks).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("the data directory {0} is in use by another process (stop the registry before running this)")]
    InUse(String),
}

/// What the registry needs of a storage engine, and nothing more.
///
/// Reads never block on the writer. `commit` is atomic across trees and, when
/// `durable`, returns only once the batch is on stable storage; `commit_staged` is
/// all-or-nothing only together with [`staged::StagedStore`] (for readers) and the
/// undo at the next opening (after a crash).
pub trait Storage: Send + Sync {
    /// The value as stored: its bytes and their checksum (see [`checksum`]).
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;
    /// The value with its checksum checked and cut off, or the entry named as corrupt:
    /// how everything above this layer reads (through [`view`]). Engines keep this
    /// default; a cache ([`read_cache`]) checks a value once, as it enters.
    fn get_checked(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, view::ReadError> {
        match self.get(tree, key)? {
            Some(stored) => Ok(Some(view::open_owned(tree, key, stored)?)),
            None => Ok(None),
        }
    }
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, tree: Tree, prefix: &[u8]) -> Result<Vec<KeyValue>, StorageError>;
    /// Up to `limit` entries with keys at or after `from`, in key order.
    fn range_from(&self, tree: Tree, from: &[u8], limit: usize) -> Result<Vec<KeyValue>, StorageError>;
    /// Up to `limit` entries with keys in `[prefix, before)`, greatest first (callers
    /// pass a `before` that starts with `prefix`, or the prefix's successor).
    fn range_back(&self, tree: Tree, prefix: &[u8], before: &[u8], limit: usize)
    -> Result<Vec<KeyValue>, StorageError>;
    /// The entry with the greatest key.
    fn last(&self, tree: Tree) -> Result<Option<KeyValue>, StorageError>;
    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError>;
    /// [`Storage::commit`], handing over the batch: an engine that keeps the writes
    /// in memory (the fresh fold) moves them instead of copying.
    fn commit_owned(&self, batch: WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.commit(&batch, durable)
    }
    /// Writes the batch's entries one by one, tree by tree in [`Tree`] order, with no
    /// atomicity across them: a crash may keep any prefix of them. For writers that
    /// repair their own tail on open (the access log), where an atomic batch costs
    /// more than it is worth (sled 0.34 stops every reader in the process for it).
    fn write_in_order(&self, batch: &WriteBatch, durable: bool) -> Result<(), StorageError> {
        self.commit(batch, durable)
    }
    /// Commits `batch` without stopping readers, behind an intent: `intent.stored` is
    /// stored under [`INTENT_KEY`] first and removed last, and the batch's writes in
    /// between go one by one in [`Tree`] order (as [`Storage::write_in_order`]). A
    /// crash part-way keeps the intent and a prefix of the writes, and the next opening
    /// of the store undoes them from the intent (`commit_intent`).
    /// Through [`staged::StagedStore`], readers see none of the batch until it is
    /// durable, and then all of it (`intent.before` is what they see meanwhile).
    ///
    /// For the registry's large batches on an engine whose atomic batch stops every
    /// reader while it applies (sled 0.34). An engine whose atomic commit costs no
    /// more keeps the default: one atomic commit, no intent.
    fn commit_staged(
        &self,
        batch: &std::sync::Arc<WriteBatch>,
        intent: &Intent,
        durable: bool,
    ) -> Result<(), StorageError> {
        let _ = intent;
        self.commit(batch, durable)
    }
    /// Makes everything committed so far durable.
    fn flush(&self) -> Result<(), StorageError>;
}

/// What a batch is committed behind by [`Storage::commit_staged`].
#[derive(Debug, Clone, Default)]
pub struct Intent {
    /// Stored under [`INTENT_KEY`] while the batch is written: what the next opening
    /// needs to undo the batch after a crash (an encoded `commit_intent::CommitIntent`).
    pub stored: Vec<u8>,
    /// Every key the batch writes, with the value it held before the batch (a removal
    /// where it held none): what [`staged::StagedStore`] shows readers for those keys
    /// until the batch is durable.
    pub before: std::sync::Arc<WriteBatch>,
}

/// Where [`Storage::commit_staged`] keeps the intent of the batch it is writing, in
/// [`Tree::Meta`]. Present only while a batch is being written, or after a crash
/// part-way through one.
pub const INTENT_KEY: (Tree, &[u8]) = (Tree::Meta, b"commit_intent.v2");

/// Where an earlier version kept its intents, which restored the request index and
/// the keyring only (the projections were rebuilt): read so that a store it left after
/// a crash is still undone and rebuilt (`commit_intent`).
pub const LEGACY_INTENT_KEY: (Tree, &[u8]) = (Tree::Meta, b"commit_intent");
