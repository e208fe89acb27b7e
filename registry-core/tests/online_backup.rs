//! Online backups: taken while registrations and look-ups go on, a backup is each log's
//! signed history up to a checkpoint, opens as a whole registry (projections folded,
//! requests answered as before), verifies, and holds nothing past its checkpoint.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use registry_core::access::{AccessEvent, AccessOutcome};
use registry_core::command::{Command, CommandError, Outcome};
use registry_core::online_backup::{self, BackupProgress, LogName, OnlineBackupError};
use registry_core::query::ResolvedStatus;
use registry_core::registry::{OpenError, Registry, RegistryOptions};
use registry_core::replay::FoldSpace;
use registry_core::storage::sled_store::SledStore;
use registry_core::storage::{Storage, Tree, WriteBatch, checksum};

fn options() -> RegistryOptions {
    RegistryOptions { checkpoint_interval: std::time::Duration::from_millis(5), ..RegistryOptions::default() }
}

fn open(dir: &std::path::Path) -> Registry {
    Registry::open_dir(dir, secrets(), log_key(), options()).expect("open registry")
}

fn look_up(i: usize) -> AccessEvent {
    registry_core::synthetic::look_up(None, "KRA", &format!("look-up {i}"))
}

/// Waits until both logs' newest checkpoints cover what is durable.
fn wait_for_checkpoints(registry: &Registry) {
    for _ in 0..2000 {
        let size = *registry.durable_size().borrow();
        let signed = registry.reader().latest_checkpoint().unwrap().map_or(0, |(s, _)| s);
        let access = registry.access().reader();
        let access_size = access
            .store()
            .last(Tree::Log)
            .unwrap()
            .map_or(0, |(k, _)| u64::from_be_bytes(k.as_slice().try_into().unwrap()) + 1);
        let access_signed = access.latest_checkpoint().unwrap().map_or(0, |(s, _)| s);
        if signed == size && access_signed == access_size {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    panic!("the checkpoints did not catch up with the logs");
}

fn log_records(store: &dyn Storage) -> Vec<Vec<u8>> {
    store.range_from(Tree::Log, &[], usize::MAX).unwrap().into_iter().map(|(_, v)| v).collect()
}

#[test]
fn a_backup_taken_under_load_is_the_signed_history_to_a_checkpoint_and_opens_whole() {
    let live_dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(open(live_dir.path()));
    let mut answered: Vec<(String, Command, Outcome)> = Vec::new();
    for i in 0..120 {
        let command = Command::RegisterPerson { demographics: person(i) };
        let outcome = registry.submit_blocking(submission(format!("r-{i}"), command.clone())).unwrap();
        answered.push((format!("r-{i}"), command, outcome));
    }
    let erased = answered[3].2.number.unwrap();
    let erase = Command::ErasePersonalData { number: erased, legal_basis: "DPA 2019 s.40".into() };
    registry.submit_blocking(submission("erase-3", erase)).unwrap();
    for i in 0..30 {
        registry.access().record_blocking(look_up(i)).unwrap();
    }
    wait_for_checkpoints(&registry);

    // Registrations and look-ups go on while the backup is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (registry, stop) = (Arc::clone(&registry), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut late = Vec::new();
            let mut i = 1000;
            while !stop.load(Ordering::Relaxed) || late.len() < 20 {
                let command = Command::RegisterPerson { demographics: person(i) };
                let outcome = registry.submit_blocking(submission(format!("late-{i}"), command.clone())).unwrap();
                registry.access().record_blocking(look_up(i)).unwrap();
                late.push((format!("late-{i}"), command, outcome));
                i += 1;
            }
            late
        })
    };
    let backup_dir = tempfile::tempdir().unwrap();
    let out = backup_dir.path().join("nightly");
    let mut seen = Vec::new();
    let taken =
        online_backup::take(&registry, &out, &FoldSpace::IN_MEMORY, &AtomicBool::new(false), &mut |p| seen.push(p))
            .unwrap();
    stop.store(true, Ordering::Relaxed);
    answered.extend(load.join().unwrap());
    let live_records = log_records(&**registry.store());
    let live_access = log_records(&**registry.access().reader().store());
    assert!(taken.records >= 122 && taken.records <= live_records.len() as u64, "{taken:?}");
    assert!(taken.access_records >= 30 && taken.access_records <= live_access.len() as u64, "{taken:?}");
    assert!(answered.iter().any(|(_, _, o)| o.receipt.index >= taken.records), "the load went on past the backup");
    for log in [LogName::Identity, LogName::Access] {
        let total = if log == LogName::Identity { taken.records } else { taken.access_records };
        assert!(seen.contains(&BackupProgress::Copying { log, done: total, total }), "{log:?} reported whole");
    }
    assert!(seen.iter().any(|p| matches!(p, BackupProgress::Folding(_))), "the fold reported");
    Arc::into_inner(registry).expect("the load thread has ended").close();

    let restored = open(&out);
    // The copy holds the first records of each log, byte for byte, and nothing after.
    let copied = log_records(&**restored.store());
    assert_eq!(copied.len() as u64, taken.records);
    assert_eq!(copied[..], live_records[..copied.len()]);
    let copied_access = log_records(&**restored.access().reader().store());
    assert_eq!(copied_access[..], live_access[..taken.access_records as usize]);
    verify_whole(&**restored.store()).expect("the restored store verifies, projections included");
    let keys: Vec<_> = restored.reader().log_keys().unwrap().into_iter().map(|(_, k)| k).collect();
    registry_core::access::verify::verify(
        &**restored.access().reader().store(),
        restored.access().origin(),
        &keys,
        &mut |_| (),
    )
    .expect("the restored access log verifies");

    // What was answered within the copy is answered the same; what came after is absent.
    let (within, after): (Vec<_>, Vec<_>) = answered.iter().partition(|(_, _, o)| o.receipt.index < taken.records);
    assert_eq!(taken.keys, within.len() as u64, "a key for each person the copy registers");
    for (id, command, outcome) in &within {
        assert_eq!(&restored.submit_blocking(submission(id.clone(), command.clone())).unwrap(), outcome, "{id}");
    }
    for (_, _, outcome) in &after {
        assert!(restored.reader().resolve_number(outcome.number.unwrap()).unwrap().is_none());
    }
    assert_eq!(restored.reader().resolve_number(erased).unwrap().unwrap().demographics, None);
    let kept = restored.reader().resolve_number(answered[4].2.number.unwrap()).unwrap().unwrap();
    assert_eq!(kept.status, ResolvedStatus::Active);
    assert_eq!(kept.demographics.as_ref(), Some(&person(4)));
    // The restored registry goes on from its copy: a retried late request is new here.
    if let Some((id, command, _)) = after.first() {
        let again = restored.submit_blocking(submission(id.clone(), command.clone())).unwrap();
        assert_eq!(again.receipt.index, taken.records);
    }
    restored.close();
}

