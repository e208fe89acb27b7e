//! The events: what happened, as the log records it. Each kind has a stable 16-bit code
//! and a schema version; the payload is the postcard encoding of the kind's struct.
//! Decoding is strict (no trailing bytes) and keeps every version it ever wrote, so
//! old logs still fold.

use huduma_number::HudumaNumber;
use serde::{Deserialize, Serialize};

pub use huduma_log::events::{
    Actor, EventDecodeError, KindVersion, LogInitialized, LogKeyRotated, ROTATION_DOMAIN, decode, encode, kind,
};

use crate::PersonId;
use crate::sealed::Sealed;

/// Why a number was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplacementReason {
    Lost,
    Compromised,
    Fraud,
    Administrative,
}

/// A person enters the registry with a new number. The person's id is this record's
/// sequence number. Written as version 1, or as version 2 when the registrar overrode
/// the duplicate search (version 2 adds `duplicate_override`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRegistered {
    pub actor: Actor,
    pub number: HudumaNumber,
    /// The issuance counter that produced `number`.
    pub counter: u64,
    pub demographics: Sealed,
    pub duplicate_override: Option<DuplicateOverride>,
}

/// A registration made although the duplicate search found likely matches: the
/// registrar's justification and what the search found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateOverride {
    pub justification: String,
    pub candidates: Vec<OverriddenCandidate>,
}

/// A likely match the registrar overrode: its number then, and its score in hundredths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverriddenCandidate {
    pub number: HudumaNumber,
    pub score_centi: u32,
}

/// `PersonRegistered` version 1 on the wire.
#[derive(Serialize, Deserialize)]
struct PersonRegisteredV1 {
    actor: Actor,
    number: HudumaNumber,
    counter: u64,
    demographics: Sealed,
}

/// `PersonRegistered` version 2 on the wire.
#[derive(Serialize, Deserialize)]
struct PersonRegisteredV2 {
    actor: Actor,
    number: HudumaNumber,
    counter: u64,
    demographics: Sealed,
    duplicate_override: DuplicateOverride,
}

impl PersonRegistered {
    fn encode(&self) -> Vec<u8> {
        let (actor, number, counter, demographics) =
            (self.actor.clone(), self.number, self.counter, self.demographics.clone());
        match &self.duplicate_override {
            None => encode(&PersonRegisteredV1 { actor, number, counter, demographics }),
            Some(o) => {
                encode(&PersonRegisteredV2 { actor, number, counter, demographics, duplicate_override: o.clone() })
            }
        }
    }

    fn decode(kv: KindVersion, payload: &[u8]) -> Result<Self, EventDecodeError> {
        Ok(match kv.version {
            1 => {
                let v: PersonRegisteredV1 = decode(kv, payload)?;
                Self {
                    actor: v.actor,
                    number: v.number,
                    counter: v.counter,
                    demographics: v.demographics,
                    duplicate_override: None,
                }
            }
            _ => {
                let v: PersonRegisteredV2 = decode(kv, payload)?;
                Self {
                    actor: v.actor,
                    number: v.number,
                    counter: v.counter,
                    demographics: v.demographics,
                    duplicate_override: Some(v.duplicate_override),
                }
            }
        })
    }
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
        let version = match self {
            Event::PersonRegistered(e) if e.duplicate_override.is_some() => 2,
            _ => 1,
        };
        KindVersion { kind, version }
    }

    /// The payload bytes.
    pub fn encode_payload(&self) -> Vec<u8> {
        match self {
            Event::LogInitialized(e) => encode(e),
            Event::LogKeyRotated(e) => encode(e),
            Event::PersonRegistered(e) => e.encode(),
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
            (PERSON_REGISTERED, 1 | 2) => Event::PersonRegistered(PersonRegistered::decode(kv, payload)?),
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
