//! Notes: what a node tells the others about its users — logins and logouts, presence in
//! channels, stream-channel membership — and the replicas the others keep from them.
//!
//! A node sends a [`Note`] on `rtm2.v1.pres` for each change of its own users, in the order of
//! the changes (one ordered publish queue; `seq` counts the node's notes). Every node applies
//! the notes of the others in that order: logins and logouts to its directory of who is online
//! where (a login also ends an older session of that user here, SAME_UID_LOGIN), presence and
//! stream membership to its replica of who is present where, telling its own listeners
//! (REMOTE_JOIN, REMOTE_LEAVE, REMOTE_TIMEOUT, REMOTE_STATE_CHANGED, topic REMOTE_JOIN /
//! REMOTE_LEAVE) as for a user of its own. It acknowledges each note it applied
//! (`rtm2.v1.ack.<origin>`, `<node> <seq>`), and the origin answers a request that changed
//! something others see once every live node acknowledged its notes up to that change
//! ([`Cluster::barrier`], at most `ACK_WAIT`): when a client's call returns, a call of another
//! client on any node sees its effect.
//!
//! A node that joins asks the others for their users (`rtm2.v1.psync`: each answers with a
//! [`Sync`] of its users and its current `seq`) before it serves logins, and skips the notes
//! its answers already contain. When a node goes silent (`NODE_TIMEOUT`), its users are
//! offline, and they time out of their channels once their presence timeout has passed since it
//! was last heard of.
//!
//! The replicas are cluster-wide (every node holds every online and present user): queries
//! (whoNow, whereNow, getState, snapshots, is this user online) are answered from memory; the
//! cost is one note per change to every node, and an acknowledgement back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use rtm2_proto::enums::ChannelType;
use rtm2_proto::pb;

use super::Cluster;
use crate::engine::Engine;
use crate::scope::ScopeKey;

pub(super) const NOTES: &str = "rtm2.v1.pres";
/// A sync request to every node.
pub(super) const SYNC: &str = "rtm2.v1.psync.all";

/// A sync request to one node.
fn sync_subject(node: &str) -> String {
    format!("rtm2.v1.psync.node.{node}")
}
/// How long a request that changed what other nodes see waits for their acknowledgements at
/// most (a node that died is waited for until it is found silent, `NODE_TIMEOUT`).
const ACK_WAIT: Duration = Duration::from_secs(2);

/// Notes of each node kept after they were applied, for a sync answer that comes after them.
const RECENT_NOTES: usize = 4096;

/// What this node applied of another node's notes.
#[derive(Default)]
pub(super) struct NodeLog {
    /// The highest note applied, or held by a sync answer (older notes are not applied).
    seen: u64,
    /// The last notes applied (at most `RECENT_NOTES`).
    recent: std::collections::VecDeque<Note>,
}

/// Where the other nodes acknowledge `node`'s notes.
pub(super) fn ack_subject(node: &str) -> String {
    format!("rtm2.v1.ack.{node}")
}

/// What a note says of a user in a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum NoteKind {
    /// Present (listed) in a channel, with this state (replaces the previous one).
    Present = 1,
    /// Left the channel (unsubscribe, leave, logout, takeover, a quiet or presence-less resubscribe).
    Left = 2,
    /// Timed out of it (its connection dropped and it did not come back).
    TimedOut = 3,
    /// A member of a stream channel, publishing in these topics (replaces the previous ones).
    Member = 4,
    /// No longer a member of the stream channel.
    NotMember = 5,
    /// The user logged in on the node at `login_ms` (an older session elsewhere ends).
    Login = 6,
    /// The user's session of `login_ms` on the node ended.
    Logout = 7,
}

impl NoteKind {
    fn from_u32(v: u32) -> Option<NoteKind> {
        Some(match v {
            1 => NoteKind::Present,
            2 => NoteKind::Left,
            3 => NoteKind::TimedOut,
            4 => NoteKind::Member,
            5 => NoteKind::NotMember,
            6 => NoteKind::Login,
            7 => NoteKind::Logout,
            _ => return None,
        })
    }
}

