//! The learned quality model as compiled into the sidecar (build.rs from sidecar/models/*.txt):
//! the same predictions as LightGBM itself, sensible on real images, and fast.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use rendition_sidecar::encode::{Codec, EncodeHints};
use rendition_sidecar::pipeline;
use rendition_sidecar::quality::features::{OutputFeatures, N_FEATURES};
use rendition_sidecar::quality::model::{self, Model};
use rendition_sidecar::quality::probe::Probe;
use rendition_sidecar::quality::{LearnedQuality, QualityPolicy};

fn models() -> [(&'static str, &'static Model, bool); 3] {
    [
        ("webp", &model::WEBP, model::HAS_WEBP),
        ("avif", &model::AVIF, model::HAS_AVIF),
        ("jpeg", &model::JPEG, model::HAS_JPEG),
    ]
}

#[test]
fn every_format_has_a_committed_model() {
    for (name, m, present) in models() {
        assert!(
            present && !m.is_empty(),
            "sidecar/models/{name}.txt missing: run make train"
        );
    }
}

#[test]
fn compiled_trees_predict_exactly_what_lightgbm_predicted() {
    let check: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("sidecar/models/check.json")).unwrap(),
    )
    .unwrap();
    for (name, m, _) in models() {
        let rows = check[name].as_array().unwrap();
        assert!(rows.len() >= 10, "{name}");
        for r in rows {
            let x: Vec<f64> = r["x"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let x: [f64; N_FEATURES] = x.try_into().unwrap();
            let want = r["lightgbm"].as_f64().unwrap();
            let got = m.predict(&x);
            assert!(
                (got - want).abs() < 1e-9,
                "{name}: {got} vs LightGBM {want}"
            );
        }
    }
}

#[test]
fn predicted_quality_rises_with_the_target_on_a_real_photo() {
    let p = pipeline::prepare(&common::demo("rocket.jpg"), &Default::default()).unwrap();
    let f = OutputFeatures::of(&p.image, p.format, p.jpeg_quality);
    let policy = LearnedQuality::all();
    let probe = Probe::new(&p.image).unwrap();
    let hints = EncodeHints {
        class: p.class,
        grayscale: p.stats.grayscale,
        opaque: !p.stats.has_alpha,
    };
    for codec in [Codec::Webp, Codec::Avif, Codec::Jpeg] {
        assert!(policy.wants_probe(codec));
        let line = probe.scores(codec, hints).unwrap();
        // SSIMULACRA2 goes negative for heavy artefacts (AVIF at quality 10 on a photo), so
        // only the order and the top of the range are checked.
        let [(_, lo), (_, mid), (_, hi)] = line.points;
        assert!(
            lo < mid && mid < hi && hi > 0.0 && hi < 100.0,
            "{}: the probe scores {lo:.1}, {mid:.1}, {hi:.1} at its qualities",
            codec.name()
        );
        let f = f.with_probe(line);
        let lo = policy.first_quality(codec, false, &f, 55.0);
        let hi = policy.first_quality(codec, false, &f, 85.0);
        assert!(hi > lo, "{}: q{lo} for 55, q{hi} for 85", codec.name());
    }
}

#[test]
fn a_prediction_costs_about_a_microsecond() {
    // Not a bound (machines are noisy): printed for docs/quality.md.
    let p = pipeline::prepare(&common::demo("rocket.jpg"), &Default::default()).unwrap();
    let x = OutputFeatures::of(&p.image, p.format, p.jpeg_quality).with_target(70.0);
    let n = 100_000;
    let t = std::time::Instant::now();
    let mut sum = 0.0;
    for i in 0..n {
        let mut x = x;
        x[0] += f64::from(i % 7);
        sum += model::AVIF.predict(std::hint::black_box(&x));
    }
    let ns = t.elapsed().as_nanos() as f64 / f64::from(n);
    println!(
        "AVIF model: {ns:.0} ns per prediction ({} trees; checksum {sum:.0})",
        model::AVIF.trees
    );
    assert!(sum.is_finite());
}
