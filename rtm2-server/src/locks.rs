//! Locks, scoped to a channel (type + name).
//!
//! A lock is defined with `set` (name + ttl) and owned through `acquire`; all of a channel's
//! locks live under the channel's scope mutex, so there is never more than one owner. A held
//! lock belongs to a user id: when the owner's connection drops (or its session ends) the lock
//! is kept for its ttl; if the user is back (resumed or logged in again) within it, it keeps
//! the lock, otherwise the lock is freed (RELEASED to listeners, EXPIRED to the owner) and
//! the next queued acquirer gets it. `acquire` with `retry` waits in the lock's queue on the
//! server (answered when granted, in queue order).
//!
//! Membership (reference §7.2): an owner that leaves the channel (unsubscribes from the message
//! channel, leaves the stream channel) while staying online is treated like one that went
//! away: the lock is freed ttl after it left unless it enters the channel again (or acquires
//! the lock again) meanwhile. A waiting acquisition is withdrawn (14001) when its session leaves
//! the channel. Locks taken without entering the channel are held while the owner is online.
//!
//! Fencing: every grant gets a token from one counter per server (its store), so tokens
//! strictly increase across all grants of all locks. With a data directory, a lock's definition,
//! owner and token are written to the store — and the counter's mark raised — before the grant
//! is acknowledged; after a restart the locks are back (restored when the app is first used),
//! each owned lock as if its owner had just disconnected: kept if the owner logs in within the
//! ttl, else freed (RELEASED, and EXPIRED to the owner). Tokens are never issued twice.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rtm2_proto::enums::LockEventType;
use rtm2_proto::pb;
use rtm2_proto::validate::{self, Violation};
use rtm2_proto::{ErrorCode, limits, now_ms};

use rtm2_proto::enums::ChannelType;

use crate::engine::{App, Engine, Reply};
use crate::scope::{Scope, ScopeKey, encode_lock, forget_if_idle, with_live_scope};
use crate::session::{Session, response};
use crate::store::{Store, StoredLock};

/// The server's lock persistence and fencing counter (shared by every app).
pub(crate) struct LockStore {
    store: Arc<dyn Store>,
    /// The next fencing token.
    next_token: AtomicU64,
}

impl LockStore {
    /// Fencing tokens continue after the highest one the store ever issued.
    pub(crate) fn new(store: Arc<dyn Store>, highest_issued: u64) -> LockStore {
        LockStore { store, next_token: AtomicU64::new(highest_issued + 1) }
    }

    fn next_token(&self) -> u64 {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }
}

/// An acquisition waiting in a lock's queue.
pub(crate) struct Waiter {
    session: Arc<Session>,
    request_id: u64,
}

pub(crate) struct Lock {
    ttl_s: u32,
    owner: Option<Arc<str>>,
    /// The fencing token of the owner's grant (0 while free).
    fencing_token: u64,
    waiters: VecDeque<Waiter>,
    /// Set while the owner is away (disconnected, or out of the channel).
    away: Option<Away>,
}

/// An owner's absence: the ttl timer that may free the lock, and why it runs.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Away {
    timer: u64,
    /// It left the channel (ends when it enters it again), rather than disconnected (ends
    /// when it is connected again).
    left: bool,
}

impl Lock {
    pub(crate) fn detail(&self, name: &str) -> pb::LockDetail {
        pb::LockDetail {
            name: name.to_string(),
            owner: self.owner.as_deref().unwrap_or_default().to_string(),
            ttl_s: self.ttl_s,
            fencing_token: self.fencing_token,
        }
    }
}

fn record(app: &App, key: &ScopeKey, name: &str, lock: &Lock) -> StoredLock {
    StoredLock {
        app: app.id.clone(),
        channel_type: key.0 as u32,
        channel: key.1.clone(),
        name: name.to_string(),
        ttl_s: lock.ttl_s,
        owner: lock.owner.as_deref().unwrap_or_default().to_string(),
        fencing_token: lock.fencing_token,
    }
}

fn store_failed(e: std::io::Error) -> Violation {
    tracing::error!(error = %e, "lock store failed");
    Violation::new(ErrorCode::LOCK_OPERATION_FAILED, format!("the lock store failed: {e}"))
}

