//! Stream channels: members, topic publishers, topic subscriptions, topic events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rtm2_proto::enums::{ChannelType, LinkStateChangeReason, TopicEventType, topic_user_code};
use rtm2_proto::pb::{self, server_frame};
use rtm2_proto::token;
use rtm2_proto::validate::{self, Violation};
use rtm2_proto::{ErrorCode, limits, now_ms};
use rtm2_proto::{fastpath, frame};

use crate::engine::Reply;
use crate::session::Session;

struct TopicRole {
    meta: String,
}

struct Member {
    session: Arc<Session>,
    /// Topics this member publishes in (joined), with the meta it gave.
    topics: BTreeMap<String, TopicRole>,
    /// topic -> publishers this member picked.
    subscriptions: HashMap<String, BTreeSet<String>>,
}

/// A member of the stream channel on another node (in a cluster).
pub(crate) struct RemoteMember {
    node: Arc<str>,
    /// Topic -> meta, for the topics it publishes in.
    topics: BTreeMap<String, String>,
}

/// One stream channel of an app.
#[derive(Default)]
pub(crate) struct StreamChannel {
    members: BTreeMap<Arc<str>, Member>,
    /// In a cluster: its members on other nodes.
    remote: BTreeMap<Arc<str>, RemoteMember>,
    /// In a cluster, while it has members here: this node's subscription to the topic
    /// messages of publishers on other nodes.
    watch: Option<crate::cluster::Watch>,
}

impl StreamChannel {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.remote.is_empty()
    }

    /// Users in the channel, on every node.
    pub(crate) fn user_count(&self) -> usize {
        self.members.len() + self.remote.keys().filter(|u| !self.members.contains_key(*u)).count()
    }

    /// Every publisher of every topic: (topic, user, meta), here and on other nodes.
    fn publishers(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        let here = self.members.iter().flat_map(|(u, m)| m.topics.iter().map(move |(t, r)| (&**t, &**u, &*r.meta)));
        let there = self
            .remote
            .iter()
            .filter(|(u, _)| !self.members.contains_key(*u))
            .flat_map(|(u, m)| m.topics.iter().map(move |(t, meta)| (&**t, &**u, &**meta)));
        here.chain(there)
    }

    fn snapshot(&self) -> Vec<pb::TopicInfo> {
        let mut topics: BTreeMap<&str, Vec<pb::PublisherInfo>> = BTreeMap::new();
        for (topic, user, meta) in self.publishers() {
            topics
                .entry(topic)
                .or_default()
                .push(pb::PublisherInfo { user_id: user.to_string(), meta: meta.to_string() });
        }
        topics.into_iter().map(|(topic, publishers)| pb::TopicInfo { topic: topic.to_string(), publishers }).collect()
    }

    /// A topic message of `publisher`: to every member here that subscribed to it.
    /// Sends a topic message to the members subscribed to its publisher.
    fn deliver_topic(&self, topic: &str, publisher: &str, body: &bytes::Bytes) {
        let mut receivers =
            self.members.values().filter(|m| m.subscriptions.get(topic).is_some_and(|p| p.contains(publisher)));
        let Some(first) = receivers.next() else { return };
        first.session.send(body.clone());
        let mut n = 1;
        for m in receivers {
            m.session.send(body.clone());
            n += 1;
        }
        first.session.app.metrics.delivered.add(ChannelType::STREAM, n);
    }

    fn broadcast_except(&self, user: &str, body: bytes::Bytes) {
        for (u, m) in &self.members {
            if &**u != user {
                m.session.send(body.clone());
            }
        }
    }
}

fn topic_event(event_type: TopicEventType, channel: &str, publisher: &str, topic: &str, meta: &str) -> bytes::Bytes {
    frame::encode_server_body(&server_frame::Body::TopicEvent(pb::TopicEvent {
        event_type: event_type as u32,
        channel: channel.to_string(),
        publisher: publisher.to_string(),
        topics: vec![pb::TopicInfo {
            topic: topic.to_string(),
            publishers: vec![pb::PublisherInfo { user_id: publisher.to_string(), meta: meta.to_string() }],
        }],
        timestamp_ms: now_ms(),
    }))
}

