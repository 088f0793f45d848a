//! The operator's commands through the real binary: `serve --help` documents every flag with
//! its default, `check-config` validates and prints the effective configuration (and warns
//! about a listen address beyond loopback), `stats` and `purge` talk to a running sidecar.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendition_shared::wire::NOTIFY_PATH;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

fn rendition(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rendition"))
        .args(args)
        .env_remove("RENDITION_CONFIG")
        .env_remove("RENDITION_ADMIN_TOKEN")
        .env_remove("RENDITION_LISTEN")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rendition-cli-op-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `--flag` entries of clap's long help: (flag, its help text up to the next flag).
fn flags(help: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in help.lines() {
        let t = line.trim_start();
        if t.starts_with("--") || (t.starts_with('-') && t.contains(", --")) {
            let flag = t
                .split_whitespace()
                .find(|w| w.starts_with("--"))
                .unwrap()
                .trim_end_matches(',')
                .to_owned();
            out.push((flag, String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(t);
            body.push(' ');
        }
    }
    out
}

#[test]
fn serve_help_gives_every_flag_a_meaning_and_a_default() {
    let out = rendition(&["serve", "--help"], &[]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    let flags = flags(&help);
    assert!(flags.len() >= 28, "{help}");
    for (flag, body) in &flags {
        if flag == "--help" {
            continue;
        }
        let words = body.split("[default:").next().unwrap().trim();
        assert!(words.len() > 10, "{flag} has no help text:\n{help}");
        assert!(
            body.contains("[default: "),
            "{flag} shows no default:\n{help}"
        );
    }
    // The defaults come from Config::default(), the same as check-config prints.
    let body = |name: &str| &flags.iter().find(|(f, _)| f == name).unwrap().1;
    assert!(body("--listen").contains("[default: 127.0.0.1:8181]"));
    assert!(body("--cache-size-bytes").contains("[default: 1073741824]"));
    assert!(body("--mobile-width").contains("[default: 480]"));
    assert!(body("--no-proactive-viewport-variants").contains("[default: on]"));
    assert!(body("--enable-warmup").contains("[default: off]"));
    let defaults = rendition(&["check-config"], &[]);
    let printed = text(&defaults.stdout);
    assert!(printed.contains("listen = \"127.0.0.1:8181\""), "{printed}");
    assert!(
        printed.contains("cache_size_bytes = 1073741824"),
        "{printed}"
    );
    assert!(printed.contains("mobile_width = 480"), "{printed}");
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let dir = temp_dir("check");
    let file = dir.join("rendition.toml");
    std::fs::write(
        &file,
        "cache_size_bytes = 5000\nadmin_token = \"0123456789abcdef0123\"\n[origins.hosts]\n\"Static.Example.COM:80\" = \"http://10.0.0.12\"\n",
    )
    .unwrap();
    let out = rendition(
        &["check-config", file.to_str().unwrap(), "--workers", "3"],
        &[("RENDITION_TARGET_SSIMULACRA2", "75")],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    for want in [
        "cache_size_bytes = 5000",                       // the file
        "target_ssimulacra2 = 75.0",                     // the environment
        "workers = 3",                                   // a flag
        "mobile_width = 480",                            // a default
        "\"static.example.com\" = \"http://10.0.0.12\"", // normalized like a request's host
        "admin_token = \"<redacted: 20 characters>\"",
    ] {
        assert!(stdout.contains(want), "{want}:\n{stdout}");
    }
    assert!(
        !stdout.contains("0123456789abcdef"),
        "the token is never printed"
    );
    // The output is TOML again.
    let reparsed: toml::Value = toml::from_str(&stdout).unwrap();
    assert_eq!(reparsed["queue"]["workers"].as_integer(), Some(3));
    assert!(stderr.is_empty(), "loopback: no warning: {stderr}");

    // Invalid: exit 2, naming the key; nothing on stdout.
    std::fs::write(&file, "[limits]\nmax_frames = 0\n").unwrap();
    let out = rendition(&["check-config", file.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        text(&out.stderr).contains("config: limits.max_frames: must be greater than 0"),
        "{}",
        text(&out.stderr)
    );
    let out = rendition(
        &[
            "check-config",
            "--origin-host",
            "A.example=http://10.0.0.1",
            "--origin-host",
            "a.example:80=http://10.0.0.2",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("both name host a.example"),
        "{}",
        text(&out.stderr)
    );
    // A flag replaces the file's mapping of its host, however either spells the host.
    std::fs::write(
        &file,
        "[origins.hosts]\n\"Static.Example.COM\" = \"http://10.0.0.12\"\n",
    )
    .unwrap();
    let out = rendition(
        &[
            "check-config",
            file.to_str().unwrap(),
            "--origin-host",
            "static.example.com:80=http://10.0.0.13",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("\"static.example.com\" = \"http://10.0.0.13\"")
            && !stdout.contains("10.0.0.12"),
        "{stdout}"
    );
    let out = rendition(&["check-config", "/nonexistent/rendition.toml"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn listening_beyond_loopback_without_a_token_is_warned() {
    let out = rendition(&["check-config", "--listen", "0.0.0.0:8181"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("warning: listen 0.0.0.0:8181 is beyond loopback: /notify, /v/ and /index take no token"),
        "{stderr}"
    );
    assert!(stderr.contains("admin_token is unset"), "{stderr}");
    let out = rendition(
        &["check-config", "--listen", "0.0.0.0:8181"],
        &[("RENDITION_ADMIN_TOKEN", "0123456789abcdef0123")],
    );
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    assert!(
        stderr.contains("note: listen 0.0.0.0:8181 is beyond loopback"),
        "{stderr}"
    );
}

/// `rendition serve` on a port the kernel picks (the ready line says which), stopped on drop.
struct Running {
    child: Child,
    url: String,
}

impl Running {
    fn start(name: &str, extra: &[&str]) -> Running {
        let dir = temp_dir(name);
        let mut child = Command::new(env!("CARGO_BIN_EXE_rendition"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .args(extra)
            .env_remove("RENDITION_CONFIG")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("rendition sidecar ready"))
            .expect("the sidecar's ready line");
        let port: String = ready
            .split("listen=127.0.0.1:")
            .nth(1)
            .unwrap()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        // Keep reading its log so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Running {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An origin on a free port that answers every GET with the demo photo, until the test ends.
fn photo_origin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let photo = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/site/img/rocket.jpg"),
    )
    .unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            let mut request = [0u8; 4096];
            let _ = conn.read(&mut request);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nCache-Control: max-age=600\r\nConnection: close\r\n\r\n",
                photo.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&photo);
        }
    });
    url
}

fn stats_json(url: &str) -> serde_json::Value {
    let out = rendition(&["stats", "--json", "--sidecar", url], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn stats_and_purge_talk_to_a_running_sidecar() {
    let origin = photo_origin();
    let sidecar = Running::start("remote", &["--origin", &origin]);
    let out = rendition(&["stats", "--sidecar", &sidecar.url], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with("variants served    0 (0 bytes), not found 0\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("saving             nothing served yet"),
        "{stdout}"
    );
    assert!(stdout.contains("notifications_received"), "{stdout}");
    let json = stats_json(&sidecar.url);
    assert_eq!(json["variants_served"], 0);
    assert!(json["by_format"]["avif"].is_object());

    // One real source in the store: a notify (as the filter sends on a miss), then the
    // sidecar fetches the photo and stores its variant.
    let client = std::net::TcpStream::connect(sidecar.url.trim_start_matches("http://"));
    let mut conn = client.unwrap();
    let body = r#"{"host":"shop.example","path":"/img/a.jpg?v=2","mask":1}"#;
    write!(
        conn,
        "POST {NOTIFY_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    // Until the work has an outcome: a variant stored, or the source refused or not
    // fetched (the sidecar's own fetch timeout ends those); the cap only stops a hang.
    let mut json = stats_json(&sidecar.url);
    for _ in 0..3000 {
        let n = |name: &str| json[name].as_u64().unwrap();
        // (the counter moves before the store write: wait for both)
        let stored = n("variants_written") >= 1 && n("store_sources") == 1;
        if stored || n("images_refused") > 0 || n("fetch_errors") > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        json = stats_json(&sidecar.url);
    }
    assert_eq!(json["variants_written"], 1, "{json}");
    assert_eq!(json["store_sources"], 1, "{json}");
    assert!(json["store_payload_bytes"].as_u64().unwrap() > 0, "{json}");

    let out = rendition(
        &[
            "purge",
            "--sidecar",
            &sidecar.url,
            "http://shop.example/img/a.jpg?v=2",
            "https://shop.example/b.png",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "purged 1 sources\n",
        "the stored one, not b.png"
    );
    // Its variants are gone (the record stays, empty, so the filters hear of the purge).
    assert_eq!(stats_json(&sidecar.url)["store_payload_bytes"], 0);
    let out = rendition(
        &[
            "purge",
            "--sidecar",
            &sidecar.url,
            "--prefix",
            "shop.example/img/",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "purged 0 sources\n");

    // Usage errors: 2; an unreachable sidecar: 1, saying where it looked.
    assert_eq!(rendition(&["purge"], &[]).status.code(), Some(2));
    assert_eq!(
        rendition(&["purge", "--sidecar", &sidecar.url, "not a url"], &[])
            .status
            .code(),
        Some(2)
    );
    drop(sidecar);
    let gone = Running::start("remote-gone", &[]);
    let url = gone.url.clone();
    drop(gone);
    let out = rendition(&["stats", "--sidecar", &url], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is the sidecar running there?"),
        "{}",
        text(&out.stderr)
    );
}
