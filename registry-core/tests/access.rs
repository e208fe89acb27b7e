//! The citizen's access log: look-ups recorded durably and listed per person, newest
//! first and paged; its own chain, tree and signed checkpoints; tampering detected;
//! erasure makes a person's entries unreadable.

mod common;

use common::*;
use proptest::prelude::*;
use registry_core::PersonId;
use registry_core::access::verify::{AccessVerifyError, verify};
use registry_core::command::Command;
use registry_core::registry::{ACCESS_DIR, OpenError, Registry, RegistryOptions};
use registry_core::storage::memory::MemoryStore;
use registry_core::storage::sled_store::SledStore;
use registry_core::storage::{Storage, Tree, WriteBatch};
use registry_core::synthetic::look_up;

fn open(dir: &std::path::Path) -> Registry {
    Registry::open_dir(dir, secrets(), log_key(), RegistryOptions::default()).expect("open registry")
}

fn register(registry: &Registry, id: &str, i: usize) -> PersonId {
    let number = registry
        .submit_blocking(submission(id, Command::RegisterPerson { demographics: person(i) }))
        .expect("register")
        .number
        .expect("a number");
    registry.reader().resolve_number(number).unwrap().unwrap().person
}

fn purposes(page: &registry_core::access::AccessPage) -> Vec<String> {
    page.entries.iter().map(|e| e.body.as_ref().map_or("<erased>".into(), |b| b.purpose.clone())).collect()
}

fn access_keys(registry: &Registry) -> Vec<registry_core::keys::VerifyingKey> {
    registry.reader().log_keys().unwrap().into_iter().map(|(_, k)| k).collect()
}

#[test]
fn look_ups_are_listed_per_person_newest_first_paged_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (amina, baraka) = {
        let registry = open(dir.path());
        let amina = register(&registry, "a", 1);
        let baraka = register(&registry, "b", 2);
        let access = registry.access();
        for (i, (person, agency)) in
            [(amina, "KRA"), (baraka, "NHIF"), (amina, "NHIF"), (amina, "KRA")].into_iter().enumerate()
        {
            let seq = access.record_blocking(look_up(Some(person), agency, &format!("p{i}"))).unwrap();
            assert_eq!(seq, i as u64, "access records are numbered from 0 with no gaps");
        }
        access.record_blocking(look_up(None, "KRA", "nobody")).unwrap();
        registry.close();
        (amina, baraka)
    };
    let registry = open(dir.path());
    let reader = registry.access().reader();
    assert_eq!(reader.size().unwrap(), 5);
    let all = reader.list(amina, None, 0, 10).unwrap();
    assert_eq!(purposes(&all), ["p3", "p2", "p0"]);
    assert_eq!(all.next_before, None);
    let first = &all.entries[0].body.as_ref().unwrap();
    assert_eq!(first.agency, "KRA");
    assert_eq!(first.key.kind(), ("agency_record", Some("KRA")));
    assert_eq!(purposes(&reader.list(baraka, None, 0, 10).unwrap()), ["p1"]);
    // Pages of two: the second starts where the first said.
    let page = reader.list(amina, None, 0, 2).unwrap();
    assert_eq!(purposes(&page), ["p3", "p2"]);
    let rest = reader.list(amina, page.next_before, 0, 2).unwrap();
    assert_eq!(purposes(&rest), ["p0"]);
    assert_eq!(rest.next_before, None);
    // `since` cuts off older entries.
    let newest = all.entries[0].time_ms;
    assert!(reader.list(amina, None, newest + 1, 10).unwrap().entries.is_empty());
    // Recording continues the chain after the restart.
    assert_eq!(registry.access().record_blocking(look_up(Some(baraka), "KRA", "p5")).unwrap(), 5);
    let summary = verify(&**reader.store(), registry.access().origin(), &access_keys(&registry), &mut |_| ()).unwrap();
    assert_eq!(summary.size, 6);
    registry.close();
}

