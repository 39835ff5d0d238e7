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
    io
}

/// Reads everything until the server closes; returns the goodbye reason if one came.
async fn drain(io: &mut tokio::io::DuplexStream) -> Option<String> {
    let dec = frame::FrameDecoder::new(1 << 24);
    let mut buf = BytesMut::new();
    let mut goodbye = None;
    loop {
        while let Some(body) = dec.decode(&mut buf).unwrap() {
            if let Some(server_frame::Body::Goodbye(g)) = frame::decode_server(body).unwrap().body {
                goodbye = Some(g.reason);
            }
        }
        match tokio::time::timeout(WAIT, io.read_buf(&mut buf)).await.expect("the server never closed") {
            Ok(0) | Err(_) => return goodbye,
            Ok(_) => {}
        }
    }
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
