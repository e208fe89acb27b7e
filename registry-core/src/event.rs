//! The events: what happened, as the log records it. Each kind has a stable 16-bit code
//! and a schema version; the payload is the postcard encoding of the kind's struct.
//! Decoding is strict (no trailing bytes) and keeps every version it ever wrote, so
//! old logs still fold.

use huduma_number::HudumaNumber;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::PersonId;
use crate::sealed::Sealed;

/// Who caused an event, and the centre or agency it came through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The authenticated principal (a registrar, an agency system, an operator).
    pub principal: String,
    /// The Huduma centre, registry office or agency code the command came through.
    pub via: String,
}

/// Why a number was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplacementReason {
    Lost,
    Compromised,
    Fraud,
    Administrative,
}

/// Record 0 of every log: the log's origin and its genesis key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogInitialized {
    pub origin: String,
    pub public_key: [u8; 32],
}

/// The log key changes. Signed (as a record) by the old key; `new_key_signature` is the
/// new key's signature over `"huduma.registry.v1.key-rotation" || 0x00 || old key ||
/// new key`, proving the new key's holder agreed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogKeyRotated {
    pub actor: Actor,
    pub new_public_key: [u8; 32],
    pub new_key_signature: Vec<u8>,
}

/// A person enters the registry with a new number. The person's id is this record's
/// sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonRegistered {
    pub actor: Actor,
    pub number: HudumaNumber,
    /// The issuance counter that produced `number`.
    pub counter: u64,
    pub demographics: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberReplaced {
    pub actor: Actor,
    pub person: PersonId,
    pub old_number: HudumaNumber,
    pub new_number: HudumaNumber,
    pub counter: u64,
    pub reason: ReplacementReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DemographicsCorrected {
    pub actor: Actor,
    pub person: PersonId,
    pub demographics: Sealed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyRecordLinked {
    pub actor: Actor,
    pub person: PersonId,
    pub agency: String,
    pub record_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgencyRecordUnlinked {
    pub actor: Actor,
    pub person: PersonId,
    pub agency: String,
    pub record_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeathRecorded {
    pub actor: Actor,
    pub person: PersonId,
    /// `YYYY-MM-DD`.
    pub date_of_death: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberRevoked {
    pub actor: Actor,
    pub person: PersonId,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumberReinstated {
    pub actor: Actor,
    pub person: PersonId,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsMerged {
    pub actor: Actor,
    pub survivor: PersonId,
    pub duplicate: PersonId,
    pub justification: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalDataErased {
    pub actor: Actor,
    pub person: PersonId,
    pub legal_basis: String,
}

/// Every event the log can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    LogInitialized(LogInitialized),
    LogKeyRotated(LogKeyRotated),
    PersonRegistered(PersonRegistered),
    NumberReplaced(NumberReplaced),
    DemographicsCorrected(DemographicsCorrected),
    AgencyRecordLinked(AgencyRecordLinked),
    AgencyRecordUnlinked(AgencyRecordUnlinked),
    DeathRecorded(DeathRecorded),
    NumberRevoked(NumberRevoked),
    NumberReinstated(NumberReinstated),
    RecordsMerged(RecordsMerged),
    PersonalDataErased(PersonalDataErased),
}

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
}

/// Why a payload does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    #[error("unknown event kind {kind} version {version}")]
    Unknown { kind: u16, version: u16 },
    #[error("event kind {kind} version {version}: {reason}")]
    Malformed { kind: u16, version: u16, reason: String },
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // postcard cannot fail on these plain structs when writing to a Vec.
    postcard::to_allocvec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(kv: KindVersion, payload: &[u8]) -> Result<T, EventDecodeError> {
    let malformed = |reason: String| EventDecodeError::Malformed { kind: kv.kind, version: kv.version, reason };
    let (value, rest) = postcard::take_from_bytes(payload).map_err(|e| malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok(value)
}

impl Event {
    /// The kind and the version this build writes.
    pub fn kind_version(&self) -> KindVersion {
        use kind::*;
        let kind = match self {
            Event::LogInitialized(_) => LOG_INITIALIZED,
            Event::LogKeyRotated(_) => LOG_KEY_ROTATED,
            Event::PersonRegistered(_) => PERSON_REGISTERED,
            Event::NumberReplaced(_) => NUMBER_REPLACED,
            Event::DemographicsCorrected(_) => DEMOGRAPHICS_CORRECTED,
            Event::AgencyRecordLinked(_) => AGENCY_RECORD_LINKED,
            Event::AgencyRecordUnlinked(_) => AGENCY_RECORD_UNLINKED,
            Event::DeathRecorded(_) => DEATH_RECORDED,
            Event::NumberRevoked(_) => NUMBER_REVOKED,
            Event::NumberReinstated(_) => NUMBER_REINSTATED,
            Event::RecordsMerged(_) => RECORDS_MERGED,
            Event::PersonalDataErased(_) => PERSONAL_DATA_ERASED,
        };
        KindVersion { kind, version: 1 }
    }

    /// The payload bytes.
    pub fn encode_payload(&self) -> Vec<u8> {
        match self {
            Event::LogInitialized(e) => encode(e),
            Event::LogKeyRotated(e) => encode(e),
            Event::PersonRegistered(e) => encode(e),
            Event::NumberReplaced(e) => encode(e),
            Event::DemographicsCorrected(e) => encode(e),
            Event::AgencyRecordLinked(e) => encode(e),
            Event::AgencyRecordUnlinked(e) => encode(e),
            Event::DeathRecorded(e) => encode(e),
            Event::NumberRevoked(e) => encode(e),
            Event::NumberReinstated(e) => encode(e),
            Event::RecordsMerged(e) => encode(e),
            Event::PersonalDataErased(e) => encode(e),
        }
    }

    /// Decodes a payload of the given kind and version.
    pub fn decode(kv: KindVersion, payload: &[u8]) -> Result<Event, EventDecodeError> {
        use kind::*;
        Ok(match (kv.kind, kv.version) {
            (LOG_INITIALIZED, 1) => Event::LogInitialized(decode(kv, payload)?),
            (LOG_KEY_ROTATED, 1) => Event::LogKeyRotated(decode(kv, payload)?),
            (PERSON_REGISTERED, 1) => Event::PersonRegistered(decode(kv, payload)?),
            (NUMBER_REPLACED, 1) => Event::NumberReplaced(decode(kv, payload)?),
            (DEMOGRAPHICS_CORRECTED, 1) => Event::DemographicsCorrected(decode(kv, payload)?),
            (AGENCY_RECORD_LINKED, 1) => Event::AgencyRecordLinked(decode(kv, payload)?),
            (AGENCY_RECORD_UNLINKED, 1) => Event::AgencyRecordUnlinked(decode(kv, payload)?),
            (DEATH_RECORDED, 1) => Event::DeathRecorded(decode(kv, payload)?),
            (NUMBER_REVOKED, 1) => Event::NumberRevoked(decode(kv, payload)?),
            (NUMBER_REINSTATED, 1) => Event::NumberReinstated(decode(kv, payload)?),
            (RECORDS_MERGED, 1) => Event::RecordsMerged(decode(kv, payload)?),
            (PERSONAL_DATA_ERASED, 1) => Event::PersonalDataErased(decode(kv, payload)?),
            (kind, version) => return Err(EventDecodeError::Unknown { kind, version }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_trailing_bytes_are_refused() {
        let event = Event::AgencyRecordLinked(AgencyRecordLinked {
            actor: Actor { principal: "kra-system".into(), via: "KRA".into() },
            person: PersonId(42),
            agency: "KRA".into(),
            record_id: "A012345678Z".into(),
        });
        let kv = event.kind_version();
        let payload = event.encode_payload();
        assert_eq!(Event::decode(kv, &payload), Ok(event));
        let mut longer = payload.clone();
        longer.push(0);
        assert!(matches!(Event::decode(kv, &longer), Err(EventDecodeError::Malformed { .. })));
        assert!(matches!(
            Event::decode(KindVersion { kind: kv.kind, version: 99 }, &payload),
            Err(EventDecodeError::Unknown { .. })
        ));
    }
}
