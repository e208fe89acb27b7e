//! Every command against a real registry: what it changes, what it refuses, and that a
//! refusal writes nothing.

mod common;

use common::*;
use registry_core::HudumaNumber;
use registry_core::command::{Command, CommandError, ErrorClass};
use registry_core::event::ReplacementReason;
use registry_core::projection::state::PersonStatus;
use registry_core::query::ResolvedStatus;
use registry_core::registry::{OpenError, Registry, RegistryOptions};
use registry_core::replay::FoldSpace;
use registry_core::verify::verify_store;
use registry_core::writer::WriterError;

fn open(dir: &std::path::Path) -> Registry {
    Registry::open_dir(dir, secrets(), log_key(), RegistryOptions::default()).expect("open registry")
}

fn register(registry: &Registry, id: &str, i: usize) -> HudumaNumber {
    registry
        .submit_blocking(submission(id, Command::RegisterPerson { demographics: person(i) }))
        .expect("register")
        .number
        .expect("a number is issued")
}

fn size(registry: &Registry) -> u64 {
    registry.reader().log_size().unwrap()
}

#[test]
fn register_resolve_and_restart_keep_everything() {
    let dir = tempfile::tempdir().unwrap();
    let (number, outcome_index) = {
        let registry = open(dir.path());
        let outcome =
            registry.submit_blocking(submission("r-1", Command::RegisterPerson { demographics: person(1) })).unwrap();
        assert_eq!(outcome.receipt.index, 1, "record 0 is the genesis record");
        let number = outcome.number.unwrap();
        let resolved = registry.reader().resolve_number(number).unwrap().unwrap();
        assert_eq!(resolved.status, ResolvedStatus::Active);
        assert_eq!(resolved.current_number, number);
        assert_eq!(resolved.demographics, Some(person(1)));
        registry.close();
        (number, outcome.receipt.index)
    };
    let registry = open(dir.path());
    let resolved = registry.reader().resolve_number(number).unwrap().unwrap();
    assert_eq!(resolved.demographics, Some(person(1)));
    // The same request id after a restart returns the first answer, not a new number.
    let again =
        registry.submit_blocking(submission("r-1", Command::RegisterPerson { demographics: person(1) })).unwrap();
    assert_eq!(again.number, Some(number));
    assert_eq!(again.receipt.index, outcome_index);
    assert_eq!(size(&registry), 2);
    let report = verify_whole(&**registry.store()).unwrap();
    assert_eq!(report.records, 2);
    assert!(report.projections_checked);
}

/// After a restart the presence filter holds what was stored before it: a repeated
/// request id still returns its first answer and a re-enrolment is still refused,
/// with the filter serving (their reads are not skipped) while new ids' reads are.
#[test]
fn after_a_restart_the_presence_filter_knows_every_stored_request_and_block() {
    let dir = tempfile::tempdir().unwrap();
    let first: Vec<HudumaNumber> = {
        let registry = open(dir.path());
        let numbers = (0..40).map(|i| register(&registry, &format!("r-{i}"), i)).collect();
        registry.close();
        numbers
    };
    let registry = open(dir.path());
    registry.wait_for_presence_filter();
    let stats = registry.presence_filter_stats().expect("open_dir puts a presence filter in front of the store");
    assert!(stats.ready);
    assert!(stats.entered >= 40, "the 40 request ids at least: {stats:?}");
    for (i, number) in first.iter().enumerate() {
        let again = registry
            .submit_blocking(submission(format!("r-{i}"), Command::RegisterPerson { demographics: person(i) }))
            .unwrap();
        assert_eq!(again.number, Some(*number), "request r-{i} answered as the first time");
    }
    let twice = registry.submit_blocking(submission("r-again", Command::RegisterPerson { demographics: person(3) }));
    assert!(
        matches!(twice, Err(CommandError::PossibleDuplicate { .. })),
        "a stored person's blocks are found through the filter: {twice:?}"
    );
    let skipped = registry.presence_filter_stats().unwrap().skipped;
    register(&registry, "r-new", 1_000);
    assert!(registry.presence_filter_stats().unwrap().skipped > skipped, "a new request id's read was skipped");
    assert_eq!(size(&registry), 42);
}

#[test]
fn no_personal_data_reaches_the_data_directory_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let mut demographics = person(2);
    demographics.given_name = "Nyokabisentinel".into();
    demographics.place_of_birth = "Kakamegasentinel".into();
    // Callers choose their request ids, and may put personal data in them.
    let registered =
        registry.submit_blocking(submission("birth-cert-REQSENTINEL9", Command::RegisterPerson { demographics }));
    let number = registered.unwrap().number.unwrap();
    // An agency's id for the person, in every projection a link reaches: the link
    // itself, the person's entry, the agency's change stream, and a merge's survivor.
    let other = register(&registry, "p-2", 5);
    let link = |id: &str, number, agency: &str, record_id: &str| {
        let command = Command::LinkAgencyRecord { number, agency: agency.into(), record_id: record_id.into() };
        registry.submit_blocking(submission(id, command)).unwrap();
    };
    link("l-1", number, "KRA", "KRASENTINEL1");
    link("l-2", other, "NHIF", "NHIFSENTINEL2");
    let merge = Command::MergeRecords { survivor: number, duplicate: other, justification: "one person".into() };
    registry.submit_blocking(submission("m-1", merge)).unwrap();
    let death = Command::RecordDeath { number, date_of_death: "1999-09-19".into() };
    registry.submit_blocking(submission("d-1", death)).unwrap();
    let resolved = registry.reader().resolve_agency_record("NHIF", "NHIFSENTINEL2").unwrap().unwrap();
    assert_eq!(resolved.current_number, number, "the merged link resolves to the survivor");
    assert_eq!(resolved.date_of_death.as_deref(), Some("1999-09-19"));
    let records: Vec<(String, String)> =
        [("KRA", "KRASENTINEL1"), ("NHIF", "NHIFSENTINEL2")].map(|(a, r)| (a.into(), r.into())).into();
    assert_eq!(registry.reader().agency_records(&resolved, |_| true).unwrap(), records);
    let nhif_only = [("NHIF".to_string(), "NHIFSENTINEL2".to_string())];
    assert_eq!(registry.reader().agency_records(&resolved, |agency| agency == "NHIF").unwrap(), nhif_only);
    let changes = registry.reader().agency_changes("NHIF", 0, 16).unwrap();
    assert!(changes.iter().all(|(_, c)| c.records == ["NHIFSENTINEL2"]), "{changes:?}");
    assert_eq!(changes.len(), 3, "linked, merged, deceased");
    registry.close();
    let needles =
        ["Nyokabisentinel", "Kakamegasentinel", "KRASENTINEL1", "NHIFSENTINEL2", "1999-09-19", "REQSENTINEL9"]
            .map(str::as_bytes);
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} in plaintext in {}",
                String::from_utf8_lossy(needle),
                entry.display()
            );
        }
    }
}

/// A store created before the request index was keyed by hashes holds its entries
/// under the principal and the request id in clear: a retry of such a request still
/// gets its first answer, and what is new is stored hashed.
#[test]
fn a_request_first_made_before_the_index_was_hashed_is_still_answered_once() {
    use registry_core::storage::{Tree, WriteBatch};
    use registry_core::writer::{REQUEST_KEYS_HASHED, legacy_request_key};
    let principal = registrar().principal;
    let dir = tempfile::tempdir().unwrap();
    let (first, size_before) = {
        let registry = open(dir.path());
        let first = registry
            .submit_blocking(submission("old-request", Command::RegisterPerson { demographics: person(6) }))
            .unwrap();
        // As the earlier version left the store: no mark, the entry under its clear key.
        let hashed = secrets().request_key(&principal, "old-request").to_vec();
        let entry = registry.store().get(Tree::Requests, &hashed).unwrap().expect("the entry is under its hash");
        let mut legacy = WriteBatch::default();
        legacy.remove(Tree::Requests, hashed);
        legacy.put(Tree::Requests, legacy_request_key(&principal, "old-request"), entry);
        legacy.remove(Tree::Settings, REQUEST_KEYS_HASHED.to_vec());
        registry.store().commit(&legacy, true).unwrap();
        let size_before = size(&registry);
        registry.close();
        (first, size_before)
    };
    let registry = open(dir.path());
    let again = registry
        .submit_blocking(submission("old-request", Command::RegisterPerson { demographics: person(6) }))
        .unwrap();
    assert_eq!((again.number, again.receipt.index), (first.number, first.receipt.index), "the first answer");
    assert_eq!(size(&registry), size_before, "nothing appended");
    let other = Command::RegisterPerson { demographics: person(7) };
    assert!(matches!(
        registry.submit_blocking(submission("old-request", other)),
        Err(CommandError::RequestIdReused(_))
    ));
    register(&registry, "new-request", 8);
    let hashed = secrets().request_key(&principal, "new-request").to_vec();
    assert!(registry.store().get(Tree::Requests, &hashed).unwrap().is_some(), "a new entry is hashed");
    let clear = legacy_request_key(&principal, "new-request");
    assert!(registry.store().get(Tree::Requests, &clear).unwrap().is_none());
}

