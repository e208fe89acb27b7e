//! The Huduma Registry log's formats, with no storage and no network: the record's
//! bytes (docs/LOG-FORMAT.md), log keys and their C2SP signed-note forms, the log-level
//! events (record 0 and key rotations), and [`chain::ChainVerifier`], which checks a
//! sequence of records (order, BLAKE3 chain, signatures, key rotations) from any
//! source; the RFC 6962 tree over the records (`merkle`: hashes, proofs and their
//! verification) and signed C2SP checkpoints (`checkpoint`). The registry writes with
//! it; the SDK and auditors verify with it, without pulling in the storage engine.

pub mod access;
pub mod chain;
pub mod checkpoint;
pub mod events;
pub mod keys;
pub mod merkle;
pub mod record;

pub use ed25519_dalek::VerifyingKey;
