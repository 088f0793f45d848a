//! A small training run (20 trees) on a committed slice of real labels: the three model files
//! and LightGBM's check predictions come out, in LightGBM's text format.

use std::process::Command;

#[test]
fn trains_three_models_from_the_sample() {
    let out = std::env::temp_dir().join(format!("rendition-trainer-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sample.jsonl");
    let status = Command::new(env!("CARGO_BIN_EXE_rendition-trainer"))
        .args([sample, out.to_str().unwrap(), "--smoke"])
        .status()
        .unwrap();
    assert!(status.success());
    for codec in ["webp", "avif", "jpeg"] {
        let text = std::fs::read_to_string(out.join(format!("{codec}.txt"))).unwrap();
        assert!(text.starts_with("tree\nversion=v4"), "{codec}");
        assert!(text.contains("objective=regression\n"), "{codec}");
        assert_eq!(text.matches("\nTree=").count(), 20, "{codec}: 20 trees");
    }
    let check: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("check.json")).unwrap()).unwrap();
    for codec in ["webp", "avif", "jpeg"] {
        let rows = check[codec].as_array().unwrap();
        assert!(!rows.is_empty());
        for r in rows {
            let q = r["lightgbm"].as_f64().unwrap();
            assert!((0.0..=110.0).contains(&q), "{codec}: predicted quality {q}");
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}
