//! Message channels and user channels, over the in-process transport and TCP on loopback.

mod common;

use common::*;
use rtm2_core::*;

#[derive(Clone, Copy, Debug)]
enum Transport {
    InProcess,
    Tcp,
}

async fn setup(t: Transport) -> (rtm2_server::Server, Endpoint) {
    let server = dev_server();
    let ep = match t {
        Transport::InProcess => Endpoint::Server(server.clone()),
        Transport::Tcp => Endpoint::Tcp(server.listen_tcp("127.0.0.1:0").await.unwrap().to_string()),
    };
    (server, ep)
}

fn client(ep: &Endpoint, user: &str) -> Client {
    Client::new(ClientConfig::new(APP_ID, user).endpoint(ep.clone())).unwrap()
}

async fn channel_pubsub(t: Transport) {
    let (_server, ep) = setup(t).await;
    let alice = client(&ep, "alice");
    let bob = client(&ep, "bob");
    alice.login("").await.unwrap();
    bob.login("").await.unwrap();
    assert_eq!(alice.link_state(), LinkState::CONNECTED);

    let mut bob_room = bob.subscribe("room.1", SubscribeOptions::default()).await.unwrap();
    let mut alice_room = alice.subscribe("room.1", SubscribeOptions::default()).await.unwrap();

    alice.publish("room.1", "hello bob", PublishOptions::default().custom_type("text")).await.unwrap();
    alice.publish("room.1", vec![0u8, 1, 2, 255], PublishOptions::default()).await.unwrap();

    let m = next_message(&mut bob_room).await;
    assert_eq!(m.text(), Some("hello bob"));
    assert_eq!(m.publisher, "alice");
    assert_eq!(m.channel, "room.1");
    assert_eq!(m.channel_type, ChannelType::MESSAGE);
    assert_eq!(m.message_type, MessageType::STRING);
    assert_eq!(m.custom_type, "text");
    assert!(m.timestamp_ms > 0);
    let m = next_message(&mut bob_room).await;
    assert_eq!(&m.payload[..], &[0u8, 1, 2, 255]);
    assert_eq!(m.message_type, MessageType::BINARY);
    assert_eq!(m.text(), None);

    // The publisher receives its own messages by default.
    assert_eq!(next_message(&mut alice_room).await.text(), Some("hello bob"));

    // Per-publisher order over many messages.
    for i in 0..500 {
        alice.publish("room.1", format!("m{i}"), PublishOptions::default()).await.unwrap();
    }
    for i in 0..500 {
        assert_eq!(next_message(&mut bob_room).await.text(), Some(format!("m{i}").as_str()));
    }

    // After unsubscribe the stream ends and nothing more arrives.
    bob.unsubscribe("room.1").await.unwrap();
    assert!(bob_room.recv().await.is_none());
    let e = bob.unsubscribe("room.1").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CHANNEL_NOT_SUBSCRIBED);
    alice.logout().await.unwrap();
    bob.logout().await.unwrap();
    assert_eq!(alice.link_state(), LinkState::IDLE);
}

#[tokio::test]
async fn channel_pubsub_in_process() {
    channel_pubsub(Transport::InProcess).await;
}

#[tokio::test]
async fn channel_pubsub_tcp() {
    channel_pubsub(Transport::Tcp).await;
}

async fn peer_to_peer(t: Transport) {
    let (_server, ep) = setup(t).await;
    let alice = client(&ep, "alice");
    let bob = client(&ep, "bob");
    alice.login("").await.unwrap();
    let e = alice.publish("bob", "are you there?", PublishOptions::user()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CHANNEL_RECEIVER_OFFLINE);
    assert_eq!(e.operation, "publish");

    let mut bob_events = bob.events();
    bob.login("").await.unwrap();
    alice.publish("bob", "hi bob", PublishOptions::user().custom_type("dm")).await.unwrap();
    let m = expect_message(&mut bob_events, |_| true).await;
    assert_eq!(m.channel_type, ChannelType::USER);
    assert_eq!(m.publisher, "alice");
    assert_eq!(m.channel, "bob");
    assert_eq!(m.text(), Some("hi bob"));
    assert_eq!(m.custom_type, "dm");

    bob.logout().await.unwrap();
    let e = alice.publish("bob", "gone?", PublishOptions::user()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CHANNEL_RECEIVER_OFFLINE);
}

