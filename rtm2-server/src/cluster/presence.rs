//! Presence and stream-channel membership across nodes.
//!
//! Every node keeps a replica of who is present elsewhere: the users listed in each channel
//! (with their presence state) and the members of each stream channel (with the topics they
//! publish in). A node tells the others about each change of its own users in a [`Note`] on
//! `rtm2.v1.pres`, in the order of the changes (one ordered publish queue; `seq` counts the
//! node's notes), and every node applies the notes of the others to its replica, telling its
//! own listeners (REMOTE_JOIN, REMOTE_LEAVE, REMOTE_TIMEOUT, REMOTE_STATE_CHANGED, topic
//! REMOTE_JOIN / REMOTE_LEAVE) as for a user of its own. A node that joins asks the others for
//! their users (`rtm2.v1.psync`: each answers with a [`Sync`] of its present users and its
//! current `seq`) before it serves logins, and skips the notes its answers already contain.
//! When a node goes silent (`NODE_TIMEOUT`), its users time out of their channels once their
//! presence timeout has passed since it was last heard of.
//!
//! The replica is cluster-wide (every node holds every present user): simple, and queries
//! (whoNow, whereNow, getState, snapshots) are answered from memory; its cost is one note per
//! presence change to every node.

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
}

impl NoteKind {
    fn from_u32(v: u32) -> Option<NoteKind> {
        Some(match v {
            1 => NoteKind::Present,
            2 => NoteKind::Left,
            3 => NoteKind::TimedOut,
            4 => NoteKind::Member,
            5 => NoteKind::NotMember,
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
        let _ = self.out.send((NOTES.to_string(), Bytes::from(note.encode_to_vec())));
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
    pub(super) async fn follow_presence(
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
            for note in &sync.notes {
                engine.apply_note(note);
            }
            caught_up.insert(sync.node, sync.seq);
        }
        drop(answers);
        let eng = engine.clone();
        self.keep_spawned(tokio::spawn(async move {
            while let Some(m) = notes.next().await {
                let Ok(note) = Note::decode(m.payload.as_ref()) else { continue };
                if caught_up.get(&note.node).is_some_and(|s| note.seq <= *s) {
                    continue;
                }
                let Some(engine) = eng.upgrade() else { break };
                engine.apply_note(&note);
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
                let mut notes = engine.local_presence_notes();
                for n in &mut notes {
                    n.node = me.node_id.clone();
                }
                let sync = Sync { node: me.node_id.clone(), seq, notes };
                let _ = c.publish(reply, Bytes::from(sync.encode_to_vec())).await;
            }
        }));
        Ok(())
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
