//! Presence, storage and locks beyond the conformance scenarios: paging, resume within the
//! presence timeout, restore after a timeout, concurrent compare-and-set, many concurrent lock
//! acquirers, locks kept across reconnects and released after their ttl.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use rtm2_core::*;
use rtm2_server::{Server, ServerConfig};

fn fast_config() -> ServerConfig {
    ServerConfig { ttl_unit: Duration::from_millis(100), ..dev_config() }
}

async fn tcp_server(config: ServerConfig) -> (Server, std::net::SocketAddr) {
    let server = Server::start(config);
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    (server, addr)
}

/// A logged-in client of `addr` with a short presence timeout and fast reconnects.
async fn client(addr: std::net::SocketAddr, user: &str) -> (Client, EventReceiver) {
    let mut cfg = ClientConfig::new(APP_ID, user).endpoint(Endpoint::Tcp(addr.to_string()));
    cfg.presence_timeout_s = 5;
    fast(&mut cfg);
    let c = Client::new(cfg).unwrap();
    let rx = c.events();
    c.login("").await.unwrap();
    (c, rx)
}

fn presence(ev: &Event, t: PresenceEventType, publisher: &str) -> bool {
    matches!(ev, Event::Presence(p) if p.event_type == t && p.publisher == publisher)
}

