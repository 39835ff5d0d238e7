//! Locks, scoped to a channel (name + type).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtm2_proto::enums::{ChannelType, LockEventType};
use rtm2_proto::pb::{self, client_frame};
use rtm2_proto::{ErrorCode, validate};
use tokio::sync::watch;

use crate::client::{Client, Inner, try_op};
use crate::error::{Error, Result};
use crate::runtime::Op;
use crate::types::{Ack, Timed};

/// A lock of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockDetail {
    /// The lock name.
    pub name: String,
    /// Its owner ("" = free).
    pub owner: String,
    /// Seconds an owner keeps it after disconnecting.
    pub ttl_s: u32,
    /// The fencing token of the owner's grant (0 when free).
    pub fencing_token: u64,
}

impl From<pb::LockDetail> for LockDetail {
    fn from(d: pb::LockDetail) -> Self {
        LockDetail { name: d.name, owner: d.owner, ttl_s: d.ttl_s, fencing_token: d.fencing_token }
    }
}

/// A lock event (to subscribers/joiners with `with_lock`; EXPIRED also to the owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEvent {
    /// SNAPSHOT, SET, REMOVED, ACQUIRED, RELEASED or EXPIRED.
    pub event_type: LockEventType,
    /// MESSAGE or STREAM.
    pub channel_type: ChannelType,
    /// The channel.
    pub channel: String,
    /// The lock (empty for SNAPSHOT).
    pub lock_name: String,
    /// The lock's ttl, s.
    pub ttl_s: u32,
    /// The owner concerned (the new owner for ACQUIRED, the former one for RELEASED/EXPIRED).
    pub owner: String,
    /// Who caused the event.
    pub publisher: String,
    /// SNAPSHOT: every lock of the channel.
    pub snapshot: Vec<LockDetail>,
    /// Server time, ms.
    pub timestamp_ms: u64,
    /// ACQUIRED: the new grant's fencing token; RELEASED, EXPIRED, REMOVED: the token of the
    /// grant that ended (0 if the lock was free); 0 for SET and SNAPSHOT.
    pub fencing_token: u64,
}

impl From<pb::LockEvent> for LockEvent {
    fn from(e: pb::LockEvent) -> Self {
        LockEvent {
            event_type: LockEventType::from_u32(e.event_type).unwrap_or(LockEventType::NONE),
            channel_type: ChannelType::from_u32(e.channel_type).unwrap_or(ChannelType::NONE),
            channel: e.channel,
            lock_name: e.lock_name,
            ttl_s: e.ttl_s,
            owner: e.owner,
            publisher: e.publisher,
            snapshot: e.snapshot.into_iter().map(Into::into).collect(),
            timestamp_ms: e.timestamp_ms,
            fencing_token: e.fencing_token,
        }
    }
}

/// The withdrawal of an acquisition with `retry` whose caller stopped waiting: a release, sent
/// once (the server withdraws a queued acquisition on release; one granted meanwhile is
/// released). Shared by the operation (which withdraws when it times out or is dropped) and the
/// caller's [`Withdrawal`] handle (which can wait until the server has it).
struct WithdrawState {
    inner: Arc<Inner>,
    channel: String,
    channel_type: ChannelType,
    name: String,
    step: Mutex<Step>,
    /// Becomes true when the release is answered (or cannot be sent).
    settled: watch::Sender<bool>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The acquisition may still be waiting: a withdrawal would send the release.
    Armed,
    /// The release was sent.
    Sent,
    /// The acquisition ended by itself (granted or refused): nothing to withdraw.
    Disarmed,
}

impl WithdrawState {
    /// Sends the release unless it was sent or the acquisition ended; returns whether there is
    /// a withdrawal to wait for.
    fn send(self: &Arc<Self>) -> bool {
        {
            let mut step = self.step.lock().unwrap();
            match *step {
                Step::Disarmed => return false,
                Step::Sent => return true,
                Step::Armed => *step = Step::Sent,
            }
        }
        if crate::runtime::forked() {
            self.settled.send_replace(true);
            return true;
        }
        let body = client_frame::Body::ReleaseLock(pb::ReleaseLock {
            channel: self.channel.clone(),
            channel_type: self.channel_type as u32,
            name: self.name.clone(),
        });
        let timeout = self.inner.request_timeout();
        // Queued now, in this client's request order; answered on the SDK runtime.
        let done = self.inner.submit("release_lock", ErrorCode::LOCK_OPERATION_TIMEOUT, body, timeout);
        let state = self.clone();
        crate::runtime::runtime().spawn(async move {
            let _ = done.await; // 14006 (nothing to withdraw any more) is as good as success
            state.settled.send_replace(true);
        });
        true
    }

