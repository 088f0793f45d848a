//! `rendition mask` answers for every header set of tests/headers/browsers.toml, through the
//! real binary and its `-H 'Name: value'` arguments.

use serde::Deserialize;
use std::process::Command;

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

fn rendition(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rendition"))
        .arg("mask")
        .args(args)
        .output()
        .expect("run rendition")
}

#[test]
fn mask_subcommand_answers_every_header_set() {
    let corpus: Corpus =
        toml::from_str(include_str!("../../tests/headers/browsers.toml")).expect("corpus parses");
    for case in &corpus.case {
        let mut args = vec!["--quiet".to_owned()];
        for (n, v) in &case.headers {
            args.push("-H".to_owned());
            args.push(format!("{n}: {v}"));
        }
        let out = rendition(&args);
        assert!(out.status.success(), "{}: exit {:?}", case.name, out.status);
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(got.trim(), case.mask, "{}", case.name);
    }
}

#[test]
fn mask_explains_fields_and_fallback() {
    let out = rendition(&[
        "-H".into(),
        "Accept: image/webp,image/apng,image/*,*/*;q=0.8".into(),
        "-H".into(),
        "User-Agent: Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 Chrome/80.0 Mobile Safari/537.36".into(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("mask      0x01\n"), "{text}");
    assert!(text.contains("format    webp"), "{text}");
    assert!(
        text.contains("viewport  mobile    (bits 2-3)  mobile marker in User-Agent"),
        "{text}"
    );
    assert!(
        text.contains("fallback  0x01 exact -> 0x00 baseline -> 0x08 default -> origin"),
        "{text}"
    );
    assert!(text.contains("vary on   Accept, User-Agent"), "{text}");
}

#[test]
fn malformed_header_argument_is_a_usage_error() {
    let out = rendition(&["-H".into(), "no colon here".into()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not of the form 'Name: value'"));
}
