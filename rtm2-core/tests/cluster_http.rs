//! The HTTP side of a cluster: every node answers for the whole cluster (docs/OPERATIONS.md) —
//! who is online on which node, presence, metadata, messages to users and subscribers on other
//! nodes, and kicking a user connected elsewhere. `scripts/test-cluster` runs these.

mod common;

use common::cluster::*;
use common::http::*;
use common::*;
use rtm2_core::*;
use rtm2_server::HttpConfig;
use serde_json::json;

fn http_of(node: &Node) -> std::net::SocketAddr {
    node.server
        .listen_http("127.0.0.1:0", HttpConfig { credentials: vec![(KEY.into(), SECRET.into())], ..Default::default() })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn every_node_answers_for_the_whole_cluster() {
    let nats = start_nats().await;
    let (a, b) = (node(&nats.url, "http-a").await, node(&nats.url, "http-b").await);
    let (http_a, http_b) = (http_of(&a), http_of(&b));
    let alice = logged_in(&a, "alice").await;
    let mut alice_rx = alice.events();
    alice.subscribe("lobby", SubscribeOptions { with_metadata: true, ..Default::default() }).await.unwrap();
    alice.presence().set_state("lobby", ChannelType::MESSAGE, [("role", "host")]).await.unwrap();

    for http in [http_a, http_b] {
        let r = request(http, "GET", "/readyz", &[], None).await;
        assert_eq!((r.status, r.json()["ready"].clone()), (200, json!(true)));
    }
    // Node b knows alice is online on node a, and where she is present.
    let users = op(http_b, "GET", &format!("/v1/apps/{APP_ID}/users"), None).await.json();
    assert_eq!(users["users"], json!([{"user_id": "alice", "node_id": a.server.node_id()}]), "{users}");
    let where_ = op(http_b, "GET", &format!("/v1/apps/{APP_ID}/users/alice"), None).await.json();
    assert_eq!((where_["online"].clone(), where_["node_id"].clone()), (json!(true), json!(a.server.node_id())));
    assert_eq!(where_["channels"], json!([{"channel_name": "lobby", "channel_type": "MESSAGE"}]));
    let present =
        op(http_b, "GET", &format!("/v1/apps/{APP_ID}/channels/MESSAGE/lobby/users?states=true"), None).await.json();
    assert_eq!(present["users"], json!([{"user_id": "alice", "states": {"role": "host"}}]), "{present}");

    // Messages sent through node b reach alice on node a.
    let p2p = format!("/dev/v2/project/{APP_ID}/rtm/users/backend/peer_messages?wait_for_ack=true");
    let r = op(http_b, "POST", &p2p, Some(json!({"destination": "alice", "payload": "direct"}))).await;
    assert_eq!(r.json()["code"], json!("message_delivered"), "{}", r.body);
    let m = expect_message(&mut alice_rx, |m| m.channel_type == ChannelType::USER).await;
    assert_eq!((m.publisher.as_str(), m.text()), ("backend", Some("direct")));
    let ch = format!("/dev/v2/project/{APP_ID}/rtm/users/backend/channel_messages");
    let r = op(http_b, "POST", &ch, Some(json!({"channel_name": "lobby", "payload": "to all"}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let m = expect_message(&mut alice_rx, |m| m.channel == "lobby").await;
    assert_eq!(m.text(), Some("to all"));

    // Metadata written through node b: alice hears it, node a reads it.
    let md = format!("/v1/apps/{APP_ID}/metadata/channel/MESSAGE/lobby");
    let r = op(http_b, "PUT", &md, Some(json!({"items": [{"key": "k", "value": "v"}]}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    expect_event(&mut alice_rx, "the metadata update", |e| matches!(e, Event::Storage(s) if s.data.get("k").is_some()))
        .await;
    let read = op(http_a, "GET", &md, None).await.json();
    assert_eq!(read["items"][0]["value"], json!("v"), "{read}");

    // Kicked through node b: alice's session on node a ends.
    let r = op(http_b, "POST", &format!("/v1/apps/{APP_ID}/users/alice/kick"), Some(json!({"reason": "cluster kick"})))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = expect_event(
        &mut alice_rx,
        "kicked",
        |e| matches!(e, Event::LinkState(l) if l.reason == LinkStateChangeReason::KICKED_OUT_BY_SERVER),
    )
    .await;
    let Event::LinkState(ev) = ev else { unreachable!() };
    assert!(ev.reason_text.contains("cluster kick"), "{}", ev.reason_text);
    // Every node sees her gone (bounded).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let online = op(http_b, "GET", &format!("/v1/apps/{APP_ID}/users/alice"), None).await.json()["online"].clone();
        if online == json!(false) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "alice still online after the kick");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
