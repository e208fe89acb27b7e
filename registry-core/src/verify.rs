//! Verification of the whole store: the log (sequence continuity, the BLAKE3 chain,
//! every Ed25519 signature in batches, the chain of log keys from the genesis key) and
//! the projections (equal, byte for byte, to a fresh fold of the log).
//!
//! [`LogVerifier`] checks records one at a time from any source (the store here; an
//! exported log in the auditor's hands), so the same code serves both.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use ed25519_dalek::{Signature, VerifyingKey};

use crate::event::Event;
use crate::keys::KeyId;
use crate::record::RecordRef;
use crate::replay::{self, FreshFold, ReplayError, TreeEntries};
use crate::secrets::Secrets;
use crate::storage::view::hex;
use crate::storage::{Storage, StorageError, Tree};
use crate::writer::ROTATION_DOMAIN;

/// The first thing wrong, by record number where a record is to blame.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("record {seq}: {reason}")]
    Record { seq: u64, reason: String },
    #[error("projection {tree} differs from a fresh fold of the log at key {key}")]
    Projection { tree: &'static str, key: String },
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

/// How many signatures are checked together.
const SIGNATURE_BATCH: usize = 2048;

struct PendingSignature {
    seq: u64,
    message: Vec<u8>,
    signature: Signature,
    key: VerifyingKey,
}

/// Checks records in order, one at a time.
pub struct LogVerifier {
    genesis: Option<VerifyingKey>,
    next_seq: u64,
    prev_hash: [u8; 32],
    last_time: i64,
    current: Option<VerifyingKey>,
    keys: Vec<KeyId>,
    pending: Vec<PendingSignature>,
}

fn bad(seq: u64, reason: impl Into<String>) -> VerifyError {
    VerifyError::Record { seq, reason: reason.into() }
}

impl LogVerifier {
    /// `genesis`: the genesis key as published out of band. Without it the key named
    /// by record 0 is trusted (good for self-checks, not for auditors).
    pub fn new(genesis: Option<VerifyingKey>) -> Self {
        Self {
            genesis,
            next_seq: 0,
            prev_hash: [0; 32],
            last_time: i64::MIN,
            current: None,
            keys: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Checks one record's framing, place in the chain, key and event; queues its
    /// signature for batch verification. On failure, the signatures still queued are
    /// checked first, so the error names the earliest bad record (a forged payload at
    /// N otherwise shows first as a broken link at N+1).
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), VerifyError> {
        match self.push_unchecked(bytes) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.check_signatures()?;
                Err(e)
            }
        }
    }

    fn push_unchecked(&mut self, bytes: &[u8]) -> Result<(), VerifyError> {
        let seq = self.next_seq;
        let record = RecordRef::parse(bytes).map_err(|e| bad(seq, e.to_string()))?;
        let h = record.header;
        if h.seq != seq {
            return Err(bad(seq, format!("carries sequence number {} (out of order or missing)", h.seq)));
        }
        if h.prev_hash != self.prev_hash {
            return Err(bad(seq, "does not name the previous record's hash (the chain is broken)"));
        }
        if h.time_micros < self.last_time {
            return Err(bad(seq, "its time is earlier than the previous record's"));
        }
        let event = replay::decode_event(seq, &record)?;
        if seq == 0 {
            let Event::LogInitialized(genesis) = &event else {
                return Err(bad(0, "record 0 is not LogInitialized"));
            };
            let key = VerifyingKey::from_bytes(&genesis.public_key).map_err(|e| bad(0, format!("genesis key: {e}")))?;
            if let Some(expected) = &self.genesis
                && *expected != key
            {
                return Err(bad(0, "names a genesis key other than the published one"));
            }
            self.current = Some(key);
            self.keys.push(KeyId::of(&key));
        } else if matches!(event, Event::LogInitialized(_)) {
            return Err(bad(seq, "LogInitialized after record 0"));
        }
        let Some(key) = self.current else {
            return Err(bad(seq, "no log key is in force"));
        };
        if h.key_id != KeyId::of(&key) {
            return Err(bad(seq, "signed with a key id other than the key in force"));
        }
        self.pending.push(PendingSignature {
            seq,
            message: record.signed_message(),
            signature: record.signature(),
            key,
        });
        if let Event::LogKeyRotated(rotation) = &event {
            let new_key = VerifyingKey::from_bytes(&rotation.new_public_key)
                .map_err(|e| bad(seq, format!("rotated-to key: {e}")))?;
            let mut consent = ROTATION_DOMAIN.to_vec();
            consent.extend_from_slice(key.as_bytes());
            consent.extend_from_slice(new_key.as_bytes());
            let signature = Signature::from_slice(&rotation.new_key_signature)
                .map_err(|_| bad(seq, "the new key's consent is not a 64-byte signature"))?;
            new_key
                .verify_strict(&consent, &signature)
                .map_err(|_| bad(seq, "the new key's consent signature does not verify"))?;
            self.current = Some(new_key);
            self.keys.push(KeyId::of(&new_key));
        }
        self.prev_hash = record.hash();
        self.last_time = h.time_micros;
        self.next_seq += 1;
        if self.pending.len() >= SIGNATURE_BATCH {
            self.check_signatures()?;
        }
        Ok(())
    }

    /// Verifies the queued signatures (in two halves, on two threads), naming the
    /// first bad record if any fails.
    pub fn check_signatures(&mut self) -> Result<(), VerifyError> {
        let pending = std::mem::take(&mut self.pending);
        let (left, right) = pending.split_at(pending.len() / 2);
        let (a, b) = std::thread::scope(|s| {
            let handle = s.spawn(|| verify_group(left));
            let b = verify_group(right);
            (handle.join().unwrap_or(Some(left.first().map_or(0, |p| p.seq))), b)
        });
        match a.or(b) {
            Some(seq) => Err(bad(seq, "signature does not verify")),
            None => Ok(()),
        }
    }

    /// Finishes: checks the last signatures and reports.
    pub fn finish(mut self) -> Result<(u64, [u8; 32], Vec<KeyId>), VerifyError> {
        self.check_signatures()?;
        Ok((self.next_seq, self.prev_hash, self.keys))
    }
}

