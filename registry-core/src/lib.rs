//! The Huduma Registry's domain, with no network code: Huduma number issuance, the
//! signed and hash-chained event log, the projections folded from it, the keyring that
//! seals personal data, and verification. See docs/ARCHITECTURE.md for the map and
//! docs/LOG-FORMAT.md for the byte-level format.

pub mod access;
pub mod agency_token;
pub mod attribute_check;
pub mod checkpointer;
pub mod command;
pub mod commit_intent;
pub mod dedup;
pub mod demographics;
pub mod event;
pub mod history;
pub mod issuer;
pub mod keyring;
pub mod log_export;
pub mod merkle_store;
pub mod online_backup;
pub mod prework;
pub mod projection;
pub mod query;
pub mod registry;
pub mod replay;
pub mod sealed;
pub mod secrets;
pub mod sequencer;
pub mod storage;
pub mod synthetic;
pub mod tail_import;
pub mod verify;
pub mod writer;

pub use huduma_log::{keys, record};
pub use huduma_number::{HudumaNumber, IssuanceFilters, NumberError};

use serde::{Deserialize, Serialize};

/// A person's internal, stable id: the sequence number of the record that registered
/// them. Never shown to agencies; numbers may change, this does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PersonId(pub u64);
