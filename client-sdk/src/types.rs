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
    /// The calling agency's own token for the person (from an earlier answer).
    AgencyToken(String),
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

/// The demographics a caller may see: each attribute its disclosure policy withholds
/// is `None` (registrars see all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disclosed {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub other_names: Vec<String>,
    pub date_of_birth: Option<String>,
    pub sex: Option<Sex>,
    pub place_of_birth: Option<String>,
}

/// Attributes claimed about a person, to be verified yes or no; `None` (or an empty
/// list) is not claimed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claim {
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub other_names: Vec<String>,
    pub date_of_birth: Option<String>,
    pub sex: Option<Sex>,
    pub place_of_birth: Option<String>,
}

pub(crate) fn claim_out(c: &Claim) -> pb::Demographics {
    pb::Demographics {
        given_name: c.given_name.clone().unwrap_or_default(),
        family_name: c.family_name.clone().unwrap_or_default(),
        other_names: c.other_names.clone(),
        date_of_birth: c.date_of_birth.clone().unwrap_or_default(),
        sex: c.sex.map_or(pb::Sex::Unspecified, sex_out) as i32,
        place_of_birth: c.place_of_birth.clone().unwrap_or_default(),
    }
}

/// What a look-up answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// The number asked for (or, for a record look-up, the number in force); `None`
    /// for an agency whose policy withholds the bare number.
    pub number: Option<HudumaNumber>,
    pub status: Status,
    /// For `Superseded` and `Merged`: the number now in force (withheld like `number`).
    pub superseded_by: Option<HudumaNumber>,
    /// What the caller may see; `None` once erased or if nothing is disclosed.
    pub demographics: Option<Disclosed>,
    /// The agency records the caller may see (an agency: its own).
    pub agency_records: Vec<AgencyRecord>,
    pub date_of_death: Option<String>,
    /// The calling agency's stable pseudonymous token for the person; `None` for
    /// registrars and admins.
    pub agency_token: Option<String>,
    /// The registry holds the person's personal data but no key opens it (lost in a
    /// restore from a backup): `demographics` and `date_of_death` are empty for that
    /// reason, not by policy. Correcting the demographics (every field) enrols it again.
    pub personal_data_lost: bool,
}

impl Resolution {
    /// The number in force for this person, if the caller may see numbers.
    pub fn current_number(&self) -> Option<HudumaNumber> {
        self.superseded_by.or(self.number)
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
    /// A merge undone: the records named went back to the person unmerged.
    RecordsUnmerged,
    /// A death recorded in error withdrawn: the person is alive.
    DeathRetracted,
    /// A kind this SDK does not know yet (a newer server).
    Other,
}

/// A change to a person linked with the calling agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The log index of the record; resume from `index + 1`.
    pub index: u64,
    pub kind: ChangeKind,
    /// The person's number in force after the change (withheld by some policies).
    pub number: Option<HudumaNumber>,
    pub status: Status,
    /// The calling agency's record ids the change concerns.
    pub record_ids: Vec<String>,
    /// The calling agency's token for the person.
    pub agency_token: Option<String>,
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

/// A registered person the duplicate search found like the demographics searched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DuplicateCandidate {
    pub number: HudumaNumber,
    /// The match score in hundredths (28.00 at most: `score_centi as f64 / 100.0`).
    pub score_centi: u32,
    /// Whether a registration scoring this is refused.
    pub above_threshold: bool,
}

pub(crate) fn candidate_in(c: pb::DuplicateCandidate) -> Option<DuplicateCandidate> {
    Some(DuplicateCandidate {
        number: c.huduma_number.parse().ok()?,
        score_centi: (c.score * 100.0).round().clamp(0.0, f64::from(u32::MAX)) as u32,
        above_threshold: c.above_threshold,
    })
}

/// Which of the registry's two logs an audit call reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Log {
    /// The identity log (registrations and every change to a person).
    #[default]
    Identity,
    /// The access log (every look-up of a person), kept apart.
    Access,
}

/// Which RPC looked a person up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AccessCall {
    Resolve,
    VerifyAttributes,
    FindDuplicates,
    /// The person's history was read.
    History,
}

