//! Message history against real servers: `store_in_history` publishes read back a page at a
//! time, newest first, without a gap between pages (even for messages of one millisecond); a
//! user channel's history is its own user's; encrypted messages stay ciphertext on the server;
//! with a data directory an acknowledged stored message survives the server's SIGKILL.

mod common;

use std::io::BufRead;
use std::time::Duration;

use common::*;
use rtm2_core::*;
use rtm2_server::{MetadataStore, Server, ServerConfig};

async fn tcp_server(config: ServerConfig) -> (Server, String) {
    let server = Server::start(config);
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    (server, addr.to_string())
}

async fn user_at(addr: &str, user: &str, encryption: EncryptionConfig) -> (Client, EventReceiver) {
    let mut cfg = ClientConfig::new(APP_ID, user).endpoint(Endpoint::Tcp(addr.to_string()));
    cfg.encryption = encryption;
    fast(&mut cfg);
    let c = Client::new(cfg).unwrap();
    let rx = c.events();
    c.login("").await.unwrap();
    (c, rx)
}

fn stored() -> PublishOptions {
    PublishOptions { store_in_history: true, ..Default::default() }
}

/// Every stored message of a channel, newest first, page by page (`count` per page).
async fn all_pages(c: &Client, channel: &str, t: ChannelType, count: u32) -> Vec<HistoryMessage> {
    let mut out = Vec::new();
    let mut start = 0;
    for _ in 0..1000 {
        let opts = GetMessagesOptions { message_count: count, start, end: 0 };
        let page = c.history().get_messages(channel, t, opts).await.unwrap().into_inner();
        assert!(page.messages.len() <= count.clamp(1, 100) as usize);
        out.extend(page.messages);
        if page.new_start == 0 {
            return out;
        }
        start = page.new_start;
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn stored_messages_come_back_newest_first_page_by_page() {
    let (_s, addr) = tcp_server(dev_config()).await;
    let (alice, _a) = user_at(&addr, "alice", Default::default()).await;
    let (bob, _b) = user_at(&addr, "bob", Default::default()).await;
    let mut sub = bob.subscribe("room", SubscribeOptions::default()).await.unwrap();
    // Pipelined: many in one millisecond.
    let ops: Vec<_> = (0..250).map(|i| alice.publish("room", format!("m{i}"), stored())).collect();
    for op in ops {
        op.await.unwrap();
    }
    alice.publish("room", "not stored", PublishOptions::default()).await.unwrap();
    let mut delivered = Vec::new();
    for _ in 0..251 {
        delivered.push(next_message(&mut sub).await);
    }
    let got = all_pages(&bob, "room", ChannelType::MESSAGE, 100).await;
    let texts: Vec<String> = got.iter().map(|m| m.text().unwrap().to_string()).collect();
    let want: Vec<String> = (0..250).rev().map(|i| format!("m{i}")).collect();
    assert_eq!(texts, want);
    assert!(got.iter().all(|m| m.publisher == "alice" && m.message_type == MessageType::STRING));
    // Unique timestamps, and the delivered message carries the stored one's.
    assert!(got.windows(2).all(|w| w[0].timestamp_ms > w[1].timestamp_ms));
    assert_eq!(delivered[0].timestamp_ms, got[249].timestamp_ms);
    // end is inclusive, start exclusive.
    let (newest, oldest) = (got[0].timestamp_ms, got[249].timestamp_ms);
    let opts = GetMessagesOptions { message_count: 0, start: newest, end: newest - 4 };
    let page = bob.history().get_messages("room", ChannelType::MESSAGE, opts).await.unwrap();
    assert_eq!(page.messages.iter().map(|m| m.text().unwrap()).collect::<Vec<_>>(), ["m248", "m247", "m246", "m245"]);
    assert_eq!(page.new_start, 0);
    // Invalid ranges and channel types: their codes.
    let bad = GetMessagesOptions { message_count: 10, start: oldest, end: newest };
    let e = bob.history().get_messages("room", ChannelType::MESSAGE, bad).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::HISTORY_INVALID_TIMESTAMP);
    let e = bob.history().get_messages("room", ChannelType::STREAM, Default::default()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::INVALID_CHANNEL_TYPE);
    // A channel nobody stored in: an empty page.
    let empty = bob.history().get_messages("quiet", ChannelType::MESSAGE, Default::default()).await.unwrap();
    assert_eq!((empty.messages.len(), empty.new_start), (0, 0));
}

#[tokio::test]
async fn a_user_channels_history_is_its_own_users() {
    let (_s, addr) = tcp_server(dev_config()).await;
    let (alice, _a) = user_at(&addr, "alice", Default::default()).await;
    let (bob, mut bob_rx) = user_at(&addr, "bob", Default::default()).await;
    alice
        .publish("bob", vec![1u8, 2, 3], PublishOptions { channel_type: ChannelType::USER, ..stored() })
        .await
        .unwrap();
    expect_message(&mut bob_rx, |m| m.channel_type == ChannelType::USER).await;
    // To a user who is offline: stored, and said so (11035).
    let e = alice
        .publish("carol", "later", PublishOptions { channel_type: ChannelType::USER, ..stored() })
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED);
    let mine = bob.history().get_messages("bob", ChannelType::USER, Default::default()).await.unwrap();
    assert_eq!(mine.messages.len(), 1);
    assert_eq!((&mine.messages[0].payload[..], mine.messages[0].publisher.as_str()), (&[1u8, 2, 3][..], "alice"));
    let e = alice.history().get_messages("bob", ChannelType::USER, Default::default()).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::HISTORY_OPERATION_NOT_PERMITTED);
    let (carol, _c) = user_at(&addr, "carol", Default::default()).await;
    let hers = carol.history().get_messages("carol", ChannelType::USER, Default::default()).await.unwrap();
    assert_eq!(hers.messages.iter().map(|m| m.text()).collect::<Vec<_>>(), [Some("later")]);
}

