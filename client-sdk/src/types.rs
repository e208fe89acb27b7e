//! The SDK's own types: what a call takes and returns, with typed Huduma numbers
//! instead of strings, and conversions to and from the wire.

use huduma_number::HudumaNumber;
use serde::Serialize;

use crate::error::Error;
use crate::proto as pb;

/// Sex as recorded at registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Sex {
    Female,
    Male,
    Intersex,
}

impl std::str::FromStr for Sex {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f" | "female" => Ok(Sex::Female),
            "m" | "male" => Ok(Sex::Male),
            "i" | "x" | "intersex" => Ok(Sex::Intersex),
            _ => Err(format!("{s:?} is not female, male or intersex")),
        }
    }
}

/// A person's demographics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Demographics {
    pub given_name: String,
    pub family_name: String,
    pub other_names: Vec<String>,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    pub sex: Sex,
    pub place_of_birth: String,
}

/// A person's record in an agency's own system.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AgencyRecord {
    pub agency: String,
    pub record_id: String,
}

impl AgencyRecord {
    pub fn new(agency: impl Into<String>, record_id: impl Into<String>) -> Self {
        Self { agency: agency.into(), record_id: record_id.into() }
    }
}

/// Proof that a command was appended to the log: verify it offline with
/// [`crate::receipt::verify_receipt`] against the record's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// The record's sequence number (its leaf index in the log's tree).
    pub index: u64,
    /// BLAKE3 of the record's bytes.
    #[serde(serialize_with = "hex")]
    pub record_hash: [u8; 32],
    /// The log key's Ed25519 signature of the record.
    #[serde(serialize_with = "hex")]
    pub signature: [u8; 64],
}

fn hex<S: serde::Serializer, const N: usize>(bytes: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// Where a person stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    Active,
    /// The number asked for was replaced; see `superseded_by`.
    Superseded,
    Revoked,
    Deceased,
    /// Merged into another person; `superseded_by` is the survivor's number.
    Merged,
    /// Personal data erased; nothing but the status is disclosed.
    Erased,
}

/// Why a number is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReplacementReason {
    Lost,
    Compromised,
    Fraud,
    Administrative,
}

impl std::str::FromStr for ReplacementReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "lost" => Ok(Self::Lost),
            "compromised" => Ok(Self::Compromised),
            "fraud" => Ok(Self::Fraud),
            "administrative" => Ok(Self::Administrative),
            _ => Err(format!("{s:?} is not lost, compromised, fraud or administrative")),
        }
    }
}

/// What a look-up is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResolveKey {
    Number(HudumaNumber),
    Record(AgencyRecord),
}

impl From<HudumaNumber> for ResolveKey {
    fn from(number: HudumaNumber) -> Self {
        ResolveKey::Number(number)
    }
}

impl From<AgencyRecord> for ResolveKey {
    fn from(record: AgencyRecord) -> Self {
        ResolveKey::Record(record)
    }
}

/// What a look-up answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// The number asked for (or, for a record look-up, the number in force).
    pub number: HudumaNumber,
    pub status: Status,
    /// For `Superseded` and `Merged`: the number now in force.
    pub superseded_by: Option<HudumaNumber>,
    /// What the caller may see; `None` once erased.
    pub demographics: Option<Demographics>,
    /// The agency records the caller may see.
    pub agency_records: Vec<AgencyRecord>,
    pub date_of_death: Option<String>,
}

impl Resolution {
    /// The number in force for this person.
    pub fn current_number(&self) -> HudumaNumber {
        self.superseded_by.unwrap_or(self.number)
    }
}

/// What kind of record changed a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ChangeKind {
    NumberReplaced,
    DemographicsCorrected,
    AgencyRecordLinked,
    AgencyRecordUnlinked,
    DeathRecorded,
    NumberRevoked,
    NumberReinstated,
    RecordsMerged,
    PersonalDataErased,
    /// A kind this SDK does not know yet (a newer server).
    Other,
}

/// A change to a person linked with the calling agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The log index of the record; resume from `index + 1`.
    pub index: u64,
    pub kind: ChangeKind,
    /// The person's number in force after the change.
    pub number: HudumaNumber,
    pub status: Status,
    /// The calling agency's record ids the change concerns.
    pub record_ids: Vec<String>,
}

/// One record of the log, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub index: u64,
    pub data: Vec<u8>,
}

/// A log key in the C2SP signed-note verifier-key form, and the first record it signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifierKey {
    pub verifier_key: String,
    pub from_index: u64,
}

/// The log's origin and keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifierKeys {
    pub origin: String,
    pub keys: Vec<VerifierKey>,
    pub log_size: u64,
}

// --- to and from the wire ---

pub(crate) fn number_in(field: &str, text: &str) -> Result<HudumaNumber, Error> {
    text.parse().map_err(|e| Error::Protocol(format!("the server sent {field} {text:?}: {e}")))
}

fn optional_number(field: &str, text: &str) -> Result<Option<HudumaNumber>, Error> {
    if text.is_empty() { Ok(None) } else { number_in(field, text).map(Some) }
}

