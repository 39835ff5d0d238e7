//! Shared helpers of the integration tests: real servers (in-process engine or TCP on
//! loopback), clients, and bounded waits for events.
#![allow(dead_code)]

use std::time::Duration;

pub mod http;

use rtm2_core::*;
use rtm2_proto::token;

pub const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";
pub const CERT: &str = "5CFd2fd1755d40ecb72977518be15d3b";
pub const WAIT: Duration = Duration::from_secs(10);

pub fn now_s() -> u32 {
    (rtm2_proto::now_ms() / 1000) as u32
}

pub fn rtm_token(user: &str, expire: u32) -> String {
    token::build_rtm_token(APP_ID, CERT, user, expire).unwrap()
}

pub fn stream_token(channel: &str, user: &str, expire: u32) -> String {
    token::build_stream_token(APP_ID, CERT, channel, user, expire).unwrap()
}

/// A client of a dev-mode in-process server.
pub fn client_on(server: &rtm2_server::Server, user: &str) -> Client {
    let cfg = ClientConfig::new(APP_ID, user).endpoint(Endpoint::Server(server.clone()));
    Client::new(cfg).unwrap()
}

pub fn fast(cfg: &mut ClientConfig) {
    cfg.reconnect_initial_backoff = Duration::from_millis(20);
    cfg.reconnect_max_backoff = Duration::from_millis(200);
}

/// Waits for the first event matching `pred`, failing the test after `WAIT`.
pub async fn expect_event<F: FnMut(&Event) -> bool>(rx: &mut EventReceiver, what: &str, mut pred: F) -> Event {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if pred(&ev) => return ev,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("event stream ended while waiting for {what}"),
            Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

pub fn is_link(ev: &Event, state: LinkState) -> bool {
    matches!(ev, Event::LinkState(l) if l.current == state && l.service_type == ServiceType::MESSAGE)
}

pub async fn next_message(sub: &mut Subscription) -> MessageEvent {
    match tokio::time::timeout(WAIT, sub.recv()).await {
        Ok(Some(Ok(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Receives messages until one matching `pred` (skipping others), bounded by WAIT.
pub async fn expect_message<F: FnMut(&MessageEvent) -> bool>(rx: &mut EventReceiver, mut pred: F) -> MessageEvent {
    match expect_event(rx, "a message", |e| matches!(e, Event::Message(m) if pred(m))).await {
        Event::Message(m) => m,
        _ => unreachable!(),
    }
}

/// A development-mode server without rate limits (tests that check the limits set them).
pub fn dev_config() -> rtm2_server::ServerConfig {
    rtm2_server::ServerConfig { rate_limits: rtm2_server::RateLimits::unlimited(), ..Default::default() }
}

pub fn dev_server() -> rtm2_server::Server {
    rtm2_server::Server::start(dev_config())
}

/// A fault-injecting TCP proxy in front of a real server: it can stop forwarding what the
/// server sends (the client then hears nothing), or cut every connection.
pub struct Proxy {
    pub addr: std::net::SocketAddr,
    refuse: std::sync::Arc<std::sync::atomic::AtomicBool>,
    mute: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stall: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    delay_up_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
    cut: std::sync::Arc<tokio::sync::Notify>,
}

impl Proxy {
    pub async fn start(target: std::net::SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mute = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refuse = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cut = std::sync::Arc::new(tokio::sync::Notify::new());
        let delay_up_ms = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stall = std::sync::Arc::new(tokio::sync::watch::channel(false).0);
        let (m, c, r, d) = (mute.clone(), cut.clone(), refuse.clone(), delay_up_ms.clone());
        let st = stall.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if r.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = tokio::net::TcpStream::connect(target).await else { continue };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let (m, c, d) = (m.clone(), c.clone(), d.clone());
                let mut stalled = st.subscribe();
                tokio::spawn(async move {
                    let up = async {
                        let mut b = vec![0u8; 64 * 1024];
                        while let Ok(n) = cr.read(&mut b).await {
                            let delay = d.load(Ordering::SeqCst);
                            if delay > 0 && n > 0 {
                                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                            }
                            if n == 0 || sw.write_all(&b[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    let down = async {
                        let mut b = vec![0u8; 64 * 1024];
                        loop {
                            // While stalled nothing is read: the server's socket fills up.
                            if stalled.wait_for(|s| !*s).await.is_err() {
                                break;
                            }
                            let Ok(n) = sr.read(&mut b).await else { break };
                            if n == 0 {
                                break;
                            }
                            if !m.load(Ordering::SeqCst) && cw.write_all(&b[..n]).await.is_err() {
                                break;
                            }
                        }
                    };
                    tokio::select! { _ = up => {}, _ = down => {}, _ = c.notified() => {} }
                });
            }
        });
        Proxy { addr, refuse, mute, stall, delay_up_ms, cut }
    }

    /// While on, new connections are closed at once (the server seems unreachable).
    pub fn refuse(&self, on: bool) {
        self.refuse.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Stops (or resumes) forwarding server-to-client bytes.
    pub fn mute(&self, on: bool) {
        self.mute.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Stops (or resumes) reading what the server sends: unlike `mute`, nothing is consumed,
    /// so the server's socket and then its outbound queue fill up (a stalled client).
    pub fn stall(&self, on: bool) {
        self.stall.send_replace(on);
    }

    /// Holds client-to-server bytes back for `ms` before forwarding them (0 = none).
    pub fn delay_up(&self, ms: u64) {
        self.delay_up_ms.store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// Closes every proxied connection.
    pub fn cut_all(&self) {
        self.cut.notify_waiters();
    }
}

pub mod cluster;
