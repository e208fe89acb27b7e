//! Compiles the wire contract (proto/huduma/v1) with protox, so nobody needs protoc.
//! The SDK generates clients only.

include!("../proto/protos.rs");

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = proto_root()?;
    let descriptors = protox::compile(PROTOS, [&root])?;
    tonic_prost_build::configure().build_server(false).build_client(true).compile_fds(descriptors)?;
    Ok(())
}
