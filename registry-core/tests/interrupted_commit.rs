//! A crash part-way through a staged commit: the batch's intent and any prefix of its
//! writes reach the disk, and the next opening undoes the batch whole (none of its
//! commands was acknowledged) and leaves the store exactly as it was before it, with
//! no rebuild; an earlier version's intent is undone and the projections rebuilt.

mod common;

use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use registry_core::HudumaNumber;
use registry_core::command::{Command, Submission};
use registry_core::commit_intent::CommitIntent;
use registry_core::query::ResolvedStatus;
use registry_core::registry::{Registry, RegistryOptions};
use registry_core::storage::sled_store::SledStore;
use registry_core::storage::{INTENT_KEY, KeyValue, LEGACY_INTENT_KEY, Storage, Tree, WriteBatch};
use registry_core::verify::VerifyError;

fn options() -> RegistryOptions {
    RegistryOptions { origin: ORIGIN.into(), ..RegistryOptions::default() }
}

fn open(dir: &std::path::Path) -> Registry {
    Registry::open_dir(dir, secrets(), log_key(), options()).expect("open registry")
}

fn register(i: usize) -> Submission {
    submission(format!("new-{i}"), Command::RegisterPerson { demographics: person(100 + i) })
}

/// The first `count` writes of `batch`, in the order a staged commit makes them.
fn prefix(batch: &WriteBatch, count: usize) -> WriteBatch {
    let mut part = WriteBatch::default();
    let writes = batch.writes.iter().flat_map(|(tree, w)| w.iter().map(move |(k, v)| (*tree, k, v)));
    for (tree, key, value) in writes.take(count) {
        match value {
            Some(value) => part.put(tree, key.clone(), value.clone()),
            None => part.remove(tree, key.clone()),
        }
    }
    part
}

/// What a staged commit had written when a crash came: `intent` under `key`, then the
/// first `cut` writes of `batch`; never the intent's removal.
fn leave_cut_short(store: &dyn Storage, key: (Tree, &[u8]), intent: &CommitIntent, batch: &WriteBatch, cut: usize) {
    let mut stored = WriteBatch::default();
    stored.put(key.0, key.1.to_vec(), intent.encode());
    store.commit(&stored, true).unwrap();
    store.write_in_order(&prefix(batch, cut), true).unwrap();
}

/// Every entry of every tree, as stored.
fn dump(store: &dyn Storage) -> Vec<(Tree, Vec<KeyValue>)> {
    Tree::ALL.into_iter().map(|tree| (tree, store.scan_prefix(tree, b"").unwrap())).collect()
}

/// The trees that differ between two dumps.
fn differing(a: &[(Tree, Vec<KeyValue>)], b: &[(Tree, Vec<KeyValue>)]) -> Vec<&'static str> {
    a.iter().zip(b).filter(|(x, y)| x != y).map(|((tree, _), _)| tree.name()).collect()
}

/// The batch of the tests below, built over `store` (after `acknowledged`): four
/// registrations, an erasure and a link.
fn cut_batch(store: &Arc<dyn Storage>, numbers: &[HudumaNumber]) -> registry_core::writer::Built {
    let mut writer = writer_over(Arc::clone(store));
    let mut batch: Vec<Submission> = (0..4).map(register).collect();
    batch.push(submission(
        "erase",
        Command::ErasePersonalData { number: numbers[1], legal_basis: "DPA 2019 s.40 request".into() },
    ));
    batch.push(submission(
        "link",
        Command::LinkAgencyRecord { number: numbers[2], agency: "NHIF".into(), record_id: "B7".into() },
    ));
    let built = writer.build(None, &batch);
    assert!(built.results.iter().all(Result::is_ok), "{:?}", built.results);
    built
}

