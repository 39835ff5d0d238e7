//! The embedded server: the default endpoint, started on first use in this process.

use std::sync::OnceLock;

use rtm2_server::{RateLimits, Server, ServerConfig};

static EMBEDDED: OnceLock<Server> = OnceLock::new();

/// The process's embedded server (development mode: tokens are not checked; no rate limits,
/// since its only clients are this process's own), started on the SDK runtime the first time
/// a client uses the embedded endpoint.
pub fn server() -> &'static Server {
    EMBEDDED.get_or_init(|| {
        let _guard = crate::runtime::runtime().enter();
        tracing::info!("starting the embedded rtm2 server (development mode)");
        Server::start(ServerConfig { rate_limits: RateLimits::unlimited(), ..Default::default() })
    })
}
