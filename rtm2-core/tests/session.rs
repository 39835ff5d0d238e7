//! Login, tokens, takeover, expiry, reconnect and hostile peers.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::*;
use rtm2_core::*;
use rtm2_proto::frame;
use rtm2_proto::pb::{self, client_frame, server_frame};
use rtm2_server::{Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn cert_server(notice: Duration) -> (Server, Endpoint) {
    let mut cfg =
        ServerConfig { rate_limits: rtm2_server::RateLimits::unlimited(), ..ServerConfig::with_app(APP_ID, CERT) };
    cfg.token_will_expire_notice = notice;
    let server = Server::start(cfg);
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    (server, Endpoint::Tcp(addr.to_string()))
}

fn client(ep: &Endpoint, user: &str) -> Client {
    let mut cfg = ClientConfig::new(APP_ID, user).endpoint(ep.clone());
    fast(&mut cfg);
    Client::new(cfg).unwrap()
}

/// A second app's certificate (signs tokens of `other_app` in the tests below).
const OTHER_CERT: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn tokens_are_verified() {
    let (_server, ep) = cert_server(Duration::from_secs(30)).await;
    let a = client(&ep, "alice");
    let mut events = a.events();
    let code = |r: Result<Ack>| r.unwrap_err().code;

    assert_eq!(code(a.login("").await), ErrorCode::INVALID_TOKEN);
    expect_event(&mut events, "FAILED after a bad token", |e| is_link(e, LinkState::FAILED)).await;
    assert_eq!(code(a.login(&rtm_token("mallory", 600)).await), ErrorCode::INVALID_TOKEN);
    let wrong_cert =
        rtm2_proto::token::build_rtm_token(APP_ID, "00000000000000000000000000000000", "alice", 600).unwrap();
    assert_eq!(code(a.login(&wrong_cert).await), ErrorCode::INVALID_TOKEN);
    let expired = rtm2_proto::token::build_rtm_token_with(APP_ID, CERT, "alice", 10, now_s() - 100, 7).unwrap();
    assert_eq!(code(a.login(&expired).await), ErrorCode::TOKEN_EXPIRED);
    let other_app = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let foreign = rtm2_proto::token::build_rtm_token(other_app, CERT, "alice", 600).unwrap();
    assert_eq!(code(a.login(&foreign).await), ErrorCode::INCONSISTENT_APPID);
    // Another app's token signed with that app's own certificate: the app id is checked
    // before the signature, so this is 10016 too (not 10005).
    let foreign_signed = rtm2_proto::token::build_rtm_token(other_app, OTHER_CERT, "alice", 600).unwrap();
    assert_eq!(code(a.login(&foreign_signed).await), ErrorCode::INCONSISTENT_APPID);
    assert_eq!(code(a.login(&"007x".repeat(2000)).await), ErrorCode::INVALID_TOKEN);
    assert_eq!(code(a.login("006garbage").await), ErrorCode::INVALID_TOKEN);

    let stranger = Client::new(ClientConfig::new(other_app, "alice").endpoint(ep.clone())).unwrap();
    assert_eq!(code(stranger.login(&foreign).await), ErrorCode::INVALID_APP_ID);

    a.login(&rtm_token("alice", 600)).await.unwrap();
    assert_eq!(a.link_state(), LinkState::CONNECTED);

    // Stream channels need their own token.
    let sc = a.stream_channel("secure").unwrap();
    let e = sc.join(JoinOptions::default()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::INVALID_TOKEN);
    let e =
        sc.join(JoinOptions { token: stream_token("other", "alice", 600), ..Default::default() }).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::INVALID_TOKEN);
    let foreign_stream = rtm2_proto::token::build_stream_token(other_app, OTHER_CERT, "secure", "alice", 600).unwrap();
    let e = sc.join(JoinOptions { token: foreign_stream, ..Default::default() }).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::INCONSISTENT_APPID);
    sc.join(JoinOptions { token: stream_token("secure", "alice", 600), ..Default::default() }).await.unwrap();
}

