//! Reading the log back: records in order, chunk by chunk, and folding them into
//! projections (records read and prepared on two threads, folded in order on a third).
//! `rebuild`, start-up catch-up and `verify` are built on this; the fresh fold they
//! compare the live projections with is in [`fresh`], held in memory or, for a log
//! too large for it, in a scratch store on disk ([`scratch`]), but for the trees it
//! compares as it writes them ([`streamed`]); how far such work has come is told in
//! [`progress`].

mod fresh;
mod fresh_tree;
mod progress;
mod scratch;
mod streamed;

pub use fresh::{FreshFold, FreshProjections, TreePair, each_pair_in_parallel};
pub use fresh_tree::{FreshEntry, FreshTree};
pub use progress::{Reached, Stage};
use scratch::SCRATCH_COMMIT_WRITES;
pub use scratch::{DEFAULT_IN_MEMORY_RECORDS, FoldSpace, SCRATCH_DIR, ScratchFold};
pub use streamed::{OnDifference, STREAMED_TREES};

use crate::dedup::blocks::Upkeep;
use crate::event::Event;
use crate::projection::fold::{self, FoldError};
use crate::record::{HashedRecord, RecordRef};
use crate::secrets::Secrets;
use crate::storage::view::{Corruption, ReadError, View, open_record};
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::projection::state::meta;
use crate::storage::in_key_order::InKeyOrder;
use crate::storage::{Storage, StorageError, Tree, WriteBatch};
use crate::writer::seq_key;

/// How many records are read (and folded) per chunk.
pub const CHUNK: usize = 4096;

/// How many pending writes a fold into the live store holds in memory before
/// committing them (~200 MB).
pub const FOLD_COMMIT_WRITES: usize = 500_000;

/// Why the log could not be replayed; names the record.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("record {seq}: {reason}")]
    Record { seq: u64, reason: String },
    #[error("record {seq}: {cause}")]
    Fold { seq: u64, cause: FoldError },
    #[error(
        "the commit of the batch from record {first_seq} on was cut short (a crash): its records were never \
         acknowledged and will be undone; run `huduma-registry recover` (or start the registry) first"
    )]
    InterruptedCommit { first_seq: u64 },
}

impl ReplayError {
    /// The sequence number of the first bad record, when one is to blame.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ReplayError::Storage(_) | ReplayError::InterruptedCommit { .. } => None,
            ReplayError::Record { seq, .. } | ReplayError::Fold { seq, .. } => Some(*seq),
        }
    }
}

/// Reads records `from..` in chunks, calling `each(seq, record)` for each after
/// checking the key sequence is continuous and the checksum holds. Each record comes
/// with its hash, computed once for the checksum and handed on for the chain.
pub fn for_each_record(
    store: &dyn Storage,
    from: u64,
    mut each: impl FnMut(u64, HashedRecord) -> Result<(), ReplayError>,
) -> Result<u64, ReplayError> {
    let mut next = from;
    for entry in InKeyOrder::new(store, Tree::Log, &seq_key(from), CHUNK) {
        let (key, stored) = entry?;
        if key.as_slice() != seq_key(next) {
            return Err(ReplayError::Record { seq: next, reason: "missing (the sequence has a gap)".into() });
        }
        let record =
            open_record(&key, stored).map_err(|c: Corruption| ReplayError::Record { seq: next, reason: c.reason })?;
        each(next, record)?;
        next += 1;
    }
    Ok(next)
}

/// Decodes a record's event, naming the record on failure.
pub fn decode_event(seq: u64, record: &RecordRef<'_>) -> Result<Event, ReplayError> {
    Event::decode(record.header.kind, record.payload).map_err(|e| ReplayError::Record { seq, reason: e.to_string() })
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
    fold_records(log, target, secrets, from, Folding::LIVE, None, progress)
}

/// How a fold writes into its target: when it commits, and how it keeps the
/// duplicate search's blocks.
#[derive(Clone, Copy)]
struct Folding {
    commit: Commit,
    blocks: Upkeep,
}

impl Folding {
    /// Into the live store (catching up as the registry opens).
    const LIVE: Folding = Folding { commit: Commit::InChunks(FOLD_COMMIT_WRITES), blocks: Upkeep::InPlace };
    /// Into a fresh fold in memory.
    const IN_MEMORY: Folding = Folding { commit: Commit::EveryRecord, blocks: Upkeep::InPlace };
    /// Into a fresh fold in a scratch store on disk, whose blocks are laid out from
    /// their logged changes as they are compared (`blocks::LaidOut`).
    const ON_DISK: Folding = Folding { commit: Commit::InChunks(SCRATCH_COMMIT_WRITES), blocks: Upkeep::Logged };
}

