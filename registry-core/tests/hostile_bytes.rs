//! Bytes from disk or the network are hostile until checked: no parser may panic on
//! them, and a corrupted stored value is reported, never served.

mod common;

use common::*;
use proptest::prelude::*;
use registry_core::command::Command;
use registry_core::event::{Event, KindVersion};
use registry_core::projection::state::number_key;
use registry_core::query::{QueryError, Reader};
use registry_core::record::RecordRef;
use registry_core::storage::view::ReadError;
use registry_core::storage::{Storage, Tree, WriteBatch};
use registry_core::verify::LogVerifier;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_the_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..400), kind in any::<u16>(), version in 0u16..3) {
        let _ = RecordRef::parse(&bytes);
        let _ = Event::decode(KindVersion { kind, version }, &bytes);
        let mut verifier = LogVerifier::new(None);
        let _ = verifier.push(&bytes);
        let _ = verifier.finish();
    }

    /// A well-framed record with an arbitrary payload: decoding fails cleanly.
    #[test]
    fn framed_records_with_garbage_payloads_are_refused_cleanly(payload in proptest::collection::vec(any::<u8>(), 0..200), kind in 1u16..30) {
        let key = log_key();
        let header = registry_core::record::Header {
            seq: 0,
            time_micros: 0,
            prev_hash: [0; 32],
            key_id: key.id(),
            kind: KindVersion { kind, version: 1 },
        };
        let bytes = registry_core::record::encode(&header, &payload, &key);
        let mut verifier = LogVerifier::new(Some(key.public()));
        if verifier.push(&bytes).is_ok() {
            // Only a real LogInitialized naming this key may pass as record 0.
            prop_assert!(matches!(Event::decode(header.kind, &payload), Ok(Event::LogInitialized(_))));
        }
    }
}

#[test]
fn a_corrupted_projection_value_is_reported_not_served() {
    let (store, mut writer) = memory_writer();
    let outcome = writer.execute_batch(&[submission("r", Command::RegisterPerson { demographics: person(1) })]);
    let number = outcome[0].as_ref().unwrap().number.unwrap();
    let dyn_store: std::sync::Arc<dyn Storage> = store.clone();
    let reader = Reader::new(dyn_store, std::sync::Arc::new(secrets()));
    assert!(reader.resolve_number(number).unwrap().is_some());

    let key = number_key(number);
    let mut stored = store.get(Tree::Numbers, &key).unwrap().unwrap();
    stored[0] ^= 0x40;
    let mut batch = WriteBatch::default();
    batch.put(Tree::Numbers, key, stored);
    store.commit(&batch, true).unwrap();
    match reader.resolve_number(number) {
        Err(QueryError::Read(ReadError::Corrupt(c))) => {
            assert_eq!(c.tree, "numbers");
            assert!(c.reason.contains("checksum"), "{c}");
        }
        other => panic!("expected a corruption report, got {other:?}"),
    }
}

/// Appends to `store`'s log a signed, chained record of `event`, which the writer would
/// never have written; returns its sequence number.
fn forged(store: &dyn Storage, event: &Event) -> u64 {
    let head = registry_core::writer::read_head(store).unwrap().expect("a log");
    let key = log_key();
    let header = registry_core::record::Header {
        seq: head.next_seq,
        time_micros: head.time_micros + 1,
        prev_hash: head.hash,
        key_id: key.id(),
        kind: event.kind_version(),
    };
    let bytes = registry_core::record::encode(&header, &event.encode_payload(), &key);
    let mut batch = WriteBatch::default();
    let sealed = registry_core::storage::checksum::seal_record(registry_core::record::HashedRecord::new(bytes));
    batch.put(Tree::Log, head.next_seq.to_be_bytes().to_vec(), sealed);
    store.commit(&batch, true).unwrap();
    head.next_seq
}

