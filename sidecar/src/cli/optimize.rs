//! `rendition optimize INPUT... --out DIR [--json FILE] [--jobs N]`: the sidecar's pipeline on
//! files or folders (searched recursively). Writes `DIR/<source's relative path>/<mask as
//! 0xNN>.<ext>` for every slot stored (`DIR/img/a.jpg/0x12.avif`; slots that share one encode
//! are hard links to one file; names: `super::inputs`) and a JSON report of every variant, and
//! of what was skipped or dropped and why. Exits 1 when any input was refused, 2 on a usage
//! error (no images, colliding output names).
//!
//! Its first quality per lossy variant comes from the learned model, as in `serve`, so the
//! report's attempts and encode times are those of the path clients are served from;
//! `--codec-dials` starts from the fixed dials instead (what `make eval` compares against).

use super::inputs;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rendition_shared::{full_matrix_order, ViewportWidths};
use rendition_sidecar::encode::avif;
use rendition_sidecar::pipeline::{self, limits::Limits, Encoders, Outcome};
use rendition_sidecar::quality::{CodecDials, LearnedQuality, QualityPolicy};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct OptimizeArgs {
    /// Image files or folders (searched recursively for .jpg/.jpeg/.png/.gif/.webp).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Output folder: each source's variants go to DIR/<its path relative to the folder
    /// named>/ (a file named directly: DIR/<its file name>/).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Images optimized at once; 0 is one per core. Each holds its decoded pixels.
    #[arg(long, default_value_t = 0, value_name = "N")]
    jobs: usize,
    /// Also write the JSON report here (it is always printed to stdout with --json -).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Mobile target width at 1x (0: no resize).
    #[arg(long, default_value_t = 480)]
    mobile_width: u32,
    /// Tablet target width at 1x (0: no resize).
    #[arg(long, default_value_t = 768)]
    tablet_width: u32,
    /// Desktop target width at 1x (0: keep the original width).
    #[arg(long, default_value_t = 0)]
    desktop_width: u32,
    /// SSIMULACRA2 target every lossy variant is verified against (its band: docs/quality.md).
    #[arg(long, default_value_t = 70.0)]
    target: f64,
    /// Subtracted from the target for Save-Data variants.
    #[arg(long, default_value_t = 15.0)]
    savedata_score_reduction: f64,
    /// Encode once at the codec dials, without scoring.
    #[arg(long)]
    no_verify: bool,
    /// Start each verified variant at the fixed codec dials instead of the learned model's
    /// prediction (the model is what `serve` uses by default).
    #[arg(long)]
    codec_dials: bool,
}

#[derive(Serialize)]
pub struct SourceReport {
    pub source: String,
    /// Where each variant's first quality came from: `learned` (the model, as `serve`) or
    /// `codec-dials` (`--codec-dials`, or `--no-verify`).
    pub policy: &'static str,
    pub format: Option<&'static str>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub bytes: u64,
    pub class: Option<&'static str>,
    pub jpeg_quality: Option<u8>,
    pub refused: Option<String>,
    pub notes: Vec<String>,
    pub variants: Vec<VariantReport>,
    pub skipped: Vec<SkipReport>,
}

#[derive(Serialize)]
pub struct VariantReport {
    pub mask: String,
    pub primary: String,
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    pub bytes: usize,
    pub quality: u8,
    pub lossless: bool,
    /// SSIMULACRA2 score, when measured (the perceptual-quality step measures it).
    pub score: Option<f32>,
    pub attempts: u32,
    pub class: &'static str,
    pub file: String,
    pub encode_ms: u128,
    /// The part of `encode_ms` spent decoding and scoring candidates (0 unverified).
    pub score_ms: u128,
}

#[derive(Serialize)]
pub struct SkipReport {
    pub masks: Vec<String>,
    /// `dropped` (not worth storing, remembered) or `failed` (encoder error, retryable).
    pub kind: &'static str,
    pub reason: String,
}

