//! `rendition serve`: the sidecar service. Configuration: defaults, then `--config FILE`
//! (TOML), then environment variables (`RENDITION_*`), then flags; validated before binding.

use clap::Args;
use rendition_sidecar::config::{Config, ConfigError, Exposure};
use rendition_sidecar::encode::avif;
use rendition_sidecar::fleet::SharedTier;
use rendition_sidecar::quality::{CodecDials, LearnedQuality};
use rendition_sidecar::service::{self, connections, share, sweep, work, AppState};
use rendition_sidecar::store::Store;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The flags of `rendition serve` (and of `check-config`, which resolves the same way). A flag
/// left out leaves the file's value, or the default; the defaults shown by `--help` are read
/// from `Config::default()` ([`with_defaults_in_help`]), so they cannot drift from the code.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML configuration file (every key optional; docs/configuration.md).
    #[arg(long, env = "RENDITION_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address of the sidecar's HTTP API (listen). Beyond loopback, /notify, /v/ and /index
    /// answer anyone who reaches it.
    #[arg(long, env = "RENDITION_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// sled database folder; one process at a time (data_dir).
    #[arg(long, env = "RENDITION_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Budget for stored variant payload; least recently served variants are evicted past it
    /// (cache_size_bytes).
    #[arg(long, env = "RENDITION_CACHE_SIZE_BYTES", value_name = "BYTES")]
    cache_size_bytes: Option<u64>,
    /// SSIMULACRA2 target every lossy variant is verified against, 0-100 (target_ssimulacra2).
    #[arg(long, env = "RENDITION_TARGET_SSIMULACRA2", value_name = "SCORE")]
    target_ssimulacra2: Option<f32>,
    /// Points the target drops for Save-Data slots, 0-100 (savedata_score_reduction).
    #[arg(
        long,
        env = "RENDITION_SAVEDATA_SCORE_REDUCTION",
        value_name = "POINTS"
    )]
    savedata_score_reduction: Option<f32>,
    /// Base URL of the origin for hosts without their own; "" unsets it, then only
    /// --origin-host hosts are fetched (origins.default).
    #[arg(long, env = "RENDITION_ORIGIN", value_name = "URL")]
    origin: Option<String>,
    /// Origin of one host, HOST=URL, repeatable; HOST is canonicalized like a request's
    /// (origins.hosts).
    #[arg(long = "origin-host", value_name = "HOST=URL")]
    origin_hosts: Vec<String>,
    /// PEM file of CA certificates https origins may also chain to (origins.ca_file).
    #[arg(long, env = "RENDITION_ORIGIN_CA_FILE", value_name = "PEM")]
    origin_ca_file: Option<PathBuf>,
    /// Follow redirects: same origin, or http to https on the same host
    /// (origins.follow_redirects).
    #[arg(long)]
    follow_redirects: bool,
    /// Seconds a record without variants is kept (records.empty_ttl_secs).
    #[arg(long, env = "RENDITION_RECORDS_EMPTY_TTL_SECS", value_name = "SECS")]
    records_empty_ttl_secs: Option<u64>,
    /// A source is revalidated with its origin at most once in this time
    /// (freshness.revalidate_min_interval_ms).
    #[arg(long, env = "RENDITION_REVALIDATE_MIN_INTERVAL_MS", value_name = "MS")]
    revalidate_min_interval_ms: Option<u64>,
    /// Bearer token (16+ characters) that opens /stats, /metrics, /purge and /report to
    /// non-loopback peers (admin_token).
    #[arg(
        long,
        env = "RENDITION_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    admin_token: Option<String>,
    /// Largest original fetched, in bytes (limits.max_source_bytes).
    #[arg(long, env = "RENDITION_MAX_SOURCE_BYTES", value_name = "BYTES")]
    max_source_bytes: Option<u64>,
    /// Largest frame decoded, in pixels (limits.max_pixels).
    #[arg(long, env = "RENDITION_MAX_PIXELS", value_name = "PIXELS")]
    max_pixels: Option<u64>,
    /// Sources processed at once; 0 is one per core (queue.workers).
    #[arg(long, env = "RENDITION_WORKERS", value_name = "N")]
    workers: Option<usize>,
    /// Sources waiting for a worker; a notify past it gets 429 (queue.capacity).
    #[arg(long, env = "RENDITION_QUEUE_CAPACITY", value_name = "N")]
    queue_capacity: Option<usize>,
    /// From a request's first byte to the end of its headers.
    #[arg(long, env = "RENDITION_HEADER_READ_TIMEOUT_MS")]
    header_read_timeout_ms: Option<u64>,
    /// A connection with no request in progress closes after this long without a byte.
    #[arg(long, env = "RENDITION_IDLE_TIMEOUT_MS")]
    idle_timeout_ms: Option<u64>,
    /// Open connections at most (lowered to fit under the descriptor limit; past it the
    /// connection idle the longest is closed).
    #[arg(long, env = "RENDITION_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// On SIGTERM, how long requests in progress may take before connections are dropped.
    #[arg(long, env = "RENDITION_DRAIN_TIMEOUT_MS")]
    drain_timeout_ms: Option<u64>,
    /// After the requested slot, generate its siblings from the same decode
    /// (variants.proactive_image_variants).
    #[arg(long)]
    proactive_image_variants: bool,
    /// Proactive generation leaves out the other viewports
    /// (variants.proactive_viewport_variants = false).
    #[arg(long)]
    no_proactive_viewport_variants: bool,
    /// Proactive generation leaves out the other Save-Data setting
    /// (variants.proactive_savedata_variants = false).
    #[arg(long)]
    no_proactive_savedata_variants: bool,
    /// Proactive generation leaves out the other density
    /// (variants.proactive_density_variants = false).
    #[arg(long)]
    no_proactive_density_variants: bool,
    /// Mobile target width at 1x in px; 0 keeps the original width (variants.mobile_width).
    #[arg(long, value_name = "PX")]
    mobile_width: Option<u32>,
    /// Tablet target width at 1x in px; 0 keeps the original width (variants.tablet_width).
    #[arg(long, value_name = "PX")]
    tablet_width: Option<u32>,
    /// Desktop target width at 1x in px; 0 keeps the original width (variants.desktop_width).
    #[arg(long, value_name = "PX")]
    desktop_width: Option<u32>,
    /// Honour the filter's hot-URL warmups: generate the whole matrix
    /// (variants.enable_warmup).
    #[arg(long)]
    enable_warmup: bool,
    /// JPEG variants start at the codec dial, not the learned model's quality
    /// (learned_quality.jpeg = false).
    #[arg(long)]
    no_learned_quality_jpeg: bool,
    /// WebP variants start at the codec dial, not the learned model's quality
    /// (learned_quality.webp = false).
    #[arg(long)]
    no_learned_quality_webp: bool,
    /// AVIF variants start at the codec dial, not the learned model's quality
    /// (learned_quality.avif = false).
    #[arg(long)]
    no_learned_quality_avif: bool,
}

