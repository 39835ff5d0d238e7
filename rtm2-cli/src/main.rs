//! `rtm2`: run a server, make tokens, publish and subscribe from a terminal, or watch a demo.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use rtm2_core::*;

mod demo;
mod stat;

/// App id used when none is given (development mode accepts any well-formed app id).
pub const DEV_APP_ID: &str = "0000000000000000000000000000d3v0";
/// Default TCP port of `rtm2 serve`.
pub const DEFAULT_PORT: u16 = 9696;

#[derive(Parser)]
#[command(name = "rtm2", version, about = "rtm2: self-hosted real-time messaging with the concepts of Agora RTM 2")]
struct Cli {
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "RTM2_LOG", default_value = "warn")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server on a TCP address.
    Serve(ServeArgs),
    /// Build an AccessToken2 for a user (login), or for a stream channel with --channel.
    Token(TokenArgs),
    /// Publish one message to a channel, or to a user with --to-user.
    Publish(PublishArgs),
    /// Subscribe to channels and print what arrives (also peer-to-peer messages).
    Subscribe(SubscribeArgs),
    /// Two users talk on the embedded server: message channel, peer to peer, stream topic.
    Demo,
    /// Print a server's live numbers (from its HTTP side's /metrics; see serve --http).
    Stat(stat::StatArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value_t = format!("127.0.0.1:{DEFAULT_PORT}"))]
    listen: String,
    /// App id to serve (with --app-certificate). Without it the server runs in development mode.
    #[arg(long, env = "RTM2_APP_ID")]
    app_id: Option<String>,
    /// App certificate(s); tokens signed with any of them are accepted.
    #[arg(long, env = "RTM2_APP_CERTIFICATE", value_delimiter = ',')]
    app_certificate: Vec<String>,
    /// Seconds before expiry at which "token privilege will expire" is sent.
    #[arg(long, default_value_t = 30)]
    token_notice_secs: u64,
    /// Turn the per-client rate limits off (they default to the reference: 60 publishes/s,
    /// 200 topic publishes/s, 20 other calls/s, 2 subscribes of one channel per 5 s).
    #[arg(long)]
    no_rate_limits: bool,
    /// Subscribes of one message channel per client within 5 s; the next fails with 11020
    /// CHANNEL_SUBSCRIBE_TOO_FREQUENT (0 = unlimited; default 2, or 0 with --no-rate-limits).
    #[arg(long, env = "RTM2_CHANNEL_SUBSCRIBES_PER_5S")]
    channel_subscribes_per_5s: Option<u32>,
    /// Publishes per second per client (0 = unlimited).
    #[arg(long)]
    publish_rate: Option<u32>,
    /// Other calls per second per client (0 = unlimited).
    #[arg(long)]
    call_rate: Option<u32>,
    /// Bytes that may wait in one connection's outbound queue; a client that lets more pile up
    /// (it does not read) is cut off as a slow consumer, with that reason.
    #[arg(long, env = "RTM2_OUTBOUND_QUEUE_BYTES", default_value_t = rtm2_server::DEFAULT_OUTBOUND_QUEUE_BYTES)]
    outbound_queue_bytes: usize,
    /// Frames that may wait in one connection's outbound queue (see --outbound-queue-bytes).
    #[arg(long, env = "RTM2_OUTBOUND_QUEUE_FRAMES", default_value_t = rtm2_server::DEFAULT_OUTBOUND_QUEUE_FRAMES)]
    outbound_queue_frames: usize,
    /// Also serve TLS on this address (needs --tls-cert and --tls-key).
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Option<String>,
    /// PEM certificate chain for TLS.
    #[arg(long)]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for TLS.
    #[arg(long)]
    tls_key: Option<std::path::PathBuf>,
    /// Keep channel and user metadata and locks in a crash-safe database in this directory
    /// (created if missing; every acknowledged write is on disk). Without it, they are kept in
    /// memory and lost when the server stops. A directory that held a store is never
    /// re-initialised silently: if its database file is missing, empty or from another store,
    /// the server refuses to start (see --create-new-store).
    #[arg(long, env = "RTM2_DATA_DIR")]
    data_dir: Option<std::path::PathBuf>,
    /// Start a new, empty store in --data-dir even though the directory held one whose
    /// database is missing, empty, foreign or whose manifest is damaged: every earlier
    /// metadata write and lock is gone. The old database file is moved aside
    /// (metadata.redb.replaced-<ms>), not deleted. Not needed for a new directory.
    #[arg(long, requires = "data_dir")]
    create_new_store: bool,
    /// Join a cluster: NATS servers, comma-separated (nats://host:port,…). Nodes given the
    /// same NATS act as one service (docs/CLUSTER.md).
    #[arg(long, env = "RTM2_CLUSTER")]
    cluster: Option<String>,
    /// This node's id in the cluster (default: random).
    #[arg(long, requires = "cluster")]
    node_id: Option<String>,
    /// Replicas of the cluster's JetStream key-value buckets (metadata, locks): 1–5, at most
    /// the number of NATS servers. Used by the node that creates the buckets.
    #[arg(long, requires = "cluster", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    cluster_replicas: u8,
    /// Above this many present users in a channel, presence events are aggregated into one
    /// INTERVAL event per --presence-interval-ms.
    #[arg(long, default_value_t = rtm2_proto::limits::DEFAULT_PRESENCE_ANNOUNCE_MAX)]
    presence_announce_max: usize,
    /// Interval of aggregated presence events, ms.
    #[arg(long, default_value_t = rtm2_proto::limits::DEFAULT_PRESENCE_INTERVAL_S * 1000)]
    presence_interval_ms: u64,
    /// Users per page of getOnlineUsers.
    #[arg(long, default_value_t = rtm2_proto::limits::DEFAULT_PRESENCE_PAGE_SIZE)]
    presence_page_size: usize,
    /// Length of one second of presence timeouts and lock ttls, ms. For tests only: 100 makes a
    /// 5 s presence timeout last 0.5 s.
    #[arg(long, default_value_t = 1000, hide = true)]
    ttl_unit_ms: u64,
    /// Serve the HTTP side on this address: the REST API, /metrics, /healthz, /readyz and the
    /// web console at /console (docs/OPERATIONS.md). Off unless given.
    #[arg(long, env = "RTM2_HTTP")]
    http: Option<String>,
    /// KEY:SECRET pairs (comma-separated) accepted by HTTP Basic authentication on the REST API
    /// and the console. Without one only user tokens are accepted (in development mode the
    /// HTTP side is then open).
    #[arg(long, env = "RTM2_HTTP_AUTH", value_delimiter = ',', requires = "http")]
    http_auth: Vec<String>,
    /// Message API calls (peer and channel messages) per second per app; beyond them 429
    /// (0 = no limit).
    #[arg(long, default_value_t = 500)]
    http_message_rate: u32,
    /// HTTP requests per second over the whole HTTP listener; beyond them 429 (0 = no limit).
    #[arg(long, default_value_t = 2000)]
    http_request_rate: u32,
    /// Message history: the newest messages kept per channel (publishes with store_in_history).
    #[arg(long, default_value_t = 1000)]
    history_max_per_channel: usize,
    /// Message history: how long a stored message is kept, seconds (default 7 days).
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    history_max_age_s: u64,
}

