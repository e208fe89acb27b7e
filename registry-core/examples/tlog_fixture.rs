//! Writes what Go's standard implementations check (tools/go-verifier): a log of 70
//! registrations exported as `log.bin`, its newest signed checkpoint
//! (`checkpoint.note`), the log's verifier key (`verifier.key`), and every inclusion
//! and consistency proof of the tree up to its size (`proofs.json`).
//!
//! `cargo run -p registry-core --example tlog_fixture -- DIR`

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use registry_core::command::{Command, Submission};
use registry_core::event::Actor;
use registry_core::keys::{LogKey, note_verifier_key};
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
    let encode = |hashes: Vec<[u8; 32]>| hashes.iter().map(|h| B64.encode(h)).collect::<Vec<_>>();
    let mut inclusion = Vec::new();
    let mut consistency = Vec::new();
    for tree_size in 1..=size {
        for index in 0..tree_size {
            let hashes = encode(reader.inclusion_proof(index, tree_size)?);
            inclusion.push(serde_json::json!({ "index": index, "tree_size": tree_size, "hashes": hashes }));
        }
        for old_size in 1..=tree_size {
            let hashes = encode(reader.consistency_proof(old_size, tree_size)?);
            consistency.push(serde_json::json!({ "old_size": old_size, "new_size": tree_size, "hashes": hashes }));
        }
    }
    let proofs = serde_json::json!({ "inclusion": inclusion, "consistency": consistency });
    std::fs::write(dir.join("proofs.json"), serde_json::to_vec(&proofs)?)?;
    registry.close();
    println!("wrote {} records, a checkpoint of size {size} and every proof up to it to {}", size, dir.display());
    Ok(())
}
