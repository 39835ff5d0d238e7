//! Locks shared by every node, in the JetStream key-value bucket `rtm2-locks`
//! (docs/CLUSTER.md).
//!
//! One bucket entry per channel: key `<app>.<channel type>.<channel>` (hex-encoded), value a
//! [`ChannelLocks`]: each lock's ttl, owner, the owner's node, the fencing token of the grant
//! and the queue of retrying acquirers (user, node, session, request). Every change is a
//! compare-and-set on the entry's revision (read, change, `update` with the revision read;
//! again from a fresh read on a conflict), so two nodes never both think they granted a lock:
//! a lock has at most one owner cluster-wide.
//!
//! Fencing tokens are revisions of the bucket: a grant is written with token 0, meaning "the
//! revision of this very write", and the next write of the entry fills that number in. The
//! bucket's revisions increase across all its keys, so tokens strictly increase cluster-wide.
//!
//! Every node watches the bucket and keeps a replica of it. From the difference between an
//! entry and the one before it, each node sends the lock events (SET, REMOVED, ACQUIRED,
//! RELEASED, EXPIRED to the owner) to its own listeners (`with_lock`), in the bucket's order;
//! a new listener's SNAPSHOT is read from the replica under the same mutex, so it misses and
//! repeats nothing. A retrying acquirer waits in the entry's queue; whichever node frees the
//! lock grants it to the first waiter whose node is alive, in the same write, and the waiter's
//! node answers its pending request when it sees that grant.
//!
//! Owners that go away: an owner that disconnects (or whose session ends) is marked away by
//! its node, which frees the lock after the ttl unless the owner is back (on any node) by then.
//! When a node dies (silent for `NODE_TIMEOUT`), every other node starts the ttl of the locks
//! owned on it; the first to reach it frees them (the compare-and-set lets exactly one do it).
//! A node also frees, after the ttl, locks that a previous run of it owned for users it has no
//! session of (a restart under the same node id).
//!
//! Membership, as on one node: an owner that leaves the channel while staying online is marked
//! away (freed after the ttl unless it enters the channel again), and its session's waiting
//! acquisitions there are withdrawn. Not done in a cluster yet: EXPIRED reaches an owner only
//! if it has a session when its lock expires.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use prost::Message;

use rtm2_proto::enums::{ChannelType, LockEventType};
use rtm2_proto::pb::{self, client_frame};
use rtm2_proto::validate::{self, Violation};
use rtm2_proto::{ErrorCode, limits, now_ms};

use super::bucket::{follow, open_bucket};
use super::directory::HEARTBEAT;
use super::storage::unavailable;
use super::{Cluster, hex, unhex};
use crate::engine::{App, Engine, Reply};
use crate::scope::{ScopeKey, encode_lock};
use crate::session::{Session, response};

/// The locks bucket.
pub(crate) const BUCKET: &str = "rtm2-locks";

const MAX_ATTEMPTS: usize = 64;