#[derive(Args)]
struct TokenArgs {
    #[arg(long, env = "RTM2_APP_ID")]
    app_id: String,
    #[arg(long, env = "RTM2_APP_CERTIFICATE")]
    app_certificate: String,
    #[arg(long)]
    user_id: String,
    /// Build a stream-channel (RTC) token for this channel instead of a login token.
    #[arg(long)]
    channel: Option<String>,
    /// Lifetime in seconds (at most 24 h is what Agora documents).
    #[arg(long, default_value_t = 3600)]
    expire: u32,
}

#[derive(Args, Clone)]
struct ConnectArgs {
    /// Server address (`host:port` or `tcp://host:port`), or the nodes of a cluster separated by
    /// commas (the client fails over between them); `embedded` uses an in-process server.
    #[arg(long, env = "RTM2_ENDPOINT", default_value_t = format!("127.0.0.1:{DEFAULT_PORT}"))]
    endpoint: String,
    #[arg(long, env = "RTM2_APP_ID", default_value = DEV_APP_ID)]
    app_id: String,
    #[arg(long)]
    user_id: String,
    /// Login token (empty on a development-mode server).
    #[arg(long, env = "RTM2_TOKEN", default_value = "")]
    token: String,
    /// PEM root certificate(s) that sign the server's certificate (tls:// endpoints).
    #[arg(long)]
    tls_ca: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct PublishArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Send to this user (peer to peer) instead of a channel.
    #[arg(long)]
    to_user: bool,
    #[arg(long, default_value = "")]
    custom_type: String,
    /// Channel name (or user id with --to-user).
    channel: String,
    /// The message text.
    message: String,
}

#[derive(Args)]
struct SubscribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Exit after this many messages (0 = run until interrupted).
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Seconds this user stays present after its connection drops (5..300).
    #[arg(long, default_value_t = rtm2_proto::limits::DEFAULT_PRESENCE_TIMEOUT_S)]
    presence_timeout: u32,
    /// After subscribing, acquire this lock (CHANNEL:LOCK, a message channel's lock), waiting
    /// for it if it is held.
    #[arg(long)]
    acquire_lock: Option<String>,
    /// Channels to subscribe to.
    channels: Vec<String>,
}