/// The log is what auditors download: an agency's record id and a date of death are
/// in it only sealed (under the agency's record key and the person's data key), yet
/// links resolve and unlink as before, and an erasure takes the date with the rest of
/// the person's data.
#[test]
fn the_log_holds_agency_record_ids_and_dates_of_death_only_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let (a, b) = (register(&registry, "a", 3), register(&registry, "b", 4));
    let link = |id: &str, number, record_id: &str| {
        let command = Command::LinkAgencyRecord { number, agency: "KRA".into(), record_id: record_id.into() };
        registry.submit_blocking(submission(id, command)).unwrap();
    };
    link("l-1", a, "A0SENTINEL1Z");
    link("l-2", b, "A0SENTINEL2Z");
    link("l-3", b, "A0SENTINEL3Z");
    let unlink = Command::UnlinkAgencyRecord { number: b, agency: "KRA".into(), record_id: "A0SENTINEL3Z".into() };
    registry.submit_blocking(submission("u-1", unlink)).unwrap();
    let death = Command::RecordDeath { number: a, date_of_death: "2019-11-23".into() };
    registry.submit_blocking(submission("d-1", death)).unwrap();
    let reader = registry.reader();
    let by_record = reader.resolve_agency_record("KRA", "A0SENTINEL1Z").unwrap().unwrap();
    assert_eq!(by_record.current_number, a);
    assert_eq!(by_record.status, ResolvedStatus::Deceased);
    assert_eq!(by_record.date_of_death.as_deref(), Some("2019-11-23"));
    assert!(reader.resolve_agency_record("KRA", "A0SENTINEL3Z").unwrap().is_none(), "unlinked");
    let erase = Command::ErasePersonalData { number: a, legal_basis: "DPA 2019 s.40".into() };
    registry.submit_blocking(submission("e-1", erase)).unwrap();
    let erased = reader.resolve_number(a).unwrap().unwrap();
    assert_eq!((erased.status, erased.date_of_death), (ResolvedStatus::Erased, None));
    assert_eq!(reader.resolve_agency_record("KRA", "A0SENTINEL2Z").unwrap().unwrap().current_number, b);

    let mut log = Vec::new();
    registry_core::log_export::export_log(&**registry.store(), &mut log).unwrap();
    for needle in ["A0SENTINEL1Z", "A0SENTINEL2Z", "A0SENTINEL3Z", "2019-11-23"] {
        assert!(!log.windows(needle.len()).any(|w| w == needle.as_bytes()), "the log shows {needle} in clear");
    }
    let report = verify_whole(&**registry.store()).unwrap();
    assert!(report.projections_checked, "the projections equal a fresh fold of the sealed events");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn replacement_supersedes_for_ever_and_old_number_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let old = register(&registry, "a", 3);
    let replaced = registry
        .submit_blocking(submission("b", Command::ReplaceNumber { number: old, reason: ReplacementReason::Lost }))
        .unwrap();
    let new = replaced.number.unwrap();
    assert_ne!(new, old);
    let via_old = registry.reader().resolve_number(old).unwrap().unwrap();
    assert_eq!(via_old.status, ResolvedStatus::Superseded);
    assert_eq!(via_old.current_number, new);
    assert_eq!(registry.reader().resolve_number(new).unwrap().unwrap().status, ResolvedStatus::Active);
    let before = size(&registry);
    let err = registry
        .submit_blocking(submission("c", Command::ReplaceNumber { number: old, reason: ReplacementReason::Lost }))
        .unwrap_err();
    assert_eq!(err, CommandError::NumberSuperseded { number: old, current: new });
    assert_eq!(err.class(), ErrorClass::FailedPrecondition);
    assert_eq!(size(&registry), before, "a refusal writes nothing");
}

#[test]
fn agency_links_resolve_and_a_record_belongs_to_one_person() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let a = register(&registry, "a", 4);
    let b = register(&registry, "b", 5);
    let link = |id: &str, number, record: &str| {
        registry.submit_blocking(submission(
            id,
            Command::LinkAgencyRecord { number, agency: "KRA".into(), record_id: record.into() },
        ))
    };
    link("l1", a, "A001").unwrap();
    let resolved = registry.reader().resolve_agency_record("KRA", "A001").unwrap().unwrap();
    assert_eq!(resolved.current_number, a);
    let records = registry.reader().agency_records(&resolved, |_| true).unwrap();
    assert_eq!(records, vec![("KRA".to_string(), "A001".to_string())]);
    let before = size(&registry);
    let err = link("l2", b, "A001").unwrap_err();
    assert_eq!(
        err,
        CommandError::RecordAlreadyLinked { agency: "KRA".into(), record_id: "A001".into(), to_this_person: false }
    );
    assert_eq!(err.class(), ErrorClass::AlreadyExists);
    assert_eq!(size(&registry), before);
    let unlink = |id: &str, number| {
        registry.submit_blocking(submission(
            id,
            Command::UnlinkAgencyRecord { number, agency: "KRA".into(), record_id: "A001".into() },
        ))
    };
    assert_eq!(
        unlink("u0", b).unwrap_err(),
        CommandError::LinkNotFound { agency: "KRA".into(), record_id: "A001".into() }
    );
    unlink("u1", a).unwrap();
    assert!(registry.reader().resolve_agency_record("KRA", "A001").unwrap().is_none());
    link("l3", b, "A001").unwrap();
    assert_eq!(registry.reader().resolve_agency_record("KRA", "A001").unwrap().unwrap().current_number, b);
}

#[test]
fn agency_changes_name_each_record_that_touched_a_linked_person() {
    use registry_core::event::kind;
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let a = register(&registry, "a", 1);
    let b = register(&registry, "b", 2);
    let c = register(&registry, "c", 3);
    let go = |id: &str, command| registry.submit_blocking(submission(id, command)).unwrap().receipt.index;
    let link = |number, agency: &str, record: &str| Command::LinkAgencyRecord {
        number,
        agency: agency.into(),
        record_id: record.into(),
    };
    let l1 = go("l1", link(a, "KRA", "K-1"));
    let l2 = go("l2", link(b, "NHIF", "N-2"));
    go("x", Command::RevokeNumber { number: c, reason: "no link: nobody is told".into() });
    let replaced = go("r", Command::ReplaceNumber { number: a, reason: ReplacementReason::Lost });
    let survivor = registry.reader().resolve_number(a).unwrap().unwrap().current_number;
    let merged = go("m", Command::MergeRecords { survivor, duplicate: b, justification: "same person".into() });
    let unlinked =
        go("u", Command::UnlinkAgencyRecord { number: survivor, agency: "NHIF".into(), record_id: "N-2".into() });
    let reader = registry.reader();
    let kra = reader.agency_changes("KRA", 0, 100).unwrap();
    let kinds: Vec<(u64, u16)> = kra.iter().map(|(seq, c)| (*seq, c.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (l1, kind::AGENCY_RECORD_LINKED),
            (replaced, kind::NUMBER_REPLACED),
            (merged, kind::RECORDS_MERGED),
            // The survivor is linked with KRA, so KRA hears of the NHIF unlink too.
            (unlinked, kind::AGENCY_RECORD_UNLINKED),
        ]
    );
    assert_eq!(kra[3].1.records, vec!["K-1".to_string()], "KRA is told of its own records only");
    let current = survivor;
    assert_ne!(current, a);
    assert_eq!(kra[1].1.number, current, "the change carries the number in force");
    assert_eq!(kra[1].1.records, vec!["K-1".to_string()]);
    let nhif = reader.agency_changes("NHIF", 0, 100).unwrap();
    let seqs: Vec<u64> = nhif.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, vec![l2, merged, unlinked], "the merge moved N-2 to the survivor, then it was unlinked");
    assert_eq!(nhif[1].1.number, current, "a merge is reported on the survivor");
    assert_eq!(nhif[2].1.records, vec!["N-2".to_string()], "an unlink names the record it removed");
    // Resuming from an index skips what came before; another agency's prefix is not read.
    assert_eq!(reader.agency_changes("NHIF", merged + 1, 100).unwrap().len(), 1);
    assert!(reader.agency_changes("KR", 0, 100).unwrap().is_empty());
}

