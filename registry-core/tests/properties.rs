//! Property tests of the log and the projections over random command sequences.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};

use common::*;
use proptest::prelude::*;
use registry_core::HudumaNumber;
use registry_core::command::{Command, CommandError, Submission};
use registry_core::event::{Event, ReplacementReason};
use registry_core::projection::state::{self, NumberEntry, PersonEntry, PersonStatus};
use registry_core::replay::{self, FoldSpace};
use registry_core::storage::checksum;
use registry_core::storage::memory::MemoryStore;
use registry_core::storage::{Storage, Tree};
use registry_core::verify::verify_store;

/// An operation on the n-th person registered so far (taken modulo their count).
#[derive(Debug, Clone)]
enum Op {
    Register(usize),
    Replace(usize),
    Correct(usize, usize),
    /// Correct with a justification for overriding the duplicate search (which a
    /// correction into another registered person's demographics needs).
    CorrectOverriding(usize, usize),
    Link(usize, usize, usize),
    /// Unlink the k-th link made so far (by the number it was made with).
    Unlink(usize),
    Death(usize),
    /// Retract the k-th death recorded so far (by the number it was recorded with).
    RetractDeath(usize),
    Revoke(usize),
    Reinstate(usize),
    Merge(usize, usize),
    /// Undo the k-th merge made so far (by its duplicate's number).
    Unmerge(usize),
    Erase(usize),
    /// Resubmit an earlier request (same id, same command).
    Repeat(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0usize..64;
    prop_oneof![
        4 => i.clone().prop_map(Op::Register),
        1 => i.clone().prop_map(Op::Replace),
        1 => (i.clone(), 0usize..64).prop_map(|(a, b)| Op::Correct(a, b)),
        1 => (i.clone(), 0usize..64).prop_map(|(a, b)| Op::CorrectOverriding(a, b)),
        3 => (i.clone(), 0usize..3, 0usize..6).prop_map(|(a, b, c)| Op::Link(a, b, c)),
        2 => (0usize..64).prop_map(Op::Unlink),
        1 => i.clone().prop_map(Op::Death),
        1 => (0usize..64).prop_map(Op::RetractDeath),
        1 => i.clone().prop_map(Op::Revoke),
        1 => i.clone().prop_map(Op::Reinstate),
        1 => (i.clone(), 0usize..64).prop_map(|(a, b)| Op::Merge(a, b)),
        1 => (0usize..64).prop_map(Op::Unmerge),
        1 => i.clone().prop_map(Op::Erase),
        1 => (0usize..1000).prop_map(Op::Repeat),
    ]
}

/// Links, unlinks, merges and unmerges among four persons: merges on merges, and records
/// unlinked from survivors and linked to them again, are common.
fn merge_op() -> impl Strategy<Value = Op> {
    let i = 0usize..4;
    prop_oneof![
        1 => i.clone().prop_map(Op::Register),
        3 => (i.clone(), 0usize..2, 0usize..3).prop_map(|(a, b, c)| Op::Link(a, b, c)),
        3 => (0usize..64).prop_map(Op::Unlink),
        2 => (i.clone(), 0usize..4).prop_map(|(a, b)| Op::Merge(a, b)),
        2 => (0usize..64).prop_map(Op::Unmerge),
    ]
}

const AGENCIES: [&str; 3] = ["KRA", "NHIF", "NTSA"];

/// Runs `ops` in batches of `batch` through one writer; returns the store, every
/// number issued (in order) and how many commands were accepted.
fn run(ops: &[Op], batch: usize) -> (std::sync::Arc<MemoryStore>, Vec<HudumaNumber>) {
    let (store, writer) = memory_writer();
    let issued = run_on(writer, ops, batch, &mut |_| ());
    (store, issued)
}

/// Runs `ops` in batches of `batch` through `writer`, calling `after_batch` with every
/// number issued so far after each batch; returns them.
fn run_on(
    writer: registry_core::writer::Writer,
    ops: &[Op],
    batch: usize,
    after_batch: &mut dyn FnMut(&[HudumaNumber]),
) -> Vec<HudumaNumber> {
    run_on_known(writer, Vec::new(), ops, batch, after_batch)
}

/// [`run_on`] over a store whose numbers `known` (issued earlier) the operations pick
/// from too; returns the numbers issued by `ops` alone.
fn run_on_known(
    mut writer: registry_core::writer::Writer,
    known: Vec<HudumaNumber>,
    ops: &[Op],
    batch: usize,
    after_batch: &mut dyn FnMut(&[HudumaNumber]),
) -> Vec<HudumaNumber> {
    let mut numbers: Vec<HudumaNumber> = known;
    let mut sent: Vec<Submission> = Vec::new();
    let mut issued = Vec::new();
    let mut links: Vec<(HudumaNumber, String, String)> = Vec::new();
    let mut merged: Vec<HudumaNumber> = Vec::new();
    let mut died: Vec<HudumaNumber> = Vec::new();
    for (chunk_index, chunk) in ops.chunks(batch.max(1)).enumerate() {
        let mut submissions = Vec::new();
        for (k, op) in chunk.iter().enumerate() {
            let pick = |i: usize| numbers.get(i % numbers.len().max(1)).copied();
            let id = format!("op-{chunk_index}-{k}");
            let command = match op {
                Op::Register(i) => Some(Command::RegisterPerson { demographics: person(*i) }),
                Op::Replace(i) => {
                    pick(*i).map(|number| Command::ReplaceNumber { number, reason: ReplacementReason::Lost })
                }
                Op::Correct(i, d) => {
                    pick(*i).map(|number| Command::CorrectDemographics { number, demographics: person(*d) })
                }
                Op::CorrectOverriding(i, d) => {
                    pick(*i).map(|number| Command::CorrectDemographicsOverridingDuplicates {
                        number,
                        demographics: person(*d),
                        justification: "a namesake, seen in person".into(),
                    })
                }
                Op::Link(i, a, r) => pick(*i).map(|number| Command::LinkAgencyRecord {
                    number,
                    agency: AGENCIES[*a].into(),
                    record_id: format!("R{r}"),
                }),
                Op::Unlink(k) => links.get(k % links.len().max(1)).map(
                    |(number, agency, record_id): &(HudumaNumber, String, String)| Command::UnlinkAgencyRecord {
                        number: *number,
                        agency: agency.clone(),
                        record_id: record_id.clone(),
                    },
                ),
                Op::Death(i) => {
                    pick(*i).map(|number| Command::RecordDeath { number, date_of_death: "2020-01-01".into() })
                }
                Op::RetractDeath(k) => died
                    .get(k % died.len().max(1))
                    .map(|number| Command::RetractDeath { number: *number, reason: "seen alive".into() }),
                Op::Revoke(i) => pick(*i).map(|number| Command::RevokeNumber { number, reason: "audit".into() }),
                Op::Reinstate(i) => {
                    pick(*i).map(|number| Command::ReinstateNumber { number, reason: "cleared".into() })
                }
                Op::Merge(a, b) => pick(*a).zip(pick(*b)).map(|(survivor, duplicate)| Command::MergeRecords {
                    survivor,
                    duplicate,
                    justification: "duplicate enrolment".into(),
                }),
                Op::Unmerge(k) => merged.get(k % merged.len().max(1)).map(|duplicate| Command::UnmergeRecords {
                    duplicate: *duplicate,
                    justification: "two persons after all".into(),
                }),
                Op::Erase(i) => {
                    pick(*i).map(|number| Command::ErasePersonalData { number, legal_basis: "request".into() })
                }
                Op::Repeat(i) => {
                    if let Some(previous) = sent.get(i % sent.len().max(1)) {
                        submissions.push(previous.clone());
                    }
                    None
                }
            };
            if let Some(command) = command {
                submissions.push(submission(id, command));
            }
        }
        let results = writer.execute_batch(&submissions);
        for (s, result) in submissions.iter().zip(results) {
            match result {
                Ok(outcome) => {
                    if let Command::LinkAgencyRecord { number, agency, record_id } = &s.command {
                        links.push((*number, agency.clone(), record_id.clone()));
                    }
                    if let Command::MergeRecords { survivor, duplicate, .. } = &s.command {
                        merged.push(*duplicate);
                        // The duplicate's records are the survivor's now: unlinked
                        // through them (and perhaps linked to them again), they reach
                        // what an unmerge takes back.
                        for link in links.iter_mut().filter(|l| l.0 == *duplicate) {
                            link.0 = *survivor;
                        }
                    }
                    if let Command::RecordDeath { number, .. } = &s.command {
                        died.push(*number);
                    }
                    if let Some(number) = outcome.number
                        && !numbers.contains(&number)
                    {
                        numbers.push(number);
                        issued.push(number);
                    }
                    sent.push(s.clone());
                }
                Err(CommandError::Internal(e) | CommandError::Unavailable(e)) => panic!("internal error: {e}"),
                Err(_) => {}
            }
        }
        after_batch(&issued);
    }
    issued
}

fn projections(store: &MemoryStore) -> BTreeMap<Tree, BTreeMap<Vec<u8>, Vec<u8>>> {
    Tree::PROJECTIONS.iter().map(|t| (*t, store.snapshot(*t).unwrap())).collect()
}

/// Removes every entry of `trees` (as [`projections`] lists them) from the store.
fn remove_every_entry(store: &MemoryStore, trees: &BTreeMap<Tree, BTreeMap<Vec<u8>, Vec<u8>>>) {
    let mut batch = registry_core::storage::WriteBatch::default();
    for (tree, entries) in trees {
        for key in entries.keys() {
            batch.remove(*tree, key.clone());
        }
    }
    store.commit(&batch, true).unwrap();
}

fn opened<T: serde::de::DeserializeOwned>(tree: Tree, key: &[u8], stored: &[u8]) -> T {
    let value = checksum::open(stored).expect("checksum");
    state::decode(tree, key, value).expect("decode")
}

/// The invariants every store must hold: numbers never shared, an agency record held
/// by one person, the link trees in agreement.
fn check_invariants(store: &MemoryStore, issued: &[HudumaNumber]) -> Result<(), TestCaseError> {
    // No number is issued twice.
    let distinct: HashSet<_> = issued.iter().collect();
    prop_assert_eq!(distinct.len(), issued.len());

    // Every issued number names exactly one person; current numbers are distinct.
    let numbers = store.snapshot(Tree::Numbers).unwrap();
    prop_assert_eq!(numbers.len(), issued.len());
    let mut current = HashSet::new();
    for (key, stored) in store.snapshot(Tree::Persons).unwrap() {
        let person: PersonEntry = opened(Tree::Persons, &key, &stored);
        prop_assert!(current.insert(person.current_number), "two persons hold {}", person.current_number);
        let entry: NumberEntry = opened(
            Tree::Numbers,
            &person.current_number.as_u64().to_be_bytes(),
            &numbers[&person.current_number.as_u64().to_be_bytes().to_vec()],
        );
        prop_assert_eq!(entry.person.0.to_be_bytes().to_vec(), key);
    }

    // Only a merged person keeps what their merge moved, and holds no record of their
    // own; each record their merge moved went to the person they are merged into. Only
    // a deceased person keeps the status a retraction of their death would give back,
    // and it is one a death can be recorded from.
    for (key, stored) in store.snapshot(Tree::Persons).unwrap() {
        let person: PersonEntry = opened(Tree::Persons, &key, &stored);
        match person.status {
            PersonStatus::Deceased => prop_assert!(
                matches!(person.status_before_death, Some(PersonStatus::Active | PersonStatus::Revoked)),
                "a deceased person was {:?} before",
                person.status_before_death
            ),
            _ => prop_assert_eq!(person.status_before_death, None),
        }
        if person.status == PersonStatus::Merged {
            prop_assert!(person.agency_records.is_empty());
            prop_assert!(person.merged_into.is_some());
        } else {
            prop_assert!(person.moved_by_merge.is_empty(), "{:?} keeps records moved by a merge", person.status);
            // (An erased person keeps whom they were merged into, if they were.)
            prop_assert!(person.merged_into.is_none() || person.status == PersonStatus::Erased);
        }
    }

    // Persons judged distinct are judged so both ways, and nobody from themselves.
    let persons: BTreeMap<Vec<u8>, PersonEntry> = store
        .snapshot(Tree::Persons)
        .unwrap()
        .into_iter()
        .map(|(key, stored)| {
            let person = opened(Tree::Persons, &key, &stored);
            (key, person)
        })
        .collect();
    for (key, person) in &persons {
        for other in &person.judged_distinct {
            prop_assert_ne!(&other.0.to_be_bytes().to_vec(), key, "judged distinct from themselves");
            let theirs = &persons[&other.0.to_be_bytes().to_vec()];
            prop_assert!(theirs.judged_distinct.iter().any(|p| p.0.to_be_bytes().as_slice() == key.as_slice()));
        }
    }

    // A survivor names exactly the persons merged into them; what a merged person's
    // merge moved and their survivor no longer holds was unlinked from the survivor
    // since (and is not taken back by an unmerge, even if linked to them again).
    for (key, person) in &persons {
        let id = registry_core::PersonId(u64::from_be_bytes(key.as_slice().try_into().unwrap()));
        for merged in &person.merged_in {
            prop_assert_eq!(persons[&merged.0.to_be_bytes().to_vec()].merged_into, Some(id));
        }
        if let Some(survivor) = person.merged_into {
            let survivor = &persons[&survivor.0.to_be_bytes().to_vec()];
            prop_assert!(survivor.merged_in.contains(&id), "a survivor does not name a person merged into them");
            if survivor.status != PersonStatus::Merged && survivor.status != PersonStatus::Erased {
                for moved in &person.moved_by_merge {
                    prop_assert!(
                        survivor.agency_records.iter().any(|r| r.order() == moved.order()),
                        "a record unlinked from the survivor since the merge would go back at an unmerge"
                    );
                }
            }
        }
    }

    // A person's history begins with their registration and only goes forward; every
    // record that names a person is in it.
    for (key, person) in &persons {
        let id = u64::from_be_bytes(key.as_slice().try_into().unwrap());
        prop_assert_eq!(person.history.first(), Some(&id));
        prop_assert!(person.history.windows(2).all(|w| w[0] < w[1]), "{:?}", person.history);
    }
    for (_, stored) in store.snapshot(Tree::Log).unwrap() {
        let record = registry_core::record::RecordRef::parse(checksum::open(&stored).expect("checksum")).unwrap();
        let event = Event::decode(record.header.kind, record.payload).unwrap();
        let seq = record.header.seq;
        let mut named = registry_core::history::shown(&event).persons;
        if let Event::PersonRegistered(_) = event {
            named.push(registry_core::PersonId(seq));
        }
        for p in named {
            let history = &persons[&p.0.to_be_bytes().to_vec()].history;
            prop_assert!(history.contains(&seq), "record {} names person {} but is not in their history", seq, p.0);
        }
    }

    // An agency record maps to one person, and the persons' own lists say the same.
    let agency_links = store.snapshot(Tree::AgencyLinks).unwrap();
    let mut holders: HashMap<Vec<u8>, Vec<Vec<u8>>> = HashMap::new();
    for (key, stored) in store.snapshot(Tree::Persons).unwrap() {
        let person: PersonEntry = opened(Tree::Persons, &key, &stored);
        for record in &person.agency_records {
            // The link is the keyed hash of the agency and the id sealed beside it.
            let id = record.open(&secrets(), Tree::Persons, &key).expect("a held record opens");
            prop_assert_eq!(state::agency_link_key(&secrets(), &record.agency, &id), record.link.to_vec());
            holders.entry(record.link.to_vec()).or_default().push(key.clone());
        }
    }
    prop_assert_eq!(holders.len(), agency_links.len());
    for (link, persons) in &holders {
        prop_assert_eq!(persons.len(), 1, "record held by {} persons", persons.len());
        let stored = agency_links.get(link).expect("every held record is in agency_links");
        prop_assert_eq!(checksum::open(stored).unwrap(), persons[0].as_slice());
    }
    Ok(())
}

/// Every person's history, by each number they were issued, read in pages of
/// `page_size`, each from the last page's `next`: the history read whole, in log order,
/// each page full but the last, each naming the same person.
fn check_history_pages(
    store: std::sync::Arc<MemoryStore>,
    issued: &[HudumaNumber],
    page_size: usize,
) -> Result<(), TestCaseError> {
    let reader = registry_core::query::Reader::new(store, std::sync::Arc::new(secrets()));
    for number in issued {
        let whole = reader.history(*number, 0, usize::MAX).unwrap().expect("an issued number has a history");
        prop_assert_eq!(whole.next, None);
        prop_assert!(whole.records.windows(2).all(|w| w[0].index < w[1].index));
        let (mut paged, mut from) = (Vec::new(), Some(0));
        while let Some(start) = from {
            let page = reader.history(*number, start, page_size).unwrap().expect("still there");
            prop_assert_eq!(page.subject, whole.subject);
            let full = page.records.len() == page_size;
            prop_assert!(full || (page.next.is_none() && page.records.len() < page_size), "{:?}", page);
            paged.extend(page.records);
            from = page.next;
        }
        prop_assert_eq!(&paged, &whole.records);
    }
    Ok(())
}

/// Where a fresh fold is held: in memory, and in a scratch store under `dir` (every
/// log, however small, folded on disk).
fn both_spaces(dir: &std::path::Path) -> [FoldSpace; 2] {
    [FoldSpace::IN_MEMORY, FoldSpace::under(dir, 0)]
}

/// Live equals rebuilt, and verify agrees, with the fold in memory and on disk; the
/// scratch store is gone afterwards.
fn check_rebuild(store: &MemoryStore) -> Result<(), TestCaseError> {
    let live = projections(store);
    let dir = tempfile::tempdir().unwrap();
    for space in both_spaces(dir.path()) {
        replay::rebuild(store, &secrets(), &space, &mut |_| ()).unwrap();
        prop_assert_eq!(&live, &projections(store), "{:?}", space);
        verify_store(store, Some(log_key().public()), Some(&secrets()), &space, &mut |_| ()).unwrap();
    }
    prop_assert!(!dir.path().join(replay::SCRATCH_DIR).exists(), "the scratch fold is removed");
    Ok(())
}

/// A whole copy of `store`, as an online backup of it is (every tree).
fn copied(store: &MemoryStore) -> std::sync::Arc<MemoryStore> {
    let copy = std::sync::Arc::new(MemoryStore::new());
    let mut batch = registry_core::storage::WriteBatch::default();
    for tree in Tree::ALL {
        for (key, value) in store.snapshot(tree).unwrap() {
            batch.put(tree, key, value);
        }
    }
    copy.commit(&batch, true).unwrap();
    copy
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// After a restore over a backup taken at any point, with the lost tail taken back
    /// (its persons' keys lost: `tail_import`) and then any commands (corrections that
    /// renew those keys, deaths refused before them, merges, erasures...), live
    /// projections still equal rebuilt ones, verify agrees, and no number is shared.
    #[test]
    fn after_a_restore_and_any_commands_projections_rebuild_equal(
        before in proptest::collection::vec(op(), 1..40),
        tail in proptest::collection::vec(op(), 1..40),
        after in proptest::collection::vec(op(), 1..60),
        batch in 1usize..8,
    ) {
        let (live, writer) = memory_writer();
        let mut issued = run_on(writer, &before, batch, &mut |_| ());
        let backup = copied(&live);
        issued.extend(run_on_known(writer_over(live.clone()), issued.clone(), &tail, batch, &mut |_| ()));
        let dir = tempfile::tempdir().unwrap();
        let export = dir.path().join("log.bin");
        registry_core::log_export::export_log(&*live, &mut std::fs::File::create(&export).unwrap()).unwrap();
        registry_core::tail_import::import_tail(&*backup, &export, Some(log_key().public()), &mut |_| ()).unwrap();
        // Opening folds the tail, as after `restore-tail`.
        let access = std::sync::Arc::new(MemoryStore::new());
        let options = registry_core::registry::RegistryOptions { origin: ORIGIN.into(), ..Default::default() };
        registry_core::registry::Registry::open(backup.clone(), access, secrets(), log_key(), options).unwrap().close();
        issued.extend(run_on_known(writer_over(backup.clone()), issued.clone(), &after, batch, &mut |_| ()));

        check_invariants(&backup, &issued)?;
        check_rebuild(&backup)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Among few persons, merged on and unmerged, their records unlinked and linked
    /// again: what an unmerge takes back is only what the survivor has held since the
    /// merge (the invariants), and live projections equal rebuilt ones.
    #[test]
    fn merges_undone_take_back_only_what_the_survivor_held_since(
        ops in proptest::collection::vec(merge_op(), 1..60),
        batch in 1usize..4,
    ) {
        let (store, issued) = run(&ops, batch);
        check_invariants(&store, &issued)?;
        check_rebuild(&store)?;
    }

    /// Live projections equal rebuilt ones; numbers are never shared; an agency record
    /// maps to at most one person, and both link trees agree; a history read in pages
    /// is the history read whole.
    #[test]
    fn projections_rebuild_equal_and_invariants_hold(ops in proptest::collection::vec(op(), 1..120), batch in 1usize..16) {
        let (store, issued) = run(&ops, batch);

        check_invariants(&store, &issued)?;
        check_history_pages(store.clone(), &issued, batch % 4 + 1)?;

        check_rebuild(&store)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Through any commands, and a read cache small enough to evict, every number
    /// resolves through the cache (twice: the second read of a key is the one kept) as
    /// it does from the store alone, after every batch.
    #[test]
    fn resolutions_through_the_read_cache_equal_the_store_alone(ops in proptest::collection::vec(op(), 1..80), batch in 1usize..8, cache_bytes in 1u64..200_000) {
        use registry_core::query::Reader;
        use registry_core::storage::read_cache::CachedStore;
        let inner = std::sync::Arc::new(MemoryStore::new());
        let cached = std::sync::Arc::new(CachedStore::new(inner.clone(), cache_bytes).unwrap());
        let secrets = std::sync::Arc::new(secrets());
        let through = Reader::new(cached.clone(), secrets.clone());
        let alone = Reader::new(inner.clone(), secrets);
        let mut differences = Vec::new();
        let issued = run_on(writer_over(cached.clone()), &ops, batch, &mut |issued| {
            for number in issued {
                let expected = alone.resolve_number(*number).unwrap();
                for read in 0..2 {
                    let got = through.resolve_number(*number).unwrap();
                    if got != expected {
                        differences.push(format!("{number} (read {read}): {got:?} vs {expected:?}"));
                    }
                }
            }
        });
        prop_assert!(differences.is_empty(), "{}", differences.join("\n"));
        // The cache took part (unless it was too small to hold a person's entry).
        prop_assert!(issued.is_empty() || cache_bytes < 32 * 512 || cached.cached_entries() > 0);
    }
}

/// A store that checks, at every staged commit, that the batch's before-image (what
/// readers are shown until it is durable, and what the intent restores after a crash)
/// holds every key the batch writes, each with exactly what the store held, and nothing
/// else; most of it comes from the build's own reads rather than from the store.
struct BeforeImageChecked {
    inner: MemoryStore,
    wrong: std::sync::Mutex<Vec<String>>,
    checked: std::sync::atomic::AtomicUsize,
    /// How long each staged commit takes, so that the sequencer builds the next batch
    /// over the one in flight.
    slow: std::time::Duration,
}

impl BeforeImageChecked {
    fn new(slow: std::time::Duration) -> Self {
        Self { inner: MemoryStore::new(), wrong: Default::default(), checked: Default::default(), slow }
    }
}

impl Storage for BeforeImageChecked {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, registry_core::storage::StorageError> {
        self.inner.get(tree, key)
    }
    registry_core::forward_scans!(inner);
    fn commit(
        &self,
        batch: &registry_core::storage::WriteBatch,
        durable: bool,
    ) -> Result<(), registry_core::storage::StorageError> {
        self.inner.commit(batch, durable)
    }
    fn commit_staged(
        &self,
        batch: &std::sync::Arc<registry_core::storage::WriteBatch>,
        intent: &registry_core::storage::Intent,
        durable: bool,
    ) -> Result<(), registry_core::storage::StorageError> {
        let keys = |b: &registry_core::storage::WriteBatch| -> Vec<(Tree, Vec<u8>)> {
            b.writes.iter().flat_map(|(t, w)| w.keys().map(move |k| (*t, k.clone()))).collect()
        };
        let mut wrong = self.wrong.lock().unwrap();
        if keys(batch) != keys(&intent.before) {
            wrong.push(format!("the before-image's keys are not the batch's: {:?}", keys(&intent.before)));
        }
        for (tree, key) in keys(batch) {
            let shown = intent.before.writes.get(&tree).and_then(|w| w.get(&key)).cloned();
            let held = self.inner.get(tree, &key)?;
            if shown != Some(held.clone()) {
                wrong.push(format!("{} {}: shown {shown:?}, held {held:?}", tree.name(), hex(&key)));
            }
        }
        drop(wrong);
        self.checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::thread::sleep(self.slow);
        self.inner.commit(batch, durable)
    }
    fn flush(&self) -> Result<(), registry_core::storage::StorageError> {
        self.inner.flush()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Through any commands, every batch's before-image equals what the store held
    /// under each of its keys: the build's reads and the keys it creates stand in for
    /// reads of the store exactly.
    #[test]
    fn every_batchs_before_image_is_what_the_store_held(ops in proptest::collection::vec(op(), 1..100), batch in 1usize..12) {
        let store = std::sync::Arc::new(BeforeImageChecked::new(std::time::Duration::ZERO));
        // At least one batch is accepted.
        let ops = [vec![Op::Register(0)], ops].concat();
        run_on(writer_over(store.clone()), &ops, batch, &mut |_| ());
        let wrong = store.wrong.lock().unwrap();
        prop_assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        prop_assert!(store.checked.load(std::sync::atomic::Ordering::Relaxed) > 0);
    }
}

/// Through the sequencer, with each batch built over the one still being committed
/// (registrations, links and corrections from many submitters at once): every batch's
/// before-image is what the store held when it was committed, including the keys the
/// batch in flight had written (the persons' count, every registration's).
#[test]
fn a_batch_built_over_the_one_in_flight_has_the_before_image_the_store_then_holds() {
    use registry_core::registry::Registry;
    let store = std::sync::Arc::new(BeforeImageChecked::new(std::time::Duration::from_millis(2)));
    let registry = Registry::open(
        store.clone(),
        std::sync::Arc::new(MemoryStore::new()),
        secrets(),
        log_key(),
        registry_core::registry::RegistryOptions { origin: ORIGIN.into(), max_batch: 8, ..Default::default() },
    )
    .unwrap();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let registry = &registry;
            scope.spawn(move || {
                for i in 0..24 {
                    let who = t * 100 + i;
                    let registered = registry
                        .submit_blocking(submission(
                            format!("r{who}"),
                            Command::RegisterPerson { demographics: person(who) },
                        ))
                        .unwrap();
                    let number = registered.number.unwrap();
                    let command = match i % 3 {
                        0 => Command::LinkAgencyRecord { number, agency: "KRA".into(), record_id: format!("K{who}") },
                        1 => Command::CorrectDemographics { number, demographics: person(who + 5000) },
                        _ => continue,
                    };
                    registry.submit_blocking(submission(format!("c{who}"), command)).unwrap();
                }
            });
        }
    });
    registry.close();
    let wrong = store.wrong.lock().unwrap();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert!(store.checked.load(std::sync::atomic::Ordering::Relaxed) > 8);
}

/// A small log to tamper with: registrations, links and a replacement.
fn small_log() -> std::sync::Arc<MemoryStore> {
    let ops: Vec<Op> = (0..12)
        .map(|i| match i % 4 {
            0 | 1 => Op::Register(i),
            2 => Op::Link(i, i % 3, i),
            _ => Op::Replace(i),
        })
        .collect();
    run(&ops, 3).0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Flipping any single byte of any stored record is detected by verify, naming
    /// that record, whether or not the tamperer also fixed the storage checksum, and
    /// whether verify checks the log alone or with the projections (then the log is
    /// checked from what the fold reads, in memory or on disk, and on by itself where
    /// the fold stops at the damage).
    #[test]
    fn any_flipped_record_byte_is_named_by_verify(pick in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), bit in 0u8..8, fix_checksum in any::<bool>(), fold in 0usize..3) {
        let store = small_log();
        let log = store.snapshot(Tree::Log).unwrap();
        let (key, stored) = log.iter().nth(pick.index(log.len())).unwrap();
        let seq = u64::from_be_bytes(key.as_slice().try_into().unwrap());
        let mut tampered = stored.clone();
        if fix_checksum {
            let mut record = checksum::open(stored).unwrap().to_vec();
            let i = at.index(record.len());
            record[i] ^= 1 << bit;
            tampered = checksum::seal(&record);
        } else {
            let i = at.index(tampered.len());
            tampered[i] ^= 1 << bit;
        }
        let mut batch = registry_core::storage::WriteBatch::default();
        batch.put(Tree::Log, key.clone(), tampered);
        store.commit(&batch, true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (secrets, space) = match fold {
            0 => (None, FoldSpace::IN_MEMORY),
            n => (Some(secrets()), both_spaces(dir.path())[n - 1].clone()),
        };
        let err = verify_store(&*store, Some(log_key().public()), secrets.as_ref(), &space, &mut |_| ()).unwrap_err();
        prop_assert_eq!(err.seq(), Some(seq), "{} ({:?})", err, space);
    }
}

/// A store that counts the log's records read from it by range.
struct CountingLogReads {
    inner: std::sync::Arc<MemoryStore>,
    records: std::sync::atomic::AtomicUsize,
}

impl Storage for CountingLogReads {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, registry_core::storage::StorageError> {
        self.inner.get(tree, key)
    }
    fn scan_prefix(
        &self,
        tree: Tree,
        prefix: &[u8],
    ) -> Result<Vec<registry_core::storage::KeyValue>, registry_core::storage::StorageError> {
        assert_ne!(tree, Tree::Log, "the log is read in ranges");
        self.inner.scan_prefix(tree, prefix)
    }
    fn range_from(
        &self,
        tree: Tree,
        from: &[u8],
        limit: usize,
    ) -> Result<Vec<registry_core::storage::KeyValue>, registry_core::storage::StorageError> {
        let read = self.inner.range_from(tree, from, limit)?;
        if tree == Tree::Log {
            self.records.fetch_add(read.len(), std::sync::atomic::Ordering::Relaxed);
        }
        Ok(read)
    }
    fn range_back(
        &self,
        tree: Tree,
        prefix: &[u8],
        before: &[u8],
        limit: usize,
    ) -> Result<Vec<registry_core::storage::KeyValue>, registry_core::storage::StorageError> {
        self.inner.range_back(tree, prefix, before, limit)
    }
    fn last(
        &self,
        tree: Tree,
    ) -> Result<Option<registry_core::storage::KeyValue>, registry_core::storage::StorageError> {
        self.inner.last(tree)
    }
    fn commit(
        &self,
        batch: &registry_core::storage::WriteBatch,
        durable: bool,
    ) -> Result<(), registry_core::storage::StorageError> {
        self.inner.commit(batch, durable)
    }
    fn flush(&self) -> Result<(), registry_core::storage::StorageError> {
        self.inner.flush()
    }
}

/// Verify with the projections reads each record of the log once, in memory and on
/// disk: the log's check takes what the fold reads.
#[test]
fn verify_reads_the_log_once() {
    let dir = tempfile::tempdir().unwrap();
    for space in both_spaces(dir.path()) {
        let store = CountingLogReads { inner: small_log(), records: Default::default() };
        let size = store.inner.snapshot(Tree::Log).unwrap().len();
        let report = verify_store(&store, Some(log_key().public()), Some(&secrets()), &space, &mut |_| ()).unwrap();
        assert_eq!(report.records as usize, size);
        assert!(report.projections_checked);
        assert_eq!(store.records.load(std::sync::atomic::Ordering::Relaxed), size, "{space:?}");
    }
}

#[test]
fn a_dropped_record_is_named() {
    let store = small_log();
    let mut batch = registry_core::storage::WriteBatch::default();
    batch.remove(Tree::Log, 5u64.to_be_bytes().to_vec());
    store.commit(&batch, true).unwrap();
    let err = verify_store(&*store, Some(log_key().public()), None, &FoldSpace::IN_MEMORY, &mut |_| ()).unwrap_err();
    assert_eq!(err.seq(), Some(5), "{err}");
}

#[test]
fn a_projection_that_differs_from_the_log_is_reported() {
    let store = small_log();
    let persons = store.snapshot(Tree::Persons).unwrap();
    let (key, _) = persons.iter().next().unwrap();
    let mut batch = registry_core::storage::WriteBatch::default();
    batch.remove(Tree::Persons, key.clone());
    store.commit(&batch, true).unwrap();
    let err = verify_whole(&*store).unwrap_err();
    assert!(err.to_string().contains("projection persons"), "{err}");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A record the fold cannot read stops `rebuild`, which names the earliest such record
/// (the records are read and prepared on one thread, folded on another).
#[test]
fn rebuild_names_the_earliest_unreadable_record() {
    let records = small_log().snapshot(Tree::Log).unwrap().len() as u64;
    for bad in 1..records {
        let store = small_log();
        let mut batch = registry_core::storage::WriteBatch::default();
        for seq in [bad, (bad + 3).min(records - 1)] {
            batch.put(Tree::Log, seq.to_be_bytes().to_vec(), checksum::seal(b"not a record"));
        }
        store.commit(&batch, true).unwrap();
        let err = replay::rebuild(&*store, &secrets(), &FoldSpace::IN_MEMORY, &mut |_| ()).unwrap_err();
        assert_eq!(err.seq(), Some(bad), "{err}");
    }
}

/// The same over a log long enough that its records are prepared on two threads, with
/// the later bad record unreadable in another way (its stored checksum broken, which the
/// reading itself catches): the earliest is named whichever half or kind it is.
#[test]
fn rebuild_names_the_earliest_bad_record_of_a_long_log() {
    let ops: Vec<Op> = (0..150).map(|i| if i % 3 == 2 { Op::Link(i, i % 3, i) } else { Op::Register(i) }).collect();
    let records = run(&ops, 16).0.snapshot(Tree::Log).unwrap().len() as u64;
    assert!(records > 128, "{records} records");
    let cases =
        [(Some(10), Some(120)), (Some(100), Some(140)), (Some(75), Some(76)), (Some(120), None), (None, Some(130))];
    for (unparsable, unreadable) in cases {
        let store = run(&ops, 16).0;
        let mut batch = registry_core::storage::WriteBatch::default();
        if let Some(seq) = unparsable {
            batch.put(Tree::Log, u64::to_be_bytes(seq).to_vec(), checksum::seal(b"not a record"));
        }
        if let Some(seq) = unreadable {
            let key = u64::to_be_bytes(seq).to_vec();
            let mut stored = store.get(Tree::Log, &key).unwrap().unwrap();
            stored[0] ^= 1;
            batch.put(Tree::Log, key, stored);
        }
        store.commit(&batch, true).unwrap();
        let err = replay::rebuild(&*store, &secrets(), &FoldSpace::IN_MEMORY, &mut |_| ()).unwrap_err();
        assert_eq!(err.seq(), unparsable.or(unreadable), "{unparsable:?} {unreadable:?}: {err}");
    }
}

/// Whatever the kind of difference (an entry missing, one too many, one changed),
/// verify names the first tree that differs and the least key in it that does: in a
/// tree compared after the fold (persons) and in those compared as the fold writes
/// them (agency_changes, by agency; merkle_nodes, whole).
#[test]
fn verify_names_the_least_key_that_differs() {
    // Six persons, each linked with one of three agencies.
    let ops: Vec<Op> = (0..6).map(Op::Register).chain((0..6).map(|i| Op::Link(i, i % 3, i))).collect();
    let linked_log = || run(&ops, 1).0;
    for tree in [Tree::Persons, Tree::AgencyChanges, Tree::MerkleNodes] {
        let keys: Vec<Vec<u8>> = linked_log().snapshot(tree).unwrap().into_keys().collect();
        let (second, third, last) = (&keys[1], &keys[2], keys.last().unwrap());
        let extra = [last.as_slice(), &[0]].concat();
        // (case, writes to the tree (None: remove), the key verify must name)
        type Case<'a> = (&'a str, Vec<(&'a [u8], Option<Vec<u8>>)>, &'a [u8]);
        let cases: [Case<'_>; 4] = [
            ("missing", vec![(third, None), (second, None)], second),
            ("extra", vec![(&extra, Some(checksum::seal(b"forged")))], &extra),
            ("changed", vec![(third, Some(checksum::seal(b"forged")))], third),
            (
                "all three",
                vec![(&extra, Some(checksum::seal(b"x"))), (third, None), (second, Some(checksum::seal(b"y")))],
                second,
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        for ((case, writes, named), space) in cases.iter().flat_map(|case| both_spaces(dir.path()).map(|s| (case, s))) {
            let store = linked_log();
            let mut batch = registry_core::storage::WriteBatch::default();
            for (key, value) in writes {
                match value {
                    Some(value) => batch.put(tree, key.to_vec(), value.clone()),
                    None => batch.remove(tree, key.to_vec()),
                }
            }
            // A later tree differs too: the first tree in order is the one named.
            batch.put(Tree::MerkleBlocks, vec![0xff], checksum::seal(b"junk"));
            store.commit(&batch, true).unwrap();
            let err =
                verify_store(&*store, Some(log_key().public()), Some(&secrets()), &space, &mut |_| ()).unwrap_err();
            let expected =
                format!("projection {} differs from a fresh fold of the log at key {}", tree.name(), hex(named));
            assert_eq!(err.to_string(), expected, "{case}, {space:?}");
            replay::rebuild(&*store, &secrets(), &space, &mut |_| ()).unwrap();
            verify_store(&*store, Some(log_key().public()), Some(&secrets()), &space, &mut |_| ()).unwrap();
        }
    }
}

/// A fixed sequence in which every kind of event succeeds, with the same checks.
#[test]
fn every_event_kind_folds_the_same_live_and_rebuilt() {
    let ops = vec![
        Op::Register(0),
        Op::Register(1),
        Op::Register(2),
        Op::Link(0, 0, 1),
        Op::Link(1, 1, 2),
        Op::Link(2, 2, 3),
        Op::Unlink(0),
        Op::Correct(1, 5),
        // Person 0 corrected into person 2's demographics: the override is recorded.
        Op::CorrectOverriding(0, 2),
        Op::Revoke(2),
        Op::Reinstate(2),
        Op::Merge(1, 2),
        // That merge undone: person 2 takes their NTSA record back.
        Op::Unmerge(0),
        Op::Replace(0),
        Op::Death(3),
        // That death retracted, and recorded again.
        Op::RetractDeath(0),
        Op::Death(3),
        Op::Erase(1),
        Op::Repeat(0),
    ];
    for batch in [1, 4, 16] {
        let (store, issued) = run(&ops, batch);
        if batch == 1 {
            // Later batches see only persons registered in earlier batches, so fewer
            // commands find their target; one at a time, every command is accepted.
            assert_eq!(issued.len(), 4, "three registrations and one replacement");
            assert_eq!(store.snapshot(Tree::Log).unwrap().len(), 19, "genesis and 18 accepted commands");
        }
        check_invariants(&store, &issued).unwrap();
        check_rebuild(&store).unwrap();
    }
}

/// Damage done to the projections: removals, altered values, junk keys.
#[derive(Debug, Clone)]
enum Damage {
    Remove(prop::sample::Index),
    Alter(prop::sample::Index, u8),
    Junk(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Damage::Remove),
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| Damage::Alter(i, x)),
        (0usize..Tree::PROJECTIONS.len(), proptest::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(t, k)| Damage::Junk(t, k)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever happened to the projections (entries lost, altered or added, the
    /// applied markers gone), rebuild restores exactly what the log folds to.
    #[test]
    fn rebuild_repairs_any_damage(ops in proptest::collection::vec(op(), 1..60), harm in proptest::collection::vec(damage(), 1..20), on_disk in any::<bool>()) {
        let (store, _) = run(&ops, 4);
        let healthy = projections(&store);
        let entries: Vec<(Tree, Vec<u8>, Vec<u8>)> = healthy
            .iter()
            .flat_map(|(t, m)| m.iter().map(move |(k, v)| (*t, k.clone(), v.clone())))
            .collect();
        let mut batch = registry_core::storage::WriteBatch::default();
        for d in &harm {
            match d {
                Damage::Remove(i) => {
                    let (t, k, _) = &entries[i.index(entries.len())];
                    batch.remove(*t, k.clone());
                }
                Damage::Alter(i, x) => {
                    let (t, k, v) = &entries[i.index(entries.len())];
                    let mut v = v.clone();
                    let at = (*x as usize) % v.len().max(1);
                    if v.is_empty() { v.push(*x) } else { v[at] ^= *x }
                    batch.put(*t, k.clone(), v);
                }
                Damage::Junk(t, k) => batch.put(Tree::PROJECTIONS[*t], k.clone(), vec![0xde, 0xad]),
            }
        }
        store.commit(&batch, true).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let space = both_spaces(dir.path())[usize::from(on_disk)].clone();
        replay::rebuild(&*store, &secrets(), &space, &mut |_| ()).unwrap();
        prop_assert_eq!(&healthy, &projections(&store));
        verify_store(&*store, Some(log_key().public()), Some(&secrets()), &space, &mut |_| ()).unwrap();
    }
}

#[test]
fn rebuild_from_nothing_and_reopen_after_an_interrupted_rebuild() {
    let (store, _) =
        run(&(0..40).map(|i| if i % 3 == 2 { Op::Link(i, i % 3, i) } else { Op::Register(i) }).collect::<Vec<_>>(), 5);
    let healthy = projections(&store);
    // Every projection entry gone, as after an interrupted first rebuild.
    remove_every_entry(&store, &healthy);
    assert!(replay::applied(&*store).unwrap().is_none());
    // Opening the registry finds no applied markers and rebuilds.
    let dyn_store: std::sync::Arc<dyn Storage> = store.clone();
    let access: std::sync::Arc<dyn Storage> = std::sync::Arc::new(registry_core::storage::memory::MemoryStore::new());
    let registry =
        registry_core::registry::Registry::open(dyn_store, access, secrets(), log_key(), Default::default()).unwrap();
    registry.close();
    assert_eq!(healthy, projections(&store));
}

/// A store that refuses every commit after the first `allowed`: a rebuild cut short
/// there, as by a crash (nothing after the refused commit is written).
struct CutShort {
    inner: std::sync::Arc<MemoryStore>,
    allowed: std::sync::atomic::AtomicUsize,
}

impl CutShort {
    fn refuse(&self) -> Result<(), registry_core::storage::StorageError> {
        let left = self.allowed.load(std::sync::atomic::Ordering::SeqCst);
        if left == 0 {
            return Err(registry_core::storage::StorageError::Engine("cut short".into()));
        }
        self.allowed.store(left - 1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

impl Storage for CutShort {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, registry_core::storage::StorageError> {
        self.inner.get(tree, key)
    }
    registry_core::forward_scans!(inner);
    fn commit(
        &self,
        batch: &registry_core::storage::WriteBatch,
        durable: bool,
    ) -> Result<(), registry_core::storage::StorageError> {
        self.refuse()?;
        self.inner.commit(batch, durable)
    }
    fn flush(&self) -> Result<(), registry_core::storage::StorageError> {
        Ok(())
    }
}

/// However far a rebuild got before it stopped, the store either says its projections
/// have applied nothing (so the next open rebuilds) or holds them whole: the applied
/// markers are written only after every other tree.
#[test]
fn a_rebuild_cut_short_anywhere_leaves_no_applied_marker_on_partial_projections() {
    let ops: Vec<Op> = (0..40).map(|i| if i % 3 == 2 { Op::Link(i, i % 3, i) } else { Op::Register(i) }).collect();
    let mut cut_short = 0;
    for allowed in 0.. {
        let (inner, _) = run(&ops, 5);
        let healthy = projections(&inner);
        // Every projection entry gone: each tree then needs a commit of its own.
        remove_every_entry(&inner, &healthy);
        let store = CutShort { inner: inner.clone(), allowed: allowed.into() };
        match replay::rebuild(&store, &secrets(), &FoldSpace::IN_MEMORY, &mut |_| ()) {
            Ok(_) => {
                assert!(projections(&inner) == healthy, "a finished rebuild restores everything");
                break;
            }
            Err(_) => {
                cut_short += 1;
                let whole = projections(&inner) == healthy;
                let marked = replay::applied(&*inner).unwrap().is_some();
                assert!(!marked || whole, "marked applied over partial projections after {allowed} commits");
            }
        }
    }
    // The unmarking, then the trees that differ (all nine), each a commit.
    assert!(cut_short >= 10, "the rebuild was cut short at only {cut_short} places");
}

/// A person from a small pool of names and birth dates a few days and years apart,
/// so that namesakes born on the same, near and different dates abound.
fn namesake() -> impl Strategy<Value = registry_core::demographics::Demographics> {
    use registry_core::demographics::{Demographics, Sex};
    let name = || proptest::sample::select(vec!["Wanjiru", "Kamau", "Wanjiro"]);
    let other = proptest::option::weighted(0.3, name());
    (name(), name(), other, 1989i32..=1991, 1u8..=2, 1u8..=2, proptest::bool::weighted(0.9)).prop_map(
        |(given, family, other, year, month, day, nyeri)| Demographics {
            given_name: given.into(),
            family_name: family.into(),
            other_names: other.into_iter().map(String::from).collect(),
            date_of_birth: format!("{year}-{month:02}-{day:02}"),
            sex: Sex::Female,
            place_of_birth: if nyeri { "Nyeri" } else { "Kisumu" }.into(),
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// The enrolment's search (at the threshold it reads only the name blocks a near
    /// date can be in) finds exactly the candidates at or above the threshold that
    /// `FindDuplicates`' wider search (every month of the years either side) finds.
    #[test]
    fn the_enrolment_search_finds_all_the_wide_search_finds_above_the_threshold(
        registered in proptest::collection::vec(namesake(), 1..160),
        probes in proptest::collection::vec(namesake(), 1..24),
    ) {
        use registry_core::dedup::{self, REPORT_FLOOR, THRESHOLD};
        let (store, mut writer) = memory_writer();
        writer.set_duplicate_threshold(None);
        let submissions: Vec<_> = registered
            .iter()
            .enumerate()
            .map(|(i, d)| submission(format!("n{i}"), Command::RegisterPerson { demographics: d.clone() }))
            .collect();
        for result in writer.execute_batch(&submissions) {
            prop_assert!(result.is_ok(), "{result:?}");
        }
        let view = registry_core::storage::view::View::new(&*store);
        let secrets = secrets();
        for probe in &probes {
            let narrow = dedup::find(&view, &secrets, probe, THRESHOLD, usize::MAX, None).unwrap();
            let mut wide = dedup::find(&view, &secrets, probe, REPORT_FLOOR, usize::MAX, None).unwrap();
            wide.retain(|c| c.score >= THRESHOLD);
            prop_assert_eq!(&narrow, &wide, "{:?}", probe);
        }
    }
}

/// A command of the test below: on namesakes, so that blocks are crowded and the
/// searches examine many block-mates, some of them changed earlier in the same batch.
#[derive(Debug, Clone)]
enum AheadOp {
    Register(registry_core::demographics::Demographics),
    Override(registry_core::demographics::Demographics),
    /// Correct the n-th person registered so far (modulo their count).
    Correct(usize, registry_core::demographics::Demographics),
    CorrectOverriding(usize, registry_core::demographics::Demographics),
    Erase(usize),
    Merge(usize, usize),
    /// Undo the k-th merge made so far.
    Unmerge(usize),
}

fn ahead_op() -> impl Strategy<Value = AheadOp> {
    let i = 0usize..64;
    prop_oneof![
        4 => namesake().prop_map(AheadOp::Register),
        4 => namesake().prop_map(AheadOp::Override),
        1 => (i.clone(), namesake()).prop_map(|(i, d)| AheadOp::Correct(i, d)),
        1 => (i.clone(), namesake()).prop_map(|(i, d)| AheadOp::CorrectOverriding(i, d)),
        1 => i.clone().prop_map(AheadOp::Erase),
        1 => (i.clone(), i.clone()).prop_map(|(a, b)| AheadOp::Merge(a, b)),
        1 => i.prop_map(AheadOp::Unmerge),
    ]
}

/// What of a command's answer does not depend on the time or the data keys drawn.
fn answer(result: &Result<registry_core::command::Outcome, CommandError>) -> String {
    match result {
        Ok(outcome) => format!("ok {:?} at {}", outcome.number, outcome.receipt.index),
        Err(e) => format!("{e:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A batch's searches find the same candidates, with the same scores, whether the
    /// block-mates they examine were opened ahead (on a second thread, from the batch's
    /// last registration backwards, through a view of the store as the batch began) or
    /// by each search in turn, even where the batch itself registered, corrected,
    /// merged, unmerged or erased one of them before the search: every command gets the same
    /// answer and the projections the search reads are equal.
    #[test]
    fn a_batchs_searches_find_the_same_with_block_mates_opened_ahead(
        ops in proptest::collection::vec(ahead_op(), 1..120),
        batch in 2usize..40,
    ) {
        use registry_core::writer::OpenAhead;
        let (ahead_store, mut ahead) = memory_writer();
        let (alone_store, mut alone) = memory_writer();
        ahead.set_open_ahead(OpenAhead::Always);
        alone.set_open_ahead(OpenAhead::Never);
        let mut numbers: Vec<HudumaNumber> = Vec::new();
        let mut merged: Vec<HudumaNumber> = Vec::new();
        for (c, chunk) in ops.chunks(batch).enumerate() {
            let pick = |i: usize| numbers.get(i % numbers.len().max(1)).copied();
            let submissions: Vec<Submission> = chunk
                .iter()
                .enumerate()
                .filter_map(|(k, op)| {
                    let command = match op {
                        AheadOp::Register(d) => Some(Command::RegisterPerson { demographics: d.clone() }),
                        AheadOp::Override(d) => Some(Command::RegisterPersonOverridingDuplicates {
                            demographics: d.clone(),
                            justification: "a namesake, seen in person".into(),
                        }),
                        AheadOp::Correct(i, d) => {
                            pick(*i).map(|number| Command::CorrectDemographics { number, demographics: d.clone() })
                        }
                        AheadOp::CorrectOverriding(i, d) => {
                            pick(*i).map(|number| Command::CorrectDemographicsOverridingDuplicates {
                                number,
                                demographics: d.clone(),
                                justification: "a namesake, seen in person".into(),
                            })
                        }
                        AheadOp::Erase(i) => {
                            pick(*i).map(|number| Command::ErasePersonalData { number, legal_basis: "request".into() })
                        }
                        AheadOp::Merge(a, b) => pick(*a).zip(pick(*b)).map(|(survivor, duplicate)| Command::MergeRecords {
                            survivor,
                            duplicate,
                            justification: "duplicate enrolment".into(),
                        }),
                        AheadOp::Unmerge(k) => merged.get(k % merged.len().max(1)).map(|duplicate| {
                            Command::UnmergeRecords { duplicate: *duplicate, justification: "two persons".into() }
                        }),
                    };
                    command.map(|command| submission(format!("a-{c}-{k}"), command))
                })
                .collect();
            let with = ahead.execute_batch(&submissions);
            let without = alone.execute_batch(&submissions);
            for ((s, a), b) in submissions.iter().zip(&with).zip(&without) {
                prop_assert_eq!(answer(a), answer(b), "{:?}", s.command);
                if let Err(CommandError::Internal(e)) = a {
                    prop_assert!(false, "internal error: {}", e);
                }
                if let Ok(registry_core::command::Outcome { number: Some(number), .. }) = a
                    && !numbers.contains(number)
                {
                    numbers.push(*number);
                }
                if let (Ok(_), Command::MergeRecords { duplicate, .. }) = (a, &s.command) {
                    merged.push(*duplicate);
                }
            }
        }
        for tree in [Tree::Numbers, Tree::MatchKeys, Tree::NameCounts, Tree::Requests] {
            prop_assert_eq!(ahead_store.snapshot(tree).unwrap(), alone_store.snapshot(tree).unwrap(), "{}", tree.name());
        }
    }
}
