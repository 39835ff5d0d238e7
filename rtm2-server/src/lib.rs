//! rtm2-server: the rtm2 service as a library.
//!
//! One [`Server`] owns one engine (apps, sessions, channels, stream channels). It serves TCP
//! listeners and in-process connections (the SDK's embedded default) with the same engine and
//! the same protocol frames: an in-process connection is a byte pipe, not a shortcut.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = rtm2_server::Server::start(rtm2_server::ServerConfig::default());
//! let addr = server.listen_tcp("127.0.0.1:0").await?;
//! println!("serving on {addr}");
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod backend;
mod cluster;
mod config;
mod conn;
mod engine;
mod group_commit;
mod history;
mod http;
mod locks;
mod meta_commit;
mod metrics;
mod publish;
mod rate;
mod scope;
mod session;
mod storage;
mod store;
mod stream;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio::sync::watch;

pub use config::{
    AppCredentials, ClusterConfig, DEFAULT_OUTBOUND_QUEUE_BYTES, DEFAULT_OUTBOUND_QUEUE_FRAMES, MetadataStore,
    ServerConfig,
};
use engine::Engine;
pub use http::HttpConfig;
pub use rate::RateLimits;
use rtm2_proto::ErrorCode;
use rtm2_proto::enums::LinkStateChangeReason;
use session::Goodbye;

/// Bytes buffered in each direction of an in-process connection.
const IN_MEMORY_PIPE_BYTES: usize = 1024 * 1024;

/// A running server. Cloning gives another handle to the same server.
#[derive(Clone)]
pub struct Server {
    engine: Arc<Engine>,
    stop: Arc<watch::Sender<bool>>,
}

impl Server {
    /// Starts a server on the current tokio runtime. It serves nothing until
    /// [`listen_tcp`](Self::listen_tcp) or [`connect_in_memory`](Self::connect_in_memory).
    ///
    /// # Panics
    /// If the metadata store cannot be opened (only [`MetadataStore::Directory`] can fail;
    /// use [`try_start`](Self::try_start) to handle that).
    pub fn start(config: ServerConfig) -> Server {
        match Self::try_start(config) {
            Ok(s) => s,
            Err(e) => panic!("rtm2-server: cannot start: {e}"),
        }
    }

