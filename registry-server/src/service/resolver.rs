//! `huduma.v1.Resolver`: look-ups for agencies (and registrars), served from the
//! projections, and the stream of changes to an agency's linked persons.

use std::sync::Arc;

use registry_core::access::{AccessCall, KeyUsed};
use registry_core::command::check_reason;
use registry_core::event::kind;
use registry_core::query::{Change, Resolution};
use registry_core::registry::Registry;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::access_control::{AccessControl, Grant};
use crate::auth::{Principal, credential};
use crate::disclosure::redact;
use crate::metrics::timed;
use crate::policy::{Rpc, authorize, shows_officials};
use crate::proto as pb;
use crate::proto::resolver_server::Resolver as ResolverRpc;
use crate::service::LookUp;
use crate::service::paging::{self, Room};
use crate::wire;

/// How many changes one read takes from the store.
const CHANGE_CHUNK: usize = 256;

pub struct ResolverService {
    registry: Arc<Registry>,
    access: AccessControl,
    /// What a page of look-ups may take.
    room: Room,
    shutdown: watch::Receiver<bool>,
}

impl ResolverService {
    pub fn new(registry: Arc<Registry>, access: AccessControl, room: Room, shutdown: watch::Receiver<bool>) -> Self {
        Self { registry, access, room, shutdown }
    }

    /// Records a look-up in the access log and waits until it is durable: a look-up
    /// that cannot be recorded is not answered.
    async fn record_access(
        &self,
        principal: &Principal,
        look_up: LookUp,
        found: Option<&Resolution>,
        attributes: Vec<(String, bool)>,
    ) -> Result<(), Status> {
        let event = look_up.by(principal, found.map(Resolution::subject), attributes);
        self.registry.access().record(event).await.map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "a look-up could not be recorded; refusing it");
            Status::unavailable(format!("{e}: look-ups are refused until they can be recorded"))
        })
    }
}

/// The key a request named the person by, as the access log records it.
fn key_used(key: &pb::person_key::Key) -> KeyUsed {
    match key {
        pb::person_key::Key::HudumaNumber(n) => KeyUsed::HudumaNumber(n.clone()),
        pb::person_key::Key::AgencyRecord(r) => {
            KeyUsed::AgencyRecord { agency: r.agency.clone(), record_id: r.record_id.clone() }
        }
        pb::person_key::Key::AgencyToken(t) => KeyUsed::AgencyToken { agency: String::new(), token: t.clone() },
    }
}

fn change_kind(code: u16) -> pb::ChangeKind {
    match code {
        kind::NUMBER_REPLACED => pb::ChangeKind::NumberReplaced,
        kind::DEMOGRAPHICS_CORRECTED => pb::ChangeKind::DemographicsCorrected,
        kind::AGENCY_RECORD_LINKED => pb::ChangeKind::AgencyRecordLinked,
        kind::AGENCY_RECORD_UNLINKED => pb::ChangeKind::AgencyRecordUnlinked,
        kind::DEATH_RECORDED => pb::ChangeKind::DeathRecorded,
        kind::NUMBER_REVOKED => pb::ChangeKind::NumberRevoked,
        kind::NUMBER_REINSTATED => pb::ChangeKind::NumberReinstated,
        kind::RECORDS_MERGED => pb::ChangeKind::RecordsMerged,
        kind::PERSONAL_DATA_ERASED => pb::ChangeKind::PersonalDataErased,
        kind::RECORDS_UNMERGED => pb::ChangeKind::RecordsUnmerged,
        kind::DEATH_RETRACTED => pb::ChangeKind::DeathRetracted,
        _ => pb::ChangeKind::Unspecified,
    }
}

fn change_out(index: u64, change: Change, agency_token: String, show_number: bool) -> pb::Change {
    pb::Change {
        index,
        kind: change_kind(change.kind) as i32,
        huduma_number: if show_number { change.number.compact() } else { String::new() },
        status: wire::person_status_out(change.status) as i32,
        record_ids: change.records,
        agency_token,
    }
}