fn init_logs(level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: a log redirected to a file gets no escape codes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

fn client(c: &ConnectArgs) -> Result<Client> {
    let mut cfg = ClientConfig::new(&c.app_id, &c.user_id).endpoints(Endpoint::parse_list(&c.endpoint)?);
    cfg.tls_ca_file = c.tls_ca.clone();
    Client::new(cfg)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli.log_level);
    let result: std::result::Result<(), String> = match cli.command {
        Command::Serve(a) => serve(a),
        Command::Token(a) => token(a),
        Command::Publish(a) => rtm2_core::block_on(publish(a)).map_err(|e| e.to_string()),
        Command::Subscribe(a) => rtm2_core::block_on(subscribe(a)).map_err(|e| e.to_string()),
        Command::Demo => rtm2_core::block_on(demo::run()).map_err(|e| e.to_string()),
        Command::Stat(a) => stat::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtm2: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(a: ServeArgs) -> std::result::Result<(), String> {
    let mut config = rtm2_server::ServerConfig::default();
    match (a.app_id, a.app_certificate.is_empty()) {
        (Some(app_id), false) => {
            rtm2_proto::validate::app_id(&app_id).map_err(|v| v.reason)?;
            for cert in &a.app_certificate {
                rtm2_proto::token::check_credentials(&app_id, cert)
                    .map_err(|e| format!("--app-id / --app-certificate: {e} (tokens could not be signed)"))?;
            }
            config.apps.push(rtm2_server::AppCredentials { app_id, certificates: a.app_certificate });
        }
        (Some(_), true) => return Err("--app-id needs --app-certificate (or neither, for development mode)".into()),
        (None, false) => return Err("--app-certificate needs --app-id".into()),
        (None, true) => {}
    }
    config.token_will_expire_notice = Duration::from_secs(a.token_notice_secs);
    if a.no_rate_limits {
        config.rate_limits = rtm2_server::RateLimits::unlimited();
    }
    if let Some(r) = a.publish_rate {
        config.rate_limits.publish_per_s = r;
    }
    if let Some(r) = a.call_rate {
        config.rate_limits.calls_per_s = r;
    }
    if let Some(n) = a.channel_subscribes_per_5s {
        config.rate_limits.channel_subscribes_per_window = n;
    }
    config.outbound_queue_bytes = a.outbound_queue_bytes;
    config.outbound_queue_frames = a.outbound_queue_frames;
    if let Some(dir) = &a.data_dir {
        config.metadata_store = rtm2_server::MetadataStore::Directory(dir.clone());
        config.create_new_store = a.create_new_store;
    }
    if let Some(urls) = &a.cluster {
        let mut c = rtm2_server::ClusterConfig::new(urls);
        if c.urls.is_empty() {
            return Err("--cluster needs at least one nats://host:port".into());
        }
        if let Some(id) = &a.node_id {
            c.node_id = id.clone();
        }
        c.check().map_err(|e| format!("--cluster: {e}"))?;
        config.cluster = Some(c);
        config.cluster_replicas = usize::from(a.cluster_replicas);
    }
    config.presence_announce_max = a.presence_announce_max;
    config.presence_interval = Duration::from_millis(a.presence_interval_ms.max(1));
    config.presence_page_size = a.presence_page_size.max(1);
    config.ttl_unit = Duration::from_millis(a.ttl_unit_ms.max(1));
    config.history_max_per_channel = a.history_max_per_channel.max(1);
    config.history_max_age = Duration::from_secs(a.history_max_age_s.max(1));
    let mut http = rtm2_server::HttpConfig {
        message_calls_per_s: a.http_message_rate,
        requests_per_s: a.http_request_rate,
        ..Default::default()
    };
    for pair in &a.http_auth {
        match pair.split_once(':') {
            Some((k, s)) if !k.is_empty() && !s.is_empty() => http.credentials.push((k.to_string(), s.to_string())),
            _ => return Err(format!("--http-auth takes KEY:SECRET, not {pair:?}")),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let server =
            rtm2_server::Server::try_start(config).map_err(|e| format!("cannot open the metadata store: {e}"))?;
        if let Some(c) = &server.config().cluster {
            eprintln!("rtm2 node {} joins the cluster of NATS {}", c.node_id, c.urls.join(","));
        }
        match &a.data_dir {
            Some(dir) => eprintln!("rtm2 server keeps metadata in {}", dir.join("metadata.redb").display()),
            None => eprintln!("rtm2 server keeps metadata in memory (pass --data-dir DIR to keep it across restarts)"),
        }
        // A cluster node listens once it has joined (a client that reconnects to it meanwhile
        // finds the port closed and tries again, rather than being refused a login).
        if let Some(c) = &server.config().cluster {
            let mut waited = 0u64;
            while !server.cluster_ready() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                waited += 20;
                if waited.is_multiple_of(5000) {
                    eprintln!(
                        "rtm2 node {} is still waiting for NATS ({}) before it listens",
                        c.node_id,
                        c.urls.join(",")
                    );
                }
            }
        }
        let addr =
            server.listen_tcp(a.listen.as_str()).await.map_err(|e| format!("cannot listen on {}: {e}", a.listen))?;
        tracing::info!("serving");
        eprintln!(
            "rtm2 server listening on {addr}{}",
            if server.config().dev_mode() { " (development mode)" } else { "" }
        );
        if let Some(c) = &server.config().cluster {
            eprintln!("rtm2 node {} joined the cluster: serving logins", c.node_id);
        }
        if let (Some(tls_addr), Some(cert), Some(key)) = (&a.tls_listen, &a.tls_cert, &a.tls_key) {
            let tls = server
                .listen_tls(tls_addr.as_str(), cert, key)
                .await
                .map_err(|e| format!("cannot serve TLS on {tls_addr}: {e}"))?;
            eprintln!("rtm2 server listening on {tls} (tls)");
        }
        if let Some(http_addr) = &a.http {
            let bound = server
                .listen_http(http_addr.as_str(), http)
                .map_err(|e| format!("cannot serve HTTP on {http_addr}: {e}"))?;
            eprintln!("rtm2 server HTTP on http://{bound} (console: http://{bound}/console, metrics: /metrics)");
        }
        tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
        eprintln!("shutting down");
        server.shutdown();
        Ok(())
    })
}

fn token(a: TokenArgs) -> std::result::Result<(), String> {
    let t = match a.channel {
        Some(ch) => rtm2_proto::token::build_stream_token(&a.app_id, &a.app_certificate, &ch, &a.user_id, a.expire),
        None => rtm2_proto::token::build_rtm_token(&a.app_id, &a.app_certificate, &a.user_id, a.expire),
    };
    println!("{}", t.map_err(|e| e.to_string())?);
    Ok(())
}

async fn publish(a: PublishArgs) -> Result<()> {
    let c = client(&a.connect)?;
    c.login(&a.connect.token).await?;
    let mut opts = if a.to_user { PublishOptions::user() } else { PublishOptions::default() };
    opts.custom_type = a.custom_type;
    c.publish(&a.channel, a.message, opts).await?;
    c.logout().await.map(|_| ())
}

fn describe(m: &MessageEvent) -> String {
    let body = match m.text() {
        Some(t) => t.to_string(),
        None => format!("<{} bytes>", m.payload.len()),
    };
    let place = match m.channel_type {
        ChannelType::USER => "(direct)".to_string(),
        ChannelType::STREAM => format!("{}/{}", m.channel, m.topic),
        _ => m.channel.to_string(),
    };
    let ct = if m.custom_type.is_empty() { String::new() } else { format!(" [{}]", m.custom_type) };
    format!("{place} {}{ct}: {body}", m.publisher)
}

async fn subscribe(a: SubscribeArgs) -> Result<()> {
    let c = client(&a.connect)?;
    c.set_parameters(&format!("{{\"presence_timeout_s\": {}}}", a.presence_timeout))?;
    let mut events = c.events();
    c.login(&a.connect.token).await?;
    for ch in &a.channels {
        c.subscribe(ch, SubscribeOptions::default()).await?;
        eprintln!("subscribed to {ch}");
    }
    if let Some(spec) = &a.acquire_lock {
        let Some((ch, name)) = spec.split_once(':') else {
            return Err(Error::new(ErrorCode::INVALID_PARAMETER, "subscribe", "--acquire-lock takes CHANNEL:LOCK"));
        };
        c.lock().acquire_lock(ch, ChannelType::MESSAGE, name, true).await?;
        eprintln!("acquired lock {name}");
    }
    let mut seen = 0u64;
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Message(m) => {
                println!("{}", describe(&m));
                seen += 1;
                if a.count > 0 && seen >= a.count {
                    break;
                }
            }
            Event::LinkState(l) => eprintln!("link: {} ({})", l.current.name(), l.reason.name()),
            Event::TokenPrivilegeWillExpire(_) => eprintln!("the token will expire soon"),
            Event::Overflow { dropped } => eprintln!("dropped {dropped} events (too slow)"),
            Event::Presence(p) => eprintln!(
                "presence: {} {} {}",
                p.channel,
                p.event_type.name(),
                if p.publisher.is_empty() { format!("({} present)", p.snapshot.len()) } else { p.publisher.clone() }
            ),
            Event::Storage(s) => eprintln!("metadata of {}: {} items", s.target, s.data.items.len()),
            Event::Lock(l) => eprintln!("lock {} of {}: {} {}", l.lock_name, l.channel, l.event_type.name(), l.owner),
            Event::Topic(_) => {}
        }
    }
    c.logout().await.map(|_| ())
}
