//! `NativeStreamChannel`: one `rtm2_core::StreamChannel`.

use napi::Env;
use napi::bindgen_prelude::{Either, Object, Uint8Array};
use napi_derive::napi;

use rtm2_core::{JoinOptions, JoinTopicOptions, StreamChannel, TopicMessageOptions};

use crate::convert;
use crate::error;
use crate::events::{TopicInfo, topic_info};
use crate::op::{self, CancelToken};

#[napi(object)]
pub struct NativeJoinOptions {
    pub token: Option<String>,
    pub with_presence: Option<bool>,
    pub with_metadata: Option<bool>,
    pub with_lock: Option<bool>,
    pub be_quiet: Option<bool>,
}

#[napi(object)]
pub struct NativeJoinTopicOptions {
    /// `'UNORDERED'` (default) or `'ORDERED'`.
    pub qos: Option<String>,
    /// `'HIGHEST'`, `'HIGH'`, `'NORMAL'` (default) or `'LOW'`.
    pub priority: Option<String>,
    pub meta: Option<String>,
    pub sync_with_media: Option<bool>,
}

#[napi(object)]
pub struct NativeTopicMessageOptions {
    pub custom_type: Option<String>,
    /// Send timestamp, ms (meaningful with syncWithMedia).
    pub send_ts: Option<f64>,
}

/// Result of `join`: the topics and publishers present.
#[napi(object)]
pub struct JoinResult {
    pub channel_name: String,
    pub topic_infos: Vec<TopicInfo>,
    /// The server's time of the answer, ms since the epoch.
    pub timestamp: f64,
}

/// Why `subscribeTopic` could not subscribe a user (agora-rtm-sdk's `SubscribedFailedReason`).
#[napi(object)]
pub struct FailedDetail {
    pub user: String,
    /// Per-user code (6 INVALID_REMOTE_USER, 20003 SUB_USER_EXCEED_LIMITATION).
    pub error_code: u32,
    pub reason: String,
}

/// Result of `subscribeTopic`.
#[napi(object)]
pub struct SubscribeTopicResult {
    pub succeed_users: Vec<String>,
    /// The users that were not subscribed (their reasons: `failedDetails`, in the same order).
    pub failed_users: Vec<String>,
    pub failed_details: Vec<FailedDetail>,
    /// The server's time of the answer, ms since the epoch.
    pub timestamp: f64,
}

/// A stream channel of a client.
#[napi]
pub struct NativeStreamChannel {
    sc: StreamChannel,
}

impl NativeStreamChannel {
    pub(crate) fn new(sc: StreamChannel) -> Self {
        NativeStreamChannel { sc }
    }

    fn view(&self, timeout_ms: Option<u32>) -> StreamChannel {
        match op::timeout(timeout_ms) {
            Some(t) => self.sc.with_timeout(t),
            None => self.sc.clone(),
        }
    }
}

fn users(u: Option<Vec<String>>) -> Vec<String> {
    u.unwrap_or_default()
}

#[napi]
impl NativeStreamChannel {
    /// The channel name.
    #[napi(getter)]
    pub fn channel_name(&self) -> String {
        self.sc.name().to_string()
    }

    /// Whether this client has joined the channel.
    #[napi]
    pub fn is_joined(&self) -> bool {
        self.sc.is_joined()
    }

    /// Topics this client joined as a publisher.
    #[napi]
    pub fn joined_topics(&self) -> Vec<String> {
        self.sc.joined_topics()
    }

