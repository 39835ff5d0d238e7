//! Bounded resources: a slow consumer is cut off without slowing anyone else; the connection
//! cap refuses clearly.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use rtm2_core::*;
use rtm2_proto::frame;
use rtm2_proto::pb::{self, client_frame, server_frame};
use rtm2_server::{Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn raw_login(server: &Server, user: &str, subscribe: &str) -> tokio::io::DuplexStream {
    let mut io = server.connect_in_memory();
    send_login(&mut io, user, subscribe).await;
    io
}

/// Writes Hello, Login (dev mode) and Subscribe (request 2) as a client of docs/PROTOCOL.md.
async fn send_login<W: tokio::io::AsyncWrite + Unpin>(io: &mut W, user: &str, subscribe: &str) {
    let mut out = BytesMut::new();
    let frames = [
        (0, client_frame::Body::Hello(pb::Hello { protocol_version: 1, ..Default::default() })),
        (1, client_frame::Body::Login(pb::Login { app_id: APP_ID.into(), user_id: user.into(), ..Default::default() })),
        (
            2,
            client_frame::Body::Subscribe(pb::Subscribe {
                channel: subscribe.into(),
                with_message: true,
                ..Default::default()
            }),
        ),
    ];
    for (id, body) in frames {
        frame::write_client_frame(&mut out, &pb::ClientFrame { request_id: id, body: Some(body) });
    }
    io.write_all(&out).await.unwrap();
}

/// What a raw client read until the server closed.
struct Drained {
    /// The goodbye's reason, if one came.
    goodbye: Option<String>,
    /// Message events received (before the goodbye).
    messages: usize,
    /// The connection ended with an error (e.g. reset by the peer), not a clean close.
    error: Option<std::io::Error>,
}

/// Reads everything until the server closes.
async fn drain_all<R: tokio::io::AsyncRead + Unpin>(io: &mut R) -> Drained {
    let dec = frame::FrameDecoder::new(1 << 24);
    let mut buf = BytesMut::new();
    let mut d = Drained { goodbye: None, messages: 0, error: None };
    loop {
        while let Some(body) = dec.decode(&mut buf).unwrap() {
            match frame::decode_server(body).unwrap().body {
                Some(server_frame::Body::Goodbye(g)) => d.goodbye = Some(g.reason),
                Some(server_frame::Body::Message(_)) => d.messages += 1,
                _ => {}
            }
        }
        match tokio::time::timeout(WAIT, io.read_buf(&mut buf)).await.expect("the server never closed") {
            Ok(0) => return d,
            Err(e) => {
                d.error = Some(e);
                return d;
            }
            Ok(_) => {}
        }
    }
}

/// Reads everything until the server closes; returns the goodbye reason if one came.
async fn drain(io: &mut tokio::io::DuplexStream) -> Option<String> {
    drain_all(io).await.goodbye
}

/// Reads until the response to request `id` (a raw client's subscribe).
async fn read_until_response<R: tokio::io::AsyncRead + Unpin>(io: &mut R, id: u64) {
    let dec = frame::FrameDecoder::new(1 << 24);
    let mut buf = BytesMut::new();
    loop {
        while let Some(body) = dec.decode(&mut buf).unwrap() {
            if let Some(server_frame::Body::Response(r)) = frame::decode_server(body).unwrap().body
                && r.request_id == id
            {
                assert_eq!(r.code, 0, "{}", r.reason);
                assert!(buf.is_empty());
                return;
            }
        }
        let n = tokio::time::timeout(WAIT, io.read_buf(&mut buf)).await.expect("no response").unwrap();
        assert!(n > 0, "closed before the response");
    }
}

/// "slow consumer: F frames (B bytes) ..." → (F, B).
fn queued_in(reason: &str) -> (usize, usize) {
    let rest = reason.strip_prefix("slow consumer: ").unwrap_or_else(|| panic!("{reason}"));
    let mut words = rest.split([' ', '(']).filter(|w| !w.is_empty());
    let frames = words.next().unwrap().parse().unwrap();
    assert_eq!(words.next(), Some("frames"), "{reason}");
    let bytes = words.next().unwrap().parse().unwrap();
    (frames, bytes)
}

/// Publishes `payload` to `channel` 20 at a time until the server has cut a slow consumer off
/// (at most `max` messages); returns how many were published.
async fn publish_until_cut(server: &Server, publisher: &Client, channel: &str, payload: &str, max: usize) -> usize {
    let mut sent = 0;
    while server.slow_consumer_cuts() == 0 {
        assert!(sent < max, "no slow consumer was cut off after {sent} messages");
        let ops: Vec<_> = (sent..sent + 20)
            .map(|i| publisher.publish(channel, format!("{i}:{payload}"), PublishOptions::default()))
            .collect();
        for op in ops {
            op.await.unwrap();
        }
        sent += 20;
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_cut_off_and_nobody_else_waits() {
    // Every connection may queue 512 frames: the subscriber that reads keeps up easily (the
    // publisher keeps at most 100 messages in flight); the one that never reads cannot.
    let config = ServerConfig { outbound_queue_frames: 512, resume_window: Duration::from_millis(300), ..dev_config() };
    let server = Server::start(config);
    let mut stuck = raw_login(&server, "stuck", "flood").await;
    let good = client_on(&server, "good");
    let publisher = client_on(&server, "publisher");
    good.login("").await.unwrap();
    publisher.login("").await.unwrap();
    let mut sub = good.subscribe("flood", SubscribeOptions::default()).await.unwrap();

    // 4,000 × 1 KiB: far more than the stuck peer's pipe (1 MiB) plus 512 queued frames.
    const N: usize = 4000;
    let payload = "y".repeat(1000);
    let started = std::time::Instant::now();
    let receive = async {
        for i in 0..N {
            let m = next_message(&mut sub).await;
            assert!(m.text().unwrap().starts_with(&format!("{i}:")));
        }
    };
    let publish = async {
        for chunk in 0..N / 100 {
            let ops: Vec<_> = (chunk * 100..(chunk + 1) * 100)
                .map(|i| publisher.publish("flood", format!("{i}:{payload}"), PublishOptions::default()))
                .collect();
            for op in ops {
                op.await.unwrap();
            }
        }
    };
    let mut good_events = good.events();
    tokio::join!(receive, publish);
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    // The reader was never cut off.
    assert!(!good_events.try_recv_batch(usize::MAX).iter().any(|e| is_link(e, LinkState::DISCONNECTED)));
    // The stuck peer was disconnected with an explicit reason (readable once it reads).
    let reason = drain(&mut stuck).await;
    assert!(reason.as_deref().is_some_and(|r| r.contains("slow consumer")), "{reason:?}");
    assert_eq!(server.slow_consumer_cuts(), 1);
    // Its session is kept for a resume, then ended when none comes (it does not stay online).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.session_count() > 2 {
        assert!(std::time::Instant::now() < deadline, "the cut-off session was never ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_connection_cap_refuses_with_a_reason() {
    let config = ServerConfig { max_connections: 2, ..dev_config() };
    let server = Server::start(config);
    let a = client_on(&server, "a");
    let b = client_on(&server, "b");
    a.login("").await.unwrap();
    b.login("").await.unwrap();
    let c = client_on(&server, "c");
    let e = c.login("").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::LOGIN_NO_SERVER_RESOURCES);
    assert!(e.reason.contains("limit of 2 connections"), "{}", e.reason);
    // A freed slot can be used again.
    b.logout().await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while server.connection_count() > 1 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.login("").await.unwrap();
}

#[tokio::test]
async fn rate_limits_answer_10021_and_recover() {
    let server = Server::start(ServerConfig::default()); // reference limits
    let a = client_on(&server, "a");
    a.login("").await.unwrap();
    let ops: Vec<_> = (0..61).map(|i| a.publish("r", format!("{i}"), PublishOptions::default())).collect();
    let mut results = Vec::new();
    for op in ops {
        results.push(op.await);
    }
    assert!(results[..60].iter().all(|r| r.is_ok()));
    let e = results[60].clone().unwrap_err();
    assert_eq!(e.code, ErrorCode::OPERATION_RATE_EXCEED_LIMITATION);
    assert!(e.reason.contains("60 publishes per second"), "{}", e.reason);
    // The bucket refills: after a second on the clock publishing works again.
    let refill = std::time::Instant::now() + Duration::from_millis(1100);
    while std::time::Instant::now() < refill {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.publish("r", "again", PublishOptions::default()).await.unwrap();
}

/// Reference §5/§6: a third subscribe of the same channel within 5 s fails with 11020
/// CHANNEL_SUBSCRIBE_TOO_FREQUENT; other channels are not affected.
#[tokio::test]
async fn a_third_subscribe_of_one_channel_within_5_s_is_11020() {
    let server = Server::start(ServerConfig::default()); // reference limits
    let a = client_on(&server, "a");
    a.login("").await.unwrap();
    for _ in 0..2 {
        a.subscribe("busy", SubscribeOptions::default()).await.unwrap();
        a.unsubscribe("busy").await.unwrap();
    }
    let e = a.subscribe("busy", SubscribeOptions::default()).await.err().expect("a third subscribe within 5 s");
    assert_eq!(e.code, ErrorCode::CHANNEL_SUBSCRIBE_TOO_FREQUENT);
    assert!(e.reason.contains("2 times within 5 s"), "{}", e.reason);
    assert!(a.subscribed_channels().is_empty());
    // Per channel, per client.
    a.subscribe("calm", SubscribeOptions::default()).await.unwrap();
    let b = client_on(&server, "b");
    b.login("").await.unwrap();
    b.subscribe("busy", SubscribeOptions::default()).await.unwrap();
    // Off with the rate limits (`rtm2 serve --no-rate-limits`).
    let off = Server::start(dev_config());
    let c = client_on(&off, "c");
    c.login("").await.unwrap();
    for _ in 0..3 {
        c.subscribe("busy", SubscribeOptions::default()).await.unwrap();
        c.unsubscribe("busy").await.unwrap();
    }
}

/// The embedded server (the SDK's default endpoint) turns throughput limits off but keeps the
/// reference's 11020, so that an application sees the same answers as against `rtm2 serve`.
#[tokio::test]
async fn the_embedded_server_answers_11020_too() {
    let user = format!("embedded-{}", std::process::id());
    let a = Client::new(ClientConfig::new(APP_ID, &user)).unwrap();
    a.login("").await.unwrap();
    let channel = format!("busy-{}", std::process::id());
    for _ in 0..2 {
        a.subscribe(&channel, SubscribeOptions::default()).await.unwrap();
        a.unsubscribe(&channel).await.unwrap();
    }
    let e = a.subscribe(&channel, SubscribeOptions::default()).await.err().expect("a third subscribe within 5 s");
    assert_eq!(e.code, ErrorCode::CHANNEL_SUBSCRIBE_TOO_FREQUENT);
    a.logout().await.unwrap();
}

/// The subscribes a reconnect's restore sends (to a new session, the old one could not be
/// resumed) never trip 11020, even right after the application used up the window.
#[tokio::test]
async fn a_restore_after_two_subscribes_is_not_too_frequent() {
    // A session is not kept after its connection drops: every reconnect restores.
    let config = ServerConfig { resume_window: Duration::ZERO, ..ServerConfig::default() };
    let server = Server::start(config);
    let mut cfg = ClientConfig::new(APP_ID, "a").endpoint(rtm2_core::Endpoint::Server(server.clone()));
    fast(&mut cfg);
    let a = Client::new(cfg).unwrap();
    a.login("").await.unwrap();
    a.subscribe("room", SubscribeOptions::default()).await.unwrap();
    a.unsubscribe("room").await.unwrap();
    let mut sub = a.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let mut events = a.events();
    server.drop_all_connections();
    let ev = expect_event(&mut events, "the reconnect", |e| is_link(e, LinkState::CONNECTED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert!(!l.is_resumed, "the session was resumed: nothing was restored");
    assert!(l.unrestored_channels.is_empty(), "not restored: {:?}", l.unrestored_channels);
    let b = client_on(&server, "b");
    b.login("").await.unwrap();
    b.publish("room", "after the restore", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut sub).await.text(), Some("after the restore"));
}

/// A stalled subscriber is cut off at about the byte bound of its outbound queue, not after
/// its frame bound (with 30 KB messages, 65,536 frames would be 2 GB); the frames it had queued
/// are dropped so that the goodbye follows at once, and the goodbye says how much was queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_cut_at_the_byte_bound() {
    const BOUND: usize = 1024 * 1024;
    let config = ServerConfig { outbound_queue_bytes: BOUND, ..dev_config() };
    assert_eq!(config.outbound_queue_frames, 64 * 1024);
    let server = Server::start(config);
    let mut stuck = raw_login(&server, "stuck", "flood").await;
    read_until_response(&mut stuck, 2).await;
    let publisher = client_on(&server, "publisher");
    publisher.login("").await.unwrap();
    let payload = "z".repeat(30_000);
    // The in-process pipe holds 1 MiB, the queue 1 MiB, the writer one batch (256 KiB): about
    // 80 messages of 30 KB. Without a byte bound none of the 1,000 would cut it off.
    let sent = publish_until_cut(&server, &publisher, "flood", &payload, 1000).await;
    assert!(sent <= 120, "cut off only after {sent} messages of 30 KB");
    let d = drain_all(&mut stuck).await;
    let reason = d.goodbye.expect("no goodbye");
    let (frames, bytes) = queued_in(&reason);
    assert!(bytes <= BOUND && bytes + 2 * 30_100 > BOUND, "{reason}");
    assert!(frames >= 30, "{reason}");
    assert!(reason.contains(&format!("at most 65536 frames or {BOUND} bytes")), "{reason}");
    // What was queued was not sent: the goodbye came right after what was in flight.
    assert!(d.messages + frames <= sent, "{} messages read, {frames} were queued, {sent} sent", d.messages);
    assert!(d.error.is_none(), "{:?}", d.error);
}

/// Over TCP, a client that stopped reading, and kept writing, still gets the goodbye once it
/// reads again: the server drops what was queued, writes the goodbye, shuts down its side and
/// reads what the client sends until it closes, instead of closing with unread input (a reset
/// that destroys the goodbye in flight: "connection reset by peer").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tcp_subscriber_reads_the_goodbye_not_a_reset() {
    let config = ServerConfig { outbound_queue_bytes: 1024 * 1024, ..dev_config() };
    let server = Server::start(config);
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let mut stuck = tokio::net::TcpStream::connect(addr).await.unwrap();
    send_login(&mut stuck, "stuck", "flood").await;
    read_until_response(&mut stuck, 2).await;
    let publisher = client_on(&server, "publisher");
    publisher.login("").await.unwrap();
    let payload = "z".repeat(30_000);
    // Loopback socket buffers can hold several MB on top of the 1 MiB queue.
    publish_until_cut(&server, &publisher, "flood", &payload, 4000).await;
    // The stalled client carries on writing (pings) after the server stopped reading it.
    let mut pings = BytesMut::new();
    for _ in 0..200 {
        let ping = client_frame::Body::Ping(pb::Ping { client_time_ms: 1 });
        frame::write_client_frame(&mut pings, &pb::ClientFrame { request_id: 0, body: Some(ping) });
    }
    stuck.write_all(&pings).await.unwrap();
    let d = drain_all(&mut stuck).await;
    assert!(d.error.is_none(), "the connection ended with {:?}", d.error);
    let reason = d.goodbye.expect("no goodbye");
    assert!(reason.starts_with("slow consumer: "), "{reason}");
}

/// An SDK client whose socket is stalled is cut off; here its connection dies before it could
/// read the goodbye, so the server remembers why and reports it at the reconnect: the
/// RECONNECTED link-state event names the slow consumer. The queued frames stayed in the
/// replay window: it resumes without loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sdk_client_hears_it_was_a_slow_consumer_when_it_reconnects() {
    let config = ServerConfig { outbound_queue_bytes: 1024 * 1024, ..dev_config() };
    let server = Server::start(config);
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let proxy = Proxy::start(addr).await;
    let mut cfg = ClientConfig::new(APP_ID, "slow").endpoint(Endpoint::Tcp(proxy.addr.to_string()));
    fast(&mut cfg);
    let slow = Client::new(cfg).unwrap();
    slow.login("").await.unwrap();
    let mut sub = slow.subscribe("flood", SubscribeOptions::default()).await.unwrap();
    let mut events = slow.events();
    let publisher = client_on(&server, "publisher");
    publisher.login("").await.unwrap();

    proxy.stall(true);
    let payload = "z".repeat(30_000);
    let sent = publish_until_cut(&server, &publisher, "flood", &payload, 4000).await;
    // The connection dies before the client could read anything more (the goodbye included).
    proxy.cut_all();
    proxy.stall(false);
    let ev = expect_event(&mut events, "the drop", |e| is_link(e, LinkState::DISCONNECTED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert!(!l.reason_text.contains("slow consumer"), "the goodbye was read: {:?}", l.reason_text);
    let ev = expect_event(&mut events, "the reconnect", |e| is_link(e, LinkState::CONNECTED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert_eq!(l.operation, LinkOperation::RECONNECTED);
    assert!(l.reason_text.contains("slow consumer: "), "{:?}", l.reason_text);
    assert!(l.is_resumed, "{:?}", l.reason_text);
    // Nothing lost, nothing twice, in order.
    for i in 0..sent {
        let m = next_message(&mut sub).await;
        assert!(m.text().unwrap().starts_with(&format!("{i}:")), "expected message {i}");
    }
    // Reported once: a later reconnect does not repeat it.
    server.drop_all_connections();
    let ev = expect_event(&mut events, "the second reconnect", |e| is_link(e, LinkState::CONNECTED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert!(!l.reason_text.contains("slow consumer"), "{:?}", l.reason_text);
}
