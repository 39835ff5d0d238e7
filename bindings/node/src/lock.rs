//! `NativeLock`: the lock service of a client (locks scoped to a channel name and type) and
//! the `lock` event payload, in agora-rtm-sdk shapes.

use napi::Env;
use napi::bindgen_prelude::Object;
use napi_derive::napi;

use rtm2_core::{ChannelType, Locks};

use crate::client::Shared;
use crate::convert;
use crate::op::{self, CancelToken};

/// A lock of a channel.
#[napi(object)]
pub struct LockDetail {
    pub lock_name: String,
    /// Its owner (`''` = free).
    pub owner: String,
    /// Seconds an owner keeps it after disconnecting.
    pub ttl: u32,
    /// The fencing token of the owner's grant (0 when free).
    pub fencing_token: f64,
}

/// Every lock of a channel (`getLocks`).
#[napi(object)]
pub struct LockList {
    pub lock_details: Vec<LockDetail>,
    /// The server's time of the answer, ms since the epoch.
    pub timestamp: f64,
}

/// A lock grant (`acquireLock`).
#[napi(object)]
pub struct LockGrant {
    /// The grant's fencing token (a number: tokens stay far below 2^53).
    pub fencing_token: f64,
    /// The server's time of the grant, ms since the epoch.
    pub timestamp: f64,
}

/// A lock event (`lock` event).
#[napi(object)]
pub struct LockEvent {
    /// `'SNAPSHOT'`, `'SET'`, `'REMOVED'`, `'ACQUIRED'`, `'RELEASED'` or `'EXPIRED'`.
    pub event_type: String,
    /// `'MESSAGE'` or `'STREAM'`.
    pub channel_type: String,
    pub channel_name: String,
    /// The lock (`''` for SNAPSHOT).
    pub lock_name: String,
    /// The lock's ttl, s.
    pub ttl: u32,
    /// The owner concerned: the new one for ACQUIRED, the former one for RELEASED/EXPIRED.
    pub owner: String,
    /// Who caused the event.
    pub publisher: String,
    /// SNAPSHOT: every lock of the channel (else empty).
    pub snapshot: Vec<LockDetail>,
    /// Server time, ms since the epoch.
    pub timestamp: f64,
    /// ACQUIRED: the new grant's fencing token; RELEASED, EXPIRED, REMOVED: the ended grant's
    /// (0 if the lock was free); 0 for SET and SNAPSHOT.
    pub fencing_token: f64,
}

fn detail(d: &rtm2_core::LockDetail) -> LockDetail {
    LockDetail {
        lock_name: d.name.clone(),
        owner: d.owner.clone(),
        ttl: d.ttl_s,
        fencing_token: d.fencing_token as f64,
    }
}

pub(crate) fn event(e: &rtm2_core::LockEvent) -> LockEvent {
    LockEvent {
        event_type: e.event_type.name().to_string(),
        channel_type: e.channel_type.name().to_string(),
        channel_name: e.channel.clone(),
        lock_name: e.lock_name.clone(),
        ttl: e.ttl_s,
        owner: e.owner.clone(),
        publisher: e.publisher.clone(),
        snapshot: e.snapshot.iter().map(detail).collect(),
        timestamp: e.timestamp_ms as f64,
        fencing_token: e.fencing_token as f64,
    }
}

/// The lock service of a client. Every method returns a Promise and takes the channel type by
/// name (`'MESSAGE'` default, `'STREAM'`; others fail with 10019), an optional per-call timeout
/// (ms) and a cancel token.
#[napi]
pub struct NativeLock {
    client: Shared,
}

impl NativeLock {
    pub(crate) fn new(client: Shared) -> Self {
        NativeLock { client }
    }

    fn service(
        &self,
        op: &'static str,
        channel_type: Option<&str>,
        timeout_ms: Option<u32>,
    ) -> rtm2_core::Result<(Locks, ChannelType)> {
        let t = convert::channel_type(channel_type, op)?;
        Ok((self.client.get(op, timeout_ms)?.lock(), t))
    }
}

