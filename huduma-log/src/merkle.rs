//! The RFC 6962 Merkle tree over the log's records: SHA-256, leaf hash =
//! SHA-256(0x00 || the record's exact bytes), node hash = SHA-256(0x01 || left ||
//! right), leaf index = the record's sequence number.
//!
//! Proofs are generated (RFC 6962 §2.1.1 PATH and §2.1.2 PROOF) over any
//! [`NodeSource`] that can answer the hash of a complete, aligned subtree, and checked
//! by the independent algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2, which never build
//! a tree. [`Frontier`] is the right edge of a tree: appending a leaf is O(log n) and
//! names the complete subtrees it finishes (what a store keeps).

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly less than `n` (n >= 2).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// Answers the hash of the complete subtree of `2^level` leaves starting at leaf
/// `index * 2^level` (level 0: a leaf hash).
pub trait NodeSource {
    type Error;
    fn complete(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

/// MTH(D[start:end]): the hash of the leaves `start..end`, from complete subtrees.
pub fn subtree_root<S: NodeSource>(source: &S, start: u64, end: u64) -> Result<Hash, S::Error> {
    let n = end - start;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return source.complete(n.trailing_zeros() as u8, start / n);
    }
    let k = split(n);
    let left = subtree_root(source, start, start + k)?;
    let right = subtree_root(source, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The root of a tree of `size` leaves.
pub fn root<S: NodeSource>(source: &S, size: u64) -> Result<Hash, S::Error> {
    subtree_root(source, 0, size)
}

/// Why a proof cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError<E> {
    #[error("{0}")]
    Range(String),
    #[error(transparent)]
    Source(E),
}

/// The inclusion proof of leaf `index` in the tree of `size` leaves, leaf to root.
pub fn inclusion_proof<S: NodeSource>(source: &S, index: u64, size: u64) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index >= size {
        return Err(ProofError::Range(format!("index {index} is not below tree size {size}")));
    }
    let mut proof = Vec::new();
    path(source, index, 0, size, &mut proof).map_err(ProofError::Source)?;
    Ok(proof)
}

/// PATH(m, D[start:end]), appended leaf-first.
fn path<S: NodeSource>(source: &S, m: u64, start: u64, end: u64, out: &mut Vec<Hash>) -> Result<(), S::Error> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split(n);
    if m < k {
        path(source, m, start, start + k, out)?;
        out.push(subtree_root(source, start + k, end)?);
    } else {
        path(source, m - k, start + k, end, out)?;
        out.push(subtree_root(source, start, start + k)?);
    }
    Ok(())
}

/// The consistency proof from the tree of `old` leaves to the tree of `new` leaves.
pub fn consistency_proof<S: NodeSource>(source: &S, old: u64, new: u64) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if old > new {
        return Err(ProofError::Range(format!("old size {old} is past new size {new}")));
    }
    let mut proof = Vec::new();
    if old == 0 || old == new {
        return Ok(proof);
    }
    subproof(source, old, 0, new, true, &mut proof).map_err(ProofError::Source)?;
    Ok(proof)
}