/// A change of one user of one node in one channel (the payload of `rtm2.v1.pres`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Note {
    #[prost(uint32, tag = "1")]
    pub kind: u32,
    #[prost(string, tag = "2")]
    pub app: String,
    #[prost(uint32, tag = "3")]
    pub channel_type: u32,
    #[prost(string, tag = "4")]
    pub channel: String,
    #[prost(string, tag = "5")]
    pub user: String,
    #[prost(string, tag = "6")]
    pub node: String,
    /// The node's note counter (notes of one node are applied in this order).
    #[prost(uint64, tag = "7")]
    pub seq: u64,
    /// `Present`: the user's presence state.
    #[prost(message, repeated, tag = "8")]
    pub states: Vec<pb::StateItem>,
    /// `Present`: the user's presence timeout, for when its node goes silent.
    #[prost(uint64, tag = "9")]
    pub presence_timeout_ms: u64,
    /// `Member`: the topics it publishes in, with its meta (`user_id` holds the topic).
    #[prost(message, repeated, tag = "10")]
    pub topics: Vec<pb::PublisherInfo>,
    /// `Login` / `Logout`: when the session began (tells sessions of one user apart).
    #[prost(uint64, tag = "11")]
    pub login_ms: u64,
}

/// A node's answer to a sync: its present users and stream members now, and its counter.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Sync {
    #[prost(string, tag = "1")]
    pub node: String,
    #[prost(uint64, tag = "2")]
    pub seq: u64,
    #[prost(message, repeated, tag = "3")]
    pub notes: Vec<Note>,
}

/// One remote user's presence in a channel (the replica's entry).
#[derive(Clone, Debug)]
pub(crate) struct RemotePresence {
    pub node: Arc<str>,
    pub states: BTreeMap<String, String>,
    pub timeout: Duration,
}

pub(crate) fn states_of(items: &[pb::StateItem]) -> BTreeMap<String, String> {
    items.iter().map(|s| (s.key.clone(), s.value.clone())).collect()
}

pub(crate) fn items_of(states: &BTreeMap<String, String>) -> Vec<pb::StateItem> {
    states.iter().map(|(k, v)| pb::StateItem { key: k.clone(), value: v.clone() }).collect()
}

impl Cluster {
    /// Tells the other nodes about a change of a local user. Called under the lock of the
    /// state it describes, so that notes leave in the order of the changes.
    pub(crate) fn note(&self, mut note: Note) {
        note.node = self.node_id.clone();
        note.seq = self.note_seq.fetch_add(1, Ordering::AcqRel) + 1;
        let _ = self.out.send((NOTES.to_string(), Some(ack_subject(&self.node_id)), Bytes::from(note.encode_to_vec())));
    }

    /// The number of notes this node has sent so far.
    pub(crate) fn notes_sent(&self) -> u64 {
        self.note_seq.load(Ordering::Acquire)
    }