#[test]
fn revoke_reinstate_death_and_their_preconditions() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let n = register(&registry, "a", 6);
    let revoke = |id: &str| {
        registry.submit_blocking(submission(id, Command::RevokeNumber { number: n, reason: "fraud".into() }))
    };
    let reinstate = |id: &str| {
        registry.submit_blocking(submission(id, Command::ReinstateNumber { number: n, reason: "cleared".into() }))
    };
    assert!(matches!(reinstate("x").unwrap_err(), CommandError::StatusForbids { status: PersonStatus::Active, .. }));
    revoke("r").unwrap();
    assert_eq!(registry.reader().resolve_number(n).unwrap().unwrap().status, ResolvedStatus::Revoked);
    let link = registry
        .submit_blocking(submission(
            "l",
            Command::LinkAgencyRecord { number: n, agency: "NHIF".into(), record_id: "9".into() },
        ))
        .unwrap_err();
    assert!(matches!(link, CommandError::StatusForbids { status: PersonStatus::Revoked, .. }));
    reinstate("i").unwrap();
    assert_eq!(registry.reader().resolve_number(n).unwrap().unwrap().status, ResolvedStatus::Active);
    let death = |id: &str, date: &str| {
        registry.submit_blocking(submission(id, Command::RecordDeath { number: n, date_of_death: date.into() }))
    };
    let err = death("d0", "2999-01-01").unwrap_err();
    assert!(matches!(&err, CommandError::InvalidArgument(f) if f.field == "date_of_death"), "{err}");
    death("d1", "2024-05-01").unwrap();
    let resolved = registry.reader().resolve_number(n).unwrap().unwrap();
    assert_eq!(resolved.status, ResolvedStatus::Deceased);
    assert_eq!(resolved.date_of_death.as_deref(), Some("2024-05-01"));
    assert!(matches!(revoke("r2").unwrap_err(), CommandError::StatusForbids { status: PersonStatus::Deceased, .. }));
}

/// A death recorded in error is withdrawn: the person is again what they were when it
/// was recorded (active, or revoked), with no date of death; their agencies are told;
/// the retraction is in their history. A person not deceased is refused, as is a blank
/// reason, writing nothing.
#[test]
fn a_death_recorded_in_error_is_retracted() {
    use registry_core::event::kind;
    use registry_core::history::shown;
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let go = |id: &str, command| registry.submit_blocking(submission(id, command));
    let alive = register(&registry, "a", 1);
    let revoked = register(&registry, "r", 2);
    let erased = register(&registry, "e", 3);
    go("l1", Command::LinkAgencyRecord { number: alive, agency: "NSSF".into(), record_id: "S1".into() }).unwrap();
    go("r1", Command::RevokeNumber { number: revoked, reason: "documents under review".into() }).unwrap();
    for (id, number) in [("d1", alive), ("d2", revoked), ("d3", erased)] {
        go(id, Command::RecordDeath { number, date_of_death: "2025-06-30".into() }).unwrap();
    }
    go("e1", Command::ErasePersonalData { number: erased, legal_basis: "DPA 2019 s.40".into() }).unwrap();
    let retract = |id: &str, number, reason: &str| go(id, Command::RetractDeath { number, reason: reason.into() });

    let before = size(&registry);
    let err = retract("x1", alive, " ").unwrap_err();
    assert!(matches!(&err, CommandError::InvalidArgument(f) if f.field == "reason"), "{err}");
    let err = retract("x2", erased, "alive").unwrap_err();
    assert!(
        matches!(err, CommandError::StatusForbids { action: "retract a death", status: PersonStatus::Erased, .. }),
        "{err}"
    );
    let never = HudumaNumber::with_check_digit(23_456_789_012).unwrap();
    assert_eq!(retract("x3", never, "alive").unwrap_err(), CommandError::NumberNotFound(never));
    assert_eq!(size(&registry), before, "the refusals wrote nothing");

    let retracted = retract("t1", alive, "appeared in person at the centre").unwrap().receipt.index;
    retract("t2", revoked, "appeared in person at the centre").unwrap();
    let reader = registry.reader();
    let resolved = reader.resolve_number(alive).unwrap().unwrap();
    assert_eq!((resolved.status, resolved.date_of_death), (ResolvedStatus::Active, None));
    assert_eq!(resolved.demographics, Some(person(1)));
    let resolved = reader.resolve_number(revoked).unwrap().unwrap();
    assert_eq!((resolved.status, resolved.date_of_death), (ResolvedStatus::Revoked, None), "revoked before it");

    let nssf = reader.agency_changes("NSSF", retracted, 10).unwrap();
    let change = &nssf.first().expect("NSSF is told the person is alive").1;
    assert_eq!((change.kind, change.number, change.status), (kind::DEATH_RETRACTED, alive, PersonStatus::Active));
    assert_eq!(change.records, vec!["S1".to_string()]);
    let history = reader.history(alive, 0, usize::MAX).unwrap().unwrap().records;
    let last = history.last().map(|r| (r.index, shown(&r.event)));
    assert_eq!(
        last.as_ref().map(|(i, s)| (*i, s.event, s.detail.as_str())),
        Some((retracted, "DeathRetracted", "appeared in person at the centre"))
    );

    // Alive again: the active one can be linked, the revoked one reinstated; neither
    // retracted twice.
    go("l2", Command::LinkAgencyRecord { number: alive, agency: "KRA".into(), record_id: "K1".into() }).unwrap();
    let err = retract("x4", alive, "again").unwrap_err();
    assert!(matches!(err, CommandError::StatusForbids { status: PersonStatus::Active, .. }), "{err}");
    let err = retract("x5", revoked, "again").unwrap_err();
    assert!(matches!(err, CommandError::StatusForbids { status: PersonStatus::Revoked, .. }), "{err}");
    go("i1", Command::ReinstateNumber { number: revoked, reason: "review closed".into() }).unwrap();
    assert_eq!(reader.resolve_number(revoked).unwrap().unwrap().status, ResolvedStatus::Active);
    let report = verify_whole(&**registry.store()).unwrap();
    assert!(report.projections_checked, "the live projections equal a fresh fold");
}

