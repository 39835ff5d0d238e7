//! `logout_all`, the exit hook of the bindings: it logs out every client of the process, so it
//! has a test binary of its own.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rtm2_core::*;

fn presence(ev: &Event, t: PresenceEventType, publisher: &str) -> bool {
    matches!(ev, Event::Presence(p) if p.event_type == t && p.publisher == publisher)
}

#[tokio::test]
async fn logout_all_logs_out_every_client_and_dropped_ones_within_the_bound() {
    let server = rtm2_server::Server::start(Default::default());
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let tcp = |user: &str| Client::new(ClientConfig::new(APP_ID, user).endpoint(Endpoint::Tcp(addr.to_string())));
    let watcher = tcp("watcher").unwrap();
    let mut events = watcher.events();
    watcher.login("").await.unwrap();
    watcher.subscribe("room", SubscribeOptions::default()).await.unwrap();

    let alice = tcp("alice").unwrap();
    let bob = tcp("bob").unwrap();
    let idle = tcp("idle").unwrap();
    for c in [&alice, &bob] {
        c.login("").await.unwrap();
        c.subscribe("room", SubscribeOptions::default()).await.unwrap();
        let who = c.user_id();
        expect_event(&mut events, "a join", |e| presence(e, PresenceEventType::REMOTE_JOIN, &who)).await;
    }
    drop(bob);

    // From a thread that is not the runtime's, as an exit hook runs. The watcher is logged
    // out too: it is a client of this process.
    let started = Instant::now();
    let n = tokio::task::spawn_blocking(|| logout_all(Duration::from_secs(1))).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    assert!(n >= 2, "{n}");
    assert_eq!(alice.link_state(), LinkState::IDLE);
    assert_eq!(idle.link_state(), LinkState::IDLE);
    // The server ended the sessions: nobody is left in the room (leaves, not timeouts).
    let check = tcp("check").unwrap();
    check.login("").await.unwrap();
    let who = check.presence().who_now("room", ChannelType::MESSAGE, Default::default()).await.unwrap();
    assert!(who.occupants.is_empty(), "{who:?}");
    let mut saw = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
        if let Event::Presence(p) = &e {
            saw.push((p.event_type, p.publisher.clone()));
        }
    }
    assert!(!saw.iter().any(|(t, _)| *t == PresenceEventType::REMOTE_TIMEOUT), "{saw:?}");
    check.logout().await.unwrap();
    drop(check);

    // Nothing logged in: returns at once.
    let started = Instant::now();
    assert_eq!(tokio::task::spawn_blocking(|| logout_all(Duration::from_secs(1))).await.unwrap(), 0);
    assert!(started.elapsed() < Duration::from_millis(500));
}
