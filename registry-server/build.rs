//! Compiles the wire contract (proto/huduma/v1) with protox, so nobody needs protoc,
//! and writes its descriptor set for server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: [&str; 5] = [
    "huduma/v1/common.proto",
    "huduma/v1/registry.proto",
    "huduma/v1/resolver.proto",
    "huduma/v1/audit.proto",
    "huduma/v1/operations.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    let descriptors = protox::compile(PROTOS, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("huduma_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(descriptors)?;
    Ok(())
}
