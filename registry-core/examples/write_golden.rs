//! Writes the golden log fixture: `cargo run -p registry-core --example write_golden -- DIR`.
//!
//! Run once per version of the events written; the files are committed under
//! tests/golden (v1: every event kind at version 1; v2: the same and a registration
//! that overrode the duplicate search, `PersonRegistered` version 2; v3: the same with
//! the agency record ids and the date of death sealed, `AgencyRecordLinked`,
//! `AgencyRecordUnlinked` and `DeathRecorded` version 2; v4: the same and a correction
//! that overrode the duplicate search, `DemographicsCorrected` version 2; v5: the
//! same and a merge undone, `RecordsUnmerged`; v6: the same and a death recorded in
//! error of a revoked person, retracted, `DeathRetracted`), and every later version must
//! still verify and fold them (tests/golden.rs). Never regenerate an existing
//! version's fixture: that would defeat its purpose.

use std::path::PathBuf;

use registry_core::command::{Command, Submission};
use registry_core::demographics::{Demographics, Sex};
use registry_core::event::{Actor, ReplacementReason};
use registry_core::keys::{LogKey, note_verifier_key};
use registry_core::log_export;
use registry_core::registry::{Registry, RegistryOptions};
use registry_core::secrets::Secrets;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::args().nth(1).ok_or("usage: write_golden DIR")?);
    std::fs::create_dir_all(&out)?;
    let data = tempfile_dir()?;
    let secrets = Secrets::from_master([7; 32]);
    let genesis = LogKey::from_seed([1; 32]);
    let rotated = LogKey::from_seed([2; 32]);
    let origin = "golden.huduma.example/log";
    let options = RegistryOptions { origin: origin.into(), ..RegistryOptions::default() };
    let registry = Registry::open_dir(&data, secrets.clone(), genesis.clone(), options)?;
    let actor = Actor { principal: "golden-registrar".into(), via: "GPO-NAIROBI".into() };
    let mut n = 0;
    let mut submit = |command: Command| {
        n += 1;
        registry.submit_blocking(Submission { request_id: format!("golden-{n}"), actor: actor.clone(), command })
    };
    let person = |given: &str, family: &str, dob: &str| Demographics {
        given_name: given.into(),
        family_name: family.into(),
        other_names: vec!["Wairimu".into()],
        date_of_birth: dob.into(),
        sex: Sex::Female,
        place_of_birth: "Nyeri".into(),
    };
    let a = submit(Command::RegisterPerson { demographics: person("Wanjiru", "Kamau", "1990-02-28") })?
        .number
        .ok_or("no number")?;
    let b = submit(Command::RegisterPerson { demographics: person("Achieng", "Otieno", "1985-07-01") })?
        .number
        .ok_or("no number")?;
    let c = submit(Command::RegisterPerson { demographics: person("Amina", "Hassan", "2001-12-12") })?
        .number
        .ok_or("no number")?;
    let d = submit(Command::RegisterPerson { demographics: person("Chebet", "Kiprop", "1970-03-15") })?
        .number
        .ok_or("no number")?;
    let e = submit(Command::RegisterPerson { demographics: person("Baraka", "Mwangi", "1999-09-09") })?
        .number
        .ok_or("no number")?;
    // The same person as `a` again: refused by the duplicate search, registered with a
    // justification (PersonRegistered version 2), later merged into `a`'s survivor.
    let f = submit(Command::RegisterPersonOverridingDuplicates {
        demographics: person("Wanjiru", "Kamau", "1990-02-28"),
        justification: "legacy register import: kept apart until reviewed".into(),
    })?
    .number
    .ok_or("no number")?;
    submit(Command::LinkAgencyRecord { number: a, agency: "KRA".into(), record_id: "A000111222Z".into() })?;
    submit(Command::LinkAgencyRecord { number: b, agency: "NHIF".into(), record_id: "NH-77".into() })?;
    submit(Command::LinkAgencyRecord { number: b, agency: "NTSA".into(), record_id: "DL-1".into() })?;
    submit(Command::UnlinkAgencyRecord { number: b, agency: "NTSA".into(), record_id: "DL-1".into() })?;
    let a2 = submit(Command::ReplaceNumber { number: a, reason: ReplacementReason::Compromised })?
        .number
        .ok_or("no number")?;
    submit(Command::CorrectDemographics { number: c, demographics: person("Amina", "Hassan Ali", "2001-12-12") })?;
    registry.rotate_key_blocking(rotated.clone(), Actor { principal: "operator".into(), via: "DATACENTRE".into() })?;
    submit(Command::RevokeNumber { number: d, reason: "identity fraud investigation".into() })?;
    submit(Command::ReinstateNumber { number: d, reason: "investigation closed".into() })?;
    submit(Command::RecordDeath { number: d, date_of_death: "2024-01-31".into() })?;
    submit(Command::MergeRecords { survivor: a2, duplicate: b, justification: "same person enrolled twice".into() })?;
    submit(Command::MergeRecords { survivor: a2, duplicate: f, justification: "the override was reviewed".into() })?;
    // The first merge was a mistake: undone (RecordsUnmerged), `b` takes NH-77 back.
    submit(Command::UnmergeRecords { duplicate: b, justification: "two persons: fingerprints differ".into() })?;
    // `e` corrected into `d`'s demographics: refused by the duplicate search, corrected
    // with a justification (DemographicsCorrected version 2); erased after.
    submit(Command::CorrectDemographicsOverridingDuplicates {
        number: e,
        demographics: person("Chebet", "Kiprop", "1970-03-15"),
        justification: "namesake born the same day, documents seen at the centre".into(),
    })?;
    submit(Command::ErasePersonalData { number: e, legal_basis: "DPA 2019 s.40 erasure request".into() })?;
    // `g`, revoked, is recorded dead in error; the retraction (DeathRetracted) gives
    // back the status she had: revoked.
    let g = submit(Command::RegisterPerson { demographics: person("Grace", "Njeri", "1962-05-20") })?
        .number
        .ok_or("no number")?;
    submit(Command::LinkAgencyRecord { number: g, agency: "NSSF".into(), record_id: "SS-5".into() })?;
    submit(Command::RevokeNumber { number: g, reason: "documents under review".into() })?;
    submit(Command::RecordDeath { number: g, date_of_death: "2025-06-30".into() })?;
    submit(Command::RetractDeath { number: g, reason: "alive: appeared in person at the centre".into() })?;
    let reader = registry.reader();
    let mut expected = String::new();
    for number in [a, a2, b, c, d, e, f, g] {
        let r = reader.resolve_number(number)?.ok_or("unresolved")?;
        let given = r.demographics.as_ref().map_or("-".to_string(), |d| format!("{}/{}", d.given_name, d.family_name));
        let links: Vec<String> = reader.agency_records(&r, |_| true)?.iter().map(|(a, r)| format!("{a}:{r}")).collect();
        expected.push_str(&format!(
            "{} {:?} {} {} {}\n",
            number.compact(),
            r.status,
            r.current_number.compact(),
            given.replace(' ', "_"),
            if links.is_empty() { "-".into() } else { links.join(",") }
        ));
    }
    let store = registry.store().clone();
    log_export::export_log(&*store, &mut std::fs::File::create(out.join("log.bin"))?)?;
    log_export::export_keyring(&*store, &mut std::fs::File::create(out.join("keyring.bin"))?)?;
    std::fs::write(out.join("expected.txt"), expected)?;
    std::fs::write(out.join("genesis.vkey"), note_verifier_key(origin, &genesis.public()) + "\n")?;
    std::fs::write(out.join("master.hex"), "0707070707070707070707070707070707070707070707070707070707070707\n")?;
    registry.close();
    std::fs::remove_dir_all(&data)?;
    println!("golden log written to {}", out.display());
    Ok(())
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("huduma-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
