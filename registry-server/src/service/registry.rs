//! `huduma.v1.Registry`: the commands that change the registry. Each handler checks
//! the caller's role, turns the request into a core `Command` (refusing bad fields by
//! name), submits it to the sequencer and answers once it is durable.

use std::sync::Arc;

use registry_core::access::{AccessCall, KeyUsed};
use registry_core::command::{Command, CommandError, Outcome, Submission, check_identifier, check_reason};
use registry_core::event::Actor;
use registry_core::registry::Registry;
use tonic::{Request, Response, Status};

use crate::auth::Principal;
use crate::metrics::timed;
use crate::policy::{Rpc, authorize, shows_officials, shows_other_persons};
use crate::proto as pb;
use crate::proto::registry_server::Registry as RegistryRpc;
use crate::service::LookUp;
use crate::service::paging::{self, Room};
use crate::wire;

pub struct RegistryService {
    registry: Arc<Registry>,
    /// What a page of a history may take.
    room: Room,
}

impl RegistryService {
    pub fn new(registry: Arc<Registry>, room: Room) -> Self {
        Self { registry, room }
    }

    async fn submit(&self, request_id: String, actor: Actor, command: Command) -> Result<Outcome, Status> {
        self.registry.submit(Submission { request_id, actor, command }).await.map_err(wire::command_error)
    }

    /// Submits a command the duplicate search checks (a registration or a correction):
    /// a refusal for likely duplicates is recorded in each candidate's access list
    /// (`purpose` says at what) before it is answered, with the candidates in its
    /// details.
    async fn submit_searched(
        &self,
        principal: &Principal,
        submission: Submission,
        purpose: &str,
    ) -> Result<Outcome, Status> {
        match self.registry.submit(submission).await {
            Ok(outcome) => Ok(outcome),
            Err(CommandError::PossibleDuplicate { candidates }) => {
                let found: Vec<_> = candidates.iter().map(|(n, s)| (*n, *s as f32 / 100.0)).collect();
                let numbers: Vec<_> = found.iter().map(|(n, _)| *n).collect();
                self.record_found(principal, &numbers, purpose).await?;
                Err(wire::possible_duplicate(&CommandError::PossibleDuplicate { candidates }, &found))
            }
            Err(e) => Err(wire::command_error(e)),
        }
    }

