//! Connecting each system's usual Rust client, subscribing, and publishing one payload.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use rtm2_core::{
    Client, ClientConfig, Endpoint, Event, JoinOptions, JoinTopicOptions, MessageType, Payload, SubscribeOptions,
};

use crate::sys::{System, Target};

/// App id of every rtm2 client (development mode accepts any well-formed id).
pub const APP_ID: &str = "b3nchb3nchb3nchb3nchb3nchb3nch01";
/// Message channel / subject / Redis channel used by every workload.
pub const CHANNEL: &str = "bench";
/// Stream channel and topic of the stream-topic variant.
pub const STREAM: &str = "benchstream";
pub const TOPIC: &str = "t";
/// User id of the publisher (the topic subscribers subscribe to it).
pub const PUBLISHER: &str = "pub";

/// Message channel (all systems) or stream topic (rtm2 only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Channel,
    Topic,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Channel => "channel",
            Kind::Topic => "topic",
        }
    }
}

/// Notable client-library events (slow consumer, disconnect...) seen during a run.
static EVENTS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

pub fn note_event(e: String) {
    if e.ends_with(": connected") || e.ends_with(": closed") {
        return;
    }
    let mut v = EVENTS.lock().unwrap();
    if v.len() < 20 {
        v.push(e);
    }
}

