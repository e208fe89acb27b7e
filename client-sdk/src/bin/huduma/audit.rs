//! `huduma audit`, of the identity log or (`--log access`) the access log: records
//! downloaded into an export file, resumably; and their verification, from a file or
//! a download: the chain (for the identity log its signatures and key rotations from
//! the genesis key; for the access log its unsigned links), and that the records
//! produce the root the registry signed (for the access log, with the identity log's
//! keys), resumable through a state file that keeps the last verified checkpoint, from
//! which each run proves consistency to the new one.

use std::io::Write;
use std::path::Path;

use huduma_log::VerifyingKey;
use huduma_log::access::{AccessChain, origin_for};
use huduma_log::chain::ChainVerifier;
use huduma_log::keys::{note_verifier_key, parse_note_verifier_key};
use huduma_log::merkle::{Frontier, Hash, leaf_hash};
use huduma_sdk::Client;
use huduma_sdk::receipt::{Checkpoint, open_checkpoint, verify_consistency};
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;

use super::{Failure, bar, failure, show};

/// Downloads records into `out` (export format), continuing after the complete records
/// it already holds.
pub async fn download_records(client: &Client, out: &Path, end: u64) -> Result<(), Failure> {
    let held = read_export(out).unwrap_or_default();
    // Drop a torn last frame, if a previous run was cut off mid-write.
    let complete: u64 = held.iter().map(|r| 4 + r.len() as u64).sum();
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(out) {
        f.set_len(complete)?;
    }
    let start = held.len() as u64;
    let keys = client.verifier_keys().await?;
    let end = if end == 0 { keys.log_size } else { end };
    let progress = bar(end, "download");
    progress.set_position(start);
    let mut file = std::io::BufWriter::new(std::fs::OpenOptions::new().create(true).append(true).open(out)?);
    if start < end {
        let mut records = client.get_records(start, end).await?;
        while let Some(record) = records.next().await {
            let record = record?;
            let len = u32::try_from(record.data.len()).map_err(|_| failure(8, "a record over 4 GiB"))?;
            file.write_all(&len.to_be_bytes())?;
            file.write_all(&record.data)?;
            progress.inc(1);
        }
    }
    file.flush()?;
    progress.finish_and_clear();
    eprintln!("{end} records in {} ({} downloaded now)", out.display(), end.saturating_sub(start));
    Ok(())
}

/// What a previous run verified.
#[derive(Serialize, Deserialize)]
struct State {
    /// "identity" or "access"; absent in state files written before the access log
    /// could be verified, which are the identity log's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log: Option<String>,
    origin: String,
    size: u64,
    head_hash: String,
    last_time: i64,
    keys: Vec<String>,
    /// The tree's right edge at `size`: (level, hex hash), largest first.
    tree_edge: Vec<(u8, String)>,
    /// The last checkpoint verified (a signed note), if any.
    checkpoint: Option<String>,
}

/// The records of an export file (u32 BE length + bytes); a torn last frame is left out.
pub fn read_export(path: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path)?;
    let mut records = Vec::new();
    let mut at = 0usize;
    while at + 4 <= bytes.len() {
        let len = u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let Some(end) = at.checked_add(4 + len).filter(|e| *e <= bytes.len()) else { break };
        records.push(bytes[at + 4..end].to_vec());
        at = end;
    }
    Ok(records)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Hash> {
    let bytes: Vec<u8> =
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect::<Option<_>>()?;
    bytes.try_into().ok()
}

/// The size a note claims, before its signature can be checked (its key may be one
/// the chain has not reached yet).
fn claimed_size(note: &str) -> Result<u64, Failure> {
    note.lines().nth(1).and_then(|l| l.parse().ok()).ok_or_else(|| failure(8, "the checkpoint has no tree size line"))
}

#[derive(Serialize)]
struct Verified {
    log: &'static str,
    origin: String,
    records: u64,
    head_hash: String,
    tree_root: String,
    checkpoint_size: Option<u64>,
    keys: Vec<String>,
    resumed_from: u64,
}

/// Which of the registry's two logs a command reads.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum LogName {
    /// Registrations and every change to a person.
    Identity,
    /// Every look-up of a person (the citizen's access log).
    Access,
}

impl LogName {
    fn sdk(self) -> huduma_sdk::Log {
        match self {
            LogName::Identity => huduma_sdk::Log::Identity,
            LogName::Access => huduma_sdk::Log::Access,
        }
    }

    /// The log's name as a state file keeps it.
    fn name(self) -> &'static str {
        match self {
            LogName::Identity => "identity",
            LogName::Access => "access",
        }
    }
}

