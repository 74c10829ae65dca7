//! Regenerates `src/wire/distzero_capnp.rs` from `schema/distzero.capnp`.
//! Needs the `capnp` compiler (Debian package `capnproto`).

fn main() {
    let root = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let root = std::path::Path::new(&root);
    let out = root.join("src/wire");
    if let Err(e) = capnpc::CompilerCommand::new()
        .src_prefix(root.join("schema"))
        .file(root.join("schema/distzero.capnp"))
        .default_parent_module(vec!["wire".into()])
        .output_path(&out)
        .run()
    {
        eprintln!("gen-schema: {e}");
        std::process::exit(1);
    }
    println!("wrote {}", out.join("distzero_capnp.rs").display());
}
