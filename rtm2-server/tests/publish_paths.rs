//! The server reads a plainly encoded Publish in place and any other encoding through prost.
//! Both must behave identically: the same answer (code and reason), the same delivered message,
//! the same rate limiting, duplicate and request-id handling. Each case is sent both ways and
//! the outcomes compared.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use rtm2_proto::fastpath::decode_publish_frame;
use rtm2_proto::frame::{self, FrameDecoder};
use rtm2_proto::pb::{self, ClientFrame, ServerFrame, client_frame, server_frame};
use rtm2_proto::{ErrorCode, limits};
use rtm2_server::{RateLimits, Server, ServerConfig};

const APP: &str = "0123456789abcdef0123456789abcdef";

struct Raw {
    io: DuplexStream,
    buf: BytesMut,
    dec: FrameDecoder,
}

impl Raw {
    async fn login(server: &Server, user: &str) -> Raw {
        // Every publish answered by its own Response.
        Raw::login_with(server, user, 0).await
    }

    async fn login_with(server: &Server, user: &str, features: u64) -> Raw {
        let mut raw = Raw { io: server.connect_in_memory(), buf: BytesMut::new(), dec: FrameDecoder::new(1 << 20) };
        raw.send(
            0,
            client_frame::Body::Hello(pb::Hello {
                protocol_version: limits::PROTOCOL_VERSION,
                features,
                client_name: "publish_paths".into(),
            }),
        )
        .await;
        assert!(matches!(raw.next().await.body, Some(server_frame::Body::HelloAck(_))));
        raw.send(
            1,
            client_frame::Body::Login(pb::Login {
                app_id: APP.into(),
                user_id: user.into(),
                receive_own_messages: true,
                ..Default::default()
            }),
        )
        .await;
        assert_eq!(raw.response().await.0, 0, "login");
        raw
    }

