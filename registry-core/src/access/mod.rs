//! The citizen's access log: every look-up of a person (Resolve, VerifyAttributes),
//! recorded durably before it is answered, in a log of its own beside the identity
//! log, in its own store, so that tens of millions of look-ups a day do not bloat the
//! identity log. Records are hash-chained with BLAKE3 and covered by their own RFC 6962
//! tree and C2SP checkpoints signed by the log key (origin: the identity origin's
//! host with `/access`). Bodies are sealed: under the person's own data key when a
//! person was found (erasure makes them unreadable), else under the registry's access
//! seal key; the person is named only by a keyed subject hash.
//!
//! - `record`: the bytes of one record, sealing and opening.
//! - `writer`: the single appender thread (group commit).
//! - `reader`: a person's look-ups, newest first; records, checkpoints and proofs.
//! - `verify`: the whole log checked without secrets.

pub mod reader;
pub mod record;
pub mod verify;
pub mod writer;

use std::sync::Arc;

use huduma_log::keys::{LogKey, VerifyingKey};

pub use reader::{AccessListed, AccessPage, AccessReader};
pub use record::{AccessBody, AccessCall, AccessEvent, AccessOutcome, KeyUsed};
pub use writer::{AccessError, AccessWriter};

use crate::checkpointer::{CheckpointMismatch, Checkpointer};
use crate::secrets::Secrets;
use crate::storage::Storage;
use crate::storage::view::ReadError;

pub use huduma_log::access::origin_for;

/// Why the access log could not open.
#[derive(Debug, thiserror::Error)]
pub enum AccessOpenError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the access log's tail does not verify: record {seq}: {reason}")]
    Tail { seq: u64, reason: String },
    #[error("access log: {0}")]
    Checkpoint(#[from] CheckpointMismatch),
    #[error("starting the access log writer: {0}")]
    Thread(#[from] std::io::Error),
}

/// How the access log runs.
#[derive(Debug, Clone)]
pub struct AccessOptions {
    pub origin: String,
    pub queue: usize,
    pub max_batch: usize,
    pub checkpoint_interval: std::time::Duration,
    /// How many of the last records are re-checked on open.
    pub tail_check: u64,
}

/// The open access log: its appender and readers.
pub struct AccessLog {
    writer: AccessWriter,
    reader: AccessReader,
    origin: String,
}

impl AccessLog {
    /// Opens the access log in `store`. `identity` is the identity store (for the
    /// keyring) and `keys` every log key, which its checkpoints may be signed by.
    pub fn open(
        store: Arc<dyn Storage>,
        identity: Arc<dyn Storage>,
        secrets: Arc<Secrets>,
        key: LogKey,
        keys: &[VerifyingKey],
        options: AccessOptions,
    ) -> Result<Self, AccessOpenError> {
        let size = writer::read_head(&*store)?.next_seq;
        // The last batch may have been written under a larger `max_batch` than this
        // open's: the window covers the largest any appender over this store used.
        let largest = largest_batch(&*store)?;
        let window = options.tail_check.max(options.max_batch as u64).max(largest.unwrap_or(0));
        let repaired = repair_tail(&*store, size, window)?;
        if repaired > 0 {
            tracing::warn!(repaired, "access log: restored index and tree entries lost with the last batch");
        }
        if largest.is_none_or(|largest| largest < options.max_batch as u64) {
            // Durable before the appender can write a batch that large.
            let mut batch = crate::storage::WriteBatch::default();
            let value = crate::storage::checksum::seal(&(options.max_batch as u64).to_be_bytes());
            batch.put(crate::storage::Tree::Meta, LARGEST_BATCH.to_vec(), value);
            store.commit(&batch, true).map_err(ReadError::from)?;
        }
        let signed = crate::checkpointer::check_latest(&*store, size, &options.origin, keys)?;
        let checkpoints = Checkpointer::new(options.origin.clone(), "access", options.checkpoint_interval, signed);
        let reader = AccessReader::new(Arc::clone(&store), Arc::clone(&identity), Arc::clone(&secrets));
        let writer = AccessWriter::start(store, identity, secrets, key, checkpoints, options.queue, options.max_batch)?;
        Ok(Self { writer, reader, origin: options.origin })
    }

    /// Records a look-up; returns once it is durable.
    pub async fn record(&self, event: AccessEvent) -> Result<u64, AccessError> {
        self.writer.record(event).await
    }

    /// Records several look-ups, sharing a commit; returns once all are durable.
    pub async fn record_all(&self, events: Vec<AccessEvent>) -> Result<Vec<u64>, AccessError> {
        self.writer.record_all(events).await
    }

    pub fn record_blocking(&self, event: AccessEvent) -> Result<u64, AccessError> {
        self.writer.record_blocking(event)
    }

    pub fn reader(&self) -> AccessReader {
        self.reader.clone()
    }

    /// The origin line of the access log's checkpoints.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub(crate) fn rotate_key_blocking(&self, key: LogKey) {
        self.writer.rotate_key_blocking(key);
    }

    /// Records what is queued, then stops the appender.
    pub fn shutdown(&mut self) {
        self.writer.shutdown();
    }
}