#[test]
fn checkpoints_of_the_access_log_are_signed_for_its_own_origin() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let amina = register(&registry, "a", 1);
    for i in 0..3 {
        registry.access().record_blocking(look_up(Some(amina), "KRA", &format!("p{i}"))).unwrap();
    }
    registry.close();
    let registry = open(dir.path());
    let reader = registry.access().reader();
    let (size, note) = reader.latest_checkpoint().unwrap().expect("a checkpoint of the access log");
    assert_eq!(size, 3);
    assert_eq!(registry.access().origin(), "registry.huduma.go.ke/access");
    let checkpoint =
        huduma_log::checkpoint::Checkpoint::open(&note, "registry.huduma.go.ke/access", &log_key().public())
            .expect("signed by the log key for the access origin");
    assert_eq!(checkpoint.root, huduma_log::merkle::root(&LeafSource(&reader), 3).unwrap());
    // Every record is provably in the tree the checkpoint signed.
    for index in 0..3 {
        let proof = reader.inclusion_proof(index, 3).unwrap();
        let leaf = huduma_log::merkle::leaf_hash(&reader.record(index).unwrap().unwrap());
        assert!(huduma_log::merkle::verify_inclusion(index, 3, &leaf, &proof, &checkpoint.root));
    }
    let summary = verify(&**reader.store(), registry.access().origin(), &access_keys(&registry), &mut |_| ()).unwrap();
    let stored = reader.store().range_from(Tree::Checkpoints, &[], usize::MAX).unwrap().len() as u64;
    assert!(stored >= 1);
    assert_eq!(summary.checkpoints, stored, "every stored checkpoint is checked");
    registry.close();
}

/// Leaves read straight from the stored records: an independent root.
struct LeafSource<'a>(&'a registry_core::access::AccessReader);

impl huduma_log::merkle::NodeSource for LeafSource<'_> {
    type Error = String;
    fn complete(&self, level: u8, index: u64) -> Result<huduma_log::merkle::Hash, String> {
        let start = index << level;
        let leaves: Vec<_> = (start..start + (1 << level))
            .map(|i| huduma_log::merkle::leaf_hash(&self.0.record(i).unwrap().unwrap()))
            .collect();
        let mut level_hashes = leaves;
        while level_hashes.len() > 1 {
            level_hashes =
                level_hashes.chunks(2).map(|pair| huduma_log::merkle::node_hash(&pair[0], &pair[1])).collect();
        }
        Ok(level_hashes[0])
    }
}

#[test]
fn erasure_makes_a_persons_entries_unreadable_but_the_log_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let number = registry
        .submit_blocking(submission("a", Command::RegisterPerson { demographics: person(1) }))
        .unwrap()
        .number
        .unwrap();
    let amina = registry.reader().resolve_number(number).unwrap().unwrap().person;
    registry.access().record_blocking(look_up(Some(amina), "KRA", "before erasure")).unwrap();
    registry
        .submit_blocking(submission("e", Command::ErasePersonalData { number, legal_basis: "DPA 2019 s.40".into() }))
        .unwrap();
    registry.access().record_blocking(look_up(Some(amina), "KRA", "after erasure")).unwrap();
    let page = registry.access().reader().list(amina, None, 0, 10).unwrap();
    // The look-up after erasure had no data key to be sealed under: it is readable;
    // the one before was sealed under the destroyed key.
    assert_eq!(purposes(&page), ["after erasure", "<erased>"]);
    let store = registry.access().reader().store().clone();
    verify(&*store, registry.access().origin(), &access_keys(&registry), &mut |_| ()).unwrap();
    registry.close();
}

fn flip_stored(store: &dyn Storage, tree: Tree, key: &[u8], at: usize) {
    let mut value = store.get(tree, key).unwrap().unwrap();
    let at = at % value.len();
    value[at] ^= 0x01;
    let mut batch = WriteBatch::default();
    batch.put(tree, key.to_vec(), value);
    store.commit(&batch, true).unwrap();
}

/// A registry in `dir` with one person, Amina, looked up `count` times by KRA (purposes
/// `p0`, `p1`, …), then closed. Returns her id.
fn registered_and_looked_up(dir: &std::path::Path, count: usize) -> PersonId {
    let registry = open(dir);
    let amina = register(&registry, "a", 1);
    for i in 0..count {
        registry.access().record_blocking(look_up(Some(amina), "KRA", &format!("p{i}"))).unwrap();
    }
    registry.close();
    amina
}

