//! `NativePresence`: the presence service of a client (who is in a channel, where a user is,
//! per-channel user state) and the `presence` event payload, in agora-rtm-sdk shapes.

use std::collections::BTreeMap;

use napi::Env;
use napi::bindgen_prelude::Object;
use napi_derive::napi;

use rtm2_core::{ChannelType, GetOnlineUsersOptions};

use crate::client::Shared;
use crate::convert;
use crate::op::{self, CancelToken};

/// One key/value pair of a user's state (the JS layer also accepts a plain object).
#[napi(object)]
pub struct StateItem {
    pub key: String,
    pub value: String,
}

/// Options of `getOnlineUsers` (agora-rtm-sdk names; defaults: user ids, no state).
#[napi(object)]
pub struct NativeGetOnlineUsersOptions {
    /// List the users (false with `includedState` false: the count only).
    pub included_user_id: Option<bool>,
    /// List each user's state (needs `includedUserId`, else 13003).
    pub included_state: Option<bool>,
    /// The `nextPage` of an earlier answer; none or `''` for the first page.
    pub page: Option<String>,
}

/// A user and its state in a channel.
#[napi(object)]
pub struct UserState {
    pub user_id: String,
    pub states: BTreeMap<String, String>,
    pub states_count: u32,
}

/// One page of the users present in a channel.
#[napi(object)]
pub struct OnlineUsers {
    pub occupants: Vec<UserState>,
    /// Users present in the channel (all pages).
    pub total_occupancy: u32,
    /// Pass as `page` for the next page; `''` on the last page.
    pub next_page: String,
    /// The server's time of the answer, ms since the epoch.
    pub timestamp: f64,
}

/// A channel a user is present in.
#[napi(object)]
pub struct ChannelInfo {
    pub channel_name: String,
    /// `'MESSAGE'` or `'STREAM'`.
    pub channel_type: String,
}

/// The channels a user is present in (`getUserChannels`).
#[napi(object)]
pub struct UserChannels {
    pub channels: Vec<ChannelInfo>,
    /// The server's time of the answer, ms since the epoch.
    pub timestamp: f64,
}

/// A user's state in a channel (`getState`).
#[napi(object)]
pub struct UserStateAnswer {
    pub user_id: String,
    pub states: BTreeMap<String, String>,
    pub states_count: u32,
    /// The server's time of the answer, ms since the epoch.
    pub timestamp: f64,
}

/// Users of one kind of change during a presence interval.
#[napi(object)]
pub struct IntervalUsers {
    pub users: Vec<String>,
    pub user_count: u32,
}

/// The aggregated changes of one presence interval (INTERVAL events).
#[napi(object)]
pub struct PresenceInterval {
    pub join: IntervalUsers,
    pub leave: IntervalUsers,
    pub timeout: IntervalUsers,
    /// The full state of every user whose state changed.
    pub user_state_list: Vec<UserState>,
    /// Users present at the end of the interval.
    pub total_occupancy: u32,
}

/// A presence event (`presence` event).
#[napi(object)]
pub struct PresenceEvent {
    /// `'SNAPSHOT'`, `'INTERVAL'`, `'REMOTE_JOIN'`, `'REMOTE_LEAVE'`, `'REMOTE_TIMEOUT'` or
    /// `'REMOTE_STATE_CHANGED'`.
    pub event_type: String,
    /// `'MESSAGE'` or `'STREAM'`.
    pub channel_type: String,
    pub channel_name: String,
    /// The user the event is about (`''` for SNAPSHOT and INTERVAL).
    pub publisher: String,
    /// REMOTE_STATE_CHANGED: the publisher's full state (else empty).
    pub state_changed: BTreeMap<String, String>,
    /// INTERVAL only.
    pub interval: Option<PresenceInterval>,
    /// SNAPSHOT: everyone present, this client included (else empty).
    pub snapshot: Vec<UserState>,
    /// Server time, ms since the epoch.
    pub timestamp: f64,
}

fn user_state(u: &rtm2_core::UserState) -> UserState {
    UserState { user_id: u.user_id.clone(), states: u.states.clone(), states_count: u.states.len() as u32 }
}

fn interval_users(users: &[String]) -> IntervalUsers {
    IntervalUsers { users: users.to_vec(), user_count: users.len() as u32 }
}

pub(crate) fn event(e: &rtm2_core::PresenceEvent) -> PresenceEvent {
    PresenceEvent {
        event_type: e.event_type.name().to_string(),
        channel_type: e.channel_type.name().to_string(),
        channel_name: e.channel.clone(),
        publisher: e.publisher.clone(),
        state_changed: e.states.clone(),
        interval: e.interval.as_ref().map(|i| PresenceInterval {
            join: interval_users(&i.joined),
            leave: interval_users(&i.left),
            timeout: interval_users(&i.timed_out),
            user_state_list: i.states.iter().map(user_state).collect(),
            total_occupancy: i.total_occupancy,
        }),
        snapshot: e.snapshot.iter().map(user_state).collect(),
        timestamp: e.timestamp_ms as f64,
    }
}

