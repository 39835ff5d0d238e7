//! Resume without loss: within the resume window a reconnecting client gets exactly what it
//! missed (no gap, no duplicate, publisher order kept); beyond it, it is told first.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use rtm2_core::*;
use rtm2_server::{Server, ServerConfig};

async fn server_behind_proxy(config: ServerConfig) -> (Server, Proxy) {
    let server = Server::start(config);
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    (server, Proxy::start(addr).await)
}

fn client_via(proxy: &Proxy, user: &str) -> Client {
    let mut cfg = ClientConfig::new(APP_ID, user).endpoint(Endpoint::Tcp(proxy.addr.to_string()));
    fast(&mut cfg);
    cfg.reconnect_max_backoff = Duration::from_millis(100);
    Client::new(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_resumes_with_exactly_the_missed_messages() {
    let (_server, proxy) = server_behind_proxy(dev_config()).await;
    let alice = client_via(&proxy, "alice");
    let bob = client_via(&proxy, "bob");
    alice.login("").await.unwrap();
    bob.login("").await.unwrap();
    let mut room = alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let mut events = alice.events();
    bob.publish("room", "before", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut room).await.text(), Some("before"));

    // Cut every connection (both clients') while bob keeps publishing.
    proxy.refuse(true);
    proxy.cut_all();
    expect_event(&mut events, "DISCONNECTED", |e| is_link(e, LinkState::DISCONNECTED)).await;
    let during: Vec<_> =
        (0..50).map(|i| bob.publish("room", format!("during {i}"), PublishOptions::default())).collect();
    proxy.refuse(false);
    let ev = expect_event(&mut events, "CONNECTED", |e| is_link(e, LinkState::CONNECTED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert!(l.is_resumed, "{l:?}");
    for op in during {
        op.await.unwrap();
    }
    for i in 0..50 {
        assert_eq!(next_message(&mut room).await.text(), Some(format!("during {i}").as_str()));
    }
    bob.publish("room", "after", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut room).await.text(), Some("after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_resets_lose_and_duplicate_nothing() {
    let (_server, proxy) = server_behind_proxy(dev_config()).await;
    let publisher = client_via(&proxy, "publisher");
    publisher.login("").await.unwrap();
    let mut subs = Vec::new();
    for i in 0..3 {
        let c = client_via(&proxy, &format!("sub{i}"));
        c.login("").await.unwrap();
        let s = c.subscribe("chaos", SubscribeOptions::default()).await.unwrap();
        let ev = c.events();
        subs.push((c, s, ev));
    }
    const N: usize = 3000;
    // Publish steadily (about 1,000 msg/s) while the proxy resets every connection every
    // 700 ms; then check every subscriber got 0..N exactly once, in order.
    let chaos = async {
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            proxy.cut_all();
        }
    };
    let publish = async {
        let mut ops = Vec::new();
        for i in 0..N {
            ops.push(publisher.publish("chaos", format!("{i}"), PublishOptions::default()));
            if i % 10 == 9 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let mut failed = 0;
        for op in ops {
            if op.await.is_err() {
                failed += 1;
            }
        }
        failed
    };
    let (_, failed) = tokio::join!(chaos, publish);
    assert_eq!(failed, 0, "publishes failed across resumes");
    for (c, mut s, mut ev) in subs {
        let mut seen: HashMap<usize, usize> = HashMap::new();
        let mut next = 0usize;
        while next < N {
            let m = tokio::time::timeout(Duration::from_secs(20), s.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: only {next} of {N} messages", c.user_id()))
                .unwrap()
                .unwrap();
            let i: usize = m.text().unwrap().parse().unwrap();
            *seen.entry(i).or_default() += 1;
            assert_eq!(i, next, "{}: out of order or missing", c.user_id());
            next += 1;
        }
        assert!(seen.values().all(|&n| n == 1));
        let drops = ev.try_recv_batch(usize::MAX).iter().filter(|e| is_link(e, LinkState::DISCONNECTED)).count();
        assert!(drops >= 3, "{}: only {drops} connection drops: the chaos did not happen", c.user_id());
        eprintln!("{}: {drops} connection resets; sent {N}, received {}, duplicated 0", c.user_id(), seen.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_window_the_client_is_told_before_anything_newer() {
    let config = ServerConfig { resume_window: Duration::from_millis(100), ..dev_config() };
    let (server, proxy) = server_behind_proxy(config).await;
    let alice = client_via(&proxy, "alice");
    alice.login("").await.unwrap();
    let mut events = alice.events();
    let mut room = alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    // Bob publishes directly (not through the proxy).
    let bob = client_on(&server, "bob");
    bob.login("").await.unwrap();

    away_beyond_the_window(&proxy, &mut events).await;
    // Missed for good: published after the drop, while the session expires.
    bob.publish("room", "missed", PublishOptions::default()).await.unwrap();
    until_her_session_ended(&server).await;
    proxy.refuse(false);
    // Keep publishing: whatever arrives after the reconnect must come after the notice.
    let publishing = async {
        for i in 0..100 {
            let _ = bob.publish("room", format!("new {i}"), PublishOptions::default()).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let watching = async {
        loop {
            let ev = tokio::time::timeout(WAIT, events.recv()).await.unwrap().unwrap();
            match ev {
                Event::Message(m) => panic!("message {:?} arrived before the not-resumed notice", m.text()),
                Event::LinkState(l) if l.current == LinkState::CONNECTED => {
                    assert!(!l.is_resumed);
                    assert_eq!(l.affected_channels, vec!["room".to_string()]);
                    return;
                }
                _ => {}
            }
        }
    };
    tokio::join!(publishing, watching);
    // The subscription was restored; "missed" is not replayed.
    let m = next_message(&mut room).await;
    assert!(m.text().unwrap().starts_with("new "), "{:?}", m.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_made_while_disconnected_are_bounded() {
    let (_server, proxy) = server_behind_proxy(dev_config()).await;
    let mut cfg = ClientConfig::new(APP_ID, "alice").endpoint(Endpoint::Tcp(proxy.addr.to_string()));
    fast(&mut cfg);
    cfg.set_parameters(r#"{"max_queued_requests": 5}"#).unwrap();
    let alice = Client::new(cfg).unwrap();
    let mut events = alice.events();
    alice.login("").await.unwrap();
    proxy.refuse(true);
    proxy.cut_all();
    expect_event(&mut events, "DISCONNECTED", |e| is_link(e, LinkState::DISCONNECTED)).await;
    let waiting: Vec<_> = (0..5).map(|i| alice.publish("room", format!("{i}"), PublishOptions::default())).collect();
    // The sixth does not wait: it fails at once, and says why.
    let e = alice.publish("room", "6", PublishOptions::default()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NOT_CONNECTED);
    assert!(e.reason.contains("limit is 5"), "{}", e.reason);
    proxy.refuse(false);
    for op in waiting {
        op.await.unwrap();
    }
}

fn stored() -> PublishOptions {
    PublishOptions { store_in_history: true, ..PublishOptions::default() }
}

/// Alice (through the proxy) is cut off and kept away (see `until_her_session_ended`).
async fn away_beyond_the_window(proxy: &Proxy, events: &mut EventReceiver) {
    proxy.refuse(true);
    proxy.cut_all();
    expect_event(events, "DISCONNECTED", |e| is_link(e, LinkState::DISCONNECTED)).await;
}

/// Returns once alice's session has ended on the server (only bob's is left).
async fn until_her_session_ended(server: &Server) {
    let deadline = std::time::Instant::now() + WAIT;
    while server.session_count() != 1 {
        assert!(std::time::Instant::now() < deadline, "alice's session was not ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_window_stored_messages_are_recovered_in_order_before_anything_newer() {
    let config = ServerConfig { resume_window: Duration::from_millis(100), ..dev_config() };
    let (server, proxy) = server_behind_proxy(config).await;
    let alice = client_via(&proxy, "alice");
    alice.login("").await.unwrap();
    let mut events = alice.events();
    let mut room = alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let bob = client_on(&server, "bob");
    bob.login("").await.unwrap();
    bob.publish("room", "before", stored()).await.unwrap();
    assert_eq!(next_message(&mut room).await.text(), Some("before"));

    away_beyond_the_window(&proxy, &mut events).await;
    // Published while she is away (during the window and after it): all stored.
    for i in 0..30 {
        bob.publish("room", format!("missed {i}"), stored()).await.unwrap();
    }
    until_her_session_ended(&server).await;
    for i in 30..60 {
        bob.publish("room", format!("missed {i}"), stored()).await.unwrap();
    }
    // To her user channel while she is offline: stored, answered 11035.
    for i in 0..5 {
        let e = bob
            .publish("alice", format!("peer {i}"), PublishOptions { store_in_history: true, ..PublishOptions::user() })
            .await;
        assert_eq!(e.unwrap_err().code, ErrorCode::CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED);
    }
    proxy.refuse(false);
    // Bob keeps publishing (stored) while she reconnects and recovers: each message must come
    // once — recovered or live — and in order.
    let publishing = async {
        for i in 0..100 {
            bob.publish("room", format!("new {i}"), stored()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    let watching = async {
        let mut connected = None;
        let mut room_texts = Vec::new();
        let mut peer_texts = Vec::new();
        while room_texts.last().map(String::as_str) != Some("new 99") {
            let ev = tokio::time::timeout(WAIT, events.recv()).await.expect("events stopped").unwrap();
            match ev {
                Event::Message(m) => {
                    let l: &LinkStateEvent = connected.as_ref().expect("a message came before the CONNECTED event");
                    assert!(!l.is_resumed);
                    let text = m.text().unwrap().to_string();
                    let expect_recovered = text.starts_with("missed") || text.starts_with("peer");
                    if expect_recovered {
                        assert!(m.recovered, "{text} should be marked recovered");
                    }
                    if m.channel_type == ChannelType::USER {
                        peer_texts.push(text);
                    } else {
                        room_texts.push(text);
                    }
                }
                Event::LinkState(l) if l.current == LinkState::CONNECTED => connected = Some((*l).clone()),
                _ => {}
            }
        }
        (connected.unwrap(), room_texts, peer_texts)
    };
    let (_, (connected, room_texts, peer_texts)) = tokio::join!(publishing, watching);
    // Everything missed was stored: nothing is announced as possibly missed.
    assert!(connected.affected_channels.is_empty(), "{connected:?}");
    let expected: Vec<String> =
        (0..60).map(|i| format!("missed {i}")).chain((0..100).map(|i| format!("new {i}"))).collect();
    assert_eq!(room_texts, expected, "in order, each once");
    assert_eq!(peer_texts, (0..5).map(|i| format!("peer {i}")).collect::<Vec<_>>());
    // The subscription's stream got them too, in the same order. (A "new" one may have been
    // recovered too: stored before the recovery was read.)
    for want in &expected {
        let m = next_message(&mut room).await;
        assert_eq!(m.text(), Some(want.as_str()));
        assert!(m.recovered || !want.starts_with("missed"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_not_stored_is_announced_and_what_was_is_recovered() {
    let config = ServerConfig { resume_window: Duration::from_millis(100), ..dev_config() };
    let (server, proxy) = server_behind_proxy(config).await;
    let alice = client_via(&proxy, "alice");
    alice.login("").await.unwrap();
    let mut events = alice.events();
    let mut room = alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let mut quiet = alice.subscribe("quiet", SubscribeOptions::default()).await.unwrap();
    let mut lost = alice.subscribe("lost", SubscribeOptions::default()).await.unwrap();
    // Subscribed without its messages: nothing is recovered there either.
    let no_messages = SubscribeOptions { with_message: false, ..SubscribeOptions::default() };
    let _silent = alice.subscribe("silent", no_messages).await.unwrap();
    let bob = client_on(&server, "bob");
    bob.login("").await.unwrap();

    away_beyond_the_window(&proxy, &mut events).await;
    bob.publish("silent", "not for alice", stored()).await.unwrap();
    bob.publish("room", "stored 1", stored()).await.unwrap();
    bob.publish("lost", "not stored", PublishOptions::default()).await.unwrap();
    bob.publish("lost", "stored 2", stored()).await.unwrap();
    until_her_session_ended(&server).await;
    proxy.refuse(false);
    let ev = expect_event(&mut events, "CONNECTED", |e| is_link(e, LinkState::CONNECTED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert!(!l.is_resumed);
    // "room" and "quiet" lost nothing; "lost" had a message that was not stored.
    assert_eq!(l.affected_channels, vec!["lost".to_string()], "{l:?}");
    let m = next_message(&mut room).await;
    assert_eq!((m.text(), m.recovered), (Some("stored 1"), true));
    let m = next_message(&mut lost).await;
    assert_eq!((m.text(), m.recovered), (Some("stored 2"), true));
    bob.publish("quiet", "live", PublishOptions::default()).await.unwrap();
    let m = next_message(&mut quiet).await;
    assert_eq!((m.text(), m.recovered), (Some("live"), false));
    // Every message alice got up to "live": none of "silent".
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await.expect("events stopped").unwrap() {
            Event::Message(m) if &*m.channel == "silent" => {
                panic!("a message of a channel subscribed without messages")
            }
            Event::Message(m) if m.text() == Some("live") => break,
            _ => {}
        }
    }
}
