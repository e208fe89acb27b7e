//! The golden logs: small logs written by each version of the events (see
//! examples/write_golden.rs), committed under tests/golden: v1 has every kind at its
//! first version, v2 adds `PersonRegistered` version 2 (a registration that overrode
//! the duplicate search), v3 writes the agency record ids and the date of death sealed
//! (`AgencyRecordLinked`, `AgencyRecordUnlinked` and `DeathRecorded` version 2), v4
//! adds `DemographicsCorrected` version 2 (a correction that overrode the duplicate
//! search), v5 adds `RecordsUnmerged` (a merge undone), v6 adds `DeathRetracted` (a
//! death recorded in error withdrawn). Every
//! later version of the registry must still verify each against its published genesis
//! key and fold it to the same answers.

use std::path::Path;

use registry_core::HudumaNumber;
use registry_core::keys::parse_note_verifier_key;
use registry_core::log_export;
use registry_core::query::Reader;
use registry_core::replay::{self, FoldSpace};
use registry_core::secrets::Secrets;
use registry_core::storage::Storage;
use registry_core::storage::memory::MemoryStore;
use registry_core::verify::verify_store;

fn master(golden: &Path) -> [u8; 32] {
    let hex = std::fs::read_to_string(golden.join("master.hex")).unwrap();
    let hex = hex.trim();
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[test]
fn golden_log_v1_still_verifies_and_folds_to_the_same_answers() {
    check("v1", 18, 6);
}

#[test]
fn golden_log_v2_still_verifies_and_folds_to_the_same_answers() {
    check("v2", 20, 7);
}

#[test]
fn golden_log_v3_still_verifies_and_folds_to_the_same_answers() {
    check("v3", 20, 7);
}

#[test]
fn golden_log_v4_still_verifies_and_folds_to_the_same_answers() {
    check("v4", 21, 7);
}

#[test]
fn golden_log_v5_still_verifies_and_folds_to_the_same_answers() {
    check("v5", 22, 7);
}

#[test]
fn golden_log_v6_still_verifies_and_folds_to_the_same_answers() {
    check("v6", 27, 8);
}

/// The events of `kind` in the golden log of `version`, in log order.
fn events_of(version: &str, wanted: u16) -> Vec<registry_core::event::Event> {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let store = MemoryStore::new();
    log_export::import_log(&store, &mut std::fs::File::open(golden.join(version).join("log.bin")).unwrap()).unwrap();
    let mut found = Vec::new();
    replay::for_each_record(&store, 0, |_, hashed| {
        let record = registry_core::record::RecordRef::parse(hashed.bytes()).unwrap();
        if record.header.kind.kind == wanted {
            found.push(registry_core::event::Event::decode(record.header.kind, record.payload).unwrap());
        }
        Ok(())
    })
    .unwrap();
    found
}

/// The line of `number` in the golden log's expected answers of `version`.
fn expected_line(version: &str, number: &str) -> String {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    std::fs::read_to_string(golden.join(version).join("expected.txt"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(number))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{number} is not in {version}'s expected answers"))
}

/// v6 holds one retracted death, of a person revoked before it was recorded: she
/// resolves revoked, with her NSSF record (v5 has no retraction).
#[test]
fn golden_log_v6_holds_a_retracted_death() {
    use registry_core::event::{Event, kind};
    assert!(events_of("v5", kind::DEATH_RETRACTED).is_empty());
    let grace = match events_of("v6", kind::DEATH_RETRACTED).as_slice() {
        [Event::DeathRetracted(e)] => {
            assert!(e.reason.starts_with("alive"), "{e:?}");
            e.person
        }
        other => panic!("one retracted death in v6, found {other:?}"),
    };
    let deaths = events_of("v6", kind::DEATH_RECORDED);
    assert!(deaths.iter().any(|e| matches!(e, Event::DeathRecorded(d) if d.person == grace)), "{deaths:?}");
    let grace_number = "978629546920";
    assert_eq!(
        expected_line("v6", grace_number),
        format!("{grace_number} Revoked {grace_number} Grace/Njeri NSSF:SS-5")
    );
}

/// v5 holds one unmerge, of the first merge v4 made: the person it names resolves
/// active again with the NHIF record that merge moved (and v4 has no unmerge, the same
/// person merged there).
#[test]
fn golden_log_v5_holds_an_unmerge() {
    use registry_core::event::{Event, kind};
    assert!(events_of("v4", kind::RECORDS_UNMERGED).is_empty());
    match events_of("v5", kind::RECORDS_UNMERGED).as_slice() {
        [Event::RecordsUnmerged(e)] => assert!(e.justification.starts_with("two persons"), "{e:?}"),
        other => panic!("one unmerge in v5, found {other:?}"),
    }
    let line = expected_line;
    let achieng = "764834914721";
    assert!(line("v4", achieng).contains(" Merged "), "{}", line("v4", achieng));
    assert_eq!(line("v5", achieng), format!("{achieng} Active {achieng} Achieng/Otieno NHIF:NH-77"));
}

/// v4 holds a correction at version 2, with the override it records, and resolves as
/// v3 does (the corrected person is erased after).
#[test]
fn golden_log_v4_holds_an_overriding_correction() {
    use registry_core::event::{Event, KindVersion, kind};
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let store = MemoryStore::new();
    log_export::import_log(&store, &mut std::fs::File::open(golden.join("v4/log.bin")).unwrap()).unwrap();
    let mut overriding = Vec::new();
    replay::for_each_record(&store, 0, |_, hashed| {
        let record = registry_core::record::RecordRef::parse(hashed.bytes()).unwrap();
        if record.header.kind == (KindVersion { kind: kind::DEMOGRAPHICS_CORRECTED, version: 2 }) {
            overriding.push(Event::decode(record.header.kind, record.payload).unwrap());
        }
        Ok(())
    })
    .unwrap();
    match overriding.as_slice() {
        [Event::DemographicsCorrected(e)] => {
            let o = e.duplicate_override.as_ref().expect("version 2 carries the override");
            assert!(o.justification.starts_with("namesake"), "{o:?}");
            assert_eq!(o.candidates.len(), 1, "{o:?}");
        }
        other => panic!("one overriding correction in v4, found {other:?}"),
    }
    let expected = |v: &str| std::fs::read_to_string(golden.join(v).join("expected.txt")).unwrap();
    assert_eq!(expected("v4"), expected("v3"));
}

/// The agency record ids the fixtures link (and unlink) and the date of death they
/// record: in clear in the logs of v1 and v2, nowhere in v3's, which still folds to
/// the same answers (the resolutions name the same records).
#[test]
fn the_log_shows_agency_record_ids_and_dates_of_death_only_sealed_since_v3() {
    let private = ["A000111222Z", "NH-77", "DL-1", "2024-01-31"];
    let log = |version: &str| {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(version).join("log.bin")).unwrap()
    };
    let holds = |bytes: &[u8], needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    for version in ["v1", "v2"] {
        let bytes = log(version);
        for needle in private {
            assert!(holds(&bytes, needle), "{version} holds {needle} in clear (the fixture is as written then)");
        }
    }
    let bytes = log("v3");
    for needle in private {
        assert!(!holds(&bytes, needle), "v3's log shows {needle} in clear");
    }
    let expected = |version: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(version).join("expected.txt"),
        )
        .unwrap()
    };
    assert_eq!(expected("v3"), expected("v2"), "the same commands resolve the same");
}