/// The default of every flag, as `--help` shows it: from `Config::default()`. A switch shows
/// what the option is without it.
fn flag_defaults() -> Vec<(&'static str, String)> {
    let d = Config::default();
    let on_off = |b: bool| if b { "on" } else { "off" }.to_owned();
    let v = &d.variants;
    let l = &d.learned_quality;
    vec![
        ("config", "none".to_owned()),
        ("listen", d.listen.to_string()),
        ("data_dir", d.data_dir.display().to_string()),
        ("cache_size_bytes", d.cache_size_bytes.to_string()),
        ("target_ssimulacra2", d.target_ssimulacra2.to_string()),
        (
            "savedata_score_reduction",
            d.savedata_score_reduction.to_string(),
        ),
        ("origin", d.origins.default.clone().unwrap_or_default()),
        ("origin_hosts", "none".to_owned()),
        ("origin_ca_file", "none".to_owned()),
        ("follow_redirects", on_off(d.origins.follow_redirects)),
        (
            "records_empty_ttl_secs",
            d.records.empty_ttl_secs.to_string(),
        ),
        (
            "revalidate_min_interval_ms",
            d.freshness.revalidate_min_interval_ms.to_string(),
        ),
        (
            "admin_token",
            "unset: admin routes answer loopback peers only".to_owned(),
        ),
        ("max_source_bytes", d.limits.max_source_bytes.to_string()),
        ("max_pixels", d.limits.max_pixels.to_string()),
        ("workers", d.queue.workers.to_string()),
        ("queue_capacity", d.queue.capacity.to_string()),
        (
            "proactive_image_variants",
            on_off(v.proactive_image_variants),
        ),
        (
            "no_proactive_viewport_variants",
            on_off(v.proactive_viewport_variants),
        ),
        (
            "no_proactive_savedata_variants",
            on_off(v.proactive_savedata_variants),
        ),
        (
            "no_proactive_density_variants",
            on_off(v.proactive_density_variants),
        ),
        ("mobile_width", v.mobile_width.to_string()),
        ("tablet_width", v.tablet_width.to_string()),
        ("desktop_width", v.desktop_width.to_string()),
        ("enable_warmup", on_off(v.enable_warmup)),
        (
            "header_read_timeout_ms",
            d.server.header_read_timeout_ms.to_string(),
        ),
        ("idle_timeout_ms", d.server.idle_timeout_ms.to_string()),
        ("max_connections", d.server.max_connections.to_string()),
        ("drain_timeout_ms", d.server.drain_timeout_ms.to_string()),
        ("no_learned_quality_jpeg", on_off(l.jpeg)),
        ("no_learned_quality_webp", on_off(l.webp)),
        ("no_learned_quality_avif", on_off(l.avif)),
    ]
}