#[test]
fn a_backup_is_written_only_into_a_new_or_empty_directory() {
    let live_dir = tempfile::tempdir().unwrap();
    let registry = open(live_dir.path());
    registry.submit_blocking(submission("r", Command::RegisterPerson { demographics: person(1) })).unwrap();
    registry.access().record_blocking(look_up(1)).unwrap();
    wait_for_checkpoints(&registry);
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("keep.txt"), b"someone's file").unwrap();
    match online_backup::take(&registry, target.path(), &FoldSpace::IN_MEMORY, &AtomicBool::new(false), &mut |_| ()) {
        Err(OnlineBackupError::NotEmpty(dir)) => assert_eq!(dir, target.path().display().to_string()),
        other => panic!("expected NotEmpty, got {other:?}"),
    }
    assert_eq!(std::fs::read(target.path().join("keep.txt")).unwrap(), b"someone's file");
    registry.close();
}

#[test]
fn a_copy_a_backup_left_unfinished_is_refused_when_opened() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SledStore::open(dir.path()).unwrap();
        let mut batch = WriteBatch::default();
        batch.put(Tree::Settings, online_backup::INCOMPLETE_MARK.to_vec(), checksum::seal(&[1]));
        store.commit(&batch, true).unwrap();
    }
    match Registry::open_dir(dir.path(), secrets(), log_key(), options()) {
        Err(OpenError::IncompleteBackup(at)) => assert_eq!(at, dir.path().display().to_string()),
        Err(other) => panic!("expected IncompleteBackup, got {other}"),
        Ok(_) => panic!("an unfinished backup was opened as a store"),
    }
}

