// Included by the build scripts of registry-server and client-sdk, so that the wire
// contract's files are listed in one place.

/// The .proto files of the wire contract, relative to `proto/`.
const PROTOS: [&str; 5] = [
    "huduma/v1/common.proto",
    "huduma/v1/registry.proto",
    "huduma/v1/resolver.proto",
    "huduma/v1/audit.proto",
    "huduma/v1/operations.proto",
];

/// `proto/`, with cargo told to rebuild when any of its files changes.
fn proto_root() -> Result<std::path::PathBuf, std::env::VarError> {
    let root = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    println!("cargo:rerun-if-changed={}", root.join("protos.rs").display());
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={}", root.join(proto).display());
    }
    Ok(root)
}