    /// An acknowledgement `<node> <seq>`: `node` applied this node's notes up to `seq`.
    pub(super) fn on_ack(&self, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload);
        let mut w = text.split(' ');
        let (Some(node), Some(seq)) = (w.next(), w.next().and_then(|s| s.parse::<u64>().ok())) else { return };
        let mut acks = self.acks.lock().unwrap();
        let e = acks.entry(node.to_string()).or_default();
        *e = (*e).max(seq);
        drop(acks);
        self.acked.notify_waiters();
    }

    /// Whether every live node applied this node's notes up to `seq`.
    fn all_acked(&self, seq: u64) -> bool {
        // (Nodes heard of lately: a dead node is not waited for beyond `UNRESPONSIVE`.)
        let live: Vec<String> = {
            let d = self.directory.lock().unwrap();
            let now = std::time::Instant::now();
            d.nodes
                .iter()
                .filter(|(_, seen)| now - **seen < super::directory::UNRESPONSIVE)
                .map(|(n, _)| n.clone())
                .collect()
        };
        let acks = self.acks.lock().unwrap();
        live.iter().all(|n| acks.get(n).is_some_and(|a| *a >= seq))
    }

    /// Waits until every live node applied this node's notes up to `seq` (at most `ACK_WAIT`).
    pub(crate) async fn barrier(&self, seq: u64) {
        if seq == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        loop {
            let acked = self.acked.notified();
            tokio::pin!(acked);
            acked.as_mut().enable();
            if self.all_acked(seq) {
                return;
            }
            // (Looked at again now and then: a node that went silent meanwhile is not waited for.)
            let wake = deadline.min(tokio::time::Instant::now() + Duration::from_millis(50));
            if tokio::time::timeout_at(wake, acked).await.is_err() && tokio::time::Instant::now() >= deadline {
                tracing::warn!(seq, "cluster: not every node acknowledged a change within {ACK_WAIT:?}");
                return;
            }
        }
    }

    /// A note of a present user (`states`) or of one that left or timed out.
    pub(crate) fn note_presence(
        &self,
        app: &str,
        key: &ScopeKey,
        user: &str,
        kind: NoteKind,
        states: &BTreeMap<String, String>,
        timeout: Duration,
    ) {
        self.note(Note {
            kind: kind as u32,
            app: app.to_string(),
            channel_type: key.0 as u32,
            channel: key.1.clone(),
            user: user.to_string(),
            states: if kind == NoteKind::Present { items_of(states) } else { Vec::new() },
            presence_timeout_ms: timeout.as_millis() as u64,
            ..Default::default()
        });
    }

    /// Subscribes to the notes of the other nodes, catches up with what they hold now (their
    /// sync answers), then applies their notes as they come, in order.
    pub(super) async fn follow_notes(
        self: &Arc<Self>,
        client: &async_nats::Client,
        engine: std::sync::Weak<Engine>,
    ) -> Result<(), String> {
        let mut notes = client.subscribe(NOTES).await.map_err(|e| e.to_string())?;
        if let Some(engine) = engine.upgrade() {
            self.sync_from(client, &engine, None).await?;
        }
        let eng = engine.clone();
        let me = self.clone();
        let c = client.clone();
        self.keep_spawned(tokio::spawn(async move {
            while let Some(m) = notes.next().await {
                let Ok(note) = Note::decode(m.payload.as_ref()) else { continue };
                let Some(engine) = eng.upgrade() else { break };
                // A note of a node taken as gone (its notes sent while NATS was away come first
                // when it is back): sync with it, for what it sent meanwhile that was lost.
                if !me.is_alive(&note.node) {
                    me.directory.lock().unwrap().nodes.insert(note.node.clone(), std::time::Instant::now());
                    let _ = me.resync.send(Some(note.node.clone()));
                }
                // (A note a sync answer already held is not applied again.)
                {
                    let mut log = me.log.lock().unwrap();
                    let from = log.entry(note.node.clone()).or_default();
                    // (A note a sync answer already held is not applied again.)
                    if note.seq > from.seen {
                        from.seen = note.seq;
                        me.apply(&engine, &note);
                        if from.recent.len() == RECENT_NOTES {
                            from.recent.pop_front();
                        }
                        from.recent.push_back(note.clone());
                    }
                }
                if let Some(reply) = m.reply {
                    let _ = c.publish(reply, Bytes::from(format!("{} {}", me.node_id, note.seq))).await;
                }
            }
        }));
        // Answers to nodes that join (or come back) later.
        let all = client.subscribe(SYNC).await.map_err(|e| e.to_string())?;
        let to_me = client.subscribe(sync_subject(&self.node_id)).await.map_err(|e| e.to_string())?;
        let mut syncs = futures::stream::select(all, to_me);
        let me = self.clone();
        let c = client.clone();
        let eng = engine.clone();
        self.keep_spawned(tokio::spawn(async move {
            while let Some(m) = syncs.next().await {
                let (Some(engine), Some(reply)) = (eng.upgrade(), m.reply) else { continue };
                let _ = c.publish(reply, Bytes::from(me.sync_answer(&engine).encode_to_vec())).await;
            }
        }));
        // Syncs again with a node heard of again after it was taken as gone, and with every
        // node after the NATS connection came back (notes sent meanwhile were lost).
        let mut resyncs = self.resync_rx.lock().unwrap().take().ok_or("the node joined twice")?;
        let me = self.clone();
        let c = client.clone();
        self.keep_spawned(tokio::spawn(async move {
            while let Some(target) = resyncs.recv().await {
                let Some(engine) = engine.upgrade() else { break };
                if let Err(e) = me.sync_from(&c, &engine, target.as_deref()).await {
                    tracing::warn!(error = %e, "cluster: a sync failed");
                }
            }
        }));
        Ok(())
    }

    /// This node's users now, as a sync answer.
    fn sync_answer(&self, engine: &Engine) -> Sync {
        // Read before the state: a change made while it is read is in the answer, in a note
        // after it, or both (applying a note twice changes nothing).
        let seq = self.note_seq.load(Ordering::Acquire);
        let mut notes: Vec<Note> = engine
            .local_users()
            .into_iter()
            .map(|(app, user, login_ms)| Note {
                kind: NoteKind::Login as u32,
                app,
                user,
                login_ms,
                ..Default::default()
            })
            .collect();
        notes.extend(engine.local_presence_notes());
        for n in &mut notes {
            n.node = self.node_id.clone();
        }
        Sync { node: self.node_id.clone(), seq, notes }
    }

    /// Asks every node (or one) for its users, and makes the replicas of each answering node's
    /// users what it answered.
    async fn sync_from(&self, client: &async_nats::Client, engine: &Engine, node: Option<&str>) -> Result<(), String> {
        let inbox = client.new_inbox();
        let mut answers = client.subscribe(inbox.clone()).await.map_err(|e| e.to_string())?;
        let subject = node.map_or_else(|| SYNC.to_string(), sync_subject);
        client.publish_with_reply(subject, inbox, Bytes::new()).await.map_err(|e| e.to_string())?;
        let _ = client.flush().await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, answers.next()).await {
            // (NATS answers a request nobody listens to with an empty "no responders" status.)
            let Ok(sync) = Sync::decode(m.payload.as_ref()) else { continue };
            if sync.node.is_empty() || sync.node == self.node_id {
                continue;
            }
            tracing::debug!(node = %sync.node, notes = sync.notes.len(), "cluster: synced");
            let mut log = self.log.lock().unwrap();
            let from = log.entry(sync.node.clone()).or_default();
            // The answer is the node's state as of its note `seq` or a little later; the notes
            // after `seq` applied here already are applied again over it, in order.
            let replay: Vec<Note> = from.recent.iter().filter(|n| n.seq > sync.seq).cloned().collect();
            if replay.first().is_some_and(|n| n.seq > sync.seq + 1) && from.seen > sync.seq + 1 {
                // Some of them are no longer kept: ask again.
                let _ = self.resync.send(Some(sync.node.clone()));
                continue;
            }
            self.directory.lock().unwrap().reconcile(&sync.node, &sync.notes);
            for note in sync.notes.iter().filter(|n| n.kind == NoteKind::Login as u32) {
                engine.login_elsewhere(&note.app, &note.user, &note.node, note.login_ms);
            }
            engine.reconcile_node(&sync.node, &sync.notes);
            for note in &replay {
                self.apply(engine, note);
            }
            from.seen = from.seen.max(sync.seq);
            if node.is_some() {
                break;
            }
        }
        Ok(())
    }

    /// Applies another node's note: logins and logouts to the directory (and the engine, for a
    /// takeover), the rest to the engine's replicas.
    fn apply(&self, engine: &Engine, note: &Note) {
        match NoteKind::from_u32(note.kind) {
            Some(NoteKind::Login) => {
                self.directory.lock().unwrap().login(&note.app, &note.user, &note.node, note.login_ms);
                engine.login_elsewhere(&note.app, &note.user, &note.node, note.login_ms);
            }
            Some(NoteKind::Logout) => {
                self.directory.lock().unwrap().logout(&note.app, &note.user, &note.node, note.login_ms)
            }
            Some(_) => engine.apply_note(note),
            None => {}
        }
    }
}

