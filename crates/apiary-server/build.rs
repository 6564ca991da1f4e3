//! The UI is built by `npm run build` into `web/dist` and embedded in the binary. So that
//! `cargo build` works without Node, a placeholder page is written when no build exists yet.

fn main() {
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web/dist");
    if !dist.join("index.html").exists() {
        std::fs::create_dir_all(&dist).expect("create web/dist");
        std::fs::write(
            dist.join("index.html"),
            "<!doctype html><title>Apiary</title><p>The web UI is not built: run <code>make run</code> \
             (or <code>npm --prefix web run build</code>). The API is at <a href=\"/api/v1/openapi.json\">/api/v1</a>.</p>",
        )
        .expect("write placeholder");
    }
    println!("cargo:rerun-if-changed=../../web/dist");
}