#[test]
fn corrections_merges_and_erasure() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let survivor = register(&registry, "s", 7);
    let duplicate = register(&registry, "d", 8);
    let corrected = person(9);
    registry
        .submit_blocking(submission(
            "c",
            Command::CorrectDemographics { number: survivor, demographics: corrected.clone() },
        ))
        .unwrap();
    assert_eq!(registry.reader().resolve_number(survivor).unwrap().unwrap().demographics, Some(corrected.clone()));
    let link = |id: &str, number, agency: &str, record: &str| {
        registry
            .submit_blocking(submission(
                id,
                Command::LinkAgencyRecord { number, agency: agency.into(), record_id: record.into() },
            ))
            .unwrap()
    };
    link("l1", survivor, "KRA", "S1");
    link("l2", duplicate, "KRA", "D1");
    link("l3", duplicate, "NHIF", "N1");
    let merge = |id: &str| {
        registry.submit_blocking(submission(
            id,
            Command::MergeRecords { survivor, duplicate, justification: "same person, two enrolments".into() },
        ))
    };
    assert_eq!(
        merge("m0").unwrap_err(),
        CommandError::MergeConflict {
            agency: "KRA".into(),
            survivor_record: "S1".into(),
            duplicate_record: "D1".into()
        }
    );
    registry
        .submit_blocking(submission(
            "u",
            Command::UnlinkAgencyRecord { number: duplicate, agency: "KRA".into(), record_id: "D1".into() },
        ))
        .unwrap();
    merge("m1").unwrap();
    let via_duplicate = registry.reader().resolve_number(duplicate).unwrap().unwrap();
    assert_eq!(via_duplicate.status, ResolvedStatus::Merged);
    assert_eq!(via_duplicate.current_number, survivor);
    assert_eq!(registry.reader().resolve_agency_record("NHIF", "N1").unwrap().unwrap().current_number, survivor);
    registry
        .submit_blocking(submission(
            "e",
            Command::ErasePersonalData { number: survivor, legal_basis: "DPA 2019 s.40 request".into() },
        ))
        .unwrap();
    let erased = registry.reader().resolve_number(survivor).unwrap().unwrap();
    assert_eq!(erased.status, ResolvedStatus::Erased);
    assert_eq!(erased.demographics, None);
    assert!(erased.agency_records.is_empty());
    let report = verify_whole(&**registry.store()).unwrap();
    assert!(report.projections_checked, "the log still verifies after erasure");
}

/// A mistaken merge is undone: the duplicate is a person of their own again, active,
/// in the duplicate search, with the records their merge moved that the survivor still
/// holds (one unlinked since stays unlinked; one linked to the survivor since stays the
/// survivor's, even one the merge moved, unlinked from them and linked to them again). Agencies whose records went back are told, on the duplicate. What may
/// not be unmerged is refused by name and writes nothing.
#[test]
fn a_mistaken_merge_is_undone() {
    use registry_core::event::kind;
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let survivor = register(&registry, "s", 7);
    let duplicate = register(&registry, "d", 8);
    let go = |id: &str, command| registry.submit_blocking(submission(id, command));
    let link = |number, agency: &str, record: &str| Command::LinkAgencyRecord {
        number,
        agency: agency.into(),
        record_id: record.into(),
    };
    go("l1", link(duplicate, "NHIF", "N1")).unwrap();
    go("l2", link(duplicate, "KRA", "D1")).unwrap();
    go("l5", link(duplicate, "KRA", "D2")).unwrap();
    go("l3", link(survivor, "NTSA", "T1")).unwrap();
    let merge = |id: &str, survivor, duplicate| {
        go(id, Command::MergeRecords { survivor, duplicate, justification: "one person".into() })
    };
    merge("m1", survivor, duplicate).unwrap();
    go("l4", link(survivor, "NSSF", "X9")).unwrap();
    go("u1", Command::UnlinkAgencyRecord { number: survivor, agency: "KRA".into(), record_id: "D1".into() }).unwrap();
    go("ul2", Command::UnlinkAgencyRecord { number: survivor, agency: "KRA".into(), record_id: "D2".into() }).unwrap();
    go("l6", link(survivor, "KRA", "D2")).unwrap();
    let unmerge = |id: &str, duplicate, justification: &str| {
        go(id, Command::UnmergeRecords { duplicate, justification: justification.into() })
    };

    let before = size(&registry);
    let err = unmerge("x1", survivor, "two persons").unwrap_err();
    assert!(
        matches!(err, CommandError::StatusForbids { action: "unmerge", status: PersonStatus::Active, .. }),
        "{err}"
    );
    let err = unmerge("x2", duplicate, " ").unwrap_err();
    assert!(matches!(&err, CommandError::InvalidArgument(f) if f.field == "justification"), "{err}");
    let never: HudumaNumber = "234567890124".parse().unwrap();
    assert_eq!(unmerge("x3", never, "two persons").unwrap_err(), CommandError::NumberNotFound(never));
    assert_eq!(size(&registry), before, "the refusals wrote nothing");

    let undone = unmerge("um", duplicate, "two persons: fingerprints differ").unwrap().receipt.index;
    let reader = registry.reader();
    let records = |number| {
        let r = reader.resolve_number(number).unwrap().unwrap();
        (r.status, r.current_number, reader.agency_records(&r, |_| true).unwrap())
    };
    let pair = |agency: &str, record: &str| (agency.to_string(), record.to_string());
    assert_eq!(records(duplicate), (ResolvedStatus::Active, duplicate, vec![pair("NHIF", "N1")]));
    let kept = vec![pair("KRA", "D2"), pair("NSSF", "X9"), pair("NTSA", "T1")];
    assert_eq!(records(survivor), (ResolvedStatus::Active, survivor, kept), "D2 was linked to them again");
    assert_eq!(reader.resolve_agency_record("KRA", "D2").unwrap().unwrap().current_number, survivor);
    assert_eq!(reader.resolve_number(duplicate).unwrap().unwrap().demographics, Some(person(8)));
    assert_eq!(reader.resolve_agency_record("NHIF", "N1").unwrap().unwrap().current_number, duplicate);
    assert!(reader.resolve_agency_record("KRA", "D1").unwrap().is_none(), "unlinked since the merge");
    let found = reader.find_duplicates(&person(8), 0.0, 10, None).unwrap();
    assert_eq!(found.first().map(|c| c.number), Some(duplicate), "back in the duplicate search");

    let nhif = reader.agency_changes("NHIF", undone, 10).unwrap();
    let change = &nhif.first().expect("NHIF is told its record went back").1;
    assert_eq!((change.kind, change.number, change.status), (kind::RECORDS_UNMERGED, duplicate, PersonStatus::Active));
    assert_eq!(change.records, vec!["N1".to_string()]);
    for agency in ["NTSA", "NSSF", "KRA"] {
        assert!(reader.agency_changes(agency, undone, 10).unwrap().is_empty(), "{agency}'s records did not move");
    }
    let err = unmerge("x4", duplicate, "again").unwrap_err();
    assert!(matches!(err, CommandError::StatusForbids { status: PersonStatus::Active, .. }), "{err}");

    // Merged again, and the survivor merged on into a third: that later merge is undone
    // first, naming the survivor.
    let third = register(&registry, "t", 9);
    merge("m2", survivor, duplicate).unwrap();
    merge("m3", third, survivor).unwrap();
    let err = unmerge("x5", duplicate, "two persons").unwrap_err();
    assert_eq!(err, CommandError::SurvivorMergedSince { duplicate, survivor });
    assert!(err.to_string().contains(&format!("unmerge {survivor} first")), "{err}");
    // N1, which the first of the two merges moved, unlinked from the third; the
    // survivor's merge undone; N1 linked to the survivor: it stays theirs when the
    // duplicate's merge is undone too.
    go("ul3", Command::UnlinkAgencyRecord { number: third, agency: "NHIF".into(), record_id: "N1".into() }).unwrap();
    unmerge("u2", survivor, "two persons").unwrap();
    go("l7", link(survivor, "NHIF", "N1")).unwrap();
    unmerge("u3", duplicate, "two persons").unwrap();
    assert_eq!(records(duplicate), (ResolvedStatus::Active, duplicate, vec![]));
    let kept = vec![pair("KRA", "D2"), pair("NHIF", "N1"), pair("NSSF", "X9"), pair("NTSA", "T1")];
    assert_eq!(records(survivor).2, kept);
    assert!(records(third).2.is_empty());
    let report = verify_whole(&**registry.store()).unwrap();
    assert!(report.projections_checked, "the live projections equal a fresh fold");
}