/// The next presence event (others skipped), bounded.
async fn next_presence(rx: &mut EventReceiver) -> Arc<PresenceEvent> {
    match expect_event(rx, "a presence event", |e| matches!(e, Event::Presence(_))).await {
        Event::Presence(p) => p,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_now_pages_walk_every_user_once() {
    let (_server, addr) = tcp_server(ServerConfig { presence_page_size: 2, ..dev_config() }).await;
    let mut clients = Vec::new();
    for u in ["u1", "u2", "u3", "u4", "u5"] {
        let (c, _) = client(addr, u).await;
        c.presence().set_state("hall", ChannelType::MESSAGE, [("name", u)]).await.unwrap();
        c.subscribe("hall", SubscribeOptions::default()).await.unwrap();
        clients.push(c);
    }
    let (asker, _) = client(addr, "asker").await;
    let mut seen = Vec::new();
    let mut page = String::new();
    for _ in 0..10 {
        let opts = GetOnlineUsersOptions { include_user_id: true, include_state: true, page: page.clone() };
        let r = asker.presence().get_online_users("hall", ChannelType::MESSAGE, opts).await.unwrap().into_inner();
        assert_eq!(r.total_occupancy, 5);
        assert!(r.occupants.len() <= 2);
        for o in &r.occupants {
            assert_eq!(o.states.get("name"), Some(&o.user_id), "include_state lists each user's state");
        }
        seen.extend(r.occupants.into_iter().map(|o| o.user_id));
        if r.next_page.is_empty() {
            break;
        }
        page = r.next_page;
    }
    assert_eq!(seen, ["u1", "u2", "u3", "u4", "u5"]);
    // Without states the users are listed without them.
    let r = asker.presence().who_now("hall", ChannelType::MESSAGE, Default::default()).await.unwrap();
    assert!(r.occupants.iter().all(|o| o.states.is_empty()));
    // A page token that is not a user id is rejected.
    let bad = GetOnlineUsersOptions { page: "_bad".into(), ..Default::default() };
    let e = asker.presence().who_now("hall", ChannelType::MESSAGE, bad).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::PRESENCE_INVALID_ARGUMENT);
    // where_now of self ("") and of an offline user.
    let mine = clients[0].presence().where_now("").await.unwrap();
    assert_eq!(*mine, vec![ChannelInfo { channel: "hall".into(), channel_type: ChannelType::MESSAGE }]);
    assert!(asker.presence().where_now("nobody").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_drop_within_the_presence_timeout_is_silent() {
    let (_server, addr) = tcp_server(fast_config()).await;
    let proxy = Proxy::start(addr).await;
    let (watcher, mut wrx) = client(addr, "watcher").await;
    watcher.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let (flaky, mut frx) = client(proxy.addr, "flaky").await;
    flaky.subscribe("room", SubscribeOptions::default()).await.unwrap();
    expect_event(&mut wrx, "flaky joins", |e| presence(e, PresenceEventType::REMOTE_JOIN, "flaky")).await;
    proxy.cut_all();
    expect_event(
        &mut frx,
        "reconnected",
        |e| matches!(e, Event::LinkState(l) if l.current == LinkState::CONNECTED && l.is_resumed),
    )
    .await;
    flaky.presence().set_state("room", ChannelType::MESSAGE, [("back", "yes")]).await.unwrap();
    // The next presence event the watcher sees is the state change: no leave, no timeout.
    let p = next_presence(&mut wrx).await;
    assert_eq!((p.event_type, p.publisher.as_str()), (PresenceEventType::REMOTE_STATE_CHANGED, "flaky"), "{p:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_timeout_the_user_comes_back_with_its_state() {
    let (_server, addr) = tcp_server(fast_config()).await;
    let proxy = Proxy::start(addr).await;
    let (watcher, mut wrx) = client(addr, "watcher").await;
    watcher.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let (gone, _grx) = client(proxy.addr, "gone").await;
    gone.subscribe("room", SubscribeOptions::default()).await.unwrap();
    gone.presence().set_state("room", ChannelType::MESSAGE, [("seat", "3")]).await.unwrap();
    expect_event(&mut wrx, "the state", |e| presence(e, PresenceEventType::REMOTE_STATE_CHANGED, "gone")).await;
    proxy.refuse(true);
    proxy.cut_all();
    // 5 s presence timeout at 100 ms per second.
    expect_event(&mut wrx, "a timeout", |e| presence(e, PresenceEventType::REMOTE_TIMEOUT, "gone")).await;
    let r = watcher.presence().who_now("room", ChannelType::MESSAGE, Default::default()).await.unwrap();
    assert_eq!(r.total_occupancy, 1);
    proxy.refuse(false);
    // The client restores: joins again and re-applies its cached state.
    expect_event(&mut wrx, "the join", |e| presence(e, PresenceEventType::REMOTE_JOIN, "gone")).await;
    let p = next_presence(&mut wrx).await;
    assert_eq!(p.event_type, PresenceEventType::REMOTE_STATE_CHANGED);
    assert_eq!(p.states.get("seat").map(String::as_str), Some("3"));
    let s = watcher.presence().get_state("room", ChannelType::MESSAGE, "gone").await.unwrap();
    assert_eq!(s.states.get("seat").map(String::as_str), Some("3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_channel_presence_applies_cached_state_on_join() {
    let (_server, addr) = tcp_server(dev_config()).await;
    let (a, mut arx) = client(addr, "a").await;
    let (b, _brx) = client(addr, "b").await;
    a.stream_channel("stage").unwrap().join(JoinOptions::default()).await.unwrap();
    b.presence().set_state("stage", ChannelType::STREAM, [("role", "speaker")]).await.unwrap();
    // Not joined yet: nothing is announced and nobody sees b.
    let r = a.presence().who_now("stage", ChannelType::STREAM, Default::default()).await.unwrap();
    assert_eq!(r.total_occupancy, 1);
    b.stream_channel("stage").unwrap().join(JoinOptions::default()).await.unwrap();
    expect_event(&mut arx, "b joins", |e| presence(e, PresenceEventType::REMOTE_JOIN, "b")).await;
    let p = next_presence(&mut arx).await;
    assert_eq!(p.states.get("role").map(String::as_str), Some("speaker"));
    // The message channel of the same name is untouched.
    let r = a.presence().who_now("stage", ChannelType::MESSAGE, Default::default()).await.unwrap();
    assert_eq!(r.total_occupancy, 0);
    b.stream_channel("stage").unwrap().leave().await.unwrap();
    expect_event(&mut arx, "b leaves", |e| presence(e, PresenceEventType::REMOTE_LEAVE, "b")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_compare_and_set_has_one_winner() {
    let (_server, addr) = tcp_server(dev_config()).await;
    let (first, _) = client(addr, "first").await;
    let w = first
        .storage()
        .set_channel_metadata("counter", ChannelType::MESSAGE, vec![MetadataItem::new("n", "0")], Default::default())
        .await
        .unwrap();
    let mut writers = Vec::new();
    for i in 0..8 {
        let (c, _) = client(addr, &format!("w{i}")).await;
        writers.push(c);
    }
    let mut tasks = Vec::new();
    for (i, c) in writers.iter().enumerate() {
        let c = c.clone();
        let major = w.major_revision;
        tasks.push(tokio::spawn(async move {
            let opts = MetadataOptions { major_revision: major, ..Default::default() };
            c.storage()
                .set_channel_metadata(
                    "counter",
                    ChannelType::MESSAGE,
                    vec![MetadataItem::new("n", i.to_string())],
                    opts,
                )
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                wins += 1;
                assert_eq!(r.major_revision, w.major_revision + 1);
            }
            Err(e) => assert_eq!(e.code, ErrorCode::STORAGE_OUTDATED_REVISION),
        }
    }
    assert_eq!(wins, 1, "exactly one conditional write wins");
    let m = first.storage().get_channel_metadata("counter", ChannelType::MESSAGE).await.unwrap();
    assert_eq!(m.major_revision, w.major_revision + 1);
    assert_eq!(m.get("n").unwrap().revision, m.major_revision);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_acquirers_never_share_a_lock() {
    let (_server, addr) = tcp_server(dev_config()).await;
    let (admin, _) = client(addr, "admin").await;
    admin.lock().set_lock("bank", ChannelType::MESSAGE, "vault", 0).await.unwrap();
    let inside = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (c, _) = client(addr, &format!("teller{i}")).await;
        let (inside, done) = (inside.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..3 {
                c.lock().acquire_lock("bank", ChannelType::MESSAGE, "vault", true).await.unwrap();
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two owners at once");
                let owner = c.lock().get_locks("bank", ChannelType::MESSAGE).await.unwrap()[0].owner.clone();
                assert_eq!(owner, c.user_id());
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                c.lock().release_lock("bank", ChannelType::MESSAGE, "vault").await.unwrap();
            }
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t).await.expect("an acquirer starved").unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 12);
    let locks = admin.lock().get_locks("bank", ChannelType::MESSAGE).await.unwrap();
    assert_eq!(locks[0].owner, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_back_within_the_ttl_keeps_its_lock_and_one_back_later_hears_expired() {
    let (_server, addr) = tcp_server(fast_config()).await;
    let proxy = Proxy::start(addr).await;
    let (watcher, mut wrx) = client(addr, "watcher").await;
    let opts = SubscribeOptions { with_lock: true, ..Default::default() };
    watcher.subscribe("ops", opts).await.unwrap();
    watcher.lock().set_lock("ops", ChannelType::MESSAGE, "deploy", 30).await.unwrap();
    let (owner, mut orx) = client(proxy.addr, "owner").await;
    owner.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", false).await.unwrap();
    // Away for 1 s (10 units): longer than its 5-unit presence timeout (its session ends) but
    // shorter than the 30-unit ttl: it keeps the lock under a new session.
    proxy.refuse(true);
    proxy.cut_all();
    expect_event(&mut orx, "disconnected", |e| is_link(e, LinkState::DISCONNECTED)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.refuse(false);
    expect_event(&mut orx, "back", |e| is_link(e, LinkState::CONNECTED)).await;
    let locks = watcher.lock().get_locks("ops", ChannelType::MESSAGE).await.unwrap();
    assert_eq!(locks[0].owner, "owner", "kept across a reconnect within the ttl");
    // After the ttl passes with the owner away, listeners see RELEASED and the owner, once
    // back, hears EXPIRED.
    proxy.refuse(true);
    proxy.cut_all();
    expect_event(
        &mut wrx,
        "released",
        |e| matches!(e, Event::Lock(l) if l.event_type == LockEventType::RELEASED && l.owner == "owner"),
    )
    .await;
    proxy.refuse(false);
    expect_event(
        &mut orx,
        "expired",
        |e| matches!(e, Event::Lock(l) if l.event_type == LockEventType::EXPIRED && l.lock_name == "deploy"),
    )
    .await;
    let e = owner.lock().release_lock("ops", ChannelType::MESSAGE, "deploy").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::LOCK_NOT_ACQUIRED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_survives_a_restart_and_user_subscriptions_are_restored() {
    let dir = std::env::temp_dir().join(format!("rtm2-meta-{}-{}", std::process::id(), rtm2_proto::now_ms()));
    let config = ServerConfig { metadata_store: rtm2_server::MetadataStore::Directory(dir.clone()), ..dev_config() };
    let (server, addr) = tcp_server(config.clone()).await;
    let (fan, mut frx) = client(addr, "fan").await;
    fan.storage().subscribe_user_metadata("star").await.unwrap();
    let (star, _) = client(addr, "star").await;
    star.storage().set_user_metadata("", vec![MetadataItem::new("mood", "calm")], Default::default()).await.unwrap();
    expect_event(&mut frx, "the first update", |e| matches!(e, Event::Storage(s) if s.data.major_revision == 1)).await;
    // A second server on the same directory is refused while this one has it open.
    let busy = Server::try_start(config.clone());
    assert!(busy.is_err(), "the store is in use");
    server.shutdown();
    drop(server);
    let mut again = None;
    for _ in 0..200 {
        match Server::try_start(config.clone()) {
            Ok(s) if s.listen_tcp(addr).await.is_ok() => {
                again = Some(s);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    let _again = again.expect("restarted on the same port");
    // Both clients come back; the fan's subscription is restored (SNAPSHOT with the data).
    expect_event(&mut frx, "the snapshot after the restart", |e| {
        matches!(e, Event::Storage(s) if s.event_type == StorageEventType::SNAPSHOT && s.data.get("mood").is_some())
    })
    .await;
    star.storage()
        .update_user_metadata("", vec![MetadataItem::new("mood", "happy")], Default::default())
        .await
        .unwrap();
    let ev = expect_event(
        &mut frx,
        "the update after the restart",
        |e| matches!(e, Event::Storage(s) if s.event_type == StorageEventType::UPDATE),
    )
    .await;
    let Event::Storage(s) = ev else { unreachable!() };
    assert_eq!(s.data.major_revision, 2, "revisions continue after the restart");
    assert_eq!(s.data.get("mood").unwrap().value, "happy");
    let _ = std::fs::remove_dir_all(dir);
}

/// A client that is not our SDK: every presence/storage/lock request the SDK would refuse is
/// refused by the server with the same code, and the session keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_checks_the_services_again() {
    use rtm2_proto::frame;
    use rtm2_proto::pb::{self, client_frame as cf, server_frame};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = dev_server();
    let mut io = server.connect_in_memory();
    let item = |k: &str, v: &str, rev: Option<i64>| pb::MetadataItem {
        key: k.into(),
        value: v.into(),
        revision: rev,
        ..Default::default()
    };
    let write = |op: u32, items: Vec<pb::MetadataItem>, major: Option<i64>| {
        cf::Body::WriteMetadata(pb::WriteMetadata {
            storage_type: 2,
            target: "ch".into(),
            channel_type: 1,
            op,
            major_revision: major,
            items,
            ..Default::default()
        })
    };
    let state = |k: &str, v: &str| pb::StateItem { key: k.into(), value: v.into() };
    let cases: Vec<(cf::Body, ErrorCode)> = vec![
        (
            cf::Body::GetOnlineUsers(pb::GetOnlineUsers {
                channel: "ch".into(),
                channel_type: 3,
                ..Default::default()
            }),
            ErrorCode::INVALID_CHANNEL_TYPE,
        ),
        (
            cf::Body::GetOnlineUsers(pb::GetOnlineUsers {
                channel: "ch".into(),
                channel_type: 1,
                include_state: true,
                ..Default::default()
            }),
            ErrorCode::PRESENCE_INVALID_ARGUMENT,
        ),
        (
            cf::Body::SetState(pb::SetState { channel: "ch".into(), channel_type: 1, states: vec![state("k", "v")] }),
            ErrorCode::PRESENCE_NOT_CONNECTED,
        ),
        (
            cf::Body::SetState(pb::SetState {
                channel: "ch".into(),
                channel_type: 1,
                states: (0..40).map(|i| state(&format!("k{i}"), "v")).collect(),
            }),
            ErrorCode::PRESENCE_STATE_COUNT_OVERFLOW,
        ),
        (
            cf::Body::Subscribe(pb::Subscribe {
                channel: "ch".into(),
                with_presence: true,
                states: vec![state("k", &"x".repeat(20_000))],
                ..Default::default()
            }),
            ErrorCode::PRESENCE_STATE_VALUE_SIZE_OVERFLOW,
        ),
        (
            cf::Body::GetState(pb::GetState { channel: "ch".into(), channel_type: 1, user_id: "".into() }),
            ErrorCode::INVALID_USER_ID,
        ),
        (write(0, vec![item("k", "v", None)], None), ErrorCode::STORAGE_INVALID_ARGUMENT),
        (write(9, vec![item("k", "v", None)], None), ErrorCode::STORAGE_INVALID_ARGUMENT),
        (write(1, vec![], None), ErrorCode::STORAGE_INVALID_METADATA_ITEM),
        (write(1, vec![item("k", "v", Some(-5))], None), ErrorCode::STORAGE_INVALID_REVISION),
        (write(2, vec![item("k", "v", Some(0))], None), ErrorCode::STORAGE_INVALID_REVISION),
        (write(3, vec![], Some(0)), ErrorCode::STORAGE_INVALID_REVISION),
        (write(1, vec![item("k", "v", None)], Some(i64::MIN)), ErrorCode::STORAGE_INVALID_REVISION),
        (
            write(1, (0..40).map(|i| item(&format!("k{i}"), "v", None)).collect(), None),
            ErrorCode::STORAGE_METADATA_ITEM_EXCEED_LIMITATION,
        ),
        (write(1, vec![item(&"k".repeat(40), "v", None)], None), ErrorCode::STORAGE_KEY_LENGTH_OVERFLOW),
        (write(1, vec![item("k", "v", Some(i64::MAX))], None), ErrorCode::STORAGE_OUTDATED_REVISION),
        (
            cf::Body::WriteMetadata(pb::WriteMetadata {
                storage_type: 1,
                target: "someone".into(),
                op: 1,
                items: vec![item("k", "v", None)],
                lock_name: "l".into(),
                ..Default::default()
            }),
            ErrorCode::STORAGE_INVALID_ARGUMENT,
        ),
        (
            cf::Body::GetMetadata(pb::GetMetadata { storage_type: 7, target: "x".into(), channel_type: 1 }),
            ErrorCode::STORAGE_INVALID_ARGUMENT,
        ),
        (
            cf::Body::UnsubscribeUserMetadata(pb::UnsubscribeUserMetadata { user_id: "nobody".into() }),
            ErrorCode::STORAGE_NOT_SUBSCRIBE,
        ),
        (
            cf::Body::SetLock(pb::SetLock { channel: "ch".into(), channel_type: 1, name: "".into(), ttl_s: 10 }),
            ErrorCode::LOCK_INVALID_NAME,
        ),
        (
            cf::Body::AcquireLock(pb::AcquireLock {
                channel: "ch".into(),
                channel_type: 1,
                name: "nolock".into(),
                retry: true,
            }),
            ErrorCode::LOCK_NOT_EXIST,
        ),
        (
            cf::Body::RevokeLock(pb::RevokeLock {
                channel: "ch".into(),
                channel_type: 2,
                name: "l".into(),
                owner: "_x".into(),
            }),
            ErrorCode::INVALID_USER_ID,
        ),
        (
            cf::Body::SetLock(pb::SetLock { channel: "ch".into(), channel_type: 1, name: "l".into(), ttl_s: u32::MAX }),
            ErrorCode::LOCK_ALREADY_EXIST, // (sent twice below: the second one fails)
        ),
    ];
    let mut out = bytes::BytesMut::new();
    let mut send = |id: u64, body: cf::Body| {
        frame::write_client_frame(&mut out, &pb::ClientFrame { request_id: id, body: Some(body) })
    };
    send(0, cf::Body::Hello(pb::Hello { protocol_version: 1, ..Default::default() }));
    send(1, cf::Body::Login(pb::Login { app_id: APP_ID.into(), user_id: "raw".into(), ..Default::default() }));
    let last = cases.last().unwrap().0.clone();
    send(2, last);
    for (i, (body, _)) in cases.iter().enumerate() {
        send(10 + i as u64, body.clone());
    }
    send(1000, cf::Body::GetLocks(pb::GetLocks { channel: "ch".into(), channel_type: 1 }));
    io.write_all(&out).await.unwrap();
    let dec = frame::FrameDecoder::new(1 << 20);
    let mut buf = bytes::BytesMut::new();
    let mut answers = std::collections::BTreeMap::new();
    while !answers.contains_key(&1000) {
        if let Some(body) = dec.decode(&mut buf).unwrap() {
            if let Some(server_frame::Body::Response(r)) = frame::decode_server(body).unwrap().body {
                answers.insert(r.request_id, r);
            }
            continue;
        }
        let n = tokio::time::timeout(WAIT, io.read_buf(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "server closed the session");
    }
    assert_eq!(answers[&2].code, 0, "set_lock with a huge ttl is clamped: {:?}", answers[&2]);
    for (i, (body, code)) in cases.iter().enumerate() {
        let r = &answers[&(10 + i as u64)];
        assert_eq!(r.code, code.code(), "case {i} {body:?}: {}", r.reason);
        assert!(!r.reason.is_empty(), "case {i} has no reason");
    }
    match &answers[&1000].result {
        Some(pb::response::Result::Locks(l)) => assert_eq!(l.locks[0].ttl_s, 300),
        other => panic!("no lock list: {other:?}"),
    }
}

/// Users entering and leaving a channel at the same moment all end up in the one channel
/// state (none lands in a copy that was dropped as empty).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enter_and_leave_keep_one_view_of_the_channel() {
    let (_server, addr) = tcp_server(dev_config()).await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (c, _) = client(addr, &format!("churn{i}")).await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..30 {
                c.subscribe("busy", SubscribeOptions::default()).await.unwrap();
                c.unsubscribe("busy").await.unwrap();
            }
            c.subscribe("busy", SubscribeOptions::default()).await.unwrap();
            c
        }));
    }
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    let r = clients[0].presence().who_now("busy", ChannelType::MESSAGE, Default::default()).await.unwrap();
    assert_eq!(r.total_occupancy, 10, "{r:?}");
    for c in &clients {
        let mine = c.presence().where_now("").await.unwrap();
        assert_eq!(mine.len(), 1);
    }
}

/// An acquisition whose caller gave up (timeout, or the operation dropped) is withdrawn: the
/// lock is not handed to a client that no longer waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_up_acquisition_is_withdrawn() {
    let (_server, addr) = tcp_server(dev_config()).await;
    let (alice, _) = client(addr, "alice").await;
    let (bob, _) = client(addr, "bob").await;
    let (carol, _) = client(addr, "carol").await;
    let locks = alice.lock();
    locks.set_lock("room", ChannelType::MESSAGE, "key", 0).await.unwrap();
    locks.acquire_lock("room", ChannelType::MESSAGE, "key", false).await.unwrap();
    // bob times out; carol's operation is dropped while it waits.
    let short = bob.with_timeout(Duration::from_millis(200));
    let e = short.lock().acquire_lock("room", ChannelType::MESSAGE, "key", true).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::LOCK_OPERATION_TIMEOUT);
    let waiting = carol.lock().acquire_lock("room", ChannelType::MESSAGE, "key", true);
    let _ = tokio::time::timeout(Duration::from_millis(200), waiting).await;
    // Both withdrawals reach the server before alice's release (a get from each client
    // answered after its release means the release ran).
    bob.lock().get_locks("room", ChannelType::MESSAGE).await.unwrap();
    carol.lock().get_locks("room", ChannelType::MESSAGE).await.unwrap();
    locks.release_lock("room", ChannelType::MESSAGE, "key").await.unwrap();
    let now = locks.get_locks("room", ChannelType::MESSAGE).await.unwrap();
    assert_eq!(now[0].owner, "", "granted to a client that gave up: {now:?}");
}

/// A timed-out acquisition reports its timeout, and a [`Withdrawal`] completes, only once the
/// server has withdrawn it: a release right after cannot hand the lock to it. Bob's requests
/// reach the server 150 ms late, so a withdrawal sent without waiting would arrive after
/// alice's release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_is_on_the_server_when_it_completes() {
    let (_server, addr) = tcp_server(dev_config()).await;
    let proxy = Proxy::start(addr).await;
    let (alice, _) = client(addr, "alice").await;
    let (bob, _) = client(proxy.addr, "bob").await;
    let locks = alice.lock();
    locks.set_lock("room", ChannelType::MESSAGE, "key", 0).await.unwrap();
    proxy.delay_up(150);
    let free = || async { locks.get_locks("room", ChannelType::MESSAGE).await.unwrap()[0].owner.is_empty() };

    // The SDK's timeout.
    locks.acquire_lock("room", ChannelType::MESSAGE, "key", false).await.unwrap();
    let short = bob.with_timeout(Duration::from_millis(400));
    let e = short.lock().acquire_lock("room", ChannelType::MESSAGE, "key", true).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::LOCK_OPERATION_TIMEOUT);
    locks.release_lock("room", ChannelType::MESSAGE, "key").await.unwrap();
    assert!(free().await, "granted to an acquisition that had timed out");

    // The caller's withdrawal, with the operation dropped first (its drop sends the release; the
    // handle waits for that one rather than sending another).
    locks.acquire_lock("room", ChannelType::MESSAGE, "key", false).await.unwrap();
    let (waiting, withdrawal) = bob.lock().acquire_lock_withdrawable("room", ChannelType::MESSAGE, "key", true);
    assert!(tokio::time::timeout(Duration::from_millis(300), waiting).await.is_err());
    withdrawal.withdraw().await;
    locks.release_lock("room", ChannelType::MESSAGE, "key").await.unwrap();
    assert!(free().await, "granted to a withdrawn acquisition");
    proxy.delay_up(0);
    // Bob sent exactly one release per acquisition: he can still take the lock and keep it.
    bob.lock().acquire_lock("room", ChannelType::MESSAGE, "key", false).await.unwrap();
    withdrawal.withdraw().await; // once withdrawn, withdrawing again sends nothing
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(locks.get_locks("room", ChannelType::MESSAGE).await.unwrap()[0].owner, "bob");

    // An acquisition that was granted has nothing to withdraw.
    bob.lock().release_lock("room", ChannelType::MESSAGE, "key").await.unwrap();
    let (granted, withdrawal) = bob.lock().acquire_lock_withdrawable("room", ChannelType::MESSAGE, "key", true);
    granted.await.unwrap();
    withdrawal.withdraw().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(locks.get_locks("room", ChannelType::MESSAGE).await.unwrap()[0].owner, "bob");

    // When the withdrawal cannot get through (bob's requests held for 3 s), the timeout is still
    // reported after at most twice the acquisition's own timeout.
    let (carol, _) = client(proxy.addr, "carol").await;
    proxy.delay_up(3000);
    let started = std::time::Instant::now();
    let e =
        carol.with_timeout(Duration::from_millis(300)).lock().acquire_lock("room", ChannelType::MESSAGE, "key", true);
    assert_eq!(e.await.unwrap_err().code, ErrorCode::LOCK_OPERATION_TIMEOUT);
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    proxy.delay_up(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_before_login_is_refused_and_only_waiting_states_count() {
    let (_server, addr) = tcp_server(dev_config()).await;
    let c = Client::new(ClientConfig::new(APP_ID, "early").endpoint(Endpoint::Tcp(addr.to_string()))).unwrap();
    let e = c.presence().set_state("room", ChannelType::MESSAGE, [("k", "v")]).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NOT_LOGIN);
    let e = c.presence().remove_state("room", ChannelType::MESSAGE, vec![]).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NOT_LOGIN);
    c.login("").await.unwrap();
    // 40 entered channels with state, then 100 waiting ones: the limit is on the waiting ones.
    for i in 0..40 {
        let ch = format!("in{i}");
        c.subscribe(&ch, SubscribeOptions::default()).await.unwrap();
        c.presence().set_state(&ch, ChannelType::MESSAGE, [("k", "v")]).await.unwrap();
    }
    for i in 0..100 {
        c.presence().set_state(&format!("later{i}"), ChannelType::MESSAGE, [("k", "v")]).await.unwrap();
    }
    let e = c.presence().set_state("later100", ChannelType::MESSAGE, [("k", "v")]).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::PRESENCE_CACHED_TOO_MANY_STATES);
}

/// A dropped client logs out: others see it leave at once and its waiting acquisition ends; a
/// waiter whose connection is down when the lock frees gets it only as an away owner (freed
/// after the ttl unless it comes back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_disconnected_waiters_do_not_keep_a_lock() {
    let (_server, addr) = tcp_server(fast_config()).await;
    let proxy = Proxy::start(addr).await;
    let (alice, mut arx) = client(addr, "alice").await;
    alice.subscribe("room", SubscribeOptions { with_lock: true, ..Default::default() }).await.unwrap();
    let locks = alice.lock();
    locks.set_lock("room", ChannelType::MESSAGE, "door", 10).await.unwrap();
    locks.acquire_lock("room", ChannelType::MESSAGE, "door", false).await.unwrap();

    // carol waits, then her client is dropped: she leaves at once (no presence timeout).
    let (carol, _) = client(addr, "carol").await;
    carol.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let waiting = carol.lock().acquire_lock("room", ChannelType::MESSAGE, "door", true);
    let pending = tokio::spawn(waiting);
    carol.lock().get_locks("room", ChannelType::MESSAGE).await.unwrap(); // the acquire was sent
    drop(carol);
    expect_event(&mut arx, "carol leaves", |e| presence(e, PresenceEventType::REMOTE_LEAVE, "carol")).await;
    let _ = pending.await;

    // dave waits behind a proxy that then goes down: he gets the lock while away and loses it
    // after its 10-unit ttl (his session itself would live for his 300-unit presence timeout).
    let mut cfg = ClientConfig::new(APP_ID, "dave").endpoint(Endpoint::Tcp(proxy.addr.to_string()));
    cfg.presence_timeout_s = 300;
    let dave = Client::new(cfg).unwrap();
    dave.login("").await.unwrap();
    let waiting = dave.lock().acquire_lock("room", ChannelType::MESSAGE, "door", true);
    let _dave_waits = tokio::spawn(waiting);
    dave.lock().get_locks("room", ChannelType::MESSAGE).await.unwrap();
    proxy.refuse(true);
    proxy.cut_all();
    // Give the server time to see dave's connection end, so that the lock is granted to a
    // session that is already detached (not one that detaches afterwards).
    tokio::time::sleep(Duration::from_millis(300)).await;
    locks.release_lock("room", ChannelType::MESSAGE, "door").await.unwrap();
    let ev = expect_event(
        &mut arx,
        "the next owner",
        |e| matches!(e, Event::Lock(l) if l.event_type == LockEventType::ACQUIRED && l.owner != "alice"),
    )
    .await;
    let Event::Lock(l) = ev else { unreachable!() };
    assert_eq!(l.owner, "dave", "the dropped client was granted the lock");
    expect_event(
        &mut arx,
        "dave's away lock freed",
        |e| matches!(e, Event::Lock(l) if l.event_type == LockEventType::RELEASED && l.owner == "dave"),
    )
    .await;
    assert_eq!(locks.get_locks("room", ChannelType::MESSAGE).await.unwrap()[0].owner, "");
}

fn lock_event(e: &Event, t: LockEventType, name: &str) -> Option<Arc<LockEvent>> {
    match e {
        Event::Lock(l) if l.event_type == t && l.lock_name == name => Some(l.clone()),
        _ => None,
    }
}

async fn expect_lock(rx: &mut EventReceiver, t: LockEventType, name: &str) -> Arc<LockEvent> {
    let ev = expect_event(rx, &format!("{t:?} of {name}"), |e| lock_event(e, t, name).is_some()).await;
    lock_event(&ev, t, name).unwrap()
}

fn guarded(lock: &str, fencing_token: u64) -> MetadataOptions {
    MetadataOptions { lock_name: lock.to_string(), fencing_token, ..Default::default() }
}

/// Every grant carries a fencing token, strictly increasing from grant to grant, returned by
/// acquire_lock and carried in ACQUIRED / RELEASED events and get_locks; a metadata write that
/// names a token of an earlier grant is refused with 12008.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_strictly_increase_and_a_stale_token_is_refused() {
    let (_server, addr) = tcp_server(fast_config()).await;
    let (alice, mut arx) = client(addr, "alice").await;
    let (bob, _) = client(addr, "bob").await;
    alice.subscribe("bank", SubscribeOptions { with_lock: true, ..Default::default() }).await.unwrap();
    let (a, b) = (alice.lock(), bob.lock());
    a.set_lock("bank", ChannelType::MESSAGE, "vault", 30).await.unwrap();
    a.set_lock("bank", ChannelType::MESSAGE, "other", 30).await.unwrap();

    let t1 = a.acquire_lock("bank", ChannelType::MESSAGE, "vault", false).await.unwrap().value;
    assert!(t1 > 0, "a grant has a token");
    assert_eq!(expect_lock(&mut arx, LockEventType::ACQUIRED, "vault").await.fencing_token, t1);
    assert_eq!(a.acquire_lock("bank", ChannelType::MESSAGE, "vault", false).await.unwrap().value, t1, "the same grant");
    let listed = a.get_locks("bank", ChannelType::MESSAGE).await.unwrap();
    let vault = listed.iter().find(|l| l.name == "vault").unwrap();
    assert_eq!((vault.owner.as_str(), vault.fencing_token), ("alice", t1));
    assert_eq!(listed.iter().find(|l| l.name == "other").unwrap().fencing_token, 0, "free: no token");

    // Tokens come from one counter: another lock's grant is higher too.
    let other = b.acquire_lock("bank", ChannelType::MESSAGE, "other", false).await.unwrap().value;
    assert!(other > t1);

    // bob waits; alice releases: bob's grant is higher, and so is alice's next one.
    let waiting = tokio::spawn(b.acquire_lock("bank", ChannelType::MESSAGE, "vault", true));
    b.get_locks("bank", ChannelType::MESSAGE).await.unwrap(); // the acquire was sent
    a.release_lock("bank", ChannelType::MESSAGE, "vault").await.unwrap();
    assert_eq!(expect_lock(&mut arx, LockEventType::RELEASED, "vault").await.fencing_token, t1);
    let t2 = waiting.await.unwrap().unwrap().value;
    assert!(t2 > other, "{t2} after {other}");
    assert_eq!(expect_lock(&mut arx, LockEventType::ACQUIRED, "vault").await.fencing_token, t2);
    b.release_lock("bank", ChannelType::MESSAGE, "vault").await.unwrap();
    let t3 = a.acquire_lock("bank", ChannelType::MESSAGE, "vault", false).await.unwrap().value;
    assert!(t3 > t2, "{t3} after {t2}");

    // alice holds the lock again, but a write resting on her first grant is refused.
    let storage = alice.storage();
    let item = || vec![MetadataItem::new("balance", "100")];
    let e = storage.set_channel_metadata("bank", ChannelType::MESSAGE, item(), guarded("vault", t1)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::STORAGE_LOCK_NOT_ACQUIRED);
    assert!(e.reason.contains("stale"), "{}", e.reason);
    storage.set_channel_metadata("bank", ChannelType::MESSAGE, item(), guarded("vault", t3)).await.unwrap();
    storage.set_channel_metadata("bank", ChannelType::MESSAGE, item(), guarded("vault", 0)).await.unwrap();
    // bob holds no grant of it: refused whatever token he names.
    let e = bob.storage().set_channel_metadata("bank", ChannelType::MESSAGE, item(), guarded("vault", t3)).await;
    assert_eq!(e.unwrap_err().code, ErrorCode::STORAGE_LOCK_NOT_ACQUIRED);
    // A token without its lock name is a caller mistake.
    let e = storage.set_channel_metadata("bank", ChannelType::MESSAGE, item(), guarded("", t3)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::STORAGE_INVALID_ARGUMENT);
}

/// Restarts a server on the same port with `config`.
async fn restart(server: Server, addr: std::net::SocketAddr, config: &ServerConfig) -> Server {
    server.shutdown();
    drop(server);
    for _ in 0..200 {
        match Server::try_start(config.clone()) {
            Ok(s) if s.listen_tcp(addr).await.is_ok() => return s,
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    panic!("not restarted on the same port");
}

/// With a data directory, locks persist across a restart with their ttl running on: an owner
/// back within the ttl keeps its lock (same fencing token, a lock-guarded write still works),
/// one that is not back loses it (RELEASED); fencing tokens keep increasing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_fencing_tokens_survive_a_restart_with_a_data_dir() {
    let dir = std::env::temp_dir().join(format!("rtm2-locks-{}-{}", std::process::id(), rtm2_proto::now_ms()));
    let config = ServerConfig { metadata_store: rtm2_server::MetadataStore::Directory(dir.clone()), ..fast_config() };
    let (server, addr) = tcp_server(config.clone()).await;
    let (alice, mut arx) = client(addr, "alice").await;
    alice.subscribe("ops", SubscribeOptions { with_lock: true, ..Default::default() }).await.unwrap();
    let a = alice.lock();
    a.set_lock("ops", ChannelType::MESSAGE, "deploy", 100).await.unwrap(); // 10 s
    a.set_lock("ops", ChannelType::MESSAGE, "gate", 10).await.unwrap(); // 1 s
    let t1 = a.acquire_lock("ops", ChannelType::MESSAGE, "deploy", false).await.unwrap().value;
    {
        let (bob, _) = client(addr, "bob").await;
        bob.lock().acquire_lock("ops", ChannelType::MESSAGE, "gate", false).await.unwrap();
        bob.logout().await.unwrap(); // bob's session ends: gate is kept for its ttl only
    }
    let server = restart(server, addr, &config).await;

    // alice comes back by herself, within the ttl: she still holds deploy with the same token.
    expect_event(&mut arx, "back", |e| is_link(e, LinkState::CONNECTED)).await;
    let locks = a.get_locks("ops", ChannelType::MESSAGE).await.unwrap();
    let deploy = locks.iter().find(|l| l.name == "deploy").expect("the lock survived the restart");
    assert_eq!((deploy.owner.as_str(), deploy.fencing_token), ("alice", t1));
    alice
        .storage()
        .set_channel_metadata("ops", ChannelType::MESSAGE, vec![MetadataItem::new("v", "2")], guarded("deploy", t1))
        .await
        .expect("a lock-guarded write after the restart");
    // bob is not back: gate is freed after its ttl.
    let released = expect_lock(&mut arx, LockEventType::RELEASED, "gate").await;
    assert_eq!(released.owner, "bob");
    let t2 = a.acquire_lock("ops", ChannelType::MESSAGE, "gate", false).await.unwrap().value;
    assert!(t2 > t1, "tokens keep increasing across the restart: {t2} after {t1}");

    // Once more, after a second restart: the counter does not go back.
    a.release_lock("ops", ChannelType::MESSAGE, "gate").await.unwrap();
    let _server = restart(server, addr, &config).await;
    expect_event(&mut arx, "back again", |e| is_link(e, LinkState::CONNECTED)).await;
    let t3 = a.acquire_lock("ops", ChannelType::MESSAGE, "gate", false).await.unwrap().value;
    assert!(t3 > t2, "{t3} after {t2}");
    drop(alice);
    let _ = std::fs::remove_dir_all(dir);
}

/// Locks follow channel membership (reference §2.7, §7.2): an owner that leaves the channel
/// but stays online loses the lock ttl after it left, unless it enters again in time; a
/// retrying acquisition is withdrawn when its session leaves the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_that_leaves_the_channel_loses_its_lock_and_a_leaving_waiter_is_withdrawn() {
    let (_server, addr) = tcp_server(fast_config()).await;
    let (watcher, mut wrx) = client(addr, "watcher").await;
    let opts = SubscribeOptions { with_lock: true, ..Default::default() };
    watcher.subscribe("room", opts).await.unwrap();
    watcher.subscribe("hall", opts).await.unwrap();
    let w = watcher.lock();
    w.set_lock("room", ChannelType::MESSAGE, "door", 20).await.unwrap(); // 2 s
    w.set_lock("hall", ChannelType::MESSAGE, "keep", 10).await.unwrap(); // 1 s
    w.set_lock("room", ChannelType::MESSAGE, "gate", 10).await.unwrap();

    let (alice, mut arx) = client(addr, "alice").await;
    alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    alice.subscribe("hall", SubscribeOptions::default()).await.unwrap();
    let a = alice.lock();
    a.acquire_lock("room", ChannelType::MESSAGE, "door", false).await.unwrap();
    a.acquire_lock("hall", ChannelType::MESSAGE, "keep", false).await.unwrap();
    // alice leaves both channels, and comes back to hall at once.
    alice.unsubscribe("room").await.unwrap();
    alice.unsubscribe("hall").await.unwrap();
    alice.subscribe("hall", SubscribeOptions::default()).await.unwrap();
    let released = expect_lock(&mut wrx, LockEventType::RELEASED, "door").await;
    assert_eq!(released.owner, "alice");
    expect_lock(&mut arx, LockEventType::EXPIRED, "door").await;
    assert_eq!(
        w.get_locks("room", ChannelType::MESSAGE).await.unwrap().iter().find(|l| l.name == "door").unwrap().owner,
        ""
    );
    // keep's 1 s ttl passed before door's 2 s: alice, back in hall within it, still holds it.
    assert_eq!(w.get_locks("hall", ChannelType::MESSAGE).await.unwrap()[0].owner, "alice");

    // A waiter that leaves the channel is withdrawn, and not granted the lock later.
    let (carol, _) = client(addr, "carol").await;
    carol.lock().acquire_lock("room", ChannelType::MESSAGE, "gate", false).await.unwrap(); // never subscribed
    let (bob, _) = client(addr, "bob").await;
    bob.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let waiting = tokio::spawn(bob.lock().acquire_lock("room", ChannelType::MESSAGE, "gate", true));
    bob.lock().get_locks("room", ChannelType::MESSAGE).await.unwrap(); // the acquire was sent
    bob.unsubscribe("room").await.unwrap();
    let e = tokio::time::timeout(WAIT, waiting).await.expect("withdrawn").unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::LOCK_OPERATION_FAILED);
    carol.lock().release_lock("room", ChannelType::MESSAGE, "gate").await.unwrap();
    let gate = w.get_locks("room", ChannelType::MESSAGE).await.unwrap();
    assert_eq!(gate.iter().find(|l| l.name == "gate").unwrap().owner, "", "not granted to the waiter that left");
}
