//! Client failover between endpoints: a client given several endpoints logs in on the first
//! reachable one, and when its server dies it goes on to the next, logs in there and restores
//! its subscriptions, presence state and held locks, saying first which channels may have
//! missed messages. Two standalone servers on loopback TCP (a cluster is in
//! `cluster_failover.rs`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use rtm2_core::*;

async fn tcp_server() -> (rtm2_server::Server, std::net::SocketAddr) {
    let server = dev_server();
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    (server, addr)
}

/// A loopback address nothing listens on (bound, then released).
fn dead_addr() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn client_of(endpoints: &str, user: &str) -> Client {
    let mut cfg = ClientConfig::new(APP_ID, user).endpoints(Endpoint::parse_list(endpoints).unwrap());
    fast(&mut cfg);
    cfg.request_timeout = Duration::from_secs(4);
    Client::new(cfg).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_fails_over_to_the_next_endpoint_and_restores_its_session() {
    let (a, addr_a) = tcp_server().await;
    let (b, addr_b) = tcp_server().await;
    let alice = client_of(&format!("tcp://{addr_a},tcp://{addr_b}"), "alice");
    alice.login("").await.unwrap();
    assert_eq!(alice.connected_to().unwrap().0, format!("tcp://{addr_a}"), "the first endpoint first");

    // State set before subscribing is applied on subscribe; a lock defined and held.
    alice.presence().set_state("room", ChannelType::MESSAGE, [("mood", "calm")]).await.unwrap();
    let mut room = alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    alice.lock().set_lock("room", ChannelType::MESSAGE, "mic", 30).await.unwrap();
    let token_a = alice.lock().acquire_lock("room", ChannelType::MESSAGE, "mic", false).await.unwrap().value;
    assert!(token_a > 0);
    let mut events = alice.events();

    // Bob, on server B, publishes all along: nothing newer may reach alice before the notice.
    let bob = client_of(&format!("tcp://{addr_b}"), "bob");
    bob.login("").await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (bob, stop) = (bob.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                bob.publish("room", format!("m{n}"), PublishOptions::default()).await.unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };

    a.shutdown();
    expect_event(&mut events, "DISCONNECTED", |e| is_link(e, LinkState::DISCONNECTED)).await;
    // Up to the reconnection's CONNECTED event, no message: the notice comes first.
    let connected = match expect_event(&mut events, "CONNECTED on B", |e| {
        assert!(!matches!(e, Event::Message(_)), "a message before the may-have-missed notice: {e:?}");
        is_link(e, LinkState::CONNECTED)
    })
    .await
    {
        Event::LinkState(l) => l,
        _ => unreachable!(),
    };
    assert!(!connected.is_resumed, "a new session on another server");
    assert_eq!(connected.operation, LinkOperation::RECONNECTED);
    assert_eq!(connected.affected_channels, vec!["room".to_string()], "the channel that may have missed messages");
    assert!(connected.unrestored_channels.is_empty(), "{:?}", connected.unrestored_channels);
    assert_eq!(alice.connected_to().unwrap().0, format!("tcp://{addr_b}"));
    assert_eq!(b.session_count(), 2, "alice and bob on B");

    // Bob's messages on B reach alice's restored subscription.
    let m = next_message(&mut room).await;
    assert_eq!(m.publisher, "bob");
    stop.store(true, Ordering::Relaxed);
    let published = publisher.await.unwrap();
    assert!(published > 0);
    bob.publish("room", "after", PublishOptions::default()).await.unwrap();
    expect_message(&mut events, |m| m.text() == Some("after")).await;

    // Her presence state and her lock are on B now.
    let st = bob.presence().get_state("room", ChannelType::MESSAGE, "alice").await.unwrap();
    assert_eq!(st.states.get("mood").map(String::as_str), Some("calm"));
    let locks = bob.lock().get_locks("room", ChannelType::MESSAGE).await.unwrap();
    let mic = locks.iter().find(|l| l.name == "mic").expect("the lock is defined on B");
    assert_eq!((mic.owner.as_str(), mic.ttl_s), ("alice", 30), "held by alice with its ttl");
    let e = bob.lock().acquire_lock("room", ChannelType::MESSAGE, "mic", false).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::LOCK_ACQUIRE_FAILED);
    alice.lock().release_lock("room", ChannelType::MESSAGE, "mic").await.unwrap();
    bob.lock().acquire_lock("room", ChannelType::MESSAGE, "mic", false).await.unwrap();
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_skips_an_unreachable_endpoint_and_reports_all_when_none_answers() {
    let (b, addr_b) = tcp_server().await;
    let dead = dead_addr();
    let c = client_of(&format!("tcp://{dead}, {addr_b}"), "carol");
    c.login("").await.unwrap();
    let (endpoint, node) = c.connected_to().unwrap();
    assert_eq!((endpoint, node), (format!("tcp://{addr_b}"), String::new()));
    c.logout().await.unwrap();

    // Nothing answers: the login's error names every endpoint tried.
    let (d1, d2) = (dead_addr(), dead);
    let mut cfg = ClientConfig::new(APP_ID, "dan").endpoints(Endpoint::parse_list(&format!("{d1},{d2}")).unwrap());
    cfg.request_timeout = Duration::from_millis(1500);
    let e = Client::new(cfg).unwrap().login("").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::LOGIN_TIMEOUT);
    assert!(e.reason.contains(&format!("tcp://{d1}")) && e.reason.contains(&format!("tcp://{d2}")), "{}", e.reason);
    b.shutdown();
}

