//! Presence and stream channels across the nodes of a cluster (docs/CLUSTER.md): whoNow,
//! whereNow, getState, snapshots and events list the users of every node; the users of a node
//! that dies time out after their presence timeout, once; stream-channel topics and their
//! messages cross nodes. Run by `scripts/test-cluster` (needs nats-server).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::cluster::*;
use common::*;
use rtm2_core::*;

fn presence(ev: &Event, t: PresenceEventType, publisher: &str) -> bool {
    matches!(ev, Event::Presence(p) if p.event_type == t && p.publisher == publisher)
}

fn topic_event(ev: &Event, t: TopicEventType) -> Option<Arc<TopicEvent>> {
    match ev {
        Event::Topic(e) if e.event_type == t => Some(e.clone()),
        _ => None,
    }
}

async fn who(c: &Client, channel: &str, channel_type: ChannelType) -> Vec<(String, Vec<(String, String)>)> {
    let opts = GetOnlineUsersOptions { include_user_id: true, include_state: true, page: String::new() };
    let r = c.presence().get_online_users(channel, channel_type, opts).await.unwrap().into_inner();
    assert_eq!(r.total_occupancy as usize, r.occupants.len(), "{r:?}");
    r.occupants
        .into_iter()
        .map(|o| {
            let mut s: Vec<(String, String)> = o.states.into_iter().collect();
            s.sort();
            (o.user_id, s)
        })
        .collect()
}