/// Two persons a registrar judged distinct stay distinct: once the search naming one
/// was overridden at the other's registration or correction, or a merge of the two was
/// undone, a correction of either is not searched against the other again (so twins
/// are not flagged, and the justification asked for, at every correction). It still is
/// against everyone else.
#[test]
fn persons_judged_distinct_are_not_searched_against_each_other_again() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let go = |id: &str, command| registry.submit_blocking(submission(id, command));
    let amina = register(&registry, "a", 1);
    let baraka = register(&registry, "b", 2);
    let twin = go(
        "t",
        Command::RegisterPersonOverridingDuplicates {
            demographics: person(1),
            justification: "twin sister, birth certificates seen".into(),
        },
    )
    .unwrap()
    .number
    .unwrap();
    let mut moved = person(1);
    moved.place_of_birth = "Mombasa".into();
    // Either twin corrected, still alike: neither is flagged as the other.
    go("c1", Command::CorrectDemographics { number: twin, demographics: moved.clone() }).expect("the twin");
    go("c2", Command::CorrectDemographics { number: amina, demographics: moved.clone() }).expect("Amina");
    // Into Baraka: he was never judged distinct from the twin.
    match go("c3", Command::CorrectDemographics { number: twin, demographics: person(2) }) {
        Err(CommandError::PossibleDuplicate { candidates }) => {
            assert_eq!(candidates.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec![baraka]);
        }
        other => panic!("a correction into Baraka was not refused: {other:?}"),
    }

    // A merge undone judges the two distinct too.
    let chebet = register(&registry, "c", 3);
    let reader = registry.reader();
    let candidates = |excluded: HudumaNumber| {
        let who = reader.resolve_number(excluded).unwrap().unwrap().person;
        let found = reader.find_duplicates(&person(3), 0.0, 10, Some(who)).unwrap();
        found.into_iter().map(|c| c.number).collect::<Vec<_>>()
    };
    assert!(candidates(baraka).contains(&chebet), "a correction of Baraka into Chebet finds her");
    go("m", Command::MergeRecords { survivor: chebet, duplicate: baraka, justification: "one person".into() }).unwrap();
    go("u", Command::UnmergeRecords { duplicate: baraka, justification: "two persons".into() }).unwrap();
    assert!(!candidates(baraka).contains(&chebet), "judged distinct by the unmerge");
    assert!(candidates(amina).contains(&chebet), "but not from anyone else");
    let report = verify_whole(&**registry.store()).unwrap();
    assert!(report.projections_checked);
}

/// A person's history is every record that changed them, oldest first, read from the
/// log: their registration, then each record since that named them, on either side of
/// a merge or an unmerge, or as a likely match a registrar overrode past. Any of their
/// numbers shows it; a number never issued has none.
#[test]
fn a_persons_history_is_every_record_that_changed_them() {
    use registry_core::history::shown;
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let go = |id: &str, command| registry.submit_blocking(submission(id, command)).unwrap();
    let amina = register(&registry, "a", 1);
    let twin =
        go("t", Command::RegisterPersonOverridingDuplicates { demographics: person(1), justification: "twin".into() });
    let (twin, twin_at) = (twin.number.unwrap(), twin.receipt.index);
    register(&registry, "b", 2);
    let link = |number| Command::LinkAgencyRecord { number, agency: "KRA".into(), record_id: "K1".into() };
    let linked = go("l", link(amina)).receipt.index;
    let replaced = go("r", Command::ReplaceNumber { number: amina, reason: ReplacementReason::Lost });
    let (current, replaced) = (replaced.number.unwrap(), replaced.receipt.index);
    let merge = Command::MergeRecords { survivor: current, duplicate: twin, justification: "one".into() };
    let merged = go("m", merge).receipt.index;
    let unmerged = go("u", Command::UnmergeRecords { duplicate: twin, justification: "two".into() }).receipt.index;

    let reader = registry.reader();
    let page = reader.history(amina, 0, usize::MAX).unwrap().expect("a superseded number shows the history");
    let (resolution, records) = (page.subject, page.records);
    assert_eq!((resolution.current_number, page.next), (current, None));
    let seen: Vec<(u64, &str)> = records.iter().map(|r| (r.index, shown(&r.event).event)).collect();
    assert_eq!(
        seen,
        vec![
            (1, "PersonRegistered"),
            (twin_at, "PersonRegistered"),
            (linked, "AgencyRecordLinked"),
            (replaced, "NumberReplaced"),
            (merged, "RecordsMerged"),
            (unmerged, "RecordsUnmerged"),
        ]
    );
    assert!(records.windows(2).all(|w| w[0].time_micros <= w[1].time_micros));
    // Paged two at a time, each page from the last one's `next`: the same records, in
    // order; a page from an index between two records starts at the later.
    let (mut paged, mut from) = (Vec::new(), Some(0));
    while let Some(start) = from {
        let page = reader.history(amina, start, 2).unwrap().unwrap();
        assert!(page.records.len() <= 2, "{page:?}");
        paged.extend(page.records.iter().map(|r| r.index));
        from = page.next;
    }
    assert_eq!(paged, seen.iter().map(|(i, _)| *i).collect::<Vec<_>>());
    let page = reader.history(amina, linked + 1, 1).unwrap().unwrap();
    assert_eq!((page.records.iter().map(|r| r.index).collect::<Vec<_>>(), page.next), (vec![replaced], Some(merged)));
    assert_eq!(shown(&records[1].event).numbers, vec![twin, amina], "the twin's number, then Amina's overridden");
    let theirs = reader.history(twin, 0, usize::MAX).unwrap().unwrap().records;
    assert_eq!(theirs.iter().map(|r| r.index).collect::<Vec<_>>(), vec![twin_at, merged, unmerged]);
    let never = HudumaNumber::with_check_digit(23_456_789_012).unwrap();
    assert!(reader.history(never, 0, usize::MAX).unwrap().is_none());
    // Whom a history (or a look-up's access record) names, found without opening
    // anything sealed, is whom a resolution names.
    for number in [amina, current, twin, never] {
        let resolved = reader.resolve_number(number).unwrap().map(|r| r.subject());
        assert_eq!(reader.subject(number).unwrap(), resolved, "{number}");
    }
    assert_eq!(reader.history(twin, 0, 1).unwrap().map(|p| p.subject), reader.subject(twin).unwrap());
}

/// A correction is searched for duplicates among everyone but the person corrected:
/// making one person into another registered person is refused, naming them, and writes
/// nothing; a justification lets it go ahead, and the log records the override (event
/// version 2) as it does for a registration. Nobody is their own duplicate.
#[test]
fn a_correction_into_another_registered_person_is_refused_unless_overridden() {
    use registry_core::event::Event;
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let amina = register(&registry, "a", 1);
    let baraka = register(&registry, "b", 2);
    let before = size(&registry);
    let into_amina = Command::CorrectDemographics { number: baraka, demographics: person(1) };
    match registry.submit_blocking(submission("c1", into_amina)) {
        Err(CommandError::PossibleDuplicate { candidates }) => {
            assert_eq!(candidates.iter().map(|(n, _)| *n).collect::<Vec<_>>(), vec![amina]);
        }
        other => panic!("a correction into Amina was not refused as her duplicate: {other:?}"),
    }
    assert_eq!(size(&registry), before, "the refusal wrote nothing");
    assert_eq!(registry.reader().resolve_number(baraka).unwrap().unwrap().demographics, Some(person(2)));

    // Corrected to what he already is, he matches only himself: not refused.
    registry
        .submit_blocking(submission("c2", Command::CorrectDemographics { number: baraka, demographics: person(2) }))
        .expect("nobody is their own duplicate");
    let blank = Command::CorrectDemographicsOverridingDuplicates {
        number: baraka,
        demographics: person(1),
        justification: " ".into(),
    };
    match registry.submit_blocking(submission("c3", blank)) {
        Err(CommandError::InvalidArgument(e)) => assert_eq!(e.field, "justification"),
        other => panic!("a blank justification was not refused by name: {other:?}"),
    }

    let why = "twin sister of Amina, birth certificates seen at the centre";
    let overriding = Command::CorrectDemographicsOverridingDuplicates {
        number: baraka,
        demographics: person(1),
        justification: why.into(),
    };
    let outcome = registry.submit_blocking(submission("c4", overriding)).expect("overridden");
    assert_eq!(registry.reader().resolve_number(baraka).unwrap().unwrap().demographics, Some(person(1)));
    let mut event = None;
    registry_core::replay::for_each_record(&**registry.store(), outcome.receipt.index, |_, hashed| {
        let record = registry_core::record::RecordRef::parse(hashed.bytes()).unwrap();
        assert_eq!(record.header.kind.version, 2);
        event = Some(Event::decode(record.header.kind, record.payload).unwrap());
        Ok(())
    })
    .unwrap();
    match event.expect("the correction's record") {
        Event::DemographicsCorrected(e) => {
            let o = e.duplicate_override.expect("the override is recorded");
            assert_eq!(o.justification, why);
            assert_eq!(o.candidates.iter().map(|c| c.number).collect::<Vec<_>>(), vec![amina]);
        }
        other => panic!("{other:?}"),
    }
    // Both are now in the search under the same demographics: a third enrolment of
    // them is refused naming both.
    match registry.submit_blocking(submission("r3", Command::RegisterPerson { demographics: person(1) })) {
        Err(CommandError::PossibleDuplicate { candidates }) => {
            let mut found: Vec<_> = candidates.iter().map(|(n, _)| *n).collect();
            found.sort();
            let mut both = vec![amina, baraka];
            both.sort();
            assert_eq!(found, both);
        }
        other => panic!("{other:?}"),
    }
    assert!(verify_whole(&**registry.store()).unwrap().projections_checked);
}

