//! Presence: who is in a channel, where a user is, and per-channel user state.

use std::collections::BTreeMap;
use std::sync::Arc;

use rtm2_proto::enums::{ChannelType, LinkState, PresenceEventType};
use rtm2_proto::pb::{self, client_frame};
use rtm2_proto::{ErrorCode, limits, validate};

use crate::client::{Client, Inner, try_op};
use crate::error::{Error, Result};
use crate::runtime::Op;
use crate::types::{Ack, Timed};

/// A user's presence state in a channel: key → value.
pub type States = BTreeMap<String, String>;

/// A user and its state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserState {
    /// The user id.
    pub user_id: String,
    /// Its state (empty unless asked for / set).
    pub states: States,
}

impl From<pb::UserState> for UserState {
    fn from(u: pb::UserState) -> Self {
        UserState { user_id: u.user_id, states: from_items(u.states) }
    }
}

pub(crate) fn from_items(items: Vec<pb::StateItem>) -> States {
    items.into_iter().map(|s| (s.key, s.value)).collect()
}

pub(crate) fn to_items(states: &States) -> Vec<pb::StateItem> {
    states.iter().map(|(k, v)| pb::StateItem { key: k.clone(), value: v.clone() }).collect()
}

/// Options of [`Presence::get_online_users`] (reference defaults: user ids, no state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetOnlineUsersOptions {
    /// List the users (false with `include_state` false: the count only).
    pub include_user_id: bool,
    /// List each user's state (needs `include_user_id`, else 13003).
    pub include_state: bool,
    /// The `next_page` of an earlier answer; empty for the first page.
    pub page: String,
}

impl Default for GetOnlineUsersOptions {
    fn default() -> Self {
        GetOnlineUsersOptions { include_user_id: true, include_state: false, page: String::new() }
    }
}

/// Who is present in a channel (one page).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OnlineUsers {
    /// The users of this page.
    pub occupants: Vec<UserState>,
    /// Users present in the channel (all pages).
    pub total_occupancy: u32,
    /// Pass as `page` for the next page; empty on the last page.
    pub next_page: String,
}

/// A channel and its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel name.
    pub channel: String,
    /// MESSAGE or STREAM.
    pub channel_type: ChannelType,
}

/// Users that joined, left, timed out or changed state during one presence interval.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PresenceInterval {
    /// Users that joined.
    pub joined: Vec<String>,
    /// Users that left.
    pub left: Vec<String>,
    /// Users that timed out.
    pub timed_out: Vec<String>,
    /// Full state of every user whose state changed.
    pub states: Vec<UserState>,
    /// Users present at the end of the interval.
    pub total_occupancy: u32,
}

/// A presence event (to subscribers/joiners with `with_presence`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEvent {
    /// SNAPSHOT, INTERVAL, REMOTE_JOIN, REMOTE_LEAVE, REMOTE_TIMEOUT or REMOTE_STATE_CHANGED.
    pub event_type: PresenceEventType,
    /// MESSAGE or STREAM.
    pub channel_type: ChannelType,
    /// The channel.
    pub channel: String,
    /// The user the event is about (empty for SNAPSHOT and INTERVAL).
    pub publisher: String,
    /// REMOTE_STATE_CHANGED: the publisher's full state.
    pub states: States,
    /// SNAPSHOT: everyone present, including this client.
    pub snapshot: Vec<UserState>,
    /// INTERVAL: the aggregated changes.
    pub interval: Option<PresenceInterval>,
    /// Server time, ms.
    pub timestamp_ms: u64,
}

impl From<pb::PresenceEvent> for PresenceEvent {
    fn from(e: pb::PresenceEvent) -> Self {
        PresenceEvent {
            event_type: PresenceEventType::from_u32(e.event_type).unwrap_or(PresenceEventType::NONE),
            channel_type: ChannelType::from_u32(e.channel_type).unwrap_or(ChannelType::NONE),
            channel: e.channel,
            publisher: e.publisher,
            states: from_items(e.states),
            snapshot: e.snapshot.into_iter().map(Into::into).collect(),
            interval: e.interval.map(|i| PresenceInterval {
                joined: i.joined,
                left: i.left,
                timed_out: i.timed_out,
                states: i.states.into_iter().map(Into::into).collect(),
                total_occupancy: i.total_occupancy,
            }),
            timestamp_ms: e.timestamp_ms,
        }
    }
}

/// The presence service of a client (`Client::presence`). Works for channels the client has
/// not subscribed to or joined, except for its own state (see [`set_state`](Self::set_state)).
#[derive(Clone)]
pub struct Presence {
    pub(crate) client: Client,
}

fn v(op: &'static str, r: std::result::Result<(), validate::Violation>) -> Result<()> {
    r.map_err(|v| Error::from_violation(op, v))
}

fn scope(op: &'static str, channel: &str, channel_type: ChannelType) -> Result<()> {
    v(op, validate::scope(channel, channel_type as u32).map(|_| ()))
}

