//! The embedded server: the default endpoint, started on first use in this process.

use std::sync::OnceLock;

use rtm2_server::{HttpConfig, MetadataStore, RateLimits, Server, ServerConfig};

static EMBEDDED: OnceLock<Server> = OnceLock::new();

/// Environment variable naming a directory where the embedded server keeps metadata (a
/// crash-safe database, as `rtm2 serve --data-dir`); unset: in memory.
pub const DATA_DIR_ENV: &str = "RTM2_EMBEDDED_DATA_DIR";

/// Environment variable naming a `host:port` where the embedded server also serves its HTTP
/// side (REST API, /metrics, /healthz, /readyz, the console; docs/OPERATIONS.md), as
/// `rtm2 serve --http`; unset: no HTTP side.
pub const HTTP_ENV: &str = "RTM2_EMBEDDED_HTTP";

/// Environment variable with `KEY:SECRET` pairs (comma-separated) for the embedded server's
/// HTTP side, as `rtm2 serve --http-auth`; unset: the HTTP side is open (development mode).
pub const HTTP_AUTH_ENV: &str = "RTM2_EMBEDDED_HTTP_AUTH";

/// The WARN line logged once per process when the embedded server starts.
pub const EMBEDDED_WARNING: &str = "starting the embedded rtm2 server (development mode: tokens are not checked); it serves this process only: clients in other processes do not see it; set RTM2_ENDPOINT or endpoint to share a server (e.g. `rtm2 serve`)";

/// The process's embedded server (development mode: tokens are not checked; no throughput
/// rate limits, since its only clients are this process's own, but the reference's 11020 on
/// subscribing one channel more than twice in 5 s, as against any server: `RateLimits::embedded()`), started on the SDK runtime the first time
/// a client uses the embedded endpoint. Metadata is kept in memory, or in the directory named
/// by `RTM2_EMBEDDED_DATA_DIR`; with `RTM2_EMBEDDED_HTTP` it also serves its HTTP side.
pub fn server() -> &'static Server {
    EMBEDDED.get_or_init(|| {
        let _guard = crate::runtime::runtime().enter();
        // A warning, once per process (this runs once): two programs that both use the default
        // endpoint each get their own server and silently do not see each other.
        tracing::warn!("{EMBEDDED_WARNING}");
        let config = ServerConfig { rate_limits: RateLimits::embedded(), ..Default::default() };
        let dir = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty());
        let mut started = None;
        if let Some(dir) = dir {
            let durable =
                ServerConfig { metadata_store: MetadataStore::Directory(dir.clone().into()), ..config.clone() };
            match Server::try_start(durable) {
                Ok(s) => started = Some(s),
                Err(e) => tracing::error!(
                    dir = %std::path::Path::new(&dir).display(),
                    error = %e,
                    "the embedded server cannot use its data directory; keeping metadata in memory"
                ),
            }
        }
        let server = started.unwrap_or_else(|| Server::start(config));
        serve_http(&server);
        server
    })
}

/// The HTTP side of the embedded server, if `RTM2_EMBEDDED_HTTP` asks for it (an error is
/// logged, not fatal: messaging works without it).
fn serve_http(server: &Server) {
    let Some(addr) = std::env::var(HTTP_ENV).ok().filter(|a| !a.trim().is_empty()) else { return };
    let mut config = HttpConfig::default();
    for pair in std::env::var(HTTP_AUTH_ENV).unwrap_or_default().split(',').filter(|p| !p.trim().is_empty()) {
        match pair.trim().split_once(':') {
            Some((k, s)) if !k.is_empty() && !s.is_empty() => config.credentials.push((k.into(), s.into())),
            _ => {
                tracing::error!(
                    "{HTTP_AUTH_ENV}: takes KEY:SECRET pairs; the embedded server's HTTP side is not served"
                );
                return;
            }
        }
    }
    match server.listen_http(addr.trim(), config) {
        Ok(bound) => tracing::warn!("the embedded rtm2 server serves HTTP on http://{bound} (console: /console)"),
        Err(e) => tracing::error!(addr, error = %e, "{HTTP_ENV}: the embedded server cannot serve HTTP there"),
    }
}
