//! The embedded server: the default endpoint, started on first use in this process.

use std::sync::OnceLock;

use rtm2_server::{Server, ServerConfig};

static EMBEDDED: OnceLock<Server> = OnceLock::new();

/// The process's embedded server (development mode: tokens are not checked), started on the
/// SDK runtime the first time a client uses the embedded endpoint.
pub fn server() -> &'static Server {
    EMBEDDED.get_or_init(|| {
        let _guard = crate::runtime::runtime().enter();
        tracing::info!("starting the embedded rtm2 server (development mode)");
        Server::start(ServerConfig::default())
    })
}