pub fn run(args: &OptimizeArgs) -> ExitCode {
    let files = match inputs::collect(&args.inputs) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            eprintln!("rendition optimize: no images found in the inputs");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("rendition optimize: {e}");
            return ExitCode::from(2);
        }
    };
    let widths = ViewportWidths {
        mobile: args.mobile_width,
        tablet: args.tablet_width,
        desktop: args.desktop_width,
    };
    let dials = CodecDials::default();
    let learned = LearnedQuality::all();
    // Unverified encodes have no target to predict for: they use the dials either way.
    let policy: &dyn QualityPolicy = if args.codec_dials || args.no_verify {
        &dials
    } else {
        &learned
    };
    let avif = avif::default_encoder();
    let encoders = Encoders {
        widths,
        quality: policy,
        avif: avif.as_ref(),
        verify: (!args.no_verify).then_some(rendition_sidecar::pipeline::Targets {
            score: args.target,
            save_data_reduction: args.savedata_score_reduction,
        }),
    };
    let bar = ProgressBar::new(files.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let reports = inputs::run_jobs(
        args.jobs,
        &files,
        |input| optimize_file(&input.path, &args.out.join(&input.name), &encoders),
        |input| {
            bar.set_message(input.path.display().to_string());
            bar.inc(1);
        },
    );
    bar.finish_and_clear();
    let json = match serde_json::to_string_pretty(&reports) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("rendition optimize: report: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.json {
        if path.as_os_str() == "-" {
            println!("{json}");
        } else if let Err(e) = std::fs::write(path, &json) {
            eprintln!("rendition optimize: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    for r in &reports {
        let best = r.variants.iter().map(|v| v.bytes).min().unwrap_or(0);
        match &r.refused {
            Some(why) => eprintln!("{}: refused: {why}", r.source),
            None => eprintln!(
                "{}: {} {}x{} {} bytes, {} variants stored, {} slots skipped, smallest {} bytes",
                r.source,
                r.class.unwrap_or("-"),
                r.width.unwrap_or(0),
                r.height.unwrap_or(0),
                r.bytes,
                r.variants.len(),
                r.skipped.iter().map(|s| s.masks.len()).sum::<usize>(),
                best
            ),
        }
    }
    let refused = reports.iter().filter(|r| r.refused.is_some()).count();
    if refused > 0 {
        eprintln!(
            "rendition optimize: {refused} of {} inputs refused",
            reports.len()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Runs the whole matrix for one file and writes its variants into `dir`.
pub fn optimize_file(file: &Path, dir: &Path, encoders: &Encoders<'_>) -> SourceReport {
    let mut report = SourceReport {
        source: file.display().to_string(),
        policy: encoders.quality.name(),
        format: None,
        width: None,
        height: None,
        bytes: 0,
        class: None,
        jpeg_quality: None,
        refused: None,
        notes: Vec::new(),
        variants: Vec::new(),
        skipped: Vec::new(),
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            report.refused = Some(format!("read: {e}"));
            return report;
        }
    };
    report.bytes = bytes.len() as u64;
    let prepared = match pipeline::prepare(&bytes, &Limits::default()) {
        Ok(p) => p,
        Err(e) => {
            report.refused = Some(e.to_string());
            return report;
        }
    };
    report.format = Some(prepared.format.name());
    report.width = Some(prepared.image.width);
    report.height = Some(prepared.image.height);
    report.class = Some(prepared.class.name());
    report.jpeg_quality = prepared.jpeg_quality;
    report.notes = prepared.notes.clone();
    if let Err(e) = std::fs::create_dir_all(dir) {
        report.refused = Some(format!("{}: {e}", dir.display()));
        return report;
    }
    let mut outcomes = pipeline::generate(&prepared, &full_matrix_order(), encoders);
    let best = pipeline::smallest_full_size(&prepared, &outcomes);
    outcomes.push(pipeline::generate_svg(&prepared, best));
    for outcome in outcomes {
        match outcome {
            Outcome::Stored(v) => {
                let ext = v.encoded.codec.extension();
                let primary_file = dir.join(format!("{:x}.{ext}", v.primary));
                if let Err(e) = std::fs::write(&primary_file, &v.encoded.bytes) {
                    report
                        .notes
                        .push(format!("{}: {e}", primary_file.display()));
                    continue;
                }
                for slot in v.slots.iter() {
                    let path = dir.join(format!("{slot:x}.{ext}"));
                    if slot != v.primary {
                        let _ = std::fs::remove_file(&path);
                        if std::fs::hard_link(&primary_file, &path).is_err() {
                            let _ = std::fs::write(&path, &v.encoded.bytes);
                        }
                    }
                    report.variants.push(VariantReport {
                        mask: format!("{slot:x}"),
                        primary: format!("{:x}", v.primary),
                        format: v.encoded.codec.name(),
                        width: v.width,
                        height: v.height,
                        bytes: v.encoded.bytes.len(),
                        quality: v.encoded.quality,
                        lossless: v.encoded.lossless,
                        score: v.score.map(|s| s as f32),
                        attempts: u32::from(v.attempts),
                        class: prepared.class.name(),
                        file: path.display().to_string(),
                        encode_ms: v.encode_time.as_millis(),
                        score_ms: v.score_time.as_millis(),
                    });
                }
            }
            Outcome::Lost { slots, reason } => report.skipped.push(SkipReport {
                masks: slots.iter().map(|s| format!("{s:x}")).collect(),
                kind: "dropped",
                reason,
            }),
            Outcome::Failed { slots, error } => report.skipped.push(SkipReport {
                masks: slots.iter().map(|s| format!("{s:x}")).collect(),
                kind: "failed",
                reason: error.to_string(),
            }),
        }
    }
    report
}