    /// Sends the withdrawal if needed and waits until the server has answered it.
    async fn settle(self: Arc<Self>) {
        if self.send() {
            let mut rx = self.settled.subscribe();
            let _ = rx.wait_for(|done| *done).await;
        }
    }

    fn disarm(&self) {
        let mut step = self.step.lock().unwrap();
        if *step == Step::Armed {
            *step = Step::Disarmed;
        }
    }
}

/// Withdraws the acquisition when the operation is dropped while it waits.
struct WithdrawOnDrop(Arc<WithdrawState>);

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        self.0.send();
    }
}

/// The handle of an acquisition with `retry` ([`Locks::acquire_lock_withdrawable`]): withdraws
/// it and waits until the server has done so, after which the lock can no longer be granted
/// to it (if it had been granted meanwhile, it was released).
#[derive(Clone)]
pub struct Withdrawal(Option<Arc<WithdrawState>>);

impl Withdrawal {
    /// Withdraws the acquisition (once, however often it is called, and not at all if it already
    /// ended by being granted or refused) and completes when the server has answered. Dropping
    /// the acquisition's operation withdraws it too, without a way to wait for it.
    pub fn withdraw(&self) -> Op<()> {
        match &self.0 {
            Some(state) => Op::lazy(state.clone().settle()),
            None => Op::ready(()),
        }
    }
}

impl std::fmt::Debug for Withdrawal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Withdrawal").field("retry", &self.0.is_some()).finish()
    }
}

/// The lock service of a client (`Client::lock`). Works without subscribing or joining.
///
/// Every grant carries a **fencing token** (`acquire_lock`'s result, also in ACQUIRED events
/// and `get_locks`): one counter per server, so tokens strictly increase across grants (also
/// across a restart with a data directory, where the token is durable before the grant is
/// answered). An owner that was paused may still believe it holds a lock that was freed and
/// granted to someone else; give the token with every write to a resource the lock guards, and
/// have the resource reject a token lower than the highest it has seen. Metadata writes take
/// it as `MetadataOptions::fencing_token` (with `lock_name`).
#[derive(Clone)]
pub struct Locks {
    pub(crate) client: Client,
}

/// How long an acquisition with `retry` may wait in the server's queue: unbounded in the
/// reference; a year here (cancel it by dropping the operation, or with `with_timeout`).
const RETRY_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// The fencing token of a granted acquisition (0 from a server that issues none).
fn fencing_token(r: &pb::Response) -> u64 {
    match &r.result {
        Some(pb::response::Result::LockGrant(g)) => g.fencing_token,
        _ => 0,
    }
}

fn lock_key(channel: &str, channel_type: ChannelType, name: &str) -> crate::client::LockKey {
    (channel_type, channel.to_string(), name.to_string())
}

impl Inner {
    /// Records what this client knows of a lock: whether it holds it (`held`), and its ttl.
    /// Held locks are re-acquired after a failover to another node (see `Inner::restore`).
    pub(crate) fn note_lock(&self, key: crate::client::LockKey, held: Option<bool>, ttl_s: Option<u32>) {
        let mut st = self.state.lock().unwrap();
        let cache = &mut st.cache;
        if let Some(ttl) = ttl_s.filter(|t| *t > 0)
            && (cache.lock_ttls.contains_key(&key) || cache.lock_ttls.len() < crate::client::MAX_LOCK_TTLS)
        {
            cache.lock_ttls.insert(key.clone(), ttl);
        }
        match held {
            Some(true) => {
                cache.locks.insert(key);
            }
            Some(false) => {
                cache.locks.remove(&key);
            }
            None => {}
        }
    }

    /// Updates the held locks from a lock event: an end of this user's grant, or a removed lock.
    pub(crate) fn note_lock_event(&self, e: &pb::LockEvent) {
        let ct = ChannelType::from_u32(e.channel_type).unwrap_or(ChannelType::NONE);
        let me = self.config.lock().unwrap().user_id.clone();
        let key = || lock_key(&e.channel, ct, &e.lock_name);
        match LockEventType::from_u32(e.event_type) {
            Some(LockEventType::SET) => self.note_lock(key(), None, Some(e.ttl_s)),
            Some(LockEventType::ACQUIRED) => self.note_lock(key(), (e.owner == me).then_some(true), Some(e.ttl_s)),
            Some(LockEventType::RELEASED) | Some(LockEventType::EXPIRED) if e.owner == me => {
                self.note_lock(key(), Some(false), None)
            }
            Some(LockEventType::REMOVED) => {
                let mut st = self.state.lock().unwrap();
                st.cache.locks.remove(&key());
                st.cache.lock_ttls.remove(&key());
            }
            _ => {}
        }
    }
}