/// A person's name words are counted while they are in the duplicate search, and
/// counted out once when they leave it (merged, or erased, or erased after a merge).
#[test]
fn name_counts_follow_who_is_in_the_duplicate_search() {
    use registry_core::dedup::name_counts::{PERSONS, read, word_key};
    use registry_core::demographics::{Demographics, Sex};
    use registry_core::storage::view::View;
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let enrol = |id: &str, given: &str, family: &str, dob: &str| {
        let demographics = Demographics {
            given_name: given.into(),
            family_name: family.into(),
            other_names: vec![],
            date_of_birth: dob.into(),
            sex: Sex::Female,
            place_of_birth: "Nyeri".into(),
        };
        registry.submit_blocking(submission(id, Command::RegisterPerson { demographics })).unwrap().number.unwrap()
    };
    let wanjiru = enrol("a", "Wanjiru", "Kamau", "1990-04-12");
    let njeri = enrol("b", "Njeri", "Kamau", "1971-09-30");
    let achieng = enrol("c", "Achieng", "Otieno", "1985-01-01");
    let counts = |registry: &Registry| {
        let view = View::new(&**registry.store());
        let count = |word: &str| read(&view, &word_key(&secrets(), word)).unwrap();
        (read(&view, PERSONS).unwrap(), count("kamau"), count("njeri"), count("otieno"))
    };
    assert_eq!(counts(&registry), (3, 2, 1, 1));
    registry
        .submit_blocking(submission(
            "m",
            Command::MergeRecords { survivor: wanjiru, duplicate: njeri, justification: "one person".into() },
        ))
        .unwrap();
    assert_eq!(counts(&registry), (2, 1, 0, 1), "the merged person left the search");
    let erase = |id: &str, number| {
        registry
            .submit_blocking(submission(id, Command::ErasePersonalData { number, legal_basis: "DPA 2019 s.40".into() }))
            .unwrap()
    };
    erase("e1", njeri);
    assert_eq!(counts(&registry), (2, 1, 0, 1), "erasing a merged person counts nothing out again");
    erase("e2", achieng);
    assert_eq!(counts(&registry), (1, 1, 0, 0));
    let live = counts(&registry);
    registry_core::replay::rebuild(&**registry.store(), &secrets(), &FoldSpace::IN_MEMORY, &mut |_| ()).unwrap();
    assert_eq!(counts(&registry), live, "rebuilt from the log, the same counts");
}

/// However common a person's names become in the registry, enrolling them again with
/// the same names, birth date, sex and place is refused as a likely duplicate: the
/// commonness of a name discounts agreement on it, never below the threshold.
#[test]
fn an_exact_re_enrolment_is_refused_however_common_the_names() {
    use registry_core::demographics::{Demographics, Sex};
    let (store, mut writer) = memory_writer();
    // 3,000 persons named Wanjiru Kamau, born in different years (two apart, so never
    // "off by one") on days after the 12th (so never day and month swapped).
    let wanjiru = |i: usize| Demographics {
        given_name: "Wanjiru".into(),
        family_name: "Kamau".into(),
        other_names: vec![],
        date_of_birth: format!("{}-{:02}-{}", 1930 + 2 * (i % 40), 1 + (i / 40) % 12, 13 + (i / 480) % 16),
        sex: Sex::Female,
        place_of_birth: "Nyeri".into(),
    };
    let enrolments: Vec<_> =
        (0..3_000).map(|i| submission(format!("w{i}"), Command::RegisterPerson { demographics: wanjiru(i) })).collect();
    for batch in enrolments.chunks(256) {
        for result in writer.execute_batch(batch) {
            result.expect("namesakes born on other days are not duplicates");
        }
    }
    let view = registry_core::storage::view::View::new(&*store);
    let kamau = registry_core::dedup::name_counts::read(
        &view,
        &registry_core::dedup::name_counts::word_key(&secrets(), "kamau"),
    )
    .unwrap();
    assert_eq!(kamau, 3_000, "every one of them carries the name");
    for i in [0, 1_499, 2_999] {
        let again = submission(format!("again{i}"), Command::RegisterPerson { demographics: wanjiru(i) });
        match &writer.execute_batch(std::slice::from_ref(&again))[0] {
            Err(CommandError::PossibleDuplicate { candidates }) => {
                assert!(!candidates.is_empty());
            }
            Ok(outcome) => panic!("enrolment {i} again was given a second number: {:?}", outcome.number),
            Err(other) => panic!("enrolment {i} again was refused for another reason: {other}"),
        }
    }
}

#[test]
fn bad_input_names_the_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    let n = register(&registry, "a", 10);
    let before = size(&registry);
    let mut bad_name = person(11);
    bad_name.family_name = " ".into();
    let cases: Vec<(registry_core::command::Submission, &str)> = vec![
        (submission("", Command::RegisterPerson { demographics: person(1) }), "request_id"),
        (submission("has space", Command::RegisterPerson { demographics: person(1) }), "request_id"),
        (submission("x1", Command::RegisterPerson { demographics: bad_name }), "demographics.family_name"),
        (
            submission("x2", Command::LinkAgencyRecord { number: n, agency: "kra".into(), record_id: "1".into() }),
            "record.agency",
        ),
        (
            submission("x3", Command::LinkAgencyRecord { number: n, agency: "KRA".into(), record_id: "".into() }),
            "record.record_id",
        ),
        (submission("x4", Command::RevokeNumber { number: n, reason: "".into() }), "reason"),
        (submission("x5", Command::MergeRecords { survivor: n, duplicate: n, justification: "j".into() }), "duplicate"),
    ];
    for (s, field) in cases {
        match registry.submit_blocking(s) {
            Err(CommandError::InvalidArgument(e)) => assert_eq!(e.field, field, "{e}"),
            other => panic!("expected an invalid {field}, got {other:?}"),
        }
    }
    let mut actor_less = submission("x6", Command::RegisterPerson { demographics: person(1) });
    actor_less.actor.via = String::new();
    assert!(
        matches!(registry.submit_blocking(actor_less), Err(CommandError::InvalidArgument(e)) if e.field == "actor.via")
    );
    let never: HudumaNumber =
        "2345 6789 0123".parse().unwrap_or_else(|_| HudumaNumber::with_check_digit(23_456_789_012).unwrap());
    let err = registry
        .submit_blocking(submission("x7", Command::RevokeNumber { number: never, reason: "r".into() }))
        .unwrap_err();
    assert_eq!(err, CommandError::NumberNotFound(never));
    assert_eq!(err.class(), ErrorClass::NotFound);
    assert_eq!(size(&registry), before, "no refused command wrote a record");
}

#[test]
fn other_secrets_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    open(dir.path()).close();
    let other = registry_core::secrets::Secrets::from_master([43; 32]);
    let refused = Registry::open_dir(dir.path(), other, log_key(), RegistryOptions::default());
    match refused {
        Err(OpenError::Writer(WriterError::WrongSecrets)) => {}
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("opened"),
    }
}