#[test]
fn a_tampered_access_record_is_named_and_the_registry_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    registered_and_looked_up(dir.path(), 5);
    {
        let store = SledStore::open(&dir.path().join(ACCESS_DIR)).unwrap();
        // A record rewritten whole, with a valid checksum: the chain names it.
        let key = 2u64.to_be_bytes();
        let stored = store.get(Tree::Log, &key).unwrap().unwrap();
        let mut bytes = registry_core::storage::checksum::open(&stored).unwrap().to_vec();
        bytes[120] ^= 0x01;
        let mut batch = WriteBatch::default();
        batch.put(Tree::Log, key.to_vec(), registry_core::storage::checksum::seal(&bytes));
        store.commit(&batch, true).unwrap();
        let keys = [log_key().public()];
        match verify(&store, "registry.huduma.go.ke/access", &keys, &mut |_| ()) {
            Err(AccessVerifyError::Record { seq: 3, reason }) => assert!(reason.contains("previous"), "{reason}"),
            other => panic!("expected record 3 named by the chain, got {other:?}"),
        }
    }
    match Registry::open_dir(dir.path(), secrets(), log_key(), RegistryOptions::default()) {
        Err(OpenError::Access(e)) => assert!(e.to_string().contains("record 3"), "{e}"),
        Err(other) => panic!("expected the access log refused, got {other}"),
        Ok(_) => panic!("a tampered access log must not open"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// For any sequence of look-ups, each person's list is exactly their look-ups,
    /// newest first; pages concatenate to it; the log verifies; and flipping any byte
    /// of any stored record or index entry is detected.
    #[test]
    fn lists_match_the_look_ups_and_any_flipped_byte_is_detected(
        looks in proptest::collection::vec(0usize..4, 1..40),
        page in 1usize..6,
        flip in any::<(usize, usize)>(),
    ) {
        let identity: std::sync::Arc<dyn Storage> = std::sync::Arc::new(MemoryStore::new());
        let access: std::sync::Arc<dyn Storage> = std::sync::Arc::new(MemoryStore::new());
        let registry = Registry::open(identity, access.clone(), secrets(), log_key(), RegistryOptions::default()).unwrap();
        let persons: Vec<PersonId> = (0..3).map(|i| register(&registry, &format!("r{i}"), i)).collect();
        // 3 stands for a look-up that found nobody.
        for (i, who) in looks.iter().enumerate() {
            registry.access().record_blocking(look_up(persons.get(*who).copied(), "KRA", &format!("p{i}"))).unwrap();
        }
        let reader = registry.access().reader();
        for (p, person) in persons.iter().enumerate() {
            let expected: Vec<String> =
                looks.iter().enumerate().rev().filter(|(_, w)| **w == p).map(|(i, _)| format!("p{i}")).collect();
            let mut paged = Vec::new();
            let mut before = None;
            loop {
                let got = reader.list(*person, before, 0, page).unwrap();
                prop_assert!(got.entries.len() <= page);
                paged.extend(purposes(&got));
                match got.next_before {
                    Some(next) => before = Some(next),
                    None => break,
                }
            }
            prop_assert_eq!(paged, expected);
        }
        let keys = access_keys(&registry);
        let origin = registry.access().origin().to_string();
        registry.close();
        prop_assert!(verify(&*access, &origin, &keys, &mut |_| ()).is_ok());
        // Flip one byte of one stored record or index entry.
        let mut entries: Vec<(Tree, Vec<u8>)> = Vec::new();
        for tree in [Tree::Log, Tree::AccessBySubject] {
            for (key, _) in access.range_from(tree, &[], usize::MAX).unwrap() {
                entries.push((tree, key));
            }
        }
        let (tree, key) = &entries[flip.0 % entries.len()];
        flip_stored(&*access, *tree, key, flip.1);
        prop_assert!(verify(&*access, &origin, &keys, &mut |_| ()).is_err());
    }
}

#[test]
fn a_data_directory_whose_access_log_went_missing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let amina = register(&registry, "a", 1);
    registry.access().record_blocking(look_up(Some(amina), "KRA", "p")).unwrap();
    registry.close();
    std::fs::remove_dir_all(dir.path().join(ACCESS_DIR)).unwrap();
    match Registry::open_dir(dir.path(), secrets(), log_key(), RegistryOptions::default()) {
        Err(OpenError::AccessMissing(path)) => assert!(path.ends_with(ACCESS_DIR), "{path}"),
        Err(other) => panic!("expected AccessMissing, got {other}"),
        Ok(_) => panic!("a lost access log must not be started afresh"),
    }
}