/// A channel's locks: the value of its bucket entry.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ChannelLocks {
    #[prost(message, repeated, tag = "1")]
    pub locks: Vec<LockRec>,
    /// The user id of the write (the publisher of its events).
    #[prost(string, tag = "2")]
    pub publisher: String,
    /// The write freed a lock whose owner stayed away for its ttl.
    #[prost(bool, tag = "3")]
    pub expired: bool,
    #[prost(uint64, tag = "4")]
    pub written_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct LockRec {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub ttl_s: u32,
    /// "" = free.
    #[prost(string, tag = "3")]
    pub owner: String,
    #[prost(string, tag = "4")]
    pub owner_node: String,
    /// The grant's fencing token; 0 with an owner: the revision of the entry that holds it.
    #[prost(uint64, tag = "5")]
    pub fencing_token: u64,
    /// The session and request the lock was granted to (the waiter's node answers it).
    #[prost(uint64, tag = "6")]
    pub grant_session: u64,
    #[prost(uint64, tag = "7")]
    pub grant_request: u64,
    /// When the owner went away (ms); 0: it is there.
    #[prost(uint64, tag = "8")]
    pub away_ms: u64,
    #[prost(message, repeated, tag = "9")]
    pub waiters: Vec<WaiterRec>,
    /// The owner is away because it left the channel (it is back when it enters it again),
    /// rather than disconnected (back when connected again).
    #[prost(bool, tag = "10")]
    pub away_left: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WaiterRec {
    #[prost(string, tag = "1")]
    pub user: String,
    #[prost(string, tag = "2")]
    pub node: String,
    #[prost(uint64, tag = "3")]
    pub session: u64,
    #[prost(uint64, tag = "4")]
    pub request: u64,
}

/// An acquisition of this node waiting in a lock's queue.
struct Pending {
    session: Arc<Session>,
    key: String,
    name: String,
    /// The revision of the write that queued it (`None`: not written yet).
    since: Option<u64>,
}

/// The bucket as this node last saw it: key -> (revision, locks with their tokens filled in).
pub(crate) type Replica = HashMap<String, (u64, ChannelLocks)>;

/// This node's side of the locks bucket.
#[derive(Default)]
pub(crate) struct State {
    kv: OnceLock<kv::Store>,
    replica: Mutex<Replica>,
    /// By (session id, request id).
    pending: Mutex<HashMap<(u64, u64), Pending>>,
    /// Locks whose ttl runs here because their owner's node is gone: (key, name, token).
    dead_owner_timers: Mutex<HashSet<(String, String, u64)>>,
    /// (key, user) of the owners this node marked away for leaving the channel (the replica
    /// may not show the mark yet when the user enters it again).
    left: Mutex<HashSet<(String, String)>>,
}

fn kv_key(app: &str, key: &ScopeKey) -> String {
    format!("{}.{}.{}", hex(app.as_bytes()), key.0 as u32, hex(key.1.as_bytes()))
}

fn parse_key(key: &str) -> Option<(String, ScopeKey)> {
    let mut parts = key.split('.');
    let app = unhex(parts.next()?)?;
    let t = ChannelType::from_u32(parts.next()?.parse().ok()?)?;
    Some((app, (t, unhex(parts.next()?)?)))
}

/// Fills in the tokens of the grants made by the write at `revision`.
fn resolve(locks: &mut ChannelLocks, revision: u64) {
    for l in &mut locks.locks {
        if !l.owner.is_empty() && l.fencing_token == 0 {
            l.fencing_token = revision;
        }
    }
}

fn failed(why: impl std::fmt::Display) -> Violation {
    tracing::warn!(error = %why, "cluster: a lock request to NATS failed");
    Violation::new(ErrorCode::LOCK_OPERATION_FAILED, format!("the cluster's lock store failed: {why}"))
}

fn not_exist(key: &ScopeKey, name: &str) -> Violation {
    Violation::new(
        ErrorCode::LOCK_NOT_EXIST,
        format!("lock {name:?} does not exist in {} channel {:?}", key.0.name(), key.1),
    )
}

fn granted(fencing_token: u64) -> Option<pb::response::Result> {
    Some(pb::response::Result::LockGrant(pb::LockGrant { fencing_token }))
}

fn detail(l: &LockRec) -> pb::LockDetail {
    pb::LockDetail { name: l.name.clone(), owner: l.owner.clone(), ttl_s: l.ttl_s, fencing_token: l.fencing_token }
}

/// What a change of an entry does: write it (and return `T`), or leave it as it is.
enum Change<T> {
    Write(T),
    Keep(T),
}

/// Binds the locks bucket, and starts watching it and checking for owners on dead nodes.
pub(super) async fn bind(
    c: &Arc<Cluster>,
    js: &jetstream::Context,
    replicas: usize,
    engine: Weak<Engine>,
) -> Result<(), String> {
    let store = open_bucket(js, BUCKET, replicas, "rtm2: locks").await?;
    follow(c, &store, "locks", engine.clone(), apply_change).await?;
    let _ = c.locks.kv.set(store);
    let me = c.clone();
    c.keep_spawned(tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            let Some(engine) = engine.upgrade() else { return };
            check_owners(&me, &engine);
        }
    }));
    Ok(())
}

/// A change of the bucket: into the replica, its events to this node's listeners, and the
/// answers of this node's waiting acquisitions it settles.
fn apply_change(c: &Arc<Cluster>, engine: &Engine, entry: kv::Entry) {
    let Some((app_id, scope_key)) = parse_key(&entry.key) else { return };
    let mut new = match entry.operation {
        kv::Operation::Put => match ChannelLocks::decode(entry.value.as_ref()) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(key = %entry.key, error = %e, "cluster: an undecodable locks entry");
                return;
            }
        },
        _ => ChannelLocks::default(),
    };
    resolve(&mut new, entry.revision);
    let mut replica = c.locks.replica.lock().unwrap();
    let old = match replica.get(&entry.key) {
        Some((rev, _)) if *rev >= entry.revision => return,
        Some((_, old)) => old.clone(),
        None => ChannelLocks::default(),
    };
    replica.insert(entry.key.clone(), (entry.revision, new.clone()));
    let app = engine.app_if_known(&app_id);
    if let Some(app) = &app {
        send_events(app, &scope_key, &old, &new);
    }
    settle(c, &entry.key, &scope_key, entry.revision, &new);
    drop(replica);
}

fn event(key: &ScopeKey, t: LockEventType, l: &LockRec, owner: &str, publisher: &str) -> pb::LockEvent {
    pb::LockEvent {
        event_type: t as u32,
        channel_type: key.0 as u32,
        channel: key.1.clone(),
        lock_name: l.name.clone(),
        ttl_s: l.ttl_s,
        owner: owner.to_string(),
        publisher: publisher.to_string(),
        snapshot: Vec::new(),
        timestamp_ms: now_ms(),
        fencing_token: l.fencing_token,
    }
}