/// When a fold hands its pending writes to its target.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// At a chunk's end, once this many writes are pending, with the applied markers:
    /// reads of what is pending stay in memory, and a fold interrupted half-way
    /// resumes from its last commit.
    InChunks(usize),
    /// After every record, markers only at the end: for a target in memory (the
    /// fresh fold), where the pending writes would only be a second, slower copy.
    EveryRecord,
}

/// How many records the reading thread hands over at a time.
const HANDOVER: usize = 1024;

/// Fewer records than this are prepared on one thread: a second would cost more to
/// start than it saves.
const SPLIT_FROM: usize = 64;

/// One record read back and made ready to fold.
struct ReadyRecord {
    seq: u64,
    /// The record's leaf hash in the RFC 6962 tree.
    leaf: huduma_log::merkle::Hash,
    event: Event,
    prepared: fold::Prepared,
}

/// Records read back from the log, in order: each sequence number with the record's
/// stored bytes (the store's checksum checked and cut off) and hash. Shared, so that a
/// fold can hand what it reads to the log's check too ([`LogTap`]).
pub type ReadRecords = Arc<Vec<(u64, HashedRecord)>>;

/// Where a fold hands every record it reads from the log, in order, before folding
/// them: `verify` checks the log's chain from it, so that the log is read once for both.
/// If the receiving side hangs up, the fold stops (with an error of its own): its
/// check has failed, and what the fold would find is not reported.
pub type LogTap = std::sync::mpsc::SyncSender<ReadRecords>;

/// Parses, decodes and prepares one record (see [`fold::prepare`]).
fn prepare_record(keyring: &View<'_>, secrets: &Secrets, seq: u64, bytes: &[u8]) -> Result<ReadyRecord, ReplayError> {
    let record = RecordRef::parse(bytes).map_err(|e| ReplayError::Record { seq, reason: e.to_string() })?;
    let event = decode_event(seq, &record)?;
    let prepared = fold::prepare(keyring, secrets, seq, &event).map_err(|cause| ReplayError::Fold { seq, cause })?;
    Ok(ReadyRecord { seq, leaf: huduma_log::merkle::leaf_hash(bytes), event, prepared })
}

/// Prepares records in order up to the first that fails: the ready ones and that
/// failure.
fn prepare_in_order(
    log: &dyn Storage,
    secrets: &Secrets,
    raw: &[(u64, HashedRecord)],
) -> (Vec<ReadyRecord>, Option<ReplayError>) {
    let keyring = View::new(log);
    let mut ready = Vec::with_capacity(raw.len());
    for (seq, record) in raw {
        match prepare_record(&keyring, secrets, *seq, record.bytes()) {
            Ok(record) => ready.push(record),
            Err(e) => return (ready, Some(e)),
        }
    }
    (ready, None)
}

/// [`prepare_in_order`], the second half on another thread: preparing a registration
/// costs more than folding it, so while a run of registrations is read back the fold's
/// core would otherwise wait.
fn prepare_on_two_threads(
    log: &dyn Storage,
    secrets: &Secrets,
    raw: &[(u64, HashedRecord)],
) -> (Vec<ReadyRecord>, Option<ReplayError>) {
    if raw.len() < SPLIT_FROM {
        return prepare_in_order(log, secrets, raw);
    }
    let (first, second) = raw.split_at(raw.len() / 2);
    let (first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(|| prepare_in_order(log, secrets, second));
        (prepare_in_order(log, secrets, first), second.join())
    });
    match (first, second) {
        (first @ (_, Some(_)), _) => first,
        ((mut ready, None), Ok((rest, failed))) => {
            ready.extend(rest);
            (ready, failed)
        }
        ((ready, None), Err(_)) => {
            (ready, Some(ReplayError::Storage(StorageError::Engine("preparing records panicked".into()))))
        }
    }
}

