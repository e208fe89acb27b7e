//! After a restore: the records the lost data directory had appended past the backup,
//! taken back from an export of the log (the auditors' download format), so that the
//! restored log goes on as the published one did instead of forking from it, and no
//! number issued after the backup is ever issued again.
//!
//! The whole export is verified first, from record 0 (the chain, every signature, the
//! chain of log keys, every payload), and its record at the store's last index must be
//! the store's own: only then is anything written. The records past the store's end
//! are appended as they are; the projections fold them when the registry next opens.
//!
//! What cannot come back: the keys of the persons those records register (the keyring
//! is not in the log), so each gets the tombstone erasure leaves and their personal
//! data is unreadable, while their numbers stay theirs; and the answers to their
//! requests (the request index is not in the log either), so a client that retries one
//! of those requests is answered as for a new one.
//!
//! The access log's tail is taken back the same way ([`import_access_tail`]), from an
//! export of it and the signed checkpoint that vouches for its records.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use ed25519_dalek::VerifyingKey;

use crate::PersonId;
use crate::keyring;
use crate::log_export::read_frame;
use crate::projection::state::person_key;
use crate::record::{HashedRecord, RecordRef};
use crate::replay::{self, CHUNK, Reached};
use crate::storage::view::{ReadError, open_record};
use crate::storage::{Storage, StorageError, Tree, WriteBatch, checksum};
use crate::verify::{LogVerifier, VerifyError};
use crate::writer::seq_key;

/// What an import appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailImported {
    /// The store's size before: the first record appended.
    pub from: u64,
    /// The store's size after.
    pub to: u64,
    /// Persons registered by the appended records, whose keys were not in the store:
    /// their personal data is unreadable.
    pub keys_lost: u64,
}

