//! Authorisation: which role may call which RPC. One table, [`Rpc::roles`], read by
//! every handler through [`authorize`]; the end-to-end tests walk it whole. Finer rules
//! (an agency links only its own records, sees only its own records) live beside the
//! handler that applies them.

use std::sync::Arc;

use tonic::{Request, Status};

use crate::auth::{Principal, Role, principal};

/// Every authorised RPC of `huduma.v1` (health and reflection are open to all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rpc {
    RegisterPerson,
    ReplaceNumber,
    CorrectDemographics,
    RecordDeath,
    RetractDeath,
    RevokeNumber,
    ReinstateNumber,
    LinkAgencyRecord,
    UnlinkAgencyRecord,
    MergeRecords,
    UnmergeRecords,
    GetHistory,
    ErasePersonalData,
    FindDuplicates,
    Resolve,
    WatchChanges,
    VerifyAttributes,
    ListAccesses,
    GetRecords,
    GetVerifierKeys,
    GetCheckpoint,
    GetInclusionProof,
    GetConsistencyProof,
    Backup,
}

use Role::{Admin, Agency, Auditor, CitizenPortal, Registrar};

impl Rpc {
    pub const ALL: [Rpc; 24] = [
        Rpc::RegisterPerson,
        Rpc::ReplaceNumber,
        Rpc::CorrectDemographics,
        Rpc::RecordDeath,
        Rpc::RetractDeath,
        Rpc::RevokeNumber,
        Rpc::ReinstateNumber,
        Rpc::LinkAgencyRecord,
        Rpc::UnlinkAgencyRecord,
        Rpc::MergeRecords,
        Rpc::UnmergeRecords,
        Rpc::GetHistory,
        Rpc::ErasePersonalData,
        Rpc::FindDuplicates,
        Rpc::Resolve,
        Rpc::WatchChanges,
        Rpc::VerifyAttributes,
        Rpc::ListAccesses,
        Rpc::GetRecords,
        Rpc::GetVerifierKeys,
        Rpc::GetCheckpoint,
        Rpc::GetInclusionProof,
        Rpc::GetConsistencyProof,
        Rpc::Backup,
    ];

    /// The RPC's method name, as in the .proto and the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Rpc::RegisterPerson => "RegisterPerson",
            Rpc::ReplaceNumber => "ReplaceNumber",
            Rpc::CorrectDemographics => "CorrectDemographics",
            Rpc::RecordDeath => "RecordDeath",
            Rpc::RetractDeath => "RetractDeath",
            Rpc::RevokeNumber => "RevokeNumber",
            Rpc::ReinstateNumber => "ReinstateNumber",
            Rpc::LinkAgencyRecord => "LinkAgencyRecord",
            Rpc::UnlinkAgencyRecord => "UnlinkAgencyRecord",
            Rpc::MergeRecords => "MergeRecords",
            Rpc::UnmergeRecords => "UnmergeRecords",
            Rpc::GetHistory => "GetHistory",
            Rpc::ErasePersonalData => "ErasePersonalData",
            Rpc::FindDuplicates => "FindDuplicates",
            Rpc::Resolve => "Resolve",
            Rpc::WatchChanges => "WatchChanges",
            Rpc::VerifyAttributes => "VerifyAttributes",
            Rpc::ListAccesses => "ListAccesses",
            Rpc::GetRecords => "GetRecords",
            Rpc::GetVerifierKeys => "GetVerifierKeys",
            Rpc::GetCheckpoint => "GetCheckpoint",
            Rpc::GetInclusionProof => "GetInclusionProof",
            Rpc::GetConsistencyProof => "GetConsistencyProof",
            Rpc::Backup => "Backup",
        }
    }

    /// The roles that may call it.
    pub fn roles(self) -> &'static [Role] {
        match self {
            Rpc::RegisterPerson
            | Rpc::ReplaceNumber
            | Rpc::CorrectDemographics
            | Rpc::RecordDeath
            | Rpc::RetractDeath
            | Rpc::RevokeNumber
            | Rpc::ReinstateNumber
            | Rpc::MergeRecords
            | Rpc::UnmergeRecords
            | Rpc::FindDuplicates => &[Registrar, Admin],
            // An agency only for records of its own agency code (checked by the handler).
            Rpc::LinkAgencyRecord | Rpc::UnlinkAgencyRecord => &[Registrar, Agency, Admin],
            Rpc::ErasePersonalData | Rpc::Backup => &[Admin],
            // What changed a person, never their personal data: the registrars and
            // admins who serve them, and the portal that shows a citizen their own.
            Rpc::GetHistory => &[Registrar, Admin, CitizenPortal],
            Rpc::Resolve | Rpc::VerifyAttributes => &[Agency, Registrar, Admin],
            Rpc::WatchChanges => &[Agency],
            // The citizen's own list, through their portal; and the admin who answers a
            // complaint about a look-up (and alone sees which official made it).
            Rpc::ListAccesses => &[CitizenPortal, Admin],
            Rpc::GetRecords => &[Auditor, Admin],
            // Public keys, hashes and signatures only: anyone holding a receipt may check it.
            Rpc::GetVerifierKeys | Rpc::GetCheckpoint | Rpc::GetInclusionProof | Rpc::GetConsistencyProof => {
                &[Registrar, Agency, Auditor, Admin]
            }
        }
    }
}

/// Whether `role` is shown the account names of the officials who changed a person
/// (`GetHistory`) or looked them up (`ListAccesses`). A citizen portal is shown the
/// agency or centre, the role and the purpose, never which official: the institution
/// answers to the citizen, and a member of staff's account name is theirs to keep.
/// The admin who investigates a complaint sees it; registrars see who changed whom.
pub fn shows_officials(role: Role) -> bool {
    role != Role::CitizenPortal
}

/// Whether `role` is shown, in a person's history (`GetHistory`), the numbers of other
/// persons a record names: the likely duplicates a registrar overrode, the other side
/// of a merge since undone. A citizen portal is shown the person's own numbers alone
/// (those that resolve to whom the person resolves to now): another person's number
/// is theirs, and a portal would otherwise show a citizen the number of a stranger
/// enrolled with demographics like theirs. Registrars and admins see them all.
pub fn shows_other_persons(role: Role) -> bool {
    role != Role::CitizenPortal
}

/// The caller's principal, if its role may call `rpc`.
pub fn authorize<T>(request: &Request<T>, rpc: Rpc) -> Result<Arc<Principal>, Status> {
    let principal = principal(request)?;
    if rpc.roles().contains(&principal.role) {
        Ok(principal)
    } else {
        Err(Status::permission_denied(format!(
            "{} may not call {}: role {} is not one of {}",
            principal.name,
            rpc.name(),
            principal.role.name(),
            rpc.roles().iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
        )))
    }
}
