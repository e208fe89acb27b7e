//! The intent a batch of the writer's is committed behind ([`Storage::commit_staged`]):
//! what the next opening of the store needs to undo the batch if a crash cut its
//! writing short. It is derived from the batch once it is built
//! ([`CommitIntent::staging`]: by the sequencer, over the batch still being committed
//! before it, so that the committer only writes), and the opening undoes it
//! ([`CommitIntent::undo`]). The same reads give the batch's before-image
//! ([`before_image`]), which readers are shown for the batch's keys until it is
//! durable (`storage::staged`): what they see is what an undo would leave.
//!
//! The undo is exact: where the batch's records begin (every record from there on is
//! the batch's, none acknowledged), and the value each of the batch's other keys held
//! before it, projections included, so that undoing it leaves the store as it was and
//! the projections need no rebuild (at national scale a rebuild is minutes and tens
//! of GiB of memory). Keys the batch creates by construction (its persons' entries and
//! keyring entries, request entries it found absent, the tree's nodes and blocks its
//! records complete, the entries of the numbers it issued) are recorded as absent
//! without a read; every other key is read as it stands before the batch.
//!
//! An intent stored by an earlier version under [`LEGACY_INTENT_KEY`] holds the values
//! of the request index and the keyring only: undoing it leaves the projections to a
//! rebuild, as that version did ([`CommitIntent::exact`] is false).

use serde::{Deserialize, Serialize};

use crate::projection::state::{self, meta};
use crate::storage::view::{ReadError, get_checked};
use crate::storage::{INTENT_KEY, Intent, LEGACY_INTENT_KEY, Storage, StorageError, Tree, WriteBatch, checksum};
use crate::writer::seq_key;

/// A batch's intent, as stored under [`INTENT_KEY`] while the batch is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitIntent {
    /// The batch's first record.
    pub first_seq: u64,
    /// Each key the batch writes outside the log, with what was stored under it
    /// before the batch (`None`: nothing).
    pub before: Vec<Before>,
    /// Whether `before` holds every key the batch writes (projections included), so
    /// that the undo leaves the store as it was; false for an intent stored by an
    /// earlier version, which left the projections to a rebuild. Not stored: it
    /// follows from the key the intent is read from.
    #[serde(skip)]
    pub exact: bool,
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

/// The trees of a before-image that its intent holds: every one but the log, whose
/// records the undo removes from `first_seq` on instead.
fn intent_trees(
    before: &WriteBatch,
) -> impl Iterator<Item = (Tree, &std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>)> {
    before.writes.iter().filter(|(tree, _)| **tree != Tree::Log).map(|(tree, writes)| (*tree, writes))
}

/// A [`CommitIntent`] to be encoded, borrowed from a batch's before-image: serialized
/// as the intent is (its `first_seq`, then `before` as a sequence of [`Before`]s), so
/// the same bytes.
struct BeforeImage<'a> {
    first_seq: u64,
    before: &'a WriteBatch,
}

/// A [`Before`], borrowed: serialized as it is.
#[derive(Serialize)]
struct BeforeRef<'a> {
    tree: u8,
    #[serde(with = "serde_bytes")]
    key: &'a [u8],
    stored: Option<&'a serde_bytes::Bytes>,
}

impl Serialize for BeforeImage<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeStruct};
        struct Entries<'a>(&'a WriteBatch);
        impl Serialize for Entries<'_> {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let len = intent_trees(self.0).map(|(_, writes)| writes.len()).sum();
                let mut seq = serializer.serialize_seq(Some(len))?;
                for (tree, writes) in intent_trees(self.0) {
                    for (key, stored) in writes {
                        let stored = stored.as_deref().map(serde_bytes::Bytes::new);
                        seq.serialize_element(&BeforeRef { tree: tree as u8, key, stored })?;
                    }
                }
                seq.end()
            }
        }
        let mut intent = serializer.serialize_struct("CommitIntent", 2)?;
        intent.serialize_field("first_seq", &self.first_seq)?;
        intent.serialize_field("before", &Entries(self.before))?;
        intent.end()
    }
}