#[test]
fn a_reused_request_id_with_another_command_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let registry = open(dir.path());
    register(&registry, "same-id", 12);
    let err = registry
        .submit_blocking(submission("same-id", Command::RegisterPerson { demographics: person(13) }))
        .unwrap_err();
    assert_eq!(err, CommandError::RequestIdReused("same-id".into()));
}

#[test]
fn key_rotation_is_followed_by_verify_and_by_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let new_key = registry_core::keys::LogKey::from_seed([99; 32]);
    {
        let registry = open(dir.path());
        register(&registry, "a", 14);
        registry.rotate_key_blocking(new_key.clone(), registrar()).unwrap();
        register(&registry, "b", 15);
        registry.close();
    }
    // The old key no longer opens the log; the new one does.
    let refused = Registry::open_dir(dir.path(), secrets(), log_key(), RegistryOptions::default());
    match refused {
        Err(OpenError::Writer(WriterError::WrongKey)) => {}
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("opened"),
    }
    let registry = Registry::open_dir(dir.path(), secrets(), new_key.clone(), RegistryOptions::default())
        .unwrap_or_else(|e| panic!("reopen with the new key: {e}"));
    register(&registry, "c", 16);
    let report = verify_whole(&**registry.store()).unwrap();
    assert_eq!(report.keys, vec![log_key().id(), new_key.id()]);
    // The key history: genesis from record 0, the new key from the record after the
    // rotation (record 2, signed by the old key).
    let keys = registry.reader().log_keys().unwrap();
    assert_eq!(keys, vec![(0, log_key().public()), (3, new_key.public())]);
    assert_eq!(report.records, 5);
    // A verifier that trusts another genesis key refuses record 0.
    let err = verify_store(&**registry.store(), Some(new_key.public()), None, &FoldSpace::IN_MEMORY, &mut |_| ())
        .unwrap_err();
    assert_eq!(err.seq(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_are_grouped_and_all_answered() {
    let dir = tempfile::tempdir().unwrap();
    let registry = std::sync::Arc::new(open(dir.path()));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let registry = registry.clone();
        tasks.push(tokio::spawn(async move {
            registry.submit(submission(format!("c-{i}"), Command::RegisterPerson { demographics: person(i) })).await
        }));
    }
    let mut numbers = std::collections::HashSet::new();
    for task in tasks {
        let outcome = task.await.unwrap().unwrap();
        assert!(numbers.insert(outcome.number.unwrap()));
    }
    assert_eq!(size(&registry), 201);
    for number in numbers {
        assert!(registry.reader().resolve_number(number).unwrap().is_some());
    }
}

#[test]
fn the_tree_proves_every_record_and_checkpoints_are_signed_and_guarded() {
    use huduma_log::checkpoint::Checkpoint;
    use huduma_log::merkle::{self, leaf_hash};
    let dir = tempfile::tempdir().unwrap();
    let options = RegistryOptions { checkpoint_interval: std::time::Duration::ZERO, ..RegistryOptions::default() };
    let size = {
        let registry = Registry::open_dir(dir.path(), secrets(), log_key(), options.clone()).unwrap();
        // Past two blocks of 64 records, so proofs read stored blocks, the nodes of
        // the unfinished block, and the log.
        for i in 0..140 {
            register(&registry, &format!("t-{i}"), i);
        }
        let reader = registry.reader();
        let size = reader.log_size().unwrap();
        // Leaves computed independently from the stored records.
        let leaves: Vec<[u8; 32]> = (0..size).map(|s| leaf_hash(&reader.record(s).unwrap().unwrap())).collect();
        for n in 1..=size {
            let root = reader.tree_root(n).unwrap();
            for index in 0..n {
                let proof = reader.inclusion_proof(index, n).unwrap();
                assert!(merkle::verify_inclusion(index, n, &leaves[index as usize], &proof, &root), "{index}/{n}");
            }
            let full = reader.tree_root(size).unwrap();
            let proof = reader.consistency_proof(n, size).unwrap();
            assert!(merkle::verify_consistency(n, size, &root, &full, &proof), "{n} -> {size}");
        }
        assert!(reader.inclusion_proof(size, size).is_err());
        // With a zero interval every landed batch is signed; the newest is the log's.
        let (at, note) = reader.latest_checkpoint().unwrap().expect("a checkpoint");
        assert_eq!(at, size);
        let origin = reader.origin().unwrap().unwrap();
        let checkpoint = Checkpoint::open(&note, &origin, &log_key().public()).expect("signed by the log key");
        assert_eq!(checkpoint.root, reader.tree_root(size).unwrap());
        registry.close();
        size
    };
    // Nodes of the tree altered behind the checkpoint. Any altered node is named by
    // `verify` (the nodes are a projection of the log); one on the signed root's path
    // stops the registry from opening at all.
    use registry_core::merkle_store::{block_key, nodes_key};
    use registry_core::storage::Tree;
    let forge = |tree: Tree, key: [u8; 8], nodes: usize| {
        use registry_core::storage::{Storage, WriteBatch, sled_store::SledStore};
        let store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("open the store: {e}"));
        let mut batch = WriteBatch::default();
        let forged = registry_core::storage::checksum::seal(&vec![0x42; 32 * nodes]);
        batch.put(tree, key.to_vec(), forged);
        store.commit(&batch, true).unwrap();
        store
    };
    {
        // A block of the right length whose hashes are forged.
        let store = forge(Tree::MerkleBlocks, block_key(1), 126);
        let err = verify_whole(&store).unwrap_err();
        assert!(err.to_string().contains("merkle_blocks"), "{err}");
    }
    {
        // The block stays forged; verify compares `merkle_nodes` first.
        let store = forge(Tree::MerkleNodes, nodes_key(1), 1);
        let err = verify_whole(&store).unwrap_err();
        assert!(err.to_string().contains("merkle_nodes"), "{err}");
    }
    // Record 127 completes levels 1..=7; the subtree [0, 128) is on the signed root's
    // path.
    drop(forge(Tree::MerkleNodes, nodes_key(127), 7));
    match Registry::open_dir(dir.path(), secrets(), log_key(), options.clone()) {
        Err(OpenError::Checkpoint { size: at, .. }) => assert_eq!(at, size),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a log rewritten behind its checkpoint was served"),
    }
}

#[test]
fn a_store_from_before_a_projection_existed_is_rebuilt_at_open() {
    use registry_core::storage::{Storage, Tree, WriteBatch, sled_store::SledStore};
    let dir = tempfile::tempdir().unwrap();
    let number = {
        let registry = open(dir.path());
        let number = register(&registry, "old", 1);
        // Enough records for a complete block of the tree.
        for i in 2..66 {
            register(&registry, &format!("old-{i}"), i);
        }
        registry.close();
        number
    };
    // As a store written before `merkle_nodes`, `merkle_blocks` and `agency_changes`
    // existed: neither their entries nor their applied markers.
    {
        let store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("open the store: {e}"));
        let mut batch = WriteBatch::default();
        for tree in [Tree::MerkleNodes, Tree::MerkleBlocks, Tree::AgencyChanges] {
            for (key, _) in store.scan_prefix(tree, &[]).unwrap() {
                batch.remove(tree, key);
            }
            batch.remove(Tree::Meta, registry_core::projection::state::meta::applied(tree));
        }
        store.commit(&batch, true).unwrap();
    }
    let registry = open(dir.path());
    assert_eq!(registry.reader().resolve_number(number).unwrap().unwrap().current_number, number);
    register(&registry, "new", 66);
    let block = registry.store().get(Tree::MerkleBlocks, &registry_core::merkle_store::block_key(0)).unwrap();
    assert!(block.is_some(), "the rebuild wrote the first block of the tree");
    let report = verify_whole(&**registry.store()).unwrap();
    assert_eq!(report.records, 67);
}

/// How an earlier version stored one tree: its applied marker, and how each of its
/// entries looked (`relayout` turns a current entry into the earlier version's).
type EarlierLayout<'a> = (registry_core::storage::Tree, &'a [u8], &'a dyn Fn(&[u8], &[u8]) -> (Vec<u8>, Vec<u8>));