/// One look-up of a person, as a citizen portal or an admin sees it (never the key's value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Access {
    /// The look-up's index in the access log.
    pub index: u64,
    /// RFC 3339, UTC.
    pub time: String,
    /// False when the details were sealed under the person's data key and the
    /// person's data was since erased: only `index` and `time` remain.
    pub readable: bool,
    pub call: Option<AccessCall>,
    /// The agency (empty for a registrar or an admin), principal (empty for a citizen
    /// portal, which is never shown which official) and role.
    pub agency: String,
    pub principal: String,
    pub role: String,
    pub purpose: String,
    /// "huduma_number", "agency_record" or "agency_token", and whose.
    pub key_kind: String,
    pub key_agency: String,
    pub status: Option<Status>,
    /// VerifyAttributes: each claimed attribute and whether it matched.
    pub attributes: Vec<(String, bool)>,
}

/// A page of a person's look-ups, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessPage {
    pub accesses: Vec<Access>,
    /// Pass to get the next (older) page; `None` after the last.
    pub next_page_token: Option<String>,
}

// --- to and from the wire ---

/// How far a backup the registry takes while it serves (`Client::backup`) has come.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "stage")]
pub enum BackupProgress {
    /// A log's records being copied: `done` of `total`.
    Copying { log: Log, done: u64, total: u64 },
    /// The projections being folded in the copy.
    Folding { done: u64, total: u64 },
    /// The backup is whole: the last message.
    Taken(BackupTaken),
}

/// What a finished backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupTaken {
    /// Where the copy is, on the server's file system.
    pub path: String,
    /// The identity log's records copied: its newest checkpoint's size when it began.
    pub records: u64,
    /// The access log's records copied, likewise.
    pub access_records: u64,
    /// Keyring entries copied, one per person the copied log registers.
    pub keys: u64,
    /// Request-index entries kept (those answered within the copied log).
    pub requests: u64,
}

pub(crate) fn backup_progress_in(p: pb::BackupProgress) -> Result<BackupProgress, String> {
    use pb::backup_progress::Stage;
    match p.stage {
        Some(Stage::Copying(log)) => {
            let log = match pb::LogName::try_from(log) {
                Ok(pb::LogName::Identity) => Log::Identity,
                Ok(pb::LogName::Access) => Log::Access,
                Err(_) => return Err(format!("copying: {log} is not a log")),
            };
            Ok(BackupProgress::Copying { log, done: p.done, total: p.total })
        }
        Some(Stage::Folding(_)) => Ok(BackupProgress::Folding { done: p.done, total: p.total }),
        Some(Stage::Taken(t)) => Ok(BackupProgress::Taken(BackupTaken {
            path: t.path,
            records: t.records,
            access_records: t.access_records,
            keys: t.keys,
            requests: t.requests,
        })),
        None => Err("stage: missing".into()),
    }
}

pub(crate) fn log_out(log: Log) -> i32 {
    match log {
        Log::Identity => pb::LogName::Identity as i32,
        Log::Access => pb::LogName::Access as i32,
    }
}

/// A person's history, or a page of it: the records that changed them, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct History {
    /// The person's number in force and status now.
    pub current_number: String,
    pub status: Status,
    pub entries: Vec<HistoryEntry>,
    /// Pass to get the next (newer) page; `None` after the last (always, for a whole
    /// history).
    pub next_page_token: Option<String>,
}

/// One record of a person's history (never their personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// The record's log index: prove it with `inclusion_proof`.
    pub index: u64,
    /// RFC 3339, UTC.
    pub time: String,
    /// The event, as the log format names it (e.g. "RecordsMerged").
    pub event: String,
    /// Who (empty for a citizen portal, which is never shown which official), and
    /// through which centre or agency.
    pub principal: String,
    pub via: String,
    /// Why, as the record states it (a reason, justification or legal basis; the
    /// agency of a link); empty if none.
    pub detail: String,
    /// The numbers the record concerns: the persons it names, as in force now, then
    /// the numbers it names itself. A citizen portal is shown the person's own alone.
    pub numbers: Vec<String>,
}