#[test]
fn bad_endpoint_lists_are_refused_with_the_entry_named() {
    for (list, names) in [
        ("127.0.0.1:1,127.0.0.1:99999", "127.0.0.1:99999"),
        ("127.0.0.1:1,,127.0.0.1:2", "entry 2 is empty"),
        ("127.0.0.1:1,embedded", "embedded"),
        ("127.0.0.1:1,http://x", "http://x"),
    ] {
        let e = Endpoint::parse_list(list).unwrap_err();
        assert_eq!(e.code, ErrorCode::INVALID_PARAMETER, "{list}");
        assert!(e.reason.contains(names), "{list}: {}", e.reason);
    }
    let e = Client::new(ClientConfig::new(APP_ID, "u").endpoints(vec![])).err().unwrap();
    assert_eq!(e.code, ErrorCode::INVALID_PARAMETER);
    let e =
        Client::new(ClientConfig::new(APP_ID, "u").endpoints(vec![Endpoint::Embedded, Endpoint::Tcp("a:1".into())]))
            .err()
            .unwrap();
    assert_eq!(e.code, ErrorCode::INVALID_PARAMETER);
}

/// Another server cannot vouch for what was published on the one that died: after a failover
/// the channel is announced even when the new server's history holds every message published
/// there since (and those are recovered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_a_channel_is_announced_even_when_the_new_server_lost_nothing() {
    let (a, addr_a) = tcp_server().await;
    let (_b, addr_b) = tcp_server().await;
    let alice = client_of(&format!("tcp://{addr_a},tcp://{addr_b}"), "alice");
    alice.login("").await.unwrap();
    let mut room = alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let mut events = alice.events();
    let bob = client_of(&format!("tcp://{addr_b}"), "bob");
    bob.login("").await.unwrap();
    let stored = PublishOptions { store_in_history: true, ..PublishOptions::default() };
    bob.publish("room", "stored on b", stored).await.unwrap();

    a.shutdown();
    let connected = match expect_event(&mut events, "CONNECTED on B", |e| is_link(e, LinkState::CONNECTED)).await {
        Event::LinkState(l) => l,
        _ => unreachable!(),
    };
    assert!(!connected.is_resumed);
    assert_eq!(connected.affected_channels, vec!["room".to_string()]);
    let m = next_message(&mut room).await;
    assert_eq!((m.text(), m.recovered), (Some("stored on b"), true));
}
