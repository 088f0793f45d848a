//! `rendition stats` and `rendition purge`: the admin routes of a running sidecar
//! (`GET /stats`, `POST /purge`) from the command line. Loopback peers need no token; from
//! elsewhere pass the sidecar's `admin_token` (`--token` or `RENDITION_ADMIN_TOKEN`).
//!
//! Exit codes: 0 done, 1 the sidecar could not be reached or refused (the message says why),
//! 2 a usage error.

use clap::Args;
use rendition_sidecar::service::admin::Purge;
use serde_json::Value;
use std::process::ExitCode;
use std::time::Duration;

/// Where the sidecar is and how to be let in.
#[derive(Args, Debug)]
pub struct SidecarArgs {
    /// Base URL of the running sidecar's API (its `listen`).
    #[arg(
        long,
        env = "RENDITION_SIDECAR",
        default_value = "http://127.0.0.1:8181",
        value_name = "URL"
    )]
    sidecar: String,
    /// The sidecar's admin_token; needed only from a non-loopback address.
    #[arg(
        long,
        env = "RENDITION_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    timeout: u64,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    #[command(flatten)]
    sidecar: SidecarArgs,
    /// Print the sidecar's JSON as it is instead of the summary.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct PurgeArgs {
    #[command(flatten)]
    sidecar: SidecarArgs,
    /// Image URLs to purge, as clients request them (`https://shop.example.com/img/a.jpg?v=2`).
    #[arg(value_name = "URL", required_unless_present = "prefix")]
    urls: Vec<String>,
    /// Purge every source whose canonical key starts with this: host, then path
    /// (`shop.example.com/img/`; end it with `/`).
    #[arg(long, conflicts_with = "urls", value_name = "HOST/PATH")]
    prefix: Option<String>,
}

/// A request to the sidecar's API failed: the message for stderr.
struct Failed(String);

fn block_on<T>(future: impl std::future::Future<Output = T>) -> Result<T, Failed> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| rt.block_on(future))
        .map_err(|e| Failed(format!("runtime: {e}")))
}

impl SidecarArgs {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sidecar.trim_end_matches('/'))
    }

    /// Sends one request; the answer's JSON on 2xx.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failed> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(self.timeout))
            .no_proxy()
            .build()
            .map_err(|e| Failed(e.to_string()))?;
        let url = self.url(path);
        let mut request = client.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| {
            Failed(format!(
                "{url}: {e} (is the sidecar running there? --sidecar URL)"
            ))
        })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| Failed(format!("{url}: {e}")))?;
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(Failed(format!(
                "{url}: 403: admin routes answer loopback peers, or --token with the sidecar's admin_token"
            )));
        }
        if !status.is_success() {
            return Err(Failed(format!("{url}: {status}: {}", text.trim())));
        }
        serde_json::from_str(&text).map_err(|e| Failed(format!("{url}: not JSON: {e}")))
    }
}

fn exit(result: Result<Result<(), Failed>, Failed>, command: &str) -> ExitCode {
    match result.and_then(|r| r) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failed(why)) => {
            eprintln!("rendition {command}: {why}");
            ExitCode::FAILURE
        }
    }
}

pub fn stats(args: &StatsArgs) -> ExitCode {
    let result = block_on(async {
        let stats = args
            .sidecar
            .call(reqwest::Method::GET, "/stats", None)
            .await?;
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&stats).unwrap_or_default()
            );
        } else {
            print!("{}", summary(&stats));
        }
        Ok(())
    });
    exit(result, "stats")
}

