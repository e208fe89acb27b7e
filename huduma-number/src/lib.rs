//! The Huduma number: a 12-digit national identifier, 11 drawn digits and a Verhoeff
//! check digit, printed `2345 6789 0123`.
//!
//! This crate holds only what every party needs offline: parsing (with or without
//! spaces and hyphens), printing, the check digit, and the issuance filters. It has no
//! storage and no cryptography, so an agency's binary that depends on it (through the
//! SDK) pulls in nothing heavy. Issuance itself (the keyed permutation) lives in
//! `registry-core`.

mod filters;
mod number;

pub use filters::{FilterRule, IssuanceFilters};
pub use number::{DIGITS, HudumaNumber, NumberError};