/// The events of the change from `old` to `new`, to this node's listeners (the caller holds
/// the replica's mutex).
fn send_events(app: &App, key: &ScopeKey, old: &ChannelLocks, new: &ChannelLocks) {
    let mut events = Vec::new();
    let mut expired = Vec::new();
    for l in &new.locks {
        match old.locks.iter().find(|o| o.name == l.name) {
            None => {
                events.push(event(key, LockEventType::SET, l, "", &new.publisher));
                if !l.owner.is_empty() {
                    events.push(event(key, LockEventType::ACQUIRED, l, &l.owner, &l.owner));
                }
            }
            Some(o) if (&o.owner, o.fencing_token) != (&l.owner, l.fencing_token) => {
                if !o.owner.is_empty() {
                    let publisher = if new.expired { &o.owner } else { &new.publisher };
                    events.push(event(key, LockEventType::RELEASED, o, &o.owner, publisher));
                    if new.expired {
                        expired.push(event(key, LockEventType::EXPIRED, o, &o.owner, &o.owner));
                    }
                }
                if !l.owner.is_empty() {
                    events.push(event(key, LockEventType::ACQUIRED, l, &l.owner, &l.owner));
                }
            }
            Some(_) => {}
        }
    }
    for o in old.locks.iter().filter(|o| !new.locks.iter().any(|l| l.name == o.name)) {
        events.push(event(key, LockEventType::REMOVED, o, &o.owner, &new.publisher));
    }
    if !events.is_empty()
        && let Some(scope) = app.scopes.get(key).map(|s| s.clone())
    {
        let scope = scope.lock().unwrap();
        for ev in events {
            scope.send_to(|e| e.opts.with_lock, &encode_lock(ev));
        }
    }
    // The owner hears EXPIRED whether or not it listens to lock events (if it has a session here).
    for ev in expired {
        if let Some(s) = app.user(&ev.owner) {
            s.send(encode_lock(ev));
        }
    }
}

/// Answers this node's waiting acquisitions of entry `key` that its revision `revision`
/// decides: granted, or out of the queue (withdrawn, or the lock was removed).
fn settle(c: &Arc<Cluster>, kv_key: &str, scope_key: &ScopeKey, revision: u64, locks: &ChannelLocks) {
    let mut pending = c.locks.pending.lock().unwrap();
    let mut done = Vec::new();
    for (id, p) in pending.iter() {
        if p.key != kv_key {
            continue;
        }
        let lock = locks.locks.iter().find(|l| l.name == p.name);
        if let Some(l) = lock
            && (l.grant_session, l.grant_request) == *id
            && l.owner_node == c.node_id
            && !l.owner.is_empty()
        {
            done.push((*id, Ok(l.fencing_token)));
        } else if p.since.is_some_and(|s| revision >= s) {
            match lock {
                None => done.push((*id, Err(not_exist(scope_key, &p.name)))),
                Some(l) if !l.waiters.iter().any(|w| (w.session, w.request) == *id && w.node == c.node_id) => {
                    let why = Violation::new(ErrorCode::LOCK_OPERATION_FAILED, "the acquisition was withdrawn");
                    done.push((*id, Err(why)));
                }
                Some(_) => {}
            }
        }
    }
    for (id, outcome) in done {
        let Some(p) = pending.remove(&id) else { continue };
        match outcome {
            Ok(token) => {
                p.session.send(response(id.1, Ok(granted(token))));
                if p.session.ended.load(std::sync::atomic::Ordering::Acquire) {
                    // Granted to a waiter whose session ended meanwhile: to the next one.
                    give_back(c, &p.session, kv_key, &p.name, id, token);
                } else if !p.session.is_attached() {
                    // Its connection is down: it holds the lock as an owner that is away.
                    let user = p.session.user_id.to_string();
                    mark_away(c, &p.session.app, scope_key.clone(), p.name.clone(), user, false);
                }
            }
            Err(v) => p.session.send(response(id.1, Err(v))),
        }
    }
}

/// Frees a lock granted (`token`) to acquisition `id` of an ended session, and grants it to
/// the next waiter.
fn give_back(c: &Arc<Cluster>, session: &Session, key: &str, name: &str, id: (u64, u64), token: u64) {
    let Some(store) = c.locks.kv.get().cloned() else { return };
    let (c, key, name, user) = (c.clone(), key.to_string(), name.to_string(), session.user_id.to_string());
    tokio::spawn(async move {
        let _ = modify(&store, &key, &user, |locks| {
            let Some(l) = locks.locks.iter_mut().find(|l| l.name == name) else { return Ok(Change::Keep(())) };
            if (l.grant_session, l.grant_request) != id || l.fencing_token != token || l.owner != user {
                return Ok(Change::Keep(()));
            }
            free_and_grant(&c, l);
            Ok(Change::Write(()))
        })
        .await;
    });
}