impl CommitIntent {
    /// The intent of `batch`, which appends records from `first_seq` on, over `store`
    /// as it stands with every earlier batch committed (see [`before_image`]).
    pub fn of(store: &dyn Storage, first_seq: u64, batch: &WriteBatch) -> Result<Self, StorageError> {
        let before = before_image(store, None, first_seq, batch, &IssuedNumbers::default())?;
        Ok(Self::from_before_image(first_seq, &before))
    }

    /// What `batch` is committed behind ([`Storage::commit_staged`]): its intent,
    /// encoded to be stored, and its before-image, which readers are shown until the
    /// batch is durable. One read per key at most, shared by the two.
    pub fn staging(
        store: &dyn Storage,
        parent: Option<&WriteBatch>,
        first_seq: u64,
        batch: &WriteBatch,
        issued: &IssuedNumbers,
    ) -> Result<Intent, StorageError> {
        let before = before_image(store, parent, first_seq, batch, issued)?;
        let stored = Self::encode_before_image(first_seq, &before)
            .map_err(|e| StorageError::Engine(format!("the batch's intent could not be encoded: {e}")))?;
        Ok(Intent { stored, before: std::sync::Arc::new(before) })
    }

    /// The stored form of the intent of a batch whose before-image is `before`: the
    /// bytes of `from_before_image(first_seq, before).encode()`, written straight from
    /// the before-image into a buffer sized once. The intent holds every key and value
    /// of a batch (hundreds of kilobytes at 256 registrations), and copying them into
    /// an intent first, then growing the encoding a doubling at a time onto fresh
    /// pages, was about a tenth of the sequencer thread's time.
    /// An error (which the length given for the sequence rules out) refuses the batch,
    /// rather than store an intent its undo could not read.
    fn encode_before_image(first_seq: u64, before: &WriteBatch) -> Result<Vec<u8>, postcard::Error> {
        // Each entry: its tree, two lengths (at most 10 bytes each as varints), the
        // option's tag, the key and the value; then the intent's head and checksum.
        let room: usize = intent_trees(before)
            .flat_map(|(_, writes)| writes.iter())
            .map(|(key, stored)| 22 + key.len() + stored.as_ref().map_or(0, Vec::len))
            .sum();
        let room = room + 2 * 10 + checksum::CHECKSUM_LEN;
        let image = BeforeImage { first_seq, before };
        let encoded = postcard::to_extend(&image, Vec::with_capacity(room))?;
        Ok(checksum::seal_owned(encoded))
    }

    /// The intent of a batch whose before-image is `before`: every key but the log's
    /// records (which the undo removes from `first_seq` on).
    fn from_before_image(first_seq: u64, before: &WriteBatch) -> Self {
        let before = intent_trees(before)
            .flat_map(|(tree, writes)| {
                writes.iter().map(move |(key, stored)| Before {
                    tree: tree as u8,
                    key: key.clone(),
                    stored: stored.clone().map(serde_bytes::ByteBuf::from),
                })
            })
            .collect();
        Self { first_seq, before, exact: true }
    }

    /// The stored form (checksummed, as every value is).
    pub fn encode(&self) -> Vec<u8> {
        checksum::seal(&state::encode(self))
    }

    /// The intent left in `store` by a batch whose writing was cut short, if any (an
    /// earlier version's, under [`LEGACY_INTENT_KEY`], with `exact` false).
    pub fn read(store: &dyn Storage) -> Result<Option<Self>, ReadError> {
        for (key, exact) in [(INTENT_KEY, true), (LEGACY_INTENT_KEY, false)] {
            let (tree, key) = key;
            if let Some(bytes) = get_checked(store, tree, key)? {
                let intent: Self = state::decode(tree, key, &bytes)?;
                return Ok(Some(Self { exact, ..intent }));
            }
        }
        Ok(None)
    }

