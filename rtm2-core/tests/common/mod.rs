//! Shared helpers of the integration tests: real servers (in-process engine or TCP on
//! loopback), clients, and bounded waits for events.
#![allow(dead_code)]

use std::time::Duration;

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

pub async fn next_message(sub: &mut Subscription) -> std::sync::Arc<MessageEvent> {
    match tokio::time::timeout(WAIT, sub.recv()).await {
        Ok(Some(Ok(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Receives messages until one matching `pred` (skipping others), bounded by WAIT.
pub async fn expect_message<F: FnMut(&MessageEvent) -> bool>(rx: &mut EventReceiver, mut pred: F) -> std::sync::Arc<MessageEvent> {
    match expect_event(rx, "a message", |e| matches!(e, Event::Message(m) if pred(m))).await {
        Event::Message(m) => m,
        _ => unreachable!(),
    }
}

pub fn dev_server() -> rtm2_server::Server {
    rtm2_server::Server::start(rtm2_server::ServerConfig::default())
}