/// The client for `log`'s Audit calls.
pub fn on(client: &Client, log: LogName) -> Client {
    client.on_log(log.sdk())
}

/// What `huduma audit verify` reads and trusts.
pub struct Sources<'a> {
    pub log: LogName,
    /// An export file to verify instead of downloading.
    pub from: Option<&'a Path>,
    /// A signed checkpoint to verify the records against, instead of the newest.
    pub checkpoint: Option<&'a Path>,
    /// Identity log: the published genesis verifier key.
    pub genesis_key: Option<String>,
    /// Access log: the state file of a verification of the identity log, whose keys
    /// (verified from the genesis key) sign the access log's checkpoints.
    pub keys_from: Option<&'a Path>,
    /// Where the last verified point is kept between runs.
    pub state: Option<&'a Path>,
}

/// A log's records checked in order: the identity log's chain (signatures and key
/// rotations from the genesis key), or the access log's (unsigned records, whose
/// checkpoints are signed by the identity log's keys).
enum Chain {
    Identity(Box<ChainVerifier>),
    Access { chain: AccessChain, keys: Vec<VerifyingKey> },
}

impl Chain {
    fn next_seq(&self) -> u64 {
        match self {
            Chain::Identity(chain) => chain.next_seq(),
            Chain::Access { chain, .. } => chain.next_seq(),
        }
    }

    fn push(&mut self, record: &[u8]) -> Result<(), Failure> {
        let failed = |e: String| failure(8, format!("verification failed: {e}"));
        match self {
            Chain::Identity(chain) => chain.push(record).map_err(|e| failed(e.to_string())),
            Chain::Access { chain, .. } => chain.push(record).map(drop).map_err(|e| failed(e.to_string())),
        }
    }

    /// How many records, the last one's hash and time, and the keys checkpoints are
    /// signed with.
    fn finish(self) -> Result<(u64, [u8; 32], i64, Vec<VerifyingKey>), Failure> {
        match self {
            Chain::Identity(chain) => {
                let last_time = chain.last_time();
                let summary = chain.finish().map_err(|e| failure(8, format!("verification failed: {e}")))?;
                Ok((summary.records, summary.head_hash, last_time, summary.keys))
            }
            Chain::Access { chain, keys } => {
                let last_time = i64::try_from(chain.last_time()).unwrap_or(i64::MAX);
                Ok((chain.next_seq(), chain.head_hash(), last_time, keys))
            }
        }
    }
}

/// The state file at `path`, if there is one.
fn read_state(path: Option<&Path>) -> Result<Option<State>, Failure> {
    match path {
        Some(p) if p.exists() => {
            let text = std::fs::read_to_string(p)?;
            Ok(Some(serde_json::from_str(&text).map_err(|e| failure(3, format!("{}: {e}", p.display())))?))
        }
        _ => Ok(None),
    }
}

/// Verifier keys as a state file keeps them (C2SP form), parsed.
fn state_keys(keys: &[String], what: &str) -> Result<Vec<VerifyingKey>, Failure> {
    keys.iter()
        .map(|k| parse_note_verifier_key(k).map(|(_, key)| key))
        .collect::<Result<_, _>>()
        .map_err(|e| failure(3, format!("{what} keys: {e}")))
}

/// The access log's origin and the keys its checkpoints are signed with: the identity
/// log's keys an earlier `huduma audit verify` verified from the genesis key (`--keys-from`),
/// or else the registry's own word for them.
async fn access_trust(client: &Client, keys_from: Option<&Path>) -> Result<(String, Vec<VerifyingKey>), Failure> {
    if let Some(path) = keys_from {
        let identity = read_state(Some(path))?
            .ok_or_else(|| failure(3, format!("--keys-from {}: no such state file", path.display())))?;
        if identity.log.as_deref().unwrap_or(LogName::Identity.name()) != LogName::Identity.name() {
            return Err(failure(3, format!("--keys-from {}: not the state of the identity log", path.display())));
        }
        return Ok((origin_for(&identity.origin), state_keys(&identity.keys, "--keys-from")?));
    }
    let published = on(client, LogName::Access).verifier_keys().await?;
    eprintln!(
        "warning: trusting the keys the registry publishes for its access log; pass --keys-from with the state \
         file of a verification of the identity log to trust the keys verified from its genesis key"
    );
    let keys = huduma_sdk::receipt::parse_keys(&published)?;
    Ok((published.origin, keys))
}

