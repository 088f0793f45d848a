//! `rendition serve`: the sidecar service. Configuration: defaults, then `--config FILE`
//! (TOML), then environment variables (`RENDITION_*`), then flags; validated before binding.

use clap::Args;
use rendition_sidecar::config::{Config, ConfigError};
use rendition_sidecar::encode::avif;
use rendition_sidecar::quality::{CodecDials, LearnedQuality};
use rendition_sidecar::service::{self, connections, sweep, work, AppState};
use rendition_sidecar::store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file (every key optional; see docs/configuration.md).
    #[arg(long, env = "RENDITION_CONFIG")]
    config: Option<PathBuf>,
    #[arg(long, env = "RENDITION_LISTEN")]
    listen: Option<SocketAddr>,
    #[arg(long, env = "RENDITION_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, env = "RENDITION_CACHE_SIZE_BYTES")]
    cache_size_bytes: Option<u64>,
    #[arg(long, env = "RENDITION_TARGET_SSIMULACRA2")]
    target_ssimulacra2: Option<f32>,
    #[arg(long, env = "RENDITION_SAVEDATA_SCORE_REDUCTION")]
    savedata_score_reduction: Option<f32>,
    /// Default origin base URL ("" unsets it: only --origin-host hosts are fetched).
    #[arg(long, env = "RENDITION_ORIGIN")]
    origin: Option<String>,
    /// Per-host origin, HOST=URL (repeatable).
    #[arg(long = "origin-host", value_name = "HOST=URL")]
    origin_hosts: Vec<String>,
    /// PEM file of CA certificates https origins may also chain to (origins.ca_file).
    #[arg(long, env = "RENDITION_ORIGIN_CA_FILE", value_name = "PEM")]
    origin_ca_file: Option<PathBuf>,
    /// Follow redirects: same origin, or http to https on the same host (origins.follow_redirects).
    #[arg(long)]
    follow_redirects: bool,
    /// Seconds a record without variants is kept (records.empty_ttl_secs, default 86400).
    #[arg(long, env = "RENDITION_RECORDS_EMPTY_TTL_SECS")]
    records_empty_ttl_secs: Option<u64>,
    /// A source is revalidated with its origin at most once in this time
    /// (freshness.revalidate_min_interval_ms, default 1000).
    #[arg(long, env = "RENDITION_REVALIDATE_MIN_INTERVAL_MS")]
    revalidate_min_interval_ms: Option<u64>,
    #[arg(long, env = "RENDITION_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    #[arg(long, env = "RENDITION_MAX_SOURCE_BYTES")]
    max_source_bytes: Option<u64>,
    #[arg(long, env = "RENDITION_MAX_PIXELS")]
    max_pixels: Option<u64>,
    #[arg(long, env = "RENDITION_WORKERS")]
    workers: Option<usize>,
    #[arg(long, env = "RENDITION_QUEUE_CAPACITY")]
    queue_capacity: Option<usize>,
    /// From a request's first byte to the end of its headers.
    #[arg(long, env = "RENDITION_HEADER_READ_TIMEOUT_MS")]
    header_read_timeout_ms: Option<u64>,
    /// A connection with no request in progress closes after this long without a byte.
    #[arg(long, env = "RENDITION_IDLE_TIMEOUT_MS")]
    idle_timeout_ms: Option<u64>,
    /// Open connections at most (lowered to fit under the descriptor limit).
    #[arg(long, env = "RENDITION_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// On SIGTERM, how long requests in progress may take before connections are dropped.
    #[arg(long, env = "RENDITION_DRAIN_TIMEOUT_MS")]
    drain_timeout_ms: Option<u64>,
    /// Generate the siblings of a requested slot from the same decode.
    #[arg(long)]
    proactive_image_variants: bool,
    #[arg(long)]
    no_proactive_viewport_variants: bool,
    #[arg(long)]
    no_proactive_savedata_variants: bool,
    #[arg(long)]
    no_proactive_density_variants: bool,
    #[arg(long)]
    mobile_width: Option<u32>,
    #[arg(long)]
    tablet_width: Option<u32>,
    #[arg(long)]
    desktop_width: Option<u32>,
    #[arg(long)]
    enable_warmup: bool,
    /// JPEG variants start at the codec dial instead of the learned model's quality.
    #[arg(long)]
    no_learned_quality_jpeg: bool,
    #[arg(long)]
    no_learned_quality_webp: bool,
    #[arg(long)]
    no_learned_quality_avif: bool,
}