/// `None` when every signature verifies; else the first bad record's number.
fn verify_group(group: &[PendingSignature]) -> Option<u64> {
    if group.is_empty() {
        return None;
    }
    let messages: Vec<&[u8]> = group.iter().map(|p| p.message.as_slice()).collect();
    let signatures: Vec<Signature> = group.iter().map(|p| p.signature).collect();
    let keys: Vec<VerifyingKey> = group.iter().map(|p| p.key).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        return None;
    }
    group.iter().find(|p| p.key.verify_strict(&p.message, &p.signature).is_err()).map(|p| p.seq)
}

/// Verifies the log in `store` and, given the secrets, that its projections equal a
/// fresh fold. `progress(done, total)` is called as records are checked.
pub fn verify_store(
    store: &dyn Storage,
    genesis: Option<VerifyingKey>,
    secrets: Option<&Secrets>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport, VerifyError> {
    let total = replay::log_size(store)?;
    // The log check and the fresh fold read the log independently: they run on two
    // threads, then the projections are compared (only if the log verified).
    let (log, fold) = std::thread::scope(|scope| {
        let fold = secrets.map(|secrets| scope.spawn(move || replay::fresh_and_live(store, secrets, &mut |_| ())));
        let log = verify_log(store, genesis, total, progress);
        (log, fold.map(|handle| handle.join()))
    });
    let (records, head_hash, keys) = log?;
    progress(records, total);
    let projections_checked = match fold {
        Some(Ok(folded)) => {
            let (fresh, live) = folded?;
            compare_projections(&fresh, &live)?;
            true
        }
        Some(Err(_)) => return Err(bad(records, "the projection fold panicked")),
        None => false,
    };
    Ok(VerifyReport { records, head_hash, keys, projections_checked })
}

/// Checks every record of the log in order; returns (size, head hash, keys).
fn verify_log(
    store: &dyn Storage,
    genesis: Option<VerifyingKey>,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(u64, [u8; 32], Vec<KeyId>), VerifyError> {
    let mut verifier = LogVerifier::new(genesis);
    replay::for_each_record(store, 0, |seq, bytes| {
        verifier.push(bytes).map_err(|e| match e {
            VerifyError::Record { seq, reason } => ReplayError::Record { seq, reason },
            other => ReplayError::Record { seq, reason: other.to_string() },
        })?;
        if (seq + 1) % replay::CHUNK as u64 == 0 {
            progress(seq + 1, total);
        }
        Ok(())
    })?;
    let (records, head_hash, keys) = verifier.finish()?;
    if records != total {
        return Err(bad(records, format!("missing: the log ends at {total} but the chain stops at {records}")));
    }
    Ok((records, head_hash, keys))
}

/// Compares each live projection with the fresh fold, naming the first key that differs.
fn compare_projections(fresh: &FreshFold<'_>, live: &BTreeMap<Tree, TreeEntries>) -> Result<(), VerifyError> {
    let empty = TreeEntries::new();
    for tree in Tree::PROJECTIONS {
        let mut first = None;
        replay::diff_tree(live.get(&tree).unwrap_or(&empty), &fresh.tree(tree)?, |key, _| {
            first = Some(key.to_vec());
            ControlFlow::Break(())
        });
        if let Some(key) = first {
            return Err(VerifyError::Projection { tree: tree.name(), key: hex(&key) });
        }
    }
    Ok(())
}
