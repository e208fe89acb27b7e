//! Writes what Go's standard implementations check (tools/go-verifier): a log of 70
//! registrations exported as `log.bin`, its newest signed checkpoint
//! (`checkpoint.note`), the log's verifier key (`verifier.key`), and every inclusion
//! and consistency proof of the tree up to its size (`proofs.json`); and the same of
//! the access log, after 40 look-ups of those persons, in `DIR/access`.
//!
//! `cargo run -p registry-core --example tlog_fixture -- DIR`

use std::io::Write;
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use registry_core::PersonId;
use registry_core::access::record::{AccessBody, AccessCall, AccessEvent, AccessOutcome, KeyUsed};
use registry_core::command::{Command, Submission};
use registry_core::event::Actor;
use registry_core::keys::{LogKey, note_verifier_key};
use registry_core::query::ResolvedStatus;
use registry_core::registry::{Registry, RegistryOptions};
use registry_core::secrets::Secrets;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).ok_or("usage: tlog_fixture DIR")?);
    std::fs::create_dir_all(&dir)?;
    let data = tempfile::tempdir()?;
    let key = LogKey::from_seed([31; 32]);
    let options = RegistryOptions { checkpoint_interval: std::time::Duration::ZERO, ..RegistryOptions::default() };
    let registry = Registry::open_dir(data.path(), Secrets::from_master([32; 32]), key.clone(), options.clone())?;
    for i in 0..70u64 {
        // Persons the duplicate search never takes for one another.
        let demographics = registry_core::synthetic::distinct_person(i);
        let submission = Submission {
            request_id: format!("fixture-{i}"),
            actor: Actor { principal: "fixture".into(), via: "TEST".into() },
            command: Command::RegisterPerson { demographics },
        };
        registry.submit_blocking(submission)?;
    }
    let reader = registry.reader();
    let size = reader.log_size()?;
    let (at, note) = reader.latest_checkpoint()?.ok_or("no checkpoint was signed")?;
    if at != size {
        return Err(format!("the newest checkpoint is at {at}, the log at {size}").into());
    }
    let origin = reader.origin()?.ok_or("no origin")?;
    std::fs::write(dir.join("checkpoint.note"), &note)?;
    std::fs::write(dir.join("verifier.key"), note_verifier_key(&origin, &key.public()))?;
    let mut log = std::fs::File::create(dir.join("log.bin"))?;
    registry_core::log_export::export_log(&**registry.store(), &mut log)?;
    write_proofs(&dir, size, |i, n| Ok(reader.inclusion_proof(i, n)?), |o, n| Ok(reader.consistency_proof(o, n)?))?;

    // The access log: look-ups of the persons registered, recorded as Resolve records them.
    let access_dir = dir.join("access");
    std::fs::create_dir_all(&access_dir)?;
    for i in 0..40u64 {
        let body = AccessBody {
            call: AccessCall::Resolve,
            principal: "kra".into(),
            role: "agency".into(),
            agency: "KRA".into(),
            purpose: format!("fixture look-up {i}"),
            key: KeyUsed::HudumaNumber(String::new()),
            outcome: AccessOutcome::Found(ResolvedStatus::Active),
            attributes: Vec::new(),
        };
        // Person ids are the sequence numbers of their registrations (1..=70).
        registry.access().record_blocking(AccessEvent { person: Some(PersonId(1 + i % 70)), body })?;
    }
    let access = registry.access().reader();
    let access_size = access.size()?;
    let (signed_at, access_note) = loop {
        // Access checkpoints are signed when due, off the look-up's path.
        match access.latest_checkpoint()? {
            Some((at, note)) if at == access_size => break (at, note),
            _ => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    };
    std::fs::write(access_dir.join("checkpoint.note"), &access_note)?;
    std::fs::write(access_dir.join("verifier.key"), note_verifier_key(registry.access().origin(), &key.public()))?;
    let mut log = std::io::BufWriter::new(std::fs::File::create(access_dir.join("log.bin"))?);
    for seq in 0..access_size {
        let record = access.record(seq)?.ok_or(format!("access record {seq} is missing"))?;
        log.write_all(&u32::try_from(record.len())?.to_be_bytes())?;
        log.write_all(&record)?;
    }
    log.flush()?;
    write_proofs(
        &access_dir,
        access_size,
        |i, n| Ok(access.inclusion_proof(i, n)?),
        |o, n| Ok(access.consistency_proof(o, n)?),
    )?;
    registry.close();
    println!(
        "wrote {size} records and {signed_at} access records, their checkpoints and every proof up to them to {}",
        dir.display()
    );
    Ok(())
}

type Proof = Result<Vec<[u8; 32]>, Box<dyn std::error::Error>>;

/// Every inclusion and consistency proof of a tree of `size` leaves, as `proofs.json`.
fn write_proofs(
    dir: &std::path::Path,
    size: u64,
    inclusion_proof: impl Fn(u64, u64) -> Proof,
    consistency_proof: impl Fn(u64, u64) -> Proof,
) -> Result<(), Box<dyn std::error::Error>> {
    let encode = |hashes: Vec<[u8; 32]>| hashes.iter().map(|h| B64.encode(h)).collect::<Vec<_>>();
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    for tree_size in 1..=size {
        for index in 0..tree_size {
            let hashes = encode(inclusion_proof(index, tree_size)?);
            inclusion.push(serde_json::json!({ "index": index, "tree_size": tree_size, "hashes": hashes }));
        }
        for old_size in 1..=tree_size {
            let hashes = encode(consistency_proof(old_size, tree_size)?);
            consistency.push(serde_json::json!({ "old_size": old_size, "new_size": tree_size, "hashes": hashes }));
        }
    }
    let proofs = serde_json::json!({ "inclusion": inclusion, "consistency": consistency });
    std::fs::write(dir.join("proofs.json"), serde_json::to_vec(&proofs)?)?;
    Ok(())
}
