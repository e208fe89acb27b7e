//! Verification of the whole store: the log (sequence continuity, the BLAKE3 chain,
//! every Ed25519 signature in batches, the chain of log keys from the genesis key) and
//! the projections (equal, byte for byte, to a fresh fold of the log).
//!
//! [`LogVerifier`] checks records one at a time from any source (the store here; an
//! exported log in the auditor's hands), so the same code serves both.

use std::ops::ControlFlow;
use std::sync::Mutex;

use ed25519_dalek::VerifyingKey;
use huduma_log::chain::{ChainError, ChainVerifier};

use crate::event::Event;
use crate::keys::KeyId;
use crate::record::{HashedRecord, RecordRef};
use crate::replay::{self, FoldSpace, Reached, ReplayError, Stage};
use crate::secrets::Secrets;
use crate::storage::view::hex;
use crate::storage::{Storage, StorageError, Tree};

/// The first thing wrong, by record number where a record is to blame.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("record {seq}: {reason}")]
    Record { seq: u64, reason: String },
    #[error("projection {tree} differs from a fresh fold of the log at key {key}")]
    Projection { tree: &'static str, key: String },
    #[error(
        "the commit of the batch from record {first_seq} on was cut short (a crash): run `huduma-registry recover` \
         (or start the registry) to undo it, then verify"
    )]
    InterruptedCommit { first_seq: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl VerifyError {
    /// The sequence number of the first bad record, if a record is to blame.
    pub fn seq(&self) -> Option<u64> {
        match self {
            VerifyError::Record { seq, .. } => Some(*seq),
            _ => None,
        }
    }
}

impl From<ReplayError> for VerifyError {
    fn from(e: ReplayError) -> Self {
        match e.seq() {
            Some(seq) => VerifyError::Record { seq, reason: e.to_string() },
            None => match e {
                ReplayError::Storage(s) => VerifyError::Storage(s),
                other => VerifyError::Record { seq: u64::MAX, reason: other.to_string() },
            },
        }
    }
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// How many records (= the log's size).
    pub records: u64,
    /// The hash of the last record (zeros for an empty log).
    pub head_hash: [u8; 32],
    /// Every log key, from the genesis key, in order of rotation.
    pub keys: Vec<KeyId>,
    /// Whether the projections were compared with a fresh fold.
    pub projections_checked: bool,
}

fn bad(seq: u64, reason: impl Into<String>) -> VerifyError {
    VerifyError::Record { seq, reason: reason.into() }
}

/// Checks records in order, one at a time: the chain (`huduma_log::chain`), and that
/// every payload decodes as an event of this registry.
pub struct LogVerifier {
    chain: ChainVerifier,
}

/// That a record's payload decodes as an event of this registry.
fn decodes(_: u64, record: &RecordRef<'_>) -> Result<(), String> {
    Event::decode(record.header.kind, record.payload).map(|_| ()).map_err(|e| e.to_string())
}

impl From<ChainError> for VerifyError {
    fn from(e: ChainError) -> Self {
        VerifyError::Record { seq: e.seq, reason: e.reason }
    }
}

impl LogVerifier {
    /// `genesis`: the genesis key as published out of band. Without it the key named
    /// by record 0 is trusted (good for self-checks, not for auditors).
    pub fn new(genesis: Option<VerifyingKey>) -> Self {
        Self { chain: ChainVerifier::new(genesis) }
    }

    /// Checks one record (see [`ChainVerifier::push_with`]); the error names the
    /// earliest bad record.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), VerifyError> {
        Ok(self.chain.push_with(bytes, decodes)?)
    }

    /// [`Self::push`] of a record hashed already (for the store's checksum).
    pub fn push_hashed(&mut self, record: &HashedRecord) -> Result<(), VerifyError> {
        Ok(self.chain.push_hashed_with(record, decodes)?)
    }

    /// Verifies the queued signatures, naming the first bad record if any fails.
    pub fn check_signatures(&mut self) -> Result<(), VerifyError> {
        Ok(self.chain.check_signatures()?)
    }

    /// Finishes: checks the last signatures and reports (size, head hash, key ids).
    pub fn finish(self) -> Result<(u64, [u8; 32], Vec<KeyId>), VerifyError> {
        let summary = self.chain.finish()?;
        Ok((summary.records, summary.head_hash, summary.keys.iter().map(KeyId::of).collect()))
    }
}