fn check(op: &'static str, channel: &str, channel_type: ChannelType, name: &str) -> Result<()> {
    let v = |r: std::result::Result<(), validate::Violation>| r.map_err(|v| Error::from_violation(op, v));
    v(validate::scope(channel, channel_type as u32).map(|_| ()))?;
    v(validate::lock_name(name))
}

impl Locks {
    fn inner(&self) -> &Arc<Inner> {
        &self.client.inner
    }

    fn call(&self, op: &'static str, body: client_frame::Body, timeout: Duration) -> Op<Result<Ack>> {
        let reply = self.inner().submit(op, ErrorCode::LOCK_OPERATION_TIMEOUT, body, timeout);
        Op::lazy(async move { reply.await.map(|r| Ack::of(&r)) })
    }

    /// Defines a lock in a channel; `ttl_s` (0 = 10) is clamped to 10..300 s. 14004 if it exists.
    pub fn set_lock(&self, channel: &str, channel_type: ChannelType, name: &str, ttl_s: u32) -> Op<Result<Ack>> {
        let op = "set_lock";
        try_op!(check(op, channel, channel_type, name));
        let body = client_frame::Body::SetLock(pb::SetLock {
            channel: channel.to_string(),
            channel_type: channel_type as u32,
            name: name.to_string(),
            ttl_s,
        });
        let (inner, key) = (self.inner().clone(), lock_key(channel, channel_type, name));
        let reply = self.inner().submit(op, ErrorCode::LOCK_OPERATION_TIMEOUT, body, self.client.timeout());
        Op::lazy(async move {
            let r = reply.await?;
            inner.note_lock(key, None, Some(ttl_s));
            Ok(Ack::of(&r))
        })
    }

    /// Removes a lock (14008 if it does not exist); acquisitions waiting for it fail with 14008.
    pub fn remove_lock(&self, channel: &str, channel_type: ChannelType, name: &str) -> Op<Result<Ack>> {
        let op = "remove_lock";
        try_op!(check(op, channel, channel_type, name));
        let body = client_frame::Body::RemoveLock(pb::RemoveLock {
            channel: channel.to_string(),
            channel_type: channel_type as u32,
            name: name.to_string(),
        });
        let (inner, key) = (self.inner().clone(), lock_key(channel, channel_type, name));
        let reply = self.inner().submit(op, ErrorCode::LOCK_OPERATION_TIMEOUT, body, self.client.timeout());
        Op::lazy(async move {
            let r = reply.await?;
            let mut st = inner.state.lock().unwrap();
            st.cache.locks.remove(&key);
            st.cache.lock_ttls.remove(&key);
            Ok(Ack::of(&r))
        })
    }

    /// Takes a lock. Held by another user: fails with 14007, or with `retry` waits in the
    /// server's queue until it is granted (in queue order) — with no time limit unless this
    /// handle has one (`Client::with_timeout`). A waiting acquisition that times out is
    /// withdrawn before the timeout is reported; one whose operation is dropped is withdrawn
    /// in the background (see [`Locks::acquire_lock_withdrawable`] to wait for that).
    ///
    /// Returns the grant's fencing token (an owner acquiring again gets its grant's token), with
    /// the server's time of the grant.
    pub fn acquire_lock(
        &self,
        channel: &str,
        channel_type: ChannelType,
        name: &str,
        retry: bool,
    ) -> Op<Result<Timed<u64>>> {
        self.acquire_lock_withdrawable(channel, channel_type, name, retry).0
    }

