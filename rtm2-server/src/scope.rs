//! Shared state of one channel (a message channel or a stream channel: separate namespaces)
//! for the presence, storage and lock services: who entered it with which options, their
//! presence state, and its locks.
//!
//! Presence: a session that subscribes or joins with `with_presence` is present (unless it is
//! also `be_quiet`: then it still receives events but is hidden). Others with `with_presence`
//! get REMOTE_JOIN / REMOTE_LEAVE / REMOTE_TIMEOUT / REMOTE_STATE_CHANGED, or, while more users
//! than the announce threshold are present, one INTERVAL event per interval that aggregates them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use rtm2_proto::enums::{ChannelType, LockEventType, PresenceEventType};
use rtm2_proto::frame;
use rtm2_proto::pb::{self, server_frame};
use rtm2_proto::validate::{self, Violation};
use rtm2_proto::{ErrorCode, limits, now_ms};

use crate::cluster::{NoteKind, RemotePresence};
use crate::engine::{App, Ending, Engine, Reply, SubscribeOpts};
use crate::session::Session;

/// A channel of one app: (MESSAGE or STREAM, name).
pub(crate) type ScopeKey = (ChannelType, String);

/// A session that subscribed to (or joined) the channel.
pub(crate) struct Entry {
    pub session: Arc<Session>,
    pub opts: SubscribeOpts,
    /// Presence state (temporary: gone when the user leaves).
    pub states: BTreeMap<String, String>,
}

impl Entry {
    /// Present and visible to others.
    fn listed(&self) -> bool {
        self.opts.with_presence && !self.opts.be_quiet
    }
}

/// Presence changes gathered for the next INTERVAL event.
#[derive(Default)]
struct Pending {
    joined: Vec<String>,
    left: Vec<String>,
    timed_out: Vec<String>,
    changed: BTreeSet<String>,
    /// A flush task is scheduled.
    scheduled: bool,
}

/// The shared state of one channel.
#[derive(Default)]
pub(crate) struct Scope {
    /// By user id (a user has one session).
    pub entries: BTreeMap<Arc<str>, Entry>,
    pub locks: BTreeMap<String, crate::locks::Lock>,
    /// In a cluster: the users present in the channel on other nodes (listed), by user id.
    pub remote: BTreeMap<Arc<str>, RemotePresence>,
    pending: Pending,
    /// Removed from the app's map (it was idle): whoever still holds it must look again.
    dead: bool,
}

impl Scope {
    /// Users present and visible (here and, in a cluster, on other nodes).
    pub(crate) fn occupancy(&self) -> usize {
        let local = self.entries.values().filter(|e| e.listed()).count();
        local + self.remote.keys().filter(|u| !self.listed_here(u)).count()
    }

    fn listed_here(&self, user: &str) -> bool {
        self.entries.get(user).is_some_and(|e| e.listed())
    }

    /// The users present and visible, by user id, with their state (a user's entry here wins
    /// over another node's).
    fn present(&self) -> BTreeMap<&str, &BTreeMap<String, String>> {
        let mut all: BTreeMap<&str, &BTreeMap<String, String>> =
            self.remote.iter().map(|(u, r)| (&**u, &r.states)).collect();
        for (u, e) in &self.entries {
            if e.listed() {
                all.insert(u, &e.states);
            }
        }
        all
    }

    /// A present user's state (here, or on another node).
    fn state_of(&self, user: &str) -> Option<&BTreeMap<String, String>> {
        match self.entries.get(user) {
            Some(e) if e.listed() => Some(&e.states),
            _ => self.remote.get(user).map(|r| &r.states),
        }
    }

    /// Sends `body` to every entry `to` selects.
    pub(crate) fn send_to(&self, to: impl Fn(&Entry) -> bool, body: &Bytes) {
        for e in self.entries.values() {
            if to(e) {
                e.session.send(body.clone());
            }
        }
    }

    /// Nothing left worth keeping.
    pub(crate) fn is_idle(&self) -> bool {
        self.entries.is_empty() && self.locks.is_empty() && self.remote.is_empty() && !self.pending.scheduled
    }

    pub(crate) fn lock_snapshot(&self) -> Vec<pb::LockDetail> {
        self.locks.iter().map(|(name, l)| l.detail(name)).collect()
    }
}