/// SUBPROOF(m, D[start:end], b), appended in order.
fn subproof<S: NodeSource>(
    source: &S,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    out: &mut Vec<Hash>,
) -> Result<(), S::Error> {
    let n = end - start;
    if m == n {
        if !whole {
            out.push(subtree_root(source, start, end)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(source, m, start, start + k, whole, out)?;
        out.push(subtree_root(source, start + k, end)?);
    } else {
        subproof(source, m - k, start + k, end, false, out)?;
        out.push(subtree_root(source, start, start + k)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2: does `proof` show the leaf with hash `leaf` at `index` in the
/// tree of `size` leaves whose root is `root`?
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: does `proof` show that the tree of `old` leaves (root
/// `old_root`) is a prefix of the tree of `new` leaves (root `new_root`)?
pub fn verify_consistency(old: u64, new: u64, old_root: &Hash, new_root: &Hash, proof: &[Hash]) -> bool {
    if old > new {
        return false;
    }
    if old == new {
        return proof.is_empty() && old_root == new_root;
    }
    if old == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else { return false };
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && fr == *old_root && sr == *new_root
}

/// The right edge of a tree: the roots of its complete subtrees, largest first (one
/// per set bit of the size). Enough to append and to compute the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// (level, hash), levels strictly decreasing.
    edge: Vec<(u8, Hash)>,
}

/// A complete subtree an append finished: `(level, index, hash)`.
pub type Finished = (u8, u64, Hash);

impl Frontier {
    pub fn new() -> Self {
        Self::default()
    }

    /// The frontier of a tree of `size` leaves, read from a source (O(log n) reads).
    pub fn load<S: NodeSource>(source: &S, size: u64) -> Result<Self, S::Error> {
        let mut edge = Vec::new();
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1 << level) != 0 {
                edge.push((level, source.complete(level, start >> level)?));
                start += 1 << level;
            }
        }
        Ok(Self { size, edge })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the complete subtrees on the right edge, largest first, with
    /// their levels: what a verifier saves to resume.
    pub fn edge(&self) -> &[(u8, Hash)] {
        &self.edge
    }

    /// A frontier from a saved edge; `None` if the levels are not those of `size`.
    pub fn from_edge(size: u64, edge: Vec<(u8, Hash)>) -> Option<Self> {
        let levels: Vec<u8> = (0..64u8).rev().filter(|l| size & (1 << l) != 0).collect();
        let given: Vec<u8> = edge.iter().map(|(l, _)| *l).collect();
        (levels == given).then_some(Self { size, edge })
    }

    /// Appends a leaf; returns the complete subtrees of level >= 1 it finished, lowest
    /// first.
    pub fn push(&mut self, leaf: Hash) -> Vec<Finished> {
        let mut finished = Vec::new();
        let index = self.size;
        self.edge.push((0, leaf));
        while self.edge.len() >= 2 {
            let (right_level, right) = self.edge[self.edge.len() - 1];
            let (left_level, left) = self.edge[self.edge.len() - 2];
            if left_level != right_level {
                break;
            }
            self.edge.truncate(self.edge.len() - 2);
            let level = left_level + 1;
            let hash = node_hash(&left, &right);
            finished.push((level, index >> level, hash));
            self.edge.push((level, hash));
        }
        self.size += 1;
        finished
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.edge.iter().rev();
        let Some((_, last)) = iter.next() else { return empty_root() };
        iter.fold(*last, |acc, (_, left)| node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Leaves held in memory; complete subtrees computed from them directly.
    struct Leaves(Vec<Hash>);

    impl NodeSource for Leaves {
        type Error = String;
        fn complete(&self, level: u8, index: u64) -> Result<Hash, String> {
            let width = 1usize << level;
            let start = index as usize * width;
            let leaves = self.0.get(start..start + width).ok_or("past the end")?;
            let mut layer = leaves.to_vec();
            while layer.len() > 1 {
                layer = layer.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
            }
            Ok(layer[0])
        }
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn h(s: &str) -> Hash {
        unhex(s).try_into().unwrap()
    }

    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../testdata/rfc6962-vectors.json")).unwrap()
    }

    #[test]
    fn the_reference_tree_its_roots_and_proofs() {
        let v = vectors();
        let leaves: Vec<Hash> =
            v["leaves_hex"].as_array().unwrap().iter().map(|l| leaf_hash(&unhex(l.as_str().unwrap()))).collect();
        let source = Leaves(leaves.clone());
        for r in v["roots"].as_array().unwrap() {
            let size = r["tree_size"].as_u64().unwrap();
            assert_eq!(root(&source, size).unwrap(), h(r["root_hex"].as_str().unwrap()), "root of {size}");
            let mut frontier = Frontier::new();
            leaves.iter().take(size as usize).for_each(|l| drop(frontier.push(*l)));
            assert_eq!(frontier.root(), h(r["root_hex"].as_str().unwrap()), "frontier root of {size}");
        }
        for p in v["inclusion"].as_array().unwrap() {
            let (index, size) = (p["index"].as_u64().unwrap(), p["tree_size"].as_u64().unwrap());
            let want: Vec<Hash> = p["path_hex"].as_array().unwrap().iter().map(|x| h(x.as_str().unwrap())).collect();
            assert_eq!(inclusion_proof(&source, index, size).unwrap(), want, "inclusion {index} in {size}");
            let root = root(&source, size).unwrap();
            assert!(verify_inclusion(index, size, &leaves[index as usize], &want, &root));
        }
        for p in v["consistency"].as_array().unwrap() {
            let (old, new) = (p["old_size"].as_u64().unwrap(), p["new_size"].as_u64().unwrap());
            let want: Vec<Hash> = p["proof_hex"].as_array().unwrap().iter().map(|x| h(x.as_str().unwrap())).collect();
            assert_eq!(consistency_proof(&source, old, new).unwrap(), want, "consistency {old} -> {new}");
            let (a, b) = (root(&source, old).unwrap(), root(&source, new).unwrap());
            assert!(verify_consistency(old, new, &a, &b, &want));
        }
    }

    #[test]
    fn every_proof_up_to_64_leaves_checks_and_a_wrong_one_does_not() {
        let leaves: Vec<Hash> = (0u32..64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let source = Leaves(leaves.clone());
        let roots: Vec<Hash> = (0..=64).map(|n| root(&source, n).unwrap()).collect();
        for size in 1..=64u64 {
            for index in 0..size {
                let proof = inclusion_proof(&source, index, size).unwrap();
                assert!(verify_inclusion(index, size, &leaves[index as usize], &proof, &roots[size as usize]));
                let other = leaves[((index + 1) % 64) as usize];
                assert!(!verify_inclusion(index, size, &other, &proof, &roots[size as usize]), "{index}/{size}");
                if let Some(first) = proof.first() {
                    let mut bent = proof.clone();
                    bent[0] = node_hash(first, first);
                    assert!(!verify_inclusion(index, size, &leaves[index as usize], &bent, &roots[size as usize]));
                }
            }
            for old in 1..=size {
                let proof = consistency_proof(&source, old, size).unwrap();
                assert!(verify_consistency(old, size, &roots[old as usize], &roots[size as usize], &proof));
                if old < size {
                    let forked = node_hash(&roots[old as usize], &roots[old as usize]);
                    assert!(!verify_consistency(old, size, &forked, &roots[size as usize], &proof), "{old}->{size}");
                }
            }
        }
    }

    #[test]
    fn the_frontier_names_each_complete_subtree_once_and_reloads() {
        let leaves: Vec<Hash> = (0u32..100).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let source = Leaves(leaves.clone());
        let mut frontier = Frontier::new();
        let mut stored: HashMap<(u8, u64), Hash> = HashMap::new();
        for (n, leaf) in leaves.iter().enumerate() {
            for (level, index, hash) in frontier.push(*leaf) {
                assert_eq!(source.complete(level, index).unwrap(), hash);
                assert!(stored.insert((level, index), hash).is_none(), "finished twice");
            }
            assert_eq!(frontier.root(), root(&source, n as u64 + 1).unwrap());
            assert_eq!(Frontier::load(&source, n as u64 + 1).unwrap(), frontier);
        }
        assert_eq!(stored.len(), 100 - 100u32.count_ones() as usize, "n - popcount(n) internal nodes");
    }
}