/// Whether `node` is alive as far as this node knows (itself, or heard from lately).
fn alive(c: &Cluster, node: &str) -> bool {
    node == c.node_id || c.directory.lock().unwrap().nodes.contains_key(node)
}

/// Frees `l` and grants it to its first waiter whose node is alive.
fn free_and_grant(c: &Cluster, l: &mut LockRec) {
    l.owner.clear();
    l.owner_node.clear();
    l.fencing_token = 0;
    l.grant_session = 0;
    l.grant_request = 0;
    l.away_ms = 0;
    while !l.waiters.is_empty() {
        let w = l.waiters.remove(0);
        if alive(c, &w.node) {
            l.owner = w.user;
            l.owner_node = w.node;
            l.grant_session = w.session;
            l.grant_request = w.request;
            return;
        }
    }
}

/// Reads a channel's entry, changes it with `f` and writes it back if `f` says so, as a
/// compare-and-set (again from a fresh read on a conflict). Returns `f`'s result and the
/// revision of the entry written (or read, when nothing was written).
async fn modify<T>(
    store: &kv::Store,
    key: &str,
    publisher: &str,
    mut f: impl FnMut(&mut ChannelLocks) -> Result<Change<T>, Violation>,
) -> Result<(T, u64), Violation> {
    for _ in 0..MAX_ATTEMPTS {
        let (mut locks, revision) = read(store, key).await?;
        locks.publisher = publisher.to_string();
        locks.expired = false;
        let out = match f(&mut locks)? {
            Change::Keep(out) => return Ok((out, revision.unwrap_or(0))),
            Change::Write(out) => out,
        };
        locks.written_ms = now_ms();
        let value = Bytes::from(locks.encode_to_vec());
        let outcome = match revision {
            Some(rev) => store
                .update(key, value.clone(), rev)
                .await
                .map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, e.to_string())),
            None => store
                .create(key, value.clone())
                .await
                .map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, e.to_string())),
        };
        match outcome {
            Ok(rev) => return Ok((out, rev)),
            Err((true, _)) => continue,
            Err((false, why)) => {
                return match store.entry(key).await {
                    Ok(Some(e)) if e.value == value => Ok((out, e.revision)),
                    _ => Err(failed(why)),
                };
            }
        }
    }
    Err(Violation::new(ErrorCode::LOCK_OPERATION_FAILED, "the channel's locks change too often: gave up"))
}

/// A channel's locks (tokens filled in) and the entry's revision.
async fn read(store: &kv::Store, key: &str) -> Result<(ChannelLocks, Option<u64>), Violation> {
    match store.entry(key).await.map_err(failed)? {
        None => Ok((ChannelLocks::default(), None)),
        Some(e) if e.operation == kv::Operation::Put => {
            let mut l = ChannelLocks::decode(e.value.as_ref()).map_err(failed)?;
            resolve(&mut l, e.revision);
            Ok((l, Some(e.revision)))
        }
        Some(e) => Ok((ChannelLocks::default(), Some(e.revision))),
    }
}

fn scope_key_of(channel: &str, channel_type: u32, name: &str) -> Result<ScopeKey, Violation> {
    let t = validate::scope(channel, channel_type)?;
    validate::lock_name(name)?;
    Ok((t, channel.to_string()))
}

/// A lock request of a session (`engine.handle` sends them all here in a cluster); answered
/// once the bucket has the change.
pub(crate) fn handle(
    c: &Arc<Cluster>,
    session: &Arc<Session>,
    request_id: u64,
    body: client_frame::Body,
) -> Option<Reply> {
    let Some(store) = c.locks.kv.get().cloned().filter(|_| c.ready()) else {
        return Some(Err(unavailable(c, ErrorCode::LOCK_OPERATION_FAILED)));
    };
    let (me, s) = (c.clone(), session.clone());
    c.storage.serial.run(
        session.id,
        Box::pin(async move {
            if let Some(reply) = request(&me, &store, &s, request_id, body).await {
                s.send(response(request_id, reply));
            }
        }),
    );
    None
}

async fn request(
    c: &Arc<Cluster>,
    store: &kv::Store,
    session: &Arc<Session>,
    request_id: u64,
    body: client_frame::Body,
) -> Option<Reply> {
    use client_frame::Body as B;
    let app = &session.app.id;
    let user = session.user_id.to_string();
    Some(match body {
        B::SetLock(r) => set(store, app, &user, r).await,
        B::RemoveLock(r) => remove(store, app, &user, r).await,
        B::AcquireLock(r) => return acquire(c, store, session, request_id, r).await,
        B::ReleaseLock(r) => release(c, store, session, r).await,
        B::RevokeLock(r) => revoke(c, store, app, &user, r).await,
        B::GetLocks(r) => get(store, app, r).await,
        _ => Err(Violation::new(ErrorCode::LOCK_OPERATION_FAILED, "not a lock request")),
    })
}

