//! [`WrittenKeys`]: which keys a large write batch may hold, by fingerprint, so that a
//! read of a key the batch does not write skips the look-up in its ordered maps. Used
//! by [`super::view::View`] for the batch it builds and the one in flight, and by
//! [`super::staged::StagedStore`] for the before-image of the batch being committed.

use std::collections::HashSet;
use std::hash::BuildHasher;

use super::{Tree, WriteBatch};

/// Fingerprints (64-bit hashes) of the keys one batch writes, each with its tree: a
/// key absent here is not in the batch, and one present may be (two keys can share a
/// fingerprint). Most reads while a batch is built are of keys it does not write, and
/// a look-up in a large batch's ordered map compares the key a score of times (about
/// 5% of the sequencer's CPU in its profile, for the batch and the one in flight);
/// this answers them with one hash. A small batch (a fold's, one record's writes) is
/// looked up directly: hashing would cost it more than it saves.
#[derive(Debug)]
pub(crate) struct WrittenKeys {
    hashes: HashSet<u64, foldhash::fast::FixedState>,
}

impl WrittenKeys {
    /// The writes from which a batch's keys are fingerprinted.
    pub(crate) const FROM: usize = 64;

    /// The fingerprints of `batch`'s keys, if it holds [`Self::FROM`] writes or more.
    pub(crate) fn of_large(batch: &WriteBatch) -> Option<Self> {
        (batch.len() >= Self::FROM).then(|| Self::of(batch))
    }

    pub(crate) fn of(batch: &WriteBatch) -> Self {
        let mut keys = Self { hashes: HashSet::with_capacity_and_hasher(batch.len(), Default::default()) };
        for (tree, writes) in &batch.writes {
            for key in writes.keys() {
                keys.insert(*tree, key);
            }
        }
        keys
    }

    fn fingerprint(tree: Tree, key: &[u8]) -> u64 {
        foldhash::fast::FixedState::default().hash_one((tree, key))
    }

    pub(crate) fn insert(&mut self, tree: Tree, key: &[u8]) {
        self.hashes.insert(Self::fingerprint(tree, key));
    }

    fn may_hold(&self, tree: Tree, key: &[u8]) -> bool {
        self.hashes.contains(&Self::fingerprint(tree, key))
    }

    /// `batch`'s word on `key` of `tree` (`Some(None)`: it removes the key), looked
    /// up in its ordered map only if the batch's fingerprints `keys` may hold the key
    /// (`None` for a small batch, which is not fingerprinted: then it may).
    pub(crate) fn in_batch<'b>(
        keys: Option<&Self>,
        batch: &'b WriteBatch,
        tree: Tree,
        key: &[u8],
    ) -> Option<&'b Option<Vec<u8>>> {
        if keys.is_some_and(|keys| !keys.may_hold(tree, key)) {
            return None;
        }
        batch.writes.get(&tree).and_then(|writes| writes.get(key))
    }
}