#[tonic::async_trait]
impl ResolverRpc for ResolverService {
    async fn resolve(&self, request: Request<pb::ResolveRequest>) -> Result<Response<pb::ResolveResponse>, Status> {
        timed(Rpc::Resolve, async {
            let principal = authorize(&request, Rpc::Resolve)?;
            let r = request.into_inner();
            check_reason("purpose", &r.purpose).map_err(wire::command_error)?;
            let own_agency = principal.agency_scope();
            let reader = self.registry.reader();
            let key = match r.key {
                None => None,
                Some(pb::resolve_request::Key::HudumaNumber(n)) => Some(pb::person_key::Key::HudumaNumber(n)),
                Some(pb::resolve_request::Key::AgencyRecord(a)) => Some(pb::person_key::Key::AgencyRecord(a)),
                Some(pb::resolve_request::Key::AgencyToken(t)) => Some(pb::person_key::Key::AgencyToken(t)),
            };
            let (found, asked, key) = lookup(&reader, &principal, own_agency, key)?;
            let look_up = LookUp { call: AccessCall::Resolve, purpose: r.purpose, key };
            self.record_access(&principal, look_up, found.as_ref(), Vec::new()).await?;
            let resolution = found.ok_or_else(not_found)?;
            let person = resolution.person;
            // An agency sees its own records only (and only those are opened);
            // registrars and admins see all.
            let records = reader
                .agency_records(&resolution, |agency| own_agency.is_none_or(|own| own == agency))
                .map_err(wire::query_error)?;
            let mut shown = wire::resolution_out(resolution, asked, records);
            if let Some(own) = own_agency {
                shown.agency_token = reader.agency_token(own, person);
            }
            redact(&self.access.current().disclosure.view_for(&principal), &mut shown);
            Ok(Response::new(shown))
        })
        .await
    }

    async fn verify_attributes(
        &self,
        request: Request<pb::VerifyAttributesRequest>,
    ) -> Result<Response<pb::VerifyAttributesResponse>, Status> {
        timed(Rpc::VerifyAttributes, async {
            let principal = authorize(&request, Rpc::VerifyAttributes)?;
            let r = request.into_inner();
            check_reason("purpose", &r.purpose).map_err(wire::command_error)?;
            let own_agency = principal.agency_scope();
            let claim = wire::claim(wire::required("claimed", r.claimed)?)?;
            let key = wire::required("key", r.key)?.key;
            let reader = self.registry.reader();
            let (found, _, key) = lookup(&reader, &principal, own_agency, key)?;
            let matches: Vec<pb::AttributeMatch> = match found.as_ref().and_then(|r| r.demographics.as_ref()) {
                Some(actual) => registry_core::attribute_check::check(actual, &claim)
                    .into_iter()
                    .map(|m| pb::AttributeMatch { attribute: m.attribute.into(), matches: m.matches })
                    .collect(),
                None => Vec::new(),
            };
            let look_up = LookUp { call: AccessCall::VerifyAttributes, purpose: r.purpose, key };
            let recorded = matches.iter().map(|m| (m.attribute.clone(), m.matches)).collect();
            self.record_access(&principal, look_up, found.as_ref(), recorded).await?;
            let resolution = found.ok_or_else(not_found)?;
            Ok(Response::new(pb::VerifyAttributesResponse {
                status: wire::status_out(resolution.status) as i32,
                matches,
            }))
        })
        .await
    }

    async fn list_accesses(
        &self,
        request: Request<pb::ListAccessesRequest>,
    ) -> Result<Response<pb::ListAccessesResponse>, Status> {
        timed(Rpc::ListAccesses, async {
            let principal = authorize(&request, Rpc::ListAccesses)?;
            let r = request.into_inner();
            let number = wire::number("huduma_number", &r.huduma_number)?;
            let since = if r.since.is_empty() { 0 } else { wire::unix_ms_from_rfc3339("since", &r.since)? };
            let page_size = paging::page_size(r.page_size)?;
            let before = paging::page_token(&r.page_token)?;
            let registry = Arc::clone(&self.registry);
            // The person (nothing sealed opened) and the page are read off the async threads.
            let page = tokio::task::spawn_blocking(move || {
                let subject = registry
                    .reader()
                    .subject(number)
                    .map_err(wire::query_error)?
                    .ok_or_else(|| Status::not_found("huduma_number: no person has this number"))?;
                registry.access().reader().list(subject.person, before, since, page_size).map_err(wire::query_error)
            })
            .await
            .map_err(|e| Status::internal(format!("the look-ups could not be read: {e}")))??;
            let officials = shows_officials(principal.role);
            let mut accesses: Vec<_> =
                page.entries.into_iter().map(|listed| wire::access_out(listed, officials)).collect();
            // Cut where the answer would pass the message limit; the next (older) page
            // starts at the first look-up left out.
            let next_before = self.room.cut(&mut accesses).map(|left_out| left_out.index + 1).or(page.next_before);
            Ok(Response::new(pb::ListAccessesResponse {
                accesses,
                next_page_token: next_before.map(|b| b.to_string()).unwrap_or_default(),
            }))
        })
        .await
    }

    type WatchChangesStream = ReceiverStream<Result<pb::Change, Status>>;