fn not_joined(channel: &str) -> Violation {
    Violation::new(ErrorCode::CHANNEL_NOT_JOINED, format!("stream channel {channel:?} is not joined"))
}

/// Runs `f` on this session's membership of `channel`, or fails with 11001.
fn with_member<T>(
    session: &Arc<Session>,
    channel: &str,
    f: impl FnOnce(&mut StreamChannel, &str) -> Result<T, Violation>,
) -> Result<T, Violation> {
    validate::channel_name(channel)?;
    let Some(ch) = session.app.streams.get(channel).map(|c| c.clone()) else {
        return Err(not_joined(channel));
    };
    let mut ch = ch.lock().unwrap();
    match ch.members.get(&*session.user_id) {
        Some(m) if m.session.id == session.id => f(&mut ch, &session.user_id),
        _ => Err(not_joined(channel)),
    }
}

/// Checks a stream-channel token; `None` = does not expire (development mode).
pub(crate) fn verify_join_token(session: &Session, channel: &str, tok: &str) -> Result<Option<u64>, Violation> {
    let app = &session.app;
    if app.certificates.is_empty() {
        return Ok(None);
    }
    let certs: Vec<&str> = app.certificates.iter().map(String::as_str).collect();
    let now = now_ms() / 1000;
    match token::verify_stream_token(tok, &app.id, &certs, channel, &session.user_id, now) {
        Ok(v) => Ok(Some(v.expires_at)),
        Err(token::TokenError::Expired) => {
            Err(Violation::new(ErrorCode::TOKEN_EXPIRED, "stream channel token expired"))
        }
        Err(token::TokenError::AppIdMismatch) => {
            Err(Violation::new(ErrorCode::INCONSISTENT_APPID, "stream channel token is for another app"))
        }
        Err(e) => Err(Violation::new(ErrorCode::INVALID_TOKEN, format!("stream channel token rejected: {e}"))),
    }
}

pub(crate) fn join(engine: &crate::engine::Engine, session: &Arc<Session>, r: pb::StreamJoin) -> Reply {
    validate::channel_name(&r.channel)?;
    if !r.states.is_empty() {
        validate::state_items(r.states.iter().map(|s| (s.key.as_str(), s.value.as_str())))?;
    }
    {
        let mine = session.streams.lock().unwrap();
        if mine.contains(&r.channel) {
            return Err(Violation::new(
                ErrorCode::DUPLICATE_OPERATION,
                format!("stream channel {:?} is already joined", r.channel),
            ));
        }
        if mine.len() >= limits::MAX_JOINED_STREAM_CHANNELS {
            return Err(Violation::new(
                ErrorCode::CHANNEL_INSTANCE_EXCEED_LIMITATION,
                format!("at most {} stream channels may be joined", limits::MAX_JOINED_STREAM_CHANNELS),
            ));
        }
    }
    let expires_at = verify_join_token(session, &r.channel, &r.token)?;
    let ch_arc = session.app.streams.entry(r.channel.clone()).or_default().clone();
    let topics = {
        let mut ch = ch_arc.lock().unwrap();
        if ch.user_count() >= limits::MAX_STREAM_CHANNEL_USERS
            && !ch.members.contains_key(&*session.user_id)
            && !ch.remote.contains_key(&*session.user_id)
        {
            return Err(Violation::new(
                ErrorCode::CHANNEL_JOIN_FAILED,
                format!("stream channel is full ({} users)", limits::MAX_STREAM_CHANNEL_USERS),
            ));
        }
        ch.members.insert(
            session.user_id.clone(),
            Member { session: session.clone(), topics: BTreeMap::new(), subscriptions: HashMap::new() },
        );
        if let Some(c) = &session.app.cluster {
            note_member(c, &session.app.id, &r.channel, &session.user_id, Some(&BTreeMap::new()));
            if ch.watch.is_none() {
                ch.watch = Some(watch_topics(c, &session.app.id, &r.channel, Arc::downgrade(&ch_arc)));
            }
        }
        ch.snapshot()
    };
    session.streams.lock().unwrap().insert(r.channel.clone());
    if expires_at.is_some() {
        session.set_deadline(&r.channel, expires_at);
    }
    let opts = crate::engine::SubscribeOpts {
        with_message: true,
        with_presence: r.with_presence,
        with_metadata: r.with_metadata,
        with_lock: r.with_lock,
        be_quiet: r.be_quiet,
    };
    crate::scope::enter(engine, session, ChannelType::STREAM, &r.channel, opts, r.states);
    Ok(Some(pb::response::Result::StreamJoin(pb::StreamJoinResult {
        topics,
        token_expires_at_s: expires_at.unwrap_or(0),
    })))
}

