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

use std::collections::{BTreeMap, HashMap};
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
pub(super) const SYNC: &str = "rtm2.v1.psync";
/// How long a request that changed what other nodes see waits for their acknowledgements at
/// most (a node that died is waited for until it is found silent, `NODE_TIMEOUT`).
const ACK_WAIT: Duration = Duration::from_secs(2);

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
        let live: Vec<String> = self.directory.lock().unwrap().nodes.keys().cloned().collect();
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
            if tokio::time::timeout_at(deadline, acked).await.is_err() {
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
        let inbox = client.new_inbox();
        let mut answers = client.subscribe(inbox.clone()).await.map_err(|e| e.to_string())?;
        client.publish_with_reply(SYNC, inbox, Bytes::new()).await.map_err(|e| e.to_string())?;
        let _ = client.flush().await;
        // Notes a node sent before its answer was made are in the answer.
        let mut caught_up: HashMap<String, u64> = HashMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, answers.next()).await {
            let (Some(engine), Ok(sync)) = (engine.upgrade(), Sync::decode(m.payload.as_ref())) else { continue };
            self.directory.lock().unwrap().nodes.insert(sync.node.clone(), std::time::Instant::now());
            for note in &sync.notes {
                self.apply(&engine, note);
            }
            caught_up.insert(sync.node, sync.seq);
        }
        drop(answers);
        let eng = engine.clone();
        let me = self.clone();
        let c = client.clone();
        self.keep_spawned(tokio::spawn(async move {
            while let Some(m) = notes.next().await {
                let Ok(note) = Note::decode(m.payload.as_ref()) else { continue };
                let Some(engine) = eng.upgrade() else { break };
                // (A note its sync answer already held is not applied again.)
                if caught_up.get(&note.node).is_none_or(|s| note.seq > *s) {
                    me.apply(&engine, &note);
                }
                if let Some(reply) = m.reply {
                    let _ = c.publish(reply, Bytes::from(format!("{} {}", me.node_id, note.seq))).await;
                }
            }
        }));
        // Answers to nodes that join later.
        let mut syncs = client.subscribe(SYNC).await.map_err(|e| e.to_string())?;
        let me = self.clone();
        let c = client.clone();
        self.keep_spawned(tokio::spawn(async move {
            while let Some(m) = syncs.next().await {
                let (Some(engine), Some(reply)) = (engine.upgrade(), m.reply) else { continue };
                // Read before the state: a change made while it is read is in the answer, in a
                // note after it, or both (applying a note twice changes nothing).
                let seq = me.note_seq.load(Ordering::Acquire);
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
                    n.node = me.node_id.clone();
                }
                let sync = Sync { node: me.node_id.clone(), seq, notes };
                let _ = c.publish(reply, Bytes::from(sync.encode_to_vec())).await;
            }
        }));
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
