//! `huduma audit records` and `huduma audit verify`: records downloaded into an
//! export file, resumably; and the verification of the chain, signatures and keys, and
//! that the records produce the root the registry signed, from a file or a download,
//! resumable through a state file that keeps the last verified checkpoint, from which
//! each run proves consistency to the new one.

use std::io::Write;
use std::path::Path;

use huduma_log::VerifyingKey;
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
    origin: String,
    records: u64,
    head_hash: String,
    tree_root: String,
    checkpoint_size: Option<u64>,
    keys: Vec<String>,
    resumed_from: u64,
}

pub async fn verify(
    client: &Client,
    from: Option<&Path>,
    genesis_key: Option<String>,
    checkpoint_file: Option<&Path>,
    state_path: Option<&Path>,
    json: bool,
) -> Result<(), Failure> {
    let bad_key = |e: huduma_log::keys::KeyError| failure(3, format!("--genesis-key: {e}"));
    let published = genesis_key.map(|k| parse_note_verifier_key(&k)).transpose().map_err(bad_key)?;
    let state: Option<State> = match state_path {
        Some(p) if p.exists() => {
            let text = std::fs::read_to_string(p)?;
            Some(serde_json::from_str(&text).map_err(|e| failure(3, format!("{}: {e}", p.display())))?)
        }
        _ => None,
    };
    let file_records = from.map(read_export).transpose()?;
    let online = file_records.is_none();
    let (mut origin, genesis) = match (&published, &file_records) {
        (Some((name, key)), _) => (name.clone(), Some(*key)),
        (None, Some(_)) => (String::new(), None),
        (None, None) => {
            let keys = client.verifier_keys().await?;
            let first = keys.keys.first().ok_or_else(|| failure(8, "the registry publishes no key"))?;
            eprintln!(
                "warning: trusting the registry's own genesis key; pass --genesis-key to trust the published one"
            );
            let (_, key) = parse_note_verifier_key(&first.verifier_key)
                .map_err(|e| failure(8, format!("the registry's key: {e}")))?;
            (keys.origin, Some(key))
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
            let keys: Vec<VerifyingKey> = s
                .keys
                .iter()
                .map(|k| parse_note_verifier_key(k).map(|(_, key)| key))
                .collect::<Result<_, _>>()
                .map_err(|e| failure(3, format!("state keys: {e}")))?;
            if let (Some(g), Some(first)) = (genesis, keys.first())
                && g != *first
            {
                return Err(failure(8, "the state file starts from another genesis key"));
            }
            let head = unhex(&s.head_hash).ok_or_else(|| failure(3, "state head_hash is not 32 bytes of hex"))?;
            let edge: Option<Vec<(u8, Hash)>> = s.tree_edge.iter().map(|(l, h)| unhex(h).map(|h| (*l, h))).collect();
            let tree = edge
                .and_then(|edge| Frontier::from_edge(s.size, edge))
                .ok_or_else(|| failure(3, "state tree_edge does not fit its size"))?;
            (ChainVerifier::resume(s.size, head, s.last_time, keys), tree)
        }
        None => (ChainVerifier::new(genesis), Frontier::new()),
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
            return Err(failure(
                8,
                format!(
                    "record {}: differs from the one verified before (history was rewritten or forked)",
                    s.size - 1
                ),
            ));
        }
    }
    let chain_failure = |e: huduma_log::chain::ChainError| failure(8, format!("verification failed: {e}"));
    let progress = bar(target, "verify");
    progress.set_position(resumed_from);
    match &file_records {
        Some(records) => {
            for record in records.iter().take(target as usize).skip(resumed_from as usize) {
                verifier.push(record).map_err(chain_failure)?;
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
                    verifier.push(&record.data).map_err(chain_failure)?;
                    tree.push(leaf_hash(&record.data));
                    progress.inc(1);
                }
            }
        }
    }
    progress.finish_and_clear();
    let last_time = verifier.last_time();
    let summary = verifier.finish().map_err(chain_failure)?;
    if summary.records != target {
        return Err(failure(8, format!("record {}: missing (expected {target} records)", summary.records)));
    }
    // The records must produce the root the registry signed, and the last
    // checkpoint verified must be a prefix of this one.
    let checkpoint = match &note {
        Some(note) => {
            let checkpoint = open_checkpoint(note, &origin, &summary.keys)?;
            if checkpoint.root != tree.root() {
                return Err(failure(
                    8,
                    format!("checkpoint {}: the records do not produce the root it signs", checkpoint.size),
                ));
            }
            if let Some(old_note) = state.as_ref().and_then(|s| s.checkpoint.as_ref()) {
                let old = open_checkpoint(old_note, &origin, &summary.keys)?;
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
    let keys: Vec<String> = summary.keys.iter().map(|k| note_verifier_key(&origin, k)).collect();
    if let Some(p) = state_path {
        let next = State {
            origin: origin.clone(),
            size: summary.records,
            head_hash: hex(&summary.head_hash),
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
            origin,
            records: summary.records,
            head_hash: hex(&summary.head_hash),
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
