//! Metadata shared by every node of a cluster, in a NATS JetStream key-value bucket
//! (docs/CLUSTER.md): a real nats-server with JetStream and three nodes. Run by
//! `scripts/test-cluster` (ignored by a plain `cargo test`, which has no nats-server).

mod common;

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
        let ev = expect_event(&mut events, "a channel update", |e| {
            matches!(e, Event::Storage(s) if s.event_type == StorageEventType::UPDATE && s.storage_type == StorageType::CHANNEL)
        })
        .await;
        let Event::Storage(u) = ev else { unreachable!() };
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: run scripts/test-cluster"]
async fn a_node_that_lost_nats_answers_storage_requests_with_operation_failed() {
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
}
