//! Between the wire and the domain: wire messages into core types (each failure an
//! INVALID_ARGUMENT naming the field and the rule), core answers into wire messages,
//! and core errors into gRPC status codes.

use huduma_number::HudumaNumber;
use registry_core::command::{CommandError, ErrorClass, Receipt};
use registry_core::demographics::{Demographics, Sex};
use registry_core::event::ReplacementReason;
use registry_core::projection::state::PersonStatus;
use registry_core::query::{QueryError, Resolution, ResolvedStatus};
use tonic::Status;

use crate::proto as pb;

/// INVALID_ARGUMENT for `field` breaking `rule`.
pub fn invalid(field: &str, rule: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {rule}"))
}

/// A Huduma number from the wire (spaces and hyphens allowed).
pub fn number(field: &str, text: &str) -> Result<HudumaNumber, Status> {
    if text.is_empty() {
        return Err(invalid(field, "required"));
    }
    if text.len() > 64 {
        return Err(invalid(field, "length: far longer than a Huduma number"));
    }
    text.parse().map_err(|e| invalid(field, e))
}

/// A required message field.
pub fn required<T>(field: &str, value: Option<T>) -> Result<T, Status> {
    value.ok_or_else(|| invalid(field, "required"))
}

pub fn sex(field: &str, value: i32) -> Result<Sex, Status> {
    match pb::Sex::try_from(value) {
        Ok(pb::Sex::Female) => Ok(Sex::Female),
        Ok(pb::Sex::Male) => Ok(Sex::Male),
        Ok(pb::Sex::Intersex) => Ok(Sex::Intersex),
        Ok(pb::Sex::Unspecified) => Err(invalid(field, "required (FEMALE, MALE or INTERSEX)")),
        Err(_) => Err(invalid(field, format!("{value} is not a value of huduma.v1.Sex"))),
    }
}

/// Demographics from the wire; their rules (names, dates) are checked by the core,
/// which names the field (`demographics.given_name`, ...).
pub fn demographics(value: Option<pb::Demographics>) -> Result<Demographics, Status> {
    let d = required("demographics", value)?;
    Ok(Demographics {
        given_name: d.given_name,
        family_name: d.family_name,
        other_names: d.other_names,
        date_of_birth: d.date_of_birth,
        sex: sex("demographics.sex", d.sex)?,
        place_of_birth: d.place_of_birth,
    })
}

/// A claim to verify: empty fields (and SEX_UNSPECIFIED) are not claimed.
pub fn claim(d: pb::Demographics) -> Result<registry_core::attribute_check::Claim, Status> {
    let present = |text: String| Some(text).filter(|t| !t.trim().is_empty());
    let sex = match pb::Sex::try_from(d.sex) {
        Ok(pb::Sex::Unspecified) => None,
        _ => Some(sex("claimed.sex", d.sex)?),
    };
    let claim = registry_core::attribute_check::Claim {
        given_name: present(d.given_name),
        family_name: present(d.family_name),
        other_names: d.other_names,
        date_of_birth: present(d.date_of_birth),
        sex,
        place_of_birth: present(d.place_of_birth),
    };
    if claim == registry_core::attribute_check::Claim::default() {
        return Err(invalid("claimed", "claims no attribute"));
    }
    Ok(claim)
}

pub fn demographics_out(d: Demographics) -> pb::Demographics {
    pb::Demographics {
        given_name: d.given_name,
        family_name: d.family_name,
        other_names: d.other_names,
        date_of_birth: d.date_of_birth,
        sex: match d.sex {
            Sex::Female => pb::Sex::Female,
            Sex::Male => pb::Sex::Male,
            Sex::Intersex => pb::Sex::Intersex,
        } as i32,
        place_of_birth: d.place_of_birth,
    }
}

pub fn replacement_reason(field: &str, value: i32) -> Result<ReplacementReason, Status> {
    match pb::ReplacementReason::try_from(value) {
        Ok(pb::ReplacementReason::Lost) => Ok(ReplacementReason::Lost),
        Ok(pb::ReplacementReason::Compromised) => Ok(ReplacementReason::Compromised),
        Ok(pb::ReplacementReason::Fraud) => Ok(ReplacementReason::Fraud),
        Ok(pb::ReplacementReason::Administrative) => Ok(ReplacementReason::Administrative),
        Ok(pb::ReplacementReason::Unspecified) => {
            Err(invalid(field, "required (LOST, COMPROMISED, FRAUD or ADMINISTRATIVE)"))
        }
        Err(_) => Err(invalid(field, format!("{value} is not a value of huduma.v1.ReplacementReason"))),
    }
}