#[test]
fn a_cancelled_backup_stops_even_in_its_fold_and_leaves_nothing() {
    let live_dir = tempfile::tempdir().unwrap();
    let registry = open(live_dir.path());
    for i in 0..20 {
        registry
            .submit_blocking(submission(format!("r-{i}"), Command::RegisterPerson { demographics: person(i) }))
            .unwrap();
    }
    wait_for_checkpoints(&registry);
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("cancelled");
    let cancel = AtomicBool::new(false);
    let mut stages = Vec::new();
    let cancelled = online_backup::take(&registry, &out, &FoldSpace::IN_MEMORY, &cancel, &mut |p| {
        if matches!(p, BackupProgress::Folding(_)) {
            cancel.store(true, Ordering::Relaxed);
        }
        stages.push(p);
    });
    assert!(matches!(cancelled, Err(OnlineBackupError::Cancelled)), "{cancelled:?}");
    assert!(stages.iter().any(|p| matches!(p, BackupProgress::Folding(_))));
    assert!(!out.exists(), "the copy begun is removed");
    // The registry serves on, and a later backup is whole.
    registry.submit_blocking(submission("after", Command::RegisterPerson { demographics: person(99) })).unwrap();
    wait_for_checkpoints(&registry);
    let taken =
        online_backup::take(&registry, &out, &FoldSpace::IN_MEMORY, &AtomicBool::new(false), &mut |_| ()).unwrap();
    assert_eq!(taken.keys, 21);
    registry.close();
}

/// Takes a backup of `registry` into a new directory under `parent` named `name`.
fn backed_up(registry: &Registry, parent: &std::path::Path, name: &str) -> std::path::PathBuf {
    let out = parent.join(name);
    online_backup::take(registry, &out, &FoldSpace::IN_MEMORY, &AtomicBool::new(false), &mut |_| ()).unwrap();
    out
}

/// A copy of the export at `from`, at `to`, with a bit of its last record's signature
/// flipped; returns `to`.
fn altered_last_signature(from: &std::path::Path, to: &std::path::Path) -> std::path::PathBuf {
    let mut bytes = std::fs::read(from).unwrap();
    let at = bytes.len() - 10; // inside the signature of the last record
    bytes[at] ^= 1;
    std::fs::write(to, &bytes).unwrap();
    to.to_path_buf()
}

fn exported(store: &dyn Storage, path: &std::path::Path) {
    let mut out = std::fs::File::create(path).unwrap();
    registry_core::log_export::export_log(store, &mut out).unwrap();
}