impl ServeArgs {
    fn config(&self) -> Result<Config, ConfigError> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! set {
            ($($field:ident => $($path:ident).+),* $(,)?) => {
                $(if let Some(v) = &self.$field { c.$($path).+ = v.clone().into(); })*
            };
        }
        set! {
            listen => listen, data_dir => data_dir, cache_size_bytes => cache_size_bytes,
            target_ssimulacra2 => target_ssimulacra2, savedata_score_reduction => savedata_score_reduction,
            max_source_bytes => limits.max_source_bytes, max_pixels => limits.max_pixels,
            workers => queue.workers, queue_capacity => queue.capacity,
            mobile_width => variants.mobile_width, tablet_width => variants.tablet_width,
            desktop_width => variants.desktop_width,
            records_empty_ttl_secs => records.empty_ttl_secs,
            revalidate_min_interval_ms => freshness.revalidate_min_interval_ms,
            header_read_timeout_ms => server.header_read_timeout_ms,
            idle_timeout_ms => server.idle_timeout_ms,
            max_connections => server.max_connections,
            drain_timeout_ms => server.drain_timeout_ms,
        }
        if let Some(path) = &self.origin_ca_file {
            c.origins.ca_file = Some(path.clone());
        }
        c.origins.follow_redirects |= self.follow_redirects;
        if let Some(o) = &self.origin {
            c.origins.default = rendition_sidecar::config::default_origin(o);
        }
        if let Some(t) = &self.admin_token {
            c.admin_token = Some(t.clone());
        }
        for pair in &self.origin_hosts {
            let (host, url) = pair.split_once('=').ok_or_else(|| ConfigError {
                key: "--origin-host".into(),
                message: format!("{pair:?} is not HOST=URL"),
            })?;
            c.origins
                .hosts
                .insert(host.to_ascii_lowercase(), url.to_owned());
        }
        let v = &mut c.variants;
        v.proactive_image_variants |= self.proactive_image_variants;
        v.proactive_viewport_variants &= !self.no_proactive_viewport_variants;
        v.proactive_savedata_variants &= !self.no_proactive_savedata_variants;
        v.proactive_density_variants &= !self.no_proactive_density_variants;
        v.enable_warmup |= self.enable_warmup;
        let l = &mut c.learned_quality;
        l.jpeg &= !self.no_learned_quality_jpeg;
        l.webp &= !self.no_learned_quality_webp;
        l.avif &= !self.no_learned_quality_avif;
        c.validate()?;
        Ok(c)
    }
}

pub fn run(args: &ServeArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_target(false)
        .init();
    let config = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rendition serve: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rendition serve: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve(config));
    // Encodes still running on the blocking pool are not waited for: the drain deadline is the
    // promise, and the store is crash-safe (docs/RELIABILITY.md).
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rendition serve: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let store = Store::open(&config.data_dir, config.cache_size_bytes)
        .map_err(|e| format!("data_dir {}: {e}", config.data_dir.display()))?;
    let store = Arc::new(store);
    let fd_limit = connections::raise_fd_limit(config.server.max_connections);
    let limits = connections::ConnectionLimits::new(&config.server, fd_limit);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            format!(
                "listen {}: {e} (is another sidecar running?)",
                config.listen
            )
        })?;
    tracing::info!(
        listen = %config.listen,
        data_dir = %config.data_dir.display(),
        workers = config.workers(),
        proactive = config.variants.proactive_image_variants,
        "rendition sidecar ready"
    );
    tracing::info!(
        max_open = limits.max_open,
        fd_limit = fd_limit.map_or_else(|| "unlimited".to_owned(), |l| l.to_string()),
        header_read_timeout_ms = limits.header_read_timeout.as_millis() as u64,
        idle_timeout_ms = limits.idle_timeout.as_millis() as u64,
        drain_timeout_ms = limits.drain_timeout.as_millis() as u64,
        "connections"
    );
    let learned = config.learned_quality;
    let (state, rx) = AppState::new(config, Arc::clone(&store)).map_err(|e| e.to_string())?;
    let worker = work::Worker {
        state: Arc::clone(&state),
        quality: Box::new(LearnedQuality {
            dials: CodecDials::default(),
            webp: learned.webp,
            avif: learned.avif,
            jpeg: learned.jpeg,
        }),
        avif: avif::default_encoder(),
    };
    let mut handles = work::run_workers(Arc::new(worker), rx);
    handles.push(sweep::spawn(Arc::clone(&state)));
    let result = service::serve(state, listener)
        .await
        .map_err(|e| e.to_string());
    for h in handles {
        h.abort();
    }
    store.flush().map_err(|e| e.to_string())?;
    result
}