/// Appends `[default: ...]` to the help of every flag of a command built from [`ServeArgs`]
/// (`serve`, `check-config`). Switches show the option's state without the flag:
/// `--no-proactive-viewport-variants [default: on]` means the option is on.
pub fn with_defaults_in_help(mut cmd: clap::Command) -> clap::Command {
    for (id, default) in flag_defaults() {
        cmd = cmd.mut_arg(id, |arg| {
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            arg.help(format!("{help} [default: {default}]"))
        });
    }
    cmd
}

impl ServeArgs {
    /// The effective configuration: defaults, then the file, then environment variables and
    /// flags (clap has merged those two), normalized and validated.
    pub fn config(&self) -> Result<Config, ConfigError> {
        self.config_from(self.config.as_deref())
    }

    /// [`ServeArgs::config`] with the file given elsewhere (`check-config FILE`).
    pub fn config_from(&self, file: Option<&std::path::Path>) -> Result<Config, ConfigError> {
        let mut c = match file.or(self.config.as_deref()) {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        self.apply(&mut c)?;
        Ok(c)
    }

    /// Environment variables and flags over `c`, then normalization and validation.
    fn apply(&self, c: &mut Config) -> Result<(), ConfigError> {
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
        // The file's hosts canonical first, then each flag's: a flag replaces the file's
        // mapping of its host however either spells it, and two flags naming one host with
        // different URLs are an error.
        c.normalize()?;
        let mut from_flags: BTreeMap<String, (&str, &str)> = BTreeMap::new();
        for pair in &self.origin_hosts {
            let (host, url) = pair.split_once('=').ok_or_else(|| ConfigError {
                key: "--origin-host".into(),
                message: format!("{pair:?} is not HOST=URL"),
            })?;
            let host = rendition_shared::canonical_host(host).map_err(|e| ConfigError {
                key: "--origin-host".into(),
                message: format!("{pair:?}: {e}"),
            })?;
            if let Some((other, other_url)) = from_flags.get(&host) {
                if *other_url != url {
                    return Err(ConfigError {
                        key: "--origin-host".into(),
                        message: format!(
                            "{other:?} and {pair:?} both name host {host} with different URLs"
                        ),
                    });
                }
            }
            c.origins.hosts.insert(host.clone(), url.to_owned());
            from_flags.insert(host, (pair.as_str(), url));
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
        c.normalize()?;
        c.validate()
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
    match config.exposure() {
        Some(Exposure::Open(why)) => tracing::warn!("{why}"),
        Some(Exposure::Token(why)) => tracing::info!("{why}"),
        None => {}
    }
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
            // A setting to fix (it names the key) exits like a configuration error.
            if e.starts_with("config: ") {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
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
    // The bound address: `--listen 127.0.0.1:0` picks a free port, and this line says which.
    let bound = listener.local_addr().unwrap_or(config.listen);
    tracing::info!(
        listen = %bound,
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
    let fleet = if config.shared_store.enabled {
        let tier = SharedTier::connect(&config.shared_store)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            bucket = %config.shared_store.bucket,
            prefix = %config.shared_store.prefix,
            node = %tier.node(),
            "shared tier connected"
        );
        Some(Arc::new(tier))
    } else {
        None
    };
    let learned = config.learned_quality;
    let (state, rx) =
        AppState::new(config, Arc::clone(&store), fleet).map_err(|e| e.to_string())?;
    let worker = work::Worker {
        state: Arc::clone(&state),
        quality: Box::new(LearnedQuality {
            dials: CodecDials::default(),
            webp: learned.webp,
            avif: learned.avif,
            jpeg: learned.jpeg,
        }),
        avif: avif::default_encoder(),
        avif_direct: avif::threaded_encoder(
            std::thread::available_parallelism().map_or(1, |n| n.get().min(8) as u8),
        ),
    };
    let mut handles = work::run_workers(Arc::new(worker), rx);
    handles.push(sweep::spawn(Arc::clone(&state)));
    handles.extend(share::follow_purges(Arc::clone(&state)));
    let result = service::serve(state, listener)
        .await
        .map_err(|e| e.to_string());
    for h in handles {
        h.abort();
    }
    store.flush().map_err(|e| e.to_string())?;
    result
}
