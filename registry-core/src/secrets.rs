//! The registry's master secret and the keys derived from it: the keyring key (seals
//! each person's data key), the number-permutation key, the match-key hashing key, and
//! the keys agencies' record ids are sealed under in the log.
//! The master secret lives in a file outside the data directory; losing it loses all
//! personal data, so operators back it up apart from the data.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::{Zeroize, ZeroizeOnDrop};

const FILE_HEADER: &str = "huduma-master-secret v1";

/// Why the secrets could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("master secret file {path}: {reason}")]
    File { path: String, reason: String },
}

/// 16 bytes of `BLAKE3-keyed(key, first || 0x00 || second)`: what stands for a pair of
/// names (neither may hold a 0x00) where they must not be kept in clear.
fn pair_hash(key: &[u8; 32], first: &str, second: &str) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(first.as_bytes());
    hasher.update(&[0]);
    hasher.update(second.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    out
}

/// The derived keys. Zeroed when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secrets {
    master: [u8; 32],
    keyring: [u8; 32],
    number: [u8; 32],
    match_keys: [u8; 32],
    agency_tokens: [u8; 32],
    access_subjects: [u8; 32],
    access_seal: [u8; 32],
    agency_records: [u8; 32],
    agency_links: [u8; 32],
    request_index: [u8; 32],
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// Derives every key from one 32-byte master secret with BLAKE3's key derivation.
    pub fn from_master(master: [u8; 32]) -> Self {
        Self {
            keyring: blake3::derive_key("huduma.registry.v1 keyring", &master),
            number: blake3::derive_key("huduma.registry.v1 number permutation", &master),
            match_keys: blake3::derive_key("huduma.registry.v1 match keys", &master),
            agency_tokens: blake3::derive_key("huduma.registry.v1 agency tokens", &master),
            access_subjects: blake3::derive_key("huduma.registry.v1 access subjects", &master),
            access_seal: blake3::derive_key("huduma.registry.v1 access seal", &master),
            agency_records: blake3::derive_key("huduma.registry.v1 agency record ids", &master),
            agency_links: blake3::derive_key("huduma.registry.v1 agency links", &master),
            request_index: blake3::derive_key("huduma.registry.v1 request index", &master),
            master,
        }
    }

    /// A fresh master secret from the operating system's random source.
    pub fn generate() -> Self {
        let mut master = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut master);
        Self::from_master(master)
    }

    /// A public fingerprint of the master secret (16 bytes of a BLAKE3 key derivation),
    /// stored with the data so that the registry refuses to run under other secrets:
    /// another secret would mean another number permutation (numbers could repeat)
    /// and a keyring that does not open.
    pub fn fingerprint(&self) -> [u8; 16] {
        let derived = blake3::derive_key("huduma.registry.v1 secrets fingerprint", &self.master);
        let mut out = [0u8; 16];
        out.copy_from_slice(&derived[..16]);
        out
    }

    /// Seals each person's data key.
    pub fn keyring_key(&self) -> &[u8; 32] {
        &self.keyring
    }

    /// Keys the number permutation (AES-128: the first 16 bytes).
    pub fn number_key(&self) -> [u8; 16] {
        let mut key = [0u8; 16];
        key.copy_from_slice(&self.number[..16]);
        key
    }

    /// The key every agency's token key is derived from (see `agency_token`).
    pub fn agency_token_key(&self) -> &[u8; 32] {
        &self.agency_tokens
    }

    /// Keys the subject hash that stands for a person in the access log.
    pub fn access_subject_key(&self) -> &[u8; 32] {
        &self.access_subjects
    }

    /// Seals access records that concern no person with a data key (nobody found, or
    /// an erased person).
    pub fn access_seal_key(&self) -> &[u8; 32] {
        &self.access_seal
    }

    /// The key `agency`'s record ids are sealed under in the log's link events:
    /// `BLAKE3-keyed(derive_key("huduma.registry.v1 agency record ids", master), agency)`.
    /// One key per agency, never a person's: an agency's own id for a person stays
    /// readable to the registry after the person's data key is destroyed, so that the
    /// agency can be told which of its records an erasure concerned, and unreadable to
    /// anyone without the master secret (auditors among them).
    pub fn agency_record_key(&self, agency: &str) -> crate::sealed::DataKey {
        crate::sealed::DataKey(*blake3::keyed_hash(&self.agency_records, agency.as_bytes()).as_bytes())
    }

    /// What stands for `agency`'s record `record_id` in the `agency_links` projection:
    /// 16 bytes of `BLAKE3-keyed(derive_key("huduma.registry.v1 agency links", master),
    /// agency || 0x00 || record_id)`, so that the data directory holds no agency's id
    /// for anyone in clear.
    pub fn agency_link_hash(&self, agency: &str, record_id: &str) -> [u8; 16] {
        pair_hash(&self.agency_links, agency, record_id)
    }

    /// The `requests` key of `principal`'s request `request_id`: 16 bytes of
    /// `BLAKE3-keyed(derive_key("huduma.registry.v1 request index", master),
    /// principal || 0x00 || request_id)`. Callers choose their request ids, and may put
    /// anything in them: none is kept in clear.
    pub fn request_key(&self, principal: &str, request_id: &str) -> [u8; 16] {
        pair_hash(&self.request_index, principal, request_id)
    }

    /// Keys the hashes that stand for demographics in the match-key projection.
    pub fn match_key(&self) -> &[u8; 32] {
        &self.match_keys
    }

    /// Writes the master secret to `path` (mode 0600 on Unix), refusing to overwrite.
    pub fn save(&self, path: &Path) -> Result<(), SecretsError> {
        let err = |reason: String| SecretsError::File { path: path.display().to_string(), reason };
        let text = format!("{FILE_HEADER}\n{}\n", B64.encode(self.master));
        write_private_file(path, text.as_bytes()).map_err(|e| err(e.to_string()))
    }

    pub fn load(path: &Path) -> Result<Self, SecretsError> {
        let err = |reason: &str| SecretsError::File { path: path.display().to_string(), reason: reason.into() };
        let text = std::fs::read_to_string(path).map_err(|e| err(&e.to_string()))?;
        let mut lines = text.lines();
        if lines.next() != Some(FILE_HEADER) {
            return Err(err("first line is not the master secret header"));
        }
        let mut bytes =
            B64.decode(lines.next().unwrap_or_default().trim()).map_err(|_| err("second line is not base64"))?;
        let master: [u8; 32] = bytes.as_slice().try_into().map_err(|_| err("the secret is not 32 bytes"))?;
        bytes.zeroize();
        Ok(Self::from_master(master))
    }
}

/// Creates `path` with owner-only permissions; fails if it exists.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_and_refuse_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.secret");
        let secrets = Secrets::generate();
        secrets.save(&path).unwrap();
        let loaded = Secrets::load(&path).unwrap();
        assert_eq!(loaded.keyring_key(), secrets.keyring_key());
        assert_eq!(loaded.number_key(), secrets.number_key());
        assert!(secrets.save(&path).is_err(), "an existing secret is never overwritten");
        assert_ne!(secrets.keyring_key(), secrets.match_key(), "derived keys are separated");
    }
}