/// The scope of `key`, created if missing.
fn scope_of(app: &App, key: &ScopeKey) -> Arc<Mutex<Scope>> {
    if let Some(s) = app.scopes.get(key) {
        return s.clone();
    }
    app.scopes.entry(key.clone()).or_default().clone()
}

/// Runs `f` on the live scope of `key` (created if missing), under its lock. A scope that was
/// dropped as idle between the lookup and the lock is looked up again, so nothing is added to
/// a scope nobody else can find.
pub(crate) fn with_live_scope<R>(app: &App, key: &ScopeKey, f: impl FnOnce(&Arc<Mutex<Scope>>, &mut Scope) -> R) -> R {
    loop {
        let arc = scope_of(app, key);
        let mut scope = arc.lock().unwrap();
        if !scope.dead {
            return f(&arc, &mut scope);
        }
    }
}

/// Drops the scope of `key` if nothing is left in it.
pub(crate) fn forget_if_idle(app: &App, key: &ScopeKey) {
    app.scopes.remove_if(key, |_, s| {
        let mut s = s.lock().unwrap();
        s.dead = s.is_idle();
        s.dead
    });
}

fn items(states: &BTreeMap<String, String>) -> Vec<pb::StateItem> {
    states.iter().map(|(k, v)| pb::StateItem { key: k.clone(), value: v.clone() }).collect()
}

fn user_state(user: &str, states: &BTreeMap<String, String>) -> pb::UserState {
    pb::UserState { user_id: user.to_string(), states: items(states) }
}

pub(crate) fn presence_event(key: &ScopeKey, event_type: PresenceEventType, publisher: &str) -> pb::PresenceEvent {
    pb::PresenceEvent {
        event_type: event_type as u32,
        channel_type: key.0 as u32,
        channel: key.1.clone(),
        publisher: publisher.to_string(),
        timestamp_ms: now_ms(),
        ..Default::default()
    }
}

fn encode_presence(ev: pb::PresenceEvent) -> Bytes {
    frame::encode_server_body(&server_frame::Body::Presence(ev))
}

pub(crate) fn encode_lock(ev: pb::LockEvent) -> Bytes {
    frame::encode_server_body(&server_frame::Body::Lock(ev))
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Join,
    Leave,
    Timeout,
    State,
}

/// A local user joined, left, timed out or changed its state: tells the channel's listeners
/// here ([`announce_here`]) and, in a cluster, the other nodes (a note, sent under the scope's
/// lock so that notes leave in the order of the changes).
fn announce(
    engine: &Engine,
    app: &Arc<App>,
    scope_arc: &Arc<Mutex<Scope>>,
    scope: &mut Scope,
    key: &ScopeKey,
    change: Change,
    user: &str,
) {
    if let Some(c) = &app.cluster {
        let (kind, states, timeout) = match (change, scope.entries.get(user)) {
            (Change::Leave, _) => (NoteKind::Left, None, Default::default()),
            (Change::Timeout, _) => (NoteKind::TimedOut, None, Default::default()),
            (Change::Join | Change::State, Some(e)) => {
                (NoteKind::Present, Some(&e.states), engine.config.ttl_unit * e.session.presence_timeout_s)
            }
            (Change::Join | Change::State, None) => (NoteKind::Left, None, Default::default()),
        };
        c.note_presence(&app.id, key, user, kind, states.unwrap_or(&BTreeMap::new()), timeout);
    }
    announce_here(engine, app, scope_arc, scope, key, change, user);
}

/// Tells the channel's presence listeners here (but `user` itself) that `user` joined, left,
/// timed out or changed its state: at once in announce mode, in the next INTERVAL event
/// otherwise.
fn announce_here(
    engine: &Engine,
    app: &Arc<App>,
    scope_arc: &Arc<Mutex<Scope>>,
    scope: &mut Scope,
    key: &ScopeKey,
    change: Change,
    user: &str,
) {
    if scope.occupancy() > engine.config.presence_announce_max {
        let p = &mut scope.pending;
        match change {
            Change::Join => p.joined.push(user.to_string()),
            Change::Leave => p.left.push(user.to_string()),
            Change::Timeout => p.timed_out.push(user.to_string()),
            Change::State => {
                p.changed.insert(user.to_string());
            }
        }
        if !p.scheduled {
            p.scheduled = true;
            let (scope_arc, key, app) = (scope_arc.clone(), key.clone(), app.clone());
            let interval = engine.config.presence_interval;
            tokio::spawn(async move {
                tokio::time::sleep(interval).await;
                flush_interval(&app, &scope_arc, &key);
            });
        }
        return;
    }
    let mut ev = presence_event(
        key,
        match change {
            Change::Join => PresenceEventType::REMOTE_JOIN,
            Change::Leave => PresenceEventType::REMOTE_LEAVE,
            Change::Timeout => PresenceEventType::REMOTE_TIMEOUT,
            Change::State => PresenceEventType::REMOTE_STATE_CHANGED,
        },
        user,
    );
    if let Change::State = change
        && let Some(states) = scope.state_of(user)
    {
        ev.states = items(states);
    }
    let body = encode_presence(ev);
    scope.send_to(|e| e.opts.with_presence && &*e.session.user_id != user, &body);
}

