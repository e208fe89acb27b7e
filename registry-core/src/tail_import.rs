//! After a restore: the records the lost data directory had appended past the backup,
//! taken back from an export of the log (the auditors' download format), so that the
//! restored log goes on as the published one did instead of forking from it, and no
//! number issued after the backup is ever issued again.
//!
//! The whole export is verified first, from record 0 (the chain, every signature, the
//! chain of log keys, every payload), and its record at the store's last index must be
//! the store's own: only then is anything written. The records past the store's end
//! are appended as they are; the projections fold them when the registry next opens.
//! Appending reads the file again, so each chunk appended is first held to a digest of
//! what the verifying pass read there: a file that changed in between appends no
//! record that was not verified.
//!
//! What cannot come back: the keys of the persons those records register (the keyring
//! is not in the log), so each gets the tombstone erasure leaves and their personal
//! data is unreadable, while their numbers stay theirs (a correction of their
//! demographics later renews their key: `keyring::KeyringEntry::Renewed`); and the
//! answers to their requests (the request index is not in the log either), so a client
//! that retries one of those requests is answered as for a new one.
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

/// Why nothing was imported. The store is unchanged, but for
/// [`TailImportError::ExportChanged`], which says how much verified tail it appended
/// (durable before the error is returned).
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
    #[error(
        "{path} changed while it was imported: {appended} records of its tail, each verified, were appended before the change; check the file and run again"
    )]
    ExportChanged { path: String, appended: u64 },
    #[error("the access log's export, record {seq}: {reason}")]
    AccessChain { seq: u64, reason: String },
    #[error("the access log's checkpoint: {0}")]
    Checkpoint(String),
    #[error(transparent)]
    Replay(replay::ReplayError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Head(#[from] crate::writer::WriterError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Appends to `store` the records of the export at `path` past the store's end, once
/// the whole export verifies from `genesis` (without it, the key record 0 names) and
/// holds the store's own records. `progress` is told as the export is verified (the
/// total unknown until the end, told as `done == total`), then as records are appended.
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
    let (size, head) = match crate::writer::read_head(store)? {
        Some(head) => (head.next_seq, Some(head.hash)),
        None => (0, None),
    };

    // First pass: the whole export verified, and shown to hold the store's records.
    let io = |cause| TailImportError::Io { path: path.display().to_string(), cause };
    let mut verifier = LogVerifier::new(genesis);
    let mut records = 0u64;
    let mut last = None;
    // A digest of each chunk of the tail, so the second pass, which reads the file
    // again, appends only what this pass verified.
    let mut verified = ChunkDigests::default();
    let mut input = BufReader::new(File::open(path).map_err(io)?);
    while let Some(bytes) = read_frame(&mut input).map_err(io)? {
        let record = HashedRecord::new(bytes);
        verifier.push_hashed(&record)?;
        last = Some(*record.hash());
        if records + 1 == size && Some(*record.hash()) != head {
            return Err(TailImportError::NotThisLog { seq: records });
        }
        if records >= size {
            verified.push(record.hash());
        }
        records += 1;
        if records.is_multiple_of(CHUNK as u64) {
            verifier.check_signatures()?;
            progress(Reached::log(records, 0));
        }
    }
    verifier.finish()?;
    progress(Reached::log(records, records));
    if records <= size {
        // Nothing to append; a shorter export must still be a prefix of this log, which
        // its last record's place in the store's chain shows.
        if let Some(at) = records.checked_sub(1).filter(|_| records < size) {
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
    // each person they register, a chunk at a time (its records and tombstones at
    // once), each chunk held to the first pass's digest of it before it is committed.
    let append = || -> Result<u64, TailImportError> {
        let changed = |appended: u64| TailImportError::ExportChanged { path: path.display().to_string(), appended };
        let mut reread = Reread::of(verified);
        let mut input = BufReader::new(File::open(path).map_err(io)?);
        let mut keys_lost = 0u64;
        let mut committed = 0u64;
        let mut batch = WriteBatch::default();
        for seq in 0..records {
            let bytes = read_frame(&mut input).map_err(io)?.ok_or_else(|| changed(committed))?;
            if seq < size {
                continue;
            }
            let record = RecordRef::parse(&bytes).map_err(|_| changed(committed))?;
            let chunk_read = reread.push(&record.hash(), seq + 1 == records).map_err(|()| changed(committed))?;
            if record.header.kind.kind == huduma_log::events::kind::PERSON_REGISTERED
                && store.get(Tree::Keyring, &person_key(PersonId(seq)))?.is_none()
            {
                batch.put(Tree::Keyring, person_key(PersonId(seq)), checksum::seal(&keyring::erased_entry()));
                keys_lost += 1;
            }
            batch.put(Tree::Log, seq_key(seq).to_vec(), checksum::seal(&bytes));
            if chunk_read {
                store.commit(&std::mem::take(&mut batch), false)?;
                committed = seq + 1 - size;
                progress(Reached::log(committed, records - size));
            }
        }
        Ok(keys_lost)
    };
    let appended = append();
    // What was committed is made durable however the pass ended, so that an error
    // saying how much it appended (the export changed under it) tells the truth.
    store.flush()?;
    Ok(TailImported { from: size, to: records, keys_lost: appended? })
}

/// After a restore: appends to the access log's store the records of an export of the
/// access log past the store's end, up to the size that `note` (a signed checkpoint of
/// the access log, as an auditor keeps it beside the export) signs. Access records are
/// not signed one by one: the note vouches for them. So the export is checked as a
/// chain from record 0, its record at the store's last index must be the store's own,
/// its first records up to the note's size must have the root the note signs (by one of
/// `keys`, for `origin`), and nothing is written before all of that holds. The tree
/// entries and the per-person index are derived as the access log's writer derives them,
/// and the note is stored as the newest checkpoint. `progress` is told as the export is
/// checked (of the note's size), then as records are appended.
pub fn import_access_tail(
    store: &dyn Storage,
    path: &Path,
    note: &str,
    origin: &str,
    keys: &[VerifyingKey],
    progress: &mut dyn FnMut(Reached),
) -> Result<TailImported, TailImportError> {
    use huduma_log::access::AccessChain;

    let signed = crate::checkpointer::signed_by_any(note, origin, keys)
        .ok_or_else(|| TailImportError::Checkpoint(format!("no log key's signature verifies for {origin}")))?;
    let stored_head = crate::access::writer::read_head(store)?;
    let size = stored_head.next_seq;
    if signed.size <= size {
        return Ok(TailImported { from: size, to: size, keys_lost: 0 });
    }
    let head = (size > 0).then_some(stored_head.prev);
    let io = |cause| TailImportError::Io { path: path.display().to_string(), cause };

    // First pass: the chain from record 0, the store's own records, the signed root.
    let mut chain = AccessChain::new();
    let mut edge = crate::merkle_store::TreeEdge::new();
    let mut input = BufReader::new(File::open(path).map_err(io)?);
    let mut verified = ChunkDigests::default();
    let mut seq = 0u64;
    while seq < signed.size {
        let Some(bytes) = read_frame(&mut input).map_err(io)? else { break };
        let hash = huduma_log::record::hash(&bytes);
        verified.push(&hash);
        chain.push_hashed(&bytes, &hash).map_err(|e| TailImportError::AccessChain { seq: e.seq, reason: e.reason })?;
        if seq + 1 == size && Some(hash) != head {
            return Err(TailImportError::NotThisLog { seq });
        }
        edge.push(seq, &bytes).map_err(|c| TailImportError::AccessChain { seq, reason: c.reason })?;
        seq += 1;
        if seq.is_multiple_of(CHUNK as u64) {
            progress(Reached::log(seq, signed.size));
        }
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
    progress(Reached::log(signed.size, signed.size));

    // Second pass: the records past the store's end, with what they derive, a chunk at
    // a time, each held to the first pass's digest of it before it is committed (the
    // records before the store's end too, read again for the tree).
    let append = || -> Result<(), TailImportError> {
        let changed = |appended: u64| TailImportError::ExportChanged { path: path.display().to_string(), appended };
        let mut reread = Reread::of(verified);
        let mut committed = 0u64;
        let mut edge = crate::merkle_store::TreeEdge::new();
        let mut input = BufReader::new(File::open(path).map_err(io)?);
        let mut batch = WriteBatch::default();
        for seq in 0..signed.size {
            let bytes = read_frame(&mut input).map_err(io)?.ok_or_else(|| changed(committed))?;
            let entries = edge.push(seq, &bytes).map_err(|_| changed(committed))?;
            // Records before the store's end are read for the tree's edge, which the tail's
            // tree entries build on: held to the first pass too.
            let last = seq + 1 == signed.size;
            let chunk_read = reread.push(&huduma_log::record::hash(&bytes), last).map_err(|()| changed(committed))?;
            if seq < size {
                continue;
            }
            for (tree, key, value) in entries {
                batch.put(tree, key, checksum::seal(&value));
            }
            let header = huduma_log::access::parse(&bytes).map_err(|_| changed(committed))?;
            if let Some(index) = crate::access::writer::indexed_under(&header.subject, seq) {
                batch.put(Tree::AccessBySubject, index, checksum::seal(&[]));
            }
            batch.put(Tree::Log, crate::access::writer::seq_key(seq).to_vec(), checksum::seal(&bytes));
            if chunk_read {
                if last {
                    // The note goes in with the last chunk: it vouches for all of them.
                    batch.put(Tree::Checkpoints, signed.size.to_be_bytes().to_vec(), checksum::seal(note.as_bytes()));
                }
                store.commit(&std::mem::take(&mut batch), false)?;
                committed = seq + 1 - size;
                progress(Reached::log(committed, signed.size - size));
            }
        }
        Ok(())
    };
    let appended = append();
    // What was committed is made durable however the pass ended (as for the log's).
    store.flush()?;
    appended?;
    Ok(TailImported { from: size, to: signed.size, keys_lost: 0 })
}

/// A digest of each `CHUNK` records' hashes in turn (the last chunk may be short): what
/// an import's first pass verified, for its second pass, which reads the file again, to
/// hold each chunk to before committing it.
#[derive(Default)]
struct ChunkDigests {
    closed: Vec<[u8; 32]>,
    open: blake3::Hasher,
    in_open: usize,
}

impl ChunkDigests {
    /// Adds a record's hash; the chunk's digest if this record closes it.
    fn push(&mut self, hash: &[u8; 32]) -> Option<[u8; 32]> {
        self.open.update(hash);
        self.in_open += 1;
        if self.in_open == CHUNK { self.close() } else { None }
    }

    /// Closes the open chunk, if it holds any record: its digest.
    fn close(&mut self) -> Option<[u8; 32]> {
        if self.in_open == 0 {
            return None;
        }
        let digest = *std::mem::take(&mut self.open).finalize().as_bytes();
        self.in_open = 0;
        self.closed.push(digest);
        Some(digest)
    }

    /// Every chunk's digest, the open one closed.
    fn finish(mut self) -> Vec<[u8; 32]> {
        self.close();
        self.closed
    }
}

/// A file's second reading held to its first, chunk by chunk.
struct Reread {
    /// The first reading's digests, in order.
    first: std::vec::IntoIter<[u8; 32]>,
    again: ChunkDigests,
}

impl Reread {
    fn of(first: ChunkDigests) -> Self {
        Self { first: first.finish().into_iter(), again: ChunkDigests::default() }
    }

    /// Adds the hash of a record read again (`last`: the last to be read): whether it
    /// closes a chunk that reads as it first did; `Err` if that chunk does not.
    fn push(&mut self, hash: &[u8; 32], last: bool) -> Result<bool, ()> {
        let closed = self.again.push(hash).or_else(|| if last { self.again.close() } else { None });
        match closed {
            None => Ok(false),
            Some(digest) if self.first.next() == Some(digest) => Ok(true),
            Some(_) => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: usize, salt: u8) -> Vec<[u8; 32]> {
        (0..n).map(|i| *blake3::hash(&[&i.to_be_bytes()[..], &[salt]].concat()).as_bytes()).collect()
    }

    #[test]
    fn a_chunk_digest_closes_at_chunk_records_and_the_last_chunk_at_finish() {
        for n in [1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK] {
            let mut digests = ChunkDigests::default();
            let closed: Vec<_> = hashes(n, 0).iter().filter_map(|h| digests.push(h)).collect();
            assert_eq!(closed.len(), n / CHUNK, "{n} records");
            let all = digests.finish();
            assert_eq!(all.len(), n.div_ceil(CHUNK), "{n} records");
            assert_eq!(all[..closed.len()], closed[..]);
        }
        let mut empty = ChunkDigests::default();
        assert_eq!(empty.close(), None);
        assert!(empty.finish().is_empty());
    }

    #[test]
    fn a_chunk_digest_differs_when_any_record_in_it_does() {
        let same = hashes(10, 0);
        let mut other = same.clone();
        other[7] = hashes(1, 1)[0];
        let digest = |hs: &[[u8; 32]]| {
            let mut d = ChunkDigests::default();
            hs.iter().for_each(|h| {
                d.push(h);
            });
            d.finish()
        };
        assert_eq!(digest(&same), digest(&same.clone()));
        assert_ne!(digest(&same), digest(&other));
        assert_ne!(digest(&same), digest(&same[..9]), "a record fewer");
    }
}
