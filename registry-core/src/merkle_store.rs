//! The RFC 6962 tree kept beside the log (see `huduma_log::merkle`). Leaf hashes are
//! not stored: a leaf is SHA-256(0x00 || record), read from the log. Each record that
//! completes subtrees (every odd sequence number) stores their roots, lowest first,
//! under its own sequence number in `merkle_nodes`: half a write per record, and any
//! complete subtree is one point read. Proofs and roots are O(log n) such reads;
//! the writer keeps the tree's right edge (its `Frontier`) in memory.

use huduma_log::merkle::{self, Frontier, Hash, NodeSource, ProofError};

use crate::storage::view::{Corruption, ReadError, View};
use crate::storage::{Storage, Tree};

/// The key of the nodes record `seq` completed.
pub fn nodes_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The tree as a store holds it.
pub struct StoredTree<'a> {
    view: View<'a>,
}

impl<'a> StoredTree<'a> {
    pub fn new(store: &'a dyn Storage) -> Self {
        Self { view: View::new(store) }
    }
}

impl NodeSource for StoredTree<'_> {
    type Error = ReadError;

    fn complete(&self, level: u8, index: u64) -> Result<Hash, ReadError> {
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
pub fn inclusion_proof(store: &dyn Storage, index: u64, size: u64) -> Result<Vec<Hash>, ProofError<ReadError>> {
    merkle::inclusion_proof(&StoredTree::new(store), index, size)
}

/// The consistency proof from the tree of `old` records to that of `new`.
pub fn consistency_proof(store: &dyn Storage, old: u64, new: u64) -> Result<Vec<Hash>, ProofError<ReadError>> {
    merkle::consistency_proof(&StoredTree::new(store), old, new)
}
