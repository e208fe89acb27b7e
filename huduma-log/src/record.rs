//! The record: the unit of the log, byte for byte as docs/LOG-FORMAT.md specifies.
//!
//! ```text
//! offset  size  field
//!      0     1  format version (1)
//!      1     8  sequence number, u64 big-endian (= Merkle leaf index)
//!      9     8  time, microseconds since the Unix epoch (UTC), i64 big-endian
//!     17    32  BLAKE3 hash of the previous record's bytes (zeros for record 0)
//!     49     8  key id of the signing log key
//!     57     2  event kind, u16 big-endian
//!     59     2  event schema version, u16 big-endian
//!     61     4  payload length n, u32 big-endian
//!     65     n  payload
//!   65+n    64  Ed25519 signature over "huduma.registry.v1.record" || 0x00 || bytes[0 .. 65+n]
//! ```
//!
//! Parsing borrows the stored bytes and never re-encodes: what is hashed and verified
//! is exactly what was stored.

use ed25519_dalek::{Signature, VerifyingKey};

use crate::events::KindVersion;
use crate::keys::{KeyId, LogKey};

pub const FORMAT_VERSION: u8 = 1;
pub const HEADER_LEN: usize = 65;
pub const SIGNATURE_LEN: usize = 64;
/// The largest payload accepted.
pub const MAX_PAYLOAD_LEN: usize = 1 << 20;
/// Prefixed to the signed bytes so a record signature can never be replayed as
/// another kind of signature.
pub const SIGNING_DOMAIN: &[u8] = b"huduma.registry.v1.record\0";

/// The fixed fields of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub seq: u64,
    pub time_micros: i64,
    pub prev_hash: [u8; 32],
    pub key_id: KeyId,
    pub kind: KindVersion,
}

/// Why bytes are not a well-formed record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is {0} bytes, shorter than a header and a signature")]
    TooShort(usize),
    #[error("unknown record format version {0}")]
    Version(u8),
    #[error("payload length {declared} does not fit the record's {actual} bytes")]
    Length { declared: usize, actual: usize },
}

/// A parsed view of a record's stored bytes.
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    bytes: &'a [u8],
    pub header: Header,
    pub payload: &'a [u8],
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// Builds and signs a record.
pub fn encode(header: &Header, payload: &[u8], key: &LogKey) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len() + SIGNATURE_LEN);
    bytes.push(FORMAT_VERSION);
    bytes.extend_from_slice(&header.seq.to_be_bytes());
    bytes.extend_from_slice(&header.time_micros.to_be_bytes());
    bytes.extend_from_slice(&header.prev_hash);
    bytes.extend_from_slice(&header.key_id.0);
    bytes.extend_from_slice(&header.kind.kind.to_be_bytes());
    bytes.extend_from_slice(&header.kind.version.to_be_bytes());
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(payload);
    let signature = key.sign(&signed_message(&bytes));
    bytes.extend_from_slice(&signature);
    bytes
}

/// The message a record's signature covers: the domain tag and the unsigned bytes.
fn signed_message(unsigned: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNING_DOMAIN.len() + unsigned.len());
    message.extend_from_slice(SIGNING_DOMAIN);
    message.extend_from_slice(unsigned);
    message
}

/// The BLAKE3 hash of a record's bytes: what the next record names as its predecessor.
pub fn hash(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// A record's bytes with their [`hash`], computed once for every use of it: the chain
/// ([`crate::chain::ChainVerifier::push_hashed_with`]) and a store's checksum cut from
/// the same hash. Only [`HashedRecord::new`] makes one, so the hash is always the
/// bytes' own: a reader that hashed a record for its checksum hands the hash on, and
/// cannot hand on a wrong one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedRecord {
    bytes: Vec<u8>,
    hash: [u8; 32],
}

impl HashedRecord {
    /// The bytes, hashed.
    pub fn new(bytes: Vec<u8>) -> Self {
        let hash = hash(&bytes);
        Self { bytes, hash }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The BLAKE3 hash of [`Self::bytes`].
    pub fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl<'a> RecordRef<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, RecordError> {
        if bytes.len() < HEADER_LEN + SIGNATURE_LEN {
            return Err(RecordError::TooShort(bytes.len()));
        }
        if bytes[0] != FORMAT_VERSION {
            return Err(RecordError::Version(bytes[0]));
        }
        let declared = u32::from_be_bytes(array(bytes, 61)) as usize;
        if declared > MAX_PAYLOAD_LEN || HEADER_LEN + declared + SIGNATURE_LEN != bytes.len() {
            return Err(RecordError::Length { declared, actual: bytes.len() });
        }
        let header = Header {
            seq: u64::from_be_bytes(array(bytes, 1)),
            time_micros: i64::from_be_bytes(array(bytes, 9)),
            prev_hash: array(bytes, 17),
            key_id: KeyId(array(bytes, 49)),
            kind: KindVersion {
                kind: u16::from_be_bytes(array(bytes, 57)),
                version: u16::from_be_bytes(array(bytes, 59)),
            },
        };
        Ok(Self { bytes, header, payload: &bytes[HEADER_LEN..HEADER_LEN + declared] })
    }

    /// The stored bytes, whole.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn signature(&self) -> Signature {
        Signature::from_bytes(&array(self.bytes, self.bytes.len() - SIGNATURE_LEN))
    }

    /// What the signature covers.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(&self.bytes[..self.bytes.len() - SIGNATURE_LEN])
    }

    pub fn hash(&self) -> [u8; 32] {
        hash(self.bytes)
    }

    pub fn verify_signature(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(&self.signed_message(), &self.signature()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(seq: u64, key: &LogKey) -> Header {
        Header {
            seq,
            time_micros: 1_700_000_000_000_000,
            prev_hash: [9; 32],
            key_id: key.id(),
            kind: KindVersion { kind: 16, version: 1 },
        }
    }

    proptest! {
        #[test]
        fn encode_parse_round_trips_and_any_flip_breaks_the_signature(
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            seq in any::<u64>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let key = LogKey::from_seed([1; 32]);
            let bytes = encode(&header(seq, &key), &payload, &key);
            let record = RecordRef::parse(&bytes).unwrap();
            prop_assert_eq!(record.header, header(seq, &key));
            prop_assert_eq!(record.payload, payload.as_slice());
            prop_assert!(record.verify_signature(&key.public()));
            let mut bad = bytes.clone();
            bad[flip.index(bytes.len())] ^= 0x20;
            // A flip either breaks the framing or the signature; never both pass.
            if let Ok(r) = RecordRef::parse(&bad) {
                prop_assert!(!r.verify_signature(&key.public()));
            }
        }
    }

    #[test]
    fn framing_errors_are_precise() {
        let key = LogKey::from_seed([1; 32]);
        let bytes = encode(&header(0, &key), b"abc", &key);
        assert_eq!(RecordRef::parse(&bytes[..10]).unwrap_err(), RecordError::TooShort(10));
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(RecordRef::parse(&v2).unwrap_err(), RecordError::Version(2));
        let longer = [bytes.as_slice(), &[0]].concat();
        assert!(matches!(RecordRef::parse(&longer), Err(RecordError::Length { declared: 3, .. })));
    }
}
