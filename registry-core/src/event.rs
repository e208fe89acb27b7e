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

/// A person's demographics replaced. Written as version 1, or as version 2 when the
/// registrar overrode the duplicate search the corrected demographics met (version 2
/// adds `duplicate_override`, as `PersonRegistered` does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemographicsCorrected {
    pub actor: Actor,
    pub person: PersonId,
    pub demographics: Sealed,
    pub duplicate_override: Option<DuplicateOverride>,
}

/// `DemographicsCorrected` version 1 on the wire.
#[derive(Serialize, Deserialize)]
struct DemographicsCorrectedV1 {
    actor: Actor,
    person: PersonId,
    demographics: Sealed,
}

/// `DemographicsCorrected` version 2 on the wire.
#[derive(Serialize, Deserialize)]
struct DemographicsCorrectedV2 {
    actor: Actor,
    person: PersonId,
    demographics: Sealed,
    duplicate_override: DuplicateOverride,
}

impl DemographicsCorrected {
    fn encode(&self) -> Vec<u8> {
        let (actor, person, demographics) = (self.actor.clone(), self.person, self.demographics.clone());
        match &self.duplicate_override {
            None => encode(&DemographicsCorrectedV1 { actor, person, demographics }),
            Some(o) => encode(&DemographicsCorrectedV2 { actor, person, demographics, duplicate_override: o.clone() }),
        }
    }

    fn decode(kv: KindVersion, payload: &[u8]) -> Result<Self, EventDecodeError> {
        Ok(if kv.version == 1 {
            let v: DemographicsCorrectedV1 = decode(kv, payload)?;
            Self { actor: v.actor, person: v.person, demographics: v.demographics, duplicate_override: None }
        } else {
            let v: DemographicsCorrectedV2 = decode(kv, payload)?;
            Self {
                actor: v.actor,
                person: v.person,
                demographics: v.demographics,
                duplicate_override: Some(v.duplicate_override),
            }
        })
    }
}

/// A piece of personal data an event carries apart from the demographics: sealed
/// (`sealed::Sealed::seal_field`), as this version writes it, or in clear, as version
/// 1 of its event held it (logs written before 2026-12-06).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateText {
    Clear(String),
    Sealed(Sealed),
}

impl PrivateText {
    /// The event version that holds this form: 1 in clear, 2 sealed.
    fn version(&self) -> u16 {
        match self {
            PrivateText::Clear(_) => 1,
            PrivateText::Sealed(_) => 2,
        }
    }
}

/// An agency's record id linked to a person. Version 2 seals the record id under the
/// agency's record key (`Secrets::agency_record_key`); version 1 held it in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyRecordLinked {
    pub actor: Actor,
    pub person: PersonId,
    pub agency: String,
    pub record_id: PrivateText,
}

/// A link undone; its record id as `AgencyRecordLinked`'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyRecordUnlinked {
    pub actor: Actor,
    pub person: PersonId,
    pub agency: String,
    pub record_id: PrivateText,
}

/// `AgencyRecordLinked` and `AgencyRecordUnlinked` on the wire: version 1 (`R` =
/// `String`) and version 2 (`R` = `Sealed`) differ only in the record id's form.
#[derive(Serialize, Deserialize)]
struct AgencyRecordWire<R> {
    actor: Actor,
    person: PersonId,
    agency: String,
    record_id: R,
}

/// A death. Version 2 seals the date (`YYYY-MM-DD`) under the person's data key, so
/// that erasure destroys it with the rest of their data; version 1 held it in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeathRecorded {
    pub actor: Actor,
    pub person: PersonId,
    pub date_of_death: PrivateText,
}

/// `DeathRecorded` on the wire: version 1 (`D` = `String`) or 2 (`D` = `Sealed`).
#[derive(Serialize, Deserialize)]
struct DeathWire<D> {
    actor: Actor,
    person: PersonId,
    date_of_death: D,
}

