//! Requests that time out on the client but that the server carries out later leave client and
//! server agreeing (docs/RELIABILITY.md): subscribes are withdrawn, joins and topic
//! subscriptions adopted. The slow client talks through a proxy that holds its requests back
//! (600 ms) longer than their timeout (200 ms), so each one reaches the server — and succeeds
//! there — after its caller was told it timed out.

mod common;

use std::time::Duration;

use common::*;
use rtm2_core::*;
use rtm2_server::{Server, ServerConfig};

const HELD: u64 = 600;
const SHORT: Duration = Duration::from_millis(200);

async fn tcp_server(config: ServerConfig) -> (Server, std::net::SocketAddr) {
    let server = Server::start(config);
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    (server, addr)
}

async fn client(addr: std::net::SocketAddr, user: &str) -> (Client, EventReceiver) {
    let mut cfg = ClientConfig::new(APP_ID, user).endpoint(Endpoint::Tcp(addr.to_string()));
    fast(&mut cfg);
    let c = Client::new(cfg).unwrap();
    let rx = c.events();
    c.login("").await.unwrap();
    (c, rx)
}

fn presence(ev: &Event, t: PresenceEventType, publisher: &str) -> bool {
    matches!(ev, Event::Presence(p) if p.event_type == t && p.publisher == publisher)
}