/// The events noted so far.
pub fn events() -> Vec<String> {
    EVENTS.lock().unwrap().clone()
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// End-to-end encryption of every rtm2 client of this run (`fanout --encryption`).
static ENCRYPTION: std::sync::OnceLock<rtm2_core::EncryptionConfig> = std::sync::OnceLock::new();

/// Makes every rtm2 client of this run encrypt with `mode` (a mode name).
pub fn set_encryption(mode: &str) -> Result<(), BoxError> {
    let m = match mode {
        "AES_128_GCM" => rtm2_core::EncryptionMode::AES_128_GCM,
        "AES_256_GCM" => rtm2_core::EncryptionMode::AES_256_GCM,
        _ => return Err(format!("--encryption {mode:?}: use AES_128_GCM or AES_256_GCM").into()),
    };
    let _ = ENCRYPTION.set(rtm2_core::EncryptionConfig::new(m, "rtm2 bench key", b"rtm2 bench salt".to_vec()));
    Ok(())
}

/// The CA of a `--tls` run (tls.rs): rtm2 clients connect to `tls://` endpoints and trust it;
/// NATS clients require TLS and trust it.
static TLS_CA: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Makes every client of this run use TLS, trusting the CA in the PEM file `ca`.
pub fn set_tls_ca(ca: &std::path::Path) {
    let _ = TLS_CA.set(ca.to_path_buf());
}

/// Whether the clients of this run use TLS.
pub fn tls() -> bool {
    TLS_CA.get().is_some()
}

/// Options of a NATS client of this run (with TLS required, and the run's CA, under `--tls`).
pub fn nats_options() -> async_nats::ConnectOptions {
    let o = async_nats::ConnectOptions::new();
    match TLS_CA.get() {
        Some(ca) => o.require_tls(true).add_root_certificates(ca.clone()),
        None => o,
    }
}

pub fn rtm2_config(addr: &str, user: &str) -> ClientConfig {
    let endpoint = if tls() { Endpoint::Tls(addr.to_string()) } else { Endpoint::Tcp(addr.to_string()) };
    let mut cfg = ClientConfig::new(APP_ID, user).endpoint(endpoint);
    cfg.tls_ca_file = TLS_CA.get().cloned();
    cfg.request_timeout = Duration::from_secs(30);
    if let Some(f) = std::env::var_os("RTM2_BENCH_CLIENT_LOG") {
        cfg.log_file = Some(f.into());
        cfg.log_level = "debug".into();
    }
    if let Some(e) = ENCRYPTION.get() {
        cfg.encryption = e.clone();
    }
    cfg
}

/// A connected rtm2 client, logged in.
pub async fn rtm2_login(addr: &str, user: &str) -> Result<Client, BoxError> {
    let c = Client::new(rtm2_config(addr, user))?;
    c.login("").await?;
    Ok(c)
}

/// A batch of received payloads, and how many messages the client library reported dropped
/// (an rtm2 overflow notice).
pub struct Delivery {
    pub payloads: Vec<Bytes>,
    pub dropped: u64,
}

impl Delivery {
    fn of(payloads: Vec<Bytes>) -> Delivery {
        Delivery { payloads, dropped: 0 }
    }
}

/// A subscriber: a stream of delivery batches, plus what keeps its connection alive.
pub struct Subscriber {
    pub stream: BoxStream<'static, Delivery>,
    #[allow(dead_code)]
    pub(crate) keep: Box<dyn std::any::Any + Send>,
}

fn payloads_of(batch: Vec<Event>) -> Delivery {
    let mut out = Vec::with_capacity(batch.len());
    let mut dropped = 0;
    for ev in batch {
        match ev {
            Event::Message(m) => out.push(m.payload),
            Event::Overflow { dropped: d } => dropped += d,
            _ => {}
        }
    }
    Delivery { payloads: out, dropped }
}

/// Connects subscriber `idx` and subscribes; returns once the server confirmed.
pub async fn subscriber(target: &Target, kind: Kind, idx: usize, capacity: usize) -> Result<Subscriber, BoxError> {
    match (target.system, kind) {
        (s, Kind::Channel) if s.is_rtm2() => {
            let client = rtm2_login(target.addr_of(idx), &format!("sub{idx}")).await?;
            let opts = SubscribeOptions { with_presence: false, ..Default::default() };
            let sub = client.subscribe(CHANNEL, opts).await?;
            let stream = futures::stream::unfold(sub, |mut sub| async move {
                let batch = sub.recv_batch(4096).await?;
                Some((payloads_of(batch), sub))
            });
            Ok(Subscriber { stream: stream.boxed(), keep: Box::new(client) })
        }
        (s, Kind::Topic) if s.is_rtm2() => {
            let client = rtm2_login(target.addr_of(idx), &format!("sub{idx}")).await?;
            let events = client.events();
            let ch = client.stream_channel(STREAM)?;
            ch.join(JoinOptions { with_presence: false, ..Default::default() }).await?;
            let r = ch.subscribe_topic(TOPIC, &[PUBLISHER]).await?;
            if r.succeeded.is_empty() {
                return Err(format!("subscribe_topic failed: {:?}", r.failed).into());
            }
            let stream = futures::stream::unfold(events, |mut rx| async move {
                let batch = rx.recv_batch(4096).await?;
                Some((payloads_of(batch), rx))
            });
            Ok(Subscriber { stream: stream.boxed(), keep: Box::new((client, ch)) })
        }
        (System::Relay, Kind::Channel) => crate::relay::subscriber(&target.addr).await,
        (System::Nats, Kind::Channel) => {
            let client = nats_options()
                .subscription_capacity(capacity)
                .event_callback(|ev| async move { note_event(format!("nats: {ev}")) })
                .connect(target.addr.as_str())
                .await?;
            let sub = client.subscribe(CHANNEL).await?;
            client.flush().await?;
            let stream = sub.ready_chunks(1024).map(|v| Delivery::of(v.into_iter().map(|m| m.payload).collect()));
            Ok(Subscriber { stream: stream.boxed(), keep: Box::new(client) })
        }
        (System::Redis, Kind::Channel) => {
            let client = redis::Client::open(format!("redis://{}/", target.addr))?;
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(CHANNEL).await?;
            let stream = ps
                .into_on_message()
                .ready_chunks(1024)
                .map(|v| Delivery::of(v.into_iter().map(|m| Bytes::copy_from_slice(m.get_payload_bytes())).collect()));
            Ok(Subscriber { stream: stream.boxed(), keep: Box::new(client) })
        }
        (s, k) => Err(format!("{} has no {} variant", s.name(), k.name()).into()),
    }
}

/// The publishing side of each system.
pub enum Publisher {
    Rtm2(Client),
    /// The client is kept alive with its stream channel.
    Rtm2Topic(#[allow(dead_code)] Client, rtm2_core::StreamChannel),
    Nats(async_nats::Client),
    Redis(redis::aio::MultiplexedConnection),
    Relay(crate::relay::RelayPublisher),
}

pub async fn publisher(target: &Target, kind: Kind) -> Result<Publisher, BoxError> {
    Ok(match (target.system, kind) {
        (s, Kind::Channel) if s.is_rtm2() => Publisher::Rtm2(rtm2_login(&target.addr, PUBLISHER).await?),
        (s, Kind::Topic) if s.is_rtm2() => {
            let client = rtm2_login(&target.addr, PUBLISHER).await?;
            let ch = client.stream_channel(STREAM)?;
            ch.join(JoinOptions { with_presence: false, ..Default::default() }).await?;
            ch.join_topic(TOPIC, JoinTopicOptions::default()).await?;
            Publisher::Rtm2Topic(client, ch)
        }
        (System::Nats, Kind::Channel) => Publisher::Nats(
            nats_options()
                .event_callback(|ev| async move { note_event(format!("nats publisher: {ev}")) })
                .connect(target.addr.as_str())
                .await?,
        ),
        (System::Redis, Kind::Channel) => {
            let client = redis::Client::open(format!("redis://{}/", target.addr))?;
            Publisher::Redis(client.get_multiplexed_async_connection().await?)
        }
        (System::Relay, Kind::Channel) => Publisher::Relay(crate::relay::RelayPublisher::connect(&target.addr).await?),
        (s, k) => return Err(format!("{} has no {} variant", s.name(), k.name()).into()),
    })
}

/// The payload as an rtm2 binary message.
pub fn rtm2_payload(b: Bytes) -> Payload {
    Payload { data: b, message_type: MessageType::BINARY }
}