/// The `/stats` JSON as a few lines an operator reads first, then every number by name.
fn summary(stats: &Value) -> String {
    let n = |name: &str| stats.get(name).and_then(Value::as_u64).unwrap_or(0);
    let mut out = String::new();
    let served = n("variants_served");
    let not_found = n("variants_not_found");
    out.push_str(&format!(
        "variants served    {served} ({} bytes), not found {not_found}\n",
        n("bytes_served")
    ));
    let (mut sent, mut original) = (0u64, 0u64);
    if let Some(by_format) = stats.get("by_format").and_then(Value::as_object) {
        for (format, f) in by_format {
            let get = |k: &str| f.get(k).and_then(Value::as_u64).unwrap_or(0);
            let (s, o) = (get("served_bytes"), get("original_bytes"));
            sent += s;
            original += o;
            if o > 0 {
                out.push_str(&format!(
                    "  {format:<6}           {} responses, {s} bytes for {o} bytes of originals ({})\n",
                    get("responses"),
                    saving(s, o)
                ));
            }
        }
    }
    out.push_str(&format!(
        "saving             {} ({sent} bytes sent for {original} bytes of originals)\n",
        saving(sent, original)
    ));
    out.push_str(&format!(
        "images             processed {}, refused {}, fetch errors {}\n",
        n("images_processed"),
        n("images_refused"),
        n("fetch_errors")
    ));
    out.push_str(&format!(
        "queue              depth {}, dropped {}\n",
        n("queue_depth"),
        n("queue_dropped")
    ));
    out.push_str(&format!(
        "store              {} of {} bytes, {} sources, {} evictions, {} errors\n",
        n("store_payload_bytes"),
        n("store_budget_bytes"),
        n("store_sources"),
        n("evictions"),
        n("store_errors")
    ));
    out.push('\n');
    if let Some(all) = stats.as_object() {
        for (name, value) in all {
            if let Some(v) = value.as_u64() {
                out.push_str(&format!("{name:<40} {v}\n"));
            }
        }
    }
    out
}

fn saving(sent: u64, original: u64) -> String {
    if original == 0 {
        return "nothing served yet".to_owned();
    }
    format!(
        "{:.1}% saved",
        100.0 * (1.0 - sent as f64 / original as f64)
    )
}

pub fn purge(args: &PurgeArgs) -> ExitCode {
    let bodies: Vec<Purge> = match &args.prefix {
        Some(prefix) => vec![Purge::prefix(prefix.clone())],
        None => {
            let mut bodies = Vec::new();
            for url in &args.urls {
                match host_and_path(url) {
                    Some((host, path)) => {
                        bodies.push(Purge::source(host, path));
                    }
                    None => {
                        eprintln!(
                            "rendition purge: {url:?} is not an http(s) URL like https://shop.example.com/img/a.jpg"
                        );
                        return ExitCode::from(2);
                    }
                }
            }
            bodies
        }
    };
    let result = block_on(async {
        let mut total = 0;
        for body in bodies {
            let body = serde_json::to_value(&body).map_err(|e| Failed(e.to_string()))?;
            let answer = args
                .sidecar
                .call(reqwest::Method::POST, "/purge", Some(body))
                .await?;
            total += answer.get("purged").and_then(Value::as_u64).unwrap_or(0);
        }
        println!("purged {total} sources");
        Ok(())
    });
    exit(result, "purge")
}

/// The Host (with a non-default port) and the path with its query, as the filter would see
/// them for a request of `url`.
fn host_and_path(url: &str) -> Option<(String, String)> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let host = match parsed.port() {
        Some(port) => format!("{}:{port}", parsed.host_str()?),
        None => parsed.host_str()?.to_owned(),
    };
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_owned(),
    };
    Some((host, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_host_and_path() {
        assert_eq!(
            host_and_path("https://Shop.example.com/img/a.jpg?v=2"),
            Some(("shop.example.com".into(), "/img/a.jpg?v=2".into()))
        );
        assert_eq!(
            host_and_path("http://shop.example.com:8080/a.png"),
            Some(("shop.example.com:8080".into(), "/a.png".into()))
        );
        assert_eq!(host_and_path("ftp://x/a.png"), None);
        assert_eq!(host_and_path("/img/a.jpg"), None);
    }

    #[test]
    fn the_summary_shows_the_saving() {
        let stats = serde_json::json!({
            "variants_served": 3, "bytes_served": 300, "variants_not_found": 1,
            "by_format": { "avif": { "responses": 3, "served_bytes": 300, "original_bytes": 1200 },
                           "webp": { "responses": 0, "served_bytes": 0, "original_bytes": 0 } }
        });
        let text = summary(&stats);
        assert!(
            text.contains("variants served    3 (300 bytes), not found 1"),
            "{text}"
        );
        assert!(text.contains("avif"), "{text}");
        assert!(!text.contains("  webp"), "{text}");
        assert!(
            text.contains(
                "saving             75.0% saved (300 bytes sent for 1200 bytes of originals)"
            ),
            "{text}"
        );
        assert_eq!(saving(0, 0), "nothing served yet");
    }
}
