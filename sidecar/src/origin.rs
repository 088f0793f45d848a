//! Step 1, fetch: originals come only from configured base URLs. A notify names a host and a
//! path; the host picks the base URL (or the default) and is sent as the Host header, so one
//! origin can serve many virtual hosts. Nothing a client controls becomes an address.
//!
//! * **http** base URLs are requested as they are (`http://10.0.0.5:8080/path`), with the
//!   source's Host header.
//! * **https** base URLs are requested under the source's own host name, so TLS sees it (SNI
//!   and certificate checks are for `shop.example`, not for the address behind it): the URL is
//!   `https://shop.example:{base port}{base path}{path}`, and the client's resolver
//!   ([`ConfiguredResolver`]) maps that name to the base URL's host, and only through the
//!   configuration. A source whose host is an IP literal is requested at the base host itself
//!   (an IP in a URL is never resolved, so it must never come from a client).
//! * Roots: webpki's (compiled in), the system's (`origins.tls_roots = "system"`), plus any CA
//!   in `origins.ca_file`. A certificate error is a [`FetchError::Tls`], which the worker
//!   records as the source's refusal.
//! * Redirects are off by default; on, only to the same origin (at most 3 hops), or from
//!   `http` to `https` on the same host.
//! * The caching contract is checked on the response headers before a byte is read:
//!   `Set-Cookie`, `private`, `no-store`, `no-transform` and `Vary` (anything but
//!   `Accept-Encoding`) refuse the source ([`rendition_shared::http_cache::may_transform`]).
//! * [`Origins::revalidate`] asks with the stored validators (`If-None-Match`,
//!   `If-Modified-Since`): a 304 costs the origin no body and the sidecar no decode.

use crate::config::{OriginsConfig, TlsRoots};
use rendition_shared::http_cache::{self, CachingHeaders, NotTransformable};
use rendition_shared::SourceKey;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{
    HeaderMap, AGE, CACHE_CONTROL, CONTENT_LENGTH, DATE, ETAG, EXPIRES, HOST, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED, SET_COOKIE, VARY,
};
use reqwest::{redirect, Client, StatusCode, Url};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The caching headers of an origin response, as sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OriginCaching {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub date: Option<String>,
    pub age: Option<String>,
    pub vary: Option<String>,
}

impl OriginCaching {
    fn of(h: &HeaderMap) -> OriginCaching {
        let text = |name| {
            h.get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        // A list header sent as several lines is one comma-joined value (RFC 9110 5.3): a
        // `Vary: Cookie` or `Cache-Control: private` on a second line counts as much as on
        // the first.
        let list = |name| {
            let lines: Vec<&str> = h
                .get_all(name)
                .iter()
                .filter_map(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .collect();
            (!lines.is_empty()).then(|| lines.join(", "))
        };
        OriginCaching {
            etag: text(ETAG),
            last_modified: text(LAST_MODIFIED),
            cache_control: list(CACHE_CONTROL),
            expires: text(EXPIRES),
            date: text(DATE),
            age: text(AGE),
            vary: list(VARY),
        }
    }

    /// For the freshness rules of `rendition_shared::http_cache`.
    pub fn headers(&self) -> CachingHeaders<'_> {
        CachingHeaders {
            cache_control: self.cache_control.as_deref(),
            expires: self.expires.as_deref(),
            date: self.date.as_deref(),
            last_modified: self.last_modified.as_deref(),
            age: self.age.as_deref(),
        }
    }

    /// These headers updated by a 304's (RFC 9111 4.3.4): what the 304 sends replaces what
    /// was stored, the rest is kept. `Vary` is the 200's: a 304 does not change the variants.
    pub fn updated_by(&self, not_modified: &OriginCaching) -> OriginCaching {
        let pick = |new: &Option<String>, old: &Option<String>| new.clone().or_else(|| old.clone());
        OriginCaching {
            etag: pick(&not_modified.etag, &self.etag),
            last_modified: pick(&not_modified.last_modified, &self.last_modified),
            cache_control: pick(&not_modified.cache_control, &self.cache_control),
            expires: pick(&not_modified.expires, &self.expires),
            date: not_modified.date.clone(),
            age: not_modified.age.clone(),
            vary: self.vary.clone(),
        }
    }
}

/// An original, as fetched.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub caching: OriginCaching,
    /// Unix milliseconds when the request left and when the response arrived (for its age).
    pub request_ms: u64,
    pub response_ms: u64,
}

