//! End-to-end encryption (`ClientConfig::encryption`) against a real server on loopback: clients
//! with the same mode, key and salt talk in message channels, peer to peer, in stream topics
//! and through presence states, while the server holds only ciphertext; a message that does not
//! decrypt with the receiver's configuration — another key, a plain one to an encrypting client
//! and the reverse, tampered bytes, another user's ciphertext replayed — is dropped and counted,
//! never delivered.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use common::http::*;
use common::*;
use rtm2_core::*;
use rtm2_proto::frame;
use rtm2_proto::pb::{self, client_frame};
use rtm2_server::{HttpConfig, Server};
use serde_json::json;
use tokio::io::AsyncWriteExt;

const SALT: &[u8] = b"0123456789abcdef0123456789abcdef";

fn aes128(key: &str) -> EncryptionConfig {
    EncryptionConfig::new(EncryptionMode::AES_128_GCM, key, SALT)
}

struct Setup {
    _server: Server,
    tcp: SocketAddr,
    http: SocketAddr,
}

async fn setup() -> Setup {
    let server = Server::start(dev_config());
    let tcp = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let http = server
        .listen_http("127.0.0.1:0", HttpConfig { credentials: vec![(KEY.into(), SECRET.into())], ..Default::default() })
        .unwrap();
    Setup { _server: server, tcp, http }
}

async fn user(addr: SocketAddr, user: &str, encryption: EncryptionConfig) -> (Client, EventReceiver) {
    let mut cfg = ClientConfig::new(APP_ID, user).endpoint(Endpoint::Tcp(addr.to_string()));
    cfg.encryption = encryption;
    let c = Client::new(cfg).unwrap();
    let rx = c.events();
    c.login("").await.unwrap();
    (c, rx)
}

