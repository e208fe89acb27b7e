//! Authentication: who is calling. Principals and their roles come from the config; a
//! caller proves to be one by a bearer token (`authorization: Bearer <token>`) or, under
//! mTLS, by the subject of its client certificate. The interceptor here puts the
//! authenticated [`Principal`] in the request's extensions; `policy` decides what it
//! may call.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

use crate::config::PrincipalConfig;

/// What a principal is allowed to do (see `policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Registers persons and changes their records at a Huduma centre.
    Registrar,
    /// An agency system: resolves persons, links its own records, follows changes.
    Agency,
    /// Reads the log and its keys.
    Auditor,
    /// Operates the registry: everything a registrar and an auditor may do, and erasure.
    Admin,
    /// A portal built for citizens: lists who looked a person up, nothing else.
    CitizenPortal,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Registrar, Role::Agency, Role::Auditor, Role::Admin, Role::CitizenPortal];

    pub fn name(self) -> &'static str {
        match self {
            Role::Registrar => "registrar",
            Role::Agency => "agency",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
            Role::CitizenPortal => "citizen-portal",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The agency code, for role agency.
    pub agency: Option<String>,
}

impl Principal {
    /// The agency whose records, tokens and policy bound what this caller sees: its
    /// own code for an agency, `None` (everything) for the other roles.
    pub fn agency_scope(&self) -> Option<&str> {
        match self.role {
            Role::Agency => self.agency.as_deref(),
            _ => None,
        }
    }
}

/// The metadata key of a refusal's "retry after this many milliseconds" (gRPC's retry
/// pushback, which gRPC's own retry policies honour).
pub const RETRY_PUSHBACK: &str = "grpc-retry-pushback-ms";

/// What a call proved who it is with: a bearer token (held by its hash) or a client
/// certificate's subject. Kept with the call, so a long-lived stream can be ended when
/// a reload withdraws it (`access_control`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Token([u8; 32]),
    Subject(String),
}

/// The credentials the server accepts, and the call rates of the principals that have
/// one. Tokens are held as BLAKE3 hashes, so a look-up compares hashes, not the secrets
/// themselves.
#[derive(Debug, Default)]
pub struct Authenticator {
    by_token: HashMap<[u8; 32], Arc<Principal>>,
    by_subject: HashMap<String, Arc<Principal>>,
    /// By principal name. Shared with the authenticator a reload replaces, where the
    /// principal's rate is unchanged (see [`Authenticator::renewed`]).
    rates: HashMap<String, Arc<CallRate>>,
    clock: governor::clock::DefaultClock,
}

/// A principal's allowance of calls: `per_second`, in bursts of up to as many (GCRA).
struct CallRate {
    per_second: u32,
    limiter: governor::DefaultDirectRateLimiter,
}

impl std::fmt::Debug for CallRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRate").field("per_second", &self.per_second).finish_non_exhaustive()
    }
}

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

impl Authenticator {
    /// From the (already checked) principals of the config.
    pub fn new(principals: &[PrincipalConfig]) -> Self {
        Self::renewed(principals, &Self::default())
    }

    /// From the principals of a reloaded config, in place of `previous`: a principal
    /// whose rate is unchanged keeps the allowance it has used (a reload is no fresh
    /// burst); one whose rate changed, or that is new, starts with a full one.
    pub fn renewed(principals: &[PrincipalConfig], previous: &Authenticator) -> Self {
        let mut auth = Self { clock: previous.clock.clone(), ..Self::default() };
        for p in principals {
            if let Some(per_second) = p.calls_per_second.and_then(std::num::NonZeroU32::new) {
                let rate = match previous.rates.get(&p.name) {
                    Some(rate) if rate.per_second == per_second.get() => Arc::clone(rate),
                    _ => {
                        let quota = governor::Quota::per_second(per_second);
                        let limiter = governor::RateLimiter::direct_with_clock(quota, auth.clock.clone());
                        Arc::new(CallRate { per_second: per_second.get(), limiter })
                    }
                };
                auth.rates.insert(p.name.clone(), rate);
            }
            let principal = Arc::new(Principal { name: p.name.clone(), role: p.role, agency: p.agency.clone() });
            if let Some(token) = &p.token {
                auth.by_token.insert(token_hash(token), Arc::clone(&principal));
            }
            if let Some(subject) = &p.cert_subject {
                auth.by_subject.insert(subject.clone(), principal);
            }
        }
        auth
    }

