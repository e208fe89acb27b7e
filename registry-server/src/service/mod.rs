//! The gRPC services of `huduma.v1`, one module each.

pub mod audit;
pub mod operations;
pub mod paging;
pub mod registry;
pub mod resolver;

use registry_core::access::{AccessBody, AccessCall, AccessEvent, AccessOutcome, KeyUsed};
use registry_core::query::Subject;

use crate::auth::Principal;

/// What the access log records of a look-up besides who made it and whom it found.
struct LookUp {
    call: AccessCall,
    purpose: String,
    key: KeyUsed,
}

impl LookUp {
    /// The access record of this look-up by `principal` (its name, role and agency),
    /// which found `found` (with their status) or nobody.
    fn by(self, principal: &Principal, found: Option<Subject>, attributes: Vec<(String, bool)>) -> AccessEvent {
        AccessEvent {
            person: found.map(|r| r.person),
            body: AccessBody {
                call: self.call,
                principal: principal.name.clone(),
                role: principal.role.name().into(),
                agency: principal.agency.clone().unwrap_or_default(),
                purpose: self.purpose,
                key: self.key,
                outcome: found.map_or(AccessOutcome::NotFound, |r| AccessOutcome::Found(r.status)),
                attributes,
            },
        }
    }
}