/// Removes the index entries and tree nodes of records `from` on (each key ends in its
/// record's sequence number), as a crash after those records' write would leave them.
/// Returns how many it removed.
fn cut_derived_entries(store: &dyn Storage, from: u64) -> usize {
    let mut batch = WriteBatch::default();
    for tree in [Tree::AccessBySubject, Tree::MerkleNodes] {
        for (key, _) in store.range_from(tree, &[], usize::MAX).unwrap() {
            if u64::from_be_bytes(key[key.len() - 8..].try_into().unwrap()) >= from {
                batch.remove(tree, key);
            }
        }
    }
    store.commit(&batch, true).unwrap();
    batch.len()
}

#[test]
fn entries_a_crash_cut_off_after_their_records_are_restored_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let amina = registered_and_looked_up(dir.path(), 8);
    {
        // A crash that kept the last batch's records but not what the appender writes
        // after them: the tree nodes and index entries of records 5, 6 and 7.
        let store = SledStore::open(&dir.path().join(ACCESS_DIR)).unwrap();
        assert!(cut_derived_entries(&store, 5) >= 4, "index entries and nodes were removed");
        let keys = [log_key().public()];
        assert!(verify(&store, "registry.huduma.go.ke/access", &keys, &mut |_| ()).is_err());
    }
    let registry = open(dir.path());
    let reader = registry.access().reader();
    assert_eq!(reader.list(amina, None, 0, 20).unwrap().entries.len(), 8);
    verify(&**reader.store(), registry.access().origin(), &access_keys(&registry), &mut |_| ()).unwrap();
    registry.close();
}

/// The crash's batch was written under a larger `access_max_batch` than the next
/// open's (and a shorter `tail_check`): the open still restores the whole batch, since
/// the store remembers the largest batch size it was opened with.
#[test]
fn entries_cut_off_from_a_batch_larger_than_the_next_opens_are_restored() {
    let dir = tempfile::tempdir().unwrap();
    let amina = registered_and_looked_up(dir.path(), 40);
    {
        // A crash that kept a 32-record batch's records (8..40) but none of what the
        // appender writes after them.
        let store = SledStore::open(&dir.path().join(ACCESS_DIR)).unwrap();
        assert!(cut_derived_entries(&store, 8) >= 32, "index entries and nodes were removed");
    }
    let options = RegistryOptions { access_max_batch: 16, tail_check: 4, ..RegistryOptions::default() };
    let registry = Registry::open_dir(dir.path(), secrets(), log_key(), options).expect("open with smaller batches");
    let reader = registry.access().reader();
    assert_eq!(reader.list(amina, None, 0, 50).unwrap().entries.len(), 40);
    verify(&**reader.store(), registry.access().origin(), &access_keys(&registry), &mut |_| ()).unwrap();
    registry.close();
}

#[test]
fn the_access_log_keeps_blocks_of_its_tree_and_a_forged_block_is_named() {
    use registry_core::merkle_store::block_key;
    let identity: std::sync::Arc<dyn Storage> = std::sync::Arc::new(MemoryStore::new());
    let access: std::sync::Arc<dyn Storage> = std::sync::Arc::new(MemoryStore::new());
    let registry = Registry::open(identity, access.clone(), secrets(), log_key(), RegistryOptions::default()).unwrap();
    let amina = register(&registry, "a", 1);
    // Two complete blocks of 64 records and two records of a third.
    for i in 0..130 {
        registry.access().record_blocking(look_up(Some(amina), "KRA", &format!("p{i}"))).unwrap();
    }
    let keys = access_keys(&registry);
    let origin = registry.access().origin().to_string();
    let reader = registry.access().reader();
    let root = huduma_log::merkle::root(&LeafSource(&reader), 130).unwrap();
    let proves_all = |reader: &registry_core::access::AccessReader| {
        (0..130).all(|index| {
            let proof = reader.inclusion_proof(index, 130).unwrap();
            let leaf = huduma_log::merkle::leaf_hash(&reader.record(index).unwrap().unwrap());
            huduma_log::merkle::verify_inclusion(index, 130, &leaf, &proof, &root)
        })
    };
    assert!(proves_all(&reader));
    for block in 0..2 {
        assert!(access.get(Tree::MerkleBlocks, &block_key(block)).unwrap().is_some(), "block {block} is stored");
    }
    assert!(access.get(Tree::MerkleBlocks, &block_key(2)).unwrap().is_none(), "the third block is unfinished");
    verify(&*access, &origin, &keys, &mut |_| ()).unwrap();
    // A block whose checksum holds but whose hashes are forged is named by its record.
    let mut batch = WriteBatch::default();
    let forged = registry_core::storage::checksum::seal(&[0x42; 126 * 32]);
    batch.put(Tree::MerkleBlocks, block_key(1).to_vec(), forged);
    access.commit(&batch, true).unwrap();
    match verify(&*access, &origin, &keys, &mut |_| ()) {
        Err(AccessVerifyError::Record { seq, reason }) => {
            assert_eq!(seq, 127, "the block's last record");
            assert!(reason.contains("merkle_blocks"), "{reason}");
        }
        other => panic!("a forged block was not named: {other:?}"),
    }
    // A log written before blocks were kept (none stored) still verifies and proves.
    let mut batch = WriteBatch::default();
    for block in 0..2 {
        batch.remove(Tree::MerkleBlocks, block_key(block).to_vec());
    }
    access.commit(&batch, true).unwrap();
    verify(&*access, &origin, &keys, &mut |_| ()).unwrap();
    assert!(proves_all(&reader));
    registry.close();
}

