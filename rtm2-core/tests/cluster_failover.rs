//! Client failover in a cluster (docs/CLUSTER.md, "Client failover"): a client given every
//! node's endpoint is on node A when A dies during traffic; it logs in on another node,
//! restores its subscription and keeps receiving, and every message it missed lies in the
//! window that the may-have-missed notice (the reconnection's CONNECTED event) announced.
//! Run by `scripts/test-cluster` (ignored by a plain `cargo test`: it needs a nats-server).

mod common;

use std::time::Duration;

use common::cluster::*;
use common::*;
use rtm2_core::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn a_client_whose_node_dies_fails_over_and_misses_only_what_it_was_told() {
    let (_nats, nodes) = cluster().await;
    let list: Vec<Endpoint> = nodes.iter().map(|n| Endpoint::Tcp(n.addr.to_string())).collect();
    let mut cfg = ClientConfig::new(APP_ID, "watcher").endpoints(list);
    fast(&mut cfg);
    let watcher = Client::new(cfg).unwrap();
    watcher.login("").await.unwrap();
    let (_, node_a) = watcher.connected_to().unwrap();
    assert_eq!(node_a, nodes[0].server.node_id(), "on the first endpoint");
    let mut events = watcher.events();
    let _room = watcher.subscribe("room", SubscribeOptions::default()).await.unwrap();

    // A publisher on node B, about one message a millisecond.
    const TOTAL: u32 = 3000;
    let publisher = logged_in(&nodes[1], "publisher").await;
    let pubs = tokio::spawn(async move {
        for i in 0..TOTAL {
            publisher.publish("room", format!("{i}"), PublishOptions::default()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        publisher
    });

    // Events in order until the last message; node A dies after the first 500.
    let mut received: Vec<u32> = Vec::new();
    let mut notice_at: Option<usize> = None; // messages received before the notice
    let mut killed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while received.last() != Some(&(TOTAL - 1)) {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out; received {} messages, notice {notice_at:?}", received.len()))
            .expect("events ended");
        match ev {
            Event::Message(m) if m.channel == "room" => {
                received.push(m.text().unwrap().parse().unwrap());
                if !killed && received.len() == 500 {
                    nodes[0].server.shutdown();
                    killed = true;
                }
            }
            Event::LinkState(l) if l.current == LinkState::CONNECTED && killed => {
                assert!(notice_at.is_none(), "one reconnection");
                assert!(!l.is_resumed);
                assert!(l.affected_channels.contains(&"room".to_string()), "{l:?}");
                assert!(l.unrestored_channels.is_empty(), "{l:?}");
                notice_at = Some(received.len());
            }
            _ => {}
        }
    }
    pubs.await.unwrap();
    let notice_at = notice_at.expect("the may-have-missed notice came");
    let (_, node_now) = watcher.connected_to().unwrap();
    assert!(node_now != node_a && !node_now.is_empty(), "on another node: {node_now}");

    // The announced window: after the last message before the notice, before the first after.
    let before = received[..notice_at].last().copied();
    let after = received.get(notice_at).copied().expect("messages after the notice");
    let in_window = |k: u32| before.is_none_or(|b| k > b) && k < after;
    let mut seen = vec![false; TOTAL as usize];
    for w in received.windows(2) {
        assert!(w[0] < w[1], "publish order, no duplicate: {} then {}", w[0], w[1]);
    }
    for &k in &received {
        seen[k as usize] = true;
    }
    let lost: Vec<u32> = (0..TOTAL).filter(|k| !seen[*k as usize]).collect();
    let inside = lost.iter().filter(|k| in_window(**k)).count();
    let outside = lost.len() - inside;
    eprintln!(
        "failover from {node_a} to {node_now}: {} of {TOTAL} received; lost {inside} inside the announced window \
         ({before:?}, {after}), {outside} outside",
        received.len()
    );
    assert_eq!(outside, 0, "messages lost outside the announced window: {lost:?}");
}

/// After a failover, the user is present on its new node with its state, and stays present
/// when the dead node's users time out (the presence replica of the dead node must not take it
/// away): whoNow from a third node lists it, also after the dead node's presence timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn a_failed_over_user_stays_present_with_its_state() {
    let (_nats, nodes) = cluster().await;
    let list: Vec<Endpoint> = nodes.iter().map(|n| Endpoint::Tcp(n.addr.to_string())).collect();
    let mut cfg = ClientConfig::new(APP_ID, "mover").endpoints(list);
    fast(&mut cfg);
    cfg.presence_timeout_s = 5;
    let mover = Client::new(cfg).unwrap();
    mover.login("").await.unwrap();
    mover.presence().set_state("hall", ChannelType::MESSAGE, [("seat", "7")]).await.unwrap();
    let _hall = mover.subscribe("hall", SubscribeOptions::default()).await.unwrap();
    let mut events = mover.events();
    let observer = logged_in(&nodes[2], "observer").await;

    nodes[0].server.shutdown();
    expect_event(
        &mut events,
        "CONNECTED elsewhere",
        |e| matches!(e, Event::LinkState(l) if l.current == LinkState::CONNECTED && !l.is_resumed),
    )
    .await;
    let who = || async {
        let opts = GetOnlineUsersOptions { include_user_id: true, include_state: true, page: String::new() };
        observer.presence().who_now("hall", ChannelType::MESSAGE, opts).await.unwrap().into_inner()
    };
    let present = |o: &OnlineUsers| {
        o.occupants.iter().any(|u| u.user_id == "mover" && u.states.get("seat").map(String::as_str) == Some("7"))
    };
    assert!(present(&who().await), "present on its new node with its state: {:?}", who().await);
    // The dead node is taken as gone after 5 s, and its users time out 5 s (their presence
    // timeout) after it was last heard of.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let o = who().await;
    assert!(present(&o), "still present after the dead node's users timed out: {o:?}");
}
