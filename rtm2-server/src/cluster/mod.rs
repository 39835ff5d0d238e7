//! Several rtm2 nodes acting as one service, coordinated over NATS (`ServerConfig::cluster`).
//!
//! What crosses nodes today (docs/CLUSTER.md):
//! * message-channel messages: a node publishes each message of a local publisher once to the
//!   channel's NATS subject; every node with subscribers of that channel subscribes to the
//!   subject while it has them (interest, so at most one NATS message per message and
//!   receiving node) and delivers to its own subscribers. NATS keeps one connection's
//!   publishes in order, so one publisher's order holds across nodes;
//! * notes: each node tells the others about every change of its users — logins and logouts,
//!   presence in channels, stream-channel membership and topics — in one ordered stream of
//!   notes (`notes.rs`). Every node keeps a replica of the others' users from them: a directory
//!   of who is online where (peer-to-peer messages go to that user's node alone; 11033 only
//!   when the user is online nowhere; a login on one node ends an older session of the user on
//!   another, SAME_UID_LOGIN), and who is present where. Nodes acknowledge the notes they
//!   applied; a request that changed what others see (a login, a subscribe, a state change…) is
//!   answered once every live node applied its notes, so that whatever a client does next, on
//!   any node, sees the change;
//! * heartbeats: a node silent for `NODE_TIMEOUT` is gone, with its users (their presence times
//!   out after their presence timeout).
//! * channel and user metadata (`storage.rs`) and locks (`locks.rs`), in JetStream key-value
//!   buckets every node watches; a node is ready (takes logins) once they are bound.
//!
//! Subjects (names hex-encoded: channel names may hold characters NATS subjects cannot):
//! `rtm2.v1.msg.<app>.<channel>` (a MessageEvent body), `rtm2.v1.topic.<app>.<channel>` (topic
//! messages), `rtm2.v1.pres` (notes), `rtm2.v1.ack.<node>` (acknowledgements of that node's
//! notes), `rtm2.v1.psync` (a joining node asks; each node answers with its users),
//! `rtm2.v1.node.<node>` (heartbeat) and `rtm2.v1.to.<node>` (`<app> <user>\n` + a
//! MessageEvent body for that user, or `<app> <user> kick\n<reason>`: end that user's session). The node connects with `no_echo`: it never receives its
//! own publishes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::engine::{Engine, MsgChannel};

mod bucket;
mod directory;
pub(crate) mod locks;
mod notes;
pub(crate) mod storage;
mod subjects;

use directory::{Directory, HEARTBEAT, NODE_TIMEOUT};
pub(crate) use notes::{Note, NoteKind, RemotePresence};
pub(crate) use subjects::{hex, msg_subject, parse_topic_message, topic_subject, unhex};

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