#[test]
fn a_restore_takes_back_the_lost_tail_from_an_export_and_issues_no_number_twice() {
    use registry_core::tail_import::{TailImportError, import_tail};
    let live_dir = tempfile::tempdir().unwrap();
    let registry = open(live_dir.path());
    let mut numbers = Vec::new();
    for i in 0..10 {
        let command = Command::RegisterPerson { demographics: person(i) };
        numbers.push(registry.submit_blocking(submission(format!("r-{i}"), command)).unwrap().number.unwrap());
    }
    wait_for_checkpoints(&registry);
    let parent = tempfile::tempdir().unwrap();
    let (restored_dir, forked_dir) =
        (backed_up(&registry, parent.path(), "a"), backed_up(&registry, parent.path(), "b"));
    // After the backup: five more persons, a correction and a link of persons it holds.
    let mut tail = Vec::new();
    for i in 10..15 {
        let command = Command::RegisterPerson { demographics: person(i) };
        tail.push(registry.submit_blocking(submission(format!("r-{i}"), command)).unwrap().number.unwrap());
    }
    let corrected = person(77);
    registry
        .submit_blocking(submission(
            "c-1",
            Command::CorrectDemographics { number: numbers[1], demographics: corrected.clone() },
        ))
        .unwrap();
    let link = Command::LinkAgencyRecord { number: numbers[2], agency: "KRA".into(), record_id: "A000000002Z".into() };
    registry.submit_blocking(submission("l-1", link)).unwrap();
    let live_log = log_records(&**registry.store());
    let export = parent.path().join("log.bin");
    exported(&**registry.store(), &export);
    registry.close();

    // Without the tail, the restored registry issues the numbers it lost again.
    let forked = open(&forked_dir);
    let reissued = forked.submit_blocking(submission("new", Command::RegisterPerson { demographics: person(50) }));
    assert_eq!(reissued.unwrap().number, Some(tail[0]), "the hazard this import removes");
    forked.close();

    // An export of another log, or one altered past the backup, changes nothing.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Registry::open_dir(
        other_dir.path(),
        registry_core::secrets::Secrets::from_master([9; 32]),
        registry_core::keys::LogKey::from_seed([9; 32]),
        options(),
    )
    .unwrap();
    for i in 0..12 {
        other
            .submit_blocking(submission(format!("o-{i}"), Command::RegisterPerson { demographics: person(i) }))
            .unwrap();
    }
    let foreign = parent.path().join("other.bin");
    exported(&**other.store(), &foreign);
    other.close();
    let altered = altered_last_signature(&export, &parent.path().join("altered.bin"));
    {
        let store = SledStore::open(&restored_dir).unwrap();
        let before = log_records(&store).len() as u64;
        match import_tail(&store, &foreign, None, &mut |_| ()) {
            Err(TailImportError::NotThisLog { seq }) => assert_eq!(seq, before - 1),
            other => panic!("another log's export: {other:?}"),
        }
        match import_tail(&store, &altered, Some(log_key().public()), &mut |_| ()) {
            Err(TailImportError::Verify(e)) => assert_eq!(e.seq(), Some(live_log.len() as u64 - 1), "{e}"),
            other => panic!("an altered export: {other:?}"),
        }
        assert_eq!(log_records(&store).len() as u64, before, "nothing was written");

        let imported = import_tail(&store, &export, Some(log_key().public()), &mut |_| ()).unwrap();
        assert_eq!((imported.from, imported.to, imported.keys_lost), (before, live_log.len() as u64, 5));
        // Again: nothing left to take back.
        let again = import_tail(&store, &export, Some(log_key().public()), &mut |_| ()).unwrap();
        assert_eq!((again.from, again.to, again.keys_lost), (live_log.len() as u64, live_log.len() as u64, 0));
    }

    let restored = open(&restored_dir);
    assert_eq!(log_records(&**restored.store()), live_log, "the published history, whole");
    verify_whole(&**restored.store()).expect("verifies, projections folded from the tail");
    for number in &tail {
        let person = restored.reader().resolve_number(*number).unwrap().expect("the tail's numbers stay theirs");
        assert_eq!(person.status, ResolvedStatus::Active);
        assert_eq!(person.demographics, None, "their keys were lost with the data directory");
        assert!(person.personal_data_lost, "and they say so, unlike a withholding policy");
    }
    let fixed = restored.reader().resolve_number(numbers[1]).unwrap().unwrap();
    assert_eq!(fixed.demographics, Some(corrected), "a correction in the tail, of a person the backup holds");
    let linked = restored.reader().resolve_number(numbers[2]).unwrap().unwrap();
    assert_eq!(linked.agency_records.len(), 1);
    let next = restored.submit_blocking(submission("new", Command::RegisterPerson { demographics: person(50) }));
    let next = next.unwrap().number.unwrap();
    assert!(!numbers.contains(&next) && !tail.contains(&next), "no number issued twice");
    // Nothing can be sealed for a person of the tail until their demographics are
    // corrected, which renews their key: a death is refused by name, not an internal error.
    let size = log_records(&**restored.store()).len();
    let death = |number, id: &str| {
        let command = Command::RecordDeath { number, date_of_death: "2026-01-02".into() };
        restored.submit_blocking(submission(id, command))
    };
    match death(tail[1], "d-1") {
        Err(e @ CommandError::PersonalDataKeyLost { .. }) => {
            assert!(e.to_string().contains("record a death: the data key"), "{e}");
            assert!(e.to_string().contains("correct their demographics first"), "{e}");
            assert_eq!(e.class(), registry_core::command::ErrorClass::FailedPrecondition);
        }
        other => panic!("a death for a person whose key was lost: {other:?}"),
    }
    assert_eq!(log_records(&**restored.store()).len(), size, "the refusal wrote nothing");
    let enrolled_again = person(10);
    let correction = Command::CorrectDemographics { number: tail[0], demographics: enrolled_again.clone() };
    restored.submit_blocking(submission("c-t", correction)).expect("their data enrolled again");
    let resolved = restored.reader().resolve_number(tail[0]).unwrap().unwrap();
    assert_eq!(resolved.demographics, Some(enrolled_again.clone()), "sealed under the renewed key");
    assert!(!resolved.personal_data_lost);
    // An erased person's data is gone on purpose: not said to be lost.
    let erase = Command::ErasePersonalData { number: numbers[3], legal_basis: "court order 12/2026".into() };
    restored.submit_blocking(submission("e-3", erase)).unwrap();
    let erased = restored.reader().resolve_number(numbers[3]).unwrap().unwrap();
    assert_eq!((erased.status, erased.personal_data_lost), (ResolvedStatus::Erased, false));
    assert!(!restored.reader().resolve_number(numbers[4]).unwrap().unwrap().personal_data_lost);
    // Searchable again: registering them once more is caught as a duplicate.
    let again = Command::RegisterPerson { demographics: enrolled_again.clone() };
    match restored.submit_blocking(submission("r-again", again)) {
        Err(CommandError::PossibleDuplicate { candidates }) => {
            assert!(candidates.iter().any(|(n, _)| *n == tail[0]), "{candidates:?}")
        }
        other => panic!("the person enrolled again is found by the duplicate search: {other:?}"),
    }
    death(tail[0], "d-0").expect("a death recorded once their key is renewed");
    let resolved = restored.reader().resolve_number(tail[0]).unwrap().unwrap();
    assert_eq!((resolved.status, resolved.date_of_death.as_deref()), (ResolvedStatus::Deceased, Some("2026-01-02")));
    verify_whole(&**restored.store())
        .expect("the fold from the log, the renewed key in force from its record, as live");
    let link = Command::LinkAgencyRecord { number: tail[2], agency: "NHIF".into(), record_id: "N-77".into() };
    restored.submit_blocking(submission("l-t", link)).expect("a tail person's record links");
    restored.close();
    let reopened = open(&restored_dir);
    let resolved = reopened.reader().resolve_number(tail[0]).unwrap().unwrap();
    assert_eq!(resolved.demographics, Some(enrolled_again), "kept across a restart");
    assert_eq!(reopened.reader().resolve_number(tail[1]).unwrap().unwrap().demographics, None);
    reopened.close();
}

