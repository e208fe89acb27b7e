//! Commands (what a caller asks the registry to do), their answers (receipts), and the
//! typed errors that refuse them. A refused command writes nothing.

use huduma_number::HudumaNumber;
use serde::{Deserialize, Serialize};

use crate::demographics::{Demographics, FieldError};
use crate::event::{Actor, ReplacementReason};
use crate::projection::state::PersonStatus;

/// A command with the request id that makes it idempotent and the actor behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// Chosen by the caller; a repeated id (for the same principal) returns the first
    /// answer, across restarts.
    pub request_id: String,
    pub actor: Actor,
    pub command: Command,
}

/// Everything that changes the registry, apart from log-key rotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    RegisterPerson {
        demographics: Demographics,
    },
    ReplaceNumber {
        number: HudumaNumber,
        reason: ReplacementReason,
    },
    CorrectDemographics {
        number: HudumaNumber,
        demographics: Demographics,
    },
    LinkAgencyRecord {
        number: HudumaNumber,
        agency: String,
        record_id: String,
    },
    UnlinkAgencyRecord {
        number: HudumaNumber,
        agency: String,
        record_id: String,
    },
    RecordDeath {
        number: HudumaNumber,
        date_of_death: String,
    },
    RevokeNumber {
        number: HudumaNumber,
        reason: String,
    },
    ReinstateNumber {
        number: HudumaNumber,
        reason: String,
    },
    MergeRecords {
        survivor: HudumaNumber,
        duplicate: HudumaNumber,
        justification: String,
    },
    ErasePersonalData {
        number: HudumaNumber,
        legal_basis: String,
    },
    /// A registration the registrar makes although the duplicate search refused it;
    /// the justification and what the search found are recorded in the event.
    RegisterPersonOverridingDuplicates {
        demographics: Demographics,
        justification: String,
    },
    /// A correction the registrar makes although the duplicate search refused it (the
    /// corrected demographics are likely another person's); recorded as for a
    /// registration.
    CorrectDemographicsOverridingDuplicates {
        number: HudumaNumber,
        demographics: Demographics,
        justification: String,
    },
    /// Undoes a mistaken merge: the duplicate (named by their number) is a person of
    /// their own again, with the agency records the merge moved that the survivor
    /// still holds.
    UnmergeRecords {
        duplicate: HudumaNumber,
        justification: String,
    },
    /// Withdraws a death recorded in error: the person is alive, with the status they
    /// had when it was recorded (active, or revoked).
    RetractDeath {
        number: HudumaNumber,
        reason: String,
    },
}

impl Command {
    /// The justification of a registration or a correction made although the
    /// duplicate search refused it (checked as a reason), `None` for any other command.
    pub(crate) fn duplicate_override(&self) -> Result<Option<String>, CommandError> {
        match self {
            Command::RegisterPersonOverridingDuplicates { justification, .. }
            | Command::CorrectDemographicsOverridingDuplicates { justification, .. } => {
                check_reason("justification", justification)?;
                Ok(Some(justification.clone()))
            }
            _ => Ok(None),
        }
    }
}

/// Proof that a command was appended: the record's index (its sequence number and
/// Merkle leaf index), its BLAKE3 hash and its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub index: u64,
    pub record_hash: [u8; 32],
    pub signature: [u8; 64],
}

/// The answer to an accepted command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub receipt: Receipt,
    /// The number issued, for a registration or a replacement.
    pub number: Option<HudumaNumber>,
}

/// The broad class of an error, as the gRPC layer maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Unavailable,
    Internal,
}