    /// Records that a duplicate search (at `purpose`) showed `principal` these persons'
    /// numbers (each person sees it in their access list); answers only once recorded.
    async fn record_found(
        &self,
        principal: &Principal,
        numbers: &[huduma_number::HudumaNumber],
        purpose: &str,
    ) -> Result<(), Status> {
        // Whom each number names (nothing sealed opened), read off the async threads.
        let (registry, asked) = (Arc::clone(&self.registry), numbers.to_vec());
        let found = tokio::task::spawn_blocking(move || {
            let reader = registry.reader();
            asked.into_iter().map(|number| reader.subject(number)).collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| Status::internal(format!("the persons found could not be read: {e}")))?
        .map_err(wire::query_error)?;
        let events = found.into_iter().flatten().map(|found| {
            let look_up =
                LookUp { call: AccessCall::FindDuplicates, purpose: purpose.into(), key: KeyUsed::Demographics };
            look_up.by(principal, Some(found), Vec::new())
        });
        // Queued together, they share a commit rather than wait for one each.
        self.registry.access().record_all(events.collect()).await.map_err(|e| {
            Status::unavailable(format!("{e}: duplicate searches are refused until they can be recorded"))
        })?;
        Ok(())
    }
}

/// Who the event will name: the principal, and the centre it came through (an agency
/// comes through its own agency code).
fn actor(principal: &Principal, centre: &str) -> Result<Actor, Status> {
    let via = match (&principal.agency, centre) {
        (Some(agency), "") => agency.clone(),
        (Some(agency), centre) if centre == agency => agency.clone(),
        (Some(agency), _) => return Err(wire::invalid("centre", format!("an agency calls through its code {agency}"))),
        (None, centre) => {
            check_identifier("centre", centre).map_err(wire::command_error)?;
            centre.to_string()
        }
    };
    Ok(Actor { principal: principal.name.clone(), via })
}

/// An agency may touch only records of its own agency code.
fn own_record(principal: &Principal, record: &pb::AgencyRecord) -> Result<(), Status> {
    match principal.agency_scope() {
        Some(agency) if agency != record.agency => Err(Status::permission_denied(format!(
            "{} may link and unlink {agency} records only, not {:?}",
            principal.name, record.agency
        ))),
        _ => Ok(()),
    }
}

fn receipt(outcome: &Outcome) -> Option<pb::Receipt> {
    Some(wire::receipt(outcome.receipt))
}

/// A request's `duplicate_override_justification`: `None` when empty (the search
/// refuses likely duplicates), else checked as a reason, named by its field.
fn override_justification(justification: String) -> Result<Option<String>, Status> {
    if justification.is_empty() {
        return Ok(None);
    }
    check_reason("duplicate_override_justification", &justification).map_err(wire::command_error)?;
    Ok(Some(justification))
}

fn issued(outcome: &Outcome) -> Result<String, Status> {
    outcome.number.map(|n| n.compact()).ok_or_else(|| Status::internal("the registry issued no number"))
}

#[tonic::async_trait]
impl RegistryRpc for RegistryService {
    async fn register_person(
        &self,
        request: Request<pb::RegisterPersonRequest>,
    ) -> Result<Response<pb::RegisterPersonResponse>, Status> {
        timed(Rpc::RegisterPerson, async {
            let principal = authorize(&request, Rpc::RegisterPerson)?;
            let r = request.into_inner();
            let demographics = wire::demographics(r.demographics)?;
            let actor = actor(&principal, &r.centre)?;
            let command = match override_justification(r.duplicate_override_justification)? {
                None => Command::RegisterPerson { demographics },
                Some(justification) => Command::RegisterPersonOverridingDuplicates { demographics, justification },
            };
            let submission = Submission { request_id: r.request_id, actor, command };
            let outcome = self.submit_searched(&principal, submission, "duplicate search at enrolment").await?;
            Ok(Response::new(pb::RegisterPersonResponse {
                huduma_number: issued(&outcome)?,
                receipt: receipt(&outcome),
            }))
        })
        .await
    }

    async fn find_duplicates(
        &self,
        request: Request<pb::FindDuplicatesRequest>,
    ) -> Result<Response<pb::FindDuplicatesResponse>, Status> {
        timed(Rpc::FindDuplicates, async {
            let principal = authorize(&request, Rpc::FindDuplicates)?;
            let r = request.into_inner();
            let limit = match r.limit {
                0 => 10,
                n @ 1..=50 => n as usize,
                _ => return Err(wire::invalid("limit", "at most 50")),
            };
            let demographics = wire::demographics(r.demographics)?;
            let excluding = match r.excluding_huduma_number.as_str() {
                "" => None,
                text => Some(wire::number("excluding_huduma_number", text)?),
            };
            let registry = Arc::clone(&self.registry);
            let found = tokio::task::spawn_blocking(move || {
                let reader = registry.reader();
                let excluded = match excluding {
                    None => None,
                    Some(number) => {
                        let found = reader.subject(number).map_err(wire::query_error)?.ok_or_else(|| {
                            Status::not_found(format!("excluding_huduma_number: no person has the number {number}"))
                        })?;
                        Some(found.person)
                    }
                };
                let floor = registry_core::dedup::REPORT_FLOOR;
                reader.find_duplicates(&demographics, floor, limit, excluded).map_err(wire::query_error)
            })
            .await
            .map_err(|e| Status::internal(format!("the search failed: {e}")))??;
            let found: Vec<_> = found.iter().map(|c| (c.number, c.score)).collect();
            let numbers: Vec<_> = found.iter().map(|(n, _)| *n).collect();
            // With a person left out, it is the search a correction of theirs meets.
            let purpose =
                if excluding.is_some() { "duplicate search at a correction" } else { "duplicate search at enrolment" };
            self.record_found(&principal, &numbers, purpose).await?;
            Ok(Response::new(wire::duplicates_out(&found)))
        })
        .await
    }