/// Reads records `from..` of `log` and prepares each to fold (parsed, decoded, a
/// registration's match material derived: the costly part of a fold that needs no
/// projection), handing them over in order, [`HANDOVER`] at a time, each handful to
/// `tap` first when there is one. Stops at the first bad record, handing over the
/// records before it and then its error, or when the folding side (or the tap's) hangs
/// up.
fn read_and_prepare(
    log: &dyn Storage,
    secrets: &Secrets,
    from: u64,
    tap: Option<LogTap>,
    hand_over: &std::sync::mpsc::SyncSender<Result<Vec<ReadyRecord>, ReplayError>>,
) {
    let tapped = |raw: &ReadRecords| match &tap {
        Some(tap) if tap.send(Arc::clone(raw)).is_err() => {
            Err(ReplayError::Storage(StorageError::Engine("the log's check stopped".into())))
        }
        _ => Ok(()),
    };
    let mut raw = Vec::with_capacity(HANDOVER);
    let read = for_each_record(log, from, |seq, record| {
        raw.push((seq, record));
        if raw.len() == HANDOVER {
            let records = Arc::new(std::mem::replace(&mut raw, Vec::with_capacity(HANDOVER)));
            tapped(&records)?;
            let (ready, failed) = prepare_on_two_threads(log, secrets, &records);
            if hand_over.send(Ok(ready)).is_err() {
                return Err(ReplayError::Storage(StorageError::Engine("the fold stopped".into())));
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(())
    });
    // What was read before a failed read (nothing, if a record failed to prepare).
    let records = Arc::new(raw);
    let (ready, failed) = match tapped(&records) {
        Ok(()) => prepare_on_two_threads(log, secrets, &records),
        Err(e) => (Vec::new(), Some(e)),
    };
    // A failed send means the fold has stopped, with its own error.
    if hand_over.send(Ok(ready)).is_ok()
        && let Some(e) = failed.or(read.err())
    {
        let _ = hand_over.send(Err(e));
    }
}

/// Folds records `from..` of `log` into `target`: one thread reads and prepares the
/// records (handing each handful to `tap` too, when there is one), this one folds them.
fn fold_records(
    log: &dyn Storage,
    target: &dyn Storage,
    secrets: &Secrets,
    from: u64,
    how: Folding,
    tap: Option<LogTap>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, ReplayError> {
    let commit = how.commit;
    let mut view = View::new(target);
    let mut tree = crate::merkle_store::TreeEdge::load(target, from)
        .map_err(|e| ReplayError::Fold { seq: from, cause: e.into() })?;
    let (hand_over, ready) = std::sync::mpsc::sync_channel(4);
    let end = std::thread::scope(|scope| {
        scope.spawn(move || read_and_prepare(log, secrets, from, tap, &hand_over));
        let mut end = from;
        // Ends when the reading side has handed over everything and hung up.
        for chunk in ready {
            for ReadyRecord { seq, leaf, event, prepared } in chunk? {
                fold::fold_prepared(&mut view, secrets, seq, &event, prepared, how.blocks)
                    .map_err(|cause| ReplayError::Fold { seq, cause })?;
                crate::merkle_store::append_leaf(&mut view, &mut tree, seq, leaf)
                    .map_err(|c| ReplayError::Fold { seq, cause: ReadError::from(c).into() })?;
                end = seq + 1;
                if commit == Commit::EveryRecord {
                    target.commit_owned(view.take_batch(), false)?;
                }
                if end.is_multiple_of(CHUNK as u64) {
                    if let Commit::InChunks(writes) = commit
                        && view.pending_len() >= writes
                    {
                        fold::mark_applied(&mut view, seq);
                        target.commit_owned(view.take_batch(), false)?;
                    }
                    progress(end);
                }
            }
        }
        Ok::<_, ReplayError>(end)
    })?;
    if end > from {
        fold::mark_applied(&mut view, end - 1);
    }
    target.commit_owned(view.take_batch(), false)?;
    progress(end);
    Ok(end)
}

/// The sequence number every projection has applied, or `None` if none has.
///
/// A projection with no marker at all (one added by a newer version, or one whose
/// rebuild was interrupted) makes the answer `None`, so that the registry rebuilds;
/// two markers that disagree are corruption.
pub fn applied(store: &dyn Storage) -> Result<Option<u64>, ReadError> {
    let view = View::new(store);
    let mut applied = None;
    for tree in Tree::PROJECTIONS {
        let seq = crate::projection::state::read_u64(&view, &crate::projection::state::meta::applied(tree))?;
        let Some(seq) = seq else { return Ok(None) };
        match applied {
            None => applied = Some(seq),
            Some(a) if a != seq => {
                return Err(Corruption::new(
                    Tree::Meta,
                    &crate::projection::state::meta::applied(tree),
                    "projections disagree on the sequence applied",
                )
                .into());
            }
            Some(_) => {}
        }
    }
    Ok(applied)
}

/// How many corrections `rebuild` commits at a time.
const PATCH_WRITES: usize = 65_536;

/// Rebuilds the projections from the log: folds the whole log afresh (in memory, or
/// in a scratch store on disk for a log larger than `space` allows in memory) and
/// writes only the differences into the live projections. Correct from any starting
/// state (empty, stale, corrupt or half-rebuilt) and nearly write-free on a healthy
/// store. Run with the registry stopped. Returns the number of records folded.
/// `progress` is told as the log is folded, then as each projection is compared.
///
/// The projections' applied markers are removed first and restored last, so that a
/// rebuild interrupted half-way is redone when the registry next opens.
///
/// A batch whose staged commit a crash cut short (its intent still stored, see
/// `commit_intent`) is undone first: its records removed, every other key it wrote
/// restored (an earlier version's intent: its request entries and keyring entries,
/// the intent going with the last of the rebuild's writes). None of its commands was
/// acknowledged.
pub fn rebuild(
    store: &dyn Storage,
    secrets: &Secrets,
    space: &FoldSpace,
    progress: &mut dyn FnMut(Reached),
) -> Result<u64, ReplayError> {
    let mut size = log_size(store)?;
    if let Some(intent) = crate::commit_intent::CommitIntent::read(store).map_err(undo_failed)? {
        tracing::warn!(first = intent.first_seq, size, "undoing a batch whose commit a crash cut short");
        store.commit(&intent.undo(size).map_err(undo_failed)?, true)?;
        size = log_size(store)?;
    }
    let mut unmark = WriteBatch::default();
    for tree in Tree::PROJECTIONS {
        unmark.remove(Tree::Meta, meta::applied(tree));
    }
    store.commit(&unmark, true)?;
    // The streamed trees are repaired as the log is folded: nothing reads them meanwhile.
    let mut fresh = FreshProjections::fold(store, secrets, space, None, OnDifference::Repair, &mut |done| {
        progress(Reached::log(done, size))
    })?;
    let pairs = fresh.pairs();
    // Each tree's differences, written as they are found, but the applied markers
    // (in Meta) only once every other tree is whole. The other trees' patches are
    // plain inserts in order (`write_in_order`), not atomic batches: nothing reads the
    // store during a rebuild but the rebuild, an interrupted one is redone (the markers
    // are gone until the end), and sled 0.34's atomic batch takes a process-wide lock
    // that would serialise the two threads' patches and stall their reads. Meta's
    // patch, with the markers, stays one atomic commit.
    let remaining = each_pair_in_parallel(pairs, progress, |pair| {
        let tree = pair.tree;
        let mut patch = WriteBatch::default();
        let mut failed = None;
        let compared = pair.diff(store, |key, value| {
            match value {
                Some(value) => patch.put(tree, key.to_vec(), value.to_vec()),
                None => patch.remove(tree, key.to_vec()),
            }
            if tree != Tree::Meta
                && patch.len() >= PATCH_WRITES
                && let Err(e) = store.write_in_order(&std::mem::take(&mut patch), false)
            {
                failed = Some(e);
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        match (compared, failed) {
            (Err(e), _) | (Ok(()), Some(e)) => Err(e),
            (Ok(()), None) => Ok(patch),
        }
    });
    let mut meta = None;
    for (tree, patch) in remaining {
        match tree {
            Tree::Meta => meta = Some(patch?),
            _ => store.write_in_order(&patch?, false)?,
        }
    }
    if let Some(patch) = meta {
        store.commit(&patch, false)?;
    }
    store.flush()?;
    // The log is the size read before the fold: a rebuild never writes to it.
    Ok(size)
}

/// What [`recover`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// No batch had been cut short.
    Nothing,
    /// The batch from `first_seq` on was undone exactly; `records` of its records had
    /// reached the disk and were removed.
    Undone { first_seq: u64, records: u64 },
    /// An earlier version's intent: the batch from `first_seq` on was undone and the
    /// projections rebuilt from the `records` the log then held.
    Rebuilt { first_seq: u64, records: u64 },
}

/// Undoes a batch whose staged commit a crash cut short, if the store holds its intent
/// (see `commit_intent`): exactly, in one atomic write, from an intent of this version;
/// from an earlier version's by a [`rebuild`] (in `space`; `progress` as it goes).
/// None of the batch's commands was acknowledged.
pub fn recover(
    store: &dyn Storage,
    secrets: &Secrets,
    space: &FoldSpace,
    progress: &mut dyn FnMut(Reached),
) -> Result<Recovery, ReplayError> {
    let Some(intent) = crate::commit_intent::CommitIntent::read(store).map_err(undo_failed)? else {
        return Ok(Recovery::Nothing);
    };
    if !intent.exact {
        let records = rebuild(store, secrets, space, progress)?;
        return Ok(Recovery::Rebuilt { first_seq: intent.first_seq, records });
    }
    let size = log_size(store)?;
    store.commit(&intent.undo(size).map_err(undo_failed)?, true)?;
    Ok(Recovery::Undone { first_seq: intent.first_seq, records: size.saturating_sub(intent.first_seq) })
}

/// An intent that cannot be read or undone (damaged on disk): the error names its key.
pub(crate) fn undo_failed(e: ReadError) -> ReplayError {
    ReplayError::Storage(StorageError::Engine(format!("the interrupted commit's intent: {e}")))
}

/// How many records the log holds.
pub fn log_size(store: &dyn Storage) -> Result<u64, StorageError> {
    Ok(store
        .last(Tree::Log)?
        .and_then(|(k, _)| <[u8; 8]>::try_from(k.as_slice()).ok())
        .map_or(0, |k| u64::from_be_bytes(k) + 1))
}
