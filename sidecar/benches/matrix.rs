//! `make bench` (sidecar part). Measured on real photos (benches/fixtures.sh):
//!
//! 1. Decode once: the full matrix from one decode vs a decode (and encode) per
//!    variant, on a 12 MP and a 2 MP photo: wall time and peak RSS of each, each mode run in
//!    its own process so the peak RSS is its own.
//! 2. Per-format encode time and bytes at each output width of the 12 MP photo.
//! 3. AVIF encoders at equal SSIMULACRA2: libaom (speed 6 and 8) against rav1e (speed 6, with
//!    `--features ravif`), from quality sweeps interpolated to score 70 and 80.
//!
//! Inputs: `photo-2mp.jpg` is a 1732x1155 crop of MATE's "Storm" photo; `photo-12mp.jpg` is
//! 4000x3000 cut from a 2x2 mosaic of four 2560x1600 MATE photos (no package ships a single
//! 12 MP photo; the mosaic keeps real photographic detail at native resolution, no upscaling).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendition_shared::{full_matrix_order, ImageFormat};
use rendition_sidecar::encode::avif::{AvifEncoder, Libaom};
use rendition_sidecar::encode::{self, EncodeHints};
use rendition_sidecar::image_types::{ContentClass, Rgba};
use rendition_sidecar::pipeline::{self, resize, Encoders, Outcome};
use rendition_sidecar::quality::CodecDials;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../benches/.fixtures")
}

fn load(path: &Path) -> Rgba {
    pipeline::prepare(&std::fs::read(path).unwrap(), &Default::default())
        .unwrap()
        .image
}

fn crop(img: &Rgba, x0: u32, y0: u32, w: u32, h: u32) -> Rgba {
    let mut data = Vec::with_capacity((w * h * 4) as usize);
    for y in y0..y0 + h {
        let start = ((y * img.width + x0) * 4) as usize;
        data.extend_from_slice(&img.data[start..start + (w * 4) as usize]);
    }
    Rgba {
        width: w,
        height: h,
        data,
    }
}

fn write_jpeg(img: &Rgba, path: &Path) {
    let hints = EncodeHints {
        class: ContentClass::Photo,
        grayscale: false,
        opaque: true,
    };
    std::fs::write(path, encode::jpeg::encode(img, 92, hints).unwrap().bytes).unwrap();
}

