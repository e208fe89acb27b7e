//! The log key: the Ed25519 key that signs records (and, later, checkpoints), its short
//! id as written in records, and its C2SP signed-note forms (verifier key and private
//! key), so that standard note tools can read them.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
/// The public half of a log key, re-exported so callers need not depend on the crate.
pub use ed25519_dalek::VerifyingKey;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

/// The signed-note signature type byte for Ed25519.
const NOTE_ALG_ED25519: u8 = 0x01;

/// The 8-byte id of a log key as written in every record:
/// `BLAKE3("huduma.registry.v1.key-id" || 0x00 || public key)[0..8]`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    pub fn of(public: &VerifyingKey) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"huduma.registry.v1.key-id\0");
        hasher.update(public.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
        Self(id)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId(")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// Why a key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("malformed key: {0}")]
    Format(String),
}

/// The log's signing key. Its secret half never leaves this type except as a
/// signed-note private key string for the key file.
#[derive(Clone)]
pub struct LogKey {
    signing: SigningKey,
}

impl fmt::Debug for LogKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogKey({:?})", self.id())
    }
}

impl LogKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        Self { signing: SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    /// A key from its 32-byte seed (tests and fixtures).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { signing: SigningKey::from_bytes(&seed) }
    }

    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub fn id(&self) -> KeyId {
        KeyId::of(&self.public())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// The key in signed-note private-key form: `PRIVATE+KEY+name+hash+base64(0x01||seed)`.
    pub fn to_note_private_key(&self, name: &str) -> String {
        let mut body = vec![NOTE_ALG_ED25519];
        body.extend_from_slice(self.signing.as_bytes());
        format!("PRIVATE+KEY+{name}+{:08x}+{}", note_key_hash(name, &self.public()), B64.encode(body))
    }

    /// Reads a signed-note private key, checking its hash against its name.
    pub fn from_note_private_key(text: &str) -> Result<(String, Self), KeyError> {
        let text = text.trim();
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| KeyError::Format("does not start with PRIVATE+KEY+".into()))?;
        let (name, hash, body) = split_note_key(rest)?;
        let body = B64.decode(body).map_err(|e| KeyError::Format(format!("base64: {e}")))?;
        let seed: [u8; 32] = match body.as_slice() {
            [NOTE_ALG_ED25519, seed @ ..] => {
                seed.try_into().map_err(|_| KeyError::Format("an Ed25519 seed has 32 bytes".into()))?
            }
            _ => return Err(KeyError::Format("not an Ed25519 (0x01) key".into())),
        };
        let key = Self::from_seed(seed);
        if note_key_hash(name, &key.public()) != hash {
            return Err(KeyError::Format("key hash does not match the name and key".into()));
        }
        Ok((name.to_string(), key))
    }
}

/// The C2SP signed-note key hash: `SHA-256(name || "\n" || 0x01 || public key)[0..4]`.
pub fn note_key_hash(name: &str, public: &VerifyingKey) -> u32 {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([NOTE_ALG_ED25519]);
    hasher.update(public.as_bytes());
    let digest = hasher.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The public key in signed-note verifier-key form: `name+hash+base64(0x01||key)`.
pub fn note_verifier_key(name: &str, public: &VerifyingKey) -> String {
    let mut body = vec![NOTE_ALG_ED25519];
    body.extend_from_slice(public.as_bytes());
    format!("{name}+{:08x}+{}", note_key_hash(name, public), B64.encode(body))
}

/// Reads a signed-note verifier key, checking its hash against its name.
pub fn parse_note_verifier_key(text: &str) -> Result<(String, VerifyingKey), KeyError> {
    let (name, hash, body) = split_note_key(text.trim())?;
    let body = B64.decode(body).map_err(|e| KeyError::Format(format!("base64: {e}")))?;
    let public = match body.as_slice() {
        [NOTE_ALG_ED25519, key @ ..] => {
            let bytes: [u8; 32] = key.try_into().map_err(|_| KeyError::Format("an Ed25519 key has 32 bytes".into()))?;
            VerifyingKey::from_bytes(&bytes).map_err(|e| KeyError::Format(format!("Ed25519 key: {e}")))?
        }
        _ => return Err(KeyError::Format("not an Ed25519 (0x01) key".into())),
    };
    if note_key_hash(name, &public) != hash {
        return Err(KeyError::Format("key hash does not match the name and key".into()));
    }
    Ok((name.to_string(), public))
}

fn split_note_key(text: &str) -> Result<(&str, u32, &str), KeyError> {
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(hash), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::Format("expected name+hash+key".into()));
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(KeyError::Format("the key name is empty or has spaces or '+'".into()));
    }
    if hash.len() != 8 {
        return Err(KeyError::Format("the key hash has 8 hex digits".into()));
    }
    let hash = u32::from_str_radix(hash, 16).map_err(|_| KeyError::Format("the key hash is not hex".into()))?;
    Ok((name, hash, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_forms_round_trip_and_reject_a_wrong_name() {
        let key = LogKey::from_seed([7; 32]);
        let skey = key.to_note_private_key("registry.example/log");
        let (name, back) = LogKey::from_note_private_key(&skey).unwrap();
        assert_eq!(name, "registry.example/log");
        assert_eq!(back.public(), key.public());
        let vkey = note_verifier_key(&name, &key.public());
        assert_eq!(parse_note_verifier_key(&vkey).unwrap().1, key.public());
        let renamed = vkey.replacen("registry.example/log", "other.example/log", 1);
        assert!(parse_note_verifier_key(&renamed).is_err());
    }

    /// The example key and signed note of Go's golang.org/x/mod/sumdb/note (the
    /// reference implementation of C2SP signed-note), byte for byte.
    #[test]
    fn matches_the_go_sumdb_note_reference_vector() {
        const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
        const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
        const TEXT: &str =
            "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
        const SIG: &str =
            "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";
        let (name, key) = LogKey::from_note_private_key(SKEY).unwrap();
        assert_eq!(name, "PeterNeumann");
        assert_eq!(note_verifier_key(&name, &key.public()), VKEY);
        assert_eq!(key.to_note_private_key(&name), SKEY);
        let mut blob = note_key_hash(&name, &key.public()).to_be_bytes().to_vec();
        blob.extend_from_slice(&key.sign(TEXT.as_bytes()));
        assert_eq!(B64.encode(blob), SIG);
    }
}