impl Presence {
    fn inner(&self) -> &Arc<Inner> {
        &self.client.inner
    }

    fn request(
        &self,
        op: &'static str,
        body: client_frame::Body,
    ) -> impl Future<Output = Result<pb::Response>> + Send + 'static {
        self.inner().submit(op, ErrorCode::PRESENCE_OPERATION_TIMEOUT, body, self.client.timeout())
    }

    /// Who is present in a channel (a page at a time). No need to be in the channel.
    pub fn get_online_users(
        &self,
        channel: &str,
        channel_type: ChannelType,
        options: GetOnlineUsersOptions,
    ) -> Op<Result<Timed<OnlineUsers>>> {
        let op = "get_online_users";
        try_op!(scope(op, channel, channel_type));
        if options.include_state && !options.include_user_id {
            return Op::ready(Err(Error::new(
                ErrorCode::PRESENCE_INVALID_ARGUMENT,
                op,
                "include_state needs include_user_id",
            )));
        }
        let reply = self.request(
            op,
            client_frame::Body::GetOnlineUsers(pb::GetOnlineUsers {
                channel: channel.to_string(),
                channel_type: channel_type as u32,
                include_user_id: options.include_user_id,
                include_state: options.include_state,
                page: options.page,
            }),
        );
        let (inner, channel) = (self.inner().clone(), channel.to_string());
        Op::lazy(async move {
            let resp = reply.await?;
            let ts = resp.server_time_ms;
            let users = match resp.result {
                Some(pb::response::Result::OnlineUsers(mut r)) => OnlineUsers {
                    occupants: {
                        for u in r.occupants.iter_mut() {
                            inner.e2ee.open_states(channel_type, &channel, &u.user_id, &mut u.states);
                        }
                        r.occupants.into_iter().map(Into::into).collect()
                    },
                    total_occupancy: r.total_occupancy,
                    next_page: r.next_page,
                },
                _ => OnlineUsers::default(),
            };
            Ok(Timed { value: users, timestamp_ms: ts })
        })
    }

    /// Alias of [`get_online_users`](Self::get_online_users) (the reference's `whoNow`).
    pub fn who_now(
        &self,
        channel: &str,
        channel_type: ChannelType,
        options: GetOnlineUsersOptions,
    ) -> Op<Result<Timed<OnlineUsers>>> {
        self.get_online_users(channel, channel_type, options)
    }

    /// The channels a user is present in; `""` = this client.
    pub fn get_user_channels(&self, user_id: &str) -> Op<Result<Timed<Vec<ChannelInfo>>>> {
        let op = "get_user_channels";
        if !user_id.is_empty() {
            try_op!(v(op, validate::user_id(user_id)));
        }
        let reply =
            self.request(op, client_frame::Body::GetUserChannels(pb::GetUserChannels { user_id: user_id.to_string() }));
        Op::lazy(async move {
            let resp = reply.await?;
            let ts = resp.server_time_ms;
            let channels = match resp.result {
                Some(pb::response::Result::UserChannels(r)) => r
                    .channels
                    .into_iter()
                    .map(|c| ChannelInfo {
                        channel: c.channel,
                        channel_type: ChannelType::from_u32(c.channel_type).unwrap_or(ChannelType::NONE),
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Ok(Timed { value: channels, timestamp_ms: ts })
        })
    }

    /// Alias of [`get_user_channels`](Self::get_user_channels) (the reference's `whereNow`).
    pub fn where_now(&self, user_id: &str) -> Op<Result<Timed<Vec<ChannelInfo>>>> {
        self.get_user_channels(user_id)
    }

    /// Sets (adds or overwrites) keys of this client's state in a channel; others present get
    /// one REMOTE_STATE_CHANGED with the full state. Before the client subscribes to / joins the
    /// channel with presence, the state is kept locally (at most 100 channels, 13004) and set
    /// when it does (and again after a reconnect that could not resume).
    pub fn set_state<K: Into<String>, V: Into<String>>(
        &self,
        channel: &str,
        channel_type: ChannelType,
        states: impl IntoIterator<Item = (K, V)>,
    ) -> Op<Result<Ack>> {
        let op = "set_state";
        try_op!(scope(op, channel, channel_type));
        let items: Vec<(String, String)> = states.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        try_op!(v(op, validate::state_items(items.iter().map(|(k, v)| (k.as_str(), v.as_str())))));
        let key = (channel_type, channel.to_string());
        let present = {
            let mut st = self.inner().state.lock().unwrap();
            if matches!(st.link_state, LinkState::IDLE | LinkState::FAILED) {
                return Op::ready(Err(Error::new(ErrorCode::NOT_LOGIN, op, "log in before setting state")));
            }
            let present = st.cache.present(&key);
            // Channels whose state waits for a subscribe/join (entered ones do not count).
            let cached = st.cache.states.keys().filter(|k| !st.cache.present(k)).count();
            let current = st.cache.states.get(&key);
            let merged = current.map_or(0, |c| c.len())
                + items.iter().filter(|(k, _)| !current.is_some_and(|c| c.contains_key(k))).count();
            if merged > limits::MAX_STATE_ITEMS {
                return Op::ready(Err(Error::new(
                    ErrorCode::PRESENCE_STATE_COUNT_OVERFLOW,
                    op,
                    format!("the state would have {merged} pairs; at most {} are allowed", limits::MAX_STATE_ITEMS),
                )));
            }
            if !present {
                if current.is_none() && cached >= limits::MAX_CACHED_STATE_CHANNELS {
                    return Op::ready(Err(Error::new(
                        ErrorCode::PRESENCE_CACHED_TOO_MANY_STATES,
                        op,
                        format!(
                            "state is cached for at most {} channels not joined yet",
                            limits::MAX_CACHED_STATE_CHANNELS
                        ),
                    )));
                }
                st.cache.states.entry(key.clone()).or_default().extend(items.iter().cloned());
            }
            present
        };
        if !present {
            // Kept here until the subscribe / join: answered by the client (its clock).
            return Op::ready(Ok(Ack::at(rtm2_proto::now_ms())));
        }
        let mut sealed: Vec<pb::StateItem> =
            items.iter().map(|(k, v)| pb::StateItem { key: k.clone(), value: v.clone() }).collect();
        self.inner().e2ee.seal_states(channel_type, channel, &self.inner().user_id, &mut sealed);
        let reply = self.request(
            op,
            client_frame::Body::SetState(pb::SetState {
                channel: channel.to_string(),
                channel_type: channel_type as u32,
                states: sealed,
            }),
        );
        let inner = self.inner().clone();
        Op::lazy(async move {
            let r = reply.await?;
            inner.state.lock().unwrap().cache.states.entry(key).or_default().extend(items);
            Ok(Ack::of(&r))
        })
    }

    /// A user's state in a channel (13011 if the user is not present there).
    pub fn get_state(&self, channel: &str, channel_type: ChannelType, user_id: &str) -> Op<Result<Timed<UserState>>> {
        let op = "get_state";
        try_op!(scope(op, channel, channel_type));
        try_op!(v(op, validate::user_id(user_id)));
        let reply = self.request(
            op,
            client_frame::Body::GetState(pb::GetState {
                channel: channel.to_string(),
                channel_type: channel_type as u32,
                user_id: user_id.to_string(),
            }),
        );
        let (inner, channel) = (self.inner().clone(), channel.to_string());
        Op::lazy(async move {
            let resp = reply.await?;
            let ts = resp.server_time_ms;
            match resp.result {
                Some(pb::response::Result::UserState(mut u)) => {
                    inner.e2ee.open_states(channel_type, &channel, &u.user_id, &mut u.states);
                    Ok(Timed { value: u.into(), timestamp_ms: ts })
                }
                _ => Err(Error::new(ErrorCode::PRESENCE_OPERATION_FAILED, op, "the server sent no state")),
            }
        })
    }

    /// Removes keys of this client's state in a channel (`keys` empty: all of them; more than 32:
    /// 13005, a state never has more).
    pub fn remove_state(&self, channel: &str, channel_type: ChannelType, keys: Vec<String>) -> Op<Result<Ack>> {
        let op = "remove_state";
        try_op!(scope(op, channel, channel_type));
        try_op!(v(op, validate::state_key_count(keys.len())));
        for k in &keys {
            try_op!(v(
                op,
                validate::name("state key", k, limits::MAX_STATE_KEY_LEN, ErrorCode::PRESENCE_INVALID_STATE_KEY)
            ));
        }
        let key = (channel_type, channel.to_string());
        let (key2, keys2) = (key.clone(), keys.clone());
        let forget = move |states: &mut crate::client::Cache| {
            let (key, keys) = (&key2, &keys2);
            if let Some(s) = states.states.get_mut(key) {
                if keys.is_empty() {
                    s.clear();
                } else {
                    for k in keys {
                        s.remove(k);
                    }
                }
                if s.is_empty() {
                    states.states.remove(key);
                }
            }
        };
        {
            let mut st = self.inner().state.lock().unwrap();
            if matches!(st.link_state, LinkState::IDLE | LinkState::FAILED) {
                return Op::ready(Err(Error::new(ErrorCode::NOT_LOGIN, op, "log in before removing state")));
            }
            if !st.cache.present(&key) {
                forget.clone()(&mut st.cache);
                return Op::ready(Ok(Ack::at(rtm2_proto::now_ms())));
            }
        }
        let reply = self.request(
            op,
            client_frame::Body::RemoveState(pb::RemoveState {
                channel: channel.to_string(),
                channel_type: channel_type as u32,
                keys: keys.clone(),
            }),
        );
        let inner = self.inner().clone();
        Op::lazy(async move {
            let r = reply.await?;
            forget(&mut inner.state.lock().unwrap().cache);
            Ok(Ack::of(&r))
        })
    }
}
