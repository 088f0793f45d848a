//! Bytes and time of one AVIF encode at several libaom speeds: `cargo run --release --example avif_speeds -- FILE [THREADS]`
use rendition_sidecar::encode::avif::{AvifEncoder, Libaom};
use rendition_sidecar::encode::EncodeHints;
use rendition_sidecar::image_types::ContentClass;
use rendition_sidecar::pipeline;
fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    let Ok(p) = pipeline::prepare(
        &std::fs::read(&path).unwrap_or_default(),
        &Default::default(),
    ) else {
        return;
    };
    let hints = EncodeHints {
        class: ContentClass::Photo,
        grayscale: false,
        opaque: true,
    };
    let threads: u8 = std::env::args()
        .nth(2)
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    for speed in [2u8, 4, 6, 7, 8, 9, 10] {
        let t = std::time::Instant::now();
        let out = Libaom {
            threads,
            ..Libaom::fixed(speed)
        }
        .encode(&p.image, 60, hints)
        .map(|e| e.bytes.len());
        println!(
            "speed {speed}, {threads} threads: {out:?} bytes, {} ms",
            t.elapsed().as_millis()
        );
    }
}