fn flush_interval(app: &App, scope_arc: &Arc<Mutex<Scope>>, key: &ScopeKey) {
    {
        let mut scope = scope_arc.lock().unwrap();
        let p = std::mem::take(&mut scope.pending);
        let states = p.changed.iter().filter_map(|u| scope.state_of(u).map(|s| user_state(u, s))).collect();
        let mut ev = presence_event(key, PresenceEventType::INTERVAL, "");
        ev.interval = Some(pb::PresenceInterval {
            joined: p.joined,
            left: p.left,
            timed_out: p.timed_out,
            states,
            total_occupancy: scope.occupancy() as u32,
        });
        let body = encode_presence(ev);
        scope.send_to(|e| e.opts.with_presence, &body);
    }
    forget_if_idle(app, key);
}

/// A session subscribed to / joined a channel (or subscribed again with other options):
/// registers it, sends it the snapshots its options ask for, and announces it. `states` (from
/// the client's cache) replace its presence state when not empty.
pub(crate) fn enter(
    engine: &Engine,
    session: &Arc<Session>,
    channel_type: ChannelType,
    channel: &str,
    opts: SubscribeOpts,
    states: Vec<pb::StateItem>,
) {
    let app = &session.app;
    let key: ScopeKey = (channel_type, channel.to_string());
    // Held from registration to snapshot: a metadata write either lands before the snapshot is
    // read or is sent to this session as an update after it.
    let meta_guard = opts.with_metadata.then(|| engine.meta_lock.lock().unwrap());
    // In a cluster, likewise for lock events (taken after `meta_lock`, before the scope's).
    let cluster_locks = app.cluster.as_ref().filter(|_| opts.with_lock).map(|c| c.locks_replica());
    with_live_scope(app, &key, |scope_arc, scope| {
        let user = session.user_id.clone();
        let previous = scope.entries.remove(&user);
        let was_listed = previous.as_ref().is_some_and(|e| e.session.id == session.id && e.listed());
        let mut kept = match previous {
            Some(e) if e.session.id == session.id => e.states,
            _ => BTreeMap::new(),
        };
        if !states.is_empty() {
            kept = states.into_iter().map(|s| (s.key, s.value)).collect();
        }
        let entry = Entry { session: session.clone(), opts, states: kept };
        let listed = entry.listed();
        let has_state = !entry.states.is_empty();
        scope.entries.insert(user.clone(), entry);
        crate::locks::owner_entered(session, scope, &key);
        if opts.with_presence {
            let mut present = scope.present();
            if let Some(e) = scope.entries.get(&user) {
                present.insert(&user, &e.states);
            }
            let snapshot = present.into_iter().map(|(u, states)| user_state(u, states)).collect();
            let mut ev = presence_event(&key, PresenceEventType::SNAPSHOT, "");
            ev.snapshot = snapshot;
            session.send(encode_presence(ev));
        }
        match (was_listed, listed) {
            (false, true) => {
                announce(engine, app, scope_arc, scope, &key, Change::Join, &user);
                if has_state {
                    announce(engine, app, scope_arc, scope, &key, Change::State, &user);
                }
            }
            (true, false) => announce(engine, app, scope_arc, scope, &key, Change::Leave, &user),
            _ => {}
        }
        if opts.with_lock {
            let ev = pb::LockEvent {
                event_type: LockEventType::SNAPSHOT as u32,
                channel_type: channel_type as u32,
                channel: channel.to_string(),
                snapshot: match &cluster_locks {
                    Some(replica) => crate::cluster::locks::snapshot(replica, &app.id, &key),
                    None => scope.lock_snapshot(),
                },
                timestamp_ms: now_ms(),
                ..Default::default()
            };
            session.send(encode_lock(ev));
        }
    });
    session.scopes.lock().unwrap().insert(key.clone());
    if let Some(view) = &meta_guard {
        crate::storage::send_channel_snapshot(engine, view, session, &key);
    }
    drop(cluster_locks);
    drop(meta_guard);
}