/// What a conditional request found.
#[derive(Clone, Debug)]
pub enum Revalidated {
    /// 304: the stored original is current; its headers, updated.
    NotModified {
        caching: OriginCaching,
        request_ms: u64,
        response_ms: u64,
    },
    /// 200: the origin sent the original again (changed, or it ignores validators).
    Modified(Fetched),
    /// 404 or 410: the original is gone.
    Gone(u16),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("host {0:?} has no configured origin")]
    HostNotConfigured(String),
    /// `..` or `%2e%2e` segments would take the request above the base URL's path.
    #[error("path leaves the origin's base path {0:?}")]
    OutsideBasePath(String),
    #[error("path does not make a URL under the origin's base URL")]
    InvalidPath,
    #[error("origin answered {0}")]
    Status(u16),
    #[error("origin response is not publicly cacheable ({0})")]
    NotPublic(&'static str),
    #[error("origin response may not be optimized: {}", .0.describe())]
    NotTransformable(NotTransformable),
    #[error("source is over the {0}-byte limit")]
    TooLarge(u64),
    #[error("origin timed out")]
    Timeout,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("origin unreachable: {0}")]
    Network(String),
}

impl FetchError {
    /// Whether the answer is about the source itself (it will be the same next time, until the
    /// origin changes it): the worker then records it as the source's refusal.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::NotPublic(_)
                | Self::NotTransformable(_)
                | Self::TooLarge(_)
                | Self::Tls(_)
                | Self::OutsideBasePath(_)
                | Self::InvalidPath
        )
    }
}

pub struct Origins {
    client: Client,
    config: OriginsConfig,
    max_bytes: u64,
}

tokio::task_local! {
    /// The host of the source being fetched, for the redirect policy (an http -> https
    /// redirect may stay on the source's host, whatever the base URL's host is).
    static SOURCE_HOST: String;
}

