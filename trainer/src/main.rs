//! `make train`: (features, target) -> encoder quality, one LightGBM regressor per format,
//! from the quality sweeps `rendition label` wrote. Writes `sidecar/models/{webp,avif,jpeg}.txt`
//! (LightGBM's text format), which the sidecar's build.rs compiles into plain Rust.
//!
//!     rendition-trainer LABELS.jsonl OUT_DIR [--smoke]
//!
//! Rows: every *train*-split output x target in 45, 46, ..., 95; the label is the quality at
//! which the output's sweep first reaches the target (linear between grid points). Outputs
//! that never reach a target are left out for it. Deterministic: fixed seed, one thread.

use lightgbm3::{Booster, Dataset};
use rendition_shared::curve::{complete_row, quality_for, ProbeLine};
use rendition_shared::labels::{self, Label};
use std::process::ExitCode;

/// Targets labelled per output, every point from 45 to 95: the sidecar asks for targets
/// between these (the middle of a band, Save-Data targets), and trees only split between
/// values they saw. The target and the probe columns that depend on it end each row
/// (`curve::TARGET_COLUMNS`).
const TARGETS: std::ops::RangeInclusive<u32> = 45..=95;

fn rows(labels: &[Label], codec: &str) -> (Vec<f64>, Vec<f32>, usize) {
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut width = 0;
    for l in labels
        .iter()
        .filter(|l| l.split == "train" && l.codec == codec)
    {
        for t in TARGETS.map(f64::from) {
            let Some(q) = quality_for(&l.sweep, t) else {
                continue;
            };
            let mut f = l.features.clone();
            complete_row(&mut f, &ProbeLine { points: l.probe }, t);
            width = f.len();
            x.extend(f);
            y.push(q as f32);
        }
    }
    (x, y, width)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(labels_path), Some(out_dir)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: rendition-trainer LABELS.jsonl OUT_DIR [--smoke]");
        return ExitCode::FAILURE;
    };
    let smoke = args.iter().any(|a| a == "--smoke");
    let labels: Vec<Label> = match std::fs::read_to_string(labels_path) {
        Ok(text) => labels::parse_lines(text.lines()),
        Err(e) => {
            eprintln!("train: {labels_path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut params = serde_json::json!({
        // L2: in grouped 4-fold cross-validation on the training images it put more first
        // encodes in the band than L1 (81.7% vs 79.2% with the probe features).
        "objective": "regression",
        "num_iterations": if smoke { 20 } else { 100 },
        "learning_rate": 0.12,
        "num_leaves": 15,
        "min_data_in_leaf": 8,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.9,
        "bagging_freq": 1,
        "seed": 7,
        "deterministic": true,
        "num_threads": 1,
        "verbose": -1,
    });
    // LightGBM's own predictions for some training rows: the sidecar's tests check that the
    // compiled trees give the same numbers (sidecar/tests/quality_model.rs).
    let mut check = serde_json::Map::new();
    // The labels name formats by file extension ("jpg"); the model files by format.
    for (codec, label_name) in [("webp", "webp"), ("avif", "avif"), ("jpeg", "jpg")] {
        let (x, y, width) = rows(&labels, label_name);
        if y.len() < 20 {
            eprintln!("train: {codec}: only {} rows, skipped", y.len());
            continue;
        }
        // The quality rises with the target, never falls: a constraint on the last column
        // (grouped cross-validation: a little more in the band, and a search that can trust
        // the order of its predictions).
        let mut monotone = vec!["0"; width];
        if let Some(last) = monotone.last_mut() {
            *last = "1";
        }
        params["monotone_constraints"] = monotone.join(",").into();
        let trained = Dataset::from_slice(&x, &y, width as i32, true)
            .and_then(|d| Booster::train(d, &params))
            .and_then(|b| {
                let pred = b.predict(&x, width as i32, true)?;
                let step = (y.len() / 40).max(1);
                let rows: Vec<serde_json::Value> = (0..y.len())
                    .step_by(step)
                    .map(|i| serde_json::json!({"x": &x[i * width..(i + 1) * width], "lightgbm": pred[i]}))
                    .collect();
                check.insert(codec.to_owned(), rows.into());
                let mae = pred
                    .iter()
                    .zip(&y)
                    .map(|(p, t)| (p - f64::from(*t)).abs())
                    .sum::<f64>()
                    / y.len() as f64;
                eprintln!("train: {codec}: {} rows, training MAE {mae:.2} quality points", y.len());
                b.save_string()
            });
        match trained {
            Ok(text) => {
                let path = format!("{out_dir}/{codec}.txt");
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("train: {path}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("train: {codec}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let path = format!("{out_dir}/check.json");
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(check)).unwrap_or_default();
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("train: {path}: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
