//! Reading the log back: records in order, chunk by chunk, and folding them into
//! projections. `rebuild`, start-up catch-up and `verify` are built on this.

use crate::event::Event;
use crate::projection::fold::{self, FoldError};
use crate::record::RecordRef;
use crate::secrets::Secrets;
use crate::storage::view::{Corruption, ReadError, View, open_value};
use crate::storage::{Storage, StorageError, Tree};
use crate::writer::seq_key;

/// How many records are read (and folded) per chunk.
pub const CHUNK: usize = 4096;

/// Why the log could not be replayed; names the record.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("record {seq}: {reason}")]
    Record { seq: u64, reason: String },
    #[error("record {seq}: {source}")]
    Fold { seq: u64, source: FoldError },
}

impl ReplayError {
    /// The sequence number of the first bad record, when one is to blame.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ReplayError::Storage(_) => None,
            ReplayError::Record { seq, .. } | ReplayError::Fold { seq, .. } => Some(*seq),
        }
    }
}

/// Reads records `from..` in chunks, calling `each(seq, stored bytes)` for each after
/// checking the key sequence is continuous and the checksum holds.
pub fn for_each_record(
    store: &dyn Storage,
    from: u64,
    mut each: impl FnMut(u64, &[u8]) -> Result<(), ReplayError>,
) -> Result<u64, ReplayError> {
    let mut next = from;
    loop {
        let chunk = store.range_from(Tree::Log, &seq_key(next), CHUNK)?;
        if chunk.is_empty() {
            return Ok(next);
        }
        for (key, stored) in chunk {
            if key.as_slice() != seq_key(next) {
                return Err(ReplayError::Record {
                    seq: next,
                    reason: "missing (the sequence has a gap)".into(),
                });
            }
            let bytes = open_value(Tree::Log, &key, &stored).map_err(|c: Corruption| ReplayError::Record {
                seq: next,
                reason: c.reason,
            })?;
            each(next, &bytes)?;
            next += 1;
        }
    }
}

/// Decodes a record's event, naming the record on failure.
pub fn decode_event(seq: u64, record: &RecordRef<'_>) -> Result<Event, ReplayError> {
    Event::decode(record.header.kind, record.payload).map_err(|e| ReplayError::Record {
        seq,
        reason: e.to_string(),
    })
}

/// Folds records `from..` of `log` into the projections of `target`, committing every
/// chunk (without flushing; the caller flushes). Returns the log size.
pub fn fold_log(
    log: &dyn Storage,
    target: &dyn Storage,
    secrets: &Secrets,
    from: u64,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, ReplayError> {
    let mut view = View::new(target);
    let mut last_applied = None;
    let end = for_each_record(log, from, |seq, bytes| {
        let record = RecordRef::parse(bytes).map_err(|e| ReplayError::Record {
            seq,
            reason: e.to_string(),
        })?;
        let event = decode_event(seq, &record)?;
        fold::fold(&mut view, secrets, seq, &event).map_err(|source| ReplayError::Fold { seq, source })?;
        last_applied = Some(seq);
        if (seq + 1) % CHUNK as u64 == 0 {
            fold::mark_applied(&mut view, seq);
            target.commit(view.take_batch(), false)?;
            progress(seq + 1);
        }
        Ok(())
    })?;
    if let Some(seq) = last_applied {
        fold::mark_applied(&mut view, seq);
    }
    target.commit(view.take_batch(), false)?;
    progress(end);
    Ok(end)
}

/// The sequence number every projection has applied, or `None` if none has.
pub fn applied(store: &dyn Storage) -> Result<Option<u64>, ReadError> {
    let view = View::new(store);
    let mut applied = None;
    for tree in Tree::PROJECTIONS {
        let seq = crate::projection::state::read_u64(&view, &crate::projection::state::meta::applied(tree))?;
        match (applied, seq) {
            (None, s) => applied = Some(s),
            (Some(a), s) if a != s => {
                return Err(Corruption::new(
                    Tree::Meta,
                    &crate::projection::state::meta::applied(tree),
                    "projections disagree on the sequence applied",
                )
                .into());
            }
            _ => {}
        }
    }
    Ok(applied.flatten())
}

/// Drops every projection and folds them again from the log. Run with the registry
/// stopped. Returns the number of records folded.
pub fn rebuild(store: &dyn Storage, secrets: &Secrets, progress: &mut dyn FnMut(u64)) -> Result<u64, ReplayError> {
    for tree in Tree::PROJECTIONS {
        store.clear(tree)?;
    }
    let end = fold_log(store, store, secrets, 0, progress)?;
    store.flush()?;
    Ok(end)
}