#[tokio::test]
async fn encrypted_history_is_read_with_the_same_key_only() {
    let (_s, addr) = tcp_server(dev_config()).await;
    let key = |k: &str| EncryptionConfig::new(EncryptionMode::AES_256_GCM, k, b"salt".to_vec());
    let (alice, _a) = user_at(&addr, "alice", key("k1")).await;
    alice.publish("vault", "sealed words", stored()).await.unwrap();
    let (bob, _b) = user_at(&addr, "bob", key("k1")).await;
    let page = bob.history().get_messages("vault", ChannelType::MESSAGE, Default::default()).await.unwrap();
    assert_eq!(page.messages.iter().map(|m| m.text()).collect::<Vec<_>>(), [Some("sealed words")]);
    // Another key, or none: left out.
    for other in [key("k2"), EncryptionConfig::default()] {
        let (eve, _e) = user_at(&addr, "eve", other).await;
        let page = eve.history().get_messages("vault", ChannelType::MESSAGE, Default::default()).await.unwrap();
        assert!(page.messages.is_empty(), "{page:?}");
        eve.logout().await.unwrap();
    }
}

#[tokio::test]
async fn retention_keeps_the_newest_per_channel() {
    let config = ServerConfig { history_max_per_channel: 20, ..dev_config() };
    let (_s, addr) = tcp_server(config).await;
    let (alice, _a) = user_at(&addr, "alice", Default::default()).await;
    for i in 0..50 {
        alice.publish("room", format!("{i}"), stored()).await.unwrap();
    }
    let got = all_pages(&alice, "room", ChannelType::MESSAGE, 7).await;
    assert_eq!(
        got.iter().map(|m| m.text().unwrap().parse::<u32>().unwrap()).collect::<Vec<_>>(),
        (30..50).rev().collect::<Vec<_>>()
    );
}

/// The server of the SIGKILL test, in a child process (this test binary, re-run): it serves
/// `RTM2_TEST_DATA_DIR` and prints its address, then waits to be killed.
#[test]
#[ignore]
fn history_server_child() {
    let Ok(dir) = std::env::var("RTM2_TEST_DATA_DIR") else { return };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let config = ServerConfig { metadata_store: MetadataStore::Directory(dir.into()), ..dev_config() };
        let server = Server::start(config);
        let at = std::env::var("RTM2_TEST_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
        let addr = server.listen_tcp(&at).await.unwrap();
        println!("LISTENING {addr}");
        tokio::time::sleep(Duration::from_secs(300)).await;
    });
}

fn spawn_server(dir: &std::path::Path) -> (std::process::Child, String) {
    spawn_server_at(dir, "127.0.0.1:0")
}