/// Why the origin client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum OriginsError {
    #[error("origins.ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("origins: the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Origins {
    pub fn new(config: &OriginsConfig, max_bytes: u64) -> Result<Origins, OriginsError> {
        let policy = if config.follow_redirects {
            redirect::Policy::custom(|attempt| {
                let Some(first) = attempt.previous().first() else {
                    return attempt.stop();
                };
                let next = attempt.url();
                let same_origin = first.origin() == next.origin();
                let source_host = SOURCE_HOST.try_with(Clone::clone).ok();
                let upgrade = first.scheme() == "http"
                    && next.scheme() == "https"
                    && next.host_str().is_some_and(|h| {
                        first.host_str() == Some(h)
                            || source_host.as_deref().map(host_name) == Some(h)
                    });
                if attempt.previous().len() > 3 || !(same_origin || upgrade) {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            })
        } else {
            redirect::Policy::none()
        };
        let mut builder = Client::builder()
            // Origins can tell our fetches apart (logs, rate limits, access rules).
            .user_agent(concat!("rendition/", env!("CARGO_PKG_VERSION")))
            .redirect(policy)
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms.min(2_000)))
            .no_proxy()
            .use_rustls_tls()
            .tls_built_in_webpki_certs(config.tls_roots == TlsRoots::Webpki)
            .tls_built_in_native_certs(config.tls_roots == TlsRoots::System)
            .dns_resolver(Arc::new(ConfiguredResolver::new(config)));
        if let Some(path) = &config.ca_file {
            let ca_error = |message: String| OriginsError::CaFile {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no PEM certificate in it".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Origins {
            client: builder.build()?,
            config: config.clone(),
            max_bytes,
        })
    }

    fn base_for(&self, host: &str) -> Option<&str> {
        self.config
            .hosts
            .get(host)
            .or(self.config.default.as_ref())
            .map(String::as_str)
    }

    /// The URL a source is fetched from: its path and query under the base URL of its host
    /// (or the default). Refused when the host has no origin, and when the path would leave
    /// the base URL's path: the URL parser resolves `..` and `%2e%2e` segments, so
    /// `http://o/static` + `/../admin` would otherwise fetch `http://o/admin`.
    pub fn url_for(&self, key: &SourceKey) -> Result<Url, FetchError> {
        let base = self
            .base_for(key.host())
            .ok_or_else(|| FetchError::HostNotConfigured(key.host().to_owned()))?;
        let base_path = Url::parse(base)
            .map_err(|_| FetchError::InvalidPath)?
            .path()
            .trim_end_matches('/')
            .to_owned();
        let mut url = Url::parse(&format!(
            "{}{}",
            base.trim_end_matches('/'),
            key.path_and_query()
        ))
        .map_err(|_| FetchError::InvalidPath)?;
        let path = url.path();
        let under_base = base_path.is_empty()
            || path
                .strip_prefix(base_path.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if !under_base {
            return Err(FetchError::OutsideBasePath(base_path));
        }
        let name = host_name(key.host());
        if url.scheme() == "https" && name.parse::<IpAddr>().is_err() && !name.starts_with('[') {
            // Under the source's name, for SNI and the certificate check; the resolver takes
            // it to the base host.
            url.set_host(Some(name))
                .map_err(|_| FetchError::InvalidPath)?;
        }
        Ok(url)
    }

    /// Where a source's request really connects: the base URL's host and port (what the
    /// resolver maps the URL's host to).
    pub fn connect_target(&self, key: &SourceKey) -> Option<(String, u16)> {
        let base = Url::parse(self.base_for(key.host())?).ok()?;
        Some((base.host_str()?.to_owned(), base.port_or_known_default()?))
    }

    pub fn is_configured(&self, host: &str) -> bool {
        self.config.hosts.contains_key(host) || self.config.default.is_some()
    }

    /// GET the original.
    pub async fn fetch(&self, key: &SourceKey) -> Result<Fetched, FetchError> {
        match self.request(key, None, None).await? {
            Revalidated::Modified(f) => Ok(f),
            // Without validators the origin has no reason to answer 304; if it does, there is
            // nothing to read.
            Revalidated::NotModified { .. } => Err(FetchError::Status(304)),
            Revalidated::Gone(status) => Err(FetchError::Status(status)),
        }
    }

    /// A conditional GET with the stored validators.
    pub async fn revalidate(
        &self,
        key: &SourceKey,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<Revalidated, FetchError> {
        self.request(key, etag, last_modified).await
    }

    async fn request(
        &self,
        key: &SourceKey,
        etag: Option<&str>,
        last_modified: Option<&str>,
    ) -> Result<Revalidated, FetchError> {
        let url = self.url_for(key)?;
        let mut request = self.client.get(url).header(HOST, key.host());
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
        let request_ms = now_ms();
        let mut resp = SOURCE_HOST
            .scope(key.host().to_owned(), request.send())
            .await
            .map_err(network_error)?;
        let response_ms = now_ms();
        let caching = OriginCaching::of(resp.headers());
        match resp.status() {
            StatusCode::NOT_MODIFIED => {
                return Ok(Revalidated::NotModified {
                    caching,
                    request_ms,
                    response_ms,
                })
            }
            StatusCode::NOT_FOUND | StatusCode::GONE => {
                return Ok(Revalidated::Gone(resp.status().as_u16()))
            }
            s if !s.is_success() => return Err(FetchError::Status(s.as_u16())),
            _ => {}
        }
        if resp.headers().contains_key(SET_COOKIE) {
            return Err(FetchError::NotPublic("Set-Cookie"));
        }
        let cc = http_cache::CacheControl::parse(caching.cache_control.as_deref().unwrap_or(""));
        if cc.private {
            return Err(FetchError::NotPublic("Cache-Control: private"));
        }
        if cc.no_store {
            return Err(FetchError::NotPublic("Cache-Control: no-store"));
        }
        http_cache::may_transform(caching.cache_control.as_deref(), caching.vary.as_deref())
            .map_err(FetchError::NotTransformable)?;
        let declared = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| l.parse::<u64>().ok());
        if declared.is_some_and(|l| l > self.max_bytes) {
            return Err(FetchError::TooLarge(self.max_bytes));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(network_error)? {
            if (bytes.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(FetchError::TooLarge(self.max_bytes));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Revalidated::Modified(Fetched {
            bytes,
            caching,
            request_ms,
            response_ms,
        }))
    }
}

/// A reqwest error as a [`FetchError`]: a timeout, a TLS failure (named: a certificate the
/// configured roots do not trust, say), or anything else that kept the origin from answering.
fn network_error(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout;
    }
    // The causes below reqwest's own message (which quotes the URL, whose path is the
    // client's and could say anything).
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&e);
    while let Some(err) = source {
        causes.push(err.to_string());
        source = err.source();
    }
    let about = |words: &[&str]| {
        causes
            .iter()
            .rev()
            .find(|m| {
                let m = m.to_ascii_lowercase();
                words.iter().any(|w| m.contains(w))
            })
            .cloned()
    };
    match about(&["certificate"]).or_else(|| about(&["tls", "handshake"])) {
        Some(message) => FetchError::Tls(message),
        None => FetchError::Network(
            std::iter::once(e.to_string())
                .chain(causes)
                .collect::<Vec<_>>()
                .join(": "),
        ),
    }
}