/// A session left a channel (unsubscribe, leave, logout) or timed out of it.
pub(crate) fn exit(engine: &Engine, session: &Arc<Session>, key: &ScopeKey, ending: Ending) {
    session.scopes.lock().unwrap().remove(key);
    let app = &session.app;
    let Some(scope_arc) = app.scopes.get(key).map(|s| s.clone()) else { return };
    {
        let mut scope = scope_arc.lock().unwrap();
        let mine = scope.entries.get(&*session.user_id).is_some_and(|e| e.session.id == session.id);
        if !mine {
            return;
        }
        let entry = scope.entries.remove(&*session.user_id).expect("checked above");
        // Left while staying online (an ending session's locks are handled as it goes away).
        if !session.ended.load(std::sync::atomic::Ordering::Acquire) {
            crate::locks::owner_left(session, &mut scope, key);
        }
        if entry.listed() {
            let change = match ending {
                Ending::Leave => Change::Leave,
                Ending::Timeout => Change::Timeout,
            };
            announce(engine, app, &scope_arc, &mut scope, key, change, &session.user_id);
        }
    }
    forget_if_idle(app, key);
}

fn key_of(channel: &str, channel_type: u32) -> Result<ScopeKey, Violation> {
    Ok((validate::scope(channel, channel_type)?, channel.to_string()))
}

fn not_present(key: &ScopeKey) -> Violation {
    Violation::new(
        ErrorCode::PRESENCE_NOT_CONNECTED,
        format!("not present in {} channel {:?}: subscribe or join it with presence first", key.0.name(), key.1),
    )
}

/// Runs `f` on the caller's entry in the channel (which it must have entered with presence).
fn with_own_entry(
    engine: &Engine,
    session: &Arc<Session>,
    key: &ScopeKey,
    f: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), Violation>,
) -> Reply {
    let app = &session.app;
    let Some(scope_arc) = app.scopes.get(key).map(|s| s.clone()) else { return Err(not_present(key)) };
    let mut scope = scope_arc.lock().unwrap();
    let listed = match scope.entries.get_mut(&*session.user_id) {
        Some(e) if e.session.id == session.id && e.opts.with_presence => {
            f(&mut e.states)?;
            e.listed()
        }
        _ => return Err(not_present(key)),
    };
    if listed {
        announce(engine, app, &scope_arc, &mut scope, key, Change::State, &session.user_id);
    }
    Ok(None)
}

pub(crate) fn set_state(engine: &Engine, session: &Arc<Session>, r: pb::SetState) -> Reply {
    let key = key_of(&r.channel, r.channel_type)?;
    validate::state_items(r.states.iter().map(|s| (s.key.as_str(), s.value.as_str())))?;
    with_own_entry(engine, session, &key, |states| {
        let added = r.states.iter().filter(|s| !states.contains_key(&s.key)).count();
        if states.len() + added > limits::MAX_STATE_ITEMS {
            return Err(Violation::new(
                ErrorCode::PRESENCE_STATE_COUNT_OVERFLOW,
                format!(
                    "the state would have {} pairs; at most {} are allowed per channel",
                    states.len() + added,
                    limits::MAX_STATE_ITEMS
                ),
            ));
        }
        for s in r.states {
            states.insert(s.key, s.value);
        }
        Ok(())
    })
}

pub(crate) fn remove_state(engine: &Engine, session: &Arc<Session>, r: pb::RemoveState) -> Reply {
    let key = key_of(&r.channel, r.channel_type)?;
    for k in &r.keys {
        validate::name("state key", k, limits::MAX_STATE_KEY_LEN, ErrorCode::PRESENCE_INVALID_STATE_KEY)?;
    }
    with_own_entry(engine, session, &key, |states| {
        if r.keys.is_empty() {
            states.clear();
        } else {
            for k in &r.keys {
                states.remove(k);
            }
        }
        Ok(())
    })
}

