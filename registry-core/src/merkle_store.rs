//! The RFC 6962 tree kept beside the log (see `huduma_log::merkle`), in two forms:
//!
//! - `merkle_nodes`: each record that completes subtrees (every odd sequence number)
//!   stores their roots, lowest first, under its own sequence number: half a write per
//!   record, and any complete subtree is one point read. Leaf hashes are not stored
//!   there: a leaf is SHA-256(0x00 || record), read from the log.
//! - `merkle_blocks`: once the 2^[`BLOCK_LEVEL`] records of a block are all in, the
//!   block's lower levels (its 64 leaf hashes and the 62 nodes above them, up to but
//!   not including the block's root) are stored whole under the block's number: one
//!   write per 64 records, so the lower levels of any proof are one read.
//!
//! Proofs and roots read the lower levels from a block where the block is complete,
//! from `merkle_nodes` and the log in the last, unfinished block, and the upper levels
//! through [`TreeCache`]. The writer keeps the tree's right edge in memory
//! ([`TreeEdge`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::RwLock;

use huduma_log::merkle::{self, Frontier, Hash, NodeSource, ProofError};

use crate::storage::view::{Corruption, ReadError, View, get_checked, open_value};
use crate::storage::{Storage, Tree};

/// The key of the nodes record `seq` completed.
pub fn nodes_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// A block holds the levels below `2^BLOCK_LEVEL` leaves of 2^BLOCK_LEVEL records.
pub const BLOCK_LEVEL: u8 = 6;
/// How many records a block covers.
pub const BLOCK_LEAVES: u64 = 1 << BLOCK_LEVEL;
/// Hashes in a block: 64 leaves, then 32, 16, 8, 4 and 2 nodes.
const BLOCK_HASHES: usize = 2 * BLOCK_LEAVES as usize - 2;

/// The key of block `block` (records `64 * block .. 64 * block + 64`).
pub fn block_key(block: u64) -> [u8; 8] {
    block.to_be_bytes()
}

/// Where level `level`'s hashes start in a block, in hashes.
fn block_offset(level: u8) -> usize {
    2 * BLOCK_LEAVES as usize - ((2 * BLOCK_LEAVES as usize) >> level)
}

/// A block's stored form with nothing placed in it yet.
fn empty_block() -> Vec<u8> {
    vec![0; BLOCK_HASHES * 32]
}

/// Puts the subtree `(level, index)` (index counted from the tree's first leaf) into
/// its place in its block's stored form: the leaf hashes, then each level above them
/// in turn, up to the two halves of the block. The block's own root is not kept.
fn place(block: &mut [u8], level: u8, index: u64, hash: &Hash) {
    if level < BLOCK_LEVEL {
        let at = (block_offset(level) + (index % (BLOCK_LEAVES >> level)) as usize) * 32;
        if let Some(slot) = block.get_mut(at..at + 32) {
            slot.copy_from_slice(hash);
        }
    }
}

/// Subtrees of at least `2^CACHED_LEVEL` leaves are kept in memory once read: one in
/// 64 of the tree's nodes, about 310,000 nodes (some 20 MB) at 10 million records,
/// and all the levels of any proof above its block. A complete subtree never changes,
/// so the cache never goes stale. At 10 million records with the store in sled's
/// cache, holding from 2^6 rather than 2^8 took the median proof from 51-58 µs to
/// 45-52 before blocks were stored (BENCHMARKS.md).
pub const CACHED_LEVEL: u8 = BLOCK_LEVEL;

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

/// The tree of the first `size` records as a store holds it.
pub struct StoredTree<'a> {
    view: View<'a>,
    cache: Option<&'a TreeCache>,
    /// Blocks below this one are complete (and, unless the store predates blocks,
    /// stored).
    complete_blocks: u64,
    /// The last block read, so a proof reads each block once.
    block: RefCell<Option<(u64, Vec<u8>)>>,
}