pub fn receipt(r: Receipt) -> pb::Receipt {
    pb::Receipt { index: r.index, record_hash: r.record_hash.to_vec(), signature: r.signature.to_vec() }
}

pub fn status_out(status: ResolvedStatus) -> pb::Status {
    match status {
        ResolvedStatus::Active => pb::Status::Active,
        ResolvedStatus::Superseded => pb::Status::Superseded,
        ResolvedStatus::Revoked => pb::Status::Revoked,
        ResolvedStatus::Deceased => pb::Status::Deceased,
        ResolvedStatus::Merged => pb::Status::Merged,
        ResolvedStatus::Erased => pb::Status::Erased,
    }
}

pub fn person_status_out(status: PersonStatus) -> pb::Status {
    match status {
        PersonStatus::Active => pb::Status::Active,
        PersonStatus::Revoked => pb::Status::Revoked,
        PersonStatus::Deceased => pb::Status::Deceased,
        PersonStatus::Merged => pb::Status::Merged,
        PersonStatus::Erased => pb::Status::Erased,
    }
}

/// A resolution as the wire carries it. `asked` is the number looked up, if it was a
/// number; `records` the agency records shown, opened (`Reader::agency_records`).
pub fn resolution_out(
    r: Resolution,
    asked: Option<HudumaNumber>,
    records: Vec<(String, String)>,
) -> pb::ResolveResponse {
    let shown = asked.unwrap_or(r.current_number);
    let superseded_by = match r.status {
        ResolvedStatus::Superseded | ResolvedStatus::Merged => r.current_number.compact(),
        _ => String::new(),
    };
    pb::ResolveResponse {
        huduma_number: shown.compact(),
        status: status_out(r.status) as i32,
        superseded_by,
        demographics: r.demographics.map(demographics_out),
        agency_records: records.into_iter().map(|(agency, record_id)| pb::AgencyRecord { agency, record_id }).collect(),
        date_of_death: r.date_of_death.unwrap_or_default(),
        agency_token: String::new(),
        personal_data_lost: r.personal_data_lost,
    }
}

/// The gRPC status of a refused command.
pub fn command_error(e: CommandError) -> Status {
    let message = match &e {
        // The field error's own text is `field: rule`.
        CommandError::InvalidArgument(field) => field.to_string(),
        other => other.to_string(),
    };
    match e.class() {
        ErrorClass::InvalidArgument => Status::invalid_argument(message),
        ErrorClass::NotFound => Status::not_found(message),
        ErrorClass::AlreadyExists => Status::already_exists(message),
        ErrorClass::FailedPrecondition => Status::failed_precondition(message),
        ErrorClass::Unavailable => Status::unavailable(message),
        ErrorClass::Internal => {
            tracing::error!(error = %message, "command failed inside the registry");
            Status::internal("internal error (logged by the server)")
        }
    }
}

/// The candidates of a duplicate search as the wire carries them.
pub fn duplicates_out(candidates: &[(HudumaNumber, f32)]) -> pb::FindDuplicatesResponse {
    let threshold = registry_core::dedup::THRESHOLD;
    pb::FindDuplicatesResponse {
        candidates: candidates
            .iter()
            .map(|(number, score)| pb::DuplicateCandidate {
                huduma_number: number.compact(),
                score: f64::from(*score),
                above_threshold: *score >= threshold,
            })
            .collect(),
        threshold: f64::from(threshold),
    }
}

/// FAILED_PRECONDITION for a registration the duplicate search refused: the message
/// names the candidates, the details carry them as a `FindDuplicatesResponse`.
pub fn possible_duplicate(e: &CommandError, candidates: &[(HudumaNumber, f32)]) -> Status {
    let details = prost::Message::encode_to_vec(&duplicates_out(candidates));
    Status::with_details(tonic::Code::FailedPrecondition, e.to_string(), details.into())
}