/// Verifies the log in `store` and, given the secrets, that its projections equal a
/// fresh fold (held where `space` says for a log of its size). `progress` is told as
/// records are checked and folded (where the slower of the two has reached), then as
/// each projection is compared with the fold.
pub fn verify_store(
    store: &dyn Storage,
    genesis: Option<VerifyingKey>,
    secrets: Option<&Secrets>,
    space: &FoldSpace,
    progress: &mut dyn FnMut(Reached),
) -> Result<VerifyReport, VerifyError> {
    match crate::commit_intent::CommitIntent::read(store) {
        Ok(None) => {}
        Ok(Some(intent)) => return Err(VerifyError::InterruptedCommit { first_seq: intent.first_seq }),
        Err(e) => return Err(VerifyError::Projection { tree: Tree::Meta.name(), key: format!("commit_intent ({e})") }),
    }
    let total = replay::log_size(store)?;
    // Where the fresh fold, then its comparison, has reached (nothing to wait for when
    // there is none).
    let fold_reached = Mutex::new(Reached::log(if secrets.is_some() { 0 } else { total }, total));
    let fold_reached = &fold_reached;
    let reached = || *fold_reached.lock().unwrap_or_else(|e| e.into_inner());
    // The log check and the fresh fold (then its comparison with the live
    // projections) run on two threads; a difference in the projections is reported
    // only if the log verified. The fold reads the log and hands what it reads to the
    // check too, so that the log is read once (on disk, at national scale, tens of
    // gigabytes); the check reads on by itself wherever the fold stops early.
    let (log, fold) = std::thread::scope(|scope| {
        let (tap, tapped) = secrets.map(|_| std::sync::mpsc::sync_channel(4)).unzip();
        let fold = secrets.map(|secrets| {
            scope.spawn(move || {
                compare_projections(store, secrets, space, total, tap, &mut |now| {
                    *fold_reached.lock().unwrap_or_else(|e| e.into_inner()) = now;
                })
            })
        });
        let log = verify_log(store, genesis, total, tapped, &mut |done| {
            let folded = match reached() {
                Reached { stage: Stage::Log, done, .. } => done,
                Reached { stage: Stage::Projections, .. } => total,
            };
            progress(Reached::log(done.min(folded), total));
        });
        // The fold and the comparison may take longer than the log's check (on disk,
        // they do).
        if let (Ok(_), Some(fold)) = (&log, &fold) {
            while !fold.is_finished() {
                progress(reached());
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
        (log, fold.map(|handle| handle.join()))
    });
    let (records, head_hash, keys) = log?;
    progress(reached());
    let projections_checked = match fold {
        Some(Ok(compared)) => {
            compared?;
            true
        }
        Some(Err(_)) => return Err(bad(records, "the projection fold panicked")),
        None => false,
    };
    Ok(VerifyReport { records, head_hash, keys, projections_checked })
}

/// Checks every record of the log in order, those handed over by `tapped` first (a
/// fold reading the log), then, from where it stopped, those it read itself; returns
/// (size, head hash, keys).
fn verify_log(
    store: &dyn Storage,
    genesis: Option<VerifyingKey>,
    total: u64,
    tapped: Option<std::sync::mpsc::Receiver<replay::ReadRecords>>,
    progress: &mut dyn FnMut(u64),
) -> Result<(u64, [u8; 32], Vec<KeyId>), VerifyError> {
    let mut verifier = LogVerifier::new(genesis);
    // The next record to check (read by the fold or not).
    let next = std::cell::Cell::new(0);
    let mut check = |seq: u64, record: &HashedRecord| {
        verifier.push_hashed(record)?;
        next.set(seq + 1);
        if (seq + 1).is_multiple_of(replay::CHUNK as u64) {
            progress(seq + 1);
        }
        Ok::<_, VerifyError>(())
    };
    // Ends when the fold has read the whole log, or stopped; the receiver is let go
    // at the first bad record, which stops the fold.
    for records in tapped.into_iter().flatten() {
        for (seq, record) in records.iter() {
            check(*seq, record)?;
        }
    }
    replay::for_each_record(store, next.get(), |seq, record| {
        check(seq, &record).map_err(|e| match e {
            VerifyError::Record { seq, reason } => ReplayError::Record { seq, reason },
            other => ReplayError::Record { seq, reason: other.to_string() },
        })
    })?;
    // The whole log read (a log shorter than a chunk is told of only here; the check,
    // paced by the fold, may end after the fold has moved on to the comparison).
    progress(next.get());
    let (records, head_hash, keys) = verifier.finish()?;
    if records != total {
        return Err(bad(records, format!("missing: the log ends at {total} but the chain stops at {records}")));
    }
    Ok((records, head_hash, keys))
}

/// Folds the log afresh (in `space`) and compares each live projection with it,
/// naming the first tree (in [`Tree::PROJECTIONS`] order) that differs and its least
/// key that does; `progress` as it folds the log's `total` records, then as each
/// projection is compared.
fn compare_projections(
    store: &dyn Storage,
    secrets: &Secrets,
    space: &FoldSpace,
    total: u64,
    tap: Option<replay::LogTap>,
    progress: &mut dyn FnMut(Reached),
) -> Result<(), VerifyError> {
    let mut fresh =
        replay::FreshProjections::fold(store, secrets, space, tap, replay::OnDifference::Report, &mut |done| {
            progress(Reached::log(done, total))
        })?;
    let pairs = fresh.pairs();
    let least_differing = replay::each_pair_in_parallel(pairs, progress, |pair| {
        let mut least: Option<Vec<u8>> = None;
        pair.diff(store, |key, _| {
            if least.as_deref().is_none_or(|least| key < least) {
                least = Some(key.to_vec());
            }
            ControlFlow::Continue(())
        })
        .map(|()| least)
    });
    for (tree, least) in least_differing {
        if let Some(key) = least? {
            return Err(VerifyError::Projection { tree: tree.name(), key: hex(&key) });
        }
    }
    Ok(())
}