/// A store whose duplicate-search trees have an earlier layout is rebuilt at open: the
/// old entries are gone, the search finds the persons again, and the store verifies.
fn a_store_with_an_earlier_layout_is_rebuilt_at_open(earlier: &[EarlierLayout<'_>]) {
    use registry_core::storage::{Storage, Tree, WriteBatch, sled_store::SledStore};
    let dir = tempfile::tempdir().unwrap();
    {
        let registry = open(dir.path());
        for i in 0..40 {
            register(&registry, &format!("old-{i}"), i);
        }
        registry.close();
    }
    let mut old_keys = Vec::new();
    {
        let store = SledStore::open(dir.path()).unwrap_or_else(|e| panic!("open the store: {e}"));
        let mut batch = WriteBatch::default();
        for (tree, marker, relayout) in earlier {
            for (key, value) in store.scan_prefix(*tree, &[]).unwrap() {
                batch.remove(*tree, key.clone());
                let (old, old_value) = relayout(&key, &value);
                if old != key {
                    old_keys.push((*tree, old.clone()));
                }
                batch.put(*tree, old, old_value);
            }
            let current = registry_core::projection::state::meta::applied(*tree);
            let applied = store.get(Tree::Meta, &current).unwrap().expect("the current marker");
            batch.remove(Tree::Meta, current);
            batch.put(Tree::Meta, marker.to_vec(), applied);
        }
        store.commit(&batch, true).unwrap();
    }
    let registry = open(dir.path());
    let blocks = registry.store().scan_prefix(Tree::MatchKeys, &[]).unwrap();
    assert!(!blocks.is_empty());
    assert!(blocks.iter().all(|(key, _)| key.len() == 20), "every block chunk under a 16-byte hash");
    let counts = registry.store().scan_prefix(Tree::NameCounts, &[]).unwrap();
    assert!(
        counts.iter().all(|(key, _)| key.len() == 16 || key == registry_core::dedup::name_counts::PERSONS),
        "every word's count under a 16-byte hash"
    );
    for (tree, key) in &old_keys {
        assert!(registry.store().get(*tree, key).unwrap().is_none(), "an entry of the earlier layout is left");
    }
    for (_, marker, _) in earlier {
        assert!(registry.store().get(Tree::Meta, marker).unwrap().is_none(), "the old marker is gone");
    }
    let again = submission("again-3", Command::RegisterPerson { demographics: person(3) });
    match registry.submit_blocking(again) {
        Err(CommandError::PossibleDuplicate { candidates }) => assert!(!candidates.is_empty()),
        other => panic!("person 3 enrolled again was not refused as a duplicate: {other:?}"),
    }
    let report = verify_whole(&**registry.store()).unwrap();
    assert_eq!(report.records, 41);
}

/// Version 3: one entry per person and blocking key (before `dedup::blocks`).
#[test]
fn a_store_with_the_unchunked_match_keys_layout_is_rebuilt_at_open() {
    use registry_core::storage::Tree;
    a_store_with_an_earlier_layout_is_rebuilt_at_open(&[(Tree::MatchKeys, b"applied/match_keys.v3", &|key, _| {
        // hash (32 bytes) ‖ person → birth-date tag, as version 3 stored it.
        let mut old = [&key[..16], &key[..16]].concat();
        old.extend_from_slice(&7u64.to_be_bytes());
        (old, registry_core::storage::checksum::seal(&[1; 8]))
    })]);
}

/// Version 4: chunks as now, but the name blocks by birth year alone (other block
/// hashes: here each hash with its first byte changed) and of 32 bytes.
#[test]
fn a_store_with_the_name_blocks_by_year_is_rebuilt_at_open() {
    use registry_core::storage::Tree;
    a_store_with_an_earlier_layout_is_rebuilt_at_open(&[(Tree::MatchKeys, b"applied/match_keys.v4", &|key, value| {
        let mut old = [&key[..16], &[0x5a; 16], &key[16..]].concat();
        old[0] ^= 0x5a;
        (old, value.to_vec())
    })]);
}

/// Version 5 of `match_keys` and version 1 of `name_counts`: the same entries under
/// hashes of 32 bytes (here each 16-byte hash followed by 16 more bytes).
#[test]
fn a_store_with_the_32_byte_hashes_is_rebuilt_at_open() {
    use registry_core::storage::Tree;
    a_store_with_an_earlier_layout_is_rebuilt_at_open(&[
        (Tree::MatchKeys, b"applied/match_keys.v5", &|key, value| {
            ([&key[..16], &[0xa5; 16], &key[16..]].concat(), value.to_vec())
        }),
        (Tree::NameCounts, b"applied/name_counts", &|key, value| {
            if key == registry_core::dedup::name_counts::PERSONS {
                (key.to_vec(), value.to_vec())
            } else {
                ([key, &[0xa5; 16]].concat(), value.to_vec())
            }
        }),
    ]);
}

/// The sequencer hands the writer each command's order-free work, done ahead on the
/// submitter's thread (`prework`). The writer takes it as given and does again what
/// is missing: work done with the search off, or none at all. Either way a batch folds
/// what a build without work done ahead folds, and a duplicate is still refused.
#[test]
fn work_done_ahead_of_sequencing_builds_what_the_writer_alone_would() {
    use registry_core::storage::Tree;
    use registry_core::writer::commit_built;
    let (ahead_store, mut ahead) = memory_writer();
    let (alone_store, mut alone) = memory_writer();
    let searchless = {
        let (_, mut writer) = memory_writer();
        writer.set_duplicate_threshold(None);
        writer.preworker()
    };
    let under_other_secrets = {
        use registry_core::{IssuanceFilters, issuer::NumberIssuer, secrets::Secrets, writer::Writer};
        let secrets = std::sync::Arc::new(Secrets::from_master([9; 32]));
        let issuer = NumberIssuer::new(secrets.number_key(), IssuanceFilters::default());
        let store = std::sync::Arc::new(registry_core::storage::memory::MemoryStore::new());
        Writer::open(store, secrets, issuer, log_key(), "other.example/registry").unwrap().preworker()
    };
    let preworker = ahead.preworker();
    // Each batch's work done ahead in one of four ways: all of it, with the search
    // off, for the first half of the batch only, or under other secrets.
    let work = |kind: usize, batch: &[registry_core::command::Submission]| -> Vec<_> {
        match kind % 4 {
            0 => batch.iter().map(|s| preworker.work(s)).collect(),
            1 => batch.iter().map(|s| searchless.work(s)).collect(),
            2 => batch[..batch.len() / 2].iter().map(|s| preworker.work(s)).collect(),
            _ => batch.iter().map(|s| under_other_secrets.work(s)).collect(),
        }
    };
    let people: Vec<_> =
        (0..48).map(|i| submission(format!("p{i}"), Command::RegisterPerson { demographics: person(i) })).collect();
    for (kind, batch) in people.chunks(8).enumerate() {
        let built = ahead.build_prepared(None, None, batch, &mut work(kind, batch));
        assert!(built.results.iter().all(Result::is_ok), "{:?}", built.results);
        commit_built(&*ahead_store, &std::sync::Arc::new(built.batch), built.start.next_seq, &built.issued).unwrap();
        assert!(alone.execute_batch(batch).iter().all(Result::is_ok));
    }
    for tree in [Tree::Numbers, Tree::MatchKeys, Tree::NameCounts, Tree::Requests] {
        assert_eq!(ahead_store.snapshot(tree).unwrap(), alone_store.snapshot(tree).unwrap(), "{}", tree.name());
    }
    // Each of them again under a new request id, with each kind of work: refused.
    let again: Vec<_> =
        (0..6).map(|i| submission(format!("again{i}"), Command::RegisterPerson { demographics: person(i) })).collect();
    for kind in 0..4 {
        let built = ahead.build_prepared(None, None, &again, &mut work(kind, &again));
        for (i, result) in built.results.iter().enumerate() {
            assert!(
                matches!(result, Err(CommandError::PossibleDuplicate { .. })),
                "person {i} again, work done ahead in way {kind}: {result:?}"
            );
        }
        assert!(built.batch.is_empty(), "a refusal writes nothing");
    }
}