    async fn replace_number(
        &self,
        request: Request<pb::ReplaceNumberRequest>,
    ) -> Result<Response<pb::ReplaceNumberResponse>, Status> {
        timed(Rpc::ReplaceNumber, async {
            let principal = authorize(&request, Rpc::ReplaceNumber)?;
            let r = request.into_inner();
            let number = wire::number("huduma_number", &r.huduma_number)?;
            let reason = wire::replacement_reason("reason", r.reason)?;
            let actor = actor(&principal, &r.centre)?;
            let outcome = self.submit(r.request_id, actor, Command::ReplaceNumber { number, reason }).await?;
            Ok(Response::new(pb::ReplaceNumberResponse {
                new_huduma_number: issued(&outcome)?,
                receipt: receipt(&outcome),
            }))
        })
        .await
    }

    async fn correct_demographics(
        &self,
        request: Request<pb::CorrectDemographicsRequest>,
    ) -> Result<Response<pb::CorrectDemographicsResponse>, Status> {
        timed(Rpc::CorrectDemographics, async {
            let principal = authorize(&request, Rpc::CorrectDemographics)?;
            let r = request.into_inner();
            let number = wire::number("huduma_number", &r.huduma_number)?;
            let demographics = wire::demographics(r.demographics)?;
            let actor = actor(&principal, &r.centre)?;
            let command = match override_justification(r.duplicate_override_justification)? {
                None => Command::CorrectDemographics { number, demographics },
                Some(justification) => {
                    Command::CorrectDemographicsOverridingDuplicates { number, demographics, justification }
                }
            };
            let submission = Submission { request_id: r.request_id, actor, command };
            let outcome = self.submit_searched(&principal, submission, "duplicate search at a correction").await?;
            Ok(Response::new(pb::CorrectDemographicsResponse { receipt: receipt(&outcome) }))
        })
        .await
    }

    async fn record_death(
        &self,
        request: Request<pb::RecordDeathRequest>,
    ) -> Result<Response<pb::RecordDeathResponse>, Status> {
        timed(Rpc::RecordDeath, async {
            let principal = authorize(&request, Rpc::RecordDeath)?;
            let r = request.into_inner();
            let number = wire::number("huduma_number", &r.huduma_number)?;
            let actor = actor(&principal, &r.centre)?;
            let command = Command::RecordDeath { number, date_of_death: r.date_of_death };
            let outcome = self.submit(r.request_id, actor, command).await?;
            Ok(Response::new(pb::RecordDeathResponse { receipt: receipt(&outcome) }))
        })
        .await
    }

    async fn retract_death(
        &self,
        request: Request<pb::RetractDeathRequest>,
    ) -> Result<Response<pb::RetractDeathResponse>, Status> {
        timed(Rpc::RetractDeath, async {
            let principal = authorize(&request, Rpc::RetractDeath)?;
            let r = request.into_inner();
            let number = wire::number("huduma_number", &r.huduma_number)?;
            let actor = actor(&principal, &r.centre)?;
            let command = Command::RetractDeath { number, reason: r.reason };
            let outcome = self.submit(r.request_id, actor, command).await?;
            Ok(Response::new(pb::RetractDeathResponse { receipt: receipt(&outcome) }))
        })
        .await
    }

