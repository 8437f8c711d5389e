//! Compiles `proto/` with the pure-Rust `protox` compiler (no protoc needed),
//! generates the tonic server and client, and writes the encoded file
//! descriptor set that gRPC reflection serves.

use std::{env, error::Error, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler
        .include_imports(true)
        .include_source_info(true)
        .open_files(["groups/v1/groups.proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // Encoded by the compiler itself: unlike `prost_types`, it keeps the
    // extension options (`google.api.http`, `field_behavior`) that the
    // HTTP gateway and the OpenAPI document are built from.
    fs::write(
        out_dir.join("groups_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let fds = compiler.file_descriptor_set();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