#[tokio::test]
async fn clients_with_the_same_key_talk_and_the_server_holds_only_ciphertext() {
    let s = setup().await;
    let (alice, _alice_rx) = user(s.tcp, "alice", aes128("shared secret")).await;
    let (bob, mut bob_rx) = user(s.tcp, "bob", aes128("shared secret")).await;
    bob.subscribe("room", SubscribeOptions::default()).await.unwrap();
    alice.subscribe("room", SubscribeOptions { with_message: false, ..Default::default() }).await.unwrap();

    // What the server sees of the channel (the console's tail): ciphertext.
    let http = s.http;
    let tail = tokio::spawn(async move {
        sse_until(http, &format!("/console/tail?app={APP_ID}&channel=room"), "message", |m| m["publisher"] == "alice")
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    alice
        .publish("room", "top secret plan", PublishOptions { custom_type: "note".into(), ..Default::default() })
        .await
        .unwrap();
    let m = expect_message(&mut bob_rx, |m| m.channel == "room").await;
    assert_eq!((m.text(), m.publisher.as_str(), m.custom_type.as_ref()), (Some("top secret plan"), "alice", "note"));
    let seen = tail.await.unwrap();
    assert_eq!(seen["encryption"], json!("AES_128_GCM"), "{seen}");
    let sealed = base64::engine::general_purpose::STANDARD.decode(seen["message"].as_str().unwrap()).unwrap();
    assert_eq!(sealed.len(), "top secret plan".len() + 28, "nonce + ciphertext + tag");
    assert!(!String::from_utf8_lossy(&sealed).contains("secret"), "{seen}");

    // Peer to peer, binary.
    alice.publish("bob", vec![0u8, 1, 2, 255], PublishOptions::user()).await.unwrap();
    let m = expect_message(&mut bob_rx, |m| m.channel_type == ChannelType::USER).await;
    assert_eq!((m.message_type, &m.payload[..]), (MessageType::BINARY, &[0u8, 1, 2, 255][..]));

    // A stream topic.
    let (a_sc, b_sc) = (alice.stream_channel("stage").unwrap(), bob.stream_channel("stage").unwrap());
    a_sc.join(Default::default()).await.unwrap();
    b_sc.join(Default::default()).await.unwrap();
    a_sc.join_topic("t", Default::default()).await.unwrap();
    b_sc.subscribe_topic("t", &["alice"]).await.unwrap();
    a_sc.publish_topic("t", "on stage", Default::default()).await.unwrap();
    let m = expect_message(&mut bob_rx, |m| m.channel_type == ChannelType::STREAM).await;
    assert_eq!((m.text(), m.topic.as_ref()), (Some("on stage"), "t"));

    // Presence states: bob reads alice's in clear, the server holds ciphertext.
    bob.subscribe("room", SubscribeOptions::default()).await.unwrap();
    alice.presence().set_state("room", ChannelType::MESSAGE, [("mood", "secretly happy")]).await.unwrap();
    let ev = expect_event(&mut bob_rx, "alice's state", |e| {
        matches!(e, Event::Presence(p) if p.event_type == PresenceEventType::REMOTE_STATE_CHANGED && p.publisher == "alice")
    })
    .await;
    let Event::Presence(p) = ev else { unreachable!() };
    assert_eq!(p.states.get("mood").map(String::as_str), Some("secretly happy"));
    let st = bob.presence().get_state("room", ChannelType::MESSAGE, "alice").await.unwrap();
    assert_eq!(st.states.get("mood").map(String::as_str), Some("secretly happy"));
    let opts = GetOnlineUsersOptions { include_state: true, ..Default::default() };
    let who = bob.presence().get_online_users("room", ChannelType::MESSAGE, opts).await.unwrap();
    let a = who.occupants.iter().find(|u| u.user_id == "alice").unwrap();
    assert_eq!(a.states.get("mood").map(String::as_str), Some("secretly happy"));
    let server_view =
        op(s.http, "GET", &format!("/v1/apps/{APP_ID}/channels/MESSAGE/room/users?states=true"), None).await.json();
    let stored =
        server_view["users"].as_array().unwrap().iter().find(|u| u["user_id"] == "alice").unwrap()["states"]["mood"]
            .clone();
    assert!(stored.as_str().unwrap().starts_with("rtm2e1:") && !stored.to_string().contains("happy"), "{stored}");

    // Everything decrypted: nothing dropped.
    assert_eq!((alice.undecryptable_messages(), bob.undecryptable_messages()), (0, 0));
}

#[tokio::test]
async fn what_does_not_decrypt_is_dropped_and_counted() {
    let s = setup().await;
    let (rx_client, mut rx) = user(s.tcp, "receiver", aes128("right")).await;
    rx_client.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let (wrong, _w) = user(s.tcp, "wrong", aes128("wrong key")).await;
    let (plain, mut plain_rx) = user(s.tcp, "plain", EncryptionConfig::default()).await;
    plain.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let (other_mode, _o) =
        user(s.tcp, "other", EncryptionConfig::new(EncryptionMode::AES_256_GCM, "right", SALT)).await;
    let (good, _g) = user(s.tcp, "good", aes128("right")).await;

    wrong.publish("room", "with the wrong key", PublishOptions::default()).await.unwrap();
    plain.publish("room", "in clear", PublishOptions::default()).await.unwrap();
    other_mode.publish("room", "another mode", PublishOptions::default()).await.unwrap();
    good.publish("room", "the good one", PublishOptions::default()).await.unwrap();
    // Each message's order is kept: the good one is the first the receiver gets.
    let m = expect_message(&mut rx, |m| m.channel == "room").await;
    assert_eq!((m.text(), m.publisher.as_ref()), (Some("the good one"), "good"));
    assert_eq!(rx_client.undecryptable_messages(), 3);
    // The plain client gets its own plain message and drops the three encrypted ones.
    let m = expect_message(&mut plain_rx, |m| m.channel == "room").await;
    assert_eq!(m.text(), Some("in clear"));
    plain.publish("room", "plain again", PublishOptions::default()).await.unwrap();
    let m = expect_message(&mut plain_rx, |m| m.channel == "room").await;
    assert_eq!(m.text(), Some("plain again"));
    assert_eq!(plain.undecryptable_messages(), 3);

    // A plain client's state is left out by an encrypting reader, and the reverse.
    plain.presence().set_state("room", ChannelType::MESSAGE, [("k", "v")]).await.unwrap();
    let st = rx_client.presence().get_state("room", ChannelType::MESSAGE, "plain").await.unwrap();
    assert!(st.states.is_empty(), "{st:?}");
}

/// A raw connection of `user` that sends Hello, Login and then `publish` frames without
/// waiting (the server reads them in order): what a hostile client or server could send.
async fn raw_publish(addr: SocketAddr, user: &str, publishes: Vec<pb::Publish>) -> tokio::net::TcpStream {
    let mut wire = Vec::new();
    let mut push = |id: u64, body: client_frame::Body| {
        wire.extend_from_slice(&frame::encode_client(&pb::ClientFrame { request_id: id, body: Some(body) }));
    };
    push(
        0,
        client_frame::Body::Hello(pb::Hello {
            protocol_version: rtm2_proto::limits::PROTOCOL_VERSION,
            features: 0,
            client_name: "raw".into(),
        }),
    );
    push(1, client_frame::Body::Login(pb::Login { app_id: APP_ID.into(), user_id: user.into(), ..Default::default() }));
    for (i, p) in publishes.into_iter().enumerate() {
        push(2 + i as u64, client_frame::Body::Publish(p));
    }
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&wire).await.unwrap();
    s
}

#[tokio::test]
async fn tampered_or_replayed_ciphertext_is_dropped() {
    let s = setup().await;
    let (rx_client, mut rx) = user(s.tcp, "receiver", aes128("k")).await;
    rx_client.subscribe("room", SubscribeOptions::default()).await.unwrap();
    // Mallory's genuine ciphertext, as the server saw it.
    let http = s.http;
    let tail = tokio::spawn(async move {
        sse_until(http, &format!("/console/tail?app={APP_ID}&channel=room"), "message", |m| m["publisher"] == "mallory")
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mallory, _m) = user(s.tcp, "mallory", aes128("k")).await;
    mallory.publish("room", "genuine", PublishOptions::default()).await.unwrap();
    assert_eq!(expect_message(&mut rx, |m| m.channel == "room").await.text(), Some("genuine"));
    let sealed =
        base64::engine::general_purpose::STANDARD.decode(tail.await.unwrap()["message"].as_str().unwrap()).unwrap();
    mallory.logout().await.unwrap();

    let publish = |payload: Vec<u8>| pb::Publish {
        channel: "room".into(),
        channel_type: 1,
        message_type: 1,
        payload: payload.into(),
        encryption: 1,
        ..Default::default()
    };
    let mut flipped = sealed.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    let mut nonce_flipped = sealed.clone();
    nonce_flipped[0] ^= 1;
    // As mallory: a flipped tag, a flipped nonce, then the genuine bytes again (a replay by the
    // same publisher to the same place decrypts: that is what the nonce does not prevent).
    let _raw =
        raw_publish(s.tcp, "mallory", vec![publish(flipped), publish(nonce_flipped), publish(sealed.clone())]).await;
    assert_eq!(expect_message(&mut rx, |m| m.channel == "room").await.text(), Some("genuine"));
    assert_eq!(rx_client.undecryptable_messages(), 2);
    // Mallory's ciphertext sent as eve's (a server replaying it as another user's): dropped.
    let _eve = raw_publish(s.tcp, "eve", vec![publish(sealed)]).await;
    let (good, _g) = user(s.tcp, "good", aes128("k")).await;
    good.publish("room", "after", PublishOptions::default()).await.unwrap();
    assert_eq!(expect_message(&mut rx, |m| m.channel == "room").await.text(), Some("after"));
    assert_eq!(rx_client.undecryptable_messages(), 3);
}

#[tokio::test]
async fn invalid_encryption_settings_fail_client_creation_with_10020() {
    for enc in [
        EncryptionConfig::new(EncryptionMode::AES_128_GCM, "", SALT),
        EncryptionConfig::new(EncryptionMode::AES_256_GCM, "key", vec![7u8; 33]),
    ] {
        let mut cfg = ClientConfig::new(APP_ID, "u");
        cfg.encryption = enc;
        let e = Client::new(cfg).err().expect("refused");
        assert_eq!(e.code, ErrorCode::INVALID_ENCRYPTION_PARAMETER, "{e}");
    }
    // A shorter salt is zero-padded (accepted), as the reference does.
    let mut cfg = ClientConfig::new(APP_ID, "u");
    cfg.encryption = EncryptionConfig::new(EncryptionMode::AES_256_GCM, "key", b"short".to_vec());
    assert!(Client::new(cfg).is_ok());
}
