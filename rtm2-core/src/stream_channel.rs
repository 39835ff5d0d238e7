//! Stream channels: join/leave, topics (publish side and subscribe side), token renewal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};

use rtm2_proto::enums::*;
use rtm2_proto::pb::{self, client_frame};
use rtm2_proto::{ErrorCode, limits, validate};

use crate::client::try_op;
use crate::client::{Inner, Late, StreamCache, Target, join_body, join_topic_body, subscribe_topic_body};
use crate::error::{Error, Result};
use crate::runtime::Op;
use crate::types::*;

pub(crate) struct StreamInner {
    pub name: String,
    pub client: Weak<Inner>,
}

/// A stream channel of a client (`Client::stream_channel`). Cheap to clone; every handle of a
/// name refers to the same channel.
#[derive(Clone)]
pub struct StreamChannel {
    pub(crate) inner: Arc<StreamInner>,
    pub(crate) timeout: Option<std::time::Duration>,
}

fn v(op: &'static str, r: std::result::Result<(), validate::Violation>) -> Result<()> {
    r.map_err(|v| Error::from_violation(op, v))
}

impl StreamChannel {
    /// A handle to the same channel whose operations use `timeout` instead of the configured
    /// request timeout.
    pub fn with_timeout(&self, timeout: std::time::Duration) -> StreamChannel {
        StreamChannel { inner: self.inner.clone(), timeout: Some(timeout) }
    }