#[tokio::test]
async fn peer_to_peer_in_process() {
    peer_to_peer(Transport::InProcess).await;
}

#[tokio::test]
async fn peer_to_peer_tcp() {
    peer_to_peer(Transport::Tcp).await;
}

#[tokio::test]
async fn own_messages_can_be_turned_off() {
    let (_server, ep) = setup(Transport::InProcess).await;
    let mut cfg = ClientConfig::new(APP_ID, "quiet").endpoint(ep.clone());
    cfg.set_parameters(r#"{"receive_own_messages": false}"#).unwrap();
    let me = Client::new(cfg).unwrap();
    let other = client(&ep, "other");
    me.login("").await.unwrap();
    other.login("").await.unwrap();
    let mut mine = me.subscribe("c", SubscribeOptions::default()).await.unwrap();
    me.publish("c", "from me", PublishOptions::default()).await.unwrap();
    other.publish("c", "from other", PublishOptions::default()).await.unwrap();
    // The first message that arrives is the other user's: our own was not echoed.
    assert_eq!(next_message(&mut mine).await.text(), Some("from other"));
}

#[tokio::test]
async fn with_message_false_receives_no_messages() {
    let (_server, ep) = setup(Transport::InProcess).await;
    let a = client(&ep, "a");
    a.login("").await.unwrap();
    let opts = SubscribeOptions { with_message: false, ..Default::default() };
    let _quiet = a.subscribe("x", opts).await.unwrap();
    let mut loud = a.subscribe("y", SubscribeOptions::default()).await.unwrap();
    a.publish("x", "not for me", PublishOptions::default()).await.unwrap();
    a.publish("y", "for me", PublishOptions::default()).await.unwrap();
    let mut all = a.events();
    a.publish("y", "again", PublishOptions::default()).await.unwrap();
    let m = expect_message(&mut all, |_| true).await;
    assert_eq!(m.text(), Some("again"));
    assert_eq!(next_message(&mut loud).await.text(), Some("for me"));
}

#[tokio::test]
async fn errors_carry_exact_codes() {
    let (_server, ep) = setup(Transport::InProcess).await;
    let a = client(&ep, "a");

    // Before login.
    let e = a.publish("c", "x", PublishOptions::default()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NOT_LOGIN);
    assert_eq!(a.subscribe("c", SubscribeOptions::default()).await.err().unwrap().code, ErrorCode::NOT_LOGIN);

    a.login("").await.unwrap();
    let e = a.login("").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::DUPLICATE_OPERATION);

    let code = |r: Result<Ack>| r.unwrap_err().code;
    assert_eq!(code(a.publish("", "x", PublishOptions::default()).await), ErrorCode::INVALID_CHANNEL_NAME);
    assert_eq!(code(a.publish("_x", "x", PublishOptions::default()).await), ErrorCode::INVALID_CHANNEL_NAME);
    assert_eq!(code(a.publish(&"c".repeat(65), "x", PublishOptions::default()).await), ErrorCode::INVALID_CHANNEL_NAME);
    assert!(a.publish(&"c".repeat(64), "x", PublishOptions::default()).await.is_ok());
    assert_eq!(code(a.publish("c", "", PublishOptions::default()).await), ErrorCode::CHANNEL_INVALID_MESSAGE);
    let big = vec![7u8; 32 * 1024];
    assert!(a.publish("c", big.clone(), PublishOptions::default()).await.is_ok());
    let mut too_big = big.clone();
    too_big.push(1);
    assert_eq!(
        code(a.publish("c", too_big, PublishOptions::default()).await),
        ErrorCode::CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION
    );
    assert_eq!(
        code(a.publish("c", "x", PublishOptions::default().custom_type("t".repeat(33))).await),
        ErrorCode::CHANNEL_CUSTOM_TYPE_LENGTH_OVERFLOW
    );
    let stream = PublishOptions { channel_type: ChannelType::STREAM, ..Default::default() };
    assert_eq!(code(a.publish("c", "x", stream).await), ErrorCode::INVALID_CHANNEL_TYPE);
    assert_eq!(code(a.publish("bad user!\n", "x", PublishOptions::user()).await), ErrorCode::INVALID_USER_ID);
    // Stored in the history (tests/history.rs); to an offline user: stored, and said so.
    let hist = PublishOptions { store_in_history: true, ..Default::default() };
    assert!(a.publish("c", "x", hist.clone()).await.is_ok());
    let offline = PublishOptions { channel_type: ChannelType::USER, ..hist };
    assert_eq!(code(a.publish("nobody", "x", offline).await), ErrorCode::CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED);

    // 50 channels are fine, the 51st is not.
    let mut subs = Vec::new();
    for i in 0..50 {
        subs.push(a.subscribe(&format!("ch{i}"), SubscribeOptions::default()).await.unwrap());
    }
    let e = a.subscribe("ch50", SubscribeOptions::default()).await.err().unwrap();
    assert_eq!(e.code, ErrorCode::CHANNEL_INSTANCE_EXCEED_LIMITATION);
    // Re-subscribing an existing channel is an update, not a 51st channel.
    a.subscribe("ch0", SubscribeOptions { with_presence: false, ..Default::default() }).await.unwrap();

    assert_eq!(a.set_parameters(r#"{"no_such_key": 1}"#).unwrap_err().code, ErrorCode::INVALID_PARAMETER);
    assert_eq!(a.set_parameters(r#"{"request_timeout_ms": 5}"#).unwrap_err().code, ErrorCode::INVALID_PARAMETER);
    assert_eq!(a.set_parameters("not json").unwrap_err().code, ErrorCode::INVALID_PARAMETER);
    a.set_parameters(r#"{"request_timeout_ms": 5000}"#).unwrap();
    assert!(a.get_parameters().contains("\"request_timeout_ms\":5000"));

    assert_eq!(Client::new(ClientConfig::new("short", "a")).err().unwrap().code, ErrorCode::INVALID_APP_ID);
    assert_eq!(Client::new(ClientConfig::new(APP_ID, "")).err().unwrap().code, ErrorCode::INVALID_USER_ID);
    assert_eq!(a.stream_channel("").err().unwrap().code, ErrorCode::INVALID_CHANNEL_NAME);

    a.logout().await.unwrap();
    assert_eq!(code(a.publish("c", "x", PublishOptions::default()).await), ErrorCode::NOT_LOGIN);
}

#[tokio::test]
async fn the_server_checks_limits_again() {
    // A hostile client is not our SDK: the server must reject what the SDK would have.
    use rtm2_proto::frame;
    use rtm2_proto::pb::{self, client_frame, server_frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = dev_server();
    let mut io = server.connect_in_memory();
    let mut out = bytes::BytesMut::new();
    let send = |out: &mut bytes::BytesMut, id: u64, body: client_frame::Body| {
        frame::write_client_frame(out, &pb::ClientFrame { request_id: id, body: Some(body) })
    };
    send(&mut out, 0, client_frame::Body::Hello(pb::Hello { protocol_version: 1, ..Default::default() }));
    send(
        &mut out,
        1,
        client_frame::Body::Login(pb::Login { app_id: APP_ID.into(), user_id: "raw".into(), ..Default::default() }),
    );
    send(
        &mut out,
        2,
        client_frame::Body::Publish(pb::Publish {
            channel: "c".into(),
            channel_type: 1,
            payload: vec![0u8; 40 * 1024].into(),
            ..Default::default()
        }),
    );
    send(
        &mut out,
        3,
        client_frame::Body::Publish(pb::Publish {
            channel: "_bad".into(),
            channel_type: 1,
            payload: "x".into(),
            ..Default::default()
        }),
    );
    send(
        &mut out,
        4,
        client_frame::Body::JoinTopic(pb::JoinTopic { channel: "s".into(), topic: "t".into(), ..Default::default() }),
    );
    io.write_all(&out).await.unwrap();
    let dec = frame::FrameDecoder::new(1 << 20);
    let mut buf = bytes::BytesMut::new();
    let mut codes = std::collections::BTreeMap::new();
    while codes.len() < 4 {
        if let Some(body) = dec.decode(&mut buf).unwrap() {
            if let Some(server_frame::Body::Response(r)) = frame::decode_server(body).unwrap().body {
                codes.insert(r.request_id, r.code);
            }
            continue;
        }
        let n = tokio::time::timeout(WAIT, io.read_buf(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "server closed early");
    }
    assert_eq!(codes[&1], 0);
    assert_eq!(codes[&2], ErrorCode::CHANNEL_MESSAGE_LENGTH_EXCEED_LIMITATION.code());
    assert_eq!(codes[&3], ErrorCode::INVALID_CHANNEL_NAME.code());
    assert_eq!(codes[&4], ErrorCode::CHANNEL_NOT_JOINED.code());
}

#[tokio::test]
async fn the_embedded_default_needs_nothing() {
    let a = Client::new(ClientConfig::new(APP_ID, "embedded-a")).unwrap();
    let b = Client::new(ClientConfig::new(APP_ID, "embedded-b")).unwrap();
    a.login("").await.unwrap();
    b.login("").await.unwrap();
    let mut sub = b.subscribe("lobby", SubscribeOptions::default()).await.unwrap();
    a.publish("lobby", "hi from the embedded server", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut sub).await.text(), Some("hi from the embedded server"));
    a.publish("embedded-b", "direct", PublishOptions::user()).await.unwrap();
}

#[test]
fn blocking_use_from_plain_threads() {
    let a = Client::new(ClientConfig::new(APP_ID, "blocking-a")).unwrap();
    let a2 = a.clone();
    rtm2_core::block_on(async move { a2.login("").await }).unwrap();
    let a3 = a.clone();
    let mut sub = rtm2_core::block_on(async move { a3.subscribe("blk", SubscribeOptions::default()).await }).unwrap();
    let a4 = a.clone();
    rtm2_core::block_on(async move { a4.publish("blk", "sync", PublishOptions::default()).await }).unwrap();
    let got = sub.blocking_recv_batch(10, WAIT).unwrap();
    assert!(matches!(&got[0], Event::Message(m) if m.text() == Some("sync")));
}

#[tokio::test]
async fn pipelined_publishes_keep_call_order() {
    let (_server, ep) = setup(Transport::Tcp).await;
    let a = client(&ep, "a");
    let b = client(&ep, "b");
    a.login("").await.unwrap();
    b.login("").await.unwrap();
    let mut sub = b.subscribe("order", SubscribeOptions::default()).await.unwrap();
    // Start 2,000 publishes without awaiting any, then await them all.
    let ops: Vec<_> = (0..2000).map(|i| a.publish("order", format!("{i}"), PublishOptions::default())).collect();
    for op in ops {
        op.await.unwrap();
    }
    for i in 0..2000 {
        assert_eq!(next_message(&mut sub).await.text(), Some(format!("{i}").as_str()));
    }
}

#[tokio::test]
async fn operations_issued_while_connecting_wait_and_keep_order() {
    let (_server, ep) = setup(Transport::InProcess).await;
    let a = client(&ep, "a");
    let b = client(&ep, "b");
    b.login("").await.unwrap();
    let mut sub = b.subscribe("early", SubscribeOptions::default()).await.unwrap();
    let login = a.login("");
    // Issued before the login completed: queued, then sent in order once connected.
    let first = a.publish("early", "1", PublishOptions::default());
    let second = a.publish("early", "2", PublishOptions::default());
    login.await.unwrap();
    first.await.unwrap();
    second.await.unwrap();
    assert_eq!(next_message(&mut sub).await.text(), Some("1"));
    assert_eq!(next_message(&mut sub).await.text(), Some("2"));
}

/// With FEATURE_PUBLISH_ACK, successful publishes are answered together by PublishAck frames;
/// a failed publish still gets its own Response, before the ack that covers later ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_publishes_are_acknowledged_together() {
    use rtm2_proto::frame;
    use rtm2_proto::pb::{self, client_frame, server_frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = dev_server();
    let mut io = server.connect_in_memory();
    let mut out = bytes::BytesMut::new();
    let mut send = |id: u64, body: client_frame::Body| {
        frame::write_client_frame(&mut out, &pb::ClientFrame { request_id: id, body: Some(body) })
    };
    let hello = pb::Hello { protocol_version: 1, features: rtm2_proto::FEATURES, ..Default::default() };
    send(0, client_frame::Body::Hello(hello));
    send(
        1,
        client_frame::Body::Login(pb::Login { app_id: APP_ID.into(), user_id: "raw".into(), ..Default::default() }),
    );
    let publish = |ch: &str| {
        client_frame::Body::Publish(pb::Publish {
            channel: ch.into(),
            channel_type: 1,
            payload: "x".into(),
            ..Default::default()
        })
    };
    for id in 2..=50 {
        send(id, publish(if id == 20 { "_bad" } else { "c" }));
    }
    send(51, client_frame::Body::Subscribe(pb::Subscribe { channel: "c".into(), ..Default::default() }));
    io.write_all(&out).await.unwrap();
    let dec = frame::FrameDecoder::new(1 << 20);
    let mut buf = bytes::BytesMut::new();
    let mut responses = Vec::new();
    let mut acked = 0;
    while acked < 50 || !responses.iter().any(|(id, _)| *id == 51) {
        if let Some(body) = dec.decode(&mut buf).unwrap() {
            match frame::decode_server(body).unwrap().body {
                Some(server_frame::Body::Response(r)) => {
                    assert!(r.request_id == 1 || r.request_id > acked, "a response after the ack covering it");
                    responses.push((r.request_id, r.code));
                }
                Some(server_frame::Body::PublishAck(a)) => {
                    assert!(a.up_to > acked);
                    acked = a.up_to;
                }
                _ => {}
            }
            continue;
        }
        let n = tokio::time::timeout(WAIT, io.read_buf(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "server closed early");
    }
    let codes: Vec<u64> = responses.iter().map(|(id, _)| *id).collect();
    assert_eq!(codes, vec![1, 20, 51], "only the login, the failed publish and the subscribe get responses");
    assert_eq!(responses[1].1, ErrorCode::INVALID_CHANNEL_NAME.code());
}

/// Sparse publishes are written to the socket by the calling thread, dense ones by the
/// connection's writer in batches: mixed, every message arrives once, in order, acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparse_and_dense_publishes_keep_their_order_over_tcp() {
    let (_server, ep) = setup(Transport::Tcp).await;
    let alice = client(&ep, "alice");
    let bob = client(&ep, "bob");
    alice.login("").await.unwrap();
    bob.login("").await.unwrap();
    let mut room = bob.subscribe("mixed", SubscribeOptions::default()).await.unwrap();
    let mut ops = Vec::new();
    let mut n = 0;
    for round in 0..40 {
        // A lone publish after a pause, then a burst.
        ops.push(alice.publish("mixed", format!("{n}"), PublishOptions::default()));
        n += 1;
        for _ in 0..round % 7 * 20 {
            ops.push(alice.publish("mixed", format!("{n}"), PublishOptions::default()));
            n += 1;
        }
        tokio::time::sleep(std::time::Duration::from_micros(200 + round * 37)).await;
    }
    for op in ops {
        op.await.unwrap();
    }
    for i in 0..n {
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), next_message(&mut room)).await.unwrap();
        assert_eq!(m.text(), Some(i.to_string().as_str()), "message {i} of {n}");
    }
}

/// Every call answers with the server's time of its answer (agora-rtm-sdk's `timestamp`): login,
/// publish (fast path and queued), subscribe, unsubscribe, stream channel calls, presence and
/// lock calls, renew and logout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_answers_with_the_servers_time() {
    let (_server, ep) = setup(Transport::Tcp).await;
    let a = client(&ep, "alice");
    let before = rtm2_proto::now_ms();
    let within = |t: u64, what: &str| {
        assert!(t >= before && t <= rtm2_proto::now_ms(), "{what}: {t} not in [{before}, now]");
    };
    within(a.login("").await.unwrap().timestamp_ms, "login");
    let sub = a.subscribe("room", SubscribeOptions::default()).await.unwrap();
    within(sub.timestamp_ms(), "subscribe");
    // Pipelined publishes, read back newest first and late: each has the time of the
    // acknowledgement that covered it, so the times go forward in publish order.
    let ops: Vec<_> = (0..500).map(|i| a.publish("room", format!("{i}"), PublishOptions::default())).collect();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let mut times = Vec::new();
    for op in ops.into_iter().rev() {
        times.push(op.await.unwrap().timestamp_ms);
    }
    times.reverse();
    for t in &times {
        within(*t, "publish");
    }
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "acknowledgement times go forward: {times:?}");
    let stored = PublishOptions { store_in_history: true, ..PublishOptions::default() };
    within(a.publish("room", "kept", stored).await.unwrap().timestamp_ms, "stored publish");
    within(a.renew_token("").await.unwrap().timestamp_ms, "renew_token");
    let stage = a.stream_channel("stage").unwrap();
    within(stage.join(JoinOptions::default()).await.unwrap().timestamp_ms, "join");
    within(stage.join_topic("t", JoinTopicOptions::default()).await.unwrap().timestamp_ms, "join_topic");
    within(stage.publish_topic("t", "x", TopicMessageOptions::default()).await.unwrap().timestamp_ms, "publish_topic");
    within(stage.subscribe_topic("t", &["alice"]).await.unwrap().timestamp_ms, "subscribe_topic");
    within(stage.unsubscribe_topic("t", &[]).await.unwrap().timestamp_ms, "unsubscribe_topic");
    within(stage.leave_topic("t").await.unwrap().timestamp_ms, "leave_topic");
    within(stage.leave().await.unwrap().timestamp_ms, "leave");
    within(a.presence().set_state("room", ChannelType::MESSAGE, [("k", "v")]).await.unwrap().timestamp_ms, "set_state");
    within(a.presence().remove_state("room", ChannelType::MESSAGE, vec![]).await.unwrap().timestamp_ms, "remove_state");
    within(a.lock().set_lock("room", ChannelType::MESSAGE, "l", 10).await.unwrap().timestamp_ms, "set_lock");
    a.lock().acquire_lock("room", ChannelType::MESSAGE, "l", false).await.unwrap();
    within(a.lock().release_lock("room", ChannelType::MESSAGE, "l").await.unwrap().timestamp_ms, "release_lock");
    within(a.lock().remove_lock("room", ChannelType::MESSAGE, "l").await.unwrap().timestamp_ms, "remove_lock");
    // Calls that return data carry the time too.
    let presence = a.presence();
    within(
        presence.get_online_users("room", ChannelType::MESSAGE, Default::default()).await.unwrap().timestamp_ms,
        "get_online_users",
    );
    within(presence.get_user_channels("").await.unwrap().timestamp_ms, "get_user_channels");
    presence.set_state("room", ChannelType::MESSAGE, [("k", "v")]).await.unwrap();
    within(presence.get_state("room", ChannelType::MESSAGE, "alice").await.unwrap().timestamp_ms, "get_state");
    let item = MetadataItem::new("k", "v");
    let storage = a.storage();
    let written =
        storage.set_channel_metadata("room", ChannelType::MESSAGE, vec![item], Default::default()).await.unwrap();
    within(written.timestamp_ms, "set_channel_metadata");
    assert_eq!(written.total_count, 1, "the data reads through");
    within(
        storage.get_channel_metadata("room", ChannelType::MESSAGE).await.unwrap().timestamp_ms,
        "get_channel_metadata",
    );
    within(storage.get_user_metadata("").await.unwrap().timestamp_ms, "get_user_metadata");
    a.lock().set_lock("room", ChannelType::MESSAGE, "m", 10).await.unwrap();
    let grant = a.lock().acquire_lock("room", ChannelType::MESSAGE, "m", false).await.unwrap();
    within(grant.timestamp_ms, "acquire_lock");
    assert!(grant.value > 0);
    within(a.lock().get_locks("room", ChannelType::MESSAGE).await.unwrap().timestamp_ms, "get_locks");
    let page = a.history().get_messages("room", ChannelType::MESSAGE, Default::default()).await.unwrap();
    within(page.timestamp_ms, "get_messages");
    assert_eq!(page.messages.len(), 1, "the stored one");
    within(a.storage().subscribe_user_metadata("bob").await.unwrap().timestamp_ms, "subscribe_user_metadata");
    within(a.storage().unsubscribe_user_metadata("bob").await.unwrap().timestamp_ms, "unsubscribe_user_metadata");
    within(a.unsubscribe("room").await.unwrap().timestamp_ms, "unsubscribe");
    within(a.logout().await.unwrap().timestamp_ms, "logout");
}