    #[napi(ts_return_type = "Promise<JoinResult>")]
    pub fn join<'e>(
        &self,
        env: &'e Env,
        options: Option<NativeJoinOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let mut jo = JoinOptions::default();
        if let Some(o) = options {
            jo.token = o.token.unwrap_or_default();
            jo.with_presence = o.with_presence.unwrap_or(jo.with_presence);
            jo.with_metadata = o.with_metadata.unwrap_or(jo.with_metadata);
            jo.with_lock = o.with_lock.unwrap_or(jo.with_lock);
            jo.be_quiet = o.be_quiet.unwrap_or(jo.be_quiet);
        }
        let sc = self.view(timeout_ms);
        let started = sc.join(jo);
        op::promise(env, cancel, async move {
            let r = started.await?;
            Ok(JoinResult {
                channel_name: r.channel,
                topic_infos: r.topics.iter().map(topic_info).collect(),
                timestamp: r.timestamp_ms as f64,
            })
        })
    }

    /// Leaves the channel; resolves with the server's time of the answer (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn leave<'e>(
        &self,
        env: &'e Env,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let sc = self.view(timeout_ms);
        op::ack(env, cancel, sc.leave())
    }

    /// Becomes a publisher in `topic`; resolves with the server's time of the answer (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn join_topic<'e>(
        &self,
        env: &'e Env,
        topic: String,
        options: Option<NativeJoinTopicOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let op = "join_topic";
        let prep = || -> rtm2_core::Result<JoinTopicOptions> {
            let mut jo = JoinTopicOptions::default();
            if let Some(o) = options {
                jo.qos = convert::qos(o.qos.as_deref(), op)?;
                jo.priority = convert::priority(o.priority.as_deref(), op)?;
                jo.meta = o.meta.unwrap_or_default();
                jo.sync_with_media = o.sync_with_media.unwrap_or(false);
            }
            Ok(jo)
        };
        match prep() {
            Ok(jo) => {
                let sc = self.view(timeout_ms);
                op::ack(env, cancel, sc.join_topic(&topic, jo))
            }
            Err(e) => op::rejected(env, e),
        }
    }

    /// Stops publishing in `topic`; resolves with the server's time of the answer (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn leave_topic<'e>(
        &self,
        env: &'e Env,
        topic: String,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let sc = self.view(timeout_ms);
        op::ack(env, cancel, sc.leave_topic(&topic))
    }

    /// Publishes in a joined topic; resolves with the server's time of the answer (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn publish_topic_message<'e>(
        &self,
        env: &'e Env,
        topic: String,
        message: Either<String, Uint8Array>,
        options: Option<NativeTopicMessageOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let payload = convert::payload(message);
        let mut to = TopicMessageOptions::default();
        if let Some(o) = options {
            to.custom_type = o.custom_type.unwrap_or_default();
            to.send_ts = o.send_ts.map(|t| t.max(0.0) as u64).unwrap_or(0);
        }
        let sc = self.view(timeout_ms);
        op::ack(env, cancel, sc.publish_topic(&topic, payload, to))
    }

    #[napi(ts_return_type = "Promise<SubscribeTopicResult>")]
    pub fn subscribe_topic<'e>(
        &self,
        env: &'e Env,
        topic: String,
        users: Option<Vec<String>>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let users = self::users(users);
        let sc = self.view(timeout_ms);
        let refs: Vec<&str> = users.iter().map(String::as_str).collect();
        let started = sc.subscribe_topic(&topic, &refs);
        op::promise(env, cancel, async move {
            let r = started.await?;
            Ok(SubscribeTopicResult {
                succeed_users: r.succeeded,
                failed_users: r.failed.iter().map(|f| f.user_id.clone()).collect(),
                failed_details: r
                    .failed
                    .into_iter()
                    .map(|f| FailedDetail { user: f.user_id, error_code: f.code, reason: f.reason })
                    .collect(),
                timestamp: r.timestamp_ms as f64,
            })
        })
    }

    /// Unsubscribes `users` of `topic`, or (none) the whole topic; resolves with the server's
    /// time of the answer (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn unsubscribe_topic<'e>(
        &self,
        env: &'e Env,
        topic: String,
        users: Option<Vec<String>>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let users = self::users(users);
        let sc = self.view(timeout_ms);
        let refs: Vec<&str> = users.iter().map(String::as_str).collect();
        op::ack(env, cancel, sc.unsubscribe_topic(&topic, &refs))
    }

    /// The publishers this client subscribed to in `topic` (11013 if not subscribed).
    #[napi]
    pub fn subscribed_users(&self, env: &Env, topic: String) -> napi::Result<Vec<String>> {
        self.sc.subscribed_users(&topic).map_err(|e| error::to_js(env, &e))
    }

    /// Renews this channel's token; resolves with the server's time of the answer (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn renew_token<'e>(
        &self,
        env: &'e Env,
        token: String,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let sc = self.view(timeout_ms);
        op::ack(env, cancel, sc.renew_token(&token))
    }
}