    /// The channel name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    fn client(&self, op: &'static str) -> Result<Arc<Inner>> {
        self.inner
            .client
            .upgrade()
            .ok_or_else(|| Error::new(ErrorCode::INSTANCE_ALREADY_RELEASED, op, "the client was dropped"))
    }

    fn timeout(&self, client: &Inner) -> std::time::Duration {
        self.timeout.unwrap_or_else(|| client.request_timeout())
    }

    fn with_cache<T>(
        &self,
        client: &Inner,
        op: &'static str,
        f: impl FnOnce(&mut StreamCache) -> Result<T>,
    ) -> Result<T> {
        let mut st = client.state.lock().unwrap();
        match st.cache.streams.get_mut(&self.inner.name) {
            Some(c) => f(c),
            None => Err(Error::new(
                ErrorCode::CHANNEL_NOT_JOINED,
                op,
                format!("stream channel {:?} is not joined", self.inner.name),
            )),
        }
    }

    /// Joins the channel with its token. Returns the topics and publishers present; the same
    /// snapshot is emitted as a topic SNAPSHOT event.
    pub fn join(&self, options: JoinOptions) -> Op<Result<JoinResult>> {
        let op = "join";
        let client = try_op!(self.client(op));
        {
            let st = client.state.lock().unwrap();
            if st.cache.streams.contains_key(&self.inner.name) {
                return Op::ready(Err(Error::new(ErrorCode::DUPLICATE_OPERATION, op, "already joined")));
            }
            if st.cache.streams.len() >= limits::MAX_JOINED_STREAM_CHANNELS {
                return Op::ready(Err(Error::new(
                    ErrorCode::CHANNEL_INSTANCE_EXCEED_LIMITATION,
                    op,
                    format!("at most {} stream channels may be joined", limits::MAX_JOINED_STREAM_CHANNELS),
                )));
            }
        }
        let name = self.inner.name.clone();
        let states = client.state.lock().unwrap().cache.entry_states(
            &(ChannelType::STREAM, name.clone()),
            options.with_presence,
            &client,
        );
        // Carried out after the caller stopped waiting: adopted (the server refuses a second
        // join while this one stands), and said with the CONNECTED event.
        let (late_name, late_options) = (name.clone(), options.clone());
        let late = Late::new(Target::Stream(name.clone()), move |client, resp, _| {
            adopt_join(client, &late_name, late_options, resp);
        });
        let reply = client.submit_stateful(
            op,
            ErrorCode::CHANNEL_JOIN_FAILED,
            join_body(&name, &options, states),
            self.timeout(&client),
            late,
        );
        Op::spawn(async move {
            let resp = reply.await?;
            let timestamp_ms = resp.server_time_ms;
            let topics = adopt_join(&client, &name, options, resp);
            Ok(JoinResult { channel: name, topics: topics.into_iter().map(Into::into).collect(), timestamp_ms })
        })
    }

    /// Leaves the channel: every topic role and topic subscription ends.
    pub fn leave(&self) -> Op<Result<Ack>> {
        let op = "leave";
        let client = try_op!(self.client(op));
        try_op!(self.with_cache(&client, op, |_| Ok(())));
        let name = self.inner.name.clone();
        let body = client_frame::Body::StreamLeave(pb::StreamLeave { channel: name.clone() });
        let late_name = name.clone();
        let late = Late::new(Target::Stream(name.clone()), move |client, _, _| adopt_leave(client, &late_name));
        let reply = client.submit_stateful(op, ErrorCode::CHANNEL_LEAVE_FAILED, body, self.timeout(&client), late);
        Op::spawn(async move {
            let r = reply.await;
            if r.is_ok() || r.as_ref().is_err_and(|e| e.code == ErrorCode::CHANNEL_NOT_JOINED) {
                adopt_leave(&client, &name);
            }
            r.map(|r| Ack::of(&r))
        })
    }

    /// Becomes a publisher in `topic` (at most 8 per channel). Others get REMOTE_JOIN.
    pub fn join_topic(&self, topic: &str, options: JoinTopicOptions) -> Op<Result<Ack>> {
        let op = "join_topic";
        try_op!(v(op, validate::topic_name(topic)));
        try_op!(v(op, validate::topic_meta(&options.meta)));
        let client = try_op!(self.client(op));
        try_op!(self.with_cache(&client, op, |c| {
            if c.topics.contains_key(topic) {
                return Err(Error::new(
                    ErrorCode::CHANNEL_JOIN_TOPIC_FAILED,
                    op,
                    format!("topic {topic:?} is already joined"),
                ));
            }
            if c.topics.len() >= limits::MAX_JOINED_TOPICS {
                return Err(Error::new(
                    ErrorCode::CHANNEL_EXCEED_TOPIC_LIMITATION,
                    op,
                    format!("at most {} topics may be joined per stream channel", limits::MAX_JOINED_TOPICS),
                ));
            }
            Ok(())
        }));
        let (name, topic) = (self.inner.name.clone(), topic.to_string());
        let body = join_topic_body(&name, &topic, &options);
        let (late_name, late_topic, late_options) = (name.clone(), topic.clone(), options.clone());
        let late = Late::new(Target::Topic(name.clone(), topic.clone()), move |client, _, _| {
            if let Some(c) = client.state.lock().unwrap().cache.streams.get_mut(&late_name) {
                c.topics.insert(late_topic, late_options);
            }
        });
        let reply = client.submit_stateful(op, ErrorCode::CHANNEL_JOIN_TOPIC_FAILED, body, self.timeout(&client), late);
        Op::spawn(async move {
            let r = reply.await?;
            if let Some(c) = client.state.lock().unwrap().cache.streams.get_mut(&name) {
                c.topics.insert(topic, options);
            }
            Ok(Ack::of(&r))
        })
    }

    /// Stops publishing in `topic`. Others get REMOTE_LEAVE.
    pub fn leave_topic(&self, topic: &str) -> Op<Result<Ack>> {
        let op = "leave_topic";
        try_op!(v(op, validate::topic_name(topic)));
        let client = try_op!(self.client(op));
        try_op!(self.with_cache(&client, op, |c| {
            if !c.topics.contains_key(topic) {
                return Err(Error::new(
                    ErrorCode::CHANNEL_TOPIC_NOT_JOINED,
                    op,
                    format!("topic {topic:?} is not joined"),
                ));
            }
            Ok(())
        }));
        let (name, topic) = (self.inner.name.clone(), topic.to_string());
        let body = client_frame::Body::LeaveTopic(pb::LeaveTopic { channel: name.clone(), topic: topic.clone() });
        let (late_name, late_topic) = (name.clone(), topic.clone());
        let late = Late::new(Target::Topic(name.clone(), topic.clone()), move |client, _, _| {
            if let Some(c) = client.state.lock().unwrap().cache.streams.get_mut(&late_name) {
                c.topics.remove(&late_topic);
            }
        });
        let reply = client.submit_stateful(op, ErrorCode::CHANNEL_LEAVE_FAILED, body, self.timeout(&client), late);
        Op::spawn(async move {
            let r = reply.await;
            if (r.is_ok() || r.as_ref().is_err_and(|e| e.code == ErrorCode::CHANNEL_TOPIC_NOT_JOINED))
                && let Some(c) = client.state.lock().unwrap().cache.streams.get_mut(&name)
            {
                c.topics.remove(&topic);
            }
            r.map(|r| Ack::of(&r))
        })
    }

    /// Publishes in a joined topic (payload + customType ≤ 1 KiB). Delivered to the members
    /// that subscribed to this publisher in this topic, in call order.
    pub fn publish_topic(
        &self,
        topic: &str,
        payload: impl Into<Payload>,
        options: TopicMessageOptions,
    ) -> Op<Result<Ack>> {
        let op = "publish_topic";
        let payload = payload.into();
        try_op!(v(op, validate::topic_name(topic)));
        try_op!(v(op, validate::topic_message(&payload.data, payload.message_type as u32, &options.custom_type)));
        let client = try_op!(self.client(op));
        try_op!(self.with_cache(&client, op, |c| {
            if !c.topics.contains_key(topic) {
                return Err(Error::new(
                    ErrorCode::CHANNEL_TOPIC_NOT_JOINED,
                    op,
                    format!("topic {topic:?} is not joined; join it before publishing"),
                ));
            }
            Ok(())
        }));
        let place = crate::encryption::Place {
            channel_type: ChannelType::STREAM as u32,
            channel: &self.inner.name,
            topic,
            publisher: &client.user_id,
            message_type: payload.message_type as u32,
            custom_type: &options.custom_type,
        };
        let data = client.e2ee.seal_message(&place, &payload.data).unwrap_or(payload.data);
        let body = client_frame::Body::PublishTopic(pb::PublishTopic {
            channel: self.inner.name.clone(),
            topic: topic.to_string(),
            message_type: payload.message_type as u32,
            payload: data,
            custom_type: options.custom_type,
            send_ts: options.send_ts,
            encryption: client.e2ee.mode(),
        });
        client.publish(op, ErrorCode::CHANNEL_PUBLISH_MESSAGE_TIMEOUT, body, self.timeout(&client))
    }

    /// Subscribes to publishers of `topic`: the given users (a list of more than 128, the most a
    /// stream channel holds: 11011), or (empty) every current publisher up to 64. Incremental;
    /// reports per-user success and failure.
    pub fn subscribe_topic(&self, topic: &str, users: &[&str]) -> Op<Result<SubscribeTopicResult>> {
        let op = "subscribe_topic";
        try_op!(v(op, validate::topic_name(topic)));
        try_op!(v(op, validate::topic_user_count(users.len())));
        let client = try_op!(self.client(op));
        try_op!(self.with_cache(&client, op, |c| {
            if !c.subscriptions.contains_key(topic) && c.subscriptions.len() >= limits::MAX_SUBSCRIBED_TOPICS {
                return Err(Error::new(
                    ErrorCode::CHANNEL_EXCEED_TOPIC_LIMITATION,
                    op,
                    format!("at most {} topics may be subscribed per stream channel", limits::MAX_SUBSCRIBED_TOPICS),
                ));
            }
            Ok(())
        }));
        let (name, topic) = (self.inner.name.clone(), topic.to_string());
        let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        let body = subscribe_topic_body(&name, &topic, users);
        // Carried out after the caller stopped waiting: the publishers subscribed are adopted.
        let (late_name, late_topic) = (name.clone(), topic.clone());
        let late = Late::new(Target::TopicUsers(name.clone(), topic.clone()), move |client, resp, _| {
            adopt_topic_subscription(client, &late_name, late_topic, resp);
        });
        let reply = client.submit_stateful(op, ErrorCode::CHANNEL_SUBSCRIBE_TIMEOUT, body, self.timeout(&client), late);
        Op::spawn(async move {
            let resp = reply.await?;
            let timestamp_ms = resp.server_time_ms;
            let r = adopt_topic_subscription(&client, &name, topic, resp);
            Ok(SubscribeTopicResult {
                timestamp_ms,
                succeeded: r.succeeded,
                failed: r
                    .failed
                    .into_iter()
                    .map(|f| FailedUser { user_id: f.user_id, code: f.code, reason: f.reason })
                    .collect(),
            })
        })
    }

    /// Unsubscribes the given users of `topic` (more than 128: 11011), or (empty) the whole topic.
    /// 11013 when the topic is not subscribed.
    pub fn unsubscribe_topic(&self, topic: &str, users: &[&str]) -> Op<Result<Ack>> {
        let op = "unsubscribe_topic";
        try_op!(v(op, validate::topic_name(topic)));
        try_op!(v(op, validate::topic_user_count(users.len())));
        let client = try_op!(self.client(op));
        try_op!(self.with_cache(&client, op, |c| {
            if !c.subscriptions.contains_key(topic) {
                return Err(Error::new(
                    ErrorCode::CHANNEL_TOPIC_NOT_SUBSCRIBED,
                    op,
                    format!("topic {topic:?} is not subscribed"),
                ));
            }
            Ok(())
        }));
        let (name, topic) = (self.inner.name.clone(), topic.to_string());
        let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        let body = client_frame::Body::UnsubscribeTopic(pb::UnsubscribeTopic {
            channel: name.clone(),
            topic: topic.clone(),
            users: users.clone(),
        });
        let (late_name, late_topic, late_users) = (name.clone(), topic.clone(), users.clone());
        let late = Late::new(Target::TopicUsers(name.clone(), topic.clone()), move |client, _, _| {
            forget_topic_users(client, &late_name, &late_topic, &late_users);
        });
        let reply =
            client.submit_stateful(op, ErrorCode::CHANNEL_UNSUBSCRIBE_FAILED, body, self.timeout(&client), late);
        Op::spawn(async move {
            let r = reply.await?;
            forget_topic_users(&client, &name, &topic, &users);
            Ok(Ack::of(&r))
        })
    }

    /// The publishers this client subscribed to in `topic` (from the client's own state, which
    /// mirrors the server's), sorted; empty when the topic is not subscribed. Synchronous: the
    /// client knows it. 11001 when the channel is not joined, 11008 for an invalid topic name.
    pub fn subscribed_users(&self, topic: &str) -> Result<Vec<String>> {
        let op = "subscribed_users";
        v(op, validate::topic_name(topic))?;
        let client = self.client(op)?;
        self.with_cache(&client, op, |c| {
            Ok(c.subscriptions
                .get(topic)
                .map(|set| set.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect())
                .unwrap_or_default())
        })
    }

    /// Topics this client joined as a publisher.
    pub fn joined_topics(&self) -> Vec<String> {
        let Some(client) = self.inner.client.upgrade() else { return Vec::new() };
        self.with_cache(&client, "joined_topics", |c| Ok(c.topics.keys().cloned().collect())).unwrap_or_default()
    }

    /// Whether this client has joined the channel.
    pub fn is_joined(&self) -> bool {
        let Some(client) = self.inner.client.upgrade() else { return false };
        client.state.lock().unwrap().cache.streams.contains_key(&self.inner.name)
    }

    /// Renews this channel's token.
    pub fn renew_token(&self, token: &str) -> Op<Result<Ack>> {
        let op = "renew_token";
        let client = try_op!(self.client(op));
        try_op!(self.with_cache(&client, op, |_| Ok(())));
        let (name, token) = (self.inner.name.clone(), token.to_string());
        let body = client_frame::Body::RenewToken(pb::RenewToken { token: token.clone(), channel: name.clone() });
        let reply = client.submit(op, ErrorCode::RENEW_TOKEN_TIMEOUT, body, self.timeout(&client));
        Op::spawn(async move {
            let r = reply.await?;
            if let Some(c) = client.state.lock().unwrap().cache.streams.get_mut(&name) {
                c.opts.token = token;
            }
            Ok(Ack::of(&r))
        })
    }
}

