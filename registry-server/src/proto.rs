//! The wire types and service stubs generated from `proto/huduma/v1` (package
//! `huduma.v1`), and their descriptor set for server reflection.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

tonic::include_proto!("huduma.v1");

/// The encoded `FileDescriptorSet` of the wire contract.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("huduma_descriptor");