#[test]
fn an_export_that_changes_while_it_is_imported_adds_only_what_was_verified() {
    use registry_core::replay::{Reached, Stage};
    use registry_core::tail_import::{TailImportError, import_tail};
    let live_dir = tempfile::tempdir().unwrap();
    let registry = open(live_dir.path());
    let register = |i: usize| {
        let command = Command::RegisterPerson { demographics: person(i) };
        registry.submit_blocking(submission(format!("r-{i}"), command)).unwrap();
    };
    (0..3).for_each(register);
    wait_for_checkpoints(&registry);
    let parent = tempfile::tempdir().unwrap();
    let restored_dir = backed_up(&registry, parent.path(), "a");
    (3..6).for_each(register);
    let export = parent.path().join("log.bin");
    exported(&**registry.store(), &export);
    let verified = log_records(&**registry.store());
    (6..9).for_each(register);
    let longer = parent.path().join("longer.bin");
    exported(&**registry.store(), &longer);
    registry.close();
    let altered = altered_last_signature(&export, &parent.path().join("altered.bin"));

    // Each time, the file at `export` is replaced once the first pass has verified it.
    let import_swapping = |store: &SledStore, replacement: &std::path::Path| {
        let in_place = parent.path().join("in-place.bin");
        std::fs::copy(&export, &in_place).unwrap();
        let mut swapped = false;
        import_tail(store, &in_place, Some(log_key().public()), &mut |reached: Reached| {
            if !swapped && reached.stage == Stage::Log && reached.total > 0 && reached.done == reached.total {
                std::fs::copy(replacement, parent.path().join("next.bin")).unwrap();
                std::fs::rename(parent.path().join("next.bin"), &in_place).unwrap();
                swapped = true;
            }
        })
    };
    let store = SledStore::open(&restored_dir).unwrap();
    let before = log_records(&store);
    match import_swapping(&store, &altered) {
        Err(e @ TailImportError::ExportChanged { appended: 0, .. }) => {
            assert!(e.to_string().contains("in-place.bin changed while it was imported"), "{e}")
        }
        other => panic!("an export altered after it was verified: {other:?}"),
    }
    assert_eq!(log_records(&store), before, "nothing unverified was appended");
    // The log's export grown in the meantime: what was verified, and no more.
    let imported = import_swapping(&store, &longer).unwrap();
    assert_eq!((imported.from, imported.to), (before.len() as u64, verified.len() as u64));
    assert_eq!(log_records(&store), verified);
}