/// The server's lock store; gone once the server stopped (ttl timers may outlive it, and must
/// not keep its database open).
fn lock_store(app: &App) -> Result<Arc<LockStore>, Violation> {
    app.lock_store.upgrade().ok_or_else(|| Violation::new(ErrorCode::LOCK_OPERATION_FAILED, "the server has stopped"))
}

/// Writes the lock's state (durable when it returns).
fn persist(app: &App, key: &ScopeKey, name: &str, lock: &Lock) -> Result<(), Violation> {
    lock_store(app)?.store.save_lock(&record(app, key, name, lock), false, lock.fencing_token).map_err(store_failed)
}

/// Gives the lock to `user` with a new fencing token, durably; on failure it stays free.
fn grant(app: &App, key: &ScopeKey, name: &str, lock: &mut Lock, user: &Arc<str>) -> Result<u64, Violation> {
    lock.owner = Some(user.clone());
    lock.fencing_token = lock_store(app)?.next_token();
    lock.away = None;
    if let Err(v) = persist(app, key, name, lock) {
        lock.owner = None;
        lock.fencing_token = 0;
        return Err(v);
    }
    index_add(app, user, key, name);
    Ok(lock.fencing_token)
}

fn granted(fencing_token: u64) -> Option<pb::response::Result> {
    Some(pb::response::Result::LockGrant(pb::LockGrant { fencing_token }))
}

/// Users without a session for whom EXPIRED notices are kept, at most (beyond: not kept).
const MAX_EXPIRED_NOTICE_USERS: usize = 10_000;

/// A lock: its channel and its name.
pub(crate) type LockRef = (ScopeKey, String);

static AWAY_TOKENS: AtomicU64 = AtomicU64::new(1);

fn key_of(channel: &str, channel_type: u32, name: &str) -> Result<ScopeKey, Violation> {
    let t = validate::scope(channel, channel_type)?;
    validate::lock_name(name)?;
    Ok((t, channel.to_string()))
}

fn not_exist(key: &ScopeKey, name: &str) -> Violation {
    Violation::new(
        ErrorCode::LOCK_NOT_EXIST,
        format!("lock {name:?} does not exist in {} channel {:?}", key.0.name(), key.1),
    )
}

fn event(
    key: &ScopeKey,
    t: LockEventType,
    name: &str,
    lock: Option<&Lock>,
    owner: &str,
    publisher: &str,
) -> pb::LockEvent {
    pb::LockEvent {
        event_type: t as u32,
        channel_type: key.0 as u32,
        channel: key.1.clone(),
        lock_name: name.to_string(),
        ttl_s: lock.map_or(0, |l| l.ttl_s),
        owner: owner.to_string(),
        publisher: publisher.to_string(),
        snapshot: Vec::new(),
        timestamp_ms: now_ms(),
        fencing_token: lock.map_or(0, |l| l.fencing_token),
    }
}

/// Sends a lock event to the channel's listeners (`with_lock`).
fn notify(scope: &Scope, ev: pb::LockEvent) {
    let body = encode_lock(ev);
    scope.send_to(|e| e.opts.with_lock, &body);
}

fn index_add(app: &App, user: &Arc<str>, key: &ScopeKey, name: &str) {
    app.lock_owners.lock().unwrap().entry(user.clone()).or_default().insert((key.clone(), name.to_string()));
}

fn index_remove(app: &App, user: &str, key: &ScopeKey, name: &str) {
    let mut owners = app.lock_owners.lock().unwrap();
    if let Some(set) = owners.get_mut(user) {
        set.remove(&(key.clone(), name.to_string()));
        if set.is_empty() {
            owners.remove(user);
        }
    }
}

