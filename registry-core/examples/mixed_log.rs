//! Writes a log of random commands of every kind, many of them refused (a refusal
//! writes nothing), and exports it, for an independent verifier to hold the writer to
//! the rules docs/LOG-FORMAT.md states (section 6: each number issued once, each
//! person registered before being named, what each event requires of a person's
//! status):
//!
//! `cargo run -p registry-core --example mixed_log -- OUT.bin SEED COMMANDS`
//!
//! Prints the genesis verifier key (C2SP note format) on stdout, and how many commands
//! of each kind were written on stderr. Fails if any kind was never written.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use registry_core::HudumaNumber;
use registry_core::command::{Command, Submission};
use registry_core::event::{Actor, ReplacementReason};
use registry_core::keys::{LogKey, note_verifier_key};
use registry_core::log_export;
use registry_core::registry::{Registry, RegistryOptions};
use registry_core::secrets::Secrets;
use registry_core::storage::memory::MemoryStore;
use registry_core::synthetic::distinct_person;

const KINDS: [&str; 13] = [
    "register",
    "replace",
    "correct",
    "link",
    "unlink",
    "record death",
    "retract death",
    "revoke",
    "reinstate",
    "merge",
    "unmerge",
    "erase",
    "rotate key",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: mixed_log OUT.bin SEED COMMANDS";
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or(usage)?);
    let seed: u64 = args.next().ok_or(usage)?.parse()?;
    let commands: usize = args.next().ok_or(usage)?.parse()?;

    let genesis = LogKey::from_seed([seed as u8; 32]);
    let origin = "mixed.huduma.example/log";
    let options = RegistryOptions { origin: origin.into(), ..RegistryOptions::default() };
    let store = Arc::new(MemoryStore::new());
    let access = Arc::new(MemoryStore::new());
    let registry = Registry::open(store, access, Secrets::from_master([9; 32]), genesis.clone(), options)?;
    let actor = Actor { principal: "mixed-registrar".into(), via: "GPO-NAIROBI".into() };
    let mut rng = StdRng::seed_from_u64(seed);

    // Every number issued, and each person's number in force (by registration order).
    let mut issued: Vec<HudumaNumber> = Vec::new();
    let mut current: Vec<HudumaNumber> = Vec::new();
    let mut next_person = 0u64;
    // Records linked: the number they were linked through, the agency, the record id.
    let mut linked: Vec<(HudumaNumber, String, String)> = Vec::new();
    let mut written: BTreeMap<&str, u64> = KINDS.iter().map(|k| (*k, 0)).collect();
    for n in 0..commands {
        // Mostly a number in force; sometimes any number ever issued (superseded ones
        // are refused, merged ones name their merged person).
        let pick = |rng: &mut StdRng| {
            if current.is_empty() {
                None
            } else if rng.gen_bool(0.9) {
                Some(current[rng.gen_range(0..current.len())])
            } else {
                Some(issued[rng.gen_range(0..issued.len())])
            }
        };
        let kind = if current.len() < 4 { 0 } else { rng.gen_range(0..KINDS.len()) };
        let record = format!("R-{}", rng.gen_range(0..12));
        let agency = if rng.gen_bool(0.5) { "KRA" } else { "NHIF" };
        let command = match (kind, pick(&mut rng), pick(&mut rng)) {
            (0, _, _) | (_, None, _) | (_, _, None) => {
                next_person += 1;
                Command::RegisterPerson { demographics: distinct_person(next_person) }
            }
            (1, Some(number), _) => Command::ReplaceNumber { number, reason: ReplacementReason::Lost },
            (2, Some(number), _) => {
                next_person += 1;
                Command::CorrectDemographics { number, demographics: distinct_person(next_person) }
            }
            (3, Some(number), _) => Command::LinkAgencyRecord { number, agency: agency.into(), record_id: record },
            // Mostly a record linked before (to whomever holds it now, merges moving it).
            (4, Some(number), _) => match linked.len() {
                0 => Command::UnlinkAgencyRecord { number, agency: agency.into(), record_id: record },
                len => {
                    let (number, agency, record_id) = linked.swap_remove(rng.gen_range(0..len));
                    Command::UnlinkAgencyRecord { number, agency, record_id }
                }
            },
            (5, Some(number), _) => Command::RecordDeath { number, date_of_death: "2020-01-31".into() },
            (6, Some(number), _) => Command::RetractDeath { number, reason: "recorded in error".into() },
            (7, Some(number), _) => Command::RevokeNumber { number, reason: "fraud".into() },
            (8, Some(number), _) => Command::ReinstateNumber { number, reason: "cleared".into() },
            (9, Some(survivor), Some(duplicate)) => {
                Command::MergeRecords { survivor, duplicate, justification: "one person".into() }
            }
            (10, Some(duplicate), _) => Command::UnmergeRecords { duplicate, justification: "two persons".into() },
            // Rare: an erasure ends most of what a person can still have done to them.
            (11, Some(number), _) if rng.gen_bool(0.2) => {
                Command::ErasePersonalData { number, legal_basis: "DPA 2019 s.40".into() }
            }
            (11, Some(number), _) => Command::RevokeNumber { number, reason: "fraud".into() },
            _ => {
                if rng.gen_bool(0.1) {
                    let key = LogKey::from_seed([rng.r#gen::<u8>() | 1; 32]);
                    registry.rotate_key_blocking(key, actor.clone())?;
                    *written.entry("rotate key").or_default() += 1;
                }
                continue;
            }
        };
        let shown = KINDS[match &command {
            Command::RegisterPerson { .. } => 0,
            Command::ErasePersonalData { .. } => 11,
            Command::RevokeNumber { .. } => 7,
            _ => kind,
        }];
        let replacing = match &command {
            Command::ReplaceNumber { number, .. } => Some(*number),
            _ => None,
        };
        let linking = match &command {
            Command::LinkAgencyRecord { number, agency, record_id } => {
                Some((*number, agency.clone(), record_id.clone()))
            }
            _ => None,
        };
        let submission = Submission { request_id: format!("mixed-{n}"), actor: actor.clone(), command };
        // A refusal (a status that forbids it, a superseded number, a record linked
        // elsewhere) writes nothing: that is what the verifier must find.
        let Ok(outcome) = registry.submit_blocking(submission) else { continue };
        *written.entry(shown).or_default() += 1;
        linked.extend(linking);
        if let Some(number) = outcome.number {
            issued.push(number);
            match replacing.and_then(|old| current.iter().position(|c| *c == old)) {
                Some(at) => current[at] = number,
                None => current.push(number),
            }
        }
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    let records = log_export::export_log(&**registry.store(), &mut file)?;
    std::io::Write::flush(&mut file)?;
    registry.close();
    println!("{}", note_verifier_key(origin, &genesis.public()));
    eprintln!("{records} records written from {commands} commands: {written:?}");
    let never: Vec<&str> = written.iter().filter(|(_, n)| **n == 0).map(|(k, _)| *k).collect();
    if !never.is_empty() {
        return Err(format!("no command of these kinds was written: {never:?}").into());
    }
    Ok(())
}
