//! [`ChainVerifier`]: checks a log record by record, from any source (the store, an
//! export, a download): framing, sequence, the BLAKE3 chain, times that never go back,
//! every Ed25519 signature (in batches, on two threads), and the chain of log keys
//! from the genesis key through each `LogKeyRotated`. It reads only the log-level
//! events; what a person event says is the registry's business, not the chain's.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::events::{KindVersion, LogInitialized, LogKeyRotated, ROTATION_DOMAIN, decode, kind};
use crate::keys::KeyId;
use crate::record::RecordRef;

/// The first bad record, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record {seq}: {reason}")]
pub struct ChainError {
    pub seq: u64,
    pub reason: String,
}

fn bad(seq: u64, reason: impl Into<String>) -> ChainError {
    ChainError { seq, reason: reason.into() }
}

/// How many signatures are checked together.
const SIGNATURE_BATCH: usize = 2048;

struct PendingSignature {
    seq: u64,
    message: Vec<u8>,
    signature: Signature,
    key: VerifyingKey,
}

/// What a finished verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    /// How many records (= the log's size).
    pub records: u64,
    /// The BLAKE3 hash of the last record (zeros for an empty log).
    pub head_hash: [u8; 32],
    /// Every log key, from the genesis key, in order of rotation.
    pub keys: Vec<VerifyingKey>,
}

/// Checks records in order, one at a time.
pub struct ChainVerifier {
    genesis: Option<VerifyingKey>,
    next_seq: u64,
    prev_hash: [u8; 32],
    last_time: i64,
    current: Option<VerifyingKey>,
    keys: Vec<VerifyingKey>,
    pending: Vec<PendingSignature>,
}

impl ChainVerifier {
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

    /// Resumes after records already verified: the next record is `next_seq`, it must
    /// name `prev_hash`, and `keys` (oldest first) are the keys seen so far.
    pub fn resume(next_seq: u64, prev_hash: [u8; 32], last_time: i64, keys: Vec<VerifyingKey>) -> Self {
        Self {
            genesis: keys.first().copied(),
            next_seq,
            prev_hash,
            last_time,
            current: keys.last().copied(),
            keys,
            pending: Vec::new(),
        }
    }

    /// The sequence number the next record must carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The hash of the last record pushed.
    pub fn head_hash(&self) -> [u8; 32] {
        self.prev_hash
    }

    /// The time of the last record pushed.
    pub fn last_time(&self) -> i64 {
        self.last_time
    }

    /// The keys seen so far, oldest first.
    pub fn keys(&self) -> &[VerifyingKey] {
        &self.keys
    }

    /// Checks one record's framing, place in the chain and key; queues its signature.
    /// On failure the signatures still queued are checked first, so the error names
    /// the earliest bad record (a forged payload at N otherwise shows first as a broken
    /// link at N+1). `check` sees each parsed record first (e.g. to decode its event).
    pub fn push_with(
        &mut self,
        bytes: &[u8],
        check: impl FnOnce(u64, &RecordRef<'_>) -> Result<(), String>,
    ) -> Result<(), ChainError> {
        match self.push_unchecked(bytes, check) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.check_signatures()?;
                Err(e)
            }
        }
    }

    /// [`Self::push_with`] with no further check.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), ChainError> {
        self.push_with(bytes, |_, _| Ok(()))
    }

    fn push_unchecked(
        &mut self,
        bytes: &[u8],
        check: impl FnOnce(u64, &RecordRef<'_>) -> Result<(), String>,
    ) -> Result<(), ChainError> {
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
        check(seq, &record).map_err(|reason| bad(seq, reason))?;
        let kv = h.kind;
        if seq == 0 {
            if kv.kind != kind::LOG_INITIALIZED {
                return Err(bad(0, "record 0 is not LogInitialized"));
            }
            let genesis: LogInitialized = decode_log_event(0, kv, record.payload)?;
            let key = VerifyingKey::from_bytes(&genesis.public_key).map_err(|e| bad(0, format!("genesis key: {e}")))?;
            if let Some(expected) = &self.genesis
                && *expected != key
            {
                return Err(bad(0, "names a genesis key other than the published one"));
            }
            self.current = Some(key);
            self.keys.push(key);
        } else if kv.kind == kind::LOG_INITIALIZED {
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
        if kv.kind == kind::LOG_KEY_ROTATED {
            let rotation: LogKeyRotated = decode_log_event(seq, kv, record.payload)?;
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
            self.keys.push(new_key);
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
    pub fn check_signatures(&mut self) -> Result<(), ChainError> {
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
    pub fn finish(mut self) -> Result<ChainSummary, ChainError> {
        self.check_signatures()?;
        Ok(ChainSummary { records: self.next_seq, head_hash: self.prev_hash, keys: self.keys })
    }
}

fn decode_log_event<T: serde::de::DeserializeOwned>(
    seq: u64,
    kv: KindVersion,
    payload: &[u8],
) -> Result<T, ChainError> {
    if kv.version != 1 {
        return Err(bad(seq, format!("unknown version {} of log event kind {}", kv.version, kv.kind)));
    }
    decode(kv, payload).map_err(|e| bad(seq, e.to_string()))
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