async fn set(store: &kv::Store, app: &str, user: &str, r: pb::SetLock) -> Reply {
    let key = scope_key_of(&r.channel, r.channel_type, &r.name)?;
    let ttl_s = if r.ttl_s == 0 {
        limits::DEFAULT_LOCK_TTL_S
    } else {
        r.ttl_s.clamp(limits::MIN_LOCK_TTL_S, limits::MAX_LOCK_TTL_S)
    };
    modify(store, &kv_key(app, &key), user, |locks| {
        if locks.locks.iter().any(|l| l.name == r.name) {
            return Err(Violation::new(
                ErrorCode::LOCK_ALREADY_EXIST,
                format!("lock {:?} already exists in {} channel {:?}", r.name, key.0.name(), key.1),
            ));
        }
        if locks.locks.len() >= limits::MAX_LOCKS_PER_CHANNEL {
            return Err(Violation::new(
                ErrorCode::LOCK_OPERATION_FAILED,
                format!("a channel has at most {} locks", limits::MAX_LOCKS_PER_CHANNEL),
            ));
        }
        locks.locks.push(LockRec { name: r.name.clone(), ttl_s, ..Default::default() });
        Ok(Change::Write(()))
    })
    .await?;
    Ok(None)
}

async fn remove(store: &kv::Store, app: &str, user: &str, r: pb::RemoveLock) -> Reply {
    let key = scope_key_of(&r.channel, r.channel_type, &r.name)?;
    modify(store, &kv_key(app, &key), user, |locks| {
        let Some(i) = locks.locks.iter().position(|l| l.name == r.name) else { return Err(not_exist(&key, &r.name)) };
        locks.locks.remove(i);
        Ok(Change::Write(()))
    })
    .await?;
    Ok(None)
}

enum Acquired {
    /// Granted by this write (its token is the write's revision).
    Now,
    /// Held already: this grant's token.
    Already(u64),
    Queued,
}

/// `None`: answered later (queued, or settled by the watch meanwhile).
async fn acquire(
    c: &Arc<Cluster>,
    store: &kv::Store,
    session: &Arc<Session>,
    request_id: u64,
    r: pb::AcquireLock,
) -> Option<Reply> {
    let key = match scope_key_of(&r.channel, r.channel_type, &r.name) {
        Ok(k) => k,
        Err(v) => return Some(Err(v)),
    };
    let kv_key = kv_key(&session.app.id, &key);
    let id = (session.id, request_id);
    let user = session.user_id.to_string();
    // Known before the write that may queue it, so that the watch can settle it at once.
    c.locks
        .pending
        .lock()
        .unwrap()
        .insert(id, Pending { session: session.clone(), key: kv_key.clone(), name: r.name.clone(), since: None });
    let outcome = modify(store, &kv_key, &user, |locks| {
        let Some(l) = locks.locks.iter_mut().find(|l| l.name == r.name) else { return Err(not_exist(&key, &r.name)) };
        if l.owner.is_empty() {
            l.owner = user.clone();
            l.owner_node = c.node_id.clone();
            l.fencing_token = 0;
            l.grant_session = session.id;
            l.grant_request = request_id;
            l.away_ms = 0;
            return Ok(Change::Write(Acquired::Now));
        }
        if l.owner == user {
            // Already ours (also after a reconnect within the ttl, here or on another node).
            let token = l.fencing_token;
            if l.away_ms == 0 && l.owner_node == c.node_id {
                return Ok(Change::Keep(Acquired::Already(token)));
            }
            l.away_ms = 0;
            l.owner_node = c.node_id.clone();
            return Ok(Change::Write(Acquired::Already(token)));
        }
        if !r.retry {
            return Err(Violation::new(
                ErrorCode::LOCK_ACQUIRE_FAILED,
                format!("lock {:?} is held by {:?}", r.name, l.owner),
            ));
        }
        if !l.waiters.iter().any(|w| (w.session, w.request) == id && w.node == c.node_id) {
            l.waiters.push(WaiterRec {
                user: user.clone(),
                node: c.node_id.clone(),
                session: session.id,
                request: request_id,
            });
        }
        Ok(Change::Write(Acquired::Queued))
    })
    .await;
    let reply = match outcome {
        Ok((Acquired::Queued, revision)) => {
            let mut pending = c.locks.pending.lock().unwrap();
            if let Some(p) = pending.get_mut(&id) {
                p.since = Some(revision);
            }
            drop(pending);
            // A later revision the watch applied before `since` was known is settled now.
            let replica = c.locks.replica.lock().unwrap();
            if let Some((rev, locks)) = replica.get(&kv_key)
                && *rev >= revision
            {
                settle(c, &kv_key, &key, *rev, locks);
            }
            return None;
        }
        Ok((Acquired::Now, revision)) => Ok(granted(revision)),
        Ok((Acquired::Already(token), _)) => Ok(granted(token)),
        Err(v) => Err(v),
    };
    // Answered here unless the watch answered it first (the grant it saw is this one).
    c.locks.pending.lock().unwrap().remove(&id).map(|_| reply)
}