/// An access store that notes how many log records each write carries.
struct CommitsCounted {
    inner: MemoryStore,
    records_per_write: std::sync::Mutex<Vec<usize>>,
}

impl CommitsCounted {
    /// The record-bearing writes since the last call, by how many records each carried.
    fn take(&self) -> Vec<usize> {
        std::mem::take(&mut *self.records_per_write.lock().unwrap())
    }
}

impl Storage for CommitsCounted {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, registry_core::storage::StorageError> {
        self.inner.get(tree, key)
    }
    registry_core::forward_scans!(inner);
    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), registry_core::storage::StorageError> {
        let records = batch.writes.get(&Tree::Log).map_or(0, |log| log.len());
        if records > 0 {
            self.records_per_write.lock().unwrap().push(records);
        }
        self.inner.commit(batch, durable)
    }
    fn flush(&self) -> Result<(), registry_core::storage::StorageError> {
        self.inner.flush()
    }
}

/// Look-ups recorded together (a duplicate search's candidates) go in one write, not one
/// each; more than a batch holds go in batches of at most `access_max_batch`; each gets
/// its own sequence number, in order, and the log verifies.
#[test]
fn look_ups_recorded_together_share_a_write() {
    let identity: std::sync::Arc<dyn Storage> = std::sync::Arc::new(MemoryStore::new());
    let counted =
        std::sync::Arc::new(CommitsCounted { inner: MemoryStore::new(), records_per_write: Default::default() });
    let access: std::sync::Arc<dyn Storage> = counted.clone();
    let options = RegistryOptions { access_max_batch: 8, ..RegistryOptions::default() };
    let registry = Registry::open(identity, access, secrets(), log_key(), options).unwrap();
    let amina = register(&registry, "a", 1);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let looks = |n: usize| (0..n).map(|i| look_up(Some(amina), "KRA", &format!("p{i}"))).collect::<Vec<_>>();

    counted.take();
    for event in looks(5) {
        runtime.block_on(registry.access().record(event)).unwrap();
    }
    assert_eq!(counted.take(), [1, 1, 1, 1, 1], "one by one, a write each");
    let together = runtime.block_on(registry.access().record_all(looks(5))).unwrap();
    assert_eq!(counted.take(), [5], "together, one write");
    assert_eq!(together, (5..10).collect::<Vec<u64>>());
    let many = runtime.block_on(registry.access().record_all(looks(19))).unwrap();
    assert_eq!(counted.take(), [8, 8, 3], "no write holds more than a batch");
    assert_eq!(many, (10..29).collect::<Vec<u64>>());
    assert!(runtime.block_on(registry.access().record_all(Vec::new())).unwrap().is_empty());

    let reader = registry.access().reader();
    assert_eq!(reader.list(amina, None, 0, 100).unwrap().entries.len(), 29);
    verify(&**reader.store(), registry.access().origin(), &access_keys(&registry), &mut |_| ()).unwrap();
    registry.close();
}
