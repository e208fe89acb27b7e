//! The access log's records as anyone reads them (docs/LOG-FORMAT.md, section 12): the
//! clear envelope that chains a look-up's record ([`AccessHeader`], [`parse`]) and the
//! chain rules over a run of records ([`AccessChain`]), which are all an auditor checks
//! before the tree and the signed checkpoints. The sealed body is the registry's own
//! business: `registry-core`'s `access::record` seals and opens it.
//!
//! ```text
//! offset size
//!      0    1  version = 1
//!      1    8  seq (u64 BE), from 0, no gaps
//!      9    8  time: Unix milliseconds (u64 BE), never decreasing
//!     17   32  prev: BLAKE3 of the previous access record's bytes; zeros for record 0
//!     49   32  subject: zeros if the look-up found nobody, else a keyed hash of the person
//!     81    1  sealed_under: 0 = the registry's access seal key, 1 = the person's data key
//!     82   24  nonce
//!    106    n  XChaCha20-Poly1305 ciphertext of the body, with its 16-byte tag
//! ```

// The next record names a record by the BLAKE3 hash of its exact bytes, as in the
// identity log.
use crate::record::hash;

/// The version byte of every access record.
pub const VERSION: u8 = 1;
/// The envelope's length: the bytes the body's seal binds as associated data.
pub const ENVELOPE_LEN: usize = 82;
/// Bytes before the ciphertext: the envelope and the 24-byte nonce.
pub const HEADER_LEN: usize = ENVELOPE_LEN + 24;
/// The AEAD tag that ends every ciphertext, so the least a body can be.
pub const TAG_LEN: usize = 16;

/// The access log's origin for an identity log's: its last path segment replaced by
/// `access` (`registry.huduma.go.ke/log` -> `registry.huduma.go.ke/access`). Its
/// checkpoints are signed by the identity log's key in force, under this name.
pub fn origin_for(identity_origin: &str) -> String {
    match identity_origin.rsplit_once('/') {
        Some((host, _)) => format!("{host}/access"),
        None => format!("{identity_origin}/access"),
    }
}

/// Which key sealed a record's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedUnder {
    /// The registry's access seal key: nobody was found, or the person was erased.
    Registry = 0,
    /// The person's own data key: erasing the person makes the body unreadable.
    Person = 1,
}

/// The clear envelope of an access record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessHeader {
    pub seq: u64,
    pub time_ms: u64,
    pub prev: [u8; 32],
    pub subject: [u8; 32],
    pub sealed_under: SealedUnder,
}

impl AccessHeader {
    /// The envelope's bytes, as they open a record.
    pub fn to_bytes(&self) -> [u8; ENVELOPE_LEN] {
        let mut out = [0u8; ENVELOPE_LEN];
        out[0] = VERSION;
        out[1..9].copy_from_slice(&self.seq.to_be_bytes());
        out[9..17].copy_from_slice(&self.time_ms.to_be_bytes());
        out[17..49].copy_from_slice(&self.prev);
        out[49..81].copy_from_slice(&self.subject);
        out[81] = self.sealed_under as u8;
        out
    }
}