/// Polls `cond` every 10 ms until it holds, failing the test after `WAIT`.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Alice (through the proxy) and bob (direct), logged in.
async fn setup() -> (Server, Proxy, Client, EventReceiver, Client, EventReceiver) {
    let (server, addr) = tcp_server(dev_config()).await;
    let proxy = Proxy::start(addr).await;
    let (alice, arx) = client(proxy.addr, "alice").await;
    let (bob, brx) = client(addr, "bob").await;
    (server, proxy, alice, arx, bob, brx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribe_carried_out_after_its_timeout_is_withdrawn() {
    let (_server, proxy, alice, mut arx, bob, mut brx) = setup().await;
    bob.subscribe("room", SubscribeOptions::default()).await.unwrap();
    alice.subscribe("sync", SubscribeOptions::default()).await.unwrap();

    proxy.delay_up(HELD);
    let e = alice.with_timeout(SHORT).subscribe("room", SubscribeOptions::default()).await.err().expect("timed out");
    assert_eq!(e.code, ErrorCode::CHANNEL_SUBSCRIBE_TIMEOUT);
    proxy.delay_up(0);
    assert!(alice.subscribed_channels() == vec!["sync".to_string()], "{:?}", alice.subscribed_channels());

    // The server subscribed alice late (bob sees her join), and the client withdrew it.
    expect_event(&mut brx, "alice's late join", |e| presence(e, PresenceEventType::REMOTE_JOIN, "alice")).await;
    expect_event(&mut brx, "alice's withdrawal", |e| presence(e, PresenceEventType::REMOTE_LEAVE, "alice")).await;
    let now = bob.presence().who_now("room", ChannelType::MESSAGE, Default::default()).await.unwrap();
    assert_eq!(now.occupants.iter().map(|o| o.user_id.as_str()).collect::<Vec<_>>(), ["bob"]);

    // Alice hears nothing more of the channel (her events: "sync" comes, "room" does not).
    bob.publish("room", "not for alice", PublishOptions::default()).await.unwrap();
    bob.publish("sync", "marker", PublishOptions::default()).await.unwrap();
    let m = expect_message(&mut arx, |m| m.channel == "sync" || m.channel == "room").await;
    assert_eq!((m.channel.as_str(), m.text()), ("sync", Some("marker")), "a withdrawn channel's message arrived");
    assert_eq!(alice.subscribed_channels(), ["sync"]);

    // And she can subscribe again normally.
    let mut sub = alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    bob.publish("room", "now for alice", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut sub).await.text(), Some("now for alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_made_before_the_late_reply_decides_and_is_not_withdrawn() {
    let (_server, proxy, alice, _arx, bob, mut brx) = setup().await;
    bob.subscribe("room", SubscribeOptions::default()).await.unwrap();
    proxy.delay_up(HELD);
    let e = alice.with_timeout(SHORT).subscribe("room", SubscribeOptions::default()).await.err().expect("timed out");
    assert_eq!(e.code, ErrorCode::CHANNEL_SUBSCRIBE_TIMEOUT);
    // The application retries at once, with a long enough timeout.
    let retry = alice.subscribe("room", SubscribeOptions::default());
    proxy.delay_up(0);
    let mut sub = retry.await.unwrap();
    assert_eq!(alice.subscribed_channels(), ["room"]);
    expect_event(&mut brx, "alice's join", |e| presence(e, PresenceEventType::REMOTE_JOIN, "alice")).await;
    // Still subscribed on the server: bob's messages reach her (no withdrawal in between).
    for i in 0..3 {
        bob.publish("room", format!("m{i}"), PublishOptions::default()).await.unwrap();
        assert_eq!(next_message(&mut sub).await.text(), Some(format!("m{i}").as_str()));
    }
    let now = bob.presence().who_now("room", ChannelType::MESSAGE, Default::default()).await.unwrap();
    assert_eq!(now.total_occupancy, 2, "{now:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_carried_out_after_its_timeout_is_adopted_and_announced() {
    let (_server, proxy, alice, mut arx, _bob, _brx) = setup().await;
    let stage = alice.stream_channel("stage").unwrap();
    proxy.delay_up(HELD);
    let e = stage.with_timeout(SHORT).join(JoinOptions::default()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CHANNEL_JOIN_FAILED);
    proxy.delay_up(0);
    // The join the server did is adopted, and announced like any join.
    let ev = expect_event(&mut arx, "the late join's CONNECTED", |e| {
        matches!(e, Event::LinkState(s) if s.service_type == ServiceType::STREAM && s.channel == "stage" && s.current == LinkState::CONNECTED)
    })
    .await;
    let Event::LinkState(s) = ev else { unreachable!() };
    assert_eq!(s.reason, LinkStateChangeReason::JOIN_SUCCESS);
    assert!(stage.is_joined());
    // The client is not stuck: topics work, leave works, and joining again works.
    stage.join_topic("t", JoinTopicOptions::default()).await.unwrap();
    stage.leave().await.unwrap();
    assert!(!stage.is_joined());
    stage.join(JoinOptions::default()).await.unwrap();
    stage.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_joins_and_subscriptions_carried_out_late_are_adopted() {
    let (_server, proxy, alice, mut arx, bob, mut brx) = setup().await;
    let a_stage = alice.stream_channel("stage").unwrap();
    let b_stage = bob.stream_channel("stage").unwrap();
    a_stage.join(JoinOptions::default()).await.unwrap();
    b_stage.join(JoinOptions::default()).await.unwrap();
    b_stage.join_topic("bt", JoinTopicOptions::default()).await.unwrap();

    proxy.delay_up(HELD);
    let e = a_stage.with_timeout(SHORT).join_topic("at", JoinTopicOptions::default()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CHANNEL_JOIN_TOPIC_FAILED);
    let e = a_stage.with_timeout(SHORT).subscribe_topic("bt", &["bob"]).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::CHANNEL_SUBSCRIBE_TIMEOUT);
    proxy.delay_up(0);

    // The server made alice a publisher of "at" (bob sees it) and the client agrees.
    expect_event(
        &mut brx,
        "alice joining topic at",
        |e| matches!(e, Event::Topic(t) if t.event_type == TopicEventType::REMOTE_JOIN && t.publisher == "alice"),
    )
    .await;
    until("the late topic join adopted", || a_stage.joined_topics() == ["at"]).await;
    until("the late topic subscription adopted", || a_stage.subscribed_users("bt").is_ok_and(|u| u == ["bob"])).await;
    // Both work as the state says: alice publishes in "at", receives bob in "bt", and leaves.
    b_stage.publish_topic("bt", "from bob", TopicMessageOptions::default()).await.unwrap();
    let m = expect_message(&mut arx, |m| m.topic == "bt").await;
    assert_eq!(m.text(), Some("from bob"));
    a_stage.publish_topic("at", "from alice", TopicMessageOptions::default()).await.unwrap();
    a_stage.unsubscribe_topic("bt", &[]).await.unwrap();
    a_stage.leave_topic("at").await.unwrap();
    assert!(a_stage.joined_topics().is_empty());
    a_stage.join_topic("at", JoinTopicOptions::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_metadata_subscribe_carried_out_late_is_withdrawn() {
    let (_server, proxy, alice, mut arx, bob, _brx) = setup().await;
    bob.storage().set_user_metadata("", vec![MetadataItem::new("mood", "0")], Default::default()).await.unwrap();
    proxy.delay_up(HELD);
    let e = alice.with_timeout(SHORT).storage().subscribe_user_metadata("bob").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::STORAGE_OPERATION_TIMEOUT);
    proxy.delay_up(0);
    // The server subscribed her late (its SNAPSHOT arrives) ...
    expect_event(
        &mut arx,
        "the late subscription's snapshot",
        |e| matches!(e, Event::Storage(s) if s.event_type == StorageEventType::SNAPSHOT && s.target == "bob"),
    )
    .await;
    // ... and the client withdrew it: bob's updates stop reaching her (each round waits 300 ms
    // for the update; the withdrawal is one round trip after the snapshot).
    let mut quiet_rounds = 0;
    for i in 1..=30 {
        bob.storage()
            .update_user_metadata("", vec![MetadataItem::new("mood", i.to_string())], Default::default())
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                match arx.recv().await {
                    Some(Event::Storage(s)) if s.event_type == StorageEventType::UPDATE => return,
                    Some(_) => {}
                    None => std::future::pending::<()>().await,
                }
            }
        })
        .await;
        if got.is_err() {
            quiet_rounds += 1;
            if quiet_rounds == 3 {
                break;
            }
        } else {
            assert_eq!(quiet_rounds, 0, "an update arrived after one did not");
        }
    }
    assert_eq!(quiet_rounds, 3, "bob's updates kept reaching alice: the late subscription was not withdrawn");
    let e = alice.storage().unsubscribe_user_metadata("bob").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::STORAGE_NOT_SUBSCRIBE);
}