    /// The principal behind a call: its client certificate's subject if it presented
    /// one, else its bearer token.
    pub fn authenticate(&self, metadata: &MetadataMap, cert_subject: Option<&str>) -> Result<Arc<Principal>, Status> {
        self.credential_of(metadata, cert_subject).map(|(principal, _)| principal)
    }

    /// The principal a credential names, if any.
    pub fn names(&self, credential: &Credential) -> Option<&Arc<Principal>> {
        match credential {
            Credential::Token(hash) => self.by_token.get(hash),
            Credential::Subject(subject) => self.by_subject.get(subject),
        }
    }

    /// [`Self::authenticate`], with the credential the call proved it by.
    fn credential_of(
        &self,
        metadata: &MetadataMap,
        cert_subject: Option<&str>,
    ) -> Result<(Arc<Principal>, Credential), Status> {
        if let Some(subject) = cert_subject {
            let credential = Credential::Subject(subject.to_string());
            return match self.names(&credential) {
                Some(principal) => Ok((Arc::clone(principal), credential)),
                None => Err(Status::unauthenticated(format!(
                    "client certificate subject {subject:?} is not a known principal"
                ))),
            };
        }
        let Some(header) = metadata.get("authorization") else {
            return Err(Status::unauthenticated("authorization: missing (send `authorization: Bearer <token>`)"));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| Status::unauthenticated("authorization: expected `Bearer <token>`"))?;
        let credential = Credential::Token(token_hash(token));
        match self.names(&credential) {
            Some(principal) => Ok((Arc::clone(principal), credential)),
            None => Err(Status::unauthenticated("authorization: unknown token")),
        }
    }

    /// Whether `principal` may make one more call now (its `calls_per_second`); if not,
    /// RESOURCE_EXHAUSTED saying when it may, also as `grpc-retry-pushback-ms`.
    pub fn within_rate(&self, principal: &Principal) -> Result<(), Status> {
        use governor::clock::Clock as _;
        let Some(rate) = self.rates.get(&principal.name) else { return Ok(()) };
        let Err(not_until) = rate.limiter.check() else { return Ok(()) };
        // Rounded up: a caller that waits what it is told is then let through.
        let wait = not_until.wait_time_from(self.clock.now()).as_nanos().div_ceil(1_000_000).max(1);
        crate::metrics::rate_limited(&principal.name);
        let calls = if rate.per_second == 1 { "call" } else { "calls" };
        let mut status = Status::resource_exhausted(format!(
            "{} is over its rate of {} {calls} a second; retry in {wait} ms",
            principal.name, rate.per_second
        ));
        if let Ok(value) = wait.to_string().parse() {
            status.metadata_mut().insert(RETRY_PUSHBACK, value);
        }
        Err(status)
    }

    /// The interceptor: authenticates each call, holds it to its principal's rate, and
    /// attaches its principal and the credential it proved it by.
    pub fn intercept(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let subject = request.peer_certs().and_then(|certs| certs.first().and_then(|der| subject_of(der.as_ref())));
        let (principal, credential) = self.credential_of(request.metadata(), subject.as_deref())?;
        self.within_rate(&principal)?;
        request.extensions_mut().insert(principal);
        request.extensions_mut().insert(credential);
        Ok(request)
    }
}

/// The subject of a DER certificate as RFC 4514 text (`CN=...,O=...`).
pub fn subject_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.subject().to_string())
}

/// The credential the interceptor attached to a request.
pub fn credential<T>(request: &Request<T>) -> Result<Credential, Status> {
    request
        .extensions()
        .get::<Credential>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the call was not authenticated"))
}

