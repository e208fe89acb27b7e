//! The RFC 6962 tree kept beside the log (see `huduma_log::merkle`). Leaf hashes are
//! not stored: a leaf is SHA-256(0x00 || record), read from the log. Each record that
//! completes subtrees (every odd sequence number) stores their roots, lowest first,
//! under its own sequence number in `merkle_nodes`: half a write per record, and any
//! complete subtree is one point read. Proofs and roots are O(log n) such reads;
//! the writer keeps the tree's right edge (its `Frontier`) in memory.

use std::collections::HashMap;
use std::sync::RwLock;

use huduma_log::merkle::{self, Frontier, Hash, NodeSource, ProofError};

use crate::storage::view::{Corruption, ReadError, View};
use crate::storage::{Storage, Tree};

/// The key of the nodes record `seq` completed.
pub fn nodes_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Subtrees of at least `2^CACHED_LEVEL` leaves are kept in memory once read: one in
/// 64 of the tree's nodes, about 310,000 nodes (some 20 MB) at 10 million records,
/// and all but the lowest six levels of any proof. A complete subtree never changes,
/// so the cache never goes stale. At 10 million records with the store in sled's
/// cache, holding from 2^6 rather than 2^8 took the median proof from 51-58 µs to
/// 45-52 (BENCHMARKS.md).
pub const CACHED_LEVEL: u8 = 6;

/// The in-memory upper levels of the tree: subtrees of at least `2^lowest_level`
/// leaves ([`CACHED_LEVEL`] by default).
#[derive(Debug)]
pub struct TreeCache {
    lowest_level: u8,
    nodes: RwLock<HashMap<(u8, u64), Hash>>,
}

impl Default for TreeCache {
    fn default() -> Self {
        Self::from_level(CACHED_LEVEL)
    }
}

impl TreeCache {
    /// A cache of the subtrees of at least `2^lowest_level` leaves (one node in
    /// `2^lowest_level` of the tree's).
    pub fn from_level(lowest_level: u8) -> Self {
        Self { lowest_level, nodes: RwLock::new(HashMap::new()) }
    }

    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        self.nodes.read().ok()?.get(&(level, index)).copied()
    }

    fn put(&self, level: u8, index: u64, hash: Hash) {
        if let Ok(mut nodes) = self.nodes.write() {
            nodes.insert((level, index), hash);
        }
    }

    /// How many nodes are held.
    pub fn len(&self) -> usize {
        self.nodes.read().map_or(0, |n| n.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The tree as a store holds it.
pub struct StoredTree<'a> {
    view: View<'a>,
    cache: Option<&'a TreeCache>,
}

impl<'a> StoredTree<'a> {
    pub fn new(store: &'a dyn Storage) -> Self {
        Self { view: View::new(store), cache: None }
    }

    /// Reads through `cache` for the upper levels.
    pub fn cached(store: &'a dyn Storage, cache: &'a TreeCache) -> Self {
        Self { view: View::new(store), cache: Some(cache) }
    }

    fn read(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        let cache = self.cache.filter(|c| level >= c.lowest_level);
        if let Some(hash) = cache.and_then(|c| c.get(level, index)) {
            return Ok(hash);
        }
        let hash = self.read_stored(level, index)?;
        if let Some(cache) = cache {
            cache.put(level, index, hash);
        }
        Ok(hash)
    }
}

impl NodeSource for StoredTree<'_> {
    type Error = ReadError;

    fn complete(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        self.read(level, index)
    }
}

impl StoredTree<'_> {
    fn read_stored(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        if level == 0 {
            let key = index.to_be_bytes();
            let record = self
                .view
                .get(Tree::Log, &key)?
                .ok_or_else(|| Corruption::new(Tree::Log, &key, "a leaf of the tree is missing from the log"))?;
            return Ok(merkle::leaf_hash(&record));
        }
        // The subtree of 2^level leaves at `index` is completed by its last leaf.
        let last = index
            .checked_add(1)
            .and_then(|n| n.checked_mul(1 << level))
            .and_then(|n| n.checked_sub(1))
            .ok_or_else(|| Corruption::new(Tree::MerkleNodes, &[], "subtree index out of range"))?;
        let key = nodes_key(last);
        let nodes = self
            .view
            .get(Tree::MerkleNodes, &key)?
            .ok_or_else(|| Corruption::new(Tree::MerkleNodes, &key, "a node of the tree is missing"))?;
        let at = (usize::from(level) - 1) * 32;
        nodes
            .get(at..at + 32)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| Corruption::new(Tree::MerkleNodes, &key, "fewer nodes than the record completes").into())
    }
}

/// Adds record `seq` (its exact bytes) to the tree: moves the frontier and writes the
/// nodes it completed. The frontier must stand at `seq`.
pub fn append(view: &mut View<'_>, frontier: &mut Frontier, seq: u64, bytes: &[u8]) -> Result<(), Corruption> {
    if frontier.size() != seq {
        return Err(Corruption::new(Tree::MerkleNodes, &nodes_key(seq), "the tree's frontier is not at this record"));
    }
    let finished = frontier.push(merkle::leaf_hash(bytes));
    if !finished.is_empty() {
        let nodes: Vec<u8> = finished.iter().flat_map(|(_, _, hash)| hash.iter().copied()).collect();
        view.put(Tree::MerkleNodes, nodes_key(seq).to_vec(), &nodes);
    }
    Ok(())
}

/// The tree's right edge at `size` (O(log n) reads).
pub fn frontier(store: &dyn Storage, size: u64) -> Result<Frontier, ReadError> {
    Frontier::load(&StoredTree::new(store), size)
}

/// The root of the first `size` records.
pub fn root(store: &dyn Storage, size: u64) -> Result<Hash, ReadError> {
    merkle::root(&StoredTree::new(store), size)
}

/// The inclusion proof of record `index` in the tree of `size` records.
pub fn inclusion_proof(
    store: &dyn Storage,
    cache: &TreeCache,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<ReadError>> {
    merkle::inclusion_proof(&StoredTree::cached(store, cache), index, size)
}

/// The consistency proof from the tree of `old` records to that of `new`.
pub fn consistency_proof(
    store: &dyn Storage,
    cache: &TreeCache,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ProofError<ReadError>> {
    merkle::consistency_proof(&StoredTree::cached(store, cache), old, new)
}