/// Removes the session from a stream channel, telling others about every topic it left.
pub(crate) fn leave(engine: &crate::engine::Engine, session: &Arc<Session>, channel: &str) {
    crate::scope::exit(engine, session, &(ChannelType::STREAM, channel.to_string()), crate::engine::Ending::Leave);
    session.streams.lock().unwrap().remove(channel);
    session.set_deadline(channel, None);
    let Some(ch_arc) = session.app.streams.get(channel).map(|c| c.clone()) else { return };
    let empty = {
        let mut ch = ch_arc.lock().unwrap();
        let mine = ch.members.get(&*session.user_id).is_some_and(|m| m.session.id == session.id);
        if mine {
            let member = ch.members.remove(&*session.user_id).expect("checked above");
            if let Some(c) = &session.app.cluster {
                note_member(c, &session.app.id, channel, &session.user_id, None);
            }
            if ch.members.is_empty() {
                ch.watch = None;
            }
            for (topic, role) in member.topics {
                ch.broadcast_except(
                    &session.user_id,
                    topic_event(TopicEventType::REMOTE_LEAVE, channel, &session.user_id, &topic, &role.meta),
                );
            }
        }
        ch.is_empty()
    };
    if empty {
        session.app.streams.remove_if(channel, |_, c| c.lock().unwrap().is_empty());
    }
}

pub(crate) fn leave_request(engine: &crate::engine::Engine, session: &Arc<Session>, r: pb::StreamLeave) -> Reply {
    validate::channel_name(&r.channel)?;
    if !session.streams.lock().unwrap().contains(&r.channel) {
        return Err(not_joined(&r.channel));
    }
    leave(engine, session, &r.channel);
    Ok(None)
}

/// The stream-channel token expired: leave and tell the client.
pub(crate) fn expire(engine: &crate::engine::Engine, session: &Arc<Session>, channel: &str) {
    if !session.streams.lock().unwrap().contains(channel) {
        return;
    }
    leave(engine, session, channel);
    session.send(frame::encode_server_body(&server_frame::Body::StreamChannelClosed(pb::StreamChannelClosed {
        channel: channel.to_string(),
        code: ErrorCode::TOKEN_EXPIRED.code(),
        link_reason: LinkStateChangeReason::TOKEN_EXPIRED as u32,
        reason: "the stream channel token expired".into(),
    })));
}

pub(crate) fn join_topic(session: &Arc<Session>, r: pb::JoinTopic) -> Reply {
    validate::topic_name(&r.topic)?;
    validate::topic_meta(&r.meta)?;
    validate::topic_options(r.qos, r.priority)?;
    with_member(session, &r.channel, |ch, user| {
        let m = ch.members.get_mut(user).expect("member checked");
        if m.topics.contains_key(&r.topic) {
            return Err(Violation::new(
                ErrorCode::CHANNEL_JOIN_TOPIC_FAILED,
                format!("topic {:?} is already joined", r.topic),
            ));
        }
        if m.topics.len() >= limits::MAX_JOINED_TOPICS {
            return Err(Violation::new(
                ErrorCode::CHANNEL_EXCEED_TOPIC_LIMITATION,
                format!("at most {} topics may be joined per stream channel", limits::MAX_JOINED_TOPICS),
            ));
        }
        m.topics.insert(r.topic.clone(), TopicRole { meta: r.meta.clone() });
        note_topics(session, &r.channel, m);
        ch.broadcast_except(user, topic_event(TopicEventType::REMOTE_JOIN, &r.channel, user, &r.topic, &r.meta));
        Ok(None)
    })
}

