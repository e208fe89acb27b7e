//! The keyring: each person's data key, sealed under the keyring key derived from the
//! master secret, stored outside the log (tree `keyring`). Erasure replaces a key with
//! a tombstone, so a later fold knows the person's data was erased on purpose rather
//! than lost.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::PersonId;
use crate::sealed::DataKey;

const TAG_ERASED: u8 = 0;
const TAG_KEY: u8 = 1;

/// What the keyring holds for a person.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyringEntry {
    Key(DataKey),
    Erased,
}

/// Why a keyring entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("keyring entry of person {0} does not open under the master secret (wrong secret or altered)")]
    Unsealable(u64),
    #[error("keyring entry of person {0} is malformed")]
    Malformed(u64),
}

fn aad(person: PersonId) -> [u8; 35] {
    let mut aad = [0u8; 35];
    aad[..27].copy_from_slice(b"huduma.registry.v1.keyring\0");
    aad[27..].copy_from_slice(&person.0.to_be_bytes());
    aad
}

/// The stored form of a person's key: `0x01 || nonce (24) || ciphertext (48)`.
pub fn seal_entry(keyring_key: &[u8; 32], person: PersonId, key: &DataKey) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
    let cipher = XChaCha20Poly1305::new(keyring_key.into());
    let aad = aad(person);
    let ciphertext = cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: &key.0, aad: &aad }).unwrap_or_default();
    let mut out = Vec::with_capacity(1 + 24 + ciphertext.len());
    out.push(TAG_KEY);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

/// The stored tombstone of an erased person's key: `0x00`.
pub fn erased_entry() -> Vec<u8> {
    vec![TAG_ERASED]
}

pub fn open_entry(keyring_key: &[u8; 32], person: PersonId, stored: &[u8]) -> Result<KeyringEntry, KeyringError> {
    match stored {
        [TAG_ERASED] => Ok(KeyringEntry::Erased),
        [TAG_KEY, rest @ ..] if rest.len() == 24 + 48 => {
            let (nonce, ciphertext) = rest.split_at(24);
            let cipher = XChaCha20Poly1305::new(keyring_key.into());
            let aad = aad(person);
            let plain = cipher
                .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
                .map_err(|_| KeyringError::Unsealable(person.0))?;
            let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| KeyringError::Malformed(person.0))?;
            Ok(KeyringEntry::Key(DataKey(key)))
        }
        _ => Err(KeyringError::Malformed(person.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_are_bound_to_the_person() {
        let master = [3u8; 32];
        let key = DataKey::generate();
        let stored = seal_entry(&master, PersonId(5), &key);
        assert_eq!(open_entry(&master, PersonId(5), &stored), Ok(KeyringEntry::Key(key)));
        assert_eq!(open_entry(&master, PersonId(6), &stored), Err(KeyringError::Unsealable(6)));
        assert_eq!(open_entry(&[4u8; 32], PersonId(5), &stored), Err(KeyringError::Unsealable(5)));
        assert_eq!(open_entry(&master, PersonId(5), &erased_entry()), Ok(KeyringEntry::Erased));
        assert_eq!(open_entry(&master, PersonId(5), &[9, 9]), Err(KeyringError::Malformed(5)));
    }
}