impl Engine {
    /// Makes this node's replica of `node`'s present users and stream members what `notes` (its
    /// sync answer) say: those missing from them left (REMOTE_LEAVE here), the others are
    /// applied as notes.
    pub(crate) fn reconcile_node(&self, node: &str, notes: &[Note]) {
        use std::collections::HashSet;
        let present: HashSet<(&str, u32, &str, &str)> = notes
            .iter()
            .filter(|n| n.kind == NoteKind::Present as u32)
            .map(|n| (n.app.as_str(), n.channel_type, n.channel.as_str(), n.user.as_str()))
            .collect();
        let members: HashSet<(&str, &str, &str)> = notes
            .iter()
            .filter(|n| n.kind == NoteKind::Member as u32)
            .map(|n| (n.app.as_str(), n.channel.as_str(), n.user.as_str()))
            .collect();
        let origin: Arc<str> = Arc::from(node);
        for app in self.all_apps() {
            for (key, user, _) in crate::scope::remote_users_of(&app, node) {
                if !present.contains(&(app.id.as_str(), key.0 as u32, key.1.as_str(), user.as_str())) {
                    crate::scope::remote_present(self, &app, &key, &user, &origin, None, false);
                }
            }
            for (channel, user) in crate::stream::remote_members_of(&app, node) {
                if !members.contains(&(app.id.as_str(), channel.as_str(), user.as_str())) {
                    crate::stream::remote_member(&app, &channel, &user, &origin, None);
                }
            }
        }
        for note in notes.iter().filter(|n| n.kind != NoteKind::Login as u32) {
            self.apply_note(note);
        }
    }