/// Builds photo-2mp.jpg and photo-12mp.jpg from the MATE photos.
fn make_inputs() -> (PathBuf, PathBuf) {
    let dir = fixtures();
    let two = dir.join("photo-2mp.jpg");
    let twelve = dir.join("photo-12mp.jpg");
    if !two.exists() {
        let storm = load(&dir.join("Storm.jpg"));
        write_jpeg(
            &crop(
                &storm,
                (storm.width - 1732) / 2,
                (storm.height - 1155) / 2,
                1732,
                1155,
            ),
            &two,
        );
    }
    if !twelve.exists() {
        let tiles: Vec<Rgba> = ["Aqua", "Garden", "LadyBird", "YellowFlower"]
            .iter()
            .map(|n| load(&dir.join(format!("{n}.jpg"))))
            .collect();
        let (tw, th) = (2560u32, 1600u32);
        let mut mosaic = Rgba {
            width: tw * 2,
            height: th * 2,
            data: vec![0; (tw * th * 16) as usize],
        };
        for (i, t) in tiles.iter().enumerate() {
            let (ox, oy) = ((i as u32 % 2) * tw, (i as u32 / 2) * th);
            for y in 0..th {
                let src = ((y * t.width) * 4) as usize;
                let dst = (((oy + y) * mosaic.width + ox) * 4) as usize;
                mosaic.data[dst..dst + (tw * 4) as usize]
                    .copy_from_slice(&t.data[src..src + (tw * 4) as usize]);
            }
        }
        write_jpeg(&crop(&mosaic, 560, 100, 4000, 3000), &twelve);
    }
    (two, twelve)
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:")
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Child mode: run one strategy on one file, print "ms encodes decodes rss_kb bytes".
fn child(mode: &str, file: &Path) {
    let bytes = std::fs::read(file).unwrap();
    let dials = CodecDials::default();
    let avif = Libaom::default();
    let enc = Encoders {
        widths: Default::default(),
        quality: &dials,
        avif: &avif,
        // Decode-once is measured with fixed dials: no scoring here.
        verify: None,
    };
    let order = full_matrix_order();
    let started = Instant::now();
    let (mut encodes, mut decodes, mut total) = (0usize, 0usize, 0usize);
    let mut tally = |outcomes: Vec<Outcome>| {
        for o in outcomes {
            if let Outcome::Stored(v) = o {
                encodes += 1;
                total += v.encoded.bytes.len();
            }
        }
    };
    if mode == "one-decode" {
        let p = pipeline::prepare(&bytes, &Default::default()).unwrap();
        decodes += 1;
        tally(pipeline::generate(&p, &order, &enc));
    } else {
        for slot in &order {
            let p = pipeline::prepare(&bytes, &Default::default()).unwrap();
            decodes += 1;
            tally(pipeline::generate(&p, std::slice::from_ref(slot), &enc));
        }
    }
    println!(
        "{} {encodes} {decodes} {} {total}",
        started.elapsed().as_millis(),
        peak_rss_kb()
    );
}

fn run_child(mode: &str, file: &Path) -> (u64, u64, u64, u64, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--child", mode])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1], v[2], v[3], v[4])
}

fn decode_once_claim(name: &str, file: &Path) {
    let (t1, e1, d1, r1, _) = run_child("one-decode", file);
    let (t2, e2, d2, r2, _) = run_child("per-variant", file);
    println!(
        "| {name} | one decode | {d1} | {e1} | {:.1} s | {} MB |\n| {name} | decode per variant | {d2} | {e2} | {:.1} s | {} MB |\n| {name} | **ratio** | | | **{:.2}x** | {:.2}x |",
        t1 as f64 / 1000.0,
        r1 / 1024,
        t2 as f64 / 1000.0,
        r2 / 1024,
        t2 as f64 / t1 as f64,
        r2 as f64 / r1 as f64
    );
}

fn per_format(file: &Path) {
    let p = pipeline::prepare(&std::fs::read(file).unwrap(), &Default::default()).unwrap();
    let hints = EncodeHints {
        class: p.class,
        grayscale: false,
        opaque: true,
    };
    let dials = CodecDials::default();
    println!("| width | codec | quality | bytes | encode ms |\n|---|---|---|---|---|");
    for w in [480u32, 960, 768, 1536, p.image.width] {
        let h = (u64::from(p.image.height) * u64::from(w) / u64::from(p.image.width)) as u32;
        let img = resize::resize(&p.image, w, h)
            .unwrap()
            .unwrap_or_else(|| p.image.clone());
        for (name, codec) in [
            ("webp", ImageFormat::Webp),
            ("avif (libaom s6)", ImageFormat::Avif),
            ("jpeg (mozjpeg)", ImageFormat::Original),
        ] {
            let c = pipeline::codec_for(codec, p.format, false).unwrap();
            let q = rendition_sidecar::quality::QualityPolicy::quality(&dials, c, false);
            let started = Instant::now();
            let out = match codec {
                ImageFormat::Webp => encode::webp::encode(&img, q, hints),
                ImageFormat::Avif => Libaom::default().encode(&img, q, hints),
                _ => encode::jpeg::encode(&img, q, hints),
            }
            .unwrap();
            println!(
                "| {w} | {name} | {q} | {} | {} |",
                out.bytes.len(),
                started.elapsed().as_millis()
            );
        }
    }
}

fn score(reference: &Rgba, avif: &[u8]) -> f64 {
    use ssimulacra2::{compute_frame_ssimulacra2, ColorPrimaries, Rgb, TransferCharacteristic};
    let decoded = libavif::decode_rgb(avif).unwrap();
    let to_rgb = |data: &[u8]| {
        let px: Vec<[f32; 3]> = data
            .chunks_exact(4)
            .map(|p| {
                [
                    p[0] as f32 / 255.0,
                    p[1] as f32 / 255.0,
                    p[2] as f32 / 255.0,
                ]
            })
            .collect();
        Rgb::new(
            px,
            reference.width as usize,
            reference.height as usize,
            TransferCharacteristic::SRGB,
            ColorPrimaries::BT709,
        )
        .unwrap()
    };
    compute_frame_ssimulacra2(to_rgb(&reference.data), to_rgb(decoded.as_slice())).unwrap()
}

/// Bytes and ms at `target` score, linearly interpolated on a (quality -> score) sweep.
fn at_score(points: &[(f64, f64, f64)], target: f64) -> Option<(f64, f64)> {
    points.windows(2).find_map(|w| {
        let ((s0, b0, t0), (s1, b1, t1)) = (w[0], w[1]);
        ((s0 <= target && target <= s1) && s1 > s0).then(|| {
            let f = (target - s0) / (s1 - s0);
            (b0 + f * (b1 - b0), t0 + f * (t1 - t0))
        })
    })
}

fn avif_comparison() {
    let dir = fixtures();
    let full = load(&dir.join("Garden.jpg"));
    let img = resize::resize(&full, 1280, 800).unwrap().unwrap();
    let hints = EncodeHints {
        class: ContentClass::Photo,
        grayscale: false,
        opaque: true,
    };
    let mut encoders: Vec<(String, Box<dyn AvifEncoder>)> = vec![
        ("libaom speed 6".into(), Box::new(Libaom::fixed(6))),
        ("libaom speed 8".into(), Box::new(Libaom::fixed(8))),
    ];
    #[cfg(feature = "ravif")]
    encoders.push((
        "rav1e speed 6".into(),
        Box::new(rendition_sidecar::encode::avif::Rav1e { speed: 6 }),
    ));
    #[cfg(not(feature = "ravif"))]
    println!("(rav1e rows need `--features ravif`: make bench enables it)");
    println!("| encoder | bytes @ SSIMULACRA2 70 | ms @ 70 | bytes @ 80 | ms @ 80 |\n|---|---|---|---|---|");
    for (name, enc) in encoders.iter_mut() {
        let mut points = Vec::new();
        for q in [30u8, 40, 50, 60, 70, 80, 90] {
            let started = Instant::now();
            let out = enc.encode(&img, q, hints).unwrap();
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            points.push((score(&img, &out.bytes), out.bytes.len() as f64, ms));
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let cell = |t| {
            at_score(&points, t).map_or("-".to_owned(), |(b, ms)| format!("{:.0} | {:.0}", b, ms))
        };
        println!("| {name} | {} | {} |", cell(70.0), cell(80.0));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    // `cargo test --all-targets` runs benches without `--bench`: building them is the test.
    if !args.iter().any(|a| a == "--bench") {
        println!("matrix bench: built; run it with `make bench`");
        return;
    }
    if !fixtures().join("Storm.jpg").exists() {
        eprintln!("run benches/fixtures.sh first (make bench does)");
        std::process::exit(2);
    }
    let (two, twelve) = make_inputs();
    let only = std::env::var("RENDITION_BENCH").unwrap_or_default();
    if only.is_empty() || only == "decode-once" {
        println!("\n## One decode vs a decode per variant (36 slots, codec dials)\n");
        println!("| photo | strategy | decodes | encodes | wall time | peak RSS |\n|---|---|---|---|---|---|");
        decode_once_claim("2 MP (1732x1155)", &two);
        decode_once_claim("12 MP (4000x3000)", &twelve);
    }
    if only.is_empty() || only == "formats" {
        println!("\n## Per-format encode time and bytes, 12 MP photo resized (one thread)\n");
        per_format(&twelve);
    }
    if only.is_empty() || only == "avif" {
        println!("\n## AVIF encoders at equal SSIMULACRA2 (1280x800 photo, one thread)\n");
        avif_comparison();
    }
}