fn check(version: &str, at_least: u64, numbers: usize) {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(version);
    let golden = golden.as_path();
    let store = std::sync::Arc::new(MemoryStore::new());
    let records = log_export::import_log(&*store, &mut std::fs::File::open(golden.join("log.bin")).unwrap()).unwrap();
    assert!(records >= at_least, "the fixture holds every event kind ({records} records)");
    log_export::import_keyring(&*store, &mut std::fs::File::open(golden.join("keyring.bin")).unwrap()).unwrap();
    let secrets = Secrets::from_master(master(golden));
    replay::rebuild(&*store, &secrets, &FoldSpace::IN_MEMORY, &mut |_| ()).unwrap();

    let (origin, genesis) =
        parse_note_verifier_key(&std::fs::read_to_string(golden.join("genesis.vkey")).unwrap()).unwrap();
    assert_eq!(origin, "golden.huduma.example/log");
    let report = verify_store(&*store, Some(genesis), Some(&secrets), &FoldSpace::IN_MEMORY, &mut |_| ()).unwrap();
    assert_eq!(report.records, records);
    assert_eq!(report.keys.len(), 2, "the fixture rotates the log key once");

    let dyn_store: std::sync::Arc<dyn Storage> = store;
    let reader = Reader::new(dyn_store, std::sync::Arc::new(secrets));
    let expected = std::fs::read_to_string(golden.join("expected.txt")).unwrap();
    let mut checked = 0;
    for line in expected.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let number: HudumaNumber = fields[0].parse().unwrap();
        let r = reader.resolve_number(number).unwrap().unwrap();
        let given = r.demographics.as_ref().map_or("-".to_string(), |d| format!("{}/{}", d.given_name, d.family_name));
        let links: Vec<String> =
            reader.agency_records(&r, |_| true).unwrap().iter().map(|(a, r)| format!("{a}:{r}")).collect();
        let links = if links.is_empty() { "-".to_string() } else { links.join(",") };
        assert_eq!(format!("{:?}", r.status), fields[1], "{line}");
        assert_eq!(r.current_number.compact(), fields[2], "{line}");
        assert_eq!(given.replace(' ', "_"), fields[3], "{line}");
        assert_eq!(links, fields[4], "{line}");
        checked += 1;
    }
    assert_eq!(checked, numbers);
}
