//! Locks, scoped to a channel (type + name).
//!
//! A lock is defined with `set` (name + ttl) and owned through `acquire`; all of a channel's
//! locks live under the channel's scope mutex, so there is never more than one owner. A held
//! lock belongs to a user id: when the owner's connection drops (or its session ends) the lock
//! is kept for its ttl; if the user is back (resumed or logged in again) within it, it keeps
//! the lock, otherwise the lock is freed (RELEASED to listeners, EXPIRED to the owner) and
//! the next queued acquirer gets it. `acquire` with `retry` waits in the lock's queue on the
//! server (answered when granted, in queue order).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rtm2_proto::enums::LockEventType;
use rtm2_proto::pb;
use rtm2_proto::validate::{self, Violation};
use rtm2_proto::{ErrorCode, limits, now_ms};

use crate::engine::{App, Engine, Reply};
use crate::scope::{Scope, ScopeKey, encode_lock, forget_if_idle, with_live_scope};
use crate::session::{Session, response};

/// An acquisition waiting in a lock's queue.
pub(crate) struct Waiter {
    session: Arc<Session>,
    request_id: u64,
}

pub(crate) struct Lock {
    ttl_s: u32,
    owner: Option<Arc<str>>,
    waiters: VecDeque<Waiter>,
    /// Set while the owner is away: the token of the ttl timer that may free the lock.
    away: Option<u64>,
}

impl Lock {
    pub(crate) fn detail(&self, name: &str) -> pb::LockDetail {
        pb::LockDetail {
            name: name.to_string(),
            owner: self.owner.as_deref().unwrap_or_default().to_string(),
            ttl_s: self.ttl_s,
        }
    }
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
    lock.away = None;
    while let Some(w) = lock.waiters.pop_front() {
        if w.session.ended.load(Ordering::Acquire) {
            continue;
        }
        let user = w.session.user_id.clone();
        lock.owner = Some(user.clone());
        index_add(app, &user, key, name);
        w.session.send(response(w.request_id, Ok(None)));
        if !w.session.is_attached() {
            start_away(app, lock, key, name, &user);
        }
        let ev = event(key, LockEventType::ACQUIRED, name, Some(lock), &user, &user);
        notify(scope, ev);
        return;
    }
}

/// Marks `lock` (owned by `user`) as away and frees it after its ttl unless the user is back.
fn start_away(app: &Arc<App>, lock: &mut Lock, key: &ScopeKey, name: &str, user: &Arc<str>) {
    let token = AWAY_TOKENS.fetch_add(1, Ordering::Relaxed);
    lock.away = Some(token);
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
    let lock = Lock { ttl_s, owner: None, waiters: VecDeque::new(), away: None };
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
        let Some(lock) = scope.locks.remove(&r.name) else { return Err(not_exist(&key, &r.name)) };
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
            lock.owner = Some(user.clone());
            index_add(app, &user, &key, &r.name);
            let ev = event(&key, LockEventType::ACQUIRED, &r.name, Some(lock), &user, &user);
            notify(&scope, ev);
            Some(Ok(None))
        }
        // Already ours (also after a reconnect within the ttl).
        Some(owner) if *owner == user => {
            lock.away = None;
            Some(Ok(None))
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

/// Whether `user` holds lock `name` of channel `key` (for metadata writes with a lock name).
pub(crate) fn holds(app: &App, key: &ScopeKey, name: &str, user: &str) -> bool {
    app.scopes
        .get(key)
        .map(|s| s.clone())
        .is_some_and(|s| s.lock().unwrap().locks.get(name).is_some_and(|l| l.owner.as_deref() == Some(user)))
}

fn owned(app: &App, user: &str) -> Vec<LockRef> {
    app.lock_owners.lock().unwrap().get(user).map(|s| s.iter().cloned().collect()).unwrap_or_default()
}

/// The user's connection dropped or its session ended: each lock it owns is freed after its
/// ttl unless the user is back by then.
pub(crate) fn owner_away(app: &Arc<App>, user: &Arc<str>) {
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
        start_away(app, lock, &key, &name, user);
    }
}

fn expire(app: &Arc<App>, key: &ScopeKey, name: &str, user: &str, token: u64) {
    let Some(scope_arc) = app.scopes.get(key).map(|s| s.clone()) else { return };
    let mut scope = scope_arc.lock().unwrap();
    let Some(lock) = scope.locks.get(name) else { return };
    if lock.owner.as_deref() != Some(user) || lock.away != Some(token) {
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
        {
            lock.away = None;
        }
    }
}