pub(crate) fn leave_topic(session: &Arc<Session>, r: pb::LeaveTopic) -> Reply {
    validate::topic_name(&r.topic)?;
    with_member(session, &r.channel, |ch, user| {
        let m = ch.members.get_mut(user).expect("member checked");
        let Some(role) = m.topics.remove(&r.topic) else {
            return Err(Violation::new(
                ErrorCode::CHANNEL_TOPIC_NOT_JOINED,
                format!("topic {:?} is not joined", r.topic),
            ));
        };
        note_topics(session, &r.channel, m);
        ch.broadcast_except(user, topic_event(TopicEventType::REMOTE_LEAVE, &r.channel, user, &r.topic, &role.meta));
        Ok(None)
    })
}

pub(crate) fn publish_topic(session: &Arc<Session>, r: pb::PublishTopic) -> Reply {
    validate::topic_name(&r.topic)?;
    validate::published(&r.payload, r.message_type, &r.custom_type, r.encryption, true)?;
    with_member(session, &r.channel, |ch, user| {
        if !ch.members[user].topics.contains_key(&r.topic) {
            return Err(Violation::new(
                ErrorCode::CHANNEL_TOPIC_NOT_JOINED,
                format!("topic {:?} is not joined; join it before publishing", r.topic),
            ));
        }
        // Encoded from the request's parts (no owned MessageEvent), once for every subscriber.
        let body = fastpath::encode_message_body(&fastpath::MessageEventRef {
            channel_type: ChannelType::STREAM as u32,
            channel: &r.channel,
            topic: &r.topic,
            publisher: user,
            message_type: r.message_type,
            payload: &r.payload,
            custom_type: &r.custom_type,
            timestamp_ms: now_ms(),
            encryption: r.encryption,
            stored: false,
        });
        if let Some(c) = &session.app.cluster
            && !ch.remote.is_empty()
        {
            c.forward_topic(&session.app.id, &r.channel, &r.topic, user, body.clone());
        }
        ch.deliver_topic(&r.topic, user, &body);
        session.app.metrics.published.add(ChannelType::STREAM, 1);
        Ok(None)
    })
}

pub(crate) fn subscribe_topic(session: &Arc<Session>, r: pb::SubscribeTopic) -> Reply {
    validate::topic_name(&r.topic)?;
    with_member(session, &r.channel, |ch, user| {
        let publishers: Vec<String> =
            ch.publishers().filter(|(t, _, _)| *t == r.topic).map(|(_, u, _)| u.to_string()).collect();
        let m = ch.members.get_mut(user).expect("member checked");
        let existing = m.subscriptions.get(&r.topic).map_or(0, |s| s.len());
        if existing == 0 && m.subscriptions.len() >= limits::MAX_SUBSCRIBED_TOPICS {
            return Err(Violation::new(
                ErrorCode::CHANNEL_EXCEED_TOPIC_LIMITATION,
                format!("at most {} topics may be subscribed per stream channel", limits::MAX_SUBSCRIBED_TOPICS),
            ));
        }
        let wanted: Vec<String> = if r.users.is_empty() {
            if publishers.is_empty() {
                return Err(Violation::new(
                    ErrorCode::CHANNEL_TOPIC_NOT_EXIST,
                    format!("topic {:?} has no publishers", r.topic),
                ));
            }
            publishers
        } else {
            r.users
        };
        let set = m.subscriptions.entry(r.topic.clone()).or_default();
        let new_users = wanted.iter().filter(|u| !set.contains(*u) && validate::user_id(u).is_ok()).count();
        if set.len() >= limits::MAX_TOPIC_SUBSCRIBED_USERS && new_users > 0 {
            return Err(Violation::new(
                ErrorCode::CHANNEL_EXCEED_TOPIC_USER_LIMITATION,
                format!("already subscribed to {} publishers in this topic", limits::MAX_TOPIC_SUBSCRIBED_USERS),
            ));
        }
        let mut result = pb::SubscribeTopicResult::default();
        for u in wanted {
            if let Err(v) = validate::user_id(&u) {
                result.failed.push(pb::FailedUser {
                    user_id: u,
                    code: topic_user_code::INVALID_REMOTE_USER,
                    reason: v.reason,
                });
            } else if set.contains(&u) {
                result.succeeded.push(u);
            } else if set.len() >= limits::MAX_TOPIC_SUBSCRIBED_USERS {
                result.failed.push(pb::FailedUser {
                    user_id: u,
                    code: topic_user_code::SUB_USER_EXCEED_LIMITATION,
                    reason: format!("at most {} publishers per topic", limits::MAX_TOPIC_SUBSCRIBED_USERS),
                });
            } else {
                set.insert(u.clone());
                result.succeeded.push(u);
            }
        }
        if set.is_empty() {
            m.subscriptions.remove(&r.topic);
        }
        Ok(Some(pb::response::Result::SubscribeTopic(result)))
    })
}

