//! The keyring: each person's data key, sealed under the keyring key derived from the
//! master secret, stored outside the log (tree `keyring`). Erasure replaces a key with
//! a tombstone, so a later fold knows the person's data was erased on purpose rather
//! than lost. A person whose key was lost (registered in records a restore took back
//! without their keys: `tail_import`) has the same tombstone until their data is
//! enrolled again, which gives them a renewed key, in force from that record on.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::PersonId;
use crate::sealed::DataKey;

const TAG_ERASED: u8 = 0;
const TAG_KEY: u8 = 1;
const TAG_RENEWED: u8 = 2;

/// The record number that asks [`KeyringEntry::for_record`] for the key in force.
pub const IN_FORCE: u64 = u64::MAX;

/// What the keyring holds for a person.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyringEntry {
    Key(DataKey),
    Erased,
    /// A key given to a person whose first key was lost, when their data was enrolled
    /// again by the record `from_seq`: it seals what that record and later ones seal;
    /// what earlier records sealed was under the lost key, and stays unreadable.
    Renewed {
        key: DataKey,
        from_seq: u64,
    },
}

impl KeyringEntry {
    /// The key that opens what the record `seq` sealed for the person; `None` when
    /// that key is erased or lost.
    pub fn for_record(self, seq: u64) -> Option<DataKey> {
        match self {
            KeyringEntry::Key(key) => Some(key),
            KeyringEntry::Renewed { key, from_seq } if seq >= from_seq => Some(key),
            KeyringEntry::Renewed { .. } | KeyringEntry::Erased => None,
        }
    }

    /// The key in force: what the next record seals with, and what opens the data the
    /// projections hold for the person now (sealed by the newest record that set it,
    /// which a renewal's own record is, as a store never holds a renewal past its log:
    /// `online_backup` leaves such a one out).
    pub fn in_force(self) -> Option<DataKey> {
        match self {
            KeyringEntry::Key(key) | KeyringEntry::Renewed { key, .. } => Some(key),
            KeyringEntry::Erased => None,
        }
    }
}

/// Why a keyring entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("keyring entry of person {0} does not open under the master secret (wrong secret or altered)")]
    Unsealable(u64),
    #[error("keyring entry of person {0} is malformed")]
    Malformed(u64),
}

/// The associated data of a person's entry: the domain, the person, and for a renewed
/// key the record it is in force from (so that no one moves that record unseen).
fn aad(person: PersonId, from_seq: Option<u64>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(43);
    aad.extend_from_slice(b"huduma.registry.v1.keyring\0");
    aad.extend_from_slice(&person.0.to_be_bytes());
    if let Some(from_seq) = from_seq {
        aad.extend_from_slice(&from_seq.to_be_bytes());
    }
    aad
}

fn seal_key(keyring_key: &[u8; 32], key: &DataKey, aad: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
    let cipher = XChaCha20Poly1305::new(keyring_key.into());
    let ciphertext = cipher.encrypt(XNonce::from_slice(&nonce), Payload { msg: &key.0, aad }).unwrap_or_default();
    let mut out = Vec::with_capacity(24 + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    out
}

fn open_key(keyring_key: &[u8; 32], person: PersonId, sealed: &[u8], aad: &[u8]) -> Result<DataKey, KeyringError> {
    if sealed.len() != 24 + 48 {
        return Err(KeyringError::Malformed(person.0));
    }
    let (nonce, ciphertext) = sealed.split_at(24);
    let cipher = XChaCha20Poly1305::new(keyring_key.into());
    let plain = cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad })
        .map_err(|_| KeyringError::Unsealable(person.0))?;
    let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| KeyringError::Malformed(person.0))?;
    Ok(DataKey(key))
}

/// The stored form of a person's key: `0x01 || nonce (24) || ciphertext (48)`.
pub fn seal_entry(keyring_key: &[u8; 32], person: PersonId, key: &DataKey) -> Vec<u8> {
    [&[TAG_KEY][..], &seal_key(keyring_key, key, &aad(person, None))].concat()
}

