//! `rendition serve` refuses bad configuration at start, naming the key, before binding.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn serve(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rendition"))
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn flags_and_environment_are_validated() {
    let (code, err) = serve(&["--target-ssimulacra2", "120"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("config: target_ssimulacra2: 120 is outside 0-100"),
        "{err}"
    );
    let (code, err) = serve(&[], &[("RENDITION_CACHE_SIZE_BYTES", "0")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("config: cache_size_bytes: must be greater than 0"),
        "{err}"
    );
    let (code, err) = serve(&["--origin", "ftp://files.example"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("config: origins.default:"), "{err}");
    // `--origin ""` (or RENDITION_ORIGIN="") unsets the default origin: with no mapped host
    // there is nothing left to fetch from.
    let only_mapped = "config: origins: set origins.default or at least one origins.hosts entry";
    let (code, err) = serve(&["--origin", ""], &[]);
    assert_eq!(code, 2);
    assert!(err.contains(only_mapped), "{err}");
    let (code, err) = serve(&[], &[("RENDITION_ORIGIN", "")]);
    assert_eq!(code, 2);
    assert!(err.contains(only_mapped), "{err}");
    let (code, err) = serve(&["--origin-host", "no-equals-sign"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--origin-host"), "{err}");
}

#[test]
fn config_file_errors_name_the_key() {
    let dir = std::env::temp_dir().join(format!("rendition-cli-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "cache_sise_bytes = 5\n").unwrap();
    let (code, err) = serve(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("cache_sise_bytes"), "{err}");
    std::fs::write(&file, "[variants]\nmobile_width = -1\n").unwrap();
    let (code, err) = serve(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("config: variants.mobile_width: invalid value"),
        "{err}"
    );
}