    async fn revoke_number(
        &self,
        request: Request<pb::RevokeNumberRequest>,
    ) -> Result<Response<pb::RevokeNumberResponse>, Status> {
        timed(Rpc::RevokeNumber, async {
            let principal = authorize(&request, Rpc::RevokeNumber)?;
            let r = request.into_inner();
            let number = wire::number("huduma_number", &r.huduma_number)?;
            let actor = actor(&principal, &r.centre)?;
            let outcome = self.submit(r.request_id, actor, Command::RevokeNumber { number, reason: r.reason }).await?;
            Ok(Response::new(pb::RevokeNumberResponse { receipt: receipt(&outcome) }))
        })
        .await
    }

    async fn reinstate_number(
        &self,
        request: Request<pb::ReinstateNumberRequest>,
    ) -> Result<Response<pb::ReinstateNumberResponse>, Status> {
        timed(Rpc::ReinstateNumber, async {
            let principal = authorize(&request, Rpc::ReinstateNumber)?;
            let r = request.into_inner();
            let number = wire::number("huduma_number", &r.huduma_number)?;
            let actor = actor(&principal, &r.centre)?;
            let command = Command::ReinstateNumber { number, reason: r.reason };
            let outcome = self.submit(r.request_id, actor, command).await?;
            Ok(Response::new(pb::ReinstateNumberResponse { receipt: receipt(&outcome) }))
        })
        .await
    }

    async fn link_agency_record(
        &self,
        request: Request<pb::LinkAgencyRecordRequest>,
    ) -> Result<Response<pb::LinkAgencyRecordResponse>, Status> {
        timed(Rpc::LinkAgencyRecord, async {
            let principal = authorize(&request, Rpc::LinkAgencyRecord)?;
            let r = request.into_inner();
            let number = wire::number("huduma_number", &r.huduma_number)?;
            let record = wire::required("record", r.record)?;
            own_record(&principal, &record)?;
            let actor = actor(&principal, &r.centre)?;
            let command = Command::LinkAgencyRecord { number, agency: record.agency, record_id: record.record_id };
            let outcome = self.submit(r.request_id, actor, command).await?;
            Ok(Response::new(pb::LinkAgencyRecordResponse { receipt: receipt(&outcome) }))
        })
        .await
    }

    async fn unlink_agency_record(
        &self,
        request: Request<pb::UnlinkAgencyRecordRequest>,
    ) -> Result<Response<pb::UnlinkAgencyRecordResponse>, Status> {
        timed(Rpc::UnlinkAgencyRecord, async {
            let principal = authorize(&request, Rpc::UnlinkAgencyRecord)?;
            let r = request.into_inner();
            let number = wire::number("huduma_number", &r.huduma_number)?;
            let record = wire::required("record", r.record)?;
            own_record(&principal, &record)?;
            let actor = actor(&principal, &r.centre)?;
            let command = Command::UnlinkAgencyRecord { number, agency: record.agency, record_id: record.record_id };
            let outcome = self.submit(r.request_id, actor, command).await?;
            Ok(Response::new(pb::UnlinkAgencyRecordResponse { receipt: receipt(&outcome) }))
        })
        .await
    }

    async fn merge_records(
        &self,
        request: Request<pb::MergeRecordsRequest>,
    ) -> Result<Response<pb::MergeRecordsResponse>, Status> {
        timed(Rpc::MergeRecords, async {
            let principal = authorize(&request, Rpc::MergeRecords)?;
            let r = request.into_inner();
            let survivor = wire::number("survivor", &r.survivor)?;
            let duplicate = wire::number("duplicate", &r.duplicate)?;
            let actor = actor(&principal, &r.centre)?;
            let command = Command::MergeRecords { survivor, duplicate, justification: r.justification };
            let outcome = self.submit(r.request_id, actor, command).await?;
            Ok(Response::new(pb::MergeRecordsResponse { receipt: receipt(&outcome) }))
        })
        .await
    }