/// Why bytes are not an access record: the rule they break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("access record: {0}")]
pub struct Malformed(pub &'static str);

/// Reads a record's envelope, checking its shape (not the body, which is sealed).
pub fn parse(bytes: &[u8]) -> Result<AccessHeader, Malformed> {
    if bytes.len() < HEADER_LEN + TAG_LEN {
        return Err(Malformed("shorter than an envelope and a tag"));
    }
    let u64_at = |at: usize| bytes.get(at..at + 8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    let h32_at = |at: usize| bytes.get(at..at + 32).and_then(|b| <[u8; 32]>::try_from(b).ok());
    if bytes.first() != Some(&VERSION) {
        return Err(Malformed("unknown version"));
    }
    let sealed_under = match bytes.get(81) {
        Some(0) => SealedUnder::Registry,
        Some(1) => SealedUnder::Person,
        _ => return Err(Malformed("unknown sealed_under")),
    };
    Ok(AccessHeader {
        seq: u64_at(1).ok_or(Malformed("seq"))?,
        time_ms: u64_at(9).ok_or(Malformed("time"))?,
        prev: h32_at(17).ok_or(Malformed("prev"))?,
        subject: h32_at(49).ok_or(Malformed("subject"))?,
        sealed_under,
    })
}

/// The first access record that breaks the chain rules, and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access record {seq}: {reason}")]
pub struct AccessChainError {
    pub seq: u64,
    pub reason: String,
}

/// Checks access records in order, one at a time: each well formed, numbered next,
/// naming the previous record's hash, and no earlier than it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessChain {
    next_seq: u64,
    prev: [u8; 32],
    last_time: u64,
}

impl Default for AccessChain {
    fn default() -> Self {
        Self::new()
    }
}

impl AccessChain {
    /// Before record 0.
    pub fn new() -> Self {
        Self { next_seq: 0, prev: [0; 32], last_time: 0 }
    }

    /// After `size` records verified before, the last hashing to `head` with time
    /// `last_time` (Unix milliseconds).
    pub fn resume(size: u64, head: [u8; 32], last_time: u64) -> Self {
        Self { next_seq: size, prev: head, last_time }
    }

    /// Checks the next record, whose exact bytes are `bytes` and whose hash is
    /// `hash` (BLAKE3 of them, as [`crate::record::hash`] names any record), and returns
    /// its envelope.
    pub fn push_hashed(&mut self, bytes: &[u8], hash: &[u8; 32]) -> Result<AccessHeader, AccessChainError> {
        let seq = self.next_seq;
        let fail = |reason: String| AccessChainError { seq, reason };
        let header = parse(bytes).map_err(|e| fail(e.0.to_string()))?;
        if header.seq != seq {
            return Err(fail(format!("names sequence number {}", header.seq)));
        }
        if header.prev != self.prev {
            return Err(fail(format!(
                "does not name the previous record's hash (record {} or this one was altered)",
                seq.saturating_sub(1)
            )));
        }
        if header.time_ms < self.last_time {
            return Err(fail("its time is before the previous record's".into()));
        }
        self.next_seq += 1;
        self.prev = *hash;
        self.last_time = header.time_ms;
        Ok(header)
    }

    /// [`AccessChain::push_hashed`], hashing the record here.
    pub fn push(&mut self, bytes: &[u8]) -> Result<AccessHeader, AccessChainError> {
        self.push_hashed(bytes, &hash(bytes))
    }

    /// How many records have been checked (the next one's sequence number).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The hash of the last record checked (zeros before any).
    pub fn head_hash(&self) -> [u8; 32] {
        self.prev
    }

    /// The time of the last record checked (0 before any).
    pub fn last_time(&self) -> u64 {
        self.last_time
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A well-formed chain of records with these times and body lengths.
    fn chain(records: &[(u64, usize)]) -> Vec<Vec<u8>> {
        let mut prev = [0u8; 32];
        let mut out = Vec::new();
        for (seq, (time_ms, body)) in records.iter().enumerate() {
            let header = AccessHeader {
                seq: seq as u64,
                time_ms: *time_ms,
                prev,
                subject: [seq as u8; 32],
                sealed_under: if seq % 2 == 0 { SealedUnder::Registry } else { SealedUnder::Person },
            };
            let mut bytes = header.to_bytes().to_vec();
            bytes.extend(std::iter::repeat_n(7u8, 24 + TAG_LEN + body));
            prev = hash(&bytes);
            out.push(bytes);
        }
        out
    }

    fn sorted_times() -> impl Strategy<Value = Vec<(u64, usize)>> {
        proptest::collection::vec((0u64..1_000, 0usize..40), 1..24).prop_map(|mut r| {
            let mut t = 1_790_000_000_000u64;
            for (step, _) in &mut r {
                t += *step;
                *step = t;
            }
            r
        })
    }

    proptest! {
        /// A chain the rules hold for passes whole, and resumes from any point; the
        /// envelope reads back as written.
        #[test]
        fn a_well_formed_chain_passes_and_resumes_anywhere(records in sorted_times(), cut in 0usize..24) {
            let bytes = chain(&records);
            let mut whole = AccessChain::new();
            for (seq, record) in bytes.iter().enumerate() {
                let header = whole.push(record).unwrap();
                prop_assert_eq!(header.seq, seq as u64);
                prop_assert_eq!(header.to_bytes().to_vec(), record[..ENVELOPE_LEN].to_vec());
            }
            let cut = cut.min(bytes.len());
            let mut first = AccessChain::new();
            for record in &bytes[..cut] {
                first.push(record).unwrap();
            }
            let mut resumed = AccessChain::resume(first.next_seq(), first.head_hash(), first.last_time());
            for record in &bytes[cut..] {
                resumed.push(record).unwrap();
            }
            prop_assert_eq!(resumed, whole);
        }

        /// Flipping any bit of any record's envelope, or of any earlier record, is
        /// caught at that record or the one after it, and named.
        #[test]
        fn any_altered_byte_is_named(records in sorted_times(), at in any::<prop::sample::Index>(), byte in 0usize..ENVELOPE_LEN + 24 + TAG_LEN, bit in 0u8..8) {
            let mut bytes = chain(&records);
            let victim = at.index(bytes.len());
            bytes[victim][byte] ^= 1 << bit;
            let mut chain = AccessChain::new();
            let failed = bytes.iter().find_map(|r| chain.push(r).err());
            // Any changed byte breaks the next record's link at the latest; the last
            // record has none after it (the tree's root catches that one).
            match failed {
                Some(e) => prop_assert!(e.seq == victim as u64 || e.seq == victim as u64 + 1, "{e}"),
                None => prop_assert!(victim + 1 == bytes.len(), "record {victim} byte {byte} bit {bit} passed"),
            }
        }
    }

    #[test]
    fn each_rule_is_named() {
        let good = chain(&[(10, 0), (20, 0), (30, 0)]);
        let first_failure = |records: &[Vec<u8>]| {
            let mut chain = AccessChain::new();
            records.iter().find_map(|r| chain.push(r).err()).map(|e| e.to_string())
        };
        assert_eq!(first_failure(&good), None);
        let mut short = good.clone();
        short[1].truncate(HEADER_LEN + TAG_LEN - 1);
        assert_eq!(first_failure(&short).unwrap(), "access record 1: shorter than an envelope and a tag");
        let mut version = good.clone();
        version[0][0] = 2;
        assert_eq!(first_failure(&version).unwrap(), "access record 0: unknown version");
        let mut sealed = good.clone();
        sealed[2][81] = 2;
        assert_eq!(first_failure(&sealed).unwrap(), "access record 2: unknown sealed_under");
        let skipped = [good[0].clone(), good[2].clone()];
        assert_eq!(first_failure(&skipped).unwrap(), "access record 1: names sequence number 2");
        let backwards = chain(&[(10, 0), (9, 0)]);
        assert_eq!(first_failure(&backwards).unwrap(), "access record 1: its time is before the previous record's");
        let mut altered = good.clone();
        altered[0][120] ^= 1;
        assert!(first_failure(&altered).unwrap().starts_with("access record 1: does not name the previous"));
    }
}