pub(crate) fn unsubscribe_topic(session: &Arc<Session>, r: pb::UnsubscribeTopic) -> Reply {
    validate::topic_name(&r.topic)?;
    with_member(session, &r.channel, |ch, user| {
        let m = ch.members.get_mut(user).expect("member checked");
        let Some(set) = m.subscriptions.get_mut(&r.topic) else {
            return Err(Violation::new(
                ErrorCode::CHANNEL_TOPIC_NOT_SUBSCRIBED,
                format!("topic {:?} is not subscribed", r.topic),
            ));
        };
        if r.users.is_empty() {
            m.subscriptions.remove(&r.topic);
        } else {
            for u in &r.users {
                set.remove(u);
            }
            if set.is_empty() {
                m.subscriptions.remove(&r.topic);
            }
        }
        Ok(None)
    })
}

// ---- Across nodes (a cluster): see cluster/presence.rs ----

fn note_member(
    c: &crate::cluster::Cluster,
    app: &str,
    channel: &str,
    user: &str,
    topics: Option<&BTreeMap<String, TopicRole>>,
) {
    use crate::cluster::{Note, NoteKind};
    let kind = if topics.is_some() { NoteKind::Member } else { NoteKind::NotMember };
    c.note(Note {
        kind: kind as u32,
        app: app.to_string(),
        channel_type: ChannelType::STREAM as u32,
        channel: channel.to_string(),
        user: user.to_string(),
        topics: topics
            .into_iter()
            .flatten()
            .map(|(t, r)| pb::PublisherInfo { user_id: t.clone(), meta: r.meta.clone() })
            .collect(),
        ..Default::default()
    });
}

/// Tells the other nodes which topics a local member publishes in now.
fn note_topics(session: &Session, channel: &str, m: &Member) {
    if let Some(c) = &session.app.cluster {
        note_member(c, &session.app.id, channel, &session.user_id, Some(&m.topics));
    }
}

/// The topic messages of publishers on other nodes, for the members here.
fn watch_topics(
    c: &Arc<crate::cluster::Cluster>,
    app: &str,
    channel: &str,
    ch: std::sync::Weak<std::sync::Mutex<StreamChannel>>,
) -> crate::cluster::Watch {
    c.watch_subject(crate::cluster::topic_subject(app, channel), move |payload| {
        let Some(ch) = ch.upgrade() else { return false };
        if let Some((topic, publisher, body)) = crate::cluster::parse_topic_message(&payload) {
            ch.lock().unwrap().deliver_topic(&topic, &publisher, &body);
        }
        true
    })
}