/// Registers three persons and links the first, acknowledged; returns their numbers
/// and the log's size.
fn acknowledged(dir: &std::path::Path) -> (Vec<HudumaNumber>, u64) {
    let registry = open(dir);
    let numbers: Vec<HudumaNumber> = (0..3)
        .map(|i| {
            let s = submission(format!("old-{i}"), Command::RegisterPerson { demographics: person(i) });
            registry.submit_blocking(s).unwrap().number.unwrap()
        })
        .collect();
    registry
        .submit_blocking(submission(
            "old-link",
            Command::LinkAgencyRecord { number: numbers[0], agency: "KRA".into(), record_id: "A1".into() },
        ))
        .unwrap();
    let size = registry.reader().log_size().unwrap();
    registry.close();
    (numbers, size)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever prefix of the batch reached the disk, the reopened registry holds
    /// exactly what was acknowledged: the batch's records are gone, the person it
    /// erased can still be read, its request ids are free again (and its persons can
    /// enrol without being refused as duplicates of themselves), and the store
    /// verifies with its projections.
    #[test]
    fn a_batch_cut_short_by_a_crash_is_undone_whole_at_the_next_opening(cut in any::<prop::sample::Index>()) {
        let dir = tempfile::tempdir().unwrap();
        let (numbers, size) = acknowledged(dir.path());
        let before;
        {
            let store: Arc<dyn Storage> = Arc::new(SledStore::open(dir.path()).unwrap());
            before = dump(&*store);
            let built = cut_batch(&store, &numbers);
            // Any prefix, from none of the writes to all of them.
            let cut = cut.index(built.batch.len() + 1);
            let intent = CommitIntent::of(&*store, built.start.next_seq, &built.batch).unwrap();
            leave_cut_short(&*store, INTENT_KEY, &intent, &built.batch, cut);
            // An operator's verify before the registry starts again says what happened.
            let refused = verify_whole(&*store);
            prop_assert!(
                matches!(refused, Err(VerifyError::InterruptedCommit { first_seq }) if first_seq == size),
                "{refused:?}"
            );
        }
        // The opening undoes the batch from its intent alone, without a rebuild: every
        // tree as it was.
        let ((), log) = logged(|| open(dir.path()).close());
        prop_assert!(log.contains("undone") && !log.contains("rebuilding"), "{log}");
        {
            let after = dump(&SledStore::open(dir.path()).unwrap());
            prop_assert!(after == before, "trees differ after the undo: {:?}", differing(&before, &after));
        }
        let registry = open(dir.path());
        let reader = registry.reader();
        prop_assert_eq!(reader.log_size().unwrap(), size);
        prop_assert_eq!(registry.store().get(INTENT_KEY.0, INTENT_KEY.1).unwrap(), None);
        let kept = reader.resolve_number(numbers[1]).unwrap().unwrap();
        prop_assert_eq!(kept.status, ResolvedStatus::Active);
        prop_assert_eq!(kept.demographics, Some(person(1)));
        prop_assert!(reader.resolve_agency_record("NHIF", "B7").unwrap().is_none());
        prop_assert_eq!(reader.resolve_agency_record("KRA", "A1").unwrap().unwrap().current_number, numbers[0]);
        let report = verify_whole(&**registry.store())
            .unwrap();
        prop_assert!(report.projections_checked);
        // No keyring entry of the batch's persons is left behind.
        for seq in size..size + 4 {
            prop_assert!(registry.store().get(Tree::Keyring, &seq.to_be_bytes()).unwrap().is_none());
        }
        // The batch's commands, sent again, are carried out afresh.
        for i in 0..4 {
            let outcome = registry.submit_blocking(register(i)).unwrap();
            prop_assert_eq!(outcome.receipt.index, size + i as u64);
        }
        let erased = registry
            .submit_blocking(submission("erase", Command::ErasePersonalData {
                number: numbers[1],
                legal_basis: "DPA 2019 s.40 request".into(),
            }))
            .unwrap();
        prop_assert_eq!(erased.receipt.index, size + 4);
        registry.close();
    }
}

/// A store an earlier version left after a crash mid-commit (its intent under the old
/// key, restoring the request index and the keyring only) still opens as it did then:
/// the batch undone, the projections rebuilt, every tree as before the batch.
#[test]
fn an_earlier_versions_interrupted_commit_is_undone_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (numbers, size) = acknowledged(dir.path());
    let before;
    {
        let store: Arc<dyn Storage> = Arc::new(SledStore::open(dir.path()).unwrap());
        before = dump(&*store);
        let built = cut_batch(&store, &numbers);
        let mut intent = CommitIntent::of(&*store, built.start.next_seq, &built.batch).unwrap();
        intent.before.retain(|b| b.tree == Tree::Requests as u8 || b.tree == Tree::Keyring as u8);
        intent.exact = false;
        leave_cut_short(&*store, LEGACY_INTENT_KEY, &intent, &built.batch, built.batch.len() / 2);
        let refused = verify_whole(&*store);
        assert!(
            matches!(refused, Err(VerifyError::InterruptedCommit { first_seq }) if first_seq == size),
            "{refused:?}"
        );
    }
    let (registry, log) = logged(|| open(dir.path()));
    assert!(
        log.contains("earlier version's intent") && log.contains("rebuilding the projections before opening"),
        "{log}"
    );
    assert_eq!(registry.reader().log_size().unwrap(), size);
    registry.close();
    let store = SledStore::open(dir.path()).unwrap();
    let after = dump(&store);
    assert!(after == before, "trees differ after the undo and rebuild: {:?}", differing(&before, &after));
    verify_whole(&store).unwrap();
}