    /// The writes that take the store back to before the batch: its records removed
    /// (the log holds `log_size`), every other key it wrote restored, and the intent
    /// removed. An earlier version's intent (not `exact`) restored only the request
    /// index and the keyring: its undo removes the projections' applied markers
    /// instead, so that they are rebuilt, and leaves the intent to go with the
    /// rebuild's last writes.
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
        if self.exact {
            undo.remove(INTENT_KEY.0, INTENT_KEY.1.to_vec());
        } else {
            for tree in Tree::PROJECTIONS {
                undo.remove(Tree::Meta, meta::applied(tree));
            }
        }
        Ok(undo)
    }
}

/// Every key `batch` writes, with what it holds before the batch (a removal where it
/// holds nothing): what `parent` writes (the batch before this one, if it may not be
/// committed yet), else what `store` holds, `store` standing with every batch before
/// `parent` committed; `batch` appends records from `first_seq` on.
///
/// Keys new by construction are not read: the batch's records; a person's entry or
/// keyring entry of a person registered in the batch (person ids are their
/// registration's sequence number); request entries (written only where the writer
/// found none); the tree's nodes under a record of the batch and its blocks completed
/// by one (each written once, when that record is appended); the `numbers` entries of
/// the numbers the batch issued (`issued`). Every other key is read as it stands
/// before the batch.
pub fn before_image(
    store: &dyn Storage,
    parent: Option<&WriteBatch>,
    first_seq: u64,
    batch: &WriteBatch,
    issued: &IssuedNumbers,
) -> Result<WriteBatch, StorageError> {
    let mut before = WriteBatch::default();
    for (&tree, writes) in &batch.writes {
        let parents = parent.and_then(|p| p.writes.get(&tree));
        // The batch's keys come in key order: the tree's image is built from them in
        // bulk, with no search a key (a few thousand keys a batch).
        let mut image = Vec::with_capacity(writes.len());
        for key in writes.keys() {
            let value = if new_by_construction(tree, key, first_seq) || issued.holds(tree, key) {
                None
            } else if let Some(written) = parents.and_then(|p| p.get(key)) {
                written.clone()
            } else {
                store.get(tree, key)?
            };
            image.push((key.clone(), value));
        }
        if !image.is_empty() {
            before.writes.insert(tree, image.into_iter().collect());
        }
    }
    Ok(before)
}

/// The `numbers` keys of the Huduma numbers a batch issued, which the batch creates:
/// a number is the keyed permutation of an issuance counter that only grows, and the
/// permutation's key cannot change under a store (see `issuer` and `Writer::issue`),
/// so no number it issues was ever written before. Their entries are a registration's
/// most common read of an absent key; the intent records them absent without it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IssuedNumbers(std::collections::BTreeSet<Vec<u8>>);

impl IssuedNumbers {
    /// Notes that the batch issued `number`.
    pub fn insert(&mut self, number: huduma_number::HudumaNumber) {
        self.0.insert(state::number_key(number));
    }

    /// Whether `key` of `tree` is the `numbers` entry of a number the batch issued.
    fn holds(&self, tree: Tree, key: &[u8]) -> bool {
        tree == Tree::Numbers && self.0.contains(key)
    }
}