/// A store that knows whether everything committed to it has been flushed.
struct FlushWatched {
    inner: SledStore,
    unflushed: AtomicBool,
}

impl Storage for FlushWatched {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, registry_core::storage::StorageError> {
        self.inner.get(tree, key)
    }
    registry_core::forward_scans!(inner);
    fn commit(&self, batch: &WriteBatch, durable: bool) -> Result<(), registry_core::storage::StorageError> {
        self.inner.commit(batch, durable)?;
        self.unflushed.store(!durable, Ordering::SeqCst);
        Ok(())
    }
    fn flush(&self) -> Result<(), registry_core::storage::StorageError> {
        self.inner.flush()?;
        self.unflushed.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// An export that changes after a chunk of its tail was appended: the error says how
/// many records were appended, and by then they are durable; a second run appends the
/// rest and nothing twice.
#[test]
fn an_export_that_changes_part_way_through_its_tail_leaves_what_it_appended_durable() {
    use registry_core::replay::{CHUNK, Reached};
    use registry_core::tail_import::{TailImportError, import_tail};
    use std::io::Write;
    let live_dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(open(live_dir.path()));
    let register = |i: usize| submission(format!("r-{i}"), Command::RegisterPerson { demographics: person(i) });
    registry.submit_blocking(register(0)).unwrap();
    wait_for_checkpoints(&registry);
    let parent = tempfile::tempdir().unwrap();
    let restored_dir = backed_up(&registry, parent.path(), "a");
    // More than a chunk of tail, submitted concurrently so it is group-committed.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let tail = (1..CHUNK + 50).map(|i| {
            let registry = Arc::clone(&registry);
            tokio::spawn(async move { registry.submit(register(i)).await.map(|_| ()) })
        });
        for task in tail.collect::<Vec<_>>() {
            task.await.unwrap().unwrap();
        }
    });
    let export = parent.path().join("log.bin");
    exported(&**registry.store(), &export);
    let whole = log_records(&**registry.store());
    Arc::into_inner(registry).expect("the submitters are done").close();
    let altered = std::fs::read(altered_last_signature(&export, &parent.path().join("altered.bin"))).unwrap();

    let store = FlushWatched { inner: SledStore::open(&restored_dir).unwrap(), unflushed: AtomicBool::new(false) };
    let before = log_records(&store).len();
    let in_place = parent.path().join("in-place.bin");
    std::fs::copy(&export, &in_place).unwrap();
    // Overwritten in place with the altered export (its last record differs) once the
    // first chunk of the tail is appended (the second pass, which is reading it, is the
    // one that reports a part done).
    let mut swapped = false;
    let outcome = import_tail(&store, &in_place, Some(log_key().public()), &mut |reached: Reached| {
        if !swapped && reached.done > 0 && reached.done < reached.total {
            std::fs::OpenOptions::new().write(true).open(&in_place).unwrap().write_all(&altered).unwrap();
            swapped = true;
        }
    });
    assert!(swapped, "the tail was appended in more than one chunk");
    match outcome {
        Err(TailImportError::ExportChanged { appended, .. }) => assert_eq!(appended, CHUNK as u64),
        other => panic!("an export altered part-way through its tail: {other:?}"),
    }
    assert!(!store.unflushed.load(Ordering::SeqCst), "the chunk appended is durable before the error says so");
    assert_eq!(log_records(&store), whole[..before + CHUNK], "the verified chunk, and nothing after it");
    // Run again on the export as it was: the rest, nothing twice.
    let imported = import_tail(&store, &export, Some(log_key().public()), &mut |_| ()).unwrap();
    assert_eq!((imported.from, imported.to), ((before + CHUNK) as u64, whole.len() as u64));
    assert!(!store.unflushed.load(Ordering::SeqCst));
    assert_eq!(log_records(&store), whole);
}