impl AgencyRecordWire<String> {
    /// Version 1 or 2 of `actor, person, agency, record_id`, as either form gives them.
    fn encode_any(actor: &Actor, person: PersonId, agency: &str, record_id: &PrivateText) -> Vec<u8> {
        let (actor, agency) = (actor.clone(), agency.to_string());
        match record_id {
            PrivateText::Clear(text) => encode(&AgencyRecordWire { actor, person, agency, record_id: text.clone() }),
            PrivateText::Sealed(sealed) => {
                encode(&AgencyRecordWire { actor, person, agency, record_id: sealed.clone() })
            }
        }
    }

    fn decode_any(kv: KindVersion, payload: &[u8]) -> Result<(Actor, PersonId, String, PrivateText), EventDecodeError> {
        Ok(if kv.version == 1 {
            let v: AgencyRecordWire<String> = decode(kv, payload)?;
            (v.actor, v.person, v.agency, PrivateText::Clear(v.record_id))
        } else {
            let v: AgencyRecordWire<Sealed> = decode(kv, payload)?;
            (v.actor, v.person, v.agency, PrivateText::Sealed(v.record_id))
        })
    }
}

/// The encoding of the two link events, alike but for their kind.
macro_rules! agency_record_event {
    ($event:ident) => {
        impl $event {
            fn encode(&self) -> Vec<u8> {
                AgencyRecordWire::encode_any(&self.actor, self.person, &self.agency, &self.record_id)
            }

            fn decode(kv: KindVersion, payload: &[u8]) -> Result<Self, EventDecodeError> {
                let (actor, person, agency, record_id) = AgencyRecordWire::decode_any(kv, payload)?;
                Ok(Self { actor, person, agency, record_id })
            }
        }
    };
}

agency_record_event!(AgencyRecordLinked);
agency_record_event!(AgencyRecordUnlinked);

impl DeathRecorded {
    fn encode(&self) -> Vec<u8> {
        let (actor, person) = (self.actor.clone(), self.person);
        match &self.date_of_death {
            PrivateText::Clear(date) => encode(&DeathWire { actor, person, date_of_death: date.clone() }),
            PrivateText::Sealed(sealed) => encode(&DeathWire { actor, person, date_of_death: sealed.clone() }),
        }
    }

    fn decode(kv: KindVersion, payload: &[u8]) -> Result<Self, EventDecodeError> {
        Ok(if kv.version == 1 {
            let v: DeathWire<String> = decode(kv, payload)?;
            Self { actor: v.actor, person: v.person, date_of_death: PrivateText::Clear(v.date_of_death) }
        } else {
            let v: DeathWire<Sealed> = decode(kv, payload)?;
            Self { actor: v.actor, person: v.person, date_of_death: PrivateText::Sealed(v.date_of_death) }
        })
    }
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

/// A merge undone: the duplicate is a person of their own again, active, with the
/// agency records their merge moved to the survivor that the survivor still holds
/// (records linked to the survivor since stay with the survivor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordsUnmerged {
    pub actor: Actor,
    pub survivor: PersonId,
    pub duplicate: PersonId,
    pub justification: String,
}

