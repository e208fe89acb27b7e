//! The wire types and client stubs generated from `proto/huduma/v1` (package
//! `huduma.v1`). Prefer the typed API of [`crate::Client`]; these are here for what it
//! does not cover.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

tonic::include_proto!("huduma.v1");