/// Polls `who` until it gives `want` (notes reach other nodes asynchronously), bounded.
async fn who_until(c: &Client, channel: &str, channel_type: ChannelType, want: &[(&str, &[(&str, &str)])]) {
    let want: Vec<(String, Vec<(String, String)>)> = want
        .iter()
        .map(|(u, s)| (u.to_string(), s.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = who(c, channel, channel_type).await;
        if got == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "whoNow({channel}) is {got:?}, not {want:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn presence_lists_and_tells_the_users_of_every_node() {
    let (_nats, nodes) = cluster().await;
    let alice = client_of(&nodes[0], "alice");
    let mut a_events = alice.events();
    alice.login("").await.unwrap();
    let bob = logged_in(&nodes[1], "bob").await;
    let carol = client_of(&nodes[2], "carol");
    let mut c_events = carol.events();
    carol.login("").await.unwrap();

    alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    bob.presence().set_state("room", ChannelType::MESSAGE, [("seat", "2")]).await.unwrap();
    bob.subscribe("room", SubscribeOptions::default()).await.unwrap();
    // Alice (node A) hears of bob (node B), with his state.
    expect_event(&mut a_events, "bob joins", |e| presence(e, PresenceEventType::REMOTE_JOIN, "bob")).await;
    let ev =
        expect_event(&mut a_events, "bob's state", |e| presence(e, PresenceEventType::REMOTE_STATE_CHANGED, "bob"))
            .await;
    let Event::Presence(p) = ev else { unreachable!() };
    assert_eq!(p.states.get("seat").map(String::as_str), Some("2"));
    // Carol (node C) subscribes later: her snapshot lists both, with bob's state.
    carol.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let ev = expect_event(
        &mut c_events,
        "the snapshot",
        |e| matches!(e, Event::Presence(p) if p.event_type == PresenceEventType::SNAPSHOT),
    )
    .await;
    let Event::Presence(p) = ev else { unreachable!() };
    let mut listed: Vec<&str> = p.snapshot.iter().map(|u| u.user_id.as_str()).collect();
    listed.sort();
    assert_eq!(listed, ["alice", "bob", "carol"], "{p:?}");
    let bobs = p.snapshot.iter().find(|u| u.user_id == "bob").unwrap();
    assert_eq!(bobs.states.get("seat").map(String::as_str), Some("2"));

    // whoNow from every node lists every user once, with states.
    let everyone: &[(&str, &[(&str, &str)])] = &[("alice", &[]), ("bob", &[("seat", "2")]), ("carol", &[])];
    for c in [&alice, &bob, &carol] {
        who_until(c, "room", ChannelType::MESSAGE, everyone).await;
    }
    // getState and whereNow of a user of another node.
    let s = alice.presence().get_state("room", ChannelType::MESSAGE, "bob").await.unwrap();
    assert_eq!(s.states.get("seat").map(String::as_str), Some("2"));
    let where_bob = carol.presence().where_now("bob").await.unwrap();
    assert_eq!(*where_bob, vec![ChannelInfo { channel: "room".into(), channel_type: ChannelType::MESSAGE }]);

    // A state change on node C reaches node A.
    carol.presence().set_state("room", ChannelType::MESSAGE, [("mood", "busy")]).await.unwrap();
    let ev =
        expect_event(&mut a_events, "carol's state", |e| presence(e, PresenceEventType::REMOTE_STATE_CHANGED, "carol"))
            .await;
    let Event::Presence(p) = ev else { unreachable!() };
    assert_eq!(p.states.get("mood").map(String::as_str), Some("busy"));
    // A leave on node B reaches nodes A and C, and whoNow drops bob everywhere.
    bob.unsubscribe("room").await.unwrap();
    expect_event(&mut a_events, "bob leaves", |e| presence(e, PresenceEventType::REMOTE_LEAVE, "bob")).await;
    expect_event(&mut c_events, "bob leaves", |e| presence(e, PresenceEventType::REMOTE_LEAVE, "bob")).await;
    let rest: &[(&str, &[(&str, &str)])] = &[("alice", &[]), ("carol", &[("mood", "busy")])];
    who_until(&alice, "room", ChannelType::MESSAGE, rest).await;
    who_until(&bob, "room", ChannelType::MESSAGE, rest).await;
    assert!(alice.presence().where_now("bob").await.unwrap().is_empty());
    // A user that logs out leaves (not times out) everywhere.
    carol.logout().await.unwrap();
    expect_event(&mut a_events, "carol leaves", |e| presence(e, PresenceEventType::REMOTE_LEAVE, "carol")).await;
    who_until(&bob, "room", ChannelType::MESSAGE, &[("alice", &[])]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn a_node_that_joins_later_sees_who_is_present() {
    let nats = start_nats().await;
    let a = node(&nats.url, "early").await;
    let bob = logged_in(&a, "bob").await;
    bob.presence().set_state("hall", ChannelType::MESSAGE, [("k", "v")]).await.unwrap();
    bob.subscribe("hall", SubscribeOptions::default()).await.unwrap();
    let late = node(&nats.url, "late").await;
    let carol = logged_in(&late, "carol").await;
    who_until(&carol, "hall", ChannelType::MESSAGE, &[("bob", &[("k", "v")])]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn the_users_of_a_dead_node_time_out_once_after_their_presence_timeout() {
    let (nats, nodes) = cluster().await;
    let mut doomed = serve_process(&nats.url, "doomed");
    let mut cfg = ClientConfig::new(APP_ID, "dora").endpoint(Endpoint::Tcp(doomed.addr.clone()));
    fast(&mut cfg);
    cfg.presence_timeout_s = 10;
    let dora = Client::new(cfg).unwrap();
    login_when_joined(&dora).await;
    dora.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let watcher = client_of(&nodes[0], "watcher");
    let mut w_events = watcher.events();
    watcher.login("").await.unwrap();
    watcher.subscribe("room", SubscribeOptions::default()).await.unwrap();
    who_until(&watcher, "room", ChannelType::MESSAGE, &[("dora", &[]), ("watcher", &[])]).await;
    expect_event(
        &mut w_events,
        "the snapshot",
        |e| matches!(e, Event::Presence(p) if p.event_type == PresenceEventType::SNAPSHOT),
    )
    .await;
    doomed.kill();
    let killed = tokio::time::Instant::now();
    // Nothing is said before the timeout (no flapping); then one REMOTE_TIMEOUT.
    let deadline = killed + Duration::from_secs(25);
    let mut events = Vec::new();
    loop {
        let ev = tokio::time::timeout_at(deadline, w_events.recv()).await.expect("no timeout of dora within 25 s");
        let Some(ev) = ev else { panic!("events ended") };
        if let Event::Presence(p) = &ev {
            events.push((p.event_type, p.publisher.clone(), killed.elapsed()));
            if p.event_type == PresenceEventType::REMOTE_TIMEOUT {
                break;
            }
        }
    }
    let took = killed.elapsed();
    assert_eq!(events.len(), 1, "presence events after the kill: {events:?}");
    assert_eq!(events[0].1, "dora");
    assert!(took >= Duration::from_secs(8), "dora timed out {took:?} after the kill, before her 10 s presence timeout");
    who_until(&watcher, "room", ChannelType::MESSAGE, &[("watcher", &[])]).await;
    // And nothing more comes (no flapping back).
    let quiet = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(ev)) = tokio::time::timeout_at(quiet, w_events.recv()).await {
        assert!(!matches!(ev, Event::Presence(_)), "a presence event after the timeout: {ev:?}");
    }
    drop(dora);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn stream_channel_topics_and_their_messages_cross_nodes() {
    let (_nats, nodes) = cluster().await;
    let alice = client_of(&nodes[0], "alice");
    let mut a_events = alice.events();
    alice.login("").await.unwrap();
    let bob = client_of(&nodes[1], "bob");
    let mut b_events = bob.events();
    bob.login("").await.unwrap();
    let carol = client_of(&nodes[2], "carol");
    let mut c_events = carol.events();
    carol.login("").await.unwrap();

    let a_stage = alice.stream_channel("stage").unwrap();
    a_stage.join(JoinOptions::default()).await.unwrap();
    a_stage.join_topic("slides", JoinTopicOptions { meta: "presenter".into(), ..Default::default() }).await.unwrap();
    // Bob joins on node B: his join result lists alice's topic (node A).
    let b_stage = bob.stream_channel("stage").unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let joined = loop {
        let joined = b_stage.join(JoinOptions::default()).await.unwrap();
        if !joined.topics.is_empty() || tokio::time::Instant::now() > deadline {
            break joined;
        }
        // (alice's note may still be on its way: join again.)
        b_stage.leave().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(joined.topics.len(), 1, "{joined:?}");
    assert_eq!(joined.topics[0].publishers, vec![PublisherInfo { user_id: "alice".into(), meta: "presenter".into() }]);
    // Carol joins on node C and publishes in a topic: alice and bob get REMOTE_JOIN.
    let c_stage = carol.stream_channel("stage").unwrap();
    c_stage.join(JoinOptions::default()).await.unwrap();
    c_stage.join_topic("chat", JoinTopicOptions { meta: "m-c".into(), ..Default::default() }).await.unwrap();
    for rx in [&mut a_events, &mut b_events] {
        let ev = expect_event(rx, "carol's topic", |e| {
            topic_event(e, TopicEventType::REMOTE_JOIN).is_some_and(|t| t.publisher == "carol")
        })
        .await;
        let Event::Topic(t) = ev else { unreachable!() };
        assert_eq!((t.topics[0].topic.as_str(), t.topics[0].publishers[0].meta.as_str()), ("chat", "m-c"));
    }
    // Subscribing with an empty list takes the publishers of every node.
    let r = b_stage.subscribe_topic("slides", &[]).await.unwrap();
    assert_eq!(r.succeeded, vec!["alice".to_string()]);
    a_stage.subscribe_topic("chat", &["carol"]).await.unwrap();
    // Messages cross nodes, in each publisher's order, only to who picked the publisher.
    for i in 0..300 {
        a_stage.publish_topic("slides", format!("s{i}"), TopicMessageOptions::default()).await.unwrap();
    }
    c_stage.publish_topic("chat", "hi alice", TopicMessageOptions::default()).await.unwrap();
    for i in 0..300 {
        let m = expect_message(&mut b_events, |m| m.channel_type == ChannelType::STREAM).await;
        assert_eq!((m.topic.as_str(), m.publisher.as_str()), ("slides", "alice"));
        assert_eq!(m.text(), Some(format!("s{i}").as_str()));
    }
    let m = expect_message(&mut a_events, |m| m.channel_type == ChannelType::STREAM).await;
    assert_eq!((m.topic.as_str(), m.publisher.as_str(), m.text()), ("chat", "carol", Some("hi alice")));
    // Carol did not subscribe to slides: nothing of alice's reached her.
    let quiet = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Ok(Some(ev)) = tokio::time::timeout_at(quiet, c_events.recv()).await {
        assert!(!matches!(&ev, Event::Message(m) if m.topic == "slides"), "carol got {ev:?}");
    }
    // Leaving a topic, and the channel, on node A reaches node B.
    a_stage.leave_topic("slides").await.unwrap();
    expect_event(&mut b_events, "alice leaves slides", |e| {
        topic_event(e, TopicEventType::REMOTE_LEAVE)
            .is_some_and(|t| t.publisher == "alice" && t.topics[0].topic == "slides")
    })
    .await;
    // Presence in the stream channel lists the users of every node.
    who_until(&carol, "stage", ChannelType::STREAM, &[("alice", &[]), ("bob", &[]), ("carol", &[])]).await;
    c_stage.leave().await.unwrap();
    expect_event(&mut b_events, "carol leaves chat", |e| {
        topic_event(e, TopicEventType::REMOTE_LEAVE).is_some_and(|t| t.publisher == "carol")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn when_a_call_returns_every_node_sees_its_effect() {
    let (_nats, nodes) = cluster().await;
    let watcher_b = logged_in(&nodes[1], "watcher-b").await;
    let watcher_c = logged_in(&nodes[2], "watcher-c").await;
    let opts = PublishOptions { channel_type: ChannelType::USER, ..Default::default() };
    for i in 0..20 {
        // A login on node A: a peer-to-peer message from node B reaches the user at once.
        let user = format!("u{i}");
        let c = logged_in(&nodes[0], &user).await;
        watcher_b.publish(&user, "hi", opts.clone()).await.unwrap_or_else(|e| panic!("round {i}: {e}"));
        // A subscribe, a state change, an unsubscribe on node A: whoNow and getState on nodes
        // B and C see each at once (no polling).
        let ch = format!("room{i}");
        c.subscribe(&ch, SubscribeOptions::default()).await.unwrap();
        for w in [&watcher_b, &watcher_c] {
            let r = w.presence().who_now(&ch, ChannelType::MESSAGE, Default::default()).await.unwrap();
            let users: Vec<&str> = r.occupants.iter().map(|o| o.user_id.as_str()).collect();
            assert_eq!(users, [user.as_str()], "round {i}");
        }
        c.presence().set_state(&ch, ChannelType::MESSAGE, [("n", i.to_string())]).await.unwrap();
        let s = watcher_c.presence().get_state(&ch, ChannelType::MESSAGE, &user).await.unwrap();
        assert_eq!(s.states.get("n"), Some(&i.to_string()), "round {i}");
        c.unsubscribe(&ch).await.unwrap();
        let r = watcher_b.presence().who_now(&ch, ChannelType::MESSAGE, Default::default()).await.unwrap();
        assert_eq!(r.total_occupancy, 0, "round {i}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn a_nats_restart_heals_without_restarting_nodes() {
    let mut nats = start_nats().await;
    let a = node(&nats.url, "a").await;
    let b = node(&nats.url, "b").await;
    let alice = client_of(&a, "alice");
    let mut a_events = alice.events();
    alice.login("").await.unwrap();
    alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let bob = logged_in(&b, "bob").await;
    bob.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let dan = logged_in(&b, "dan").await;
    who_until(&alice, "room", ChannelType::MESSAGE, &[("alice", &[]), ("bob", &[])]).await;

    nats.kill();
    // Without NATS a node refuses new logins, with the reason.
    let deadline = tokio::time::Instant::now() + WAIT;
    while a.server.cluster_ready() {
        assert!(tokio::time::Instant::now() < deadline, "node a did not notice that NATS is gone");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let carol = client_of(&a, "carol");
    let e = carol.login("").await.unwrap_err();
    assert_eq!(e.code, rtm2_proto::ErrorCode::LOGIN_NO_SERVER_RESOURCES, "{e}");
    // What happens meanwhile on node b (its local effect is immediate; node a hears nothing).
    bob.presence().set_state("room", ChannelType::MESSAGE, [("during", "outage")]).await.unwrap();
    dan.subscribe("room", SubscribeOptions::default()).await.unwrap();
    // Longer than a node's timeout: each node takes the other as gone.
    tokio::time::sleep(Duration::from_secs(7)).await;

    nats.start_again().await;
    // The nodes reconnect by themselves and sync: node a sees bob's state and dan.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = who(&alice, "room", ChannelType::MESSAGE).await;
        let want = vec![
            ("alice".to_string(), vec![]),
            ("bob".to_string(), vec![("during".to_string(), "outage".to_string())]),
            ("dan".to_string(), vec![]),
        ];
        if got == want {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "after the NATS restart whoNow on node a is {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Logins are served again; messages and peer-to-peer messages cross again (the directory
    // of who is online where heals within a moment, by a sync with the node).
    carol.login("").await.unwrap();
    let opts = PublishOptions { channel_type: ChannelType::USER, ..Default::default() };
    let deadline = tokio::time::Instant::now() + WAIT;
    while let Err(e) = carol.publish("dan", "hello dan", opts.clone()).await {
        assert!(tokio::time::Instant::now() < deadline, "dan is still offline for node a: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bob.publish("room", "after the restart", PublishOptions::default()).await.unwrap();
    // Every presence event alice got since the start, up to bob's message.
    let mut seen = Vec::new();
    loop {
        let ev = tokio::time::timeout(WAIT, a_events.recv()).await.expect("bob's message").expect("events ended");
        match ev {
            Event::Presence(p) => seen.push((p.event_type, p.publisher.clone())),
            Event::Message(m) if m.channel == "room" => {
                assert_eq!((m.publisher.as_str(), m.text()), ("bob", Some("after the restart")));
                break;
            }
            _ => {}
        }
    }
    // Nothing flapped: bob never left nor timed out in alice's eyes; dan joined, bob's state
    // changed.
    let about = |who: &str| seen.iter().filter(|(_, p)| p == who).map(|(t, _)| *t).collect::<Vec<_>>();
    assert_eq!(about("bob"), [PresenceEventType::REMOTE_JOIN, PresenceEventType::REMOTE_STATE_CHANGED], "{seen:?}");
    assert_eq!(about("dan"), [PresenceEventType::REMOTE_JOIN], "{seen:?}");
    drop(b);
    drop(a);
}
