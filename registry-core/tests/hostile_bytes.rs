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