impl ClusterConfig {
    /// A node id is 1–64 of `A-Z a-z 0-9 - _` (it is part of NATS subjects); at least one URL.
    pub fn check(&self) -> Result<(), String> {
        let id = &self.node_id;
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(format!("node id {id:?}: use 1 to 64 of A-Z a-z 0-9 - _"));
        }
        if self.urls.is_empty() {
            return Err("a cluster needs at least one NATS URL (nats://host:port)".into());
        }
        Ok(())
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

/// The node's link to the cluster.
pub(crate) struct Cluster {
    pub(crate) node_id: String,
    client: OnceLock<async_nats::Client>,
    /// Publishes, in order, to the NATS connection.
    out: mpsc::UnboundedSender<Outgoing>,
    directory: Mutex<Directory>,
    /// The node's tasks (connection, subscriptions, heartbeat), aborted by `stop`: a stopped
    /// node leaves the cluster (its NATS connection closes with the last client handle).
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    /// The notes (presence and stream membership) this node has sent.
    note_seq: std::sync::atomic::AtomicU64,
    /// The highest note of this node each other node acknowledged (applied).
    acks: Mutex<HashMap<String, u64>>,
    /// Signalled when an acknowledgement comes.
    acked: tokio::sync::Notify,
    /// By node: what this node applied of its notes. Held while a note or a sync answer is
    /// applied, so that they apply one at a time.
    log: Mutex<HashMap<String, notes::NodeLog>>,
    /// Asks for a sync with a node (`Some`), or with every node (`None`).
    resync: mpsc::UnboundedSender<Option<String>>,
    resync_rx: Mutex<Option<mpsc::UnboundedReceiver<Option<String>>>>,
    /// The metadata bucket and this node's replica of it.
    pub(crate) storage: storage::State,
    /// The locks bucket, this node's replica of it and its waiting acquisitions.
    pub(crate) locks: locks::State,
}

/// A publish: subject, reply subject, payload.
type Outgoing = (String, Option<String>, Bytes);

impl Cluster {
    /// Starts connecting (in the background, retrying) and returns at once; logins are refused
    /// until the node is connected.
    /// `replicas`: of the key-value buckets, when this node creates them.
    pub(crate) fn start(config: &ClusterConfig, replicas: usize, engine: Weak<Engine>) -> Arc<Cluster> {
        let (out, mut rx) = mpsc::unbounded_channel::<Outgoing>();
        let (resync, resync_rx) = mpsc::unbounded_channel();
        let cluster = Arc::new(Cluster {
            node_id: config.node_id.clone(),
            client: OnceLock::new(),
            out,
            directory: Mutex::default(),
            tasks: Mutex::default(),
            note_seq: Default::default(),
            acks: Mutex::default(),
            acked: tokio::sync::Notify::new(),
            log: Mutex::default(),
            resync: resync.clone(),
            resync_rx: Mutex::new(Some(resync_rx)),
            storage: storage::State::default(),
            locks: locks::State::default(),
        });
        tracing::info!(node = %config.node_id, nats = ?config.urls, "joining the cluster");
        let c = cluster.clone();
        let urls = config.urls.join(",");
        let main = tokio::spawn(async move {
            let opts = async_nats::ConnectOptions::new()
                .no_echo()
                .retry_on_initial_connect()
                .name(format!("rtm2 node {}", c.node_id))
                .event_callback(move |ev| {
                    let resync = resync.clone();
                    async move {
                        match ev {
                            async_nats::Event::Connected => {
                                tracing::info!("cluster: connected to NATS");
                                // Notes sent while it was away were lost: sync with every node.
                                let _ = resync.send(None);
                            }
                            async_nats::Event::Disconnected => {
                                tracing::warn!("cluster: lost NATS; new logins are refused until it is back")
                            }
                            // (An unreachable NATS shows here at every failed attempt.)
                            other => tracing::warn!(event = %other, "cluster: NATS"),
                        }
                    }
                });
            let client = match opts.connect(urls.as_str()).await {
                Ok(client) => client,
                Err(e) => {
                    tracing::error!(error = %e, "cluster: cannot connect to NATS; this node refuses logins");
                    return;
                }
            };
            // The engine is built (this task may start while it is still being made): what
            // the subscriptions and the sync below deliver goes to it.
            while engine.strong_count() == 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            if let Err(e) = c.listen(&client, engine.clone()).await {
                tracing::error!(error = %e, "cluster: cannot subscribe on NATS; this node refuses logins");
                return;
            }
            // The key-value buckets (metadata, locks): bound before the node takes logins.
            let js = async_nats::jetstream::new(client.clone());
            loop {
                let bound = match storage::bind(&c, &js, replicas, engine.clone()).await {
                    Ok(()) => locks::bind(&c, &js, replicas, engine.clone()).await,
                    Err(e) => Err(e),
                };
                match bound {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cluster: cannot bind the key-value buckets (is JetStream on?); retrying")
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let _ = c.client.set(client.clone());
            while let Some((subject, reply, body)) = rx.recv().await {
                let sent = match reply {
                    None => client.publish(subject, body).await,
                    Some(reply) => client.publish_with_reply(subject, reply, body).await,
                };
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "cluster: a publish to NATS failed");
                }
            }
        });
        cluster.keep(main.abort_handle());
        cluster
    }

    fn keep_spawned(&self, task: tokio::task::JoinHandle<()>) {
        self.keep(task.abort_handle());
    }

    fn keep(&self, task: tokio::task::AbortHandle) {
        self.tasks.lock().unwrap().push(task);
    }