/// `spawn_server` listening on `addr`.
fn spawn_server_at(dir: &std::path::Path, addr: &str) -> (std::process::Child, String) {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "history_server_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env("RTM2_TEST_DATA_DIR", dir)
        .env("RTM2_TEST_ADDR", addr)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the child server ended").unwrap();
        // (After the harness's "test … " on the same line.)
        if let Some(i) = line.find("LISTENING ") {
            break line[i + "LISTENING ".len()..].trim().to_string();
        }
    };
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_stored_messages_survive_the_servers_sigkill() {
    let dir = std::env::temp_dir().join(format!("rtm2-history-{}-{}", std::process::id(), rtm2_proto::now_ms()));
    let (mut child, addr) = spawn_server(&dir);
    let (alice, _a) = user_at(&addr, "alice", Default::default()).await;
    // Pipelined (the server commits them in groups, acknowledging each batch once on disk),
    // then some one at a time.
    let ops: Vec<_> = (0..80).map(|i| alice.publish("durable", format!("d{i}"), stored())).collect();
    for op in ops {
        op.await.unwrap();
    }
    for i in 80..100 {
        alice.publish("durable", format!("d{i}"), stored()).await.unwrap();
    }
    // Every one acknowledged: now the server dies without a chance to flush anything.
    child.kill().unwrap();
    child.wait().unwrap();
    drop(alice);
    let (mut child, addr) = spawn_server(&dir);
    let (bob, _b) = user_at(&addr, "bob", Default::default()).await;
    let got = all_pages(&bob, "durable", ChannelType::MESSAGE, 100).await;
    assert_eq!(got.len(), 100, "acknowledged stored messages lost");
    assert_eq!(got[0].text(), Some("d99"));
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// After a server restart nothing can be resumed, and the server cannot know what was
/// published before it started without being stored: the client is told its channel may have
/// missed messages — and still gets every stored one it missed, marked recovered, in order,
/// before anything newer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_the_stored_messages_missed_are_recovered_and_the_channel_announced() {
    let dir = std::env::temp_dir().join(format!("rtm2-recover-{}-{}", std::process::id(), rtm2_proto::now_ms()));
    let (mut first, addr) = spawn_server(&dir);
    let mut cfg = ClientConfig::new(APP_ID, "alice").endpoint(Endpoint::Tcp(addr.clone()));
    fast(&mut cfg);
    cfg.reconnect_max_backoff = Duration::from_millis(200);
    let alice = Client::new(cfg).unwrap();
    let mut events = alice.events();
    alice.login("").await.unwrap();
    let mut room = alice.subscribe("room", SubscribeOptions::default()).await.unwrap();
    let (bob, _b) = user_at(&addr, "bob", Default::default()).await;
    bob.publish("room", "before", stored()).await.unwrap();
    assert_eq!(next_message(&mut room).await.text(), Some("before"));
    first.kill().unwrap();
    first.wait().unwrap();
    expect_event(&mut events, "DISCONNECTED", |e| is_link(e, LinkState::DISCONNECTED)).await;
    drop(bob);

    // While alice cannot connect, the same data directory is served elsewhere and written to.
    let (mut elsewhere, other) = spawn_server(&dir);
    let (carol, _c) = user_at(&other, "carol", Default::default()).await;
    for i in 0..20 {
        carol.publish("room", format!("while away {i}"), stored()).await.unwrap();
    }
    elsewhere.kill().unwrap();
    elsewhere.wait().unwrap();
    drop(carol);

    // Back at alice's address.
    let (mut again, _) = spawn_server_at(&dir, &addr);
    let ev = expect_event(&mut events, "CONNECTED", |e| is_link(e, LinkState::CONNECTED)).await;
    let Event::LinkState(l) = ev else { unreachable!() };
    assert!(!l.is_resumed);
    assert_eq!(l.affected_channels, vec!["room".to_string()], "a restarted server cannot vouch for the gap");
    let (dave, _d) = user_at(&addr, "dave", Default::default()).await;
    dave.publish("room", "after", PublishOptions::default()).await.unwrap();
    let mut recovered = 0;
    for i in 0..20 {
        let m = next_message(&mut room).await;
        assert_eq!(m.text(), Some(format!("while away {i}").as_str()));
        assert!(m.recovered);
        recovered += 1;
    }
    let m = next_message(&mut room).await;
    assert_eq!((m.text(), m.recovered), (Some("after"), false));
    println!("recovered {recovered} of 20 missed stored messages; announced missing: {:?}", l.affected_channels);
    again.kill().unwrap();
    again.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
