//! Real browser, crawler and tool request-header sets (tests/headers/browsers.toml at the
//! repository root) and the mask each must produce. The same file drives `rendition mask`'s
//! test in sidecar/, so the CLI and the filter's logic answer alike.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failed test

use rendition_shared::ClientProfile;
use serde::Deserialize;

#[derive(Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    headers: Vec<(String, String)>,
    mask: String,
}

const CORPUS: &str = include_str!("../../tests/headers/browsers.toml");

#[test]
fn every_header_set_gives_its_mask() {
    let corpus: Corpus = toml::from_str(CORPUS).unwrap();
    assert!(
        corpus.case.len() >= 40,
        "the issue asks for at least 40 header sets"
    );
    let mut failures = Vec::new();
    for case in &corpus.case {
        let profile = ClientProfile::from_headers(
            case.headers
                .iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
        );
        let got = format!("{:x}", profile.mask);
        if got != case.mask {
            failures.push(format!(
                "{}: expected {}, got {}",
                case.name, case.mask, profile.mask
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_covers_the_clients_the_issue_names() {
    let corpus: Corpus = toml::from_str(CORPUS).unwrap();
    let names: String = corpus
        .case
        .iter()
        .map(|c| c.name.to_lowercase() + "\n")
        .collect();
    for who in [
        "chrome",
        "edge",
        "firefox",
        "safari",
        "iphone",
        "ipad",
        "android",
        "curl",
        "googlebot",
        "save-data",
        "dpr",
        "viewport-width",
        "q=0",
    ] {
        assert!(names.contains(who), "no header set mentions {who}");
    }
}