    async fn unmerge_records(
        &self,
        request: Request<pb::UnmergeRecordsRequest>,
    ) -> Result<Response<pb::UnmergeRecordsResponse>, Status> {
        timed(Rpc::UnmergeRecords, async {
            let principal = authorize(&request, Rpc::UnmergeRecords)?;
            let r = request.into_inner();
            let duplicate = wire::number("duplicate", &r.duplicate)?;
            let actor = actor(&principal, &r.centre)?;
            let command = Command::UnmergeRecords { duplicate, justification: r.justification };
            let outcome = self.submit(r.request_id, actor, command).await?;
            Ok(Response::new(pb::UnmergeRecordsResponse { receipt: receipt(&outcome) }))
        })
        .await
    }

    async fn get_history(
        &self,
        request: Request<pb::GetHistoryRequest>,
    ) -> Result<Response<pb::GetHistoryResponse>, Status> {
        timed(Rpc::GetHistory, async {
            let principal = authorize(&request, Rpc::GetHistory)?;
            let r = request.into_inner();
            let number = wire::number("huduma_number", &r.huduma_number)?;
            check_reason("purpose", &r.purpose).map_err(wire::command_error)?;
            let page_size = paging::page_size(r.page_size)?;
            let from = paging::page_token(&r.page_token)?.unwrap_or(0);
            let (registry, room) = (Arc::clone(&self.registry), self.room);
            let (officials, others) = (shows_officials(principal.role), shows_other_persons(principal.role));
            // The page's records, and the numbers in force of the persons they name,
            // are read off the async threads.
            let found = tokio::task::spawn_blocking(move || {
                let reader = registry.reader();
                let Some(page) = reader.history(number, from, page_size).map_err(wire::query_error)? else {
                    return Ok(None);
                };
                let own_numbers_of = (!others).then_some(page.subject.current_number);
                let audience = wire::HistoryAudience { officials, own_numbers_of };
                let entries = page.records.iter().map(|record| wire::history_entry_out(&reader, record, audience));
                let mut entries = entries.collect::<Result<Vec<_>, Status>>()?;
                // Cut where the answer would pass the message limit; the next page
                // starts at the first entry left out.
                let next = room.cut(&mut entries).map(|left_out| left_out.index).or(page.next);
                Ok::<_, Status>(Some((page.subject, entries, next)))
            })
            .await
            .map_err(|e| Status::internal(format!("the history could not be read: {e}")))??;
            // Recorded, found or not, before it is answered.
            let look_up =
                LookUp { call: AccessCall::History, purpose: r.purpose, key: KeyUsed::HudumaNumber(number.compact()) };
            let event = look_up.by(&principal, found.as_ref().map(|(subject, ..)| *subject), Vec::new());
            self.registry
                .access()
                .record(event)
                .await
                .map_err(|e| Status::unavailable(format!("{e}: histories are refused until they can be recorded")))?;
            let (subject, entries, next) =
                found.ok_or_else(|| Status::not_found(format!("huduma_number: no person has the number {number}")))?;
            Ok(Response::new(pb::GetHistoryResponse {
                current_number: subject.current_number.compact(),
                status: wire::status_out(subject.status) as i32,
                entries,
                next_page_token: next.map(|index| index.to_string()).unwrap_or_default(),
            }))
        })
        .await
    }

    async fn erase_personal_data(
        &self,
        request: Request<pb::ErasePersonalDataRequest>,
    ) -> Result<Response<pb::ErasePersonalDataResponse>, Status> {
        timed(Rpc::ErasePersonalData, async {
            let principal = authorize(&request, Rpc::ErasePersonalData)?;
            let r = request.into_inner();
            let number = wire::number("huduma_number", &r.huduma_number)?;
            let actor = Actor { principal: principal.name.clone(), via: "REGISTRY".into() };
            let command = Command::ErasePersonalData { number, legal_basis: r.legal_basis };
            let outcome = self.submit(r.request_id, actor, command).await?;
            Ok(Response::new(pb::ErasePersonalDataResponse { receipt: receipt(&outcome) }))
        })
        .await
    }
}
