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

/// One stream channel of an app.
#[derive(Default)]
pub(crate) struct StreamChannel {
    members: BTreeMap<Arc<str>, Member>,
}

impl StreamChannel {
    fn snapshot(&self) -> Vec<pb::TopicInfo> {
        let mut topics: BTreeMap<&str, Vec<pb::PublisherInfo>> = BTreeMap::new();
        for (user, m) in &self.members {
            for (topic, role) in &m.topics {
                topics
                    .entry(topic)
                    .or_default()
                    .push(pb::PublisherInfo { user_id: user.to_string(), meta: role.meta.clone() });
            }
        }
        topics.into_iter().map(|(topic, publishers)| pb::TopicInfo { topic: topic.to_string(), publishers }).collect()
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
    let ch = session.app.streams.entry(r.channel.clone()).or_default().clone();
    let topics = {
        let mut ch = ch.lock().unwrap();
        if ch.members.len() >= limits::MAX_STREAM_CHANNEL_USERS && !ch.members.contains_key(&*session.user_id) {
            return Err(Violation::new(
                ErrorCode::CHANNEL_JOIN_FAILED,
                format!("stream channel is full ({} users)", limits::MAX_STREAM_CHANNEL_USERS),
            ));
        }
        ch.members.insert(
            session.user_id.clone(),
            Member { session: session.clone(), topics: BTreeMap::new(), subscriptions: HashMap::new() },
        );
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
            for (topic, role) in member.topics {
                ch.broadcast_except(
                    &session.user_id,
                    topic_event(TopicEventType::REMOTE_LEAVE, channel, &session.user_id, &topic, &role.meta),
                );
            }
        }
        ch.members.is_empty()
    };
    if empty {
        session.app.streams.remove_if(channel, |_, c| c.lock().unwrap().members.is_empty());
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
        ch.broadcast_except(user, topic_event(TopicEventType::REMOTE_LEAVE, &r.channel, user, &r.topic, &role.meta));
        Ok(None)
    })
}

pub(crate) fn publish_topic(session: &Arc<Session>, r: pb::PublishTopic) -> Reply {
    validate::topic_name(&r.topic)?;
    validate::topic_message(&r.payload, r.message_type, &r.custom_type)?;
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
        });
        for m in ch.members.values() {
            if m.subscriptions.get(&r.topic).is_some_and(|p| p.contains(user)) {
                m.session.send(body.clone());
            }
        }
        Ok(None)
    })
}

pub(crate) fn subscribe_topic(session: &Arc<Session>, r: pb::SubscribeTopic) -> Reply {
    validate::topic_name(&r.topic)?;
    with_member(session, &r.channel, |ch, user| {
        let publishers: Vec<String> =
            ch.members.iter().filter(|(_, m)| m.topics.contains_key(&r.topic)).map(|(u, _)| u.to_string()).collect();
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