/// A Host value without its port (`[::1]:8080` -> `[::1]`, `shop.example:8443` ->
/// `shop.example`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Resolves the names of source hosts the way the configuration maps them: a source host
/// (without its port) to the host of its base URL (or of the default), which is then looked up
/// in DNS. A name that is no source host is looked up as it is (an http base URL's own host).
/// So a TLS connection is made to a configured address under the source's own name.
pub struct ConfiguredResolver {
    /// Source host name -> base URL host, for names with an entry of their own.
    names: BTreeMap<String, String>,
    /// The default base URL's host.
    default: Option<String>,
    /// Base hosts: a name that is one resolves as itself.
    bases: Vec<String>,
}

impl ConfiguredResolver {
    pub fn new(config: &OriginsConfig) -> ConfiguredResolver {
        let base_host = |url: &str| {
            Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
        };
        let names = config
            .hosts
            .iter()
            .filter_map(|(host, url)| Some((host_name(host).to_owned(), base_host(url)?)))
            .collect();
        let default = config.default.as_deref().and_then(base_host);
        let bases = config
            .hosts
            .values()
            .chain(config.default.iter())
            .filter_map(|u| base_host(u))
            .collect();
        ConfiguredResolver {
            names,
            default,
            bases,
        }
    }

    /// The host name DNS is asked for instead of `name`.
    pub fn target(&self, name: &str) -> Option<String> {
        if self.bases.iter().any(|b| b == name) {
            return Some(name.to_owned());
        }
        self.names
            .get(name)
            .cloned()
            .or_else(|| self.default.clone())
    }
}

impl Resolve for ConfiguredResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let target = self.target(name.as_str());
        let asked = name.as_str().to_owned();
        Box::pin(async move {
            let Some(target) = target else {
                return Err(format!("{asked}: no configured origin").into());
            };
            let target = target.trim_start_matches('[').trim_end_matches(']');
            let addrs: Vec<_> = tokio::net::lookup_host((target, 0)).await?.collect();
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