/// Frees a held lock and hands it to the first waiter whose session is still alive. A waiter
/// whose connection is down gets it as an owner that is away (freed after the ttl unless it
/// comes back).
fn free_and_grant(app: &Arc<App>, scope: &mut Scope, key: &ScopeKey, name: &str) {
    let Some(lock) = scope.locks.get_mut(name) else { return };
    if let Some(prev) = lock.owner.take() {
        index_remove(app, &prev, key, name);
    }
    lock.fencing_token = 0;
    lock.away = None;
    while let Some(w) = lock.waiters.pop_front() {
        if w.session.ended.load(Ordering::Acquire) {
            continue;
        }
        let user = w.session.user_id.clone();
        match grant(app, key, name, lock, &user) {
            Ok(token) => w.session.send(response(w.request_id, Ok(granted(token)))),
            Err(v) => {
                w.session.send(response(w.request_id, Err(v)));
                continue;
            }
        }
        if !w.session.is_attached() {
            start_away(app, lock, key, name, &user, false);
        }
        let ev = event(key, LockEventType::ACQUIRED, name, Some(lock), &user, &user);
        notify(scope, ev);
        return;
    }
    // Nobody waits: the lock is free.
    if let Err(v) = persist(app, key, name, lock) {
        tracing::error!(reason = %v.reason, lock = name, "a freed lock was not written to the store");
    }
}

/// Marks `lock` (owned by `user`) as away (`left`: out of the channel; else disconnected) and
/// frees it after its ttl unless the user is back by then.
fn start_away(app: &Arc<App>, lock: &mut Lock, key: &ScopeKey, name: &str, user: &Arc<str>, left: bool) {
    let token = AWAY_TOKENS.fetch_add(1, Ordering::Relaxed);
    lock.away = Some(Away { timer: token, left });
    let ttl = app.ttl_unit * lock.ttl_s;
    let (app, key, name, user) = (app.clone(), key.clone(), name.to_string(), user.clone());
    tokio::spawn(async move {
        tokio::time::sleep(ttl).await;
        expire(&app, &key, &name, &user, token);
    });
}

pub(crate) fn set(session: &Arc<Session>, r: pb::SetLock) -> Reply {
    let key = key_of(&r.channel, r.channel_type, &r.name)?;
    let ttl_s = if r.ttl_s == 0 {
        limits::DEFAULT_LOCK_TTL_S
    } else {
        r.ttl_s.clamp(limits::MIN_LOCK_TTL_S, limits::MAX_LOCK_TTL_S)
    };
    with_live_scope(&session.app, &key, |_, scope| set_in(session, scope, key.clone(), r, ttl_s))
}

fn set_in(session: &Arc<Session>, scope: &mut Scope, key: ScopeKey, r: pb::SetLock, ttl_s: u32) -> Reply {
    if scope.locks.contains_key(&r.name) {
        return Err(Violation::new(
            ErrorCode::LOCK_ALREADY_EXIST,
            format!("lock {:?} already exists in {} channel {:?}", r.name, key.0.name(), key.1),
        ));
    }
    if scope.locks.len() >= limits::MAX_LOCKS_PER_CHANNEL {
        return Err(Violation::new(
            ErrorCode::LOCK_OPERATION_FAILED,
            format!("a channel has at most {} locks", limits::MAX_LOCKS_PER_CHANNEL),
        ));
    }
    let lock = Lock { ttl_s, owner: None, fencing_token: 0, waiters: VecDeque::new(), away: None };
    persist(&session.app, &key, &r.name, &lock)?;
    let ev = event(&key, LockEventType::SET, &r.name, Some(&lock), "", &session.user_id);
    scope.locks.insert(r.name, lock);
    notify(scope, ev);
    Ok(None)
}

pub(crate) fn remove(session: &Arc<Session>, r: pb::RemoveLock) -> Reply {
    let key = key_of(&r.channel, r.channel_type, &r.name)?;
    let app = &session.app;
    let Some(scope_arc) = app.scopes.get(&key).map(|s| s.clone()) else { return Err(not_exist(&key, &r.name)) };
    {
        let mut scope = scope_arc.lock().unwrap();
        let Some(lock) = scope.locks.get(&r.name) else { return Err(not_exist(&key, &r.name)) };
        lock_store(app)?.store.save_lock(&record(app, &key, &r.name, lock), true, 0).map_err(store_failed)?;
        let lock = scope.locks.remove(&r.name).expect("found above");
        if let Some(owner) = &lock.owner {
            index_remove(app, owner, &key, &r.name);
        }
        for w in &lock.waiters {
            w.session.send(response(w.request_id, Err(not_exist(&key, &r.name))));
        }
        let owner = lock.owner.as_deref().unwrap_or_default().to_string();
        notify(&scope, event(&key, LockEventType::REMOVED, &r.name, Some(&lock), &owner, &session.user_id));
    }
    forget_if_idle(app, &key);
    Ok(None)
}

