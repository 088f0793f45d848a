//! `rendition optimize` through the real binary: folders searched recursively, outputs named
//! after each source's relative path, `--jobs`, and the exit codes (1 when an input is
//! refused, 2 for a usage error).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use image::RgbaImage;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn optimize(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rendition"))
        .arg("optimize")
        .args(args)
        .output()
        .unwrap()
}

/// A small PNG whose pixels depend on `seed` (so two files are two different images).
fn small_png(seed: u8) -> Vec<u8> {
    let img = RgbaImage::from_fn(96, 64, |x, y| {
        image::Rgba([
            (x * 2) as u8 ^ seed,
            (y * 3) as u8,
            seed.wrapping_mul(7),
            255,
        ])
    });
    common::png(&img)
}

fn tree(name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let root =
        std::env::temp_dir().join(format!("rendition-cli-opt-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let input = root.join("in");
    std::fs::create_dir_all(input.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(input.join(".hidden")).unwrap();
    std::fs::write(input.join("a.png"), small_png(1)).unwrap();
    std::fs::write(input.join("sub/deeper/a.png"), small_png(2)).unwrap();
    std::fs::write(input.join(".hidden/c.png"), small_png(3)).unwrap();
    std::fs::write(input.join("notes.txt"), "not an image").unwrap();
    (root.clone(), input, root.join("out"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn folders_are_walked_and_outputs_keep_the_relative_path() {
    let (root, input, out) = tree("walk");
    let report = root.join("report.json");
    let o = optimize(&[
        &input,
        Path::new("--out"),
        &out,
        Path::new("--json"),
        &report,
        Path::new("--jobs"),
        Path::new("2"),
        Path::new("--no-verify"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Two a.png in different folders: two output folders, nothing overwritten.
    let top = std::fs::read_dir(out.join("a.png")).unwrap().count();
    let deep = std::fs::read_dir(out.join("sub/deeper/a.png"))
        .unwrap()
        .count();
    assert!(top > 10 && deep > 10, "{top} {deep}");
    let name = std::fs::read_dir(out.join("a.png"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .find(|n| out.join("sub/deeper/a.png").join(n).exists())
        .unwrap();
    assert_ne!(
        std::fs::read(out.join("a.png").join(&name)).unwrap(),
        std::fs::read(out.join("sub/deeper/a.png").join(&name)).unwrap(),
        "each source's own variant"
    );
    assert!(!out.join(".hidden").exists(), "hidden folders are skipped");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let sources: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources.len(), 2, "{sources:?}");
    assert!(
        sources[0].ends_with("in/a.png") && sources[1].ends_with("in/sub/deeper/a.png"),
        "{sources:?}"
    );
}

#[test]
fn a_refused_input_makes_the_exit_code_non_zero() {
    let (_, input, out) = tree("refused");
    std::fs::write(input.join("sub/broken.jpg"), "<html>not a jpeg</html>").unwrap();
    let o = optimize(&[&input, Path::new("--out"), &out, Path::new("--no-verify")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("broken.jpg: refused"), "{err}");
    assert!(
        err.contains("rendition optimize: 1 of 3 inputs refused"),
        "{err}"
    );
    assert!(out.join("a.png").is_dir(), "the others are still optimized");
}

#[test]
fn usage_errors_exit_2() {
    let (_, input, out) = tree("usage");
    // Two files named directly that would write the same output folder.
    let o = optimize(&[
        &input.join("a.png"),
        &input.join("sub/deeper/a.png"),
        Path::new("--out"),
        &out,
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("would both write a.png"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "nothing written");
    let o = optimize(&[&input.join("nothing-here"), Path::new("--out"), &out]);
    assert_eq!(o.status.code(), Some(2));
    let empty = input.join("sub/empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = optimize(&[&empty, Path::new("--out"), &out]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no images found"), "{}", stderr(&o));
}

/// The batch tool starts each verified variant where the service does (the learned model), so
/// its attempts and times describe the served path; `--codec-dials` is the opt-out.
#[test]
fn verified_variants_start_from_the_learned_model_as_in_the_service() {
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/site/img/rocket.jpg");
    let (root, _, _) = tree("policy");
    let run = |name: &str, extra: &[&str]| -> serde_json::Value {
        let out = root.join(name);
        let report = root.join(format!("{name}.json"));
        // One size (no viewport resizes): every format and Save-Data variant, verified.
        let mut args: Vec<&Path> = vec![
            &photo,
            Path::new("--out"),
            &out,
            Path::new("--json"),
            &report,
            Path::new("--mobile-width"),
            Path::new("0"),
            Path::new("--tablet-width"),
            Path::new("0"),
        ];
        args.extend(extra.iter().map(Path::new));
        let o = optimize(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap()
    };
    let learned = run("learned", &[]);
    assert_eq!(learned[0]["policy"], "learned", "{learned}");
    let lossy: Vec<&serde_json::Value> = learned[0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["lossless"] == false && v["format"] != "svg")
        .collect();
    assert!(lossy.len() >= 4, "{learned}");
    for v in &lossy {
        assert!(v["score"].as_f64().is_some(), "verified: {v}");
        assert!(v["attempts"].as_u64().unwrap() >= 1, "{v}");
    }
    let dials = run("dials", &["--codec-dials"]);
    assert_eq!(dials[0]["policy"], "codec-dials", "{dials}");
}
