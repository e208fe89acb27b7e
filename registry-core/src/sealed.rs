//! The sealed section: personal data encrypted with XChaCha20-Poly1305, bound to the
//! person by the associated data: demographics and a date of death under the person's
//! own data key, an agency's record id under that agency's record key. The log signs
//! and hashes the ciphertext, so it verifies without the key, and destroying a
//! person's key erases their data without touching the history.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::PersonId;

/// The associated data that binds a sealed section to its person:
/// `"huduma.registry.v1.sealed" || 0x00 || person id (u64 BE)`.
fn associated_data(person: PersonId) -> [u8; 34] {
    let mut aad = [0u8; 34];
    aad[..26].copy_from_slice(b"huduma.registry.v1.sealed\0");
    aad[26..].copy_from_slice(&person.0.to_be_bytes());
    aad
}

/// A piece of personal data an event seals on its own, apart from the demographics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `DeathRecorded`'s date, under the person's data key.
    DateOfDeath,
    /// An agency's record id (`AgencyRecordLinked`, `AgencyRecordUnlinked`), under that
    /// agency's record key.
    AgencyRecordId,
}

impl Field {
    /// The name its associated data ends with.
    pub fn name(self) -> &'static str {
        match self {
            Field::DateOfDeath => "date_of_death",
            Field::AgencyRecordId => "agency_record_id",
        }
    }
}

/// The associated data of a sealed [`Field`]: the demographics' associated data, then
/// the field's name, so that no sealed value can be taken for another field's.
fn field_associated_data(person: PersonId, field: Field) -> Vec<u8> {
    [associated_data(person).as_slice(), field.name().as_bytes()].concat()
}

/// Opened bytes as the text they must be.
fn text(plain: Vec<u8>) -> Result<String, OpenError> {
    String::from_utf8(plain).map_err(|_| OpenError)
}

/// A fresh nonce from the thread's CSPRNG.
fn random_nonce() -> [u8; 24] {
    let mut nonce = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
    nonce
}

/// The associated data of a value sealed for a projection ([`Sealed::seal_projected`]).
fn projected_associated_data(binding: &[u8]) -> Vec<u8> {
    [b"huduma.registry.v1.projected\0".as_slice(), binding].concat()
}

/// A 256-bit key a section is sealed under: a person's own data key, or an agency's
/// record key (`Secrets::agency_record_key`). Zeroed when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct DataKey(pub [u8; 32]);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A fresh key from the thread's CSPRNG (ChaCha, seeded and periodically reseeded
    /// from the operating system): a syscall per key would cost more than the sealing.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut key);
        Self(key)
    }
}

/// Ciphertext and its 24-byte nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub nonce: [u8; 24],
    /// Encoded as a byte string: postcard's bytes are those of a `Vec<u8>` sequence.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// The sealed section could not be opened: wrong key, wrong person, or altered bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sealed section does not open under this person's key")]
pub struct OpenError;

impl Sealed {
    /// Encrypts `plaintext` for `person` under `key`, with a fresh random nonce.
    pub fn seal(key: &DataKey, person: PersonId, plaintext: &[u8]) -> Self {
        Self::seal_with_nonce(key, person, plaintext, random_nonce())
    }

    /// Encrypts with a given nonce. A nonce must never repeat under one key.
    pub fn seal_with_nonce(key: &DataKey, person: PersonId, plaintext: &[u8], nonce: [u8; 24]) -> Self {
        Self::seal_with(key, nonce, &associated_data(person), plaintext)
    }

    fn seal_with(key: &DataKey, nonce: [u8; 24], aad: &[u8], plaintext: &[u8]) -> Self {
        let cipher = XChaCha20Poly1305::new((&key.0).into());
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            // Encryption fails only for inputs beyond 256 GiB, which no caller makes.
            .unwrap_or_default();
        Self { nonce, ciphertext }
    }

    pub fn open(&self, key: &DataKey, person: PersonId) -> Result<Vec<u8>, OpenError> {
        self.open_with(key, &associated_data(person))
    }

    /// Encrypts one field of `person`'s under `key`, with a fresh random nonce: the
    /// associated data names the field too.
    pub fn seal_field(key: &DataKey, person: PersonId, field: Field, plaintext: &[u8]) -> Self {
        Self::seal_with(key, random_nonce(), &field_associated_data(person, field), plaintext)
    }

    /// Opens a field sealed by [`Sealed::seal_field`] for this person and field: its
    /// text (every field is UTF-8 text; bytes that are not do not open).
    pub fn open_field(&self, key: &DataKey, person: PersonId, field: Field) -> Result<String, OpenError> {
        text(self.open_with(key, &field_associated_data(person, field))?)
    }