/// Why nothing was imported. The store is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum TailImportError {
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    #[error("the export does not verify: {0}")]
    Verify(#[from] VerifyError),
    #[error(
        "the export's record {seq} is not the store's (another log, or a history that was rewritten): nothing is imported"
    )]
    NotThisLog { seq: u64 },
    #[error(
        "the store holds a batch whose commit a crash cut short: run `huduma-registry recover` (or start the registry) first"
    )]
    InterruptedCommit,
    #[error("the access log's export, record {seq}: {reason}")]
    AccessChain { seq: u64, reason: String },
    #[error("the access log's checkpoint: {0}")]
    Checkpoint(String),
    #[error(transparent)]
    Replay(replay::ReplayError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Appends to `store` the records of the export at `path` past the store's end, once
/// the whole export verifies from `genesis` (without it, the key record 0 names) and
/// holds the store's own records. `progress` is told as the export is verified, then
/// as records are appended.
pub fn import_tail(
    store: &dyn Storage,
    path: &Path,
    genesis: Option<VerifyingKey>,
    progress: &mut dyn FnMut(Reached),
) -> Result<TailImported, TailImportError> {
    match crate::log_export::check_exportable(store) {
        Ok(()) => {}
        Err(replay::ReplayError::InterruptedCommit { .. }) => return Err(TailImportError::InterruptedCommit),
        Err(e) => return Err(TailImportError::Replay(e)),
    }
    let size = replay::log_size(store)?;
    let head = match size {
        0 => None,
        size => {
            let key = seq_key(size - 1);
            let stored = store.get(Tree::Log, &key)?.ok_or(ReadError::from(StorageError::Engine(format!(
                "record {} is missing below the log's end",
                size - 1
            ))))?;
            Some(*open_record(&key, stored).map_err(ReadError::from)?.hash())
        }
    };

    // First pass: the whole export verified, and shown to hold the store's records.
    let io = |cause| TailImportError::Io { path: path.display().to_string(), cause };
    let mut verifier = LogVerifier::new(genesis);
    let mut records = 0u64;
    let mut last = None;
    let mut input = BufReader::new(File::open(path).map_err(io)?);
    while let Some(bytes) = read_frame(&mut input).map_err(io)? {
        let record = HashedRecord::new(bytes);
        verifier.push_hashed(&record)?;
        last = Some(*record.hash());
        if records + 1 == size && Some(*record.hash()) != head {
            return Err(TailImportError::NotThisLog { seq: records });
        }
        records += 1;
        if records.is_multiple_of(CHUNK as u64) {
            verifier.check_signatures()?;
            progress(Reached::log(records, 0));
        }
    }
    verifier.finish()?;
    if records < size {
        // A shorter export: nothing to append, but it must be a prefix of this log,
        // which its last record's place in the store's chain shows.
        if let Some(at) = records.checked_sub(1) {
            let key = seq_key(at);
            let stored = store.get(Tree::Log, &key)?;
            let ours = stored.map(|s| open_record(&key, s).map(|r| *r.hash())).transpose().map_err(ReadError::from)?;
            if ours != last {
                return Err(TailImportError::NotThisLog { seq: at });
            }
        }
        return Ok(TailImported { from: size, to: size, keys_lost: 0 });
    }

    // Second pass: the records past the store's end appended, with a tombstone for
    // each person they register, in chunks (a chunk's records and tombstones at once).
    let mut input = BufReader::new(File::open(path).map_err(io)?);
    let mut seq = 0u64;
    let mut keys_lost = 0u64;
    let mut batch = WriteBatch::default();
    while let Some(bytes) = read_frame(&mut input).map_err(io)? {
        if seq >= size {
            let record = RecordRef::parse(&bytes).map_err(|e| VerifyError::Record { seq, reason: e.to_string() })?;
            if record.header.kind.kind == huduma_log::events::kind::PERSON_REGISTERED
                && store.get(Tree::Keyring, &person_key(PersonId(seq)))?.is_none()
            {
                batch.put(Tree::Keyring, person_key(PersonId(seq)), checksum::seal(&keyring::erased_entry()));
                keys_lost += 1;
            }
            batch.put(Tree::Log, seq_key(seq).to_vec(), checksum::seal(&bytes));
            if batch.len() >= CHUNK {
                store.commit(&std::mem::take(&mut batch), false)?;
                progress(Reached::log(seq + 1 - size, records - size));
            }
        }
        seq += 1;
    }
    store.commit(&batch, false)?;
    store.flush()?;
    progress(Reached::log(records - size, records - size));
    Ok(TailImported { from: size, to: records, keys_lost })
}

/// After a restore: appends to the access log's store the records of an export of the
/// access log past the store's end, up to the size that `note` (a signed checkpoint of
/// the access log, as an auditor keeps it beside the export) signs. Access records are
/// not signed one by one: the note vouches for them. So the export is checked as a
/// chain from record 0, its record at the store's last index must be the store's own,
/// its first records up to the note's size must have the root the note signs (by one of
/// `keys`, for `origin`), and nothing is written before all of that holds. The tree
/// entries and the per-person index are derived as the access log's writer derives them,
/// and the note is stored as the newest checkpoint.
pub fn import_access_tail(
    store: &dyn Storage,
    path: &Path,
    note: &str,
    origin: &str,
    keys: &[VerifyingKey],
) -> Result<TailImported, TailImportError> {
    use huduma_log::access::AccessChain;
    use huduma_log::checkpoint::Checkpoint;

    let signed = keys
        .iter()
        .find_map(|key| Checkpoint::open(note, origin, key).ok())
        .ok_or_else(|| TailImportError::Checkpoint(format!("no log key's signature verifies for {origin}")))?;
    let size = replay::log_size(store)?;
    if signed.size <= size {
        return Ok(TailImported { from: size, to: size, keys_lost: 0 });
    }
    let head = match size {
        0 => None,
        size => {
            let key = crate::access::writer::seq_key(size - 1);
            let stored = store.get(Tree::Log, &key)?.ok_or(ReadError::from(StorageError::Engine(format!(
                "access record {} is missing below the log's end",
                size - 1
            ))))?;
            Some(*open_record(&key, stored).map_err(ReadError::from)?.hash())
        }
    };
    let io = |cause| TailImportError::Io { path: path.display().to_string(), cause };

    // First pass: the chain from record 0, the store's own records, the signed root.
    let mut chain = AccessChain::new();
    let mut edge = crate::merkle_store::TreeEdge::new();
    let mut input = BufReader::new(File::open(path).map_err(io)?);
    let mut seq = 0u64;
    while seq < signed.size {
        let Some(bytes) = read_frame(&mut input).map_err(io)? else { break };
        let hash = huduma_log::record::hash(&bytes);
        chain.push_hashed(&bytes, &hash).map_err(|e| TailImportError::AccessChain { seq: e.seq, reason: e.reason })?;
        if seq + 1 == size && Some(hash) != head {
            return Err(TailImportError::NotThisLog { seq });
        }
        edge.push(seq, &bytes).map_err(|c| TailImportError::AccessChain { seq, reason: c.reason })?;
        seq += 1;
    }
    if seq < signed.size {
        return Err(TailImportError::Checkpoint(format!("it signs {} records, the export holds {seq}", signed.size)));
    }
    if edge.root() != signed.root {
        return Err(TailImportError::Checkpoint(format!(
            "the export's first {} records have another root than it signs",
            signed.size
        )));
    }

    // Second pass: the records past the store's end, with what they derive.
    let mut edge = crate::merkle_store::TreeEdge::new();
    let mut input = BufReader::new(File::open(path).map_err(io)?);
    let mut batch = WriteBatch::default();
    for seq in 0..signed.size {
        let bytes = read_frame(&mut input).map_err(io)?.ok_or_else(|| io(std::io::ErrorKind::UnexpectedEof.into()))?;
        let entries = edge.push(seq, &bytes).map_err(|c| TailImportError::AccessChain { seq, reason: c.reason })?;
        if seq < size {
            continue;
        }
        for (tree, key, value) in entries {
            batch.put(tree, key, checksum::seal(&value));
        }
        let header = huduma_log::access::parse(&bytes)
            .map_err(|e| TailImportError::AccessChain { seq, reason: e.0.to_string() })?;
        if header.subject != [0; 32] {
            let index = crate::access::writer::subject_key(&header.subject, seq);
            batch.put(Tree::AccessBySubject, index, checksum::seal(&[]));
        }
        batch.put(Tree::Log, crate::access::writer::seq_key(seq).to_vec(), checksum::seal(&bytes));
        if batch.len() >= CHUNK {
            store.commit(&std::mem::take(&mut batch), false)?;
        }
    }
    batch.put(Tree::Checkpoints, signed.size.to_be_bytes().to_vec(), checksum::seal(note.as_bytes()));
    store.commit(&batch, false)?;
    store.flush()?;
    Ok(TailImported { from: size, to: signed.size, keys_lost: 0 })
}
