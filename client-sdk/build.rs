//! Compiles the wire contract (proto/huduma/v1) with protox, so nobody needs protoc.
//! The SDK generates clients only.

use std::path::PathBuf;

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
    tonic_prost_build::configure().build_server(false).build_client(true).compile_fds(descriptors)?;
    Ok(())
}