    /// Seals `plaintext` for a projection, bound to `binding` (the field and what it
    /// belongs to) by the associated data `"huduma.registry.v1.projected" || 0x00 ||
    /// binding`. Deterministic, as a synthetic-IV scheme is: the nonce is the first 24
    /// bytes of `BLAKE3-keyed(n, binding || plaintext)`, `n` a key derived from `key`
    /// for nonces alone (`derive_key("huduma.registry.v1 projected nonce", key)`), so
    /// that a rebuild writes the bytes the live fold wrote; one key never seals two
    /// plaintexts under one nonce, and equal plaintexts under one binding seal equally
    /// (all they tell).
    pub fn seal_projected(key: &DataKey, binding: &[u8], plaintext: &[u8]) -> Self {
        let nonce_key = blake3::derive_key("huduma.registry.v1 projected nonce", &key.0);
        let mut hasher = blake3::Hasher::new_keyed(&nonce_key);
        hasher.update(binding);
        hasher.update(plaintext);
        let mut nonce = [0u8; 24];
        nonce.copy_from_slice(&hasher.finalize().as_bytes()[..24]);
        Self::seal_with(key, nonce, &projected_associated_data(binding), plaintext)
    }

    /// Opens what [`Sealed::seal_projected`] sealed with this key and binding: its text
    /// (projections seal UTF-8 text only; bytes that are not do not open).
    pub fn open_projected(&self, key: &DataKey, binding: &[u8]) -> Result<String, OpenError> {
        text(self.open_with(key, &projected_associated_data(binding))?)
    }

    fn open_with(&self, key: &DataKey, aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        let cipher = XChaCha20Poly1305::new((&key.0).into());
        cipher.decrypt(XNonce::from_slice(&self.nonce), Payload { msg: &self.ciphertext, aad }).map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_for_its_key_and_person() {
        let key = DataKey::generate();
        let sealed = Sealed::seal(&key, PersonId(7), b"Wanjiru Kamau");
        assert_eq!(sealed.open(&key, PersonId(7)).unwrap(), b"Wanjiru Kamau");
        assert_eq!(sealed.open(&key, PersonId(8)), Err(OpenError));
        assert_eq!(sealed.open(&DataKey::generate(), PersonId(7)), Err(OpenError));
        let mut altered = sealed.clone();
        altered.ciphertext[0] ^= 1;
        assert_eq!(altered.open(&key, PersonId(7)), Err(OpenError));
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"Wanjiru"), "no plaintext in the ciphertext");
    }

    #[test]
    fn a_field_opens_only_as_itself() {
        let key = DataKey::generate();
        let sealed = Sealed::seal_field(&key, PersonId(7), Field::DateOfDeath, b"2024-01-31");
        assert_eq!(sealed.open_field(&key, PersonId(7), Field::DateOfDeath).unwrap(), "2024-01-31");
        assert_eq!(sealed.open_field(&key, PersonId(7), Field::AgencyRecordId), Err(OpenError));
        assert_eq!(sealed.open_field(&key, PersonId(8), Field::DateOfDeath), Err(OpenError));
        assert_eq!(sealed.open(&key, PersonId(7)), Err(OpenError), "a field is never taken for demographics");
        let demographics = Sealed::seal(&key, PersonId(7), b"Wanjiru Kamau");
        assert_eq!(
            demographics.open_field(&key, PersonId(7), Field::DateOfDeath),
            Err(OpenError),
            "nor demographics for a field"
        );
    }

    #[test]
    fn a_projected_value_seals_the_same_each_time_and_opens_only_for_its_binding() {
        let key = DataKey::generate();
        let sealed = Sealed::seal_projected(&key, b"agency_record_id/1", b"A012345678Z");
        assert_eq!(sealed, Sealed::seal_projected(&key, b"agency_record_id/1", b"A012345678Z"), "deterministic");
        assert_ne!(sealed.nonce, Sealed::seal_projected(&key, b"agency_record_id/1", b"A012345678Y").nonce);
        assert_ne!(sealed.nonce, Sealed::seal_projected(&key, b"agency_record_id/2", b"A012345678Z").nonce);
        assert_eq!(sealed.open_projected(&key, b"agency_record_id/1").unwrap(), "A012345678Z");
        assert_eq!(sealed.open_projected(&key, b"agency_record_id/2"), Err(OpenError));
        assert_eq!(sealed.open_projected(&DataKey::generate(), b"agency_record_id/1"), Err(OpenError));
        assert_eq!(sealed.open(&key, PersonId(1)), Err(OpenError));
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"A01234"), "no plaintext in the ciphertext");
    }

    /// The stored form LOG-FORMAT.md gives: the 24 nonce bytes, the ciphertext's
    /// length as a varint, then its bytes (as a `Vec<u8>` sequence encodes).
    #[test]
    fn encodes_as_the_log_format_says() {
        for len in [0usize, 1, 127, 128, 300, 16_384] {
            let sealed = Sealed { nonce: [9; 24], ciphertext: (0..len).map(|i| i as u8).collect() };
            let mut expected = vec![9; 24];
            let mut n = len;
            while n >= 0x80 {
                expected.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            expected.push(n as u8);
            expected.extend(&sealed.ciphertext);
            let encoded = postcard::to_allocvec(&sealed).unwrap();
            assert_eq!(encoded, expected, "length {len}");
            assert_eq!(encoded, postcard::to_allocvec(&(sealed.nonce, &sealed.ciphertext)).unwrap());
            assert_eq!(postcard::from_bytes::<Sealed>(&encoded).unwrap(), sealed);
        }
    }
}
