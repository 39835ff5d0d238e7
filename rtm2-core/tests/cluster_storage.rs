//! Metadata and locks shared by every node of a cluster, in NATS JetStream key-value buckets
//! (docs/CLUSTER.md): a real nats-server with JetStream and three nodes (one of them, in the
//! node-death test, an `rtm2 serve` process killed with SIGKILL). Run by `scripts/test-cluster`
//! (ignored by a plain `cargo test`, which has no nats-server).

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::cluster::*;
use common::*;
use rtm2_core::*;
use rtm2_proto::ErrorCode;

fn meta(pairs: &[(&str, &str)]) -> Vec<MetadataItem> {
    pairs.iter().map(|(k, v)| MetadataItem::new(*k, *v)).collect()
}

fn revisions(m: &Metadata) -> Vec<(String, String, i64)> {
    m.items.iter().map(|i| (i.key.clone(), i.value.clone(), i.revision)).collect()
}

fn with(metadata: bool, lock: bool) -> SubscribeOptions {
    SubscribeOptions { with_metadata: metadata, with_lock: lock, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn metadata_written_on_one_node_is_read_on_every_node_with_its_revisions() {
    let (_nats, nodes) = cluster().await;
    let a = logged_in(&nodes[0], "a").await;
    let st = a.storage();
    st.set_channel_metadata("room", ChannelType::MESSAGE, meta(&[("x", "1"), ("y", "2")]), Default::default())
        .await
        .unwrap();
    let w = st
        .update_channel_metadata("room", ChannelType::MESSAGE, meta(&[("y", "3")]), Default::default())
        .await
        .unwrap();
    assert_eq!(w.major_revision, 2);
    st.set_user_metadata("a", meta(&[("mood", "ok")]), Default::default()).await.unwrap();
    let mine = st.get_channel_metadata("room", ChannelType::MESSAGE).await.unwrap();
    assert_eq!(revisions(&mine), vec![("x".into(), "1".into(), 1), ("y".into(), "3".into(), 2)]);
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let c = logged_in(n, &format!("reader{i}")).await;
        let m = c.storage().get_channel_metadata("room", ChannelType::MESSAGE).await.unwrap();
        assert_eq!((m.major_revision, revisions(&m)), (mine.major_revision, revisions(&mine)), "node {i}");
        let u = c.storage().get_user_metadata("a").await.unwrap();
        assert_eq!((u.major_revision, u.get("mood").map(|i| i.value.as_str())), (1, Some("ok")), "node {i}");
        // A stream channel of the same name is another set.
        let other = c.storage().get_channel_metadata("room", ChannelType::STREAM).await.unwrap();
        assert_eq!(other.major_revision, 0);
    }
    // The rules of one node hold: an update of a missing item is 12014, on any node.
    let c = logged_in(&nodes[2], "c").await;
    let e = c
        .storage()
        .update_channel_metadata("room", ChannelType::MESSAGE, meta(&[("zz", "1")]), Default::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::STORAGE_OUTDATED_REVISION, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn subscribers_on_other_nodes_get_the_snapshot_and_every_update_in_revision_order() {
    let (_nats, nodes) = cluster().await;
    let a = logged_in(&nodes[0], "a").await;
    a.storage()
        .set_channel_metadata("room", ChannelType::MESSAGE, meta(&[("k", "0")]), Default::default())
        .await
        .unwrap();
    let c = client_of(&nodes[2], "c");
    let mut events = c.events();
    c.login("").await.unwrap();
    c.subscribe("room", with(true, false)).await.unwrap();
    c.storage().subscribe_user_metadata("a").await.unwrap();
    // The snapshot shows the write (or, if this node's replica had not seen it yet, the
    // write comes right after as an update).
    let ev = expect_event(&mut events, "the channel snapshot", |e| {
        matches!(e, Event::Storage(s) if s.event_type == StorageEventType::SNAPSHOT && s.storage_type == StorageType::CHANNEL)
    })
    .await;
    let Event::Storage(snap) = ev else { unreachable!() };
    let mut seen = snap.data.major_revision;
    // 20 pipelined writes on node A: every update reaches C, in revision order.
    let ops: Vec<_> = (1..=20)
        .map(|i| {
            a.storage().set_channel_metadata(
                "room",
                ChannelType::MESSAGE,
                meta(&[("k", &i.to_string())]),
                Default::default(),
            )
        })
        .collect();
    for op in ops {
        op.await.unwrap();
    }
    while seen < 21 {
        let ev = expect_event(
            &mut events,
            "a channel update",
            |e| matches!(e, Event::Storage(s) if s.storage_type == StorageType::CHANNEL),
        )
        .await;
        let Event::Storage(u) = ev else { unreachable!() };
        if u.event_type == StorageEventType::SNAPSHOT {
            // The client re-subscribed after a reconnect it could not resume (a loaded
            // machine): the snapshot is where the updates go on from.
            assert!(u.data.major_revision >= seen, "a snapshot older than an update seen");
            seen = u.data.major_revision;
            continue;
        }
        assert_eq!(u.data.major_revision, seen + 1, "updates come once each, in revision order");
        assert_eq!(u.publisher, "a");
        assert_eq!(u.data.get("k").unwrap().value, (seen).to_string());
        seen = u.data.major_revision;
    }
    // User metadata: C's subscription of A's metadata gets A's write on node A.
    a.storage().set_user_metadata("a", meta(&[("mood", "fine")]), Default::default()).await.unwrap();
    expect_event(&mut events, "a user-metadata update", |e| {
        matches!(e, Event::Storage(s) if s.event_type == StorageEventType::UPDATE
            && s.storage_type == StorageType::USER && s.target == "a" && s.data.get("mood").is_some_and(|i| i.value == "fine"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn concurrent_conditional_writes_on_two_nodes_have_exactly_one_winner() {
    let (_nats, nodes) = cluster().await;
    let x = logged_in(&nodes[0], "x").await;
    let y = logged_in(&nodes[1], "y").await;
    const ROUNDS: usize = 50;
    for user_metadata in [false, true] {
        let mut x_wins = 0;
        for round in 0..ROUNDS {
            let current = if user_metadata {
                x.storage().get_user_metadata("shared").await.unwrap()
            } else {
                x.storage().get_channel_metadata("counter", ChannelType::MESSAGE).await.unwrap()
            };
            let major = current.major_revision;
            let opts = || MetadataOptions { major_revision: major, ..Default::default() };
            let write = |c: &Client, who: &str| {
                let items = meta(&[("n", &format!("{who}{round}"))]);
                if user_metadata {
                    c.storage().set_user_metadata("shared", items, opts())
                } else {
                    c.storage().set_channel_metadata("counter", ChannelType::MESSAGE, items, opts())
                }
            };
            let (rx, ry) = tokio::join!(write(&x, "x"), write(&y, "y"));
            let winner = match (&rx, &ry) {
                (Ok(w), Err(e)) | (Err(e), Ok(w)) => {
                    assert_eq!(e.code, ErrorCode::STORAGE_OUTDATED_REVISION, "round {round}: the loser: {e}");
                    assert_eq!(w.major_revision, major + 1);
                    if rx.is_ok() { "x" } else { "y" }
                }
                _ => panic!("round {round} (user metadata: {user_metadata}): not exactly one winner: {rx:?} {ry:?}"),
            };
            x_wins += usize::from(winner == "x");
            // Every node reads the winner's write.
            let on_c = logged_in(&nodes[2], "reader").await;
            let m = if user_metadata {
                on_c.storage().get_user_metadata("shared").await.unwrap()
            } else {
                on_c.storage().get_channel_metadata("counter", ChannelType::MESSAGE).await.unwrap()
            };
            assert_eq!(m.major_revision, major + 1);
            assert_eq!(m.get("n").unwrap().value, format!("{winner}{round}"));
            on_c.logout().await.unwrap();
        }
        println!("CAS race (user metadata: {user_metadata}): {ROUNDS} rounds, one winner each; node A won {x_wins}");
    }
}

/// Polls getLocks of `channel` from a client on every node until stopped; counts the reads in
/// which the lock's owner went back to an earlier owner (two owners over time overlapping).
struct Monitor {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(usize, usize)>,
}

impl Monitor {
    fn start(clients: Vec<Client>, channel: &'static str) -> Monitor {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let (mut reads, mut overlaps) = (0, 0);
            let mut history: Vec<(String, u64)> = Vec::new();
            while !s.load(Ordering::Acquire) {
                for c in &clients {
                    let Ok(locks) = c.lock().get_locks(channel, ChannelType::MESSAGE).await else { continue };
                    reads += 1;
                    for l in locks.iter().filter(|l| !l.owner.is_empty()) {
                        let grant = (l.owner.clone(), l.fencing_token);
                        match history.last() {
                            Some(last) if *last == grant => {}
                            // A grant seen before a newer one comes back, or tokens go down.
                            Some(last) if history.contains(&grant) || grant.1 < last.1 => overlaps += 1,
                            _ => history.push(grant),
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (reads, overlaps)
        });
        Monitor { stop, task }
    }

    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Release);
        self.task.await.unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn a_lock_held_on_one_node_is_held_for_every_node_and_waiters_get_it_in_queue_order() {
    let (_nats, nodes) = cluster().await;
    let a = logged_in(&nodes[0], "a").await;
    let b = logged_in(&nodes[1], "b").await;
    let c = logged_in(&nodes[2], "c").await;
    let watcher = client_of(&nodes[2], "watcher");
    let mut events = watcher.events();
    watcher.login("").await.unwrap();
    a.lock().set_lock("ops", ChannelType::MESSAGE, "deploy", 0).await.unwrap();
    let e = b.lock().set_lock("ops", ChannelType::MESSAGE, "deploy", 0).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::LOCK_ALREADY_EXIST);
    let token_a = a.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", false).await.unwrap().value;
    watcher.subscribe("ops", with(true, true)).await.unwrap();
    let ev = expect_event(
        &mut events,
        "the lock snapshot",
        |e| matches!(e, Event::Lock(l) if l.event_type == LockEventType::SNAPSHOT),
    )
    .await;
    let Event::Lock(snap) = ev else { unreachable!() };
    let listed: Vec<(String, String)> = snap.snapshot.iter().map(|l| (l.name.clone(), l.owner.clone())).collect();
    // The snapshot is this node's replica: it shows A's grant, or (if the grant was not there
    // yet) the grant follows as an event.
    if listed != [("deploy".to_string(), "a".to_string())] {
        assert!(listed.iter().all(|(n, _)| n == "deploy"), "{listed:?}");
        expect_event(
            &mut events,
            "A's grant",
            |e| matches!(e, Event::Lock(l) if l.event_type == LockEventType::ACQUIRED && l.owner == "a"),
        )
        .await;
    }
    // Held for every node: B without retry fails at once.
    let e = b.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", false).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::LOCK_ACQUIRE_FAILED, "{e}");
    // Lock-gated writes: the owner on A may, a non-owner on B may not.
    let gated = |token| MetadataOptions { lock_name: "deploy".into(), fencing_token: token, ..Default::default() };
    a.storage().set_channel_metadata("ops", ChannelType::MESSAGE, meta(&[("v", "a")]), gated(token_a)).await.unwrap();
    let e =
        b.storage().set_channel_metadata("ops", ChannelType::MESSAGE, meta(&[("v", "b")]), gated(0)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::STORAGE_LOCK_NOT_ACQUIRED, "{e}");
    // B, then C wait (retry).
    let wait_b = b.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", true);
    let wait_b = tokio::spawn(wait_b);
    tokio::time::sleep(Duration::from_millis(300)).await; // B queued before C
    let wait_c = tokio::spawn(c.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", true));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!wait_b.is_finished() && !wait_c.is_finished(), "a waiter got a held lock");
    a.lock().release_lock("ops", ChannelType::MESSAGE, "deploy").await.unwrap();
    let token_b = tokio::time::timeout(WAIT, wait_b).await.expect("B was not granted").unwrap().unwrap().value;
    assert!(token_b > token_a, "fencing tokens increase: {token_a} then {token_b}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!wait_c.is_finished(), "C got the lock while B holds it");
    let owners: Vec<String> = {
        let mut v = Vec::new();
        for cl in [&a, &b, &c] {
            v.push(cl.lock().get_locks("ops", ChannelType::MESSAGE).await.unwrap()[0].owner.clone());
        }
        v
    };
    assert_eq!(owners, ["b", "b", "b"]);
    // A's token is stale now, even for a write naming the lock.
    let e = a
        .storage()
        .set_channel_metadata("ops", ChannelType::MESSAGE, meta(&[("v", "a2")]), gated(token_a))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::STORAGE_LOCK_NOT_ACQUIRED, "{e}");
    b.lock().release_lock("ops", ChannelType::MESSAGE, "deploy").await.unwrap();
    let token_c = tokio::time::timeout(WAIT, wait_c).await.expect("C was not granted").unwrap().unwrap().value;
    assert!(token_c > token_b);
    // The watcher on node C saw it all, in order.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let ev = expect_event(&mut events, "lock events", |e| matches!(e, Event::Lock(_))).await;
        let Event::Lock(l) = ev else { unreachable!() };
        seen.push((l.event_type, l.owner.clone(), l.fencing_token));
    }
    let want = [
        (LockEventType::RELEASED, "a", token_a),
        (LockEventType::ACQUIRED, "b", token_b),
        (LockEventType::RELEASED, "b", token_b),
        (LockEventType::ACQUIRED, "c", token_c),
    ];
    assert_eq!(seen, want.map(|(t, o, k)| (t, o.to_string(), k)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn many_acquirers_on_three_nodes_never_share_a_lock() {
    let (_nats, nodes) = cluster().await;
    let admin = logged_in(&nodes[0], "admin").await;
    admin.lock().set_lock("bank", ChannelType::MESSAGE, "vault", 0).await.unwrap();
    let mut monitors = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        monitors.push(logged_in(n, &format!("monitor{i}")).await);
    }
    let monitor = Monitor::start(monitors, "bank");
    let inside = Arc::new(AtomicUsize::new(0));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let c = logged_in(&nodes[i % 3], &format!("w{i}")).await;
        let (inside, overlaps) = (inside.clone(), overlaps.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..3 {
                c.lock().acquire_lock("bank", ChannelType::MESSAGE, "vault", true).await.unwrap();
                if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                let owner = c.lock().get_locks("bank", ChannelType::MESSAGE).await.unwrap()[0].owner.clone();
                assert_eq!(owner, c.user_id());
                tokio::time::sleep(Duration::from_millis(5)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                c.lock().release_lock("bank", ChannelType::MESSAGE, "vault").await.unwrap();
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t).await.expect("an acquirer starved").unwrap();
    }
    let (reads, seen_overlaps) = monitor.finish().await;
    let overlaps = overlaps.load(Ordering::SeqCst);
    println!(
        "lock race: 6 clients on 3 nodes x 3 rounds; overlaps in the critical section {overlaps}, in {reads} getLocks reads {seen_overlaps}"
    );
    assert_eq!((overlaps, seen_overlaps), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn an_owner_back_on_another_node_within_the_ttl_keeps_its_lock_and_one_that_stays_away_loses_it() {
    let nats = start_nats().await;
    // Lock ttls pass 10 times faster (10 s -> 1 s).
    let fast_ttl = |c: &mut rtm2_server::ServerConfig| c.ttl_unit = Duration::from_millis(100);
    let mut nodes = Vec::new();
    for id in ["node-a", "node-b", "node-c"] {
        nodes.push(node_with(&nats.url, id, fast_ttl).await);
    }
    let owner = logged_in(&nodes[0], "owner").await;
    owner.lock().set_lock("ops", ChannelType::MESSAGE, "deploy", 10).await.unwrap();
    let token = owner.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", false).await.unwrap().value;
    let watcher = client_of(&nodes[2], "watcher");
    let mut events = watcher.events();
    watcher.login("").await.unwrap();
    watcher.subscribe("ops", with(false, true)).await.unwrap();
    // Gone from node A, back on node B within the ttl (1 s): still the owner, same grant.
    owner.logout().await.unwrap();
    drop(owner);
    let owner = logged_in(&nodes[1], "owner").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let l = watcher.lock().get_locks("ops", ChannelType::MESSAGE).await.unwrap();
    assert_eq!((l[0].owner.as_str(), l[0].fencing_token), ("owner", token), "the owner came back in time");
    assert_eq!(owner.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", false).await.unwrap().value, token);
    // A waiter on node C; the owner goes away for good: the waiter gets it after the ttl.
    let waiter = logged_in(&nodes[2], "waiter").await;
    let waiting = tokio::spawn(waiter.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", true));
    tokio::time::sleep(Duration::from_millis(300)).await;
    owner.logout().await.unwrap();
    let gone = tokio::time::Instant::now();
    let token_w =
        tokio::time::timeout(WAIT, waiting).await.expect("the waiter never got the lock").unwrap().unwrap().value;
    assert!(gone.elapsed() >= Duration::from_millis(800), "freed before the ttl: {:?}", gone.elapsed());
    assert!(token_w > token);
    expect_event(&mut events, "RELEASED by the owner's expiry", |e| {
        matches!(e, Event::Lock(l) if l.event_type == LockEventType::RELEASED && l.owner == "owner" && l.publisher == "owner")
    })
    .await;
    expect_event(&mut events, "ACQUIRED by the waiter", |e| {
        matches!(e, Event::Lock(l) if l.event_type == LockEventType::ACQUIRED && l.owner == "waiter" && l.fencing_token == token_w)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn an_owner_that_leaves_the_channel_loses_its_lock_after_the_ttl_and_a_leaving_waiter_is_withdrawn() {
    let nats = start_nats().await;
    let fast_ttl = |c: &mut rtm2_server::ServerConfig| c.ttl_unit = Duration::from_millis(100);
    let mut nodes = Vec::new();
    for id in ["node-a", "node-b", "node-c"] {
        nodes.push(node_with(&nats.url, id, fast_ttl).await);
    }
    let owner = logged_in(&nodes[0], "owner").await;
    let waiter = logged_in(&nodes[1], "waiter").await;
    let quitter = logged_in(&nodes[2], "quitter").await;
    for c in [&owner, &waiter, &quitter] {
        c.subscribe("ops", SubscribeOptions::default()).await.unwrap();
    }
    owner.lock().set_lock("ops", ChannelType::MESSAGE, "deploy", 10).await.unwrap();
    let token = owner.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", false).await.unwrap().value;
    let waiting = tokio::spawn(waiter.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", true));
    let quitting = tokio::spawn(quitter.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", true));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A waiter that leaves the channel is withdrawn.
    quitter.unsubscribe("ops").await.unwrap();
    let e = tokio::time::timeout(WAIT, quitting).await.expect("the leaving waiter was not answered").unwrap();
    assert_eq!(e.unwrap_err().code, ErrorCode::LOCK_OPERATION_FAILED);
    // The owner leaves and enters again within the ttl (1 s): it keeps the lock.
    owner.unsubscribe("ops").await.unwrap();
    owner.subscribe("ops", SubscribeOptions::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let l = waiter.lock().get_locks("ops", ChannelType::MESSAGE).await.unwrap();
    assert_eq!((l[0].owner.as_str(), l[0].fencing_token), ("owner", token));
    assert!(!waiting.is_finished());
    // It leaves for good (online still): the waiter gets the lock after the ttl.
    owner.unsubscribe("ops").await.unwrap();
    let left = tokio::time::Instant::now();
    let token_w =
        tokio::time::timeout(WAIT, waiting).await.expect("the waiter never got the lock").unwrap().unwrap().value;
    assert!(left.elapsed() >= Duration::from_millis(800), "freed before the ttl: {:?}", left.elapsed());
    assert!(token_w > token);
}

/// An `rtm2 serve` node joined to `nats`, killed (SIGKILL) when dropped; and its address.
struct Doomed(Child);

impl Drop for Doomed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn doomed_node(nats: &str) -> (Doomed, String) {
    let bin =
        std::env::var("RTM2_BIN").unwrap_or_else(|_| format!("{}/../target/debug/rtm2", env!("CARGO_MANIFEST_DIR")));
    let id = format!("doomed-{}-{}", std::process::id(), rtm2_proto::now_ms());
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-rate-limits", "--cluster", nats, "--node-id", &id])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start rtm2 serve (cargo build -p rtm2-cli)");
    let stderr = child.stderr.take().unwrap();
    let doomed = Doomed(child);
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("rtm2 serve ended").unwrap();
        if let Some(rest) = line.strip_prefix("rtm2 server listening on ") {
            break rest.split(' ').next().unwrap().to_string();
        }
    };
    // Keep draining its log, so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (doomed, addr)
}

async fn login_when_ready(c: &Client) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout(WAIT, c.login("")).await.expect("login") {
            Ok(_) => return,
            Err(e) if e.code == ErrorCode::LOGIN_NO_SERVER_RESOURCES => {
                assert!(tokio::time::Instant::now() < deadline, "the node never joined: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("login: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn the_lock_of_an_owner_on_a_killed_node_is_freed_after_its_ttl_and_acknowledged_writes_stay() {
    let nats = start_nats().await;
    // Lock ttls of the surviving nodes pass 10 times faster (10 s -> 1 s).
    let fast_ttl = |c: &mut rtm2_server::ServerConfig| c.ttl_unit = Duration::from_millis(100);
    let nodes = [node_with(&nats.url, "node-a", fast_ttl).await, node_with(&nats.url, "node-b", fast_ttl).await];
    let (mut doomed, addr) = doomed_node(&nats.url);
    let mut cfg = ClientConfig::new(APP_ID, "dora").endpoint(Endpoint::Tcp(addr));
    fast(&mut cfg);
    let dora = Client::new(cfg).unwrap();
    login_when_ready(&dora).await;
    dora.lock().set_lock("ops", ChannelType::MESSAGE, "deploy", 10).await.unwrap();
    let token_d = dora.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", false).await.unwrap().value;
    // Acknowledged writes on the doomed node.
    for i in 0..10 {
        dora.storage()
            .set_channel_metadata("ops", ChannelType::MESSAGE, meta(&[("i", &i.to_string())]), Default::default())
            .await
            .unwrap();
    }
    let waiter = logged_in(&nodes[0], "waiter").await;
    let monitor = Monitor::start(vec![logged_in(&nodes[0], "m0").await, logged_in(&nodes[1], "m1").await], "ops");
    let waiting = tokio::spawn(waiter.lock().acquire_lock("ops", ChannelType::MESSAGE, "deploy", true));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished());
    let _ = doomed.0.kill();
    let _ = doomed.0.wait();
    let killed = tokio::time::Instant::now();
    let token_w = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the lock of the killed owner was never freed")
        .unwrap()
        .unwrap()
        .value;
    let took = killed.elapsed();
    // Its node is gone after 5 s of silence, then the 1 s ttl runs.
    assert!(took >= Duration::from_secs(4), "freed {took:?} after the kill: before the node's timeout and ttl?");
    assert!(token_w > token_d);
    let (reads, overlaps) = monitor.finish().await;
    println!("node death: lock granted elsewhere {took:?} after the kill; {reads} getLocks reads, overlaps {overlaps}");
    assert_eq!(overlaps, 0);
    for n in &nodes {
        let c = logged_in(n, "reader").await;
        let m = c.storage().get_channel_metadata("ops", ChannelType::MESSAGE).await.unwrap();
        assert_eq!((m.major_revision, m.get("i").map(|i| i.value.clone())), (10, Some("9".into())));
        let l = c.lock().get_locks("ops", ChannelType::MESSAGE).await.unwrap();
        assert_eq!((l[0].owner.as_str(), l[0].fencing_token), ("waiter", token_w));
        c.logout().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn a_node_that_lost_nats_answers_storage_and_lock_requests_with_operation_failed() {
    let mut nats = start_nats().await;
    let n = node(&nats.url, "cut-off").await;
    let a = logged_in(&n, "a").await;
    a.storage().set_user_metadata("a", meta(&[("k", "v")]), Default::default()).await.unwrap();
    let _ = nats.child.kill();
    let _ = nats.child.wait();
    let deadline = tokio::time::Instant::now() + WAIT;
    while n.server.cluster_ready() {
        assert!(tokio::time::Instant::now() < deadline, "the node did not notice NATS is gone");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = a.storage().set_user_metadata("a", meta(&[("k", "w")]), Default::default()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::STORAGE_OPERATION_FAILED, "{e}");
    assert!(e.reason.contains("not connected to the cluster"), "{e}");
    let e = a.storage().get_user_metadata("a").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::STORAGE_OPERATION_FAILED, "{e}");
    let e = a.lock().set_lock("ops", ChannelType::MESSAGE, "deploy", 0).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::LOCK_OPERATION_FAILED, "{e}");
    assert!(e.reason.contains("not connected to the cluster"), "{e}");
}