/// The stored form of a renewed key, in force from record `from_seq`:
/// `0x02 || from_seq (8, big-endian) || nonce (24) || ciphertext (48)`.
pub fn seal_renewed_entry(keyring_key: &[u8; 32], person: PersonId, key: &DataKey, from_seq: u64) -> Vec<u8> {
    let sealed = seal_key(keyring_key, key, &aad(person, Some(from_seq)));
    [&[TAG_RENEWED][..], &from_seq.to_be_bytes(), &sealed].concat()
}

/// The record a stored renewed key is in force from, read without opening it; `None`
/// for any other entry.
pub fn renewed_from(stored: &[u8]) -> Option<u64> {
    match stored {
        [TAG_RENEWED, rest @ ..] => rest.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()).map(u64::from_be_bytes),
        _ => None,
    }
}

/// The stored tombstone of an erased (or lost) person's key: `0x00`.
pub fn erased_entry() -> Vec<u8> {
    vec![TAG_ERASED]
}

pub fn open_entry(keyring_key: &[u8; 32], person: PersonId, stored: &[u8]) -> Result<KeyringEntry, KeyringError> {
    match stored {
        [TAG_ERASED] => Ok(KeyringEntry::Erased),
        [TAG_KEY, rest @ ..] => Ok(KeyringEntry::Key(open_key(keyring_key, person, rest, &aad(person, None))?)),
        [TAG_RENEWED, rest @ ..] if rest.len() >= 8 => {
            let (from, sealed) = rest.split_at(8);
            let from_seq =
                u64::from_be_bytes(<[u8; 8]>::try_from(from).map_err(|_| KeyringError::Malformed(person.0))?);
            let key = open_key(keyring_key, person, sealed, &aad(person, Some(from_seq)))?;
            Ok(KeyringEntry::Renewed { key, from_seq })
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
        assert_eq!(open_entry(&master, PersonId(5), &stored[..40]), Err(KeyringError::Malformed(5)));
    }

    #[test]
    fn a_renewed_key_is_bound_to_the_person_and_the_record_it_is_in_force_from() {
        let master = [3u8; 32];
        let key = DataKey::generate();
        let stored = seal_renewed_entry(&master, PersonId(5), &key, 700);
        assert_eq!(renewed_from(&stored), Some(700));
        assert_eq!(renewed_from(&seal_entry(&master, PersonId(5), &key)), None);
        let opened = open_entry(&master, PersonId(5), &stored);
        assert_eq!(opened, Ok(KeyringEntry::Renewed { key: DataKey(key.0), from_seq: 700 }));
        assert_eq!(open_entry(&master, PersonId(6), &stored), Err(KeyringError::Unsealable(6)));
        // Moved to another record: refused, not read as in force from there.
        let mut moved = stored.clone();
        moved[1..9].copy_from_slice(&699u64.to_be_bytes());
        assert_eq!(open_entry(&master, PersonId(5), &moved), Err(KeyringError::Unsealable(5)));
        assert_eq!(open_entry(&master, PersonId(5), &stored[..5]), Err(KeyringError::Malformed(5)));
    }

    #[test]
    fn a_renewed_key_opens_only_what_its_record_and_later_ones_sealed() {
        let key = DataKey::generate();
        let renewed = || KeyringEntry::Renewed { key: DataKey(key.0), from_seq: 700 };
        assert_eq!(renewed().for_record(699), None, "sealed under the lost key");
        assert_eq!(renewed().for_record(700), Some(DataKey(key.0)));
        assert_eq!(renewed().for_record(9_000), Some(DataKey(key.0)));
        assert_eq!(renewed().in_force(), Some(DataKey(key.0)));
        assert_eq!(KeyringEntry::Key(DataKey(key.0)).for_record(0), Some(DataKey(key.0)));
        assert_eq!(KeyringEntry::Erased.for_record(9_000), None);
        assert_eq!(KeyringEntry::Erased.in_force(), None);
    }
}