/// Why a command was refused. Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("invalid argument: {0}")]
    InvalidArgument(#[from] FieldError),
    #[error("number {0} was never issued")]
    NumberNotFound(HudumaNumber),
    #[error("number {number} was superseded by {current}")]
    NumberSuperseded { number: HudumaNumber, current: HudumaNumber },
    #[error("cannot {action}: the person with number {number} is {status:?}")]
    StatusForbids { action: &'static str, number: HudumaNumber, status: PersonStatus },
    #[error("agency record {agency}/{record_id} is already linked{}", if *.to_this_person { " to this person" } else { " to another person" })]
    RecordAlreadyLinked { agency: String, record_id: String, to_this_person: bool },
    #[error("agency record {agency}/{record_id} is not linked to this person")]
    LinkNotFound { agency: String, record_id: String },
    #[error("merge conflict: both persons hold a {agency} record ({survivor_record} and {duplicate_record})")]
    MergeConflict { agency: String, survivor_record: String, duplicate_record: String },
    #[error(
        "possible duplicate enrolment: {}; if this is another person, submit again with a justification for the override",
        candidates.iter().map(|(n, s)| format!("{n} (score {}.{:02})", s / 100, s % 100)).collect::<Vec<_>>().join(", ")
    )]
    PossibleDuplicate {
        /// The likely matches, best first: number in force and score in hundredths.
        candidates: Vec<(HudumaNumber, u32)>,
    },
    #[error(
        "cannot {action}: the data key of the person with number {number} is gone (lost with a data directory a backup was restored over, their records taken back without it); correct their demographics first (every field), which gives them a new key"
    )]
    PersonalDataKeyLost { action: &'static str, number: HudumaNumber },
    #[error(
        "cannot unmerge {duplicate}: the person it was merged into, now {survivor}, has since been merged into another; unmerge {survivor} first"
    )]
    SurvivorMergedSince { duplicate: HudumaNumber, survivor: HudumaNumber },
    #[error("request id {0:?} was already used for a different command")]
    RequestIdReused(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl CommandError {
    pub fn class(&self) -> ErrorClass {
        match self {
            CommandError::InvalidArgument(_) | CommandError::RequestIdReused(_) => ErrorClass::InvalidArgument,
            CommandError::NumberNotFound(_) | CommandError::LinkNotFound { .. } => ErrorClass::NotFound,
            CommandError::RecordAlreadyLinked { .. } => ErrorClass::AlreadyExists,
            CommandError::NumberSuperseded { .. }
            | CommandError::StatusForbids { .. }
            | CommandError::MergeConflict { .. }
            | CommandError::PossibleDuplicate { .. }
            | CommandError::PersonalDataKeyLost { .. }
            | CommandError::SurvivorMergedSince { .. } => ErrorClass::FailedPrecondition,
            CommandError::Unavailable(_) => ErrorClass::Unavailable,
            CommandError::Internal(_) => ErrorClass::Internal,
        }
    }

    pub(crate) fn field(field: &str, reason: impl Into<String>) -> Self {
        CommandError::InvalidArgument(FieldError::new(field, reason))
    }
}

/// The longest request id, principal or free-text reason accepted.
pub const MAX_ID_LEN: usize = 128;
pub const MAX_REASON_CHARS: usize = 500;

/// A short identifier: 1..=128 printable ASCII characters, no spaces.
pub fn check_identifier(field: &str, value: &str) -> Result<(), CommandError> {
    if value.is_empty() {
        return Err(CommandError::field(field, "must not be empty"));
    }
    if value.len() > MAX_ID_LEN {
        return Err(CommandError::field(field, format!("longer than {MAX_ID_LEN} bytes")));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CommandError::field(field, "only printable ASCII without spaces is allowed"));
    }
    Ok(())
}

/// An agency code: 2..=16 upper-case ASCII letters, digits or underscores.
pub fn check_agency(field: &str, value: &str) -> Result<(), CommandError> {
    let ok = (2..=16).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok { Ok(()) } else { Err(CommandError::field(field, "an agency code is 2-16 of A-Z, 0-9 and _")) }
}

/// A free-text reason: present, at most 500 characters, no control characters.
pub fn check_reason(field: &str, value: &str) -> Result<(), CommandError> {
    if value.trim().is_empty() {
        return Err(CommandError::field(field, "must not be empty"));
    }
    if value.chars().count() > MAX_REASON_CHARS {
        return Err(CommandError::field(field, format!("longer than {MAX_REASON_CHARS} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(CommandError::field(field, "contains a control character"));
    }
    Ok(())
}