/// `None`: queued (retry), answered when granted.
pub(crate) fn acquire(_engine: &Engine, session: &Arc<Session>, request_id: u64, r: pb::AcquireLock) -> Option<Reply> {
    let key = match key_of(&r.channel, r.channel_type, &r.name) {
        Ok(k) => k,
        Err(v) => return Some(Err(v)),
    };
    let app = &session.app;
    let Some(scope_arc) = app.scopes.get(&key).map(|s| s.clone()) else {
        return Some(Err(not_exist(&key, &r.name)));
    };
    let mut scope = scope_arc.lock().unwrap();
    let Some(lock) = scope.locks.get_mut(&r.name) else { return Some(Err(not_exist(&key, &r.name))) };
    let user = session.user_id.clone();
    match &lock.owner {
        None => {
            let token = match grant(app, &key, &r.name, lock, &user) {
                Ok(t) => t,
                Err(v) => return Some(Err(v)),
            };
            let ev = event(&key, LockEventType::ACQUIRED, &r.name, Some(lock), &user, &user);
            notify(&scope, ev);
            Some(Ok(granted(token)))
        }
        // Already ours (also after a reconnect within the ttl, or after leaving the channel):
        // the same grant, with its token.
        Some(owner) if *owner == user => {
            lock.away = None;
            Some(Ok(granted(lock.fencing_token)))
        }
        Some(owner) if !r.retry => {
            Some(Err(Violation::new(ErrorCode::LOCK_ACQUIRE_FAILED, format!("lock {:?} is held by {owner:?}", r.name))))
        }
        Some(_) => {
            lock.waiters.push_back(Waiter { session: session.clone(), request_id });
            None
        }
    }
}

pub(crate) fn release(session: &Arc<Session>, r: pb::ReleaseLock) -> Reply {
    let key = key_of(&r.channel, r.channel_type, &r.name)?;
    let app = &session.app;
    let Some(scope_arc) = app.scopes.get(&key).map(|s| s.clone()) else { return Err(not_exist(&key, &r.name)) };
    let mut scope = scope_arc.lock().unwrap();
    let Some(lock) = scope.locks.get_mut(&r.name) else { return Err(not_exist(&key, &r.name)) };
    // A waiting acquisition of this session is withdrawn (its caller gave up).
    if let Some(pos) = lock.waiters.iter().position(|w| w.session.id == session.id) {
        let w = lock.waiters.remove(pos).expect("found above");
        let why = Violation::new(ErrorCode::LOCK_OPERATION_FAILED, "the acquisition was withdrawn by a release");
        w.session.send(response(w.request_id, Err(why)));
        return Ok(None);
    }
    if lock.owner.as_deref() != Some(&*session.user_id) {
        return Err(Violation::new(
            ErrorCode::LOCK_NOT_ACQUIRED,
            format!("lock {:?} is not held by {:?}", r.name, session.user_id),
        ));
    }
    let ev = event(&key, LockEventType::RELEASED, &r.name, Some(lock), &session.user_id, &session.user_id);
    notify(&scope, ev);
    free_and_grant(app, &mut scope, &key, &r.name);
    Ok(None)
}

