//! The Huduma Registry server crate: configuration, the operator's commands, and the
//! synthetic population the load command and tests use. The `huduma-registry` binary
//! (src/main.rs) is a thin shell over this library.

pub mod config;
pub mod operator;
pub mod synthetic;
