//! Several rtm2 nodes acting as one service, coordinated over NATS (`ServerConfig::cluster`).
//!
//! What crosses nodes today (docs/CLUSTER.md):
//! * message-channel messages: a node publishes each message of a local publisher once to the
//!   channel's NATS subject; every node with subscribers of that channel subscribes to the
//!   subject while it has them (interest, so at most one NATS message per message and
//!   receiving node) and delivers to its own subscribers. NATS keeps one connection's
//!   publishes in order, so one publisher's order holds across nodes;
//! * logins: one session per user id across the cluster — a login is announced, and a node
//!   with an older session of that user ends it (SAME_UID_LOGIN).
//!
//! Subjects (names hex-encoded: channel names may hold characters NATS subjects cannot):
//! `rtm2.v1.msg.<app>.<channel>` (a MessageEvent body) and `rtm2.v1.login.<app>.<user>`
//! (`<node id> <login time ms>`). The node connects with `no_echo`: it never receives its own
//! publishes.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::engine::{Engine, MsgChannel};

/// How to join a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS servers, `nats://host:port` (any of them; the client fails over between them).
    pub urls: Vec<String>,
    /// This node's id (unique in the cluster): logged, and reported to clients in
    /// `LoginResult.node_id`.
    pub node_id: String,
}

impl ClusterConfig {
    /// A config for these comma-separated NATS URLs, with a random node id.
    pub fn new(urls: &str) -> ClusterConfig {
        let urls = urls.split(',').map(str::trim).filter(|u| !u.is_empty()).map(String::from).collect();
        ClusterConfig { urls, node_id: random_node_id() }
    }
}

fn random_node_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    // The std hasher's keys are random per process; the time and pid tell nodes of one host apart.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    h.write_u32(std::process::id());
    format!("n{}", &hex(&h.finish().to_be_bytes())[..12])
}

pub(crate) fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let v: Option<Vec<u8>> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect();
    String::from_utf8(v?).ok()
}

pub(crate) fn msg_subject(app: &str, channel: &str) -> String {
    format!("rtm2.v1.msg.{}.{}", hex(app.as_bytes()), hex(channel.as_bytes()))
}

/// The node's link to the cluster.
pub(crate) struct Cluster {
    pub(crate) node_id: String,
    client: OnceLock<async_nats::Client>,
    /// Publishes, in order, to the NATS connection.
    out: mpsc::UnboundedSender<(String, Bytes)>,
}

impl Cluster {
    /// Starts connecting (in the background, retrying) and returns at once; logins are refused
    /// until the node is connected.
    pub(crate) fn start(config: &ClusterConfig, engine: Weak<Engine>) -> Arc<Cluster> {
        let (out, mut rx) = mpsc::unbounded_channel::<(String, Bytes)>();
        let cluster = Arc::new(Cluster { node_id: config.node_id.clone(), client: OnceLock::new(), out });
        tracing::info!(node = %config.node_id, nats = ?config.urls, "joining the cluster");
        let c = cluster.clone();
        let urls = config.urls.join(",");
        tokio::spawn(async move {
            let opts = async_nats::ConnectOptions::new()
                .no_echo()
                .retry_on_initial_connect()
                .name(format!("rtm2 node {}", c.node_id))
                .event_callback(|ev| async move {
                    match ev {
                        async_nats::Event::Connected => tracing::info!("cluster: connected to NATS"),
                        async_nats::Event::Disconnected => {
                            tracing::warn!("cluster: lost NATS; new logins are refused until it is back")
                        }
                        // (An unreachable NATS shows here at every failed attempt.)
                        other => tracing::warn!(event = %other, "cluster: NATS"),
                    }
                });
            let client = match opts.connect(urls.as_str()).await {
                Ok(client) => client,
                Err(e) => {
                    tracing::error!(error = %e, "cluster: cannot connect to NATS; this node refuses logins");
                    return;
                }
            };
            let _ = c.client.set(client.clone());
            // Logins of other nodes.
            if let Ok(mut logins) = client.subscribe("rtm2.v1.login.>").await {
                tokio::spawn(async move {
                    while let Some(m) = logins.next().await {
                        let Some(engine) = engine.upgrade() else { break };
                        on_login_elsewhere(&engine, m.subject.as_str(), &m.payload);
                    }
                });
            }
            while let Some((subject, body)) = rx.recv().await {
                if let Err(e) = client.publish(subject, body).await {
                    tracing::warn!(error = %e, "cluster: a publish to NATS failed");
                }
            }
        });
        cluster
    }

    /// Whether the node can serve logins (connected to NATS).
    pub(crate) fn ready(&self) -> bool {
        self.client.get().is_some_and(|c| c.connection_state() == async_nats::connection::State::Connected)
    }

    /// Forwards the messages of a local publisher to the other nodes (in order).
    pub(crate) fn forward(&self, app: &str, channel: &str, bodies: impl IntoIterator<Item = Bytes>) {
        let subject = msg_subject(app, channel);
        for body in bodies {
            let _ = self.out.send((subject.clone(), body));
        }
    }

    /// Announces a login, so that other nodes end this user's older session.
    pub(crate) fn announce_login(&self, app: &str, user: &str, login_ms: u64) {
        let subject = format!("rtm2.v1.login.{}.{}", hex(app.as_bytes()), hex(user.as_bytes()));
        let _ = self.out.send((subject, Bytes::from(format!("{} {login_ms}", self.node_id))));
    }

    /// Subscribes to a channel's messages from other nodes while `channel` lives; `ready`
    /// turns true once NATS confirmed the subscription.
    pub(crate) fn watch(self: &Arc<Self>, app: &str, name: &str, channel: Weak<MsgChannel>) -> Watch {
        let (ready_tx, ready) = watch::channel(false);
        let subject = msg_subject(app, name);
        let me = self.clone();
        let task = tokio::spawn(async move {
            let client = loop {
                if let Some(c) = me.client.get() {
                    break c.clone();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let Ok(mut sub) = client.subscribe(subject).await else { return };
            let _ = client.flush().await;
            let _ = ready_tx.send(true);
            while let Some(m) = sub.next().await {
                let Some(ch) = channel.upgrade() else { break };
                ch.deliver_remote(m.payload);
            }
        });
        Watch { task, ready }
    }
}

/// A node's interest in a channel's messages from other nodes; dropping it unsubscribes.
pub(crate) struct Watch {
    task: tokio::task::JoinHandle<()>,
    ready: watch::Receiver<bool>,
}

impl Watch {
    /// Waits (at most `limit`) until the subscription is in place on NATS.
    pub(crate) async fn ready(&self, limit: Duration) -> bool {
        let mut r = self.ready.clone();
        tokio::time::timeout(limit, r.wait_for(|v| *v)).await.is_ok()
    }

    pub(crate) fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Another node announced a login: end this node's session of that user if it is older.
fn on_login_elsewhere(engine: &Arc<Engine>, subject: &str, payload: &[u8]) {
    let mut parts = subject.split('.').skip(3);
    let (Some(app), Some(user)) = (parts.next().and_then(unhex), parts.next().and_then(unhex)) else { return };
    let text = String::from_utf8_lossy(payload);
    let mut words = text.split(' ');
    let (Some(node), Some(ms)) = (words.next(), words.next().and_then(|w| w.parse::<u64>().ok())) else { return };
    engine.login_elsewhere(&app, &user, node, ms);
}
