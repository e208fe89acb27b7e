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

/// What a call proved who it is with: a bearer token (held by its hash) or a client
/// certificate's subject. Kept with the call, so a long-lived stream can be ended when
/// a reload withdraws it (`access_control`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Token([u8; 32]),
    Subject(String),
}

/// The credentials the server accepts. Tokens are held as BLAKE3 hashes, so a look-up
/// compares hashes, not the secrets themselves.
#[derive(Debug, Default)]
pub struct Authenticator {
    by_token: HashMap<[u8; 32], Arc<Principal>>,
    by_subject: HashMap<String, Arc<Principal>>,
}

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

impl Authenticator {
    /// From the (already checked) principals of the config.
    pub fn new(principals: &[PrincipalConfig]) -> Self {
        let mut auth = Self::default();
        for p in principals {
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

    /// The interceptor: authenticates each call and attaches its principal and the
    /// credential it proved it by.
    pub fn intercept(&self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let subject = request.peer_certs().and_then(|certs| certs.first().and_then(|der| subject_of(der.as_ref())));
        let (principal, credential) = self.credential_of(request.metadata(), subject.as_deref())?;
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
}