/// Two handles are equal when they are the same channel of the same client.
impl PartialEq for StreamChannel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for StreamChannel {}

/// Makes a join's outcome the client's state: the channel joined, its CONNECTED event and
/// topic snapshot; the topics present.
fn adopt_join(client: &Inner, name: &str, options: JoinOptions, resp: pb::Response) -> Vec<pb::TopicInfo> {
    let topics = match resp.result {
        Some(pb::response::Result::StreamJoin(j)) => j.topics,
        _ => Vec::new(),
    };
    {
        let mut st = client.state.lock().unwrap();
        if st.cache.streams.contains_key(name) {
            return topics;
        }
        st.cache.streams.insert(
            name.to_string(),
            StreamCache { opts: options, topics: BTreeMap::new(), subscriptions: BTreeMap::new() },
        );
    }
    client.emit_stream_state(
        name,
        LinkState::CONNECTED,
        LinkState::IDLE,
        LinkOperation::JOIN,
        LinkStateChangeReason::JOIN_SUCCESS,
        String::new(),
    );
    client.emit_snapshot(name, topics.clone());
    topics
}

/// Makes a leave the client's state: the channel, its topics and state forgotten; IDLE.
fn adopt_leave(client: &Inner, name: &str) {
    {
        let mut st = client.state.lock().unwrap();
        if st.cache.streams.remove(name).is_none() {
            return;
        }
        st.cache.states.remove(&(ChannelType::STREAM, name.to_string()));
    }
    client.emit_stream_state(
        name,
        LinkState::IDLE,
        LinkState::CONNECTED,
        LinkOperation::LEAVE,
        LinkStateChangeReason::LEAVE,
        String::new(),
    );
}

/// Adds the publishers a topic subscription succeeded for to the client's state.
fn adopt_topic_subscription(client: &Inner, name: &str, topic: String, resp: pb::Response) -> pb::SubscribeTopicResult {
    let r = match resp.result {
        Some(pb::response::Result::SubscribeTopic(r)) => r,
        _ => pb::SubscribeTopicResult::default(),
    };
    if !r.succeeded.is_empty()
        && let Some(c) = client.state.lock().unwrap().cache.streams.get_mut(name)
    {
        c.subscriptions.entry(topic).or_default().extend(r.succeeded.iter().cloned());
    }
    r
}

/// Removes unsubscribed publishers (none given: the whole topic) from the client's state.
fn forget_topic_users(client: &Inner, name: &str, topic: &str, users: &[String]) {
    if let Some(c) = client.state.lock().unwrap().cache.streams.get_mut(name) {
        if users.is_empty() {
            c.subscriptions.remove(topic);
        } else if let Some(set) = c.subscriptions.get_mut(topic) {
            for u in users {
                set.remove(u);
            }
            if set.is_empty() {
                c.subscriptions.remove(topic);
            }
        }
    }
}
