//! [`Client`]: a connection to the registry with credentials, a deadline per call and
//! a retry policy, and a typed method for every RPC. Unary calls that fail with
//! UNAVAILABLE or DEADLINE_EXCEEDED, or with RESOURCE_EXHAUSTED saying when to retry
//! (the caller's call rate), are retried with exponential backoff (at least that wait)
//! and the *same* request (the same request id), so a retried registration returns the
//! first answer and never issues a second number.

use std::time::Duration;

use huduma_number::HudumaNumber;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Response, Status};
use tower::ServiceExt;

use crate::error::Error;
use crate::proto as pb;
use crate::proto::audit_client::AuditClient;
use crate::proto::operations_client::OperationsClient;
use crate::proto::registry_client::RegistryClient;
use crate::proto::resolver_client::ResolverClient;
use crate::types::{AccessPage, BackupProgress, Log, access_in, backup_progress_in, log_out};
use crate::types::{
    AgencyRecord, Change, Demographics, LogRecord, Receipt, ReplacementReason, Resolution, ResolveKey, VerifierKey,
    VerifierKeys, change_in, demographics_out, number_in, reason_out, receipt_in, record_out, resolution_in,
};

/// A boxed error, as transports report them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A transport's failure (a concrete type: a bare `BoxError` here trips a rustc
/// limitation with higher-ranked lifetimes when calls are spawned).
#[derive(Debug)]
pub struct TransportError(pub BoxError);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// What carries the calls: a tonic `Channel`, or any tower service over HTTP/2 that
/// speaks gRPC (tests put a fault-injecting layer here).
pub type Transport = tower::util::BoxCloneSyncService<
    tonic::codegen::http::Request<tonic::body::Body>,
    tonic::codegen::http::Response<tonic::body::Body>,
    TransportError,
>;

/// How failed calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 5, initial_backoff: Duration::from_millis(50), max_backoff: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1` (full jitter over an exponential cap).
    fn backoff(&self, attempt: u32) -> Duration {
        use rand::Rng;
        let cap = self.initial_backoff.saturating_mul(1 << attempt.min(16)).min(self.max_backoff);
        let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis))
    }
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoint: String,
    token: Option<String>,
    ca_pem: Option<Vec<u8>>,
    identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    domain_name: Option<String>,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
}

impl ClientBuilder {
    /// Sends `authorization: Bearer <token>` with every call.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trusts this CA (PEM) for the server's certificate; implies TLS.
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Presents this client certificate and key (PEM): mTLS.
    pub fn identity(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: impl Into<Vec<u8>>) -> Self {
        self.identity_pem = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// The name the server's certificate must carry, if not the endpoint's host.
    pub fn domain_name(mut self, name: impl Into<String>) -> Self {
        self.domain_name = Some(name.into());
        self
    }

    /// The deadline of each call (default 10 s); the server honours it too.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    fn endpoint(&self) -> Result<Endpoint, Error> {
        let mut endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(|e| Error::Transport(format!("endpoint {:?}: {e}", self.endpoint)))?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true);
        if self.ca_pem.is_some() || self.identity_pem.is_some() || self.endpoint.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            if let Some(ca) = &self.ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &self.identity_pem {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            if let Some(name) = &self.domain_name {
                tls = tls.domain_name(name.clone());
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        Ok(endpoint)
    }

    fn finish(self, transport: Transport) -> Result<Client, Error> {
        let auth = match &self.token {
            Some(token) => Some(
                format!("Bearer {token}")
                    .parse()
                    .map_err(|_| Error::Transport("the token is not printable ASCII".into()))?,
            ),
            None => None,
        };
        Ok(Client { transport, auth, timeout: self.timeout, retry: self.retry, log: Log::Identity })
    }

    /// Connects now (failing fast if the registry cannot be reached).
    pub async fn connect(self) -> Result<Client, Error> {
        let channel = self.endpoint()?.connect().await?;
        self.finish(boxed(channel))
    }

    /// Connects on first use (and reconnects as needed): never fails for an
    /// unreachable registry, whose calls then fail (and are retried) as UNAVAILABLE.
    pub fn connect_lazy(self) -> Result<Client, Error> {
        let channel = self.endpoint()?.connect_lazy();
        self.finish(boxed(channel))
    }

    /// Uses the given transport (e.g. a channel wrapped in tower layers).
    pub fn with_transport(self, transport: Transport) -> Result<Client, Error> {
        self.finish(transport)
    }
}

/// Boxes a channel as a [`Transport`].
pub fn boxed(channel: Channel) -> Transport {
    Transport::new(channel.map_err(|e| TransportError(e.into())))
}

/// A registry client. Cheap to clone; share it.
#[derive(Clone)]
pub struct Client {
    transport: Transport,
    auth: Option<MetadataValue<Ascii>>,
    timeout: Duration,
    retry: RetryPolicy,
    /// The log the audit calls read.
    log: Log,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("timeout", &self.timeout).field("retry", &self.retry).finish_non_exhaustive()
    }
}