    async fn watch_changes(
        &self,
        request: Request<pb::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        timed(Rpc::WatchChanges, async {
            let principal = authorize(&request, Rpc::WatchChanges)?;
            let agency = principal
                .agency
                .clone()
                .ok_or_else(|| Status::permission_denied(format!("{} has no agency code", principal.name)))?;
            let view = self.access.current().disclosure.view_for(&principal);
            let show_number = view.huduma_number;
            let grant = self.access.grant(credential(&request)?, Arc::clone(&principal), view);
            let from = request.into_inner().from_index;
            let (tx, rx) = mpsc::channel(CHANGE_CHUNK);
            let reader = self.registry.reader();
            let ends = Ends { durable: self.registry.durable_size(), shutdown: self.shutdown.clone(), grant };
            tokio::spawn(follow_changes(reader, agency, show_number, from, ends, tx));
            Ok(Response::new(ReceiverStream::new(rx)))
        })
        .await
    }
}

fn not_found() -> Status {
    Status::not_found("no person has this key")
}

/// Finds the person a key names, as `principal` may: an agency resolves records of
/// its own code and tokens of its own only. Returns the resolution (`None`: nobody has
/// the key), the number asked for if the key was a number, and the key as the access
/// log records it. A malformed or forbidden key is an error: nothing was looked up.
fn lookup(
    reader: &registry_core::query::Reader,
    principal: &Principal,
    own_agency: Option<&str>,
    key: Option<pb::person_key::Key>,
) -> Result<(Option<registry_core::query::Resolution>, Option<huduma_number::HudumaNumber>, KeyUsed), Status> {
    let mut used = key.as_ref().map(key_used);
    if let (Some(KeyUsed::AgencyToken { agency, .. }), Some(own)) = (&mut used, own_agency) {
        *agency = own.to_string();
    }
    let (found, asked) = match key {
        None => return Err(wire::invalid("key", "required: huduma_number, agency_record or agency_token")),
        Some(pb::person_key::Key::HudumaNumber(text)) => {
            let number = wire::number("huduma_number", &text)?;
            (reader.resolve_number(number).map_err(wire::query_error)?, Some(number))
        }
        Some(pb::person_key::Key::AgencyToken(token)) => {
            // A token names a person only for the agency it was issued to.
            let Some(own) = own_agency else {
                return Err(wire::invalid("agency_token", "only an agency resolves by its token"));
            };
            (reader.resolve_agency_token(own, &token).map_err(wire::query_error)?, None)
        }
        Some(pb::person_key::Key::AgencyRecord(record)) => {
            if let Some(own) = own_agency
                && own != record.agency
            {
                return Err(Status::permission_denied(format!(
                    "{} may resolve {own} records only, not {:?}",
                    principal.name, record.agency
                )));
            }
            (reader.resolve_agency_record(&record.agency, &record.record_id).map_err(wire::query_error)?, None)
        }
    };
    let used = used.ok_or_else(|| wire::invalid("key", "required: huduma_number, agency_record or agency_token"))?;
    Ok((found, asked, used))
}

/// What a change stream waits on besides its caller: the durable size growing, the
/// server shutting down, a reload withdrawing its access.
struct Ends {
    durable: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    grant: Grant,
}

/// Sends the agency's changes from `next` on, reading only what is durable, then waits
/// for more; ends when the caller goes away, the server shuts down, or a reload
/// withdraws the caller's access.
async fn follow_changes(
    reader: registry_core::query::Reader,
    agency: String,
    show_number: bool,
    mut next: u64,
    ends: Ends,
    tx: mpsc::Sender<Result<pb::Change, Status>>,
) {
    let Ends { mut durable, mut shutdown, mut grant } = ends;
    loop {
        if grant.is_withdrawn() {
            let _ = tx.send(Err(grant.status())).await;
            return;
        }
        let size = *durable.borrow_and_update();
        let changes = match reader.agency_changes(&agency, next, CHANGE_CHUNK) {
            Ok(changes) => changes,
            Err(e) => {
                let _ = tx.send(Err(wire::query_error(e))).await;
                return;
            }
        };
        let full = changes.len() == CHANGE_CHUNK;
        let mut sent_any = false;
        for (index, change) in changes.into_iter().take_while(|(index, _)| *index < size) {
            let token = reader.agency_token(&agency, change.person);
            if tx.send(Ok(change_out(index, change, token, show_number))).await.is_err() {
                return;
            }
            next = index + 1;
            sent_any = true;
        }
        if sent_any && full {
            continue;
        }
        // Nothing more below the durable size: wait for the log to grow.
        next = next.max(size);
        tokio::select! {
            changed = durable.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
            () = grant.withdrawn() => {
                let _ = tx.send(Err(grant.status())).await;
                return;
            }
            _ = shutdown.changed() => {
                let _ = tx.send(Err(Status::unavailable("the server is shutting down; resume from the last index + 1"))).await;
                return;
            }
        }
    }
}
