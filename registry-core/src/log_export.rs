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

/// Writes every record of the log; returns how many.
pub fn export_log(store: &dyn Storage, out: &mut dyn Write) -> Result<u64, ReplayError> {
    replay::for_each_record(store, 0, |seq, bytes| {
        write_frame(out, bytes).map_err(|e| ReplayError::Record { seq, reason: format!("export: {e}") })
    })
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
