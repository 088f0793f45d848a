//! Prints the classification statistics of image files: `cargo run --example stats -- FILE...`
fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap_or_default();
        match rendition_sidecar::pipeline::prepare(&bytes, &Default::default()) {
            Ok(p) => println!("{path}: {} {:?}", p.class.name(), p.stats),
            Err(e) => println!("{path}: {e}"),
        }
    }
}
