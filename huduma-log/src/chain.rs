//! [`ChainVerifier`]: checks a log record by record, from any source (the store, an
//! export, a download): framing, sequence, the BLAKE3 chain, times that never go back,
//! every Ed25519 signature (in batches, on two threads), and the chain of log keys
//! from the genesis key through each `LogKeyRotated`. It reads only the log-level
//! events; what a person event says is the registry's business, not the chain's.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::events::{KindVersion, LogInitialized, LogKeyRotated, ROTATION_DOMAIN, decode, kind};
use crate::keys::KeyId;
use crate::record::{HashedRecord, RecordRef};

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
    /// The key in force, with its id (which every record names).
    current: Option<(VerifyingKey, KeyId)>,
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
            current: keys.last().map(|key| (*key, KeyId::of(key))),
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
        self.push_known_hash(bytes, None, check)
    }

    /// [`Self::push_with`] of a record hashed already (for a store's checksum): the
    /// chain takes its hash instead of hashing it again.
    pub fn push_hashed_with(
        &mut self,
        record: &HashedRecord,
        check: impl FnOnce(u64, &RecordRef<'_>) -> Result<(), String>,
    ) -> Result<(), ChainError> {
        self.push_known_hash(record.bytes(), Some(record.hash()), check)
    }

    fn push_known_hash(
        &mut self,
        bytes: &[u8],
        hash: Option<&[u8; 32]>,
        check: impl FnOnce(u64, &RecordRef<'_>) -> Result<(), String>,
    ) -> Result<(), ChainError> {
        match self.push_unchecked(bytes, hash, check) {
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

    /// `hash`: the record's hash when it is known already (see [`HashedRecord`]).
    fn push_unchecked(
        &mut self,
        bytes: &[u8],
        hash: Option<&[u8; 32]>,
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
            self.current = Some((key, KeyId::of(&key)));
            self.keys.push(key);
        } else if kv.kind == kind::LOG_INITIALIZED {
            return Err(bad(seq, "LogInitialized after record 0"));
        }
        let Some((key, key_id)) = self.current else {
            return Err(bad(seq, "no log key is in force"));
        };
        if h.key_id != key_id {
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
            self.current = Some((new_key, KeyId::of(&new_key)));
            self.keys.push(new_key);
        }
        self.prev_hash = match hash {
            Some(hash) => *hash,
            None => record.hash(),
        };
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
///
/// The group is checked in one batch (ed25519-zebra's, which folds the terms of each
/// key into one: a group is almost always signed by one key, and that halves the
/// batch's work against one term a signature). Its equation is the cofactored one of
/// ZIP 215, which also admits encodings RFC 8032's strict check refuses, so each
/// signature's `R` is first held to the strict rules on its bytes (canonical, not of
/// small order): an `R` that breaks them, or a batch that fails, sends the group to
/// the strict check one signature at a time, which names the first bad record.
fn verify_group(group: &[PendingSignature]) -> Option<u64> {
    if group.is_empty() {
        return None;
    }
    if group.iter().all(|pending| strict_r(pending.signature.r_bytes())) {
        let mut batch = ed25519_zebra::batch::Verifier::new();
        for pending in group {
            let key = ed25519_zebra::VerificationKeyBytes::from(pending.key.to_bytes());
            batch.queue((key, ed25519_zebra::Signature::from_bytes(&pending.signature.to_bytes()), &pending.message));
        }
        if batch.verify(rand::thread_rng()).is_ok() {
            return None;
        }
    }
    group.iter().find(|p| p.key.verify_strict(&p.message, &p.signature).is_err()).map(|p| p.seq)
}

/// Whether a signature's `R`, as encoded, passes RFC 8032's strict rules: its y below
/// the field's prime p = 2^255 - 19 (a canonical encoding), and not a point of small
/// order (whose y is that of one of the eight torsion points, whatever the sign bit).
fn strict_r(r: &[u8; 32]) -> bool {
    static SMALL_ORDER_Y: std::sync::LazyLock<Vec<[u8; 32]>> = std::sync::LazyLock::new(|| {
        curve25519_dalek::constants::EIGHT_TORSION.iter().map(|point| y_of(&point.compress().to_bytes())).collect()
    });
    let y = y_of(r);
    // y >= p exactly when y is p + d for d < 19: 0xed + d, then 0xff ... 0xff, 0x7f.
    let canonical = !(y[0] >= 0xed && y[1..31].iter().all(|&b| b == 0xff) && y[31] == 0x7f);
    canonical && !SMALL_ORDER_Y.contains(&y)
}

/// An encoded point's y: its bytes with the sign bit (of x) cleared.
fn y_of(encoded: &[u8; 32]) -> [u8; 32] {
    let mut y = *encoded;
    y[31] &= 0x7f;
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::LogKey;

    /// `count` signatures by `key`, of records `first..`.
    fn signed(key: &LogKey, first: u64, count: u64) -> Vec<PendingSignature> {
        (first..first + count)
            .map(|seq| {
                let message = format!("record {seq}").into_bytes();
                let signature = Signature::from_bytes(&key.sign(&message));
                PendingSignature { seq, message, signature, key: key.public() }
            })
            .collect()
    }

    /// The signature with its `R` replaced by `r`.
    fn with_r(pending: &mut PendingSignature, r: [u8; 32]) {
        let mut bytes = pending.signature.to_bytes();
        bytes[..32].copy_from_slice(&r);
        pending.signature = Signature::from_bytes(&bytes);
    }

    /// A log of `len` records signed by `key`: `LogInitialized`, then opaque payloads.
    fn log_of(key: &LogKey, len: u64) -> Vec<Vec<u8>> {
        use crate::events::{LogInitialized, encode};
        use crate::record::{Header, encode as encode_record, hash};
        let mut prev_hash = [0; 32];
        (0..len)
            .map(|seq| {
                let (kind, payload) = match seq {
                    0 => (
                        KindVersion { kind: kind::LOG_INITIALIZED, version: 1 },
                        encode(&LogInitialized { origin: "test".into(), public_key: key.public().to_bytes() }),
                    ),
                    _ => (KindVersion { kind: 100, version: 1 }, seq.to_be_bytes().to_vec()),
                };
                let header = Header { seq, time_micros: seq as i64, prev_hash, key_id: key.id(), kind };
                let bytes = encode_record(&header, &payload, key);
                prev_hash = hash(&bytes);
                bytes
            })
            .collect()
    }

    /// Pushes every record, hashed already or not, and finishes.
    fn verify_chain(log: &[Vec<u8>], hashed: bool) -> Result<ChainSummary, ChainError> {
        let mut verifier = ChainVerifier::new(None);
        for bytes in log {
            if hashed {
                verifier.push_hashed_with(&HashedRecord::new(bytes.clone()), |_, _| Ok(()))?;
            } else {
                verifier.push(bytes)?;
            }
        }
        verifier.finish()
    }

    #[test]
    fn a_record_hashed_already_is_chained_as_one_hashed_here() {
        let key = LogKey::from_seed([8; 32]);
        let log = log_of(&key, 5);
        let summary = verify_chain(&log, true).unwrap();
        assert_eq!(summary, verify_chain(&log, false).unwrap());
        assert_eq!(summary.head_hash, crate::record::hash(&log[4]));
        assert_eq!(summary.records, 5);
        // A record that names another predecessor breaks the chain either way.
        let mut broken = log.clone();
        broken[2][17] ^= 1;
        for hashed in [true, false] {
            let error = verify_chain(&broken, hashed).unwrap_err();
            assert_eq!(error.seq, 2, "hashed already: {hashed}; {error}");
        }
    }

    #[test]
    fn a_group_of_good_signatures_by_one_key_or_two_verifies() {
        let (one, two) = (LogKey::from_seed([1; 32]), LogKey::from_seed([2; 32]));
        assert_eq!(verify_group(&signed(&one, 0, 300)), None);
        let mut both = signed(&one, 0, 150);
        both.extend(signed(&two, 150, 150));
        assert_eq!(verify_group(&both), None);
        assert_eq!(verify_group(&[]), None);
    }

    #[test]
    fn the_first_bad_signature_of_a_group_is_named() {
        let key = LogKey::from_seed([3; 32]);
        for bad in [0, 1, 137, 299] {
            let mut group = signed(&key, 1000, 300);
            group[bad].message.push(b'!');
            if bad < 299 {
                group[299].message.push(b'!');
            }
            assert_eq!(verify_group(&group), Some(1000 + bad as u64), "message of record {bad} changed");
        }
        let mut group = signed(&key, 0, 64);
        let other = LogKey::from_seed([4; 32]);
        group[40].key = other.public();
        assert_eq!(verify_group(&group), Some(40), "signed by another key than the one in force");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        /// Whatever the group's size and whichever of its signatures are bad (a changed
        /// message, or an R of small order), the first bad one is named, and none when
        /// none is.
        #[test]
        fn the_first_bad_signature_is_named_wherever_it_is(
            size in 1usize..400,
            bad in proptest::collection::btree_set((0usize..400, proptest::prelude::any::<bool>()), 0..4),
        ) {
            let key = LogKey::from_seed([7; 32]);
            let mut group = signed(&key, 10, size as u64);
            let identity = curve25519_dalek::constants::EIGHT_TORSION[0].compress().to_bytes();
            let bad: Vec<(usize, bool)> = bad.into_iter().filter(|(i, _)| *i < size).collect();
            for &(i, small_order_r) in &bad {
                if small_order_r {
                    with_r(&mut group[i], identity);
                } else {
                    group[i].message.push(b'!');
                }
            }
            let first = bad.iter().map(|(i, _)| 10 + *i as u64).min();
            proptest::prop_assert_eq!(verify_group(&group), first);
        }
    }

    #[test]
    fn the_r_of_real_signatures_is_strict() {
        for pending in signed(&LogKey::from_seed([5; 32]), 0, 200) {
            assert!(strict_r(pending.signature.r_bytes()), "record {}", pending.seq);
        }
    }

    #[test]
    fn an_r_of_small_order_or_not_canonical_is_refused_whatever_its_sign_bit() {
        for point in curve25519_dalek::constants::EIGHT_TORSION {
            let encoded = point.compress().to_bytes();
            let mut flipped = encoded;
            flipped[31] ^= 0x80;
            assert!(!strict_r(&encoded), "{encoded:02x?}");
            assert!(!strict_r(&flipped), "{flipped:02x?}");
        }
        // p + d for every d that still fits in 255 bits, with either sign bit.
        for d in 0..19u8 {
            let mut y = [0xff; 32];
            y[0] = 0xed + d;
            y[31] = 0x7f;
            assert!(!strict_r(&y), "p + {d}");
            y[31] = 0xff;
            assert!(!strict_r(&y), "p + {d}, sign bit set");
        }
        // p - 1 (that is, y = -1) is canonical but of small order; p - 2 is neither.
        let mut y = [0xff; 32];
        y[0] = 0xec;
        y[31] = 0x7f;
        assert!(!strict_r(&y), "y = -1 is of order 2");
        y[0] = 0xeb;
        assert!(strict_r(&y), "p - 2 is canonical and not of small order");
    }

    #[test]
    fn a_signature_whose_r_breaks_the_strict_rules_is_named_even_in_a_good_group() {
        let key = LogKey::from_seed([6; 32]);
        let identity = curve25519_dalek::constants::EIGHT_TORSION[0].compress().to_bytes();
        let mut group = signed(&key, 500, 100);
        with_r(&mut group[70], identity);
        assert_eq!(verify_group(&group), Some(570));
    }
}
