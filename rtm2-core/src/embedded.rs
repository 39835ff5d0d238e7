//! The embedded server: the default endpoint, started on first use in this process.

use std::sync::OnceLock;

use rtm2_server::{MetadataStore, RateLimits, Server, ServerConfig};

static EMBEDDED: OnceLock<Server> = OnceLock::new();

/// Environment variable naming a directory where the embedded server keeps metadata (a
/// crash-safe database, as `rtm2 serve --data-dir`); unset: in memory.
pub const DATA_DIR_ENV: &str = "RTM2_EMBEDDED_DATA_DIR";

/// The WARN line logged once per process when the embedded server starts.
pub const EMBEDDED_WARNING: &str = "starting the embedded rtm2 server (development mode: tokens are not checked); it serves this process only: clients in other processes do not see it; set RTM2_ENDPOINT or endpoint to share a server (e.g. `rtm2 serve`)";

/// The process's embedded server (development mode: tokens are not checked; no throughput
/// rate limits, since its only clients are this process's own, but the reference's 11020 on
/// subscribing one channel more than twice in 5 s, as against any server: `RateLimits::embedded()`), started on the SDK runtime the first time
/// a client uses the embedded endpoint. Metadata is kept in memory, or in the directory named
/// by `RTM2_EMBEDDED_DATA_DIR`.
pub fn server() -> &'static Server {
    EMBEDDED.get_or_init(|| {
        let _guard = crate::runtime::runtime().enter();
        // A warning, once per process (this runs once): two programs that both use the default
        // endpoint each get their own server and silently do not see each other.
        tracing::warn!("{EMBEDDED_WARNING}");
        let config = ServerConfig { rate_limits: RateLimits::embedded(), ..Default::default() };
        let dir = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty());
        if let Some(dir) = dir {
            let durable =
                ServerConfig { metadata_store: MetadataStore::Directory(dir.clone().into()), ..config.clone() };
            match Server::try_start(durable) {
                Ok(s) => return s,
                Err(e) => tracing::error!(
                    dir = %std::path::Path::new(&dir).display(),
                    error = %e,
                    "the embedded server cannot use its data directory; keeping metadata in memory"
                ),
            }
        }
        Server::start(config)
    })
}