#[test]
fn look_ups_sealed_under_a_key_a_restore_lost_stay_listed_unread_once_the_key_is_renewed() {
    use registry_core::tail_import::{import_access_tail, import_tail};
    let live_dir = tempfile::tempdir().unwrap();
    let registry = open(live_dir.path());
    registry.submit_blocking(submission("r-0", Command::RegisterPerson { demographics: person(0) })).unwrap();
    wait_for_checkpoints(&registry);
    let parent = tempfile::tempdir().unwrap();
    let restored_dir = backed_up(&registry, parent.path(), "a");
    // After the backup: a person registered and looked up twice (sealed under their key).
    let outcome = registry.submit_blocking(submission("r-1", Command::RegisterPerson { demographics: person(1) }));
    let number = outcome.unwrap().number.unwrap();
    let lost = registry.reader().resolve_number(number).unwrap().unwrap().person;
    let found = |i: usize| {
        let mut event = look_up(i);
        event.person = Some(lost);
        event.body.outcome = AccessOutcome::Found(ResolvedStatus::Active);
        event
    };
    for i in 0..2 {
        registry.access().record_blocking(found(i)).unwrap();
    }
    wait_for_checkpoints(&registry);
    let (export, access_export) = (parent.path().join("log.bin"), parent.path().join("access.bin"));
    exported(&**registry.store(), &export);
    exported(&**registry.access().reader().store(), &access_export);
    let (_, note) = registry.access().reader().latest_checkpoint().unwrap().unwrap();
    let origin = registry.access().origin().to_owned();
    registry.close();
    {
        let store = SledStore::open(&restored_dir).unwrap();
        assert_eq!(import_tail(&store, &export, Some(log_key().public()), &mut |_| ()).unwrap().keys_lost, 1);
        let access = SledStore::open(&restored_dir.join("access")).unwrap();
        import_access_tail(&access, &access_export, &note, &origin, &[log_key().public()], &mut |_| ()).unwrap();
    }

    let restored = open(&restored_dir);
    let bodies = |restored: &Registry| -> Vec<bool> {
        let listed = restored.access().reader().list(lost, None, 0, 10).unwrap();
        listed.entries.iter().map(|e| e.body.is_some()).collect()
    };
    assert_eq!(bodies(&restored), [false, false], "sealed under the lost key");
    let correction = Command::CorrectDemographics { number, demographics: person(1) };
    restored.submit_blocking(submission("c-1", correction)).expect("their data enrolled again");
    assert_eq!(bodies(&restored), [false, false], "listed still, unread: the renewed key is another");
    restored.access().record_blocking(found(2)).unwrap();
    assert_eq!(bodies(&restored), [true, false, false], "the newest, sealed under the renewed key, read");
    restored.close();
}

