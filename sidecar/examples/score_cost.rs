//! What one SSIMULACRA2 comparison costs at a given size, per way of running it, and what it
//! scores: `cargo run --release -p rendition-sidecar --example score_cost -- FILE MODE`.
//!
//! The candidate is FILE re-encoded as JPEG q60 at its own size and decoded again. MODE is one
//! of `whole` (no precompute), `reference` (precompute once, then compare), or `strips:N`
//! (N rows per strip, as the verifier runs above its strip threshold). Prints the build and
//! compare times, the score and the process's peak RSS: run one MODE per process so each peak
//! is its own.
use fast_ssim2::{PixelDescriptor, PixelSlice, Ssimulacra2Config, Ssimulacra2Reference};
use rendition_sidecar::encode::avif::{AvifEncoder, Libaom};
use rendition_sidecar::encode::{self, Codec, EncodeHints};
use rendition_sidecar::image_types::{ContentClass, Rgba};
use rendition_sidecar::pipeline;
use rendition_sidecar::quality::verify::{decode_as_browser, score_encoded, Reference};
use std::time::Instant;

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// `sweep:W`: WebP, AVIF and JPEG at width W, quality 20..=100 by 10, score and bytes.
fn sweep(src: &Rgba, width: u32, hints: EncodeHints) -> Result<(), Box<dyn std::error::Error>> {
    let height = (u64::from(src.height) * u64::from(width) / u64::from(src.width)) as u32;
    let resized = pipeline::resize::resize(src, width, height)?;
    let img = resized.as_ref().unwrap_or(src);
    let reference = Reference::new(img)?;
    for q in (20..=100).step_by(10).chain([85, 95, 98]) {
        let mut row = format!("q{q}:");
        for codec in [Codec::Webp, Codec::Avif, Codec::Jpeg] {
            let e = match codec {
                Codec::Webp => encode::webp::encode(img, q, hints)?,
                Codec::Avif => Libaom::default().encode(img, q, hints)?,
                _ => encode::jpeg::encode(img, q, hints)?,
            };
            let score = score_encoded(&reference, &e)?;
            row += &format!(" {codec} {score:.1} {}B", e.bytes.len());
        }
        println!("{row}");
    }
    Ok(())
}

/// `avif:W` (0: full size): libaom speeds 6, 7 and 8 (or env SPEEDS=4,5,6), one thread, at width W; per speed the
/// bytes and encode time interpolated to SSIMULACRA2 70 over a quality sweep.
fn avif_speeds(
    src: &Rgba,
    width: u32,
    hints: EncodeHints,
) -> Result<(), Box<dyn std::error::Error>> {
    let width = if width == 0 { src.width } else { width };
    let height = (u64::from(src.height) * u64::from(width) / u64::from(src.width)) as u32;
    let resized = pipeline::resize::resize(src, width, height)?;
    let img = resized.as_ref().unwrap_or(src);
    let reference = Reference::new(img)?;
    let mut row = format!("{width}x{height}");
    let speeds: Vec<u8> = std::env::var("SPEEDS")
        .unwrap_or_else(|_| "6,7,8".into())
        .split(',')
        .filter_map(|s| s.parse().ok())
        .collect();
    for speed in speeds {
        let enc = Libaom::fixed(speed);
        let mut points = Vec::new();
        for q in (30..=80).step_by(2) {
            let t = Instant::now();
            let e = enc.encode(img, q, hints)?;
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            points.push((score_encoded(&reference, &e)?, e.bytes.len() as f64, ms));
        }
        // The first pair of qualities whose scores straddle 70, interpolated linearly.
        let at = points.windows(2).find_map(|w| {
            let ((s0, b0, t0), (s1, b1, t1)) = (w[0], w[1]);
            (s0 <= 70.0 && s1 >= 70.0 && s1 > s0).then(|| {
                let f = (70.0 - s0) / (s1 - s0);
                (b0 + f * (b1 - b0), t0 + f * (t1 - t0))
            })
        });
        match at {
            Some((bytes, ms)) => row += &format!(" | speed {speed}: {bytes:.0} B, {ms:.0} ms"),
            None => row += &format!(" | speed {speed}: 70 not reached"),
        }
    }
    println!("{row}");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: score_cost FILE MODE")?;
    let mode = args.next().unwrap_or_else(|| "reference".into());
    let src = pipeline::prepare(&std::fs::read(&path)?, &Default::default())?.image;
    let hints = EncodeHints {
        class: ContentClass::Photo,
        grayscale: false,
        opaque: true,
    };
    if let Some(width) = mode.strip_prefix("sweep:") {
        return sweep(&src, width.parse()?, hints);
    }
    if let Some(width) = mode.strip_prefix("avif:") {
        return avif_speeds(&src, width.parse()?, hints);
    }
    let jpeg = encode::jpeg::encode(&src, 60, hints)?;
    let cand = decode_as_browser(jpeg.codec, &jpeg.bytes)?;
    let before = peak_rss_mb();
    let (w, h) = (src.width, src.height);
    let d = PixelDescriptor::RGBX8_SRGB;
    let a = PixelSlice::new(&src.data, w, h, w as usize * 4, d)?;
    let b = PixelSlice::new(&cand.data, w, h, w as usize * 4, d)?;
    let t = Instant::now();
    let (build_ms, score) = match mode.as_str() {
        "whole" => (0, fast_ssim2::compute_ssimulacra2(&a, &b)?),
        "reference" => {
            let r = Ssimulacra2Reference::new(&a)?;
            let built = t.elapsed().as_millis();
            (built, r.compare(&b)?)
        }
        m => {
            let rows: usize = m.strip_prefix("strips:").ok_or("unknown mode")?.parse()?;
            let cfg = Ssimulacra2Config::strips(rows);
            (
                0,
                fast_ssim2::compute_ssimulacra2_with_config(&a, &b, &cfg)?,
            )
        }
    };
    let total = t.elapsed().as_millis();
    println!(
        "{w}x{h} {mode}: build {build_ms} ms, compare {} ms, score {score:.3}, peak RSS {} MB (before scoring {before} MB)",
        total - build_ms,
        peak_rss_mb()
    );
    Ok(())
}
