//! The Huduma Registry server crate: configuration, authentication and roles (and their
//! reload while serving), the gRPC
//! services of `huduma.v1`, the server that runs them, the operator's commands (and the
//! backup of a data directory at rest), and the
//! synthetic population the load command and tests use. The `huduma-registry` binary
//! (src/main.rs) is a thin shell over this library.

pub mod access_control;
pub mod auth;
pub mod backup;
pub mod config;
pub mod disclosure;
pub mod metrics;
pub mod operator;
pub mod policy;
pub mod proto;
pub mod serve;
pub mod service;
pub mod synthetic;
pub mod wire;
