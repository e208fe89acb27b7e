//! Signed checkpoints of a log kept in a [`Storage`] (the identity log, and the access
//! log in its own store): signing them off the per-record path, storing them, reading
//! them back, and checking on open that the log still produces the newest one.

use huduma_log::checkpoint::Checkpoint;
use huduma_log::keys::{LogKey, VerifyingKey};
use huduma_log::merkle::Hash;

use crate::storage::view::{Corruption, ReadError, open_value};
use crate::storage::{Storage, Tree, WriteBatch};

/// Signs checkpoints of the durable log: when a batch lands and the last checkpoint is
/// at least `interval` old, and whenever the log goes idle, so that the newest
/// checkpoint is never more than about `interval` behind the log. Never on the
/// per-record path: at most one signature per batch. Checkpoints are stored (not
/// flushed on their own: one lost in a crash is signed again, identically, since
/// Ed25519 is deterministic and the tree below it is durable).
pub struct Checkpointer {
    /// The checkpoint's first line, which names the log, and the signing key's name in
    /// the note (C2SP: the same), so each log has its own verifier key string.
    origin: String,
    /// Which log, for metrics: "identity" or "access".
    log: &'static str,
    interval: std::time::Duration,
    signed_at: Option<std::time::Instant>,
    signed_size: u64,
    pending: Option<(u64, Hash)>,
}

impl Checkpointer {
    pub fn new(origin: String, log: &'static str, interval: std::time::Duration, signed_size: u64) -> Self {
        Self { origin, log, interval, signed_at: None, signed_size, pending: None }
    }

    /// A batch made the log `size` long, with tree root `root`.
    pub fn landed(&mut self, key: &LogKey, store: &dyn Storage, size: u64, root: Hash) {
        self.pending = Some((size, root));
        if self.signed_at.is_none_or(|at| at.elapsed() >= self.interval) {
            self.sign(key, store);
        }
    }

    /// Nothing is queued: sign what landed.
    pub fn idle(&mut self, key: &LogKey, store: &dyn Storage) {
        self.sign(key, store);
    }

    /// How long until what landed is due to be signed: `None` if nothing waits, zero
    /// if it is due now. For a log that is idle often but briefly (the access log),
    /// which signs when due rather than at every pause.
    pub fn due_in(&self) -> Option<std::time::Duration> {
        let (size, _) = self.pending?;
        if size <= self.signed_size {
            return None;
        }
        Some(self.signed_at.map_or(std::time::Duration::ZERO, |at| self.interval.saturating_sub(at.elapsed())))
    }

    fn sign(&mut self, key: &LogKey, store: &dyn Storage) {
        let Some((size, root)) = self.pending.take() else { return };
        if size <= self.signed_size {
            return;
        }
        let note = Checkpoint { origin: self.origin.clone(), size, root }.sign(&self.origin, key);
        let mut batch = WriteBatch::default();
        batch.put(Tree::Checkpoints, size.to_be_bytes().to_vec(), crate::storage::checksum::seal(note.as_bytes()));
        match store.commit(&batch, false) {
            Ok(()) => {
                self.signed_size = size;
                self.signed_at = Some(std::time::Instant::now());
                metrics::counter!("huduma_checkpoints_signed_total", "log" => self.log).increment(1);
            }
            Err(e) => tracing::error!(error = %e, size, log = self.log, "storing a checkpoint failed; retried later"),
        }
    }
}

/// The newest stored checkpoint: (tree size, signed note).
pub fn latest(store: &dyn Storage) -> Result<Option<(u64, String)>, ReadError> {
    let Some((key, stored)) = store.last(Tree::Checkpoints)? else {
        return Ok(None);
    };
    entry(&key, &stored).map(Some)
}

/// The stored checkpoint at exactly `size`, if one was signed.
pub fn at(store: &dyn Storage, size: u64) -> Result<Option<String>, ReadError> {
    let key = size.to_be_bytes();
    let Some(stored) = store.get(Tree::Checkpoints, &key)? else {
        return Ok(None);
    };
    entry(&key, &stored).map(|(_, note)| Some(note))
}

fn entry(key: &[u8], stored: &[u8]) -> Result<(u64, String), ReadError> {
    let corrupt = |why: &str| ReadError::from(Corruption::new(Tree::Checkpoints, key, why));
    let value = open_value(Tree::Checkpoints, key, stored)?;
    let size: [u8; 8] = key.try_into().map_err(|_| corrupt("not a tree size"))?;
    let note = String::from_utf8(value).map_err(|_| corrupt("not UTF-8"))?;
    Ok((u64::from_be_bytes(size), note))
}

/// Why a log does not match its newest checkpoint.
#[derive(Debug, thiserror::Error)]
#[error("the log does not match its own signed checkpoint at size {size}: {reason}")]
pub struct CheckpointMismatch {
    pub size: u64,
    pub reason: String,
}

/// The checkpoint `note` signs for `origin` under one of `keys` (a log's keys over its
/// history), if any of them verifies it.
pub fn signed_by_any(note: &str, origin: &str, keys: &[VerifyingKey]) -> Option<Checkpoint> {
    keys.iter().find_map(|key| Checkpoint::open(note, origin, key).ok())
}

/// Checks that the newest stored checkpoint is signed by one of `keys` for `origin`
/// and that the log of `size` records still has the tree it signed;
/// returns its size (0 if none). A log rewritten behind a checkpoint never serves again.
pub fn check_latest(
    store: &dyn Storage,
    size: u64,
    origin: &str,
    keys: &[VerifyingKey],
) -> Result<u64, CheckpointMismatch> {
    let fail = |at: u64, reason: String| CheckpointMismatch { size: at, reason };
    let Some((at, note)) = latest(store).map_err(|e| fail(0, e.to_string()))? else {
        return Ok(0);
    };
    if at > size {
        return Err(fail(at, format!("the log has only {size} records")));
    }
    let checkpoint =
        signed_by_any(&note, origin, keys).ok_or_else(|| fail(at, "no log key's signature verifies".into()))?;
    let root = crate::merkle_store::root(store, at).map_err(|e| fail(at, e.to_string()))?;
    if checkpoint.size != at || checkpoint.root != root {
        return Err(fail(at, "the tree's root differs from the signed one (history was rewritten)".into()));
    }
    Ok(at)
}
