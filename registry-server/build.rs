//! Compiles the wire contract (proto/huduma/v1) with protox, so nobody needs protoc,
//! and writes its descriptor set for server reflection.

use std::path::PathBuf;

use prost::Message;

include!("../proto/protos.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = proto_root()?;
    let descriptors = protox::compile(PROTOS, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("huduma_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(descriptors)?;
    Ok(())
}