/// A log that breaks the rules LOG-FORMAT.md section 6 states (what an event requires
/// of a person's status; numbers issued once; a replacement replacing the number in
/// force), each record signed and chained as the registry's would be: `rebuild` and
/// `verify` refuse it, naming the record and the rule, rather than fold a history the
/// registry could not have written.
#[test]
fn a_log_breaking_the_registrys_rules_is_refused_by_rebuild_and_verify_naming_the_record() {
    use registry_core::HudumaNumber;
    use registry_core::PersonId;
    use registry_core::event::{
        NumberReplaced, NumberRevoked, PersonalDataErased, RecordsMerged, RecordsUnmerged, ReplacementReason,
    };
    use registry_core::replay::FoldSpace;
    fn text(s: &str) -> String {
        s.to_string()
    }
    fn replaced(old: HudumaNumber, new: HudumaNumber) -> Event {
        let reason = ReplacementReason::Lost;
        Event::NumberReplaced(NumberReplaced {
            actor: registrar(),
            person: PersonId(1),
            old_number: old,
            new_number: new,
            counter: 1_000,
            reason,
        })
    }
    // A well-formed number the tests' key has not issued.
    fn fresh() -> HudumaNumber {
        HudumaNumber::with_check_digit(23_456_789_012).unwrap()
    }
    let register = |i: usize| submission(format!("r{i}"), Command::RegisterPerson { demographics: person(i) });
    // Persons 1, 2 and 3 registered (PersonId = the registration's sequence number; `n`
    // their numbers), then what the case's setup does to them, then the forged event.
    type Numbers<'a> = &'a [HudumaNumber];
    type Case = (&'static str, fn(Numbers) -> Vec<Command>, fn(Numbers) -> Event, fn(Numbers) -> String);
    let cases: Vec<Case> = vec![
        (
            "a revoked person revoked",
            |n| vec![Command::RevokeNumber { number: n[0], reason: text("fraud") }],
            |_| Event::NumberRevoked(NumberRevoked { actor: registrar(), person: PersonId(1), reason: text("again") }),
            |_| text("person 1 is Revoked, which NumberRevoked does not allow"),
        ),
        (
            "a merge into a merged survivor",
            |n| vec![Command::MergeRecords { survivor: n[0], duplicate: n[1], justification: text("one") }],
            |_| {
                let (survivor, duplicate) = (PersonId(2), PersonId(3));
                Event::RecordsMerged(RecordsMerged { actor: registrar(), survivor, duplicate, justification: text("") })
            },
            |_| text("person 2 is Merged, which RecordsMerged does not allow"),
        ),
        (
            "an unmerge from a survivor merged since",
            |n| {
                vec![
                    Command::MergeRecords { survivor: n[0], duplicate: n[1], justification: text("one") },
                    Command::MergeRecords { survivor: n[2], duplicate: n[0], justification: text("one") },
                ]
            },
            |_| {
                let (survivor, duplicate) = (PersonId(1), PersonId(2));
                Event::RecordsUnmerged(RecordsUnmerged {
                    actor: registrar(),
                    survivor,
                    duplicate,
                    justification: text(""),
                })
            },
            |_| text("person 1 is merged since, which RecordsUnmerged does not allow"),
        ),
        (
            "an erased person erased",
            |n| vec![Command::ErasePersonalData { number: n[2], legal_basis: text("DPA") }],
            |_| {
                let legal_basis = text("DPA");
                Event::PersonalDataErased(PersonalDataErased { actor: registrar(), person: PersonId(3), legal_basis })
            },
            |_| text("person 3 is Erased, which PersonalDataErased does not allow"),
        ),
        (
            "another person's number issued again",
            |_| Vec::new(),
            |n| replaced(n[0], n[1]),
            |n| format!("number {} was issued before", n[1]),
        ),
        (
            "another person's number replaced",
            |_| Vec::new(),
            |n| replaced(n[1], fresh()),
            |n| format!("number {} is not the number in force of person 1", n[1]),
        ),
    ];
    for (name, setup, event, rule) in cases {
        let (store, mut writer) = memory_writer();
        let numbers: Vec<_> =
            (1..=3).map(|i| writer.execute_batch(&[register(i)])[0].as_ref().unwrap().number.unwrap()).collect();
        for (i, command) in setup(&numbers).into_iter().enumerate() {
            writer.execute_batch(&[submission(format!("s{i}"), command)])[0].as_ref().expect(name);
        }
        drop(writer);
        let seq = forged(&*store, &event(&numbers));
        let rule = rule(&numbers);
        let rebuilt = registry_core::replay::rebuild(&*store, &secrets(), &FoldSpace::IN_MEMORY, &mut |_| ());
        let refused = rebuilt.expect_err(name).to_string();
        assert!(refused.contains(&format!("record {seq}")) && refused.contains(&rule), "{name}: {refused}");
        let verified = registry_core::verify::verify_store(
            &*store,
            Some(log_key().public()),
            Some(&secrets()),
            &FoldSpace::IN_MEMORY,
            &mut |_| (),
        );
        let refused = verified.expect_err(name).to_string();
        assert!(refused.contains(&rule), "{name}: {refused}");
    }
}