/// A member on another node (`node`) publishes in these topics now (`Some`), or left the
/// channel (`None`): the replica is updated and the members here get topic REMOTE_JOIN /
/// REMOTE_LEAVE events for what changed.
pub(crate) fn remote_member(
    app: &crate::engine::App,
    channel: &str,
    user: &str,
    node: &Arc<str>,
    topics: Option<BTreeMap<String, String>>,
) {
    let ch_arc = match &topics {
        Some(_) => app.streams.entry(channel.to_string()).or_default().clone(),
        None => match app.streams.get(channel) {
            Some(c) => c.clone(),
            None => return,
        },
    };
    let empty = {
        let mut ch = ch_arc.lock().unwrap();
        let old = match ch.remote.get(user) {
            // Only the node it was on takes it away (it may have moved to another node).
            Some(m) if topics.is_none() && m.node != *node => return,
            Some(m) => m.topics.clone(),
            None => BTreeMap::new(),
        };
        let new = topics.clone().unwrap_or_default();
        match topics {
            Some(topics) => {
                ch.remote.insert(Arc::from(user), RemoteMember { node: node.clone(), topics });
            }
            None => {
                ch.remote.remove(user);
            }
        }
        // (A user also a member here speaks for itself.)
        if !ch.members.contains_key(user) {
            for (topic, meta) in old.iter().filter(|(t, _)| !new.contains_key(*t)) {
                ch.broadcast_except(user, topic_event(TopicEventType::REMOTE_LEAVE, channel, user, topic, meta));
            }
            for (topic, meta) in new.iter().filter(|(t, _)| !old.contains_key(*t)) {
                ch.broadcast_except(user, topic_event(TopicEventType::REMOTE_JOIN, channel, user, topic, meta));
            }
        }
        ch.is_empty()
    };
    if empty {
        app.streams.remove_if(channel, |_, c| c.lock().unwrap().is_empty());
    }
}

/// The members of the app's stream channels on `node`: (channel, user).
pub(crate) fn remote_members_of(app: &crate::engine::App, node: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in app.streams.iter() {
        for (u, m) in &c.value().lock().unwrap().remote {
            if &*m.node == node {
                out.push((c.key().clone(), u.to_string()));
            }
        }
    }
    out
}

/// A node went silent: its members leave the app's stream channels (topic REMOTE_LEAVE here).
pub(crate) fn remote_node_gone(app: &crate::engine::App, node: &str) {
    let origin: Arc<str> = Arc::from(node);
    for (channel, user) in remote_members_of(app, node) {
        remote_member(app, &channel, &user, &origin, None);
    }
}

/// The members of the app's stream channels on this node, as notes (a joining node's sync).
pub(crate) fn local_notes(app: &crate::engine::App, out: &mut Vec<crate::cluster::Note>) {
    for c in app.streams.iter() {
        for (u, m) in &c.value().lock().unwrap().members {
            out.push(crate::cluster::Note {
                kind: crate::cluster::NoteKind::Member as u32,
                app: app.id.clone(),
                channel_type: ChannelType::STREAM as u32,
                channel: c.key().clone(),
                user: u.to_string(),
                topics: m
                    .topics
                    .iter()
                    .map(|(t, r)| pb::PublisherInfo { user_id: t.clone(), meta: r.meta.clone() })
                    .collect(),
                ..Default::default()
            });
        }
    }
}

/// `join`, answered once topic messages of publishers on other nodes also arrive here (in a
/// cluster, the node's NATS subscription of a stream channel new to it is confirmed first).
pub(crate) fn join_answer(
    engine: &crate::engine::Engine,
    session: &Arc<Session>,
    request_id: u64,
    r: pb::StreamJoin,
) -> Option<Reply> {
    let channel = r.channel.clone();
    let reply = join(engine, session, r);
    if reply.is_err() || session.app.cluster.is_none() {
        return Some(reply);
    }
    let Some(ch) = session.app.streams.get(&channel).map(|c| c.clone()) else { return Some(reply) };
    let waiting = ch.lock().unwrap().watch.as_ref().map(|w| w.ready_signal()).filter(|r| !*r.borrow());
    let Some(mut ready) = waiting else { return Some(reply) };
    let session = session.clone();
    tokio::spawn(async move {
        if tokio::time::timeout(std::time::Duration::from_secs(5), ready.wait_for(|v| *v)).await.is_err() {
            tracing::warn!(channel, "cluster: the stream channel's NATS subscription was not confirmed within 5 s");
        }
        // (And every node knows of the new member.)
        if let Some(c) = &session.app.cluster {
            c.barrier(c.notes_sent()).await;
        }
        session.send(crate::session::response(request_id, reply));
    });
    None
}