/// A death recorded in error withdrawn: the person is alive, and has again the status
/// they had when it was recorded (active, or revoked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeathRetracted {
    pub actor: Actor,
    pub person: PersonId,
    pub reason: String,
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
    RecordsUnmerged(RecordsUnmerged),
    DeathRetracted(DeathRetracted),
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
            Event::RecordsUnmerged(_) => RECORDS_UNMERGED,
            Event::DeathRetracted(_) => DEATH_RETRACTED,
        };
        let version = match self {
            Event::PersonRegistered(e) if e.duplicate_override.is_some() => 2,
            Event::DemographicsCorrected(e) if e.duplicate_override.is_some() => 2,
            Event::AgencyRecordLinked(e) => e.record_id.version(),
            Event::AgencyRecordUnlinked(e) => e.record_id.version(),
            Event::DeathRecorded(e) => e.date_of_death.version(),
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
            Event::DemographicsCorrected(e) => e.encode(),
            Event::AgencyRecordLinked(e) => e.encode(),
            Event::AgencyRecordUnlinked(e) => e.encode(),
            Event::DeathRecorded(e) => e.encode(),
            Event::NumberRevoked(e) => encode(e),
            Event::NumberReinstated(e) => encode(e),
            Event::RecordsMerged(e) => encode(e),
            Event::PersonalDataErased(e) => encode(e),
            Event::RecordsUnmerged(e) => encode(e),
            Event::DeathRetracted(e) => encode(e),
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
            (DEMOGRAPHICS_CORRECTED, 1 | 2) => {
                Event::DemographicsCorrected(DemographicsCorrected::decode(kv, payload)?)
            }
            (AGENCY_RECORD_LINKED, 1 | 2) => Event::AgencyRecordLinked(AgencyRecordLinked::decode(kv, payload)?),
            (AGENCY_RECORD_UNLINKED, 1 | 2) => Event::AgencyRecordUnlinked(AgencyRecordUnlinked::decode(kv, payload)?),
            (DEATH_RECORDED, 1 | 2) => Event::DeathRecorded(DeathRecorded::decode(kv, payload)?),
            (NUMBER_REVOKED, 1) => Event::NumberRevoked(decode(kv, payload)?),
            (NUMBER_REINSTATED, 1) => Event::NumberReinstated(decode(kv, payload)?),
            (RECORDS_MERGED, 1) => Event::RecordsMerged(decode(kv, payload)?),
            (PERSONAL_DATA_ERASED, 1) => Event::PersonalDataErased(decode(kv, payload)?),
            (RECORDS_UNMERGED, 1) => Event::RecordsUnmerged(decode(kv, payload)?),
            (DEATH_RETRACTED, 1) => Event::DeathRetracted(decode(kv, payload)?),
            (kind, version) => return Err(EventDecodeError::Unknown { kind, version }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed() -> Sealed {
        Sealed { nonce: [3; 24], ciphertext: vec![5; 27] }
    }

    fn events() -> Vec<Event> {
        let actor = Actor { principal: "kra-system".into(), via: "KRA".into() };
        let mut out = Vec::new();
        for record_id in [PrivateText::Clear("A012345678Z".into()), PrivateText::Sealed(sealed())] {
            out.push(Event::AgencyRecordLinked(AgencyRecordLinked {
                actor: actor.clone(),
                person: PersonId(42),
                agency: "KRA".into(),
                record_id: record_id.clone(),
            }));
            out.push(Event::AgencyRecordUnlinked(AgencyRecordUnlinked {
                actor: actor.clone(),
                person: PersonId(42),
                agency: "KRA".into(),
                record_id,
            }));
        }
        let overridden = DuplicateOverride {
            justification: "twins, confirmed at the centre".into(),
            candidates: vec![OverriddenCandidate { number: "234567890124".parse().unwrap(), score_centi: 91 }],
        };
        for duplicate_override in [None, Some(overridden)] {
            out.push(Event::DemographicsCorrected(DemographicsCorrected {
                actor: actor.clone(),
                person: PersonId(42),
                demographics: sealed(),
                duplicate_override,
            }));
        }
        for date_of_death in [PrivateText::Clear("2024-01-31".into()), PrivateText::Sealed(sealed())] {
            out.push(Event::DeathRecorded(DeathRecorded { actor: actor.clone(), person: PersonId(42), date_of_death }));
        }
        out.push(Event::RecordsUnmerged(RecordsUnmerged {
            actor: actor.clone(),
            survivor: PersonId(7),
            duplicate: PersonId(42),
            justification: "two persons: fingerprints differ".into(),
        }));
        out.push(Event::DeathRetracted(DeathRetracted {
            actor: actor.clone(),
            person: PersonId(42),
            reason: "appeared in person at the centre".into(),
        }));
        out
    }

    #[test]
    fn payloads_round_trip_and_trailing_bytes_are_refused() {
        for event in events() {
            let kv = event.kind_version();
            let payload = event.encode_payload();
            assert_eq!(Event::decode(kv, &payload), Ok(event.clone()));
            let mut longer = payload.clone();
            longer.push(0);
            assert!(matches!(Event::decode(kv, &longer), Err(EventDecodeError::Malformed { .. })), "{event:?}");
            assert!(matches!(
                Event::decode(KindVersion { kind: kv.kind, version: 99 }, &payload),
                Err(EventDecodeError::Unknown { .. })
            ));
        }
    }

    /// Version 1 holds the private field in clear, version 2 sealed: each as
    /// LOG-FORMAT.md lays it out (a sealed field is the 24 nonce bytes, then the
    /// ciphertext as a byte string, where version 1 had a string).
    #[test]
    fn a_private_field_is_in_clear_at_version_1_and_sealed_at_version_2() {
        for event in events() {
            let kv = event.kind_version();
            let payload = event.encode_payload();
            let field = match &event {
                Event::AgencyRecordLinked(AgencyRecordLinked { record_id: f, .. })
                | Event::AgencyRecordUnlinked(AgencyRecordUnlinked { record_id: f, .. })
                | Event::DeathRecorded(DeathRecorded { date_of_death: f, .. }) => f,
                _ => continue,
            };
            match field {
                PrivateText::Sealed(s) => {
                    assert_eq!(kv.version, 2);
                    let tail = postcard::to_allocvec(s).unwrap();
                    assert!(payload.ends_with(&tail), "{event:?}");
                }
                PrivateText::Clear(text) => {
                    assert_eq!(kv.version, 1);
                    assert!(payload.ends_with(text.as_bytes()), "{event:?}");
                }
            }
        }
    }

    /// A correction that overrode the duplicate search is version 2: version 1's bytes
    /// with the override after them, as LOG-FORMAT.md lays it out.
    #[test]
    fn an_overriding_correction_is_version_1_with_the_override_appended() {
        let mut seen = [false; 2];
        for event in events() {
            let Event::DemographicsCorrected(e) = &event else { continue };
            let kv = event.kind_version();
            let v1 = DemographicsCorrected { duplicate_override: None, ..e.clone() }.encode();
            match &e.duplicate_override {
                None => {
                    assert_eq!((kv.version, event.encode_payload()), (1, v1));
                    seen[0] = true;
                }
                Some(o) => {
                    let appended = [v1, postcard::to_allocvec(o).unwrap()].concat();
                    assert_eq!((kv.version, event.encode_payload()), (2, appended));
                    seen[1] = true;
                }
            }
        }
        assert_eq!(seen, [true, true]);
    }

    /// An unmerge is laid out as LOG-FORMAT.md says: the actor (principal, then via,
    /// each a string), the survivor and the duplicate (varints), the justification.
    #[test]
    fn an_unmerge_is_laid_out_field_by_field() {
        let event = Event::RecordsUnmerged(RecordsUnmerged {
            actor: Actor { principal: "reg".into(), via: "GPO".into() },
            survivor: PersonId(300),
            duplicate: PersonId(5),
            justification: "two".into(),
        });
        assert_eq!(event.kind_version(), KindVersion { kind: kind::RECORDS_UNMERGED, version: 1 });
        let expected = [&[3][..], b"reg", &[3], b"GPO", &[0xac, 0x02], &[5], &[3], b"two"].concat();
        assert_eq!(event.encode_payload(), expected);
    }

    /// A death's retraction is laid out as LOG-FORMAT.md says: the actor (principal,
    /// then via, each a string), the person (a varint), the reason.
    #[test]
    fn a_death_retraction_is_laid_out_field_by_field() {
        let event = Event::DeathRetracted(DeathRetracted {
            actor: Actor { principal: "reg".into(), via: "GPO".into() },
            person: PersonId(300),
            reason: "alive".into(),
        });
        assert_eq!(event.kind_version(), KindVersion { kind: kind::DEATH_RETRACTED, version: 1 });
        let expected = [&[3][..], b"reg", &[3], b"GPO", &[0xac, 0x02], &[5], b"alive"].concat();
        assert_eq!(event.encode_payload(), expected);
    }
}