impl<'a> StoredTree<'a> {
    /// The tree of the first `size` records in `store`.
    pub fn new(store: &'a dyn Storage, size: u64) -> Self {
        Self { view: View::new(store), cache: None, complete_blocks: size / BLOCK_LEAVES, block: RefCell::new(None) }
    }

    /// Reads through `cache` for the upper levels.
    pub fn cached(store: &'a dyn Storage, cache: &'a TreeCache, size: u64) -> Self {
        Self { cache: Some(cache), ..Self::new(store, size) }
    }

    fn read(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
        let cache = self.cache.filter(|c| level >= c.lowest_level);
        if let Some(hash) = cache.and_then(|c| c.get(level, index)) {
            return Ok(hash);
        }
        let hash = match self.read_block(level, index)? {
            Some(hash) => hash,
            None => self.read_stored(level, index)?,
        };
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
    /// The subtree from its stored block, if it lies in a complete one that is stored.
    fn read_block(&self, level: u8, index: u64) -> Result<Option<Hash>, ReadError> {
        if level >= BLOCK_LEVEL {
            return Ok(None);
        }
        let per_block = BLOCK_LEAVES >> level;
        let block = index / per_block;
        if block >= self.complete_blocks {
            return Ok(None);
        }
        let mut held = self.block.borrow_mut();
        let value = match &mut *held {
            Some((number, value)) if *number == block => value,
            slot => {
                let key = block_key(block);
                let Some(value) = self.view.get(Tree::MerkleBlocks, &key)? else {
                    // A store written before blocks were kept: the nodes answer instead.
                    return Ok(None);
                };
                if value.len() != BLOCK_HASHES * 32 {
                    return Err(
                        Corruption::new(Tree::MerkleBlocks, &key, "a block of the tree has the wrong length").into()
                    );
                }
                &mut slot.insert((block, value)).1
            }
        };
        let at = (block_offset(level) + (index % per_block) as usize) * 32;
        Ok(value.get(at..at + 32).and_then(|h| h.try_into().ok()))
    }

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

/// A stored entry of the tree: which tree, the key, the value (before its checksum).
pub type TreeEntry = (Tree, Vec<u8>, Vec<u8>);

/// The tree's right edge as the writer holds it: the frontier, and the unfinished
/// block as far as it goes (in its stored form).
#[derive(Debug, Clone)]
pub struct TreeEdge {
    frontier: Frontier,
    block: Vec<u8>,
}

impl Default for TreeEdge {
    fn default() -> Self {
        Self { frontier: Frontier::new(), block: empty_block() }
    }
}

impl TreeEdge {
    /// The edge of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The edge of the first `size` records of `store`: the frontier from the stored
    /// nodes, and the unfinished block's leaves from the log (at most 63 records, one
    /// range read).
    pub fn load(store: &dyn Storage, size: u64) -> Result<Self, ReadError> {
        let frontier = Frontier::load(&StoredTree::new(store, size), size)?;
        let start = size - size % BLOCK_LEAVES;
        let mut block = empty_block();
        // The unfinished block's own tree, indexed from its first leaf.
        let mut within = Frontier::new();
        let stored = if start < size {
            store.range_from(Tree::Log, &start.to_be_bytes(), (size - start) as usize)?
        } else {
            vec![]
        };
        for seq in start..size {
            let key = seq.to_be_bytes();
            let value = match stored.get((seq - start) as usize) {
                Some((found, value)) if found.as_slice() == key => value,
                _ => return Err(Corruption::new(Tree::Log, &key, "a leaf of the tree is missing from the log").into()),
            };
            let leaf = merkle::leaf_hash(&open_value(Tree::Log, &key, value)?);
            place(&mut block, 0, seq - start, &leaf);
            for (level, index, hash) in within.push(leaf) {
                place(&mut block, level, index, &hash);
            }
        }
        Ok(Self { frontier, block })
    }

    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Adds record `seq` (its exact bytes), which must be the next; returns the
    /// entries it completes: its nodes (if it completed subtrees) and its block (if it
    /// was the block's last record).
    pub fn push(&mut self, seq: u64, bytes: &[u8]) -> Result<Vec<TreeEntry>, Corruption> {
        self.push_leaf(seq, merkle::leaf_hash(bytes))
    }

    /// [`TreeEdge::push`] of a record whose leaf hash is already computed.
    pub fn push_leaf(&mut self, seq: u64, leaf: Hash) -> Result<Vec<TreeEntry>, Corruption> {
        if self.frontier.size() != seq {
            return Err(Corruption::new(
                Tree::MerkleNodes,
                &nodes_key(seq),
                "the tree's frontier is not at this record",
            ));
        }
        let finished = self.frontier.push(leaf);
        place(&mut self.block, 0, seq, &leaf);
        for (level, index, hash) in &finished {
            place(&mut self.block, *level, *index, hash);
        }
        let mut entries = Vec::new();
        if !finished.is_empty() {
            let nodes = finished.iter().flat_map(|(_, _, hash)| hash.iter().copied()).collect();
            entries.push((Tree::MerkleNodes, nodes_key(seq).to_vec(), nodes));
        }
        if self.frontier.size().is_multiple_of(BLOCK_LEAVES) {
            let block = std::mem::replace(&mut self.block, empty_block());
            entries.push((Tree::MerkleBlocks, block_key(seq / BLOCK_LEAVES).to_vec(), block));
        }
        Ok(entries)
    }
}

/// Adds record `seq` (its exact bytes) to the tree: moves the edge and writes the
/// entries it completed. The edge must stand at `seq`.
pub fn append(view: &mut View<'_>, edge: &mut TreeEdge, seq: u64, bytes: &[u8]) -> Result<(), Corruption> {
    append_leaf(view, edge, seq, merkle::leaf_hash(bytes))
}

/// [`append`] of a record whose leaf hash is already computed.
pub fn append_leaf(view: &mut View<'_>, edge: &mut TreeEdge, seq: u64, leaf: Hash) -> Result<(), Corruption> {
    for (tree, key, value) in edge.push_leaf(seq, leaf)? {
        view.put(tree, key, &value);
    }
    Ok(())
}

/// How a stored tree entry compares with the one recomputed from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    Stored,
    Missing,
    Differs,
}

/// Whether `store` holds the tree entry `entry` as the log says it should be.
pub fn entry_state(store: &dyn Storage, (tree, key, expected): &TreeEntry) -> Result<EntryState, ReadError> {
    Ok(match get_checked(store, *tree, key)? {
        Some(found) if &found == expected => EntryState::Stored,
        Some(_) => EntryState::Differs,
        None => EntryState::Missing,
    })
}

/// The root of the first `size` records.
pub fn root(store: &dyn Storage, size: u64) -> Result<Hash, ReadError> {
    merkle::root(&StoredTree::new(store, size), size)
}

/// The inclusion proof of record `index` in the tree of `size` records.
pub fn inclusion_proof(
    store: &dyn Storage,
    cache: &TreeCache,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProofError<ReadError>> {
    merkle::inclusion_proof(&StoredTree::cached(store, cache, size), index, size)
}

/// The consistency proof from the tree of `old` records to that of `new`.
pub fn consistency_proof(
    store: &dyn Storage,
    cache: &TreeCache,
    old: u64,
    new: u64,
) -> Result<Vec<Hash>, ProofError<ReadError>> {
    merkle::consistency_proof(&StoredTree::cached(store, cache, new), old, new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;

    fn record(seq: u64) -> Vec<u8> {
        format!("record {seq}").into_bytes()
    }

    /// A store holding records `0..n` and their tree, built one batch per `batch`.
    fn store_of(n: u64, batch: u64) -> MemoryStore {
        let store = MemoryStore::new();
        let mut edge = TreeEdge::new();
        let mut view = View::new(&store);
        for seq in 0..n {
            view.put(Tree::Log, seq.to_be_bytes().to_vec(), &record(seq));
            append(&mut view, &mut edge, seq, &record(seq)).unwrap();
            if (seq + 1) % batch == 0 {
                store.commit(&view.take_batch(), false).unwrap();
                // Reloading the edge anywhere gives the edge that was kept.
                let loaded = TreeEdge::load(&store, seq + 1).unwrap();
                assert_eq!((loaded.size(), loaded.root(), &loaded.block), (edge.size(), edge.root(), &edge.block));
                edge = loaded;
            }
        }
        store.commit(&view.take_batch(), false).unwrap();
        store
    }

    #[test]
    fn a_block_holds_its_leaves_and_every_level_below_its_root() {
        let store = store_of(200, 7);
        let leaves: Vec<Hash> = (0..200).map(|s| merkle::leaf_hash(&record(s))).collect();
        for block in 0..3u64 {
            let value = get_checked(&store, Tree::MerkleBlocks, &block_key(block)).unwrap().unwrap();
            assert_eq!(value.len(), BLOCK_HASHES * 32);
            let mut level: Vec<Hash> = leaves[(block * 64) as usize..(block * 64 + 64) as usize].to_vec();
            for l in 0..BLOCK_LEVEL {
                for (i, hash) in level.iter().enumerate() {
                    let at = (block_offset(l) + i) * 32;
                    assert_eq!(&value[at..at + 32], hash, "block {block} level {l} node {i}");
                }
                level = level.chunks_exact(2).map(|p| merkle::node_hash(&p[0], &p[1])).collect();
            }
        }
        // The unfinished fourth block (records 192..200) is not stored yet.
        assert!(get_checked(&store, Tree::MerkleBlocks, &block_key(3)).unwrap().is_none());
    }

    #[test]
    fn proofs_read_from_blocks_equal_proofs_read_from_nodes_and_verify() {
        let n = 300;
        let store = store_of(n, 13);
        let leaves: Vec<Hash> = (0..n).map(|s| merkle::leaf_hash(&record(s))).collect();
        // The same tree without its blocks, as a store written before they were kept.
        let bare = store_of(n, 13);
        let mut drop_blocks = crate::storage::WriteBatch::default();
        for (key, _) in bare.scan_prefix(Tree::MerkleBlocks, &[]).unwrap() {
            drop_blocks.remove(Tree::MerkleBlocks, key);
        }
        bare.commit(&drop_blocks, false).unwrap();
        let cache = TreeCache::default();
        for size in [1, 63, 64, 65, 127, 128, 129, 191, 192, 200, 256, 299, 300] {
            let root = root(&store, size).unwrap();
            assert_eq!(root, super::root(&bare, size).unwrap(), "root at {size}");
            for index in 0..size {
                let proof = inclusion_proof(&store, &cache, index, size).unwrap();
                assert_eq!(proof, inclusion_proof(&bare, &TreeCache::default(), index, size).unwrap());
                assert!(
                    merkle::verify_inclusion(index, size, &leaves[index as usize], &proof, &root),
                    "{index}/{size}"
                );
            }
            for old in 1..=size {
                let proof = consistency_proof(&store, &cache, old, size).unwrap();
                let old_root = super::root(&store, old).unwrap();
                assert!(merkle::verify_consistency(old, size, &old_root, &root, &proof), "{old} -> {size}");
            }
        }
    }

    #[test]
    fn a_block_of_the_wrong_length_is_corruption_not_a_proof() {
        let store = store_of(130, 130);
        let mut batch = crate::storage::WriteBatch::default();
        batch.put(Tree::MerkleBlocks, block_key(1).to_vec(), crate::storage::checksum::seal(&[7u8; 64]));
        store.commit(&batch, false).unwrap();
        let err = inclusion_proof(&store, &TreeCache::default(), 70, 130).unwrap_err();
        assert!(matches!(err, ProofError::Source(ReadError::Corrupt(ref c)) if c.tree == "merkle_blocks"), "{err:?}");
        // Proofs that need no node of that block are still served.
        assert!(inclusion_proof(&store, &TreeCache::default(), 129, 130).is_ok());
    }
}
