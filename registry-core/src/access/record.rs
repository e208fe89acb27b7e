//! One access record's sealed body: what a look-up was, sealed under the registry's
//! access seal key or the person's data key, and opened again by the registry. The
//! clear envelope that chains the records, and its byte layout, are `huduma_log::access`
//! (shared with auditors' tools); docs/LOG-FORMAT.md, section 12, is the spec.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

pub use huduma_log::access::{AccessHeader, HEADER_LEN, SealedUnder, parse};
use huduma_log::access::{ENVELOPE_LEN, Malformed};

use crate::PersonId;
use crate::query::ResolvedStatus;

/// The associated-data prefix of the sealed body.
const AAD_TAG: &[u8] = b"huduma.access.v1\0";

/// Which RPC looked the person up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessCall {
    Resolve,
    VerifyAttributes,
    /// A duplicate search (FindDuplicates, or a refused registration) found the person.
    FindDuplicates,
    /// The person's history (what changed them, when, by whom) was read.
    History,
}

/// The key the caller named the person by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyUsed {
    HudumaNumber(String),
    AgencyRecord {
        agency: String,
        record_id: String,
    },
    AgencyToken {
        agency: String,
        token: String,
    },
    /// Demographics searched for (not recorded: they are another person's, or this
    /// person's own).
    Demographics,
}

impl KeyUsed {
    /// The key's kind and the agency it belongs to, without its value (what a citizen
    /// portal is shown: the value would link one agency's identifiers to another's).
    pub fn kind(&self) -> (&'static str, Option<&str>) {
        match self {
            KeyUsed::HudumaNumber(_) => ("huduma_number", None),
            KeyUsed::AgencyRecord { agency, .. } => ("agency_record", Some(agency)),
            KeyUsed::AgencyToken { agency, .. } => ("agency_token", Some(agency)),
            KeyUsed::Demographics => ("demographics", None),
        }
    }
}

/// What the look-up answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessOutcome {
    Found(ResolvedStatus),
    NotFound,
}

/// Everything recorded about one look-up. Sealed in the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessBody {
    pub call: AccessCall,
    /// The principal's name, role and agency (empty for registrars and admins).
    pub principal: String,
    pub role: String,
    pub agency: String,
    pub purpose: String,
    pub key: KeyUsed,
    pub outcome: AccessOutcome,
    /// For VerifyAttributes: each claimed attribute and whether it matched.
    pub attributes: Vec<(String, bool)>,
}

/// A look-up to record: the person it found, if any, and what it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEvent {
    pub person: Option<PersonId>,
    pub body: AccessBody,
}

/// Why stored bytes are not an access record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessRecordError {
    #[error(transparent)]
    Malformed(#[from] Malformed),
    #[error("access record {0}: the body does not open (wrong key, or altered)")]
    Unsealable(u64),
}

/// The subject hash that stands for `person` in the access log.
pub fn subject(subject_key: &[u8; 32], person: PersonId) -> [u8; 32] {
    *blake3::keyed_hash(subject_key, &person.0.to_be_bytes()).as_bytes()
}

fn aad(header: &[u8]) -> Vec<u8> {
    [AAD_TAG, header].concat()
}

/// The stored bytes of a record: the envelope, then `body` sealed under `key` with a
/// fresh random nonce.
pub fn seal(header: &AccessHeader, key: &[u8; 32], body: &AccessBody) -> Vec<u8> {
    let head = header.to_bytes();
    let mut nonce = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
    let plain = postcard::to_allocvec(body).unwrap_or_default();
    let cipher = XChaCha20Poly1305::new(key.into());
    let aad = aad(&head);
    // Encryption fails only past the cipher's length limit (256 GiB): an empty
    // ciphertext would then be refused on reading, never served as a body.
    let sealed = cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad }).unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens a record's body under `key`.
pub fn open(bytes: &[u8], key: &[u8; 32]) -> Result<AccessBody, AccessRecordError> {
    let header = parse(bytes)?;
    let (head, rest) = bytes.split_at(ENVELOPE_LEN);
    let (nonce, sealed) = rest.split_at(24);
    let cipher = XChaCha20Poly1305::new(key.into());
    let plain = cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: &aad(head) })
        .map_err(|_| AccessRecordError::Unsealable(header.seq))?;
    postcard::from_bytes(&plain).map_err(|_| Malformed("the body does not decode").into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body() -> AccessBody {
        AccessBody {
            call: AccessCall::Resolve,
            principal: "kra-gateway".into(),
            role: "agency".into(),
            agency: "KRA".into(),
            purpose: "annual return".into(),
            key: KeyUsed::AgencyRecord { agency: "KRA".into(), record_id: "A001".into() },
            outcome: AccessOutcome::Found(ResolvedStatus::Active),
            attributes: vec![],
        }
    }

    fn header() -> AccessHeader {
        AccessHeader {
            seq: 7,
            time_ms: 1_790_000_000_000,
            prev: [1; 32],
            subject: subject(&[2; 32], PersonId(42)),
            sealed_under: SealedUnder::Person,
        }
    }

    #[test]
    fn a_record_round_trips_and_opens_only_under_its_key() {
        let bytes = seal(&header(), &[9; 32], &body());
        assert_eq!(parse(&bytes), Ok(header()));
        assert_eq!(open(&bytes, &[9; 32]), Ok(body()));
        assert_eq!(open(&bytes, &[8; 32]), Err(AccessRecordError::Unsealable(7)));
        // Nothing of the body is in the clear.
        assert!(!bytes.windows(4).any(|w| w == b"A001"));
        assert!(!bytes.windows(13).any(|w| w == b"annual return"));
    }

    #[test]
    fn subjects_are_keyed_and_distinct() {
        assert_ne!(subject(&[2; 32], PersonId(1)), subject(&[2; 32], PersonId(2)));
        assert_ne!(subject(&[2; 32], PersonId(1)), subject(&[3; 32], PersonId(1)));
    }

    proptest! {
        /// Any change to any byte is noticed: in the envelope by the body's
        /// associated data, in the body by its tag (and by the chain, elsewhere).
        #[test]
        fn flipping_any_byte_stops_the_body_opening(at in 0usize..200, bit in 0u8..8) {
            let mut bytes = seal(&header(), &[9; 32], &body());
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
            prop_assert!(open(&bytes, &[9; 32]).is_err());
        }

        /// Parsing arbitrary bytes never panics.
        #[test]
        fn parsing_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
            let _ = open(&bytes, &[9; 32]);
        }
    }
}
