//! The intent a batch of the writer's is committed behind ([`Storage::commit_staged`]):
//! what the next opening of the store needs to undo the batch if a crash cut its
//! writing short. The writer derives it from the batch it built ([`CommitIntent::of`]);
//! `replay::rebuild` undoes it ([`CommitIntent::undo`]) before refolding the
//! projections, which the batch may have changed in part.
//!
//! The projections need no record of what they held before: rebuild derives them from
//! the log again. What a rebuild cannot derive is kept here: where the batch's records
//! begin (every record from there on is the batch's, none acknowledged), and the value
//! each of the batch's other keys outside the projections (request index, keyring) held
//! before it.

use serde::{Deserialize, Serialize};

use crate::projection::state::{self, meta};
use crate::storage::view::{ReadError, get_checked};
use crate::storage::{INTENT_KEY, Storage, StorageError, Tree, WriteBatch, checksum};
use crate::writer::seq_key;

/// A batch's intent, as stored under [`INTENT_KEY`] while the batch is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitIntent {
    /// The batch's first record.
    pub first_seq: u64,
    /// Each key the batch writes outside the log and the projections, with what was
    /// stored under it before the batch (`None`: nothing).
    pub before: Vec<Before>,
}

/// A key the batch writes, and its stored value before the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Before {
    /// The tree's namespace tag (`Tree as u8`).
    pub tree: u8,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// The stored bytes (envelope included), restored as they were.
    pub stored: Option<serde_bytes::ByteBuf>,
}

fn rebuilt(tree: Tree) -> bool {
    tree == Tree::Log || Tree::PROJECTIONS.contains(&tree)
}

impl CommitIntent {
    /// The intent of `batch`, which appends records from `first_seq` on, over `store`
    /// with `parent` (a batch not yet committed) beneath it.
    ///
    /// A keyring entry of a person registered in the batch (person ids are their
    /// registration's sequence number) is new by construction, and a request entry is
    /// written only where the writer found none: neither is read. Anything else outside
    /// the projections is read as it stood before.
    pub fn of(
        store: &dyn Storage,
        parent: Option<&WriteBatch>,
        first_seq: u64,
        batch: &WriteBatch,
    ) -> Result<Self, StorageError> {
        let mut before = Vec::new();
        for (&tree, writes) in &batch.writes {
            if rebuilt(tree) {
                continue;
            }
            for key in writes.keys() {
                let new_by_construction = match tree {
                    Tree::Requests => true,
                    Tree::Keyring => {
                        <[u8; 8]>::try_from(key.as_slice()).is_ok_and(|id| u64::from_be_bytes(id) >= first_seq)
                    }
                    _ => false,
                };
                let stored = if new_by_construction {
                    None
                } else {
                    match parent.and_then(|p| p.writes.get(&tree)).and_then(|w| w.get(key)) {
                        Some(pending) => pending.clone(),
                        None => store.get(tree, key)?,
                    }
                };
                before.push(Before {
                    tree: tree as u8,
                    key: key.clone(),
                    stored: stored.map(serde_bytes::ByteBuf::from),
                });
            }
        }
        Ok(Self { first_seq, before })
    }

    /// The stored form (checksummed, as every value is).
    pub fn encode(&self) -> Vec<u8> {
        checksum::seal(&state::encode(self))
    }

    /// The intent left in `store` by a batch whose writing was cut short, if any.
    pub fn read(store: &dyn Storage) -> Result<Option<Self>, ReadError> {
        let (tree, key) = INTENT_KEY;
        match get_checked(store, tree, key)? {
            Some(bytes) => Ok(Some(state::decode(tree, key, &bytes)?)),
            None => Ok(None),
        }
    }