/// `meta` key of the access store: the largest `max_batch` an appender over it has
/// been opened with (u64 BE), so that a later open with a smaller one still re-checks
/// a whole batch.
const LARGEST_BATCH: &[u8] = b"largest_batch";

fn largest_batch(store: &dyn Storage) -> Result<Option<u64>, ReadError> {
    crate::projection::state::read_u64(&crate::storage::view::View::new(store), LARGEST_BATCH)
}

/// Re-checks the chain of the last `count` records (the whole log is `verify`'s job) and
/// restores the tree nodes and index entries of any of them that a crash cut off:
/// the appender writes a batch's records before what derives from them, unbatched,
/// so a crash keeps the records of at most one batch without their derived entries.
/// `count` must be at least the largest batch. Returns how many entries it restored.
fn repair_tail(store: &dyn Storage, size: u64, count: u64) -> Result<u64, AccessOpenError> {
    use crate::merkle_store::EntryState;
    use crate::storage::{Tree, WriteBatch};
    let from = size.saturating_sub(count.max(1));
    let mut tree = crate::merkle_store::TreeEdge::load(store, from)?;
    let mut prev: Option<[u8; 32]> = None;
    let mut repairs = WriteBatch::default();
    let stored = store.range_from(Tree::Log, &writer::seq_key(from), count.max(1) as usize).map_err(ReadError::from)?;
    for (offset, (key, value)) in stored.into_iter().enumerate() {
        let seq = from + offset as u64;
        let fail = |reason: String| AccessOpenError::Tail { seq, reason };
        let hashed = crate::storage::view::open_record(&key, value).map_err(|e| fail(e.to_string()))?;
        let bytes = hashed.bytes();
        let header = record::parse(bytes).map_err(|e| fail(e.to_string()))?;
        if header.seq != seq || key != writer::seq_key(seq) {
            return Err(fail("out of sequence".into()));
        }
        if prev.is_some_and(|p| p != header.prev) {
            return Err(fail("does not name the previous record's hash".into()));
        }
        prev = Some(*hashed.hash());
        for entry in tree.push(seq, bytes).map_err(|e| fail(e.to_string()))? {
            match crate::merkle_store::entry_state(store, &entry)? {
                EntryState::Stored => {}
                EntryState::Missing => {
                    let (tree, key, value) = entry;
                    repairs.put(tree, key, crate::storage::checksum::seal(&value));
                }
                EntryState::Differs => {
                    return Err(fail(format!(
                        "its {} entry differs from the one recomputed from the log",
                        entry.0.name()
                    )));
                }
            }
        }
        if let Some(index_key) = writer::indexed_under(&header.subject, seq)
            && store.get(Tree::AccessBySubject, &index_key).map_err(ReadError::from)?.is_none()
        {
            repairs.put(Tree::AccessBySubject, index_key, crate::storage::checksum::seal(&[]));
        }
    }
    let repaired = repairs.len() as u64;
    if repaired > 0 {
        store.commit(&repairs, true).map_err(ReadError::from)?;
    }
    Ok(repaired)
}