    /// Leaves the cluster: stops every task of the node (the server is shutting down).
    pub(crate) fn stop(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    /// The subscriptions of the node: heartbeats, messages for its users, acknowledgements of
    /// its notes; the notes of the other nodes (after a sync); then its own heartbeat.
    async fn listen(self: &Arc<Self>, client: &async_nats::Client, engine: Weak<Engine>) -> Result<(), String> {
        let sub = |s: String| {
            let client = client.clone();
            async move { client.subscribe(s).await.map_err(|e| e.to_string()) }
        };
        let mut beats = sub("rtm2.v1.node.*".into()).await?;
        let mut mine = sub(format!("rtm2.v1.to.{}", self.node_id)).await?;
        let mut acks = sub(notes::ack_subject(&self.node_id)).await?;
        let me = self.clone();
        self.keep_spawned(tokio::spawn(async move {
            while let Some(m) = beats.next().await {
                if let Some(node) = m.subject.as_str().strip_prefix("rtm2.v1.node.") {
                    let new = me.directory.lock().unwrap().nodes.insert(node.to_string(), Instant::now()).is_none();
                    if new {
                        // A node that joined, or came back after it was taken as gone.
                        let _ = me.resync.send(Some(node.to_string()));
                    }
                }
            }
        }));
        let eng = engine.clone();
        self.keep_spawned(tokio::spawn(async move {
            while let Some(m) = mine.next().await {
                let Some(engine) = eng.upgrade() else { break };
                let p = &m.payload;
                let Some(nl) = p.iter().position(|&b| b == b'\n') else { continue };
                let head = String::from_utf8_lossy(&p[..nl]);
                let mut w = head.split(' ');
                let (Some(app), Some(user)) = (w.next().and_then(unhex), w.next().and_then(unhex)) else { continue };
                if w.next() == Some("kick") {
                    engine.kick_here(&app, &user, &String::from_utf8_lossy(&p[nl + 1..]));
                    continue;
                }
                engine.deliver_to_user(&app, &user, m.payload.slice(nl + 1..));
            }
        }));
        let me = self.clone();
        self.keep_spawned(tokio::spawn(async move {
            while let Some(m) = acks.next().await {
                me.on_ack(&m.payload);
            }
        }));
        // Who is online and present where elsewhere, and the notes of changes from now on.
        self.follow_notes(client, engine.clone()).await?;
        // Heartbeats, and the directory's sweep.
        let me = self.clone();
        let c = client.clone();
        self.keep_spawned(tokio::spawn(async move {
            let subject = format!("rtm2.v1.node.{}", me.node_id);
            // Until the engine is gone (the server was dropped). It may not be alive yet when
            // this starts (the engine is still being built): a loop that ended then would send
            // no heartbeat and sweep nothing, ever.
            let mut was_alive = false;
            loop {
                let alive = eng_alive(&engine);
                if !alive && was_alive {
                    break;
                }
                was_alive |= alive;
                let _ = c.publish(subject.clone(), Bytes::new()).await;
                let gone = me.directory.lock().unwrap().sweep();
                if !gone.is_empty() {
                    // Nobody waits for the acknowledgements of a node that is gone.
                    me.acked.notify_waiters();
                }
                if let Some(engine) = engine.upgrade() {
                    for node in gone {
                        engine.node_gone(&node, NODE_TIMEOUT);
                    }
                }
                tokio::time::sleep(HEARTBEAT).await;
            }
        }));
        Ok(())
    }

    /// Sends a peer-to-peer message to `user` if it is online on another node; false if not.
    pub(crate) fn send_to_user(&self, app: &str, user: &str, body: Bytes) -> bool {
        let node = {
            let d = self.directory.lock().unwrap();
            match d.users.get(&(app.to_string(), user.to_string())) {
                Some((node, _)) => node.clone(),
                None => return false,
            }
        };
        let mut payload = format!("{} {}\n", hex(app.as_bytes()), hex(user.as_bytes())).into_bytes();
        payload.extend_from_slice(&body);
        let _ = self.out.send((format!("rtm2.v1.to.{node}"), None, Bytes::from(payload)));
        true
    }

    /// Ends `user`'s session on the node it is online on (`Engine::kick`); false if it is
    /// online on no other node.
    pub(crate) fn kick(&self, app: &str, user: &str, reason: &str) -> bool {
        let Some(node) = self.node_of(app, user) else { return false };
        let payload = format!("{} {} kick\n{reason}", hex(app.as_bytes()), hex(user.as_bytes()));
        let _ = self.out.send((format!("rtm2.v1.to.{node}"), None, Bytes::from(payload)));
        true
    }

    /// The node `user` of `app` is online on, among the others.
    pub(crate) fn node_of(&self, app: &str, user: &str) -> Option<String> {
        self.directory.lock().unwrap().users.get(&(app.to_string(), user.to_string())).map(|(n, _)| n.clone())
    }

    /// The users of `app` online on the other nodes: (user, node).
    pub(crate) fn users_of(&self, app: &str) -> Vec<(String, String)> {
        let d = self.directory.lock().unwrap();
        d.users.iter().filter(|((a, _), _)| a == app).map(|((_, u), (n, _))| (u.clone(), n.clone())).collect()
    }

    /// Announces the end of a session (the user is offline here).
    pub(crate) fn announce_logout(&self, app: &str, user: &str, login_ms: u64) {
        self.note(Note {
            kind: NoteKind::Logout as u32,
            app: app.into(),
            user: user.into(),
            login_ms,
            ..Default::default()
        });
    }

    /// Announces a login, so that other nodes end this user's older session.
    pub(crate) fn announce_login(&self, app: &str, user: &str, login_ms: u64) {
        self.note(Note {
            kind: NoteKind::Login as u32,
            app: app.into(),
            user: user.into(),
            login_ms,
            ..Default::default()
        });
    }

    /// Whether `node` has been heard of within `NODE_TIMEOUT`.
    pub(crate) fn is_alive(&self, node: &str) -> bool {
        self.directory.lock().unwrap().nodes.contains_key(node)
    }

    /// Whether the node can serve logins (connected to NATS, its key-value buckets bound).
    pub(crate) fn ready(&self) -> bool {
        self.client.get().is_some_and(|c| c.connection_state() == async_nats::connection::State::Connected)
    }

    /// Forwards the messages of a local publisher to the other nodes (in order), batched: one
    /// NATS message carries a run of them (`subjects::pack`), at most `MAX_BATCH` bytes.
    pub(crate) fn forward(&self, app: &str, channel: &str, bodies: &[Bytes]) {
        let subject = msg_subject(app, channel);
        for batch in subjects::pack(bodies) {
            let _ = self.out.send((subject.clone(), None, batch));
        }
    }

    /// Subscribes to a channel's messages from other nodes while `channel` lives; `ready`
    /// turns true once NATS confirmed the subscription.
    pub(crate) fn watch(self: &Arc<Self>, app: &str, name: &str, channel: Weak<MsgChannel>) -> Watch {
        self.watch_subject(msg_subject(app, name), move |batch| match channel.upgrade() {
            Some(ch) => {
                ch.deliver_remote(&subjects::unpack(&batch));
                true
            }
            None => false,
        })
    }

    /// Subscribes to `subject` until the returned [`Watch`] is dropped or `deliver` returns
    /// false; `ready` turns true once NATS confirmed the subscription.
    pub(crate) fn watch_subject(
        self: &Arc<Self>,
        subject: String,
        deliver: impl Fn(Bytes) -> bool + Send + 'static,
    ) -> Watch {
        let (ready_tx, ready) = watch::channel(false);
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
                if !deliver(m.payload) {
                    break;
                }
            }
        });
        Watch { task, ready }
    }

    /// Sends a topic message of a local publisher to the other nodes.
    pub(crate) fn forward_topic(&self, app: &str, channel: &str, topic: &str, publisher: &str, body: Bytes) {
        let mut payload = format!("{} {}\n", hex(topic.as_bytes()), hex(publisher.as_bytes())).into_bytes();
        payload.extend_from_slice(&body);
        let _ = self.out.send((topic_subject(app, channel), None, Bytes::from(payload)));
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

    /// Turns true once the subscription is in place.
    pub(crate) fn ready_signal(&self) -> watch::Receiver<bool> {
        self.ready.clone()
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

fn eng_alive(engine: &Weak<Engine>) -> bool {
    engine.strong_count() > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_must_fit_in_a_nats_subject_token() {
        let ok = |id: &str| ClusterConfig { urls: vec!["nats://127.0.0.1:4222".into()], node_id: id.into() }.check();
        assert!(ok("node-1_a").is_ok());
        for bad in ["", "a.b", "a b", "a*", ">", &"x".repeat(65)] {
            assert!(ok(bad).is_err(), "{bad:?} accepted");
        }
        let generated = ClusterConfig::new("nats://127.0.0.1:1, nats://127.0.0.1:2");
        assert!(generated.check().is_ok(), "{generated:?}");
        assert_eq!(generated.urls.len(), 2);
        assert!(ClusterConfig::new(" , ").check().is_err());
        assert_eq!(unhex(&hex("chan.nel*>".as_bytes())).as_deref(), Some("chan.nel*>"));
    }

    #[test]
    fn message_batches_keep_every_body_in_order_and_stay_under_the_limit() {
        let bodies: Vec<Bytes> =
            (0..3000u32).map(|i| Bytes::from(vec![(i % 251) as u8; (i as usize * 7) % 1000])).collect();
        let batches = subjects::pack(&bodies);
        assert!(batches.len() > 1, "{} bytes in one batch", batches[0].len());
        assert!(batches.iter().all(|b| b.len() <= subjects::MAX_BATCH));
        let back: Vec<Bytes> = batches.iter().flat_map(subjects::unpack).collect();
        assert_eq!(back, bodies);
        // One body over the limit still goes, alone.
        let big = vec![Bytes::from(vec![1u8; subjects::MAX_BATCH + 10])];
        assert_eq!(subjects::pack(&big).iter().flat_map(subjects::unpack).collect::<Vec<_>>(), big);
        // A truncated batch gives what is whole.
        let one = subjects::pack(&bodies[1..3]).remove(0);
        assert_eq!(subjects::unpack(&one.slice(..one.len() - 1)), bodies[1..2].to_vec());
        assert!(subjects::pack(&[]).is_empty());
    }
}