    /// [`Locks::acquire_lock`] with a handle that withdraws the acquisition and waits until the
    /// server has done so: after that the lock can no longer be granted to this acquisition.
    /// For callers that cancel a waiting acquisition and must know when it is gone (e.g. before
    /// telling another party to release the lock).
    pub fn acquire_lock_withdrawable(
        &self,
        channel: &str,
        channel_type: ChannelType,
        name: &str,
        retry: bool,
    ) -> (Op<Result<Timed<u64>>>, Withdrawal) {
        let op = "acquire_lock";
        if let Err(e) = check(op, channel, channel_type, name) {
            return (Op::ready(Err(e)), Withdrawal(None));
        }
        let body = client_frame::Body::AcquireLock(pb::AcquireLock {
            channel: channel.to_string(),
            channel_type: channel_type as u32,
            name: name.to_string(),
            retry,
        });
        let timeout = match (retry, self.client.explicit_timeout()) {
            (true, None) => RETRY_WAIT,
            _ => self.client.timeout(),
        };
        let (inner, key) = (self.inner().clone(), lock_key(channel, channel_type, name));
        let granted = move |r: &pb::Response| {
            inner.note_lock(key, Some(true), None);
            Timed::of(fencing_token(r), r)
        };
        if !retry {
            let reply = self.inner().submit(op, ErrorCode::LOCK_OPERATION_TIMEOUT, body, timeout);
            return (Op::lazy(async move { reply.await.map(|r| granted(&r)) }), Withdrawal(None));
        }
        // A waiting acquisition whose caller gives up (timeout, or the operation dropped) is
        // withdrawn, so that the lock is never granted to a caller that no longer waits.
        let reply = self.inner().submit(op, ErrorCode::LOCK_OPERATION_TIMEOUT, body, timeout);
        let state = Arc::new(WithdrawState {
            inner: self.inner().clone(),
            channel: channel.to_string(),
            channel_type,
            name: name.to_string(),
            step: Mutex::new(Step::Armed),
            settled: watch::Sender::new(false),
        });
        let guard = WithdrawOnDrop(state.clone());
        let op = Op::lazy(async move {
            let guard = guard; // the whole guard lives in the operation
            let r = reply.await;
            match &r {
                // The timeout is reported once the server has withdrawn the acquisition (waiting
                // for that at most as long again, e.g. while the connection is down).
                Err(e) if e.is_timeout() => {
                    let _ = tokio::time::timeout(timeout, guard.0.clone().settle()).await;
                }
                _ => guard.0.disarm(),
            }
            r.map(|r| granted(&r))
        });
        (op, Withdrawal(Some(state)))
    }

    /// Releases a lock this client holds (14006 otherwise); the next waiter gets it.
    pub fn release_lock(&self, channel: &str, channel_type: ChannelType, name: &str) -> Op<Result<Ack>> {
        let op = "release_lock";
        try_op!(check(op, channel, channel_type, name));
        let body = client_frame::Body::ReleaseLock(pb::ReleaseLock {
            channel: channel.to_string(),
            channel_type: channel_type as u32,
            name: name.to_string(),
        });
        let (inner, key) = (self.inner().clone(), lock_key(channel, channel_type, name));
        let reply = self.inner().submit(op, ErrorCode::LOCK_OPERATION_TIMEOUT, body, self.client.timeout());
        Op::lazy(async move {
            // Released, or not held (14006): either way this client does not hold it now.
            let r = reply.await;
            if r.is_ok() || r.as_ref().is_err_and(|e| e.code == ErrorCode::LOCK_NOT_ACQUIRED) {
                inner.note_lock(key, Some(false), None);
            }
            r.map(|r| Ack::of(&r))
        })
    }

    /// Frees a lock held by `owner` (14006 if `owner` does not hold it).
    pub fn revoke_lock(&self, channel: &str, channel_type: ChannelType, name: &str, owner: &str) -> Op<Result<Ack>> {
        let op = "revoke_lock";
        try_op!(check(op, channel, channel_type, name));
        try_op!(validate::user_id(owner).map_err(|v| Error::from_violation(op, v)));
        let body = client_frame::Body::RevokeLock(pb::RevokeLock {
            channel: channel.to_string(),
            channel_type: channel_type as u32,
            name: name.to_string(),
            owner: owner.to_string(),
        });
        self.call(op, body, self.client.timeout())
    }

    /// Every lock of a channel, with its owner.
    pub fn get_locks(&self, channel: &str, channel_type: ChannelType) -> Op<Result<Timed<Vec<LockDetail>>>> {
        let op = "get_locks";
        let v = |r: std::result::Result<(), validate::Violation>| r.map_err(|v| Error::from_violation(op, v));
        try_op!(v(validate::scope(channel, channel_type as u32).map(|_| ())));
        let body = client_frame::Body::GetLocks(pb::GetLocks {
            channel: channel.to_string(),
            channel_type: channel_type as u32,
        });
        let reply = self.inner().submit(op, ErrorCode::LOCK_OPERATION_TIMEOUT, body, self.client.timeout());
        Op::lazy(async move {
            let resp = reply.await?;
            let ts = resp.server_time_ms;
            match resp.result {
                Some(pb::response::Result::Locks(l)) => {
                    Ok(Timed { value: l.locks.into_iter().map(Into::into).collect(), timestamp_ms: ts })
                }
                _ => Ok(Timed { value: Vec::new(), timestamp_ms: ts }),
            }
        })
    }
}