pub(crate) fn get_state(session: &Arc<Session>, r: pb::GetState) -> Reply {
    let key = key_of(&r.channel, r.channel_type)?;
    validate::user_id(&r.user_id)?;
    let not_there = || {
        Violation::new(
            ErrorCode::PRESENCE_USER_NOT_EXIST,
            format!("user {:?} is not present in {} channel {:?}", r.user_id, key.0.name(), key.1),
        )
    };
    let scope_arc = session.app.scopes.get(&key).map(|s| s.clone()).ok_or_else(not_there)?;
    let scope = scope_arc.lock().unwrap();
    match scope.entries.get(r.user_id.as_str()) {
        Some(e) if e.listed() || (e.opts.with_presence && e.session.id == session.id) => {
            Ok(Some(pb::response::Result::UserState(user_state(&r.user_id, &e.states))))
        }
        _ => match scope.remote.get(r.user_id.as_str()) {
            Some(remote) => Ok(Some(pb::response::Result::UserState(user_state(&r.user_id, &remote.states)))),
            None => Err(not_there()),
        },
    }
}

pub(crate) fn get_online_users(engine: &Engine, session: &Arc<Session>, r: pb::GetOnlineUsers) -> Reply {
    let key = key_of(&r.channel, r.channel_type)?;
    if r.include_state && !r.include_user_id {
        return Err(Violation::new(
            ErrorCode::PRESENCE_INVALID_ARGUMENT,
            "include_state needs include_user_id (states are listed per user)",
        ));
    }
    if !r.page.is_empty() {
        validate::user_id(&r.page).map_err(|_| {
            Violation::new(ErrorCode::PRESENCE_INVALID_ARGUMENT, "page is not a page token of this channel")
        })?;
    }
    let Some(scope_arc) = session.app.scopes.get(&key).map(|s| s.clone()) else {
        return Ok(Some(pb::response::Result::OnlineUsers(pb::OnlineUsersResult::default())));
    };
    let scope = scope_arc.lock().unwrap();
    let total = scope.occupancy() as u32;
    let mut result = pb::OnlineUsersResult { total_occupancy: total, ..Default::default() };
    if r.include_user_id {
        let page_size = engine.config.presence_page_size.max(1);
        let present = scope.present();
        let listed = present.iter().filter(|(u, _)| r.page.is_empty() || ***u > *r.page.as_str()).take(page_size + 1);
        for (u, states) in listed {
            if result.occupants.len() == page_size {
                result.next_page = result.occupants.last().map(|o| o.user_id.clone()).unwrap_or_default();
                break;
            }
            let states = if r.include_state { items(states) } else { Vec::new() };
            result.occupants.push(pb::UserState { user_id: u.to_string(), states });
        }
    }
    Ok(Some(pb::response::Result::OnlineUsers(result)))
}

pub(crate) fn get_user_channels(session: &Arc<Session>, r: pb::GetUserChannels) -> Reply {
    let user = if r.user_id.is_empty() { session.user_id.to_string() } else { r.user_id };
    validate::user_id(&user)?;
    let app = &session.app;
    let mut channels = Vec::new();
    if app.user(&user).is_none() && app.cluster.is_some() {
        // Online on another node (or nowhere): the replica of its presence.
        for s in app.scopes.iter() {
            if s.value().lock().unwrap().remote.contains_key(user.as_str()) {
                channels.push(pb::ChannelRef { channel: s.key().1.clone(), channel_type: s.key().0 as u32 });
            }
        }
        channels.sort_by(|a, b| (a.channel_type, &a.channel).cmp(&(b.channel_type, &b.channel)));
    }
    if let Some(target) = app.user(&user) {
        let keys: Vec<ScopeKey> = target.scopes.lock().unwrap().iter().cloned().collect();
        for key in keys {
            let Some(scope_arc) = app.scopes.get(&key).map(|s| s.clone()) else { continue };
            let listed = scope_arc
                .lock()
                .unwrap()
                .entries
                .get(user.as_str())
                .is_some_and(|e| e.session.id == target.id && e.listed());
            if listed {
                channels.push(pb::ChannelRef { channel: key.1, channel_type: key.0 as u32 });
            }
        }
    }
    Ok(Some(pb::response::Result::UserChannels(pb::UserChannelsResult { channels })))
}