async fn release(c: &Arc<Cluster>, store: &kv::Store, session: &Arc<Session>, r: pb::ReleaseLock) -> Reply {
    let key = scope_key_of(&r.channel, r.channel_type, &r.name)?;
    let user = session.user_id.to_string();
    modify(store, &kv_key(&session.app.id, &key), &user, |locks| {
        let Some(l) = locks.locks.iter_mut().find(|l| l.name == r.name) else { return Err(not_exist(&key, &r.name)) };
        // A waiting acquisition of this session is withdrawn (its caller gave up).
        if let Some(i) = l.waiters.iter().position(|w| w.session == session.id && w.node == c.node_id) {
            l.waiters.remove(i);
            return Ok(Change::Write(()));
        }
        if l.owner != user {
            return Err(Violation::new(
                ErrorCode::LOCK_NOT_ACQUIRED,
                format!("lock {:?} is not held by {user:?}", r.name),
            ));
        }
        free_and_grant(c, l);
        Ok(Change::Write(()))
    })
    .await?;
    Ok(None)
}

async fn revoke(c: &Arc<Cluster>, store: &kv::Store, app: &str, user: &str, r: pb::RevokeLock) -> Reply {
    let key = scope_key_of(&r.channel, r.channel_type, &r.name)?;
    validate::user_id(&r.owner)?;
    modify(store, &kv_key(app, &key), user, |locks| {
        let Some(l) = locks.locks.iter_mut().find(|l| l.name == r.name) else { return Err(not_exist(&key, &r.name)) };
        if l.owner != r.owner {
            return Err(Violation::new(
                ErrorCode::LOCK_NOT_ACQUIRED,
                format!("lock {:?} is not held by {:?}", r.name, r.owner),
            ));
        }
        free_and_grant(c, l);
        Ok(Change::Write(()))
    })
    .await?;
    Ok(None)
}

async fn get(store: &kv::Store, app: &str, r: pb::GetLocks) -> Reply {
    let t = validate::scope(&r.channel, r.channel_type)?;
    let (locks, _) = read(store, &kv_key(app, &(t, r.channel))).await?;
    let locks = locks.locks.iter().map(detail).collect();
    Ok(Some(pb::response::Result::Locks(pb::LockList { locks })))
}

/// Marks `user`'s hold of a lock (owned through this node) as away, and frees it after the
/// ttl unless the user is back by then.
fn mark_away(c: &Arc<Cluster>, app: &Arc<App>, key: ScopeKey, name: String, user: String, left: bool) {
    let (c, app) = (c.clone(), app.clone());
    tokio::spawn(async move { mark_away_now(&c, &app, &key, name, user, left).await });
}

/// `mark_away`, the mark written when it returns (the ttl runs in a task of its own).
async fn mark_away_now(c: &Arc<Cluster>, app: &App, key: &ScopeKey, name: String, user: String, left: bool) {
    let Some(store) = c.locks.kv.get().cloned() else { return };
    let kv_key = kv_key(&app.id, key);
    let since = now_ms();
    let marked = modify(&store, &kv_key, &user, |locks| {
        let Some(l) = locks.locks.iter_mut().find(|l| l.name == name) else { return Ok(Change::Keep(None)) };
        if l.owner != user || l.owner_node != c.node_id || l.away_ms != 0 {
            return Ok(Change::Keep(None));
        }
        l.away_ms = since;
        l.away_left = left;
        Ok(Change::Write(Some((l.fencing_token, l.ttl_s))))
    })
    .await;
    let Ok((Some((token, ttl_s)), _)) = marked else { return };
    if left {
        c.locks.left.lock().unwrap().insert((kv_key.clone(), user.clone()));
    }
    let (c, ttl) = (c.clone(), app.ttl_unit * ttl_s);
    tokio::spawn(async move {
        tokio::time::sleep(ttl).await;
        expire(&c, &store, &kv_key, &name, &user, token, Some(since)).await;
        if left {
            c.locks.left.lock().unwrap().remove(&(kv_key, user));
        }
    });
}

/// Frees a lock whose owner stayed away for its ttl: if `user` still holds it with `token`,
/// away since `away_ms` (`None`: its node is gone).
async fn expire(c: &Cluster, store: &kv::Store, key: &str, name: &str, user: &str, token: u64, away_ms: Option<u64>) {
    let freed = modify(store, key, user, |locks| {
        let Some(l) = locks.locks.iter_mut().find(|l| l.name == name) else { return Ok(Change::Keep(false)) };
        let still_away = match away_ms {
            Some(ms) => l.away_ms == ms,
            None => !alive(c, &l.owner_node),
        };
        if l.owner != user || l.fencing_token != token || !still_away {
            return Ok(Change::Keep(false));
        }
        free_and_grant(c, l);
        // Its RELEASED is published by the owner, and the owner hears EXPIRED.
        locks.expired = true;
        Ok(Change::Write(true))
    })
    .await;
    if let Ok((true, _)) = freed {
        tracing::debug!(user, lock = name, "cluster: lock ttl passed with its owner away; freed");
    }
}