/// The presence service of a client. Every method returns a Promise and takes the channel type
/// by name (`'MESSAGE'` default, `'STREAM'`; others fail with 10019), an optional per-call
/// timeout (ms) and a cancel token.
#[napi]
pub struct NativePresence {
    client: Shared,
}

impl NativePresence {
    pub(crate) fn new(client: Shared) -> Self {
        NativePresence { client }
    }

    fn service(
        &self,
        op: &'static str,
        channel_type: Option<&str>,
        timeout_ms: Option<u32>,
    ) -> rtm2_core::Result<(rtm2_core::Presence, ChannelType)> {
        let t = convert::channel_type(channel_type, op)?;
        Ok((self.client.get(op, timeout_ms)?.presence(), t))
    }
}

#[napi]
impl NativePresence {
    /// Who is present in a channel, a page at a time (no need to be in the channel).
    #[napi(ts_return_type = "Promise<OnlineUsers>")]
    pub fn get_online_users<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        options: Option<NativeGetOnlineUsersOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let mut o = GetOnlineUsersOptions::default();
        if let Some(x) = options {
            o.include_user_id = x.included_user_id.unwrap_or(o.include_user_id);
            o.include_state = x.included_state.unwrap_or(o.include_state);
            o.page = x.page.unwrap_or_default();
        }
        match self.service("get_online_users", channel_type.as_deref(), timeout_ms) {
            Ok((p, t)) => {
                let call = p.get_online_users(&channel, t, o);
                op::promise(env, cancel, async move {
                    let r = call.await?;
                    let timestamp = r.timestamp_ms as f64;
                    let r = r.into_inner();
                    Ok(OnlineUsers {
                        occupants: r.occupants.iter().map(user_state).collect(),
                        total_occupancy: r.total_occupancy,
                        next_page: r.next_page,
                        timestamp,
                    })
                })
            }
            Err(e) => op::rejected(env, e),
        }
    }

    /// The channels a user is present in (`''`: this client).
    #[napi(ts_return_type = "Promise<UserChannels>")]
    pub fn get_user_channels<'e>(
        &self,
        env: &'e Env,
        user_id: String,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let op = "get_user_channels";
        match self.client.get(op, timeout_ms) {
            Ok(c) => {
                let call = c.presence().get_user_channels(&user_id);
                op::promise(env, cancel, async move {
                    let r = call.await?;
                    let timestamp = r.timestamp_ms as f64;
                    let channels = r
                        .into_inner()
                        .into_iter()
                        .map(|c| ChannelInfo {
                            channel_name: c.channel,
                            channel_type: c.channel_type.name().to_string(),
                        })
                        .collect();
                    Ok(UserChannels { channels, timestamp })
                })
            }
            Err(e) => op::rejected(env, e),
        }
    }

    /// Sets keys of this client's state in a channel (kept locally until it subscribes/joins;
    /// 10002 before login); resolves with the server's time of the answer (ms since the epoch),
    /// or this machine's when the state was only kept locally.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn set_state<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        states: Vec<StateItem>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.service("set_state", channel_type.as_deref(), timeout_ms) {
            Ok((p, t)) => op::ack(env, cancel, p.set_state(&channel, t, states.into_iter().map(|s| (s.key, s.value)))),
            Err(e) => op::rejected(env, e),
        }
    }

    /// A user's state in a channel (13011 if the user is not present there).
    #[napi(ts_return_type = "Promise<UserStateAnswer>")]
    pub fn get_state<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        user_id: String,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.service("get_state", channel_type.as_deref(), timeout_ms) {
            Ok((p, t)) => {
                let call = p.get_state(&channel, t, &user_id);
                op::promise(env, cancel, async move {
                    let r = call.await?;
                    let timestamp = r.timestamp_ms as f64;
                    let u = r.into_inner();
                    Ok(UserStateAnswer {
                        states_count: u.states.len() as u32,
                        user_id: u.user_id,
                        states: u.states,
                        timestamp,
                    })
                })
            }
            Err(e) => op::rejected(env, e),
        }
    }

    /// Removes keys of this client's state in a channel (none or empty: all of them); resolves
    /// with the server's time of the answer, or this machine's when only the local copy changed.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn remove_state<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        keys: Option<Vec<String>>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.service("remove_state", channel_type.as_deref(), timeout_ms) {
            Ok((p, t)) => op::ack(env, cancel, p.remove_state(&channel, t, keys.unwrap_or_default())),
            Err(e) => op::rejected(env, e),
        }
    }
}