/// A fresh, random request id (32 hex digits) for a command that has no natural one.
pub fn new_request_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A number from user input, checked before any call.
fn checked(number: &str) -> Result<String, Error> {
    Ok(number.parse::<HudumaNumber>()?.compact())
}

impl Client {
    /// Starts building a client for `endpoint` (e.g. `http://127.0.0.1:50051`).
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            token: None,
            ca_pem: None,
            identity_pem: None,
            domain_name: None,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
        }
    }

    /// This client with its audit calls (records, keys, checkpoints, proofs) reading
    /// `log`: `client.on_log(Log::Access).checkpoint(0)`.
    pub fn on_log(&self, log: Log) -> Self {
        Self { log, ..self.clone() }
    }

    /// Connects to `endpoint` with a bearer token.
    pub async fn connect(endpoint: impl Into<String>, token: impl Into<String>) -> Result<Self, Error> {
        Self::builder(endpoint).token(token).connect().await
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = self.authorized(message);
        request.set_timeout(self.timeout);
        request
    }

    /// A request with the credentials and no deadline: for a stream, which lasts as
    /// long as it has something to send.
    fn authorized<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(auth) = &self.auth {
            request.metadata_mut().insert("authorization", auth.clone());
        }
        request
    }

    /// Calls, retrying the same message on UNAVAILABLE and DEADLINE_EXCEEDED, and on
    /// RESOURCE_EXHAUSTED after at least the wait the registry asked for.
    async fn unary<T, R, Fut>(&self, message: T, call: impl Fn(Transport, Request<T>) -> Fut) -> Result<R, Error>
    where
        T: Clone,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        let mut attempt = 1;
        loop {
            match call(self.transport.clone(), self.request(message.clone())).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => {
                    let error = Error::from(status);
                    if !error.is_retryable() || attempt >= self.retry.attempts {
                        return Err(error);
                    }
                    tracing::debug!(%error, attempt, "retrying with the same request");
                    let wait = self.retry.backoff(attempt).max(error.retry_after().unwrap_or_default());
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    // --- Registry ---

    /// Registers a person; returns the number issued and the receipt. Repeating the
    /// call with the same `request_id` returns the same answer.
    pub async fn register_person(
        &self,
        request_id: &str,
        demographics: &Demographics,
        centre: &str,
    ) -> Result<(HudumaNumber, Receipt), Error> {
        self.register(request_id, demographics, centre, String::new()).await
    }

    /// Registers a person although the duplicate search refused it
    /// ([`Error::PossibleDuplicate`]), stating why this is another person; the log
    /// records the justification and the candidates overridden.
    pub async fn register_person_overriding(
        &self,
        request_id: &str,
        demographics: &Demographics,
        centre: &str,
        justification: &str,
    ) -> Result<(HudumaNumber, Receipt), Error> {
        self.register(request_id, demographics, centre, justification.into()).await
    }

    async fn register(
        &self,
        request_id: &str,
        demographics: &Demographics,
        centre: &str,
        duplicate_override_justification: String,
    ) -> Result<(HudumaNumber, Receipt), Error> {
        let message = pb::RegisterPersonRequest {
            request_id: request_id.into(),
            demographics: Some(demographics_out(demographics)),
            centre: centre.into(),
            duplicate_override_justification,
        };
        let answer = self.unary(message, |t, r| async move { RegistryClient::new(t).register_person(r).await }).await?;
        Ok((number_in("huduma_number", &answer.huduma_number)?, receipt_in(answer.receipt)?))
    }

    /// The registered persons most like `demographics`, best first (at most `limit`,
    /// 1-50; 0: 10). Each one found is recorded in their access list. Role:
    /// registrar, admin.
    pub async fn find_duplicates(
        &self,
        demographics: &Demographics,
        limit: u32,
    ) -> Result<Vec<crate::types::DuplicateCandidate>, Error> {
        self.duplicates(demographics, limit, String::new()).await
    }

    /// [`Self::find_duplicates`] leaving out the person with `number`: what a correction
    /// of their demographics to `demographics` would be refused for.
    pub async fn find_duplicates_excluding(
        &self,
        demographics: &Demographics,
        limit: u32,
        number: &str,
    ) -> Result<Vec<crate::types::DuplicateCandidate>, Error> {
        self.duplicates(demographics, limit, checked(number)?).await
    }

    async fn duplicates(
        &self,
        demographics: &Demographics,
        limit: u32,
        excluding_huduma_number: String,
    ) -> Result<Vec<crate::types::DuplicateCandidate>, Error> {
        let message = pb::FindDuplicatesRequest {
            demographics: Some(demographics_out(demographics)),
            limit,
            excluding_huduma_number,
        };
        let answer = self.unary(message, |t, r| async move { RegistryClient::new(t).find_duplicates(r).await }).await?;
        Ok(answer.candidates.into_iter().filter_map(crate::types::candidate_in).collect())
    }

    /// Replaces a number; the old one resolves SUPERSEDED for ever.
    pub async fn replace_number(
        &self,
        request_id: &str,
        number: &str,
        reason: ReplacementReason,
        centre: &str,
    ) -> Result<(HudumaNumber, Receipt), Error> {
        let message = pb::ReplaceNumberRequest {
            request_id: request_id.into(),
            huduma_number: checked(number)?,
            reason: reason_out(reason) as i32,
            centre: centre.into(),
        };
        let answer = self.unary(message, |t, r| async move { RegistryClient::new(t).replace_number(r).await }).await?;
        Ok((number_in("new_huduma_number", &answer.new_huduma_number)?, receipt_in(answer.receipt)?))
    }

    /// Replaces a person's demographics (every field). Refused with
    /// [`Error::PossibleDuplicate`] when the corrected person is likely someone else
    /// registered; see [`Self::correct_demographics_overriding`].
    pub async fn correct_demographics(
        &self,
        request_id: &str,
        number: &str,
        demographics: &Demographics,
        centre: &str,
    ) -> Result<Receipt, Error> {
        self.correct(request_id, number, demographics, centre, String::new()).await
    }

    /// Corrects a person's demographics although the duplicate search refused it
    /// ([`Error::PossibleDuplicate`]), stating why they are not the persons found; the
    /// log records the justification and the candidates overridden.
    pub async fn correct_demographics_overriding(
        &self,
        request_id: &str,
        number: &str,
        demographics: &Demographics,
        centre: &str,
        justification: &str,
    ) -> Result<Receipt, Error> {
        self.correct(request_id, number, demographics, centre, justification.into()).await
    }

    async fn correct(
        &self,
        request_id: &str,
        number: &str,
        demographics: &Demographics,
        centre: &str,
        duplicate_override_justification: String,
    ) -> Result<Receipt, Error> {
        let message = pb::CorrectDemographicsRequest {
            request_id: request_id.into(),
            huduma_number: checked(number)?,
            demographics: Some(demographics_out(demographics)),
            centre: centre.into(),
            duplicate_override_justification,
        };
        let answer =
            self.unary(message, |t, r| async move { RegistryClient::new(t).correct_demographics(r).await }).await?;
        receipt_in(answer.receipt)
    }

    /// Records a death (`date_of_death`: `YYYY-MM-DD`).
    pub async fn record_death(
        &self,
        request_id: &str,
        number: &str,
        date_of_death: &str,
        centre: &str,
    ) -> Result<Receipt, Error> {
        let message = pb::RecordDeathRequest {
            request_id: request_id.into(),
            huduma_number: checked(number)?,
            date_of_death: date_of_death.into(),
            centre: centre.into(),
        };
        let answer = self.unary(message, |t, r| async move { RegistryClient::new(t).record_death(r).await }).await?;
        receipt_in(answer.receipt)
    }

    /// Withdraws a death recorded in error: the person resolves again with the status
    /// they had when it was recorded (active, or revoked).
    pub async fn retract_death(
        &self,
        request_id: &str,
        number: &str,
        reason: &str,
        centre: &str,
    ) -> Result<Receipt, Error> {
        let message = pb::RetractDeathRequest {
            request_id: request_id.into(),
            huduma_number: checked(number)?,
            reason: reason.into(),
            centre: centre.into(),
        };
        let answer = self.unary(message, |t, r| async move { RegistryClient::new(t).retract_death(r).await }).await?;
        receipt_in(answer.receipt)
    }

    pub async fn revoke_number(
        &self,
        request_id: &str,
        number: &str,
        reason: &str,
        centre: &str,
    ) -> Result<Receipt, Error> {
        let message = pb::RevokeNumberRequest {
            request_id: request_id.into(),
            huduma_number: checked(number)?,
            reason: reason.into(),
            centre: centre.into(),
        };
        let answer = self.unary(message, |t, r| async move { RegistryClient::new(t).revoke_number(r).await }).await?;
        receipt_in(answer.receipt)
    }

    pub async fn reinstate_number(
        &self,
        request_id: &str,
        number: &str,
        reason: &str,
        centre: &str,
    ) -> Result<Receipt, Error> {
        let message = pb::ReinstateNumberRequest {
            request_id: request_id.into(),
            huduma_number: checked(number)?,
            reason: reason.into(),
            centre: centre.into(),
        };
        let answer =
            self.unary(message, |t, r| async move { RegistryClient::new(t).reinstate_number(r).await }).await?;
        receipt_in(answer.receipt)
    }

    /// Links an agency's record to a person (an agency: its own records only; `centre`
    /// may then be empty).
    pub async fn link_agency_record(
        &self,
        request_id: &str,
        number: &str,
        record: &AgencyRecord,
        centre: &str,
    ) -> Result<Receipt, Error> {
        let message = pb::LinkAgencyRecordRequest {
            request_id: request_id.into(),
            huduma_number: checked(number)?,
            record: Some(record_out(record)),
            centre: centre.into(),
        };
        let answer =
            self.unary(message, |t, r| async move { RegistryClient::new(t).link_agency_record(r).await }).await?;
        receipt_in(answer.receipt)
    }

    pub async fn unlink_agency_record(
        &self,
        request_id: &str,
        number: &str,
        record: &AgencyRecord,
        centre: &str,
    ) -> Result<Receipt, Error> {
        let message = pb::UnlinkAgencyRecordRequest {
            request_id: request_id.into(),
            huduma_number: checked(number)?,
            record: Some(record_out(record)),
            centre: centre.into(),
        };
        let answer =
            self.unary(message, |t, r| async move { RegistryClient::new(t).unlink_agency_record(r).await }).await?;
        receipt_in(answer.receipt)
    }

    pub async fn merge_records(
        &self,
        request_id: &str,
        survivor: &str,
        duplicate: &str,
        justification: &str,
        centre: &str,
    ) -> Result<Receipt, Error> {
        let message = pb::MergeRecordsRequest {
            request_id: request_id.into(),
            survivor: checked(survivor)?,
            duplicate: checked(duplicate)?,
            justification: justification.into(),
            centre: centre.into(),
        };
        let answer = self.unary(message, |t, r| async move { RegistryClient::new(t).merge_records(r).await }).await?;
        receipt_in(answer.receipt)
    }

    /// Undoes a mistaken merge of `duplicate`: they resolve active again, with the
    /// agency records the merge moved that the survivor still holds.
    pub async fn unmerge_records(
        &self,
        request_id: &str,
        duplicate: &str,
        justification: &str,
        centre: &str,
    ) -> Result<Receipt, Error> {
        let message = pb::UnmergeRecordsRequest {
            request_id: request_id.into(),
            duplicate: checked(duplicate)?,
            justification: justification.into(),
            centre: centre.into(),
        };
        let answer = self.unary(message, |t, r| async move { RegistryClient::new(t).unmerge_records(r).await }).await?;
        receipt_in(answer.receipt)
    }

    /// The records that changed the person with `number` (any of their numbers), oldest
    /// first: what, when, by whom, through where and why; never their personal data.
    /// All of them, read a page at a time; each page read is recorded in their access
    /// list with `purpose`. The number and status are as the last page found them.
    pub async fn history(&self, number: &str, purpose: &str) -> Result<crate::types::History, Error> {
        let mut whole = self.history_page(number, purpose, 0, None).await?;
        while let Some(token) = whole.next_page_token.take() {
            let page = self.history_page(number, purpose, 0, Some(&token)).await?;
            // Each page starts past the last: a page that does not would page forever.
            let last = whole.entries.last().map(|e| e.index);
            if page.entries.first().is_none_or(|first| last.is_some_and(|last| first.index <= last)) {
                return Err(Error::Protocol(format!("the history page after token {token:?} does not move on")));
            }
            whole.entries.extend(page.entries);
            (whole.current_number, whole.status, whole.next_page_token) =
                (page.current_number, page.status, page.next_page_token);
        }
        Ok(whole)
    }

    /// A page of the person's history, oldest first: at most `page_size` records (0:
    /// the server's default of 50; fewer where more would pass its message limit),
    /// continuing from a previous page's `next_page_token`. Recorded in their access
    /// list with `purpose`.
    pub async fn history_page(
        &self,
        number: &str,
        purpose: &str,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<crate::types::History, Error> {
        let message = pb::GetHistoryRequest {
            huduma_number: checked(number)?,
            purpose: purpose.into(),
            page_size,
            page_token: page_token.unwrap_or_default().into(),
        };
        let answer = self.unary(message, |t, r| async move { RegistryClient::new(t).get_history(r).await }).await?;
        crate::types::history_in(answer)
    }

    pub async fn erase_personal_data(
        &self,
        request_id: &str,
        number: &str,
        legal_basis: &str,
    ) -> Result<Receipt, Error> {
        let message = pb::ErasePersonalDataRequest {
            request_id: request_id.into(),
            huduma_number: checked(number)?,
            legal_basis: legal_basis.into(),
        };
        let answer =
            self.unary(message, |t, r| async move { RegistryClient::new(t).erase_personal_data(r).await }).await?;
        receipt_in(answer.receipt)
    }

    // --- Resolver ---

    /// Resolves a number or an agency record, for `purpose` (required; recorded).
    pub async fn resolve(&self, key: impl Into<ResolveKey>, purpose: &str) -> Result<Resolution, Error> {
        let key = match key.into() {
            ResolveKey::Number(n) => pb::resolve_request::Key::HudumaNumber(n.compact()),
            ResolveKey::Record(r) => pb::resolve_request::Key::AgencyRecord(record_out(&r)),
            ResolveKey::AgencyToken(t) => pb::resolve_request::Key::AgencyToken(t),
        };
        let message = pb::ResolveRequest { key: Some(key), purpose: purpose.into() };
        let answer = self.unary(message, |t, r| async move { ResolverClient::new(t).resolve(r).await }).await?;
        resolution_in(answer)
    }

    /// Asks whether each claimed attribute of `claim` holds for the person `key`
    /// names, learning nothing else: the person's status and, per attribute claimed,
    /// yes or no (names compared after Unicode compatibility caseless matching).
    pub async fn verify_attributes(
        &self,
        key: impl Into<ResolveKey>,
        claim: &crate::types::Claim,
        purpose: &str,
    ) -> Result<(crate::types::Status, Vec<(String, bool)>), Error> {
        let key = match key.into() {
            ResolveKey::Number(n) => pb::person_key::Key::HudumaNumber(n.compact()),
            ResolveKey::Record(r) => pb::person_key::Key::AgencyRecord(record_out(&r)),
            ResolveKey::AgencyToken(t) => pb::person_key::Key::AgencyToken(t),
        };
        let message = pb::VerifyAttributesRequest {
            key: Some(pb::PersonKey { key: Some(key) }),
            claimed: Some(crate::types::claim_out(claim)),
            purpose: purpose.into(),
        };
        let answer =
            self.unary(message, |t, r| async move { ResolverClient::new(t).verify_attributes(r).await }).await?;
        let status = crate::types::status_in(answer.status)?;
        Ok((status, answer.matches.into_iter().map(|m| (m.attribute, m.matches)).collect()))
    }

    /// Resolves a number as typed (checked offline first).
    pub async fn resolve_number(&self, number: &str, purpose: &str) -> Result<Resolution, Error> {
        self.resolve(number.parse::<HudumaNumber>()?, purpose).await
    }

    /// Resolves many keys with up to `concurrency` calls in flight; yields each answer
    /// with its position in `keys` as it arrives (not in order). For reconciling
    /// millions of records: memory stays bounded by `concurrency`.
    pub fn resolve_batch<I>(
        &self,
        keys: I,
        purpose: &str,
        concurrency: usize,
    ) -> ReceiverStream<(usize, Result<Resolution, Error>)>
    where
        I: IntoIterator<Item = ResolveKey> + Send + 'static,
        I::IntoIter: Send,
    {
        let (tx, rx) = mpsc::channel(concurrency.max(1) * 2);
        let client = self.clone();
        let purpose = purpose.to_string();
        tokio::spawn(async move {
            let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
            for (position, key) in keys.into_iter().enumerate() {
                let Ok(permit) = std::sync::Arc::clone(&permits).acquire_owned().await else { return };
                if tx.is_closed() {
                    return;
                }
                let (client, purpose, tx) = (client.clone(), purpose.clone(), tx.clone());
                tokio::spawn(async move {
                    let answer = client.resolve(key, &purpose).await;
                    let _ = tx.send((position, answer)).await;
                    drop(permit);
                });
            }
        });
        ReceiverStream::new(rx)
    }

    /// Follows the changes to persons linked with the calling agency from
    /// `from_index` on. After a disconnect (or a server restart) it reconnects with
    /// backoff and resumes after the last change it yielded; it ends only on an error
    /// that a retry cannot fix (yielded last) or when dropped.
    pub fn watch_changes(&self, from_index: u64) -> ReceiverStream<Result<Change, Error>> {
        let (tx, rx) = mpsc::channel(256);
        let client = self.clone();
        tokio::spawn(async move {
            let mut next = from_index;
            let mut failures = 0u32;
            loop {
                let mut request = Request::new(pb::WatchChangesRequest { from_index: next });
                if let Some(auth) = &client.auth {
                    request.metadata_mut().insert("authorization", auth.clone());
                }
                let opened = ResolverClient::new(client.transport.clone()).watch_changes(request).await;
                let mut stream = match opened {
                    Ok(stream) => stream.into_inner(),
                    Err(status) => {
                        let error = Error::from(status);
                        if !error.is_retryable() {
                            let _ = tx.send(Err(error)).await;
                            return;
                        }
                        failures += 1;
                        tokio::select! {
                            () = tokio::time::sleep(client.retry.backoff(failures)) => continue,
                            () = tx.closed() => return,
                        }
                    }
                };
                loop {
                    let item = tokio::select! {
                        item = stream.message() => item,
                        () = tx.closed() => return,
                    };
                    match item {
                        Ok(Some(change)) => {
                            failures = 0;
                            let change = change_in(change);
                            if let Ok(c) = &change {
                                next = c.index + 1;
                            }
                            if tx.send(change).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(status) => {
                            let error = Error::from(status);
                            if !error.is_retryable() && !matches!(error, Error::Other { .. }) {
                                let _ = tx.send(Err(error)).await;
                                return;
                            }
                            break;
                        }
                    }
                }
                failures += 1;
                tokio::select! {
                    () = tokio::time::sleep(client.retry.backoff(failures)) => {},
                    () = tx.closed() => return,
                }
            }
        });
        ReceiverStream::new(rx)
    }

    /// Who looked the person up, newest first: a page of at most `page_size` (0: the
    /// server's default of 50), at or after `since` (RFC 3339) if given, continuing
    /// from a previous page's `next_page_token`. Role: citizen-portal (never shown which
    /// official: `principal` is empty), admin (shown it, to answer a complaint).
    pub async fn list_accesses(
        &self,
        number: &str,
        since: Option<&str>,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<AccessPage, Error> {
        let message = pb::ListAccessesRequest {
            huduma_number: checked(number)?,
            since: since.unwrap_or_default().into(),
            page_size,
            page_token: page_token.unwrap_or_default().into(),
        };
        let answer = self.unary(message, |t, r| async move { ResolverClient::new(t).list_accesses(r).await }).await?;
        Ok(AccessPage {
            accesses: answer.accesses.into_iter().map(access_in).collect(),
            next_page_token: Some(answer.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    // --- Operations ---

    /// Has the registry take a backup while it serves, into the directory `name` under
    /// its `backup_dir` (admins): progress as it goes, then what was taken. Not retried:
    /// a second call with the same name is refused (ALREADY_EXISTS).
    pub async fn backup(&self, name: &str) -> Result<ReceiverStream<Result<BackupProgress, Error>>, Error> {
        let request = self.authorized(pb::BackupRequest { name: name.into() });
        let stream = OperationsClient::new(self.transport.clone()).backup(request).await?.into_inner();
        Ok(forward(stream, 16, |p| backup_progress_in(p).map_err(Error::Protocol)))
    }

    // --- Audit ---

    /// The records with index in `[start, end)`; `end = 0` means to the end of the log.
    pub async fn get_records(&self, start: u64, end: u64) -> Result<ReceiverStream<Result<LogRecord, Error>>, Error> {
        let request = self.authorized(pb::GetRecordsRequest { start, end, log: log_out(self.log) });
        let stream = AuditClient::new(self.transport.clone()).get_records(request).await?.into_inner();
        Ok(forward(stream, 1024, |r| Ok(LogRecord { index: r.index, data: r.data })))
    }

    /// The log's origin, its keys (C2SP verifier-key form) and its size.
    pub async fn verifier_keys(&self) -> Result<VerifierKeys, Error> {
        let answer = self
            .unary(pb::GetVerifierKeysRequest { log: log_out(self.log) }, |t, r| async move {
                AuditClient::new(t).get_verifier_keys(r).await
            })
            .await?;
        Ok(VerifierKeys {
            origin: answer.origin,
            keys: answer
                .keys
                .into_iter()
                .map(|k| VerifierKey { verifier_key: k.verifier_key, from_index: k.from_index })
                .collect(),
            log_size: answer.log_size,
        })
    }

    /// The newest signed checkpoint (`size` = 0) or the one signed at `size`, as the
    /// signed note text. Open it with [`crate::receipt::open_checkpoint`].
    pub async fn checkpoint(&self, size: u64) -> Result<String, Error> {
        let answer = self
            .unary(pb::GetCheckpointRequest { size, log: log_out(self.log) }, |t, r| async move {
                AuditClient::new(t).get_checkpoint(r).await
            })
            .await?;
        Ok(answer.note)
    }

    /// The inclusion proof of record `index` in the tree of `tree_size` records.
    pub async fn inclusion_proof(&self, index: u64, tree_size: u64) -> Result<Vec<[u8; 32]>, Error> {
        let message = pb::GetInclusionProofRequest { index, tree_size, log: log_out(self.log) };
        let answer =
            self.unary(message, |t, r| async move { AuditClient::new(t).get_inclusion_proof(r).await }).await?;
        hashes(answer.hashes)
    }

    /// The consistency proof from the tree of `old_size` records to that of `new_size`.
    pub async fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<[u8; 32]>, Error> {
        let message = pb::GetConsistencyProofRequest { old_size, new_size, log: log_out(self.log) };
        let answer =
            self.unary(message, |t, r| async move { AuditClient::new(t).get_consistency_proof(r).await }).await?;
        hashes(answer.hashes)
    }
}

fn hashes(raw: Vec<Vec<u8>>) -> Result<Vec<[u8; 32]>, Error> {
    raw.into_iter()
        .map(|h| h.as_slice().try_into().map_err(|_| Error::Protocol("a proof hash is not 32 bytes".into())))
        .collect()
}

/// A server stream's messages, each converted, on a channel of `capacity`: it ends
/// after the stream's end or its first error.
fn forward<M: Send + 'static, T: Send + 'static>(
    mut stream: tonic::Streaming<M>,
    capacity: usize,
    convert: impl Fn(M) -> Result<T, Error> + Send + 'static,
) -> ReceiverStream<Result<T, Error>> {
    let (tx, rx) = mpsc::channel(capacity);
    tokio::spawn(async move {
        loop {
            let item = match stream.message().await {
                Ok(Some(message)) => convert(message),
                Ok(None) => return,
                Err(status) => Err(Error::from(status)),
            };
            let failed = item.is_err();
            if tx.send(item).await.is_err() || failed {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}