    async fn send_bytes(&mut self, body: &[u8]) {
        let mut wire = (body.len() as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(body);
        self.io.write_all(&wire).await.unwrap();
    }

    async fn send(&mut self, request_id: u64, body: client_frame::Body) {
        let wire = frame::encode_client(&ClientFrame { request_id, body: Some(body) });
        self.io.write_all(&wire).await.unwrap();
    }

    async fn next(&mut self) -> ServerFrame {
        loop {
            if let Some(body) = self.dec.decode(&mut self.buf).unwrap() {
                return frame::decode_server(body).unwrap();
            }
            let n = tokio::time::timeout(Duration::from_secs(10), self.io.read_buf(&mut self.buf))
                .await
                .expect("a frame within 10 s")
                .unwrap();
            assert!(n > 0, "connection closed");
        }
    }

    /// The next Response: (code, reason, request id).
    async fn response(&mut self) -> (u32, String, u64) {
        match self.next().await.body {
            Some(server_frame::Body::Response(r)) => (r.code, r.reason, r.request_id),
            other => panic!("expected a response, got {other:?}"),
        }
    }
}

/// A publish as the SDK encodes it (taken by the fast path), and the same publish followed by
/// an unknown field (which prost skips, so it means the same, but the fast path refuses).
fn encodings(request_id: u64, p: &pb::Publish) -> (Vec<u8>, Vec<u8>) {
    let plain = frame::encode_client(&ClientFrame { request_id, body: Some(client_frame::Body::Publish(p.clone())) })
        [4..]
        .to_vec();
    let mut unusual = plain.clone();
    unusual.extend_from_slice(&[0xf8, 0x07, 0x01]); // field 127, varint 1
    assert!(decode_publish_frame(&plain).is_some(), "{p:?}");
    assert!(decode_publish_frame(&unusual).is_none());
    (plain, unusual)
}

fn publish(channel: &str, channel_type: u32, message_type: u32, payload: &[u8], custom_type: &str) -> pb::Publish {
    pb::Publish {
        channel: channel.into(),
        channel_type,
        message_type,
        payload: Bytes::copy_from_slice(payload),
        custom_type: custom_type.into(),
        store_in_history: false,
        encryption: 0,
    }
}

fn unlimited() -> ServerConfig {
    ServerConfig { rate_limits: RateLimits::unlimited(), ..Default::default() }
}

#[tokio::test]
async fn both_paths_answer_and_deliver_alike() {
    let server = Server::start(unlimited());
    let mut publisher = Raw::login(&server, "pub").await;
    let mut sub = Raw::login(&server, "sub").await;
    let mut target = Raw::login(&server, "target").await;
    sub.send(
        2,
        client_frame::Body::Subscribe(pb::Subscribe {
            channel: "room".into(),
            with_message: true,
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(sub.response().await.0, 0);

    let long_custom = "c".repeat(limits::MAX_CUSTOM_TYPE_LEN + 1);
    let too_long = vec![b'a'; limits::MAX_MESSAGE_LEN];
    let mut history = publish("room", 1, 1, b"kept?", "");
    history.store_in_history = true;
    // (publish, who receives it)
    let cases: Vec<(pb::Publish, Option<usize>)> = vec![
        (publish("room", 1, 1, b"hello", "text"), Some(0)),
        (publish("room", 0, 0, &[0xff, 0x00, 0xfe], ""), Some(0)),
        (publish("room", 1, 1, "é中".as_bytes(), "x"), Some(0)),
        (publish("quiet", 1, 1, b"nobody listens", ""), None),
        (publish("target", 3, 1, b"direct", "dm"), Some(1)),
        (publish("room", 1, 1, &[0xff], ""), None),
        (publish("room", 1, 1, b"", ""), None),
        (publish("room", 1, 7, b"x", ""), None),
        (publish("room", 1, 1, b"x", &long_custom), None),
        (publish("room", 1, 0, &too_long, "t"), None),
        // Stored in the channel's history (by both paths alike) and delivered.
        (history, Some(0)),
        (publish("room", 2, 1, b"x", ""), None),
        (publish("room", 99, 1, b"x", ""), None),
        (publish("_room", 1, 1, b"x", ""), None),
        (publish("", 1, 1, b"x", ""), None),
        (publish("nobody", 3, 1, b"x", ""), None),
        (publish("null", 3, 1, b"x", ""), None),
    ];
    let mut request_id = 100;
    for (p, receiver) in cases {
        let mut outcomes = Vec::new();
        for fast in [true, false] {
            request_id += 1;
            let (plain, unusual) = encodings(request_id, &p);
            publisher.send_bytes(if fast { &plain } else { &unusual }).await;
            let (code, reason, answered) = publisher.response().await;
            assert_eq!(answered, request_id);
            let delivered = match receiver {
                Some(i) => {
                    let rx = if i == 0 { &mut sub } else { &mut target };
                    match rx.next().await.body {
                        Some(server_frame::Body::Message(mut m)) => {
                            assert!(m.timestamp_ms > 1_700_000_000_000, "{m:?}");
                            m.timestamp_ms = 0;
                            Some(m)
                        }
                        other => panic!("expected a message, got {other:?}"),
                    }
                }
                None => None,
            };
            outcomes.push((code, reason, delivered));
        }
        assert_eq!(outcomes[0], outcomes[1], "{p:?}");
        let (code, _, delivered) = &outcomes[0];
        assert_eq!(*code == 0, receiver.is_some() || p.channel == "quiet", "{p:?}: {outcomes:?}");
        if let Some(m) = delivered {
            assert_eq!(
                (m.channel.as_str(), m.publisher.as_str(), &m.payload[..]),
                (&p.channel[..], "pub", &p.payload[..])
            );
            assert_eq!(
                (m.channel_type, m.message_type, m.custom_type.as_str()),
                (if p.channel_type == 3 { 3 } else { 1 }, p.message_type, &p.custom_type[..])
            );
        }
    }

    // A request id already used is not run again on either path (a ping's pong comes next).
    for fast in [true, false] {
        let (plain, unusual) = encodings(request_id, &publish("room", 1, 1, b"again", ""));
        publisher.send_bytes(if fast { &plain } else { &unusual }).await;
        publisher.send(0, client_frame::Body::Ping(pb::Ping { client_time_ms: 5 })).await;
        assert!(matches!(publisher.next().await.body, Some(server_frame::Body::Pong(_))));
    }
}

/// Publishes read together are delivered together per channel, but never out of order: each
/// receiver gets them in publish order across channels, the user channel and both decoding
/// paths, and the publisher's own stream keeps a refusal between the messages published before
/// and after it, with the acknowledgement after all of them.
#[tokio::test]
async fn publishes_read_together_keep_their_order_everywhere() {
    let server = Server::start(unlimited());
    let features = rtm2_proto::FEATURE_PUBLISH_ACK;
    let mut publisher = Raw::login_with(&server, "pub", features).await;
    let mut sub = Raw::login_with(&server, "sub", features).await;
    for (who, request_id, channel) in [(0, 2, "a"), (0, 3, "b"), (1, 2, "a")] {
        let raw = if who == 0 { &mut sub } else { &mut publisher };
        raw.send(
            request_id,
            client_frame::Body::Subscribe(pb::Subscribe {
                channel: channel.into(),
                with_message: true,
                ..Default::default()
            }),
        )
        .await;
        assert_eq!(raw.response().await.0, 0);
    }
    // One write: runs of publishes to "a" and "b", a user-channel message, a refused publish
    // (unknown message type) and both encodings.
    let plan: Vec<(&str, u32, u32, bool)> = vec![
        ("a", 1, 1, true),
        ("a", 1, 1, false),
        ("a", 1, 1, true),
        ("b", 1, 1, true),
        ("b", 1, 1, false),
        ("sub", 3, 1, true),
        ("a", 1, 1, true),
        ("a", 1, 7, true), // refused: message type 7
        ("a", 1, 1, false),
        ("b", 1, 1, true),
        ("a", 1, 1, true),
    ];
    let mut wire = Vec::new();
    for (i, (channel, channel_type, message_type, fast)) in plan.iter().enumerate() {
        let p = publish(channel, *channel_type, *message_type, format!("m{i}").as_bytes(), "");
        let (plain, unusual) = encodings(100 + i as u64, &p);
        let body = if *fast { plain } else { unusual };
        wire.extend_from_slice(&(body.len() as u32).to_le_bytes());
        wire.extend_from_slice(&body);
    }
    publisher.io.write_all(&wire).await.unwrap();

    let payload = |m: &pb::MessageEvent| String::from_utf8(m.payload.to_vec()).unwrap();
    let delivered: Vec<usize> = (0..plan.len()).filter(|&i| plan[i].2 != 7).collect();
    let mut got = Vec::new();
    while got.len() < delivered.len() {
        match sub.next().await.body {
            Some(server_frame::Body::Message(m)) => got.push(payload(&m)),
            other => panic!("expected a message, got {other:?}"),
        }
    }
    let want: Vec<String> = delivered.iter().map(|i| format!("m{i}")).collect();
    assert_eq!(got, want, "the subscriber's messages in publish order");

    // The publisher receives its own messages to "a": those before the refusal, the refusal,
    // those after it, then one acknowledgement of everything.
    let mut seen = Vec::new();
    loop {
        match publisher.next().await.body {
            Some(server_frame::Body::Message(m)) => seen.push(payload(&m)),
            Some(server_frame::Body::Response(r)) => {
                assert_eq!((r.request_id, r.code), (107, ErrorCode::CHANNEL_UNSUPPORTED_MESSAGE_TYPE.code()), "{r:?}");
                seen.push("refused".into());
            }
            Some(server_frame::Body::PublishAck(a)) => {
                assert_eq!(a.up_to, 100 + plan.len() as u64 - 1);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, ["m0", "m1", "m2", "m6", "refused", "m8", "m10"]);
}

#[tokio::test]
async fn both_paths_share_the_rate_limit() {
    let limits = RateLimits { publish_per_s: 2, ..RateLimits::unlimited() };
    let server = Server::start(ServerConfig { rate_limits: limits, ..Default::default() });
    let mut publisher = Raw::login(&server, "pub").await;
    let p = publish("room", 1, 1, b"hi", "");
    let mut codes = Vec::new();
    for (request_id, fast) in [(10, true), (11, false), (12, true), (13, false)] {
        let (plain, unusual) = encodings(request_id, &p);
        publisher.send_bytes(if fast { &plain } else { &unusual }).await;
        let (code, reason, _) = publisher.response().await;
        codes.push((code, reason));
    }
    assert_eq!(codes[0], (0, String::new()));
    assert_eq!(codes[1], (0, String::new()));
    assert_eq!(codes[2].0, ErrorCode::OPERATION_RATE_EXCEED_LIMITATION.code());
    assert_eq!(codes[2], codes[3]);
}

#[tokio::test]
async fn a_publish_without_request_id_ends_the_session_alike() {
    let server = Server::start(unlimited());
    let mut goodbyes = Vec::new();
    for fast in [true, false] {
        let mut publisher = Raw::login(&server, if fast { "a" } else { "b" }).await;
        let (plain, unusual) = encodings(0, &publish("room", 1, 1, b"hi", ""));
        publisher.send_bytes(if fast { &plain } else { &unusual }).await;
        match publisher.next().await.body {
            Some(server_frame::Body::Goodbye(g)) => goodbyes.push((g.code, g.link_reason, g.reason)),
            other => panic!("expected a goodbye, got {other:?}"),
        }
    }
    assert_eq!(goodbyes[0], goodbyes[1]);
    assert!(goodbyes[0].2.contains("request without a request_id"), "{goodbyes:?}");
}