#[test]
fn a_restore_takes_back_the_access_logs_tail_vouched_for_by_its_checkpoint() {
    use registry_core::tail_import::{TailImportError, import_access_tail};
    let live_dir = tempfile::tempdir().unwrap();
    let registry = open(live_dir.path());
    let number = registry
        .submit_blocking(submission("r", Command::RegisterPerson { demographics: person(1) }))
        .unwrap()
        .number
        .unwrap();
    let found = registry.reader().resolve_number(number).unwrap().unwrap().person;
    for i in 0..5 {
        registry.access().record_blocking(look_up(i)).unwrap();
    }
    wait_for_checkpoints(&registry);
    let parent = tempfile::tempdir().unwrap();
    let restored_dir = backed_up(&registry, parent.path(), "a");
    for i in 5..12 {
        // Every other look-up found the person: indexed under them.
        let mut event = look_up(i);
        if i % 2 == 0 {
            event.person = Some(found);
            event.body.outcome = AccessOutcome::Found(ResolvedStatus::Active);
        }
        registry.access().record_blocking(event).unwrap();
    }
    wait_for_checkpoints(&registry);
    let access = registry.access().reader();
    let (signed_size, note) = access.latest_checkpoint().unwrap().unwrap();
    assert_eq!(signed_size, 12);
    let live_access = log_records(&**access.store());
    let export = parent.path().join("access.bin");
    exported(&**access.store(), &export);
    let origin = registry.access().origin().to_owned();
    registry.close();

    let keys = [log_key().public()];
    let store = SledStore::open(&restored_dir.join("access")).unwrap();
    let before = log_records(&store);
    assert_eq!(before.len(), 5);
    // A note for another log, an export altered past the backup, an export shorter than
    // the note: each refused, nothing written.
    match import_access_tail(&store, &export, &note, "elsewhere.example/access", &keys, &mut |_| ()) {
        Err(TailImportError::Checkpoint(why)) => assert!(why.contains("no log key's signature"), "{why}"),
        other => panic!("a note for another origin: {other:?}"),
    }
    let mut frames = std::fs::read(&export).unwrap();
    let at = frames.len() - 3; // inside the last record's sealed body
    frames[at] ^= 1;
    let altered = parent.path().join("altered.bin");
    std::fs::write(&altered, &frames).unwrap();
    match import_access_tail(&store, &altered, &note, &origin, &keys, &mut |_| ()) {
        Err(TailImportError::Checkpoint(why)) => assert!(why.contains("another root"), "{why}"),
        other => panic!("an altered last record: {other:?}"),
    }
    let short = parent.path().join("short.bin");
    let cut = std::fs::read(&export).unwrap();
    let last = 4 + live_access.last().map_or(0, |r| checksum::open(r).unwrap().len());
    std::fs::write(&short, &cut[..cut.len() - last]).unwrap();
    match import_access_tail(&store, &short, &note, &origin, &keys, &mut |_| ()) {
        Err(TailImportError::Checkpoint(why)) => assert!(why.contains("the export holds 11"), "{why}"),
        other => panic!("a short export: {other:?}"),
    }
    // An export replaced by the altered one once it was checked: held to what was.
    let in_place = parent.path().join("in-place.bin");
    std::fs::copy(&export, &in_place).unwrap();
    let mut swapped = false;
    let swapping = &mut |reached: registry_core::replay::Reached| {
        if !swapped && reached.done == reached.total {
            std::fs::rename(&altered, &in_place).unwrap();
            swapped = true;
        }
    };
    match import_access_tail(&store, &in_place, &note, &origin, &keys, swapping) {
        Err(TailImportError::ExportChanged { appended: 0, .. }) => {}
        other => panic!("an export altered after it was checked: {other:?}"),
    }
    assert_eq!(log_records(&store), before, "nothing was written");

    let imported = import_access_tail(&store, &export, &note, &origin, &keys, &mut |_| ()).unwrap();
    assert_eq!((imported.from, imported.to), (5, 12));
    // Whole as imported, before any opening repairs what a crash may have cut off.
    registry_core::access::verify::verify(&store, &origin, &keys, &mut |_| ()).expect("the tree and index derived");
    drop(store);
    let restored = open(&restored_dir);
    let reader = restored.access().reader();
    assert_eq!(log_records(&**reader.store()), live_access, "the published access log, whole");
    assert_eq!(reader.latest_checkpoint().unwrap(), Some((12, note)));
    registry_core::access::verify::verify(&**reader.store(), &origin, &keys, &mut |_| ()).expect("verifies");
    let listed = reader.list(found, None, 0, 10).unwrap();
    assert_eq!(listed.entries.len(), 3, "the person's look-ups in the tail, listed from their index");
    restored.close();
}