/// Every heartbeat: the ttl of locks owned on a node that is gone starts here (the first node
/// to reach it frees them), and locks this node owns for users it has no session of (a
/// previous run of this node) are marked away.
fn check_owners(c: &Arc<Cluster>, engine: &Engine) {
    let mut dead = Vec::new();
    let mut orphans = Vec::new();
    {
        let replica = c.locks.replica.lock().unwrap();
        for (key, (_, locks)) in replica.iter() {
            for l in locks.locks.iter().filter(|l| !l.owner.is_empty()) {
                if l.owner_node == c.node_id {
                    if l.away_ms == 0 {
                        orphans.push((key.clone(), l.name.clone(), l.owner.clone()));
                    }
                } else if !alive(c, &l.owner_node) {
                    dead.push((key.clone(), l.name.clone(), l.owner.clone(), l.fencing_token, l.ttl_s));
                }
            }
        }
    }
    for (key, name, owner) in orphans {
        let Some((app_id, scope_key)) = parse_key(&key) else { continue };
        let Some(app) = engine.app_if_known(&app_id) else { continue };
        if app.user(&owner).is_none() && !has_pending_grant(c, &key, &name) {
            mark_away(c, &app, scope_key, name, owner, false);
        }
    }
    let Some(store) = c.locks.kv.get() else { return };
    for (key, name, owner, token, ttl_s) in dead {
        if !c.locks.dead_owner_timers.lock().unwrap().insert((key.clone(), name.clone(), token)) {
            continue;
        }
        let Some((app_id, _)) = parse_key(&key) else { continue };
        let ttl_unit = engine.app_if_known(&app_id).map_or(engine.config.ttl_unit, |a| a.ttl_unit);
        tracing::info!(lock = %name, owner = %owner, "cluster: the node of a lock's owner is gone; the lock is freed after its ttl");
        let (c, store) = (c.clone(), store.clone());
        tokio::spawn(async move {
            tokio::time::sleep(ttl_unit * ttl_s).await;
            expire(&c, &store, &key, &name, &owner, token, None).await;
            c.locks.dead_owner_timers.lock().unwrap().remove(&(key, name, token));
        });
    }
}

/// A grant of this lock to one of this node's waiters that the watch has not settled yet.
fn has_pending_grant(c: &Cluster, key: &str, name: &str) -> bool {
    c.locks.pending.lock().unwrap().values().any(|p| p.key == key && p.name == name)
}

impl Cluster {
    /// The fencing token of `user`'s grant of lock `name` of channel `key`, if it holds it, as
    /// the bucket says now (for metadata writes naming a lock).
    pub(crate) async fn lock_token(
        &self,
        app: &str,
        key: &ScopeKey,
        name: &str,
        user: &str,
    ) -> Result<Option<u64>, Violation> {
        let Some(store) = self.locks.kv.get() else {
            return Err(unavailable(self, ErrorCode::STORAGE_OPERATION_FAILED));
        };
        let (locks, _) = read(store, &kv_key(app, key))
            .await
            .map_err(|v| Violation::new(ErrorCode::STORAGE_OPERATION_FAILED, v.reason))?;
        Ok(locks.locks.iter().find(|l| l.name == name && l.owner == user).map(|l| l.fencing_token))
    }