#[tokio::test]
async fn same_user_id_takes_over() {
    let server = dev_server();
    let first = client_on(&server, "alice");
    let second = client_on(&server, "alice");
    let observer = client_on(&server, "bob");
    first.login("").await.unwrap();
    observer.login("").await.unwrap();
    let mut first_events = first.events();
    second.login("").await.unwrap();
    let ev = expect_event(&mut first_events, "SAME_UID_LOGIN", |e| is_link(e, LinkState::FAILED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert_eq!(l.reason, LinkStateChangeReason::SAME_UID_LOGIN);
    assert_eq!(first.link_state(), LinkState::FAILED);
    assert_eq!(first.publish("x", "y", PublishOptions::default()).await.unwrap_err().code, ErrorCode::NOT_LOGIN);

    // Peer messages now reach the new session.
    let mut second_events = second.events();
    observer.publish("alice", "to the new alice", PublishOptions::user()).await.unwrap();
    let m = expect_message(&mut second_events, |_| true).await;
    assert_eq!(m.text(), Some("to the new alice"));
    assert_eq!(server.session_count(), 2);
}

#[tokio::test]
async fn login_token_expiry_and_renewal() {
    let (_server, ep) = cert_server(Duration::from_secs(2)).await;

    // Renewed in time: the session survives the first token's expiry.
    let a = client(&ep, "alice");
    let mut events = a.events();
    let short = rtm2_proto::token::build_rtm_token_with(APP_ID, CERT, "alice", 3, now_s(), 1).unwrap();
    let old_expiry = now_s() as u64 + 3;
    a.login(&short).await.unwrap();
    expect_event(&mut events, "will-expire (login)", |e| *e == Event::TokenPrivilegeWillExpire(None)).await;
    a.renew_token(&rtm_token("alice", 600)).await.unwrap();
    assert_eq!(a.renew_token("garbage").await.unwrap_err().code, ErrorCode::INVALID_TOKEN);
    // Wait on the wall clock until the first token is past its expiry, then use the session.
    while (rtm2_proto::now_ms() / 1000) < old_expiry + 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut sub = a.subscribe("still-here", SubscribeOptions::default()).await.unwrap();
    a.publish("still-here", "alive", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut sub).await.text(), Some("alive"));
    assert_eq!(a.link_state(), LinkState::CONNECTED);

    // Not renewed: the session ends with TOKEN_EXPIRED and the client does not reconnect.
    let b = client(&ep, "bob");
    let mut events = b.events();
    let short = rtm2_proto::token::build_rtm_token_with(APP_ID, CERT, "bob", 2, now_s(), 1).unwrap();
    b.login(&short).await.unwrap();
    expect_event(&mut events, "will-expire (bob)", |e| *e == Event::TokenPrivilegeWillExpire(None)).await;
    let ev = expect_event(&mut events, "FAILED on expiry", |e| is_link(e, LinkState::FAILED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert_eq!(l.reason, LinkStateChangeReason::TOKEN_EXPIRED);
    assert_eq!(b.publish("c", "x", PublishOptions::default()).await.unwrap_err().code, ErrorCode::NOT_LOGIN);
}

#[tokio::test]
async fn stream_token_expiry_and_renewal() {
    let (_server, ep) = cert_server(Duration::from_secs(2)).await;
    let a = client(&ep, "alice");
    a.login(&rtm_token("alice", 600)).await.unwrap();
    let mut events = a.events();
    let sc = a.stream_channel("room").unwrap();
    let short = rtm2_proto::token::build_stream_token_with(APP_ID, CERT, "room", "alice", 2, now_s(), 1).unwrap();
    sc.join(JoinOptions { token: short, ..Default::default() }).await.unwrap();
    expect_event(&mut events, "will-expire (stream)", |e| *e == Event::TokenPrivilegeWillExpire(Some("room".into())))
        .await;
    let ev = expect_event(
        &mut events,
        "stream FAILED",
        |e| matches!(e, Event::LinkState(l) if l.service_type == ServiceType::STREAM && l.current == LinkState::FAILED),
    )
    .await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert_eq!((l.channel.as_str(), l.reason), ("room", LinkStateChangeReason::TOKEN_EXPIRED));
    assert!(!sc.is_joined());
    assert_eq!(a.link_state(), LinkState::CONNECTED, "the login session is not affected");

    // Renewal keeps a second channel joined past its first token.
    let sc2 = a.stream_channel("room2").unwrap();
    let short = rtm2_proto::token::build_stream_token_with(APP_ID, CERT, "room2", "alice", 3, now_s(), 1).unwrap();
    let old_expiry = now_s() as u64 + 3;
    sc2.join(JoinOptions { token: short, ..Default::default() }).await.unwrap();
    sc2.renew_token(&stream_token("room2", "alice", 600)).await.unwrap();
    while (rtm2_proto::now_ms() / 1000) < old_expiry + 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sc2.join_topic("t", JoinTopicOptions::default()).await.unwrap();
    assert!(sc2.is_joined());
}

#[tokio::test]
async fn reconnects_and_restores_after_the_server_drops_connections() {
    let server = dev_server();
    let mk = |u: &str| {
        let mut cfg = ClientConfig::new(APP_ID, u).endpoint(Endpoint::Server(server.clone()));
        fast(&mut cfg);
        Client::new(cfg).unwrap()
    };
    let alice = mk("alice");
    let bob = mk("bob");
    alice.login("").await.unwrap();
    bob.login("").await.unwrap();
    let mut room = alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let a_sc = alice.stream_channel("stage").unwrap();
    let b_sc = bob.stream_channel("stage").unwrap();
    a_sc.join(JoinOptions::default()).await.unwrap();
    b_sc.join(JoinOptions::default()).await.unwrap();
    b_sc.join_topic("news", JoinTopicOptions::default()).await.unwrap();
    a_sc.subscribe_topic("news", &["bob"]).await.unwrap();

    let mut a_events = alice.events();
    let mut b_events = bob.events();
    server.drop_all_connections();
    expect_event(&mut a_events, "DISCONNECTED", |e| is_link(e, LinkState::DISCONNECTED)).await;
    let ev = expect_event(&mut a_events, "CONNECTED again", |e| is_link(e, LinkState::CONNECTED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert_eq!(l.reason, LinkStateChangeReason::RECONNECT_SUCCESS);
    assert!(l.unrestored_channels.is_empty(), "{:?}", l.unrestored_channels);
    expect_event(&mut b_events, "bob CONNECTED again", |e| is_link(e, LinkState::CONNECTED)).await;

    bob.publish("room", "after reconnect", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut room).await.text(), Some("after reconnect"));
    b_sc.publish_topic("news", "topic after reconnect", TopicMessageOptions::default()).await.unwrap();
    let m = expect_message(&mut a_events, |m| m.channel_type == ChannelType::STREAM).await;
    assert_eq!(m.text(), Some("topic after reconnect"));
}

#[tokio::test]
async fn reconnects_after_a_server_restart() {
    let server = dev_server();
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let ep = Endpoint::Tcp(addr.to_string());
    let alice = client(&ep, "alice");
    let bob = client(&ep, "bob");
    alice.login("").await.unwrap();
    bob.login("").await.unwrap();
    let mut room = alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let mut a_events = alice.events();
    let mut b_events = bob.events();

    server.shutdown();
    expect_event(&mut a_events, "DISCONNECTED", |e| is_link(e, LinkState::DISCONNECTED)).await;
    // A new server (empty state) on the same port.
    let server2 = dev_server();
    let mut bound = None;
    for _ in 0..100 {
        match server2.listen_tcp(addr).await {
            Ok(a) => {
                bound = Some(a);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(bound, Some(addr));
    expect_event(&mut a_events, "alice back", |e| is_link(e, LinkState::CONNECTED)).await;
    expect_event(&mut b_events, "bob back", |e| is_link(e, LinkState::CONNECTED)).await;
    bob.publish("room", "new server", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut room).await.text(), Some("new server"));
    assert_eq!(server2.session_count(), 2);
}

/// A raw protocol peer for hostile-input tests.
struct Raw {
    io: tokio::io::DuplexStream,
    buf: BytesMut,
}

impl Raw {
    fn new(server: &Server) -> Raw {
        Raw { io: server.connect_in_memory(), buf: BytesMut::new() }
    }
    async fn send(&mut self, id: u64, body: client_frame::Body) {
        let b = frame::encode_client(&pb::ClientFrame { request_id: id, body: Some(body) });
        self.io.write_all(&b).await.unwrap();
    }
    /// Next frame, or None when the server closed the connection.
    async fn next(&mut self) -> Option<pb::ServerFrame> {
        let dec = frame::FrameDecoder::new(1 << 24);
        loop {
            if let Some(body) = dec.decode(&mut self.buf).unwrap() {
                return Some(frame::decode_server(body).unwrap());
            }
            let n =
                tokio::time::timeout(WAIT, self.io.read_buf(&mut self.buf)).await.expect("server silent").unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }
    async fn goodbye(&mut self) -> pb::Goodbye {
        while let Some(f) = self.next().await {
            if let Some(server_frame::Body::Goodbye(g)) = f.body {
                return g;
            }
        }
        panic!("closed without a goodbye");
    }
    async fn login(&mut self, user: &str) {
        self.send(0, client_frame::Body::Hello(pb::Hello { protocol_version: 1, ..Default::default() })).await;
        self.send(
            1,
            client_frame::Body::Login(pb::Login {
                app_id: APP_ID.into(),
                user_id: user.into(),
                heartbeat_interval_s: 1,
                ..Default::default()
            }),
        )
        .await;
        loop {
            if let Some(server_frame::Body::Response(r)) = self.next().await.unwrap().body {
                assert_eq!(r.code, 0);
                return;
            }
        }
    }
}

#[tokio::test]
async fn garbage_closes_only_that_session() {
    let server = dev_server();
    let good = client_on(&server, "good");
    good.login("").await.unwrap();
    let mut sub = good.subscribe("c", SubscribeOptions::default()).await.unwrap();

    // Garbage after login.
    let mut raw = Raw::new(&server);
    raw.login("mallory").await;
    raw.io.write_all(&[5, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff]).await.unwrap();
    let g = raw.goodbye().await;
    assert!(g.reason.contains("protocol error"), "{}", g.reason);
    assert!(raw.next().await.is_none());

    // Garbage before hello, an oversize length prefix, and a truncated frame.
    let mut raw = Raw::new(&server);
    raw.io.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    assert!(raw.goodbye().await.reason.contains("protocol error"));
    let mut raw = Raw::new(&server);
    raw.io.write_all(&u32::MAX.to_le_bytes()).await.unwrap();
    assert!(raw.goodbye().await.reason.contains("exceeds the maximum"));
    let mut raw = Raw::new(&server);
    raw.login("trunc").await;
    raw.io.write_all(&[100, 0, 0, 0, 1, 2, 3]).await.unwrap();
    raw.io.shutdown().await.unwrap();
    drop(raw);

    // The good session never noticed.
    good.publish("c", "still fine", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut sub).await.text(), Some("still fine"));
    assert_eq!(good.link_state(), LinkState::CONNECTED);
}

#[tokio::test]
async fn unknown_protocol_version_is_refused_clearly() {
    let server = dev_server();
    let mut raw = Raw::new(&server);
    raw.send(0, client_frame::Body::Hello(pb::Hello { protocol_version: 99, ..Default::default() })).await;
    let g = raw.goodbye().await;
    assert_eq!(g.code, ErrorCode::SERVICE_NOT_SUPPORTED.code());
    assert!(g.reason.contains("99"));
}

#[tokio::test]
async fn silent_connections_are_dropped() {
    let cfg = ServerConfig {
        prelogin_timeout: Duration::from_millis(200),
        keepalive_grace: Duration::from_millis(200),
        resume_window: Duration::from_millis(200),
        ..dev_config()
    };
    let server = Server::start(cfg);
    // Never logs in.
    let mut raw = Raw::new(&server);
    let g = raw.goodbye().await;
    assert_eq!(g.code, ErrorCode::LOGIN_TIMEOUT.code());
    // Logs in asking for a 1 s heartbeat (the server clamps it to the 5 s minimum), then goes
    // silent.
    let mut raw = Raw::new(&server);
    raw.login("silent").await;
    let g = raw.goodbye().await;
    assert_eq!(g.link_reason, LinkStateChangeReason::KEEP_ALIVE_TIMEOUT as u32);
    // The session is kept for the resume window, then ended.
    let deadline = std::time::Instant::now() + WAIT;
    while server.session_count() != 0 {
        assert!(std::time::Instant::now() < deadline, "the detached session was never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn requests_before_login_are_refused() {
    let server = dev_server();
    let mut raw = Raw::new(&server);
    raw.send(0, client_frame::Body::Hello(pb::Hello { protocol_version: 1, ..Default::default() })).await;
    raw.send(5, client_frame::Body::Subscribe(pb::Subscribe { channel: "c".into(), ..Default::default() })).await;
    loop {
        if let Some(server_frame::Body::Response(r)) = raw.next().await.unwrap().body {
            assert_eq!((r.request_id, r.code), (5, ErrorCode::NOT_LOGIN.code()));
            break;
        }
    }
}

#[tokio::test]
async fn per_call_timeouts_use_the_operation_code() {
    // A TCP peer that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut socks = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            socks.push(s);
        }
    });
    let a = client(&Endpoint::Tcp(addr.to_string()), "alice");
    let started = std::time::Instant::now();
    let e = a.with_timeout(Duration::from_millis(300)).login("").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::LOGIN_TIMEOUT);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(a.link_state(), LinkState::FAILED);

    // A connected client whose requests get no reply in time (the proxy swallows replies).
    let server = dev_server();
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let proxy = Proxy::start(addr).await;
    let b = client(&Endpoint::Tcp(proxy.addr.to_string()), "bob");
    b.login("").await.unwrap();
    proxy.mute(true);
    let short = Duration::from_millis(200);
    let e = b.with_timeout(short).publish("c", "x", PublishOptions::default()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CHANNEL_PUBLISH_MESSAGE_TIMEOUT);
    let e = b.with_timeout(short).subscribe("c", SubscribeOptions::default()).await.err().unwrap();
    assert_eq!(e.code, ErrorCode::CHANNEL_SUBSCRIBE_TIMEOUT);
    let sc = b.stream_channel("s").unwrap().with_timeout(short);
    let e = sc.join(JoinOptions::default()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CHANNEL_JOIN_FAILED);
    assert!(e.is_timeout(), "a join that ran out of time says so");
    assert!(!b.publish("", "x", PublishOptions::default()).await.unwrap_err().is_timeout());
    assert_eq!(b.with_timeout(short).renew_token("t").await.unwrap_err().code, ErrorCode::RENEW_TOKEN_TIMEOUT);
    proxy.mute(false);
    // The normal timeout still applies to the plain handle.
    b.publish("c", "x", PublishOptions::default()).await.unwrap();
}

#[tokio::test]
async fn a_silent_server_is_detected_by_the_client_keepalive() {
    let server = dev_server();
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let proxy = Proxy::start(addr).await;
    let mut cfg = ClientConfig::new(APP_ID, "alice").endpoint(Endpoint::Tcp(proxy.addr.to_string()));
    fast(&mut cfg);
    // The shortest heartbeat (5 s; less is clamped to it) and a short pong timeout.
    cfg.set_parameters(r#"{"heartbeat_interval_s": 5, "pong_timeout_ms": 300}"#).unwrap();
    let a = Client::new(cfg).unwrap();
    let mut events = a.events();
    a.login("").await.unwrap();
    let mut sub = a.subscribe("c", SubscribeOptions::default()).await.unwrap();
    proxy.mute(true);
    let ev = expect_event(&mut events, "DISCONNECTED by keepalive", |e| is_link(e, LinkState::DISCONNECTED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert_eq!(l.reason, LinkStateChangeReason::KEEP_ALIVE_TIMEOUT);
    proxy.mute(false);
    expect_event(&mut events, "CONNECTED again", |e| is_link(e, LinkState::CONNECTED)).await;
    a.publish("c", "back", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut sub).await.text(), Some("back"));
}

#[tokio::test]
async fn what_cannot_be_restored_is_reported() {
    // Cert mode; the stream-channel token expires while the server is down, so the rejoin
    // after the restart fails and is reported, while the message channel comes back.
    let (server, ep) = cert_server(Duration::from_secs(1)).await;
    let Endpoint::Tcp(addr) = ep.clone() else { unreachable!() };
    let a = client(&ep, "alice");
    let mut events = a.events();
    a.login(&rtm_token("alice", 600)).await.unwrap();
    let mut room = a.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let sc = a.stream_channel("stage").unwrap();
    let short = rtm2_proto::token::build_stream_token_with(APP_ID, CERT, "stage", "alice", 2, now_s(), 1).unwrap();
    let expiry = now_s() as u64 + 2;
    sc.join(JoinOptions { token: short, ..Default::default() }).await.unwrap();
    server.shutdown();
    expect_event(&mut events, "DISCONNECTED", |e| is_link(e, LinkState::DISCONNECTED)).await;
    while (rtm2_proto::now_ms() / 1000) <= expiry + 1 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server2 = Server::start(ServerConfig {
        rate_limits: rtm2_server::RateLimits::unlimited(),
        ..ServerConfig::with_app(APP_ID, CERT)
    });
    let mut bound = false;
    for _ in 0..100 {
        if server2.listen_tcp(addr.as_str()).await.is_ok() {
            bound = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bound);
    let ev = expect_event(&mut events, "CONNECTED with unrestored", |e| is_link(e, LinkState::CONNECTED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert_eq!(l.unrestored_channels, vec!["stage".to_string()]);
    assert!(!sc.is_joined());
    a.publish("room", "restored", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut room).await.text(), Some("restored"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_failure_of_an_earlier_login_never_fails_a_newer_one() {
    // Regression: a failed login's FAILED transition could land after the next login began,
    // leaving the new (working) session reported as FAILED.
    let (_server, ep) = cert_server(Duration::from_secs(30)).await;
    let a = client(&ep, "alice");
    let mut events = a.events();
    for round in 0..20 {
        assert_eq!(a.login("007garbage").await.unwrap_err().code, ErrorCode::INVALID_TOKEN);
        a.login(&rtm_token("alice", 600)).await.unwrap();
        assert_eq!(a.link_state(), LinkState::CONNECTED, "round {round}");
        // After the CONNECTED of the good login, no FAILED may follow.
        let batch = events.try_recv_batch(usize::MAX);
        let last_connected = batch.iter().rposition(|e| is_link(e, LinkState::CONNECTED));
        let after = &batch[last_connected.map_or(0, |i| i + 1)..];
        assert!(!after.iter().any(|e| is_link(e, LinkState::FAILED)), "round {round}: {after:?}");
        a.logout().await.unwrap();
        events.try_recv_batch(usize::MAX);
    }
}