pub(crate) fn revoke(session: &Arc<Session>, r: pb::RevokeLock) -> Reply {
    let key = key_of(&r.channel, r.channel_type, &r.name)?;
    validate::user_id(&r.owner)?;
    let app = &session.app;
    let Some(scope_arc) = app.scopes.get(&key).map(|s| s.clone()) else { return Err(not_exist(&key, &r.name)) };
    let mut scope = scope_arc.lock().unwrap();
    let Some(lock) = scope.locks.get(&r.name) else { return Err(not_exist(&key, &r.name)) };
    if lock.owner.as_deref() != Some(r.owner.as_str()) {
        return Err(Violation::new(
            ErrorCode::LOCK_NOT_ACQUIRED,
            format!("lock {:?} is not held by {:?}", r.name, r.owner),
        ));
    }
    let ev = event(&key, LockEventType::RELEASED, &r.name, Some(lock), &r.owner, &session.user_id);
    notify(&scope, ev);
    free_and_grant(app, &mut scope, &key, &r.name);
    Ok(None)
}

pub(crate) fn get(session: &Arc<Session>, r: pb::GetLocks) -> Reply {
    let t = validate::scope(&r.channel, r.channel_type)?;
    let locks = match session.app.scopes.get(&(t, r.channel)).map(|s| s.clone()) {
        Some(scope) => scope.lock().unwrap().lock_snapshot(),
        None => Vec::new(),
    };
    Ok(Some(pb::response::Result::Locks(pb::LockList { locks })))
}

/// The fencing token of `user`'s grant of lock `name` of channel `key`, if it holds it (for
/// metadata writes with a lock name).
pub(crate) fn held_token(app: &App, key: &ScopeKey, name: &str, user: &str) -> Option<u64> {
    let scope = app.scopes.get(key).map(|s| s.clone())?;
    let scope = scope.lock().unwrap();
    scope.locks.get(name).filter(|l| l.owner.as_deref() == Some(user)).map(|l| l.fencing_token)
}

fn owned(app: &App, user: &str) -> Vec<LockRef> {
    app.lock_owners.lock().unwrap().get(user).map(|s| s.iter().cloned().collect()).unwrap_or_default()
}

/// The user's connection dropped or its session ended: each lock it owns is freed after its
/// ttl unless the user is back by then.
pub(crate) fn owner_away(app: &Arc<App>, user: &Arc<str>) {
    if let Some(c) = &app.cluster {
        return c.lock_owner_away(app, user);
    }
    if app.user(user).is_some_and(|s| s.is_attached()) {
        return; // another session of the user is connected (a takeover)
    }
    for (key, name) in owned(app, user) {
        let Some(scope_arc) = app.scopes.get(&key).map(|s| s.clone()) else { continue };
        let mut scope = scope_arc.lock().unwrap();
        let Some(lock) = scope.locks.get_mut(&name) else { continue };
        if lock.owner.as_deref() != Some(&**user) || lock.away.is_some() {
            continue;
        }
        start_away(app, lock, &key, &name, user, false);
    }
}

fn expire(app: &Arc<App>, key: &ScopeKey, name: &str, user: &str, token: u64) {
    let Some(scope_arc) = app.scopes.get(key).map(|s| s.clone()) else { return };
    let mut scope = scope_arc.lock().unwrap();
    let Some(lock) = scope.locks.get(name) else { return };
    if lock.owner.as_deref() != Some(user) || lock.away.map(|a| a.timer) != Some(token) {
        return; // the owner came back, or the lock changed hands meanwhile
    }
    tracing::debug!(user, lock = name, channel = %key.1, "lock ttl passed with its owner away; freed");
    let released = event(key, LockEventType::RELEASED, name, Some(lock), user, user);
    let expired = event(key, LockEventType::EXPIRED, name, Some(lock), user, user);
    notify(&scope, released);
    // The owner hears EXPIRED whether or not it listens to lock events: now (a detached
    // session gets it on resume), or when it logs in again.
    let body = encode_lock(expired);
    match app.user(user) {
        Some(s) => s.send(body),
        None => {
            // Bounded: at most 32 notices per user, for at most MAX_EXPIRED_NOTICE_USERS users.
            let mut pending = app.expired_locks.lock().unwrap();
            if pending.len() < MAX_EXPIRED_NOTICE_USERS || pending.contains_key(user) {
                let list = pending.entry(Arc::from(user)).or_default();
                if list.len() < limits::MAX_LOCKS_PER_CHANNEL {
                    list.push(body);
                }
            }
        }
    }
    free_and_grant(app, &mut scope, key, name);
}