    /// Starts a server; fails if the metadata store cannot be opened (a data directory that
    /// cannot be created, or whose database another server has open), or if the cluster
    /// configuration is invalid (`ClusterConfig::check`, `InvalidInput`).
    pub fn try_start(config: ServerConfig) -> std::io::Result<Server> {
        if config.dev_mode() {
            tracing::info!("rtm2-server in development mode: any app id is accepted and tokens are not checked");
        }
        if let Some(c) = &config.cluster {
            c.check().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        }
        // Tokens are signed with 32-hex-character app ids and certificates: with others no
        // client could ever log in.
        for app in &config.apps {
            for cert in &app.certificates {
                rtm2_proto::token::check_credentials(&app.app_id, cert).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("app {:?}: {e}", app.app_id))
                })?;
            }
        }
        let (stop, _) = watch::channel(false);
        Ok(Server { engine: Engine::new(config)?, stop: Arc::new(stop) })
    }

    /// This node's id in its cluster ("" for a single server).
    pub fn node_id(&self) -> String {
        self.engine.node_id()
    }

    /// In a cluster: whether the node is connected to NATS (and so accepts logins). Always
    /// true for a single server.
    pub fn cluster_ready(&self) -> bool {
        self.engine.cluster.as_ref().is_none_or(|c| c.ready())
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &ServerConfig {
        &self.engine.config
    }

    /// Binds a TCP listener and serves it until [`shutdown`](Self::shutdown). Returns the bound
    /// address (useful with port 0).
    pub async fn listen_tcp(&self, addr: impl ToSocketAddrs) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        tracing::info!(%local, "listening (tcp)");
        self.warn_if_open();
        let engine = self.engine.clone();
        let mut stop = self.stop.subscribe();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok((sock, peer)) => {
                            let _ = sock.set_nodelay(true);
                            tracing::debug!(%peer, "accepted");
                            tokio::spawn(session::serve(engine.clone(), sock));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        });
        Ok(local)
    }

    /// Binds a TLS listener (certificate chain and key in PEM files) and serves it until
    /// [`shutdown`](Self::shutdown). A client has 10 s to complete the TLS handshake.
    pub async fn listen_tls(
        &self,
        addr: impl ToSocketAddrs,
        cert_chain_pem: &std::path::Path,
        key_pem: &std::path::Path,
    ) -> std::io::Result<SocketAddr> {
        let acceptor = tls::acceptor_from_pem_files(cert_chain_pem, key_pem)?;
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        tracing::info!(%local, "listening (tls)");
        self.warn_if_open();
        let server = self.clone();
        let mut stop = self.stop.subscribe();
        tokio::spawn(async move {
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok((sock, peer)) => {
                            let _ = sock.set_nodelay(true);
                            let (acceptor, server) = (acceptor.clone(), server.clone());
                            tokio::spawn(async move {
                                let timeout = std::time::Duration::from_secs(10);
                                match tokio::time::timeout(timeout, acceptor.accept(sock)).await {
                                    Ok(Ok(tls)) => server.serve_stream(tls),
                                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        });
        Ok(local)
    }

    /// Serves the HTTP side — REST API, `/metrics`, `/healthz`, `/readyz` and the web console
    /// (docs/OPERATIONS.md) — on `addr`, on a thread of its own, until
    /// [`shutdown`](Self::shutdown). Returns the bound address. Call it within the server's
    /// tokio runtime.
    pub fn listen_http(&self, addr: impl std::net::ToSocketAddrs, config: HttpConfig) -> std::io::Result<SocketAddr> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on"))?;
        http::listen(self.engine.clone(), addr, config, self.stop.subscribe())
    }

    /// A network listener in development mode accepts anyone: say so loudly.
    fn warn_if_open(&self) {
        if self.engine.config.dev_mode() {
            tracing::warn!(
                "rtm2-server serves the network in DEVELOPMENT MODE: no app certificate is configured, so any app id is accepted and tokens are not checked"
            );
        }
    }

    /// Serves one already-open byte stream (any transport).
    pub fn serve_stream<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        tokio::spawn(session::serve(self.engine.clone(), stream));
    }

    /// Opens an in-process connection and returns the client's end of it.
    pub fn connect_in_memory(&self) -> DuplexStream {
        let (client, server) = tokio::io::duplex(IN_MEMORY_PIPE_BYTES);
        self.serve_stream(server);
        client
    }

    /// Number of connections being served (logged in or not).
    pub fn connection_count(&self) -> usize {
        self.engine.connection_count()
    }

    /// Number of sessions (connected, or detached and waiting for a resume).
    pub fn session_count(&self) -> usize {
        self.engine.sessions.lock().unwrap().len()
    }

    /// Connections cut off as slow consumers (their outbound queue was full) since the start.
    pub fn slow_consumer_cuts(&self) -> u64 {
        self.engine.metrics.slow_consumer_cuts.get()
    }

    /// Closes every session as if the network had failed (clients reconnect). For operations
    /// and tests.
    pub fn drop_all_connections(&self) {
        let sessions: Vec<_> = self.engine.sessions.lock().unwrap().values().cloned().collect();
        for s in sessions {
            s.close_conn(Goodbye::new(
                ErrorCode::NOT_CONNECTED.code(),
                LinkStateChangeReason::CONNECTION_ERROR,
                "the server dropped the connection",
            ));
        }
    }

    /// Stops accepting connections and ends every session (they cannot be resumed).
    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        if let Some(c) = &self.engine.cluster {
            c.stop();
        }
        let sessions: Vec<_> = self.engine.sessions.lock().unwrap().values().cloned().collect();
        for s in sessions {
            s.close_conn(Goodbye::new(
                ErrorCode::NOT_CONNECTED.code(),
                LinkStateChangeReason::CONNECTION_ERROR,
                "the server is shutting down",
            ));
            self.engine.end_session(&s, engine::Ending::Leave);
        }
    }
}