/// The principal the interceptor attached to a request.
pub fn principal<T>(request: &Request<T>) -> Result<Arc<Principal>, Status> {
    request
        .extensions()
        .get::<Arc<Principal>>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("the call was not authenticated"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new(&[PrincipalConfig {
            name: "kra".into(),
            role: Role::Agency,
            agency: Some("KRA".into()),
            token: Some("dev-kra-0123456789abcdef".into()),
            cert_subject: Some("CN=kra-gateway".into()),
            calls_per_second: None,
        }])
    }

    fn metadata(value: &str) -> MetadataMap {
        let mut map = MetadataMap::new();
        map.insert("authorization", value.parse().unwrap());
        map
    }

    #[test]
    fn tokens_and_subjects_name_their_principal_and_nothing_else() {
        let auth = auth();
        let p = auth.authenticate(&metadata("Bearer dev-kra-0123456789abcdef"), None).unwrap();
        assert_eq!((p.name.as_str(), p.role, p.agency.as_deref()), ("kra", Role::Agency, Some("KRA")));
        assert_eq!(auth.authenticate(&MetadataMap::new(), Some("CN=kra-gateway")).unwrap().name, "kra");
        for bad in ["Bearer dev-kra-0123456789abcdeF", "dev-kra-0123456789abcdef", "Basic abc", "Bearer "] {
            let err = auth.authenticate(&metadata(bad), None).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{bad}");
        }
        assert!(auth.authenticate(&MetadataMap::new(), None).unwrap_err().message().contains("missing"));
        let err = auth.authenticate(&metadata("Bearer dev-kra-0123456789abcdef"), Some("CN=other")).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "an unknown certificate is not rescued by a token");
    }

    /// A principal with a rate has that many calls at once, then is refused with a
    /// time to retry after; a principal without one, and another principal, are not
    /// held to it.
    #[test]
    fn a_principal_over_its_rate_is_refused_with_when_to_retry() {
        let principal = |name: &str, calls_per_second| PrincipalConfig {
            name: name.into(),
            role: Role::Registrar,
            agency: None,
            token: Some(format!("dev-{name}-0123456789abcdef")),
            cert_subject: None,
            calls_per_second,
        };
        let auth = Authenticator::new(&[principal("slow", Some(3)), principal("free", None)]);
        let slow = auth.authenticate(&metadata("Bearer dev-slow-0123456789abcdef"), None).unwrap();
        let free = auth.authenticate(&metadata("Bearer dev-free-0123456789abcdef"), None).unwrap();
        for _ in 0..3 {
            auth.within_rate(&slow).expect("a burst of its rate");
        }
        let refused = auth.within_rate(&slow).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("slow is over its rate of 3 calls a second"), "{}", refused.message());
        let wait: u64 = refused.metadata().get(RETRY_PUSHBACK).unwrap().to_str().unwrap().parse().unwrap();
        assert!((1..=334).contains(&wait), "a third of a second at most, one call's worth: {wait} ms");
        for _ in 0..100 {
            auth.within_rate(&free).expect("no rate, no limit");
        }
        std::thread::sleep(std::time::Duration::from_millis(wait));
        auth.within_rate(&slow).expect("allowed again once the wait is over");

        // A reload that leaves the rate as it was is no fresh burst; one that changes
        // it starts the new rate afresh.
        let reloaded = Authenticator::renewed(&[principal("slow", Some(3)), principal("free", None)], &auth);
        let refused = reloaded.within_rate(&slow).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "the allowance used before the reload");
        let raised = Authenticator::renewed(&[principal("slow", Some(5)), principal("free", Some(1))], &reloaded);
        for _ in 0..5 {
            raised.within_rate(&slow).expect("a burst of the new rate");
        }
        raised.within_rate(&free).expect("a rate given at the reload starts full");
        assert!(raised.within_rate(&free).is_err(), "and holds");
    }
}
