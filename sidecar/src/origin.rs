//! Step 1, fetch: originals come only from configured base URLs. A notify names a host and a
//! path; the host picks the base URL (or the default) and is sent as the Host header, so one
//! origin can serve many virtual hosts. Nothing a client controls becomes an address.

use crate::config::OriginsConfig;
use rendition_shared::SourceKey;
use reqwest::header::{CACHE_CONTROL, CONTENT_LENGTH, ETAG, HOST, LAST_MODIFIED, SET_COOKIE};
use reqwest::{redirect, Client, Url};
use std::time::Duration;

/// An original, as fetched.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub cache_control: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("host {0:?} has no configured origin")]
    HostNotConfigured(String),
    #[error("origin answered {0}")]
    Status(u16),
    #[error("origin response is not publicly cacheable ({0})")]
    NotPublic(&'static str),
    #[error("source is over the {0}-byte limit")]
    TooLarge(u64),
    #[error("origin timed out")]
    Timeout,
    #[error("origin unreachable: {0}")]
    Network(String),
}

pub struct Origins {
    client: Client,
    config: OriginsConfig,
    max_bytes: u64,
}

impl Origins {
    pub fn new(config: &OriginsConfig, max_bytes: u64) -> Result<Origins, reqwest::Error> {
        let policy = if config.follow_redirects {
            // Same origin only, at most 3 hops: a redirect can never point us elsewhere.
            redirect::Policy::custom(|attempt| {
                let same = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.origin() == attempt.url().origin());
                if attempt.previous().len() > 3 || !same {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            })
        } else {
            redirect::Policy::none()
        };
        let client = Client::builder()
            // Origins can tell our fetches apart (logs, rate limits, access rules).
            .user_agent(concat!("rendition/", env!("CARGO_PKG_VERSION")))
            .redirect(policy)
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms.min(2_000)))
            .no_proxy()
            .build()?;
        Ok(Origins {
            client,
            config: config.clone(),
            max_bytes,
        })
    }

    /// The URL a source is fetched from, or `None` when its host is not configured.
    pub fn url_for(&self, key: &SourceKey) -> Option<Url> {
        let base = self
            .config
            .hosts
            .get(key.host())
            .or(self.config.default.as_ref())?;
        Url::parse(&format!(
            "{}{}",
            base.trim_end_matches('/'),
            key.path_and_query()
        ))
        .ok()
    }

    pub fn is_configured(&self, host: &str) -> bool {
        self.config.hosts.contains_key(host) || self.config.default.is_some()
    }

    pub async fn fetch(&self, key: &SourceKey) -> Result<Fetched, FetchError> {
        let url = self
            .url_for(key)
            .ok_or_else(|| FetchError::HostNotConfigured(key.host().to_owned()))?;
        let mut resp = self
            .client
            .get(url)
            .header(HOST, key.host())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    FetchError::Timeout
                } else {
                    FetchError::Network(e.to_string())
                }
            })?;
        if !resp.status().is_success() {
            return Err(FetchError::Status(resp.status().as_u16()));
        }
        let h = resp.headers();
        let text = |name| {
            h.get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let cache_control = text(CACHE_CONTROL);
        if h.contains_key(SET_COOKIE) {
            return Err(FetchError::NotPublic("Set-Cookie"));
        }
        if let Some(cc) = &cache_control {
            let cc = cc.to_ascii_lowercase();
            if cc.contains("private") {
                return Err(FetchError::NotPublic("Cache-Control: private"));
            }
            if cc.contains("no-store") {
                return Err(FetchError::NotPublic("Cache-Control: no-store"));
            }
        }
        if text(CONTENT_LENGTH)
            .and_then(|l| l.parse::<u64>().ok())
            .is_some_and(|l| l > self.max_bytes)
        {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let etag = text(ETAG);
        let last_modified = text(LAST_MODIFIED);
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            if e.is_timeout() {
                FetchError::Timeout
            } else {
                FetchError::Network(e.to_string())
            }
        })? {
            if (bytes.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            bytes,
            etag,
            last_modified,
            cache_control,
        })
    }
}