    /// The writes that take the store back to before the batch, outside the
    /// projections: its records removed (the log holds `log_size`), every other key
    /// it wrote restored, and the projections' applied markers removed, so that they
    /// are rebuilt. The intent itself stays until the rebuild is done.
    pub fn undo(&self, log_size: u64) -> Result<WriteBatch, ReadError> {
        let mut undo = WriteBatch::default();
        for seq in self.first_seq..log_size {
            undo.remove(Tree::Log, seq_key(seq).to_vec());
        }
        for before in &self.before {
            let (tree_key, key) = INTENT_KEY;
            let tree = Tree::ALL.into_iter().find(|t| *t as u8 == before.tree).ok_or_else(|| {
                crate::storage::view::Corruption::new(tree_key, key, format!("names no tree {}", before.tree))
            })?;
            match &before.stored {
                Some(stored) => undo.put(tree, before.key.clone(), stored.to_vec()),
                None => undo.remove(tree, before.key.clone()),
            }
        }
        for tree in Tree::PROJECTIONS {
            undo.remove(Tree::Meta, meta::applied(tree));
        }
        Ok(undo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;

    #[test]
    fn an_intent_names_what_the_batch_overwrites_and_skips_what_it_creates() {
        let store = MemoryStore::new();
        let mut existing = WriteBatch::default();
        existing.put(Tree::Keyring, 3u64.to_be_bytes().to_vec(), checksum::seal(b"old key"));
        store.commit(&existing, false).unwrap();
        let mut batch = WriteBatch::default();
        batch.put(Tree::Log, seq_key(10).to_vec(), checksum::seal(b"record"));
        batch.put(Tree::Numbers, b"n".to_vec(), checksum::seal(b"projection"));
        batch.put(Tree::Requests, b"r".to_vec(), checksum::seal(b"answer"));
        batch.put(Tree::Keyring, 3u64.to_be_bytes().to_vec(), checksum::seal(b"erased"));
        batch.put(Tree::Keyring, 10u64.to_be_bytes().to_vec(), checksum::seal(b"new key"));
        let intent = CommitIntent::of(&store, None, 10, &batch).unwrap();
        let back = |tree: Tree, key: &[u8]| {
            intent.before.iter().find(|b| b.tree == tree as u8 && b.key == key).map(|b| b.stored.clone())
        };
        assert_eq!(intent.before.len(), 3, "the log and the projections are rebuilt, not restored");
        assert_eq!(back(Tree::Keyring, &3u64.to_be_bytes()), Some(Some(checksum::seal(b"old key").into())));
        assert_eq!(back(Tree::Keyring, &10u64.to_be_bytes()), Some(None));
        assert_eq!(back(Tree::Requests, b"r"), Some(None));

        // Stored, read back, undone: the records from 10 on go, the keyring and the
        // request index are as before, and the projections are marked for a rebuild.
        let mut with_intent = batch.clone();
        with_intent.put(INTENT_KEY.0, INTENT_KEY.1.to_vec(), intent.encode());
        store.commit(&with_intent, false).unwrap();
        let read = CommitIntent::read(&store).unwrap().unwrap();
        assert_eq!(read, intent);
        store.commit(&read.undo(11).unwrap(), false).unwrap();
        assert_eq!(store.get(Tree::Log, &seq_key(10)).unwrap(), None);
        assert_eq!(store.get(Tree::Requests, b"r").unwrap(), None);
        assert_eq!(store.get(Tree::Keyring, &10u64.to_be_bytes()).unwrap(), None);
        assert_eq!(store.get(Tree::Keyring, &3u64.to_be_bytes()).unwrap(), Some(checksum::seal(b"old key")));
    }

    #[test]
    fn a_damaged_intent_is_reported_not_trusted() {
        let store = MemoryStore::new();
        let mut batch = WriteBatch::default();
        let mut stored = CommitIntent { first_seq: 4, before: vec![] }.encode();
        let last = stored.len() - 1;
        stored[last] ^= 1;
        batch.put(INTENT_KEY.0, INTENT_KEY.1.to_vec(), stored);
        store.commit(&batch, false).unwrap();
        assert!(CommitIntent::read(&store).is_err());
    }
}
