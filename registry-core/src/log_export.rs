//! The export format: records as stored, each prefixed by its length (u32 BE). This is
//! what auditors download and verify offline, and what the golden log is kept in.
//! The keyring export (test fixtures only) uses the same framing for key and value.

use std::io::{self, Read, Write};

use crate::record::{HEADER_LEN, MAX_PAYLOAD_LEN, SIGNATURE_LEN};
use crate::replay::{self, ReplayError};
use crate::storage::checksum;
use crate::storage::{Storage, StorageError, Tree, WriteBatch};

/// The largest frame accepted on import: a record of the largest payload.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_PAYLOAD_LEN + SIGNATURE_LEN;

fn write_frame(out: &mut dyn Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("frame over 4 GiB"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)
}

/// Reads one frame; `Ok(None)` at a clean end of input.
pub fn read_frame(input: &mut dyn Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {len} bytes is over the limit")));
    }
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes)?;
    Ok(Some(bytes))
}

/// Writes every record of the log; returns how many. A store a crash left in the
/// middle of a batch's commit (its intent still stored) is refused before anything
/// is written: that batch's records were never acknowledged and the next opening
/// undoes them, so an auditor must never be handed them.
pub fn export_log(store: &dyn Storage, out: &mut dyn Write) -> Result<u64, ReplayError> {
    check_exportable(store)?;
    replay::for_each_record(store, 0, |seq, record| {
        write_frame(out, record.bytes()).map_err(|e| ReplayError::Record { seq, reason: format!("export: {e}") })
    })
}

/// Refuses a store a crash left in the middle of a batch's commit (see [`export_log`]).
pub fn check_exportable(store: &dyn Storage) -> Result<(), ReplayError> {
    match crate::commit_intent::CommitIntent::read(store).map_err(replay::undo_failed)? {
        Some(intent) => Err(ReplayError::InterruptedCommit { first_seq: intent.first_seq }),
        None => Ok(()),
    }
}

/// Writes every keyring entry (for test fixtures: the keys are sealed under the master).
pub fn export_keyring(store: &dyn Storage, out: &mut dyn Write) -> Result<u64, StorageError> {
    let io = |e: io::Error| StorageError::Engine(format!("export: {e}"));
    let mut count = 0;
    for (key, value) in store.scan_prefix(Tree::Keyring, &[])? {
        write_frame(out, &key).map_err(io)?;
        write_frame(out, &value).map_err(io)?;
        count += 1;
    }
    Ok(count)
}

/// Loads exported records into an empty store's log, as stored bytes (the
/// projections are then folded by `replay::rebuild`). Returns how many.
pub fn import_log(store: &dyn Storage, input: &mut dyn Read) -> Result<u64, StorageError> {
    let io = |e: io::Error| StorageError::Engine(format!("import: {e}"));
    let mut seq = 0u64;
    let mut batch = WriteBatch::default();
    while let Some(bytes) = read_frame(input).map_err(io)? {
        batch.put(Tree::Log, seq.to_be_bytes().to_vec(), checksum::seal(&bytes));
        seq += 1;
        if batch.len() >= replay::CHUNK {
            store.commit(&std::mem::take(&mut batch), false)?;
        }
    }
    store.commit(&batch, false)?;
    store.flush()?;
    Ok(seq)
}

/// Loads an exported keyring (stored values, checksums included).
pub fn import_keyring(store: &dyn Storage, input: &mut dyn Read) -> Result<u64, StorageError> {
    let io = |e: io::Error| StorageError::Engine(format!("import: {e}"));
    let mut batch = WriteBatch::default();
    let mut count = 0;
    while let Some(key) = read_frame(input).map_err(io)? {
        let value = read_frame(input).map_err(io)?.ok_or_else(|| io(io::ErrorKind::UnexpectedEof.into()))?;
        batch.put(Tree::Keyring, key, value);
        count += 1;
    }
    store.commit(&batch, true)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit_intent::CommitIntent;
    use crate::storage::INTENT_KEY;
    use crate::storage::memory::MemoryStore;

    #[test]
    fn a_store_left_mid_commit_is_not_exported() {
        let store = MemoryStore::new();
        let mut batch = WriteBatch::default();
        for seq in 0..3u64 {
            batch.put(Tree::Log, seq.to_be_bytes().to_vec(), checksum::seal(b"record"));
        }
        let intent = CommitIntent { first_seq: 2, before: vec![], exact: true };
        batch.put(INTENT_KEY.0, INTENT_KEY.1.to_vec(), intent.encode());
        store.commit(&batch, false).unwrap();
        let mut out = Vec::new();
        let refused = export_log(&store, &mut out);
        assert!(matches!(refused, Err(ReplayError::InterruptedCommit { first_seq: 2 })), "{refused:?}");
        assert!(out.is_empty(), "nothing is written before the refusal");
        assert!(refused.unwrap_err().to_string().contains("from record 2 on was cut short"));

        // Once undone (here: the intent gone), the log exports.
        let mut undone = WriteBatch::default();
        undone.remove(INTENT_KEY.0, INTENT_KEY.1.to_vec());
        undone.remove(Tree::Log, 2u64.to_be_bytes().to_vec());
        store.commit(&undone, false).unwrap();
        assert_eq!(export_log(&store, &mut out).unwrap(), 2);
    }
}
