//! The Huduma Registry SDK: what agency systems embed to resolve citizens, link their
//! own records and follow changes, and what registrars' and auditors' tools are built
//! on (the `huduma` CLI is). It depends on the wire contract, the number type and the
//! log format, never on the storage engine.
//!
//! Resolve a citizen in a few lines:
//!
//! ```no_run
//! # async fn run() -> Result<(), huduma_sdk::Error> {
//! use huduma_sdk::Client;
//!
//! let client = Client::connect("http://127.0.0.1:50051", "dev-kra-...").await?;
//! let person = client.resolve_number("2345 6789 0127", "PIN registration").await?;
//! println!("{:?}: {:?}", person.status, person.demographics);
//! # Ok(())
//! # }
//! ```
//!
//! A typo in a number is caught before any call:
//!
//! ```
//! use huduma_sdk::HudumaNumber;
//!
//! let number = HudumaNumber::with_check_digit(29_473_615_839).unwrap();
//! let typed = number.to_string().replace(' ', "-");
//! assert_eq!(typed.parse::<HudumaNumber>().unwrap(), number);
//! ```
//!
//! Runnable programs: `examples/` (resolve by number, resolve by agency record, link a
//! record, follow changes).

pub mod client;
pub mod error;
pub mod proto;
pub mod receipt;
pub mod types;

pub use client::{Client, ClientBuilder, RetryPolicy, new_request_id};
pub use error::Error;
pub use huduma_number::{HudumaNumber, NumberError};
pub use types::{
    Access, AccessCall, AccessPage, AgencyRecord, BackupProgress, BackupTaken, Change, ChangeKind, Claim, Demographics,
    Disclosed, DuplicateCandidate, History, HistoryEntry, Log, LogRecord, Receipt, ReplacementReason, Resolution,
    ResolveKey, Sex, Status, VerifierKey, VerifierKeys,
};

/// The README's Rust examples compile (they need a server to run).
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// Checks a number as a person typed it, naming the rule broken.
pub fn check_number(text: &str) -> Result<HudumaNumber, NumberError> {
    text.parse()
}