    /// The replica of the locks bucket, held while a new listener is registered and given its
    /// SNAPSHOT (`scope::enter`), so that it misses and repeats no event.
    pub(crate) fn locks_replica(&self) -> MutexGuard<'_, Replica> {
        self.locks.replica.lock().unwrap()
    }

    /// `user` (of this node) lost its connection or its session: each lock it holds through
    /// this node is freed after its ttl unless it is back by then.
    pub(crate) fn lock_owner_away(self: &Arc<Self>, app: &Arc<App>, user: &str) {
        if app.user(user).is_some_and(|s| s.is_attached()) {
            return;
        }
        for (key, name) in self.held_by(app, user, |l| l.owner_node == self.node_id && l.away_ms == 0) {
            mark_away(self, app, key, name, user.to_string(), false);
        }
    }

    /// `user` is connected to this node again: it keeps the locks it holds that were away (or
    /// held through a node that is gone); those away because it left their channel stay so.
    pub(crate) fn lock_owner_back(self: &Arc<Self>, app: &Arc<App>, user: &str) {
        let Some(store) = self.locks.kv.get().cloned() else { return };
        let back = |l: &LockRec| (l.away_ms != 0 && !l.away_left) || l.owner_node != self.node_id;
        for (key, name) in self.held_by(app, user, back) {
            let (c, store, user) = (self.clone(), store.clone(), user.to_string());
            let kv_key = kv_key(&app.id, &key);
            tokio::spawn(async move {
                let _ = modify(&store, &kv_key, &user, |locks| {
                    let Some(l) = locks.locks.iter_mut().find(|l| l.name == name && l.owner == user) else {
                        return Ok(Change::Keep(()));
                    };
                    l.away_ms = 0;
                    l.away_left = false;
                    l.owner_node = c.node_id.clone();
                    Ok(Change::Write(()))
                })
                .await;
            });
        }
    }

    /// `session` left channel `key` but stays online: its waiting acquisitions there are
    /// withdrawn, and each lock its user holds there is freed after its ttl unless it enters
    /// the channel again. Called under the scope's mutex: the work is queued behind the
    /// session's other bucket requests (in order with a later `lock_owner_entered`).
    pub(crate) fn lock_owner_left(self: &Arc<Self>, session: &Arc<Session>, key: &ScopeKey) {
        let Some(store) = self.locks.kv.get().cloned() else { return };
        let (c, s, key) = (self.clone(), session.clone(), key.clone());
        self.storage.serial.run(
            session.id,
            Box::pin(async move {
                let kv_key = kv_key(&s.app.id, &key);
                let user = s.user_id.to_string();
                let waiting = c.locks.pending.lock().unwrap().iter().any(|(id, p)| id.0 == s.id && p.key == kv_key);
                let _ = modify(&store, &kv_key, &user, |locks| {
                    if !waiting {
                        return Ok(Change::Keep(()));
                    }
                    let mut changed = false;
                    for l in &mut locks.locks {
                        let before = l.waiters.len();
                        l.waiters.retain(|w| !(w.session == s.id && w.node == c.node_id));
                        changed |= l.waiters.len() != before;
                    }
                    Ok(if changed { Change::Write(()) } else { Change::Keep(()) })
                })
                .await;
                let names: Vec<String> = {
                    let replica = c.locks.replica.lock().unwrap();
                    let owned = |l: &&LockRec| l.owner == user && l.owner_node == c.node_id && l.away_ms == 0;
                    replica.get(&kv_key).map(|(_, l)| l.locks.iter().filter(owned).map(|l| l.name.clone()).collect())
                }
                .unwrap_or_default();
                for name in names {
                    mark_away_now(&c, &s.app, &key, name, user.clone(), true).await;
                }
            }),
        );
    }

    /// `session` entered channel `key` (again): the locks its user holds there that were away
    /// because it had left are its own again.
    pub(crate) fn lock_owner_entered(self: &Arc<Self>, session: &Arc<Session>, key: &ScopeKey) {
        let Some(store) = self.locks.kv.get().cloned() else { return };
        let (c, s, key) = (self.clone(), session.clone(), key.clone());
        self.storage.serial.run(
            session.id,
            Box::pin(async move {
                let kv_key = kv_key(&s.app.id, &key);
                let user = s.user_id.to_string();
                // (Most entries are of channels where the user holds nothing away.)
                let away = |l: &LockRec| l.owner == user && l.away_ms != 0 && l.away_left;
                let marked_here = c.locks.left.lock().unwrap().remove(&(kv_key.clone(), user.clone()));
                let any = c.locks.replica.lock().unwrap().get(&kv_key).is_some_and(|(_, l)| l.locks.iter().any(away));
                if !marked_here && !any {
                    return;
                }
                let _ = modify(&store, &kv_key, &user, |locks| {
                    let mut changed = false;
                    for l in locks.locks.iter_mut().filter(|l| l.owner == user && l.away_ms != 0 && l.away_left) {
                        l.away_ms = 0;
                        l.away_left = false;
                        l.owner_node = c.node_id.clone();
                        changed = true;
                    }
                    Ok(if changed { Change::Write(()) } else { Change::Keep(()) })
                })
                .await;
            }),
        );
    }

    /// The locks `user` of `app` holds per the replica that `filter` selects.
    fn held_by(&self, app: &App, user: &str, filter: impl Fn(&LockRec) -> bool) -> Vec<(ScopeKey, String)> {
        let prefix = format!("{}.", hex(app.id.as_bytes()));
        let replica = self.locks.replica.lock().unwrap();
        let mut out = Vec::new();
        for (key, (_, locks)) in replica.iter().filter(|(k, _)| k.starts_with(&prefix)) {
            let Some((_, scope_key)) = parse_key(key) else { continue };
            for l in locks.locks.iter().filter(|l| l.owner == user && filter(l)) {
                out.push((scope_key.clone(), l.name.clone()));
            }
        }
        out
    }
}

/// The SNAPSHOT of a channel's locks from the replica (the caller holds it: `locks_replica`).
pub(crate) fn snapshot(replica: &Replica, app: &str, key: &ScopeKey) -> Vec<pb::LockDetail> {
    replica.get(&kv_key(app, key)).map(|(_, l)| l.locks.iter().map(detail).collect()).unwrap_or_default()
}
