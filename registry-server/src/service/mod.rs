//! The gRPC services of `huduma.v1`, one module each.

pub mod audit;
pub mod operations;
pub mod registry;
pub mod resolver;