pub(crate) fn history_in(h: pb::GetHistoryResponse) -> Result<History, Error> {
    Ok(History {
        current_number: h.current_number,
        status: status_in(h.status)?,
        entries: h
            .entries
            .into_iter()
            .map(|e| HistoryEntry {
                index: e.index,
                time: e.time,
                event: e.event,
                principal: e.principal,
                via: e.via,
                detail: e.detail,
                numbers: e.numbers,
            })
            .collect(),
        next_page_token: Some(h.next_page_token).filter(|t| !t.is_empty()),
    })
}

pub(crate) fn access_in(a: pb::Access) -> Access {
    Access {
        index: a.index,
        time: a.time,
        readable: a.readable,
        call: match pb::AccessCall::try_from(a.call) {
            Ok(pb::AccessCall::Resolve) => Some(AccessCall::Resolve),
            Ok(pb::AccessCall::VerifyAttributes) => Some(AccessCall::VerifyAttributes),
            Ok(pb::AccessCall::FindDuplicates) => Some(AccessCall::FindDuplicates),
            Ok(pb::AccessCall::History) => Some(AccessCall::History),
            _ => None,
        },
        agency: a.agency,
        principal: a.principal,
        role: a.role,
        purpose: a.purpose,
        key_kind: a.key_kind,
        key_agency: a.key_agency,
        status: status_in(a.status).ok(),
        attributes: a.attributes.into_iter().map(|m| (m.attribute, m.matches)).collect(),
    }
}

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

fn present(text: String) -> Option<String> {
    Some(text).filter(|t| !t.is_empty())
}

fn demographics_in(d: pb::Demographics) -> Result<Disclosed, Error> {
    let sex = match pb::Sex::try_from(d.sex) {
        Ok(pb::Sex::Female) => Some(Sex::Female),
        Ok(pb::Sex::Male) => Some(Sex::Male),
        Ok(pb::Sex::Intersex) => Some(Sex::Intersex),
        Ok(pb::Sex::Unspecified) => None,
        Err(_) => return Err(Error::Protocol(format!("the server sent sex {}", d.sex))),
    };
    Ok(Disclosed {
        given_name: present(d.given_name),
        family_name: present(d.family_name),
        other_names: d.other_names,
        date_of_birth: present(d.date_of_birth),
        sex,
        place_of_birth: present(d.place_of_birth),
    })
}

impl Disclosed {
    /// Whether every attribute of `d` is disclosed and equal.
    pub fn is_all_of(&self, d: &Demographics) -> bool {
        self.given_name.as_deref() == Some(d.given_name.as_str())
            && self.family_name.as_deref() == Some(d.family_name.as_str())
            && self.other_names == d.other_names
            && self.date_of_birth.as_deref() == Some(d.date_of_birth.as_str())
            && self.sex == Some(d.sex)
            && self.place_of_birth.as_deref() == Some(d.place_of_birth.as_str())
    }
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

pub(crate) fn status_in(value: i32) -> Result<Status, Error> {
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
        number: optional_number("huduma_number", &r.huduma_number)?,
        status: status_in(r.status)?,
        superseded_by: optional_number("superseded_by", &r.superseded_by)?,
        demographics: r.demographics.map(demographics_in).transpose()?,
        agency_records: r.agency_records.into_iter().map(|a| AgencyRecord::new(a.agency, a.record_id)).collect(),
        date_of_death: present(r.date_of_death),
        agency_token: present(r.agency_token),
        personal_data_lost: r.personal_data_lost,
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
        Ok(pb::ChangeKind::RecordsUnmerged) => ChangeKind::RecordsUnmerged,
        Ok(pb::ChangeKind::DeathRetracted) => ChangeKind::DeathRetracted,
        _ => ChangeKind::Other,
    };
    Ok(Change {
        index: c.index,
        kind,
        number: optional_number("huduma_number", &c.huduma_number)?,
        status: status_in(c.status)?,
        record_ids: c.record_ids,
        agency_token: present(c.agency_token),
    })
}