fn sex_out(sex: Sex) -> pb::Sex {
    match sex {
        Sex::Female => pb::Sex::Female,
        Sex::Male => pb::Sex::Male,
        Sex::Intersex => pb::Sex::Intersex,
    }
}

pub(crate) fn demographics_out(d: &Demographics) -> pb::Demographics {
    pb::Demographics {
        given_name: d.given_name.clone(),
        family_name: d.family_name.clone(),
        other_names: d.other_names.clone(),
        date_of_birth: d.date_of_birth.clone(),
        sex: sex_out(d.sex) as i32,
        place_of_birth: d.place_of_birth.clone(),
    }
}

fn demographics_in(d: pb::Demographics) -> Result<Demographics, Error> {
    let sex = match pb::Sex::try_from(d.sex) {
        Ok(pb::Sex::Female) => Sex::Female,
        Ok(pb::Sex::Male) => Sex::Male,
        Ok(pb::Sex::Intersex) => Sex::Intersex,
        _ => return Err(Error::Protocol(format!("the server sent sex {}", d.sex))),
    };
    Ok(Demographics {
        given_name: d.given_name,
        family_name: d.family_name,
        other_names: d.other_names,
        date_of_birth: d.date_of_birth,
        sex,
        place_of_birth: d.place_of_birth,
    })
}

pub(crate) fn reason_out(reason: ReplacementReason) -> pb::ReplacementReason {
    match reason {
        ReplacementReason::Lost => pb::ReplacementReason::Lost,
        ReplacementReason::Compromised => pb::ReplacementReason::Compromised,
        ReplacementReason::Fraud => pb::ReplacementReason::Fraud,
        ReplacementReason::Administrative => pb::ReplacementReason::Administrative,
    }
}

pub(crate) fn record_out(r: &AgencyRecord) -> pb::AgencyRecord {
    pb::AgencyRecord { agency: r.agency.clone(), record_id: r.record_id.clone() }
}

pub(crate) fn receipt_in(r: Option<pb::Receipt>) -> Result<Receipt, Error> {
    let r = r.ok_or_else(|| Error::Protocol("the server sent no receipt".into()))?;
    let record_hash =
        r.record_hash.as_slice().try_into().map_err(|_| Error::Protocol("record_hash is not 32 bytes".into()))?;
    let signature =
        r.signature.as_slice().try_into().map_err(|_| Error::Protocol("signature is not 64 bytes".into()))?;
    Ok(Receipt { index: r.index, record_hash, signature })
}

fn status_in(value: i32) -> Result<Status, Error> {
    Ok(match pb::Status::try_from(value) {
        Ok(pb::Status::Active) => Status::Active,
        Ok(pb::Status::Superseded) => Status::Superseded,
        Ok(pb::Status::Revoked) => Status::Revoked,
        Ok(pb::Status::Deceased) => Status::Deceased,
        Ok(pb::Status::Merged) => Status::Merged,
        Ok(pb::Status::Erased) => Status::Erased,
        _ => return Err(Error::Protocol(format!("the server sent status {value}"))),
    })
}

pub(crate) fn resolution_in(r: pb::ResolveResponse) -> Result<Resolution, Error> {
    Ok(Resolution {
        number: number_in("huduma_number", &r.huduma_number)?,
        status: status_in(r.status)?,
        superseded_by: optional_number("superseded_by", &r.superseded_by)?,
        demographics: r.demographics.map(demographics_in).transpose()?,
        agency_records: r.agency_records.into_iter().map(|a| AgencyRecord::new(a.agency, a.record_id)).collect(),
        date_of_death: Some(r.date_of_death).filter(|d| !d.is_empty()),
    })
}

pub(crate) fn change_in(c: pb::Change) -> Result<Change, Error> {
    let kind = match pb::ChangeKind::try_from(c.kind) {
        Ok(pb::ChangeKind::NumberReplaced) => ChangeKind::NumberReplaced,
        Ok(pb::ChangeKind::DemographicsCorrected) => ChangeKind::DemographicsCorrected,
        Ok(pb::ChangeKind::AgencyRecordLinked) => ChangeKind::AgencyRecordLinked,
        Ok(pb::ChangeKind::AgencyRecordUnlinked) => ChangeKind::AgencyRecordUnlinked,
        Ok(pb::ChangeKind::DeathRecorded) => ChangeKind::DeathRecorded,
        Ok(pb::ChangeKind::NumberRevoked) => ChangeKind::NumberRevoked,
        Ok(pb::ChangeKind::NumberReinstated) => ChangeKind::NumberReinstated,
        Ok(pb::ChangeKind::RecordsMerged) => ChangeKind::RecordsMerged,
        Ok(pb::ChangeKind::PersonalDataErased) => ChangeKind::PersonalDataErased,
        _ => ChangeKind::Other,
    };
    Ok(Change {
        index: c.index,
        kind,
        number: number_in("huduma_number", &c.huduma_number)?,
        status: status_in(c.status)?,
        record_ids: c.record_ids,
    })
}