    /// Applies another node's note to this node's replica (telling local listeners).
    pub(crate) fn apply_note(&self, note: &Note) {
        let Some(kind) = NoteKind::from_u32(note.kind) else { return };
        let Some(app) = self.existing_app(&note.app) else { return };
        let Some(channel_type) = ChannelType::from_u32(note.channel_type) else { return };
        let key: ScopeKey = (channel_type, note.channel.clone());
        let node: Arc<str> = Arc::from(note.node.as_str());
        match kind {
            NoteKind::Present => {
                let remote = RemotePresence {
                    node,
                    states: states_of(&note.states),
                    timeout: Duration::from_millis(note.presence_timeout_ms),
                };
                crate::scope::remote_present(self, &app, &key, &note.user, &remote.node.clone(), Some(remote), false);
            }
            NoteKind::Left | NoteKind::TimedOut => {
                let timed_out = kind == NoteKind::TimedOut;
                crate::scope::remote_present(self, &app, &key, &note.user, &node, None, timed_out);
            }
            NoteKind::Member => {
                let topics = note.topics.iter().map(|t| (t.user_id.clone(), t.meta.clone())).collect();
                crate::stream::remote_member(&app, &note.channel, &note.user, &node, Some(topics));
            }
            NoteKind::NotMember => crate::stream::remote_member(&app, &note.channel, &note.user, &node, None),
            NoteKind::Login | NoteKind::Logout => {}
        }
    }

    /// A node went silent: its users time out of their channels once their presence timeout
    /// has passed since it was last heard of (`silent_for` ago), and leave its stream channels.
    pub(crate) fn node_gone(self: &Arc<Self>, node: &str, silent_for: Duration) {
        for app in self.all_apps() {
            crate::stream::remote_node_gone(&app, node);
            for (key, user, timeout) in crate::scope::remote_users_of(&app, node) {
                let (engine, app, node) = (self.clone(), app.clone(), Arc::<str>::from(node));
                tokio::spawn(async move {
                    tokio::time::sleep(timeout.saturating_sub(silent_for)).await;
                    // Unless the node was heard of again meanwhile (then its users are there).
                    if engine.cluster.as_ref().is_some_and(|c| !c.is_alive(&node)) {
                        crate::scope::remote_present(&engine, &app, &key, &user, &node, None, true);
                    }
                });
            }
        }
    }
}
