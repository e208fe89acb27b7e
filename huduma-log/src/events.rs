//! The log-level events a verifier must read to follow the log's keys (record 0,
//! `LogInitialized`, and `LogKeyRotated`), the actor every event names, the event kind
//! codes, and strict payload decoding. The person events live in registry-core.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Who caused an event, and the centre or agency it came through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The authenticated principal (a registrar, an agency system, an operator).
    pub principal: String,
    /// The Huduma centre, registry office or agency code the command came through.
    pub via: String,
}

/// Record 0 of every log: the log's origin and its genesis key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogInitialized {
    pub origin: String,
    pub public_key: [u8; 32],
}

/// The log key changes. Signed (as a record) by the old key; `new_key_signature` is the
/// new key's signature over [`ROTATION_DOMAIN`] || old key || new key, proving the new
/// key's holder agreed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogKeyRotated {
    pub actor: Actor,
    pub new_public_key: [u8; 32],
    pub new_key_signature: Vec<u8>,
}

/// Prefixed to the bytes the new key signs when it consents to a rotation.
pub const ROTATION_DOMAIN: &[u8] = b"huduma.registry.v1.key-rotation\0";

/// An event's kind code and schema version, as written in the record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindVersion {
    pub kind: u16,
    pub version: u16,
}

/// Kind codes. Never renumbered; a retired kind's code is never reused.
pub mod kind {
    pub const LOG_INITIALIZED: u16 = 1;
    pub const LOG_KEY_ROTATED: u16 = 2;
    pub const PERSON_REGISTERED: u16 = 16;
    pub const NUMBER_REPLACED: u16 = 17;
    pub const DEMOGRAPHICS_CORRECTED: u16 = 18;
    pub const AGENCY_RECORD_LINKED: u16 = 19;
    pub const AGENCY_RECORD_UNLINKED: u16 = 20;
    pub const DEATH_RECORDED: u16 = 21;
    pub const NUMBER_REVOKED: u16 = 22;
    pub const NUMBER_REINSTATED: u16 = 23;
    pub const RECORDS_MERGED: u16 = 24;
    pub const PERSONAL_DATA_ERASED: u16 = 25;
    pub const RECORDS_UNMERGED: u16 = 26;
    pub const DEATH_RETRACTED: u16 = 27;
}

/// Why a payload does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    #[error("unknown event kind {kind} version {version}")]
    Unknown { kind: u16, version: u16 },
    #[error("event kind {kind} version {version}: {reason}")]
    Malformed { kind: u16, version: u16, reason: String },
}

/// Encodes a payload (postcard).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // postcard cannot fail on these plain structs when writing to a Vec.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Decodes a payload strictly: no trailing bytes.
pub fn decode<T: DeserializeOwned>(kv: KindVersion, payload: &[u8]) -> Result<T, EventDecodeError> {
    let malformed = |reason: String| EventDecodeError::Malformed { kind: kv.kind, version: kv.version, reason };
    let (value, rest) = postcard::take_from_bytes(payload).map_err(|e| malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}