/// The gRPC status of a failed read: corruption is reported, never served.
pub fn query_error(e: QueryError) -> Status {
    tracing::error!(error = %e, "a read failed");
    Status::internal(format!("the registry could not read its store: {e}"))
}

/// Unix milliseconds from an RFC 3339 time in `field` (before 1970: 0).
pub fn unix_ms_from_rfc3339(field: &str, text: &str) -> Result<u64, Status> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| invalid(field, format!("not an RFC 3339 time such as 2026-11-01T00:00:00Z ({e})")))?;
    Ok(u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}

/// An RFC 3339 time in UTC with milliseconds, from Unix milliseconds.
pub fn rfc3339_from_unix_ms(ms: u64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// What a caller is shown of a person's history besides the records themselves.
#[derive(Debug, Clone, Copy)]
pub struct HistoryAudience {
    /// The officials who caused each record (`policy::shows_officials`).
    pub officials: bool,
    /// `None`: every number a record names. `Some(number)`: only those that resolve to
    /// the person whose number in force is `number`, the person asked for
    /// (`policy::shows_other_persons`).
    pub own_numbers_of: Option<HudumaNumber>,
}

/// One record of a person's history, as `GetHistory` shows it to `audience`: the
/// persons it names by their numbers in force now (see `registry_core::history`).
pub fn history_entry_out(
    reader: &registry_core::query::Reader,
    record: &registry_core::query::HistoryRecord,
    audience: HistoryAudience,
) -> Result<pb::HistoryEntry, Status> {
    let shown = registry_core::history::shown(&record.event);
    let mut numbers: Vec<HudumaNumber> = Vec::new();
    for person in &shown.persons {
        numbers.push(reader.current_number(*person).map_err(query_error)?);
    }
    numbers.extend(&shown.numbers);
    let mut seen = std::collections::HashSet::new();
    numbers.retain(|n| seen.insert(*n));
    if let Some(own) = audience.own_numbers_of {
        let mut theirs = Vec::with_capacity(numbers.len());
        for number in numbers {
            let resolves_to = reader.subject(number).map_err(query_error)?.map(|s| s.current_number);
            if resolves_to == Some(own) {
                theirs.push(number);
            }
        }
        numbers = theirs;
    }
    let ms = u64::try_from(record.time_micros / 1000).unwrap_or(0);
    Ok(pb::HistoryEntry {
        index: record.index,
        time: rfc3339_from_unix_ms(ms),
        event: shown.event.into(),
        principal: if audience.officials { shown.principal } else { String::new() },
        via: shown.via,
        detail: shown.detail,
        numbers: numbers.iter().map(|n| n.compact()).collect(),
    })
}

/// One look-up of a person, as a citizen portal or an admin is shown it: never the key's
/// value, and the official's account name only if `officials` (see
/// [`crate::policy::shows_officials`]).
pub fn access_out(listed: registry_core::access::AccessListed, officials: bool) -> pb::Access {
    let mut out = pb::Access { index: listed.index, time: rfc3339_from_unix_ms(listed.time_ms), ..Default::default() };
    let Some(body) = listed.body else { return out };
    let (key_kind, key_agency) = body.key.kind();
    out.readable = true;
    out.call = match body.call {
        registry_core::access::AccessCall::Resolve => pb::AccessCall::Resolve,
        registry_core::access::AccessCall::VerifyAttributes => pb::AccessCall::VerifyAttributes,
        registry_core::access::AccessCall::FindDuplicates => pb::AccessCall::FindDuplicates,
        registry_core::access::AccessCall::History => pb::AccessCall::History,
    } as i32;
    out.key_kind = key_kind.into();
    out.key_agency = key_agency.unwrap_or_default().into();
    out.status = match body.outcome {
        registry_core::access::AccessOutcome::Found(status) => status_out(status),
        registry_core::access::AccessOutcome::NotFound => pb::Status::Unspecified,
    } as i32;
    out.agency = body.agency;
    if officials {
        out.principal = body.principal;
    }
    out.role = body.role;
    out.purpose = body.purpose;
    out.attributes =
        body.attributes.into_iter().map(|(attribute, matches)| pb::AttributeMatch { attribute, matches }).collect();
    out
}