/// Whether a batch whose records begin at `first_seq` creates `key` of `tree` by
/// construction (see [`before_image`]).
fn new_by_construction(tree: Tree, key: &[u8], first_seq: u64) -> bool {
    let number = || <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes);
    match tree {
        Tree::Log | Tree::Requests => true,
        Tree::Keyring | Tree::Persons | Tree::MerkleNodes => number().is_some_and(|seq| seq >= first_seq),
        Tree::MerkleBlocks => number().is_some_and(|block| {
            let last = block
                .saturating_mul(crate::merkle_store::BLOCK_LEAVES)
                .saturating_add(crate::merkle_store::BLOCK_LEAVES - 1);
            last >= first_seq
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStore;

    /// Every entry of every tree, as stored.
    fn dump(store: &dyn Storage) -> Vec<(Tree, Vec<crate::storage::KeyValue>)> {
        Tree::ALL.into_iter().map(|tree| (tree, store.scan_prefix(tree, b"").unwrap())).collect()
    }

    proptest::proptest! {
        /// The intent encoded straight from a before-image is, byte for byte, the
        /// intent made from it and encoded (every tree, the log's records left out,
        /// values long enough for two-byte lengths), and reads back as that intent.
        #[test]
        fn an_intent_encoded_from_its_before_image_is_the_intent_made_and_encoded(
            first_seq in proptest::prelude::any::<u64>(),
            entries in proptest::collection::vec(
                (
                    proptest::sample::select(Tree::ALL.to_vec()),
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
                    proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)),
                ),
                0..40,
            ),
        ) {
            let mut before = WriteBatch::default();
            for (tree, key, stored) in entries {
                match stored {
                    Some(stored) => before.put(tree, key, stored),
                    None => before.remove(tree, key),
                }
            }
            let made = CommitIntent::from_before_image(first_seq, &before);
            let stored = CommitIntent::encode_before_image(first_seq, &before)
                .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            proptest::prop_assert_eq!(&stored, &made.encode());
            let (tree, key) = INTENT_KEY;
            let opened = checksum::open(&stored).ok_or_else(|| proptest::test_runner::TestCaseError::fail("checksum"))?;
            // `exact` is not stored: `read` sets it from the key the intent is under.
            let back: CommitIntent = state::decode(tree, key, opened)?;
            proptest::prop_assert_eq!(CommitIntent { exact: true, ..back }, made);
        }
    }

    #[test]
    fn an_intent_names_what_the_batch_overwrites_and_skips_what_it_creates() {
        let store = MemoryStore::new();
        let mut existing = WriteBatch::default();
        existing.put(Tree::Keyring, 3u64.to_be_bytes().to_vec(), checksum::seal(b"old key"));
        existing.put(Tree::Persons, 3u64.to_be_bytes().to_vec(), checksum::seal(b"old person"));
        existing.put(Tree::Meta, meta::applied(Tree::Persons), checksum::seal(b"9"));
        store.commit(&existing, false).unwrap();
        let before_batch = dump(&store);
        let mut batch = WriteBatch::default();
        batch.put(Tree::Log, seq_key(10).to_vec(), checksum::seal(b"record"));
        batch.put(Tree::Numbers, b"n".to_vec(), checksum::seal(b"projection"));
        batch.put(Tree::Persons, 3u64.to_be_bytes().to_vec(), checksum::seal(b"merged"));
        batch.put(Tree::Persons, 10u64.to_be_bytes().to_vec(), checksum::seal(b"new person"));
        batch.put(Tree::Requests, b"r".to_vec(), checksum::seal(b"answer"));
        batch.put(Tree::Keyring, 3u64.to_be_bytes().to_vec(), checksum::seal(b"erased"));
        batch.put(Tree::Keyring, 10u64.to_be_bytes().to_vec(), checksum::seal(b"new key"));
        batch.put(Tree::Meta, meta::applied(Tree::Persons), checksum::seal(b"10"));
        let intent = CommitIntent::of(&store, 10, &batch).unwrap();
        assert!(intent.exact);
        let back = |tree: Tree, key: &[u8]| {
            intent.before.iter().find(|b| b.tree == tree as u8 && b.key == key).map(|b| b.stored.clone())
        };
        assert_eq!(intent.before.len(), 7, "every key but the log's records, projections included");
        assert_eq!(back(Tree::Keyring, &3u64.to_be_bytes()), Some(Some(checksum::seal(b"old key").into())));
        assert_eq!(back(Tree::Keyring, &10u64.to_be_bytes()), Some(None));
        assert_eq!(back(Tree::Persons, &3u64.to_be_bytes()), Some(Some(checksum::seal(b"old person").into())));
        assert_eq!(back(Tree::Persons, &10u64.to_be_bytes()), Some(None));
        assert_eq!(back(Tree::Numbers, b"n"), Some(None));
        assert_eq!(back(Tree::Requests, b"r"), Some(None));
        assert_eq!(back(Tree::Meta, &meta::applied(Tree::Persons)), Some(Some(checksum::seal(b"9").into())));

        // What readers are shown until the batch is durable: every key the batch
        // writes, the log's record included, as the store holds it now.
        let staging = CommitIntent::staging(&store, None, 10, &batch, &IssuedNumbers::default()).unwrap();
        assert_eq!(staging.stored, intent.encode());
        let shown: Vec<_> = staging.before.writes.iter().flat_map(|(t, w)| w.keys().map(move |k| (*t, k))).collect();
        let written: Vec<_> = batch.writes.iter().flat_map(|(t, w)| w.keys().map(move |k| (*t, k))).collect();
        assert_eq!(shown, written);
        for (tree, writes) in &staging.before.writes {
            for (key, value) in writes {
                assert_eq!(value, &store.get(*tree, key).unwrap(), "{tree:?} {key:?}");
            }
        }

        // Stored, read back, undone: the store is as it was before the batch, the
        // intent gone with the undo.
        let mut with_intent = batch.clone();
        with_intent.put(INTENT_KEY.0, INTENT_KEY.1.to_vec(), intent.encode());
        store.commit(&with_intent, false).unwrap();
        let read = CommitIntent::read(&store).unwrap().unwrap();
        assert_eq!(read, intent);
        store.commit(&read.undo(11).unwrap(), false).unwrap();
        assert_eq!(dump(&store), before_batch);
        assert_eq!(CommitIntent::read(&store).unwrap(), None);
    }

    #[test]
    fn an_earlier_versions_intent_is_undone_and_leaves_the_projections_to_a_rebuild() {
        let store = MemoryStore::new();
        let mut batch = WriteBatch::default();
        batch.put(Tree::Log, seq_key(4).to_vec(), checksum::seal(b"record"));
        batch.put(Tree::Requests, b"r".to_vec(), checksum::seal(b"answer"));
        batch.put(Tree::Numbers, b"n".to_vec(), checksum::seal(b"projection"));
        // That version's intent: the same encoding, the request index's key only.
        let legacy = CommitIntent {
            first_seq: 4,
            before: vec![Before { tree: Tree::Requests as u8, key: b"r".to_vec(), stored: None }],
            exact: false,
        };
        batch.put(LEGACY_INTENT_KEY.0, LEGACY_INTENT_KEY.1.to_vec(), legacy.encode());
        store.commit(&batch, false).unwrap();
        let read = CommitIntent::read(&store).unwrap().unwrap();
        assert_eq!(read, legacy);
        assert!(!read.exact);
        let undo = read.undo(5).unwrap();
        store.commit(&undo, false).unwrap();
        assert_eq!(store.get(Tree::Log, &seq_key(4)).unwrap(), None);
        assert_eq!(store.get(Tree::Requests, b"r").unwrap(), None);
        for tree in Tree::PROJECTIONS {
            assert!(undo.writes[&Tree::Meta].get(&meta::applied(tree)).is_some_and(Option::is_none));
        }
        // The intent stays for the rebuild to remove with its last writes.
        assert!(CommitIntent::read(&store).unwrap().is_some());
    }

    #[test]
    fn a_damaged_intent_is_reported_not_trusted() {
        let store = MemoryStore::new();
        let mut batch = WriteBatch::default();
        let mut stored = CommitIntent { first_seq: 4, before: vec![], exact: true }.encode();
        let last = stored.len() - 1;
        stored[last] ^= 1;
        batch.put(INTENT_KEY.0, INTENT_KEY.1.to_vec(), stored);
        store.commit(&batch, false).unwrap();
        assert!(CommitIntent::read(&store).is_err());
    }
}