#[napi]
impl NativeLock {
    /// Defines a lock; `ttl` (none or 0 = 10) is clamped to 10..300 s. 14004 if it exists.
    /// Resolves with the server's time of the answer (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    #[allow(clippy::too_many_arguments)]
    pub fn set_lock<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        lock_name: String,
        ttl: Option<u32>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.service("set_lock", channel_type.as_deref(), timeout_ms) {
            Ok((l, t)) => op::ack(env, cancel, l.set_lock(&channel, t, &lock_name, ttl.unwrap_or(0))),
            Err(e) => op::rejected(env, e),
        }
    }

    /// Removes a lock (14008 if it does not exist); acquisitions waiting for it fail with 14008.
    /// Resolves with the server's time of the answer (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn remove_lock<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        lock_name: String,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.service("remove_lock", channel_type.as_deref(), timeout_ms) {
            Ok((l, t)) => op::ack(env, cancel, l.remove_lock(&channel, t, &lock_name)),
            Err(e) => op::rejected(env, e),
        }
    }

    /// Takes a lock. Held by another user: fails with 14007, or with `retry` waits in the
    /// server's queue until granted — without a time limit unless `timeoutMs` is given. Never
    /// blocks the event loop; the cancel token abandons the wait (the core then withdraws the
    /// queued acquisition). Resolves with the grant's fencing token and the server's time of
    /// the grant.
    #[napi(ts_return_type = "Promise<LockGrant>")]
    #[allow(clippy::too_many_arguments)]
    pub fn acquire_lock<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        lock_name: String,
        retry: Option<bool>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.service("acquire_lock", channel_type.as_deref(), timeout_ms) {
            Ok((l, t)) => {
                // Aborted while it waits: the promise settles once the server has withdrawn it.
                let (acquired, withdrawal) =
                    l.acquire_lock_withdrawable(&channel, t, &lock_name, retry.unwrap_or(false));
                let acquired = async move {
                    acquired
                        .await
                        .map(|g| LockGrant { fencing_token: g.value as f64, timestamp: g.timestamp_ms as f64 })
                };
                op::promise_then(env, cancel, acquired, async move { withdrawal.withdraw().await })
            }
            Err(e) => op::rejected(env, e),
        }
    }

    /// Releases a lock this client holds (14006 otherwise); the next waiter gets it.
    /// Resolves with the server's time of the answer (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn release_lock<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        lock_name: String,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.service("release_lock", channel_type.as_deref(), timeout_ms) {
            Ok((l, t)) => op::ack(env, cancel, l.release_lock(&channel, t, &lock_name)),
            Err(e) => op::rejected(env, e),
        }
    }

    /// Frees a lock held by `owner` (14006 if `owner` does not hold it).
    /// Resolves with the server's time of the answer (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    #[allow(clippy::too_many_arguments)]
    pub fn revoke_lock<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        lock_name: String,
        owner: String,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.service("revoke_lock", channel_type.as_deref(), timeout_ms) {
            Ok((l, t)) => op::ack(env, cancel, l.revoke_lock(&channel, t, &lock_name, &owner)),
            Err(e) => op::rejected(env, e),
        }
    }

    /// Every lock of a channel, with its owner.
    #[napi(ts_return_type = "Promise<LockList>")]
    pub fn get_locks<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.service("get_locks", channel_type.as_deref(), timeout_ms) {
            Ok((l, t)) => {
                let call = l.get_locks(&channel, t);
                op::promise(env, cancel, async move {
                    call.await.map(|v| LockList {
                        lock_details: v.iter().map(detail).collect(),
                        timestamp: v.timestamp_ms as f64,
                    })
                })
            }
            Err(e) => op::rejected(env, e),
        }
    }
}