/// The user is connected again: it keeps every lock it still owns, and hears EXPIRED for those
/// it lost while it had no session.
pub(crate) fn owner_back(app: &Arc<App>, user: &Arc<str>) {
    if let Some(c) = &app.cluster {
        return c.lock_owner_back(app, user);
    }
    let expired = app.expired_locks.lock().unwrap().remove(user);
    if let (Some(list), Some(s)) = (expired, app.user(user)) {
        for body in list {
            s.send(body);
        }
    }
    for (key, name) in owned(app, user) {
        let Some(scope_arc) = app.scopes.get(&key).map(|s| s.clone()) else { continue };
        let mut scope = scope_arc.lock().unwrap();
        if let Some(lock) = scope.locks.get_mut(&name)
            && lock.owner.as_deref() == Some(&**user)
            && lock.away.is_some_and(|a| !a.left)
        {
            lock.away = None;
        }
    }
}

/// `session` left channel `key` (unsubscribe, leave, stream token expiry) but stays online:
/// its waiting acquisitions there are withdrawn, and each lock its user owns there is freed
/// after its ttl unless it enters the channel again. The caller holds the scope's lock.
pub(crate) fn owner_left(session: &Arc<Session>, scope: &mut Scope, key: &ScopeKey) {
    if let Some(c) = &session.app.cluster {
        return c.lock_owner_left(session, key);
    }
    let app = &session.app;
    let user = &session.user_id;
    for (name, lock) in scope.locks.iter_mut() {
        let mut i = 0;
        while i < lock.waiters.len() {
            if lock.waiters[i].session.id == session.id {
                let w = lock.waiters.remove(i).expect("in range");
                let why = Violation::new(
                    ErrorCode::LOCK_OPERATION_FAILED,
                    format!("the acquisition of lock {name:?} was withdrawn: the requester left the channel"),
                );
                w.session.send(response(w.request_id, Err(why)));
            } else {
                i += 1;
            }
        }
        if lock.owner.as_deref() == Some(&**user) && lock.away.is_none() {
            tracing::debug!(user = %user, lock = %name, channel = %key.1, "lock owner left the channel");
            start_away(app, lock, key, name, user, true);
        }
    }
}

/// `user` entered channel `scope` again: the locks it owns there that were away because it
/// had left are its own again. The caller holds the scope's lock.
pub(crate) fn owner_entered(session: &Arc<Session>, scope: &mut Scope, key: &ScopeKey) {
    if let Some(c) = &session.app.cluster {
        return c.lock_owner_entered(session, key);
    }
    let user = &*session.user_id;
    for lock in scope.locks.values_mut() {
        if lock.owner.as_deref() == Some(user) && lock.away.is_some_and(|a| a.left) {
            lock.away = None;
        }
    }
}

/// Puts back the locks persisted by an earlier run of the server (with a data directory), for
/// one app when it is first used: each owned lock as if its owner had just disconnected.
pub(crate) fn restore(app: &Arc<App>, locks: Vec<StoredLock>) {
    for l in locks {
        let Some(t @ (ChannelType::MESSAGE | ChannelType::STREAM)) = ChannelType::from_u32(l.channel_type) else {
            tracing::warn!(lock = %l.name, "a stored lock with an unknown channel type was not restored");
            continue;
        };
        let key: ScopeKey = (t, l.channel.clone());
        with_live_scope(app, &key, |_, scope| {
            let owner: Option<Arc<str>> = (!l.owner.is_empty()).then(|| Arc::from(l.owner.as_str()));
            let mut lock = Lock {
                ttl_s: l.ttl_s,
                owner: owner.clone(),
                fencing_token: if owner.is_some() { l.fencing_token } else { 0 },
                waiters: VecDeque::new(),
                away: None,
            };
            if let Some(user) = &owner {
                index_add(app, user, &key, &l.name);
                start_away(app, &mut lock, &key, &l.name, user, false);
            }
            scope.locks.insert(l.name.clone(), lock);
        });
        tracing::debug!(app = %app.id, lock = %l.name, channel = %l.channel, owner = %l.owner, "lock restored");
    }
}