pub async fn verify(client: &Client, sources: Sources<'_>, json: bool) -> Result<(), Failure> {
    let Sources { log, from, checkpoint: checkpoint_file, genesis_key, keys_from, state: state_path } = sources;
    let client = &on(client, log);
    let state = read_state(state_path)?;
    if let Some(s) = &state
        && s.log.as_deref().unwrap_or(LogName::Identity.name()) != log.name()
    {
        return Err(failure(3, format!("the state file is of another log than the {} log", log.name())));
    }
    let file_records = from.map(read_export).transpose()?;
    let online = file_records.is_none();
    let (mut origin, genesis, access_keys) = match log {
        LogName::Identity => {
            let bad_key = |e: huduma_log::keys::KeyError| failure(3, format!("--genesis-key: {e}"));
            let published = genesis_key.map(|k| parse_note_verifier_key(&k)).transpose().map_err(bad_key)?;
            match (published, &file_records) {
                (Some((name, key)), _) => (name, Some(key), Vec::new()),
                (None, Some(_)) => (String::new(), None, Vec::new()),
                (None, None) => {
                    let keys = client.verifier_keys().await?;
                    let first = keys.keys.first().ok_or_else(|| failure(8, "the registry publishes no key"))?;
                    eprintln!(
                        "warning: trusting the registry's own genesis key; pass --genesis-key to trust the published one"
                    );
                    let (_, key) = parse_note_verifier_key(&first.verifier_key)
                        .map_err(|e| failure(8, format!("the registry's key: {e}")))?;
                    (keys.origin, Some(key), Vec::new())
                }
            }
        }
        LogName::Access => {
            let (origin, keys) = access_trust(client, keys_from).await?;
            (origin, None, keys)
        }
    };
    if origin.is_empty()
        && let Some(s) = &state
    {
        origin = s.origin.clone();
    }
    // The checkpoint to verify up to: the registry's newest, or the one given.
    let note = match (checkpoint_file, online) {
        (Some(path), _) => Some(std::fs::read_to_string(path)?),
        (None, true) => Some(client.checkpoint(0).await?),
        (None, false) => None,
    };
    let target = match (&note, &file_records) {
        (Some(note), _) => claimed_size(note)?,
        (None, Some(records)) => records.len() as u64,
        (None, None) => 0,
    };
    let (mut verifier, mut tree) = match &state {
        Some(s) => {
            let head = unhex(&s.head_hash).ok_or_else(|| failure(3, "state head_hash is not 32 bytes of hex"))?;
            let edge: Option<Vec<(u8, Hash)>> = s.tree_edge.iter().map(|(l, h)| unhex(h).map(|h| (*l, h))).collect();
            let tree = edge
                .and_then(|edge| Frontier::from_edge(s.size, edge))
                .ok_or_else(|| failure(3, "state tree_edge does not fit its size"))?;
            let chain = match log {
                LogName::Identity => {
                    let keys = state_keys(&s.keys, "state")?;
                    if let (Some(g), Some(first)) = (genesis, keys.first())
                        && g != *first
                    {
                        return Err(failure(8, "the state file starts from another genesis key"));
                    }
                    Chain::Identity(Box::new(ChainVerifier::resume(s.size, head, s.last_time, keys)))
                }
                LogName::Access => {
                    let last_time =
                        u64::try_from(s.last_time).map_err(|_| failure(3, "state last_time is before 1970"))?;
                    Chain::Access { chain: AccessChain::resume(s.size, head, last_time), keys: access_keys }
                }
            };
            (chain, tree)
        }
        None => match log {
            LogName::Identity => (Chain::Identity(Box::new(ChainVerifier::new(genesis))), Frontier::new()),
            LogName::Access => (Chain::Access { chain: AccessChain::new(), keys: access_keys }, Frontier::new()),
        },
    };
    let resumed_from = verifier.next_seq();
    if target < resumed_from {
        return Err(failure(
            8,
            format!(
                "the log offered ends at {target}, before the {resumed_from} records verified before (rolled back)"
            ),
        ));
    }
    // The record before the resume point must still be the one verified then: a
    // registry that rewrote or forked history behind the state is caught here.
    if let Some(s) = &state
        && s.size > 0
    {
        let previous = match &file_records {
            Some(records) => records.get((s.size - 1) as usize).cloned(),
            None => {
                let mut stream = client.get_records(s.size - 1, s.size).await?;
                stream.next().await.transpose()?.map(|r| r.data)
            }
        };
        let previous =
            previous.ok_or_else(|| failure(8, format!("record {}: missing (the log shrank)", s.size - 1)))?;
        if hex(&huduma_log::record::hash(&previous)) != s.head_hash {
            // (Both logs name a record by the BLAKE3 hash of its exact bytes.)
            return Err(failure(
                8,
                format!(
                    "record {}: differs from the one verified before (history was rewritten or forked)",
                    s.size - 1
                ),
            ));
        }
    }
    let progress = bar(target, "verify");
    progress.set_position(resumed_from);
    match &file_records {
        Some(records) => {
            for record in records.iter().take(target as usize).skip(resumed_from as usize) {
                verifier.push(record)?;
                tree.push(leaf_hash(record));
                progress.inc(1);
            }
            if (records.len() as u64) < target {
                return Err(failure(8, format!("record {}: missing (the checkpoint covers {target})", records.len())));
            }
        }
        None => {
            if resumed_from < target {
                let mut stream = client.get_records(resumed_from, target).await?;
                while let Some(record) = stream.next().await {
                    let record = record?;
                    verifier.push(&record.data)?;
                    tree.push(leaf_hash(&record.data));
                    progress.inc(1);
                }
            }
        }
    }
    progress.finish_and_clear();
    let (records, head_hash, last_time, keys) = verifier.finish()?;
    if records != target {
        return Err(failure(8, format!("record {records}: missing (expected {target} records)")));
    }
    // The records must produce the root the registry signed, and the last
    // checkpoint verified must be a prefix of this one.
    let checkpoint = match &note {
        Some(note) => {
            let checkpoint = open_checkpoint(note, &origin, &keys)?;
            if checkpoint.root != tree.root() {
                return Err(failure(
                    8,
                    format!("checkpoint {}: the records do not produce the root it signs", checkpoint.size),
                ));
            }
            if let Some(old_note) = state.as_ref().and_then(|s| s.checkpoint.as_ref()) {
                let old = open_checkpoint(old_note, &origin, &keys)?;
                let proof = if online {
                    client.consistency_proof(old.size, checkpoint.size).await?
                } else {
                    // Offline the records are all here: recompute the old root instead.
                    let records = file_records.as_deref().unwrap_or_default();
                    let mut prefix = Frontier::new();
                    records.iter().take(old.size as usize).for_each(|r| drop(prefix.push(leaf_hash(r))));
                    if prefix.root() != old.root {
                        return Err(failure(8, format!("checkpoint {}: the log was forked behind it", old.size)));
                    }
                    Vec::new()
                };
                if online {
                    verify_consistency(&old, &checkpoint, &proof)?;
                }
            }
            Some(checkpoint)
        }
        None => None,
    };
    let keys: Vec<String> = keys.iter().map(|k| note_verifier_key(&origin, k)).collect();
    if let Some(p) = state_path {
        let next = State {
            log: Some(log.name().into()),
            origin: origin.clone(),
            size: records,
            head_hash: hex(&head_hash),
            last_time,
            keys: keys.clone(),
            tree_edge: tree.edge().iter().map(|(l, h)| (*l, hex(h))).collect(),
            checkpoint: note.clone().or_else(|| state.as_ref().and_then(|s| s.checkpoint.clone())),
        };
        let text = serde_json::to_string_pretty(&next).map_err(|e| failure(1, e.to_string()))?;
        std::fs::write(p, text)?;
    }
    show(
        json,
        &Verified {
            log: log.name(),
            origin,
            records,
            head_hash: hex(&head_hash),
            tree_root: hex(&tree.root()),
            checkpoint_size: checkpoint.map(|c: Checkpoint| c.size),
            keys,
            resumed_from,
        },
    )
}

/// `huduma audit prove --index N`: the record's inclusion in the newest checkpoint.
pub async fn prove(client: &Client, index: u64, json: bool) -> Result<(), Failure> {
    let keys = client.verifier_keys().await?;
    let public = huduma_sdk::receipt::parse_keys(&keys)?;
    let note = client.checkpoint(0).await?;
    let checkpoint = open_checkpoint(&note, &keys.origin, &public)?;
    let mut records = client.get_records(index, index + 1).await?;
    let record =
        records.next().await.transpose()?.ok_or_else(|| failure(4, format!("record {index}: not in the log")))?;
    let proof = client.inclusion_proof(index, checkpoint.size).await?;
    huduma_sdk::receipt::verify_inclusion(&checkpoint, index, &record.data, &proof)?;
    #[derive(Serialize)]
    struct Proved {
        index: u64,
        checkpoint_size: u64,
        tree_root: String,
        proof_hashes: usize,
    }
    show(
        json,
        &Proved {
            index,
            checkpoint_size: checkpoint.size,
            tree_root: hex(&checkpoint.root),
            proof_hashes: proof.len(),
        },
    )
}