/// Another node's user is present in a channel with this state (`Some`), or left it or timed
/// out of it (`None`): the replica is updated and this node's listeners are told, as for a
/// local user (nothing is said of a user that is also listed here).
pub(crate) fn remote_present(
    engine: &Engine,
    app: &Arc<App>,
    key: &ScopeKey,
    user: &str,
    node: &Arc<str>,
    now: Option<RemotePresence>,
    timed_out: bool,
) {
    match now {
        Some(r) => with_live_scope(app, key, |scope_arc, scope| {
            let states_changed = |old: &RemotePresence| old.states != r.states;
            let has_state = !r.states.is_empty();
            let old = scope.remote.insert(Arc::from(user), r.clone());
            if scope.listed_here(user) {
                return;
            }
            match old {
                None => {
                    announce_here(engine, app, scope_arc, scope, key, Change::Join, user);
                    if has_state {
                        announce_here(engine, app, scope_arc, scope, key, Change::State, user);
                    }
                }
                Some(old) if states_changed(&old) => {
                    announce_here(engine, app, scope_arc, scope, key, Change::State, user)
                }
                Some(_) => {}
            }
        }),
        None => {
            let Some(scope_arc) = app.scopes.get(key).map(|s| s.clone()) else { return };
            {
                let mut scope = scope_arc.lock().unwrap();
                // Only the node it was present on takes it away (it may have moved on to
                // another node, whose note came first).
                if scope.remote.get(user).is_none_or(|r| r.node != *node) {
                    return;
                }
                scope.remote.remove(user);
                if !scope.listed_here(user) {
                    let change = if timed_out { Change::Timeout } else { Change::Leave };
                    announce_here(engine, app, &scope_arc, &mut scope, key, change, user);
                }
            }
            forget_if_idle(app, key);
        }
    }
}

/// The users of `node` present in the app's channels: (channel, user, presence timeout).
pub(crate) fn remote_users_of(app: &App, node: &str) -> Vec<(ScopeKey, String, std::time::Duration)> {
    let mut out = Vec::new();
    for s in app.scopes.iter() {
        for (u, r) in &s.value().lock().unwrap().remote {
            if &*r.node == node {
                out.push((s.key().clone(), u.to_string(), r.timeout));
            }
        }
    }
    out
}

/// The local users present in the app's channels, as notes (for a joining node's sync).
pub(crate) fn local_notes(engine: &Engine, app: &App, out: &mut Vec<crate::cluster::Note>) {
    for s in app.scopes.iter() {
        let scope = s.value().lock().unwrap();
        for (u, e) in scope.entries.iter().filter(|(_, e)| e.listed()) {
            out.push(crate::cluster::Note {
                kind: NoteKind::Present as u32,
                app: app.id.clone(),
                channel_type: s.key().0 as u32,
                channel: s.key().1.clone(),
                user: u.to_string(),
                states: items(&e.states),
                presence_timeout_ms: (engine.config.ttl_unit * e.session.presence_timeout_s).as_millis() as u64,
                ..Default::default()
            });
        }
    }
}

/// In a cluster: tells the other nodes that `session` leaves (or times out of) every channel it
/// is listed in, ahead of ending it here (which tells them again: a repeated note changes
/// nothing); with `ending` None, that it is (still) present in them, with its state.
pub(crate) fn note_exits(engine: &Engine, session: &Arc<Session>, ending: Option<Ending>) {
    let Some(c) = &session.app.cluster else { return };
    let kind = match ending {
        Some(Ending::Leave) => NoteKind::Left,
        Some(Ending::Timeout) => NoteKind::TimedOut,
        None => NoteKind::Present,
    };
    let timeout = engine.config.ttl_unit * session.presence_timeout_s;
    let keys: Vec<ScopeKey> = session.scopes.lock().unwrap().iter().cloned().collect();
    for key in keys {
        let Some(scope_arc) = session.app.scopes.get(&key).map(|s| s.clone()) else { continue };
        let scope = scope_arc.lock().unwrap();
        if let Some(e) = scope.entries.get(&*session.user_id).filter(|e| e.session.id == session.id && e.listed()) {
            c.note_presence(&session.app.id, &key, &session.user_id, kind, &e.states, timeout);
        }
    }
}
