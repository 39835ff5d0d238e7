//! The engine: apps, logins, message-channel subscriptions, sessions and token deadlines.
//! Publishing lives in `publish.rs`; the cluster link in `cluster/`.
//! Stream channels live in `stream.rs`; presence, metadata and locks in `scope.rs`,
//! `storage.rs` and `locks.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;

use rtm2_proto::enums::{ChannelType, LinkStateChangeReason};
use rtm2_proto::fastpath::PublishRef;
use rtm2_proto::frame;
use rtm2_proto::pb::{self, client_frame, server_frame};
use rtm2_proto::token::{self, TokenError};
use rtm2_proto::validate::{self, Violation};
use rtm2_proto::{ErrorCode, limits, now_ms};

use crate::cluster::{Cluster, Watch};
use crate::config::ServerConfig;
use crate::publish::publish;
use crate::session::{Goodbye, Session, SessionParams, response};
use crate::stream::StreamChannel;

/// A request's outcome: an optional typed result, or an RTM error.
pub(crate) type Reply = Result<Option<pb::response::Result>, Violation>;

/// Why a session ends: for presence, a leave (logout, takeover, token expiry) or a timeout
/// (its connection dropped and it did not come back within the presence timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Leave,
    Timeout,
}

/// Options of a message-channel subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubscribeOpts {
    pub with_message: bool,
    pub with_presence: bool,
    pub with_metadata: bool,
    pub with_lock: bool,
    pub be_quiet: bool,
}

pub(crate) struct Subscriber {
    pub(crate) session: Arc<Session>,
    pub(crate) opts: SubscribeOpts,
}

/// A message channel: its subscribers. Read on every publish, written on (un)subscribe.
pub(crate) struct MsgChannel {
    pub(crate) subs: RwLock<Vec<Subscriber>>,
    /// In a cluster: this node's subscription to the channel's messages from other nodes,
    /// for as long as the channel has subscribers here.
    remote: Option<Watch>,
    /// Messages published to the channel while it had subscribers here (the console's rates).
    pub(crate) messages: AtomicU64,
    /// When a message not stored in the history was last published to the channel (ms; 0:
    /// never) — a client recovering the channel from its history may have missed it. Written
    /// once per publish run; taken over from (and left to) `App::unstored` when the entry is
    /// made (removed).
    pub(crate) unstored_ms: AtomicU64,
}

impl MsgChannel {
    fn new_for(app: &App, name: &str) -> Arc<MsgChannel> {
        Arc::new_cyclic(|me| MsgChannel {
            subs: RwLock::default(),
            remote: app.cluster.as_ref().map(|c| c.watch(&app.id, name, me.clone())),
            messages: AtomicU64::new(0),
            unstored_ms: AtomicU64::new(app.unstored.remove(name).map_or(0, |(_, ms)| ms)),
        })
    }

    /// Messages of a publisher on another node, in order: to every subscriber here that takes
    /// messages (each subscriber's session locked once for all of them).
    pub(crate) fn deliver_remote(&self, bodies: &[Bytes]) {
        let subs = self.subs.read().unwrap();
        let mut receivers = 0;
        for s in subs.iter().filter(|s| s.opts.with_message) {
            s.session.send_many(bodies.iter().cloned());
            // (The console's tail is not a delivery to count.)
            receivers += !s.session.is_backend() as u64;
        }
        self.messages.fetch_add(bodies.len() as u64, Ordering::Relaxed);
        if let Some(s) = subs.first() {
            s.session.app.metrics.delivered.add(ChannelType::MESSAGE, receivers * bodies.len() as u64);
        }
    }
}

/// The hasher of the channel maps, looked up on every publish: randomly seeded per process (names
/// come from clients) and several times cheaper than SipHash for short names.
type Hasher = foldhash::quality::RandomState;

/// Everything that belongs to one app id; apps never see each other.
pub(crate) struct App {
    pub id: String,
    /// One second of lock ttls (`ServerConfig::ttl_unit`).
    pub ttl_unit: std::time::Duration,
    pub certificates: Vec<String>,
    users: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    pub(crate) channels: DashMap<String, Arc<MsgChannel>, Hasher>,
    pub(crate) streams: DashMap<String, Arc<Mutex<StreamChannel>>, Hasher>,
    /// Presence, metadata-event and lock state per (channel type, channel).
    pub(crate) scopes: DashMap<crate::scope::ScopeKey, Arc<Mutex<crate::scope::Scope>>, Hasher>,
    /// user id -> sessions subscribed to that user's metadata.
    pub(crate) user_meta_subs: Mutex<HashMap<String, Vec<Arc<Session>>>>,
    /// user id -> the locks it owns, as (scope, lock name).
    pub(crate) lock_owners: Mutex<HashMap<Arc<str>, std::collections::BTreeSet<crate::locks::LockRef>>>,
    /// EXPIRED lock events for users that had no session when their lock expired.
    pub(crate) expired_locks: Mutex<HashMap<Arc<str>, Vec<bytes::Bytes>>>,
    /// Cut reasons of sessions that ended before their client logged in again, as (session
    /// id, user id, reason), the newest last; at most `MAX_REMEMBERED_CUTS`.
    recent_cuts: Mutex<std::collections::VecDeque<(u64, Arc<str>, String)>>,
    /// Lock persistence and the fencing counter (the server's, shared by every app; weak, so
    /// that lock timers outliving the server do not keep its store open).
    pub(crate) lock_store: std::sync::Weak<crate::locks::LockStore>,
    /// The node's cluster link (`ServerConfig::cluster`), if it is part of one.
    pub(crate) cluster: Option<Arc<Cluster>>,
    /// The server's numbers (shared by every app).
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Stored messages (the server's; weak, like `lock_store`: sessions and timers outliving
    /// the server must not keep its store open).
    pub(crate) history: std::sync::Weak<crate::history::History>,
    /// `MsgChannel::unstored_ms` of channels without an entry here (no subscriber): published
    /// to while they had none, or left by a removed entry. At most `MAX_UNSTORED_MARKS`; when
    /// full it is emptied into `unstored_floor`.
    pub(crate) unstored: DashMap<String, u64, Hasher>,
    /// The newest mark `unstored` forgot: for every channel, a message not stored may have been
    /// published until then (errs towards "may have missed"; see `history::recover`).
    pub(crate) unstored_floor: AtomicU64,
}

/// Channels without subscribers whose last unstored message an app remembers, at most.
const MAX_UNSTORED_MARKS: usize = 100_000;

/// Cut reasons of ended sessions an app remembers for their clients' next login, at most.
const MAX_REMEMBERED_CUTS: usize = 1024;

/// A counted connection; dropping it frees the slot.
pub(crate) struct ConnectionSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The shared engine of one server.
pub(crate) struct Engine {
    pub config: Arc<ServerConfig>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    apps: Mutex<HashMap<String, Arc<App>>>,
    next_session: AtomicU64,
    pub(crate) sessions: Mutex<HashMap<u64, Arc<Session>>>,
    /// Where metadata lives.
    pub(crate) store: Arc<dyn crate::store::Store>,
    /// Held across each metadata read-modify-write (and snapshot + listener registration), so
    /// revisions advance one write at a time and no subscriber misses an update; it guards the
    /// sets with writes not on disk yet (`meta_commit.rs`).
    pub(crate) meta_lock: Arc<Mutex<crate::meta_commit::MetaView>>,
    /// With a data directory (and not in a cluster): metadata writes committed together.
    pub(crate) meta_commit: Option<Arc<crate::meta_commit::MetaCommit>>,
    /// The server's numbers (`/metrics`).
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Stored messages.
    pub(crate) history: Arc<crate::history::History>,
    lock_store: Arc<crate::locks::LockStore>,
    /// Locks persisted by an earlier run, by app id, put back when the app is first used.
    stored_locks: Mutex<HashMap<String, Vec<crate::store::StoredLock>>>,
    /// The node's cluster link (`ServerConfig::cluster`), if it is part of one.
    pub(crate) cluster: Option<Arc<Cluster>>,
}

fn token_violation(e: TokenError) -> Violation {
    let code = match e {
        TokenError::Expired => ErrorCode::TOKEN_EXPIRED,
        TokenError::AppIdMismatch => ErrorCode::INCONSISTENT_APPID,
        _ => ErrorCode::INVALID_TOKEN,
    };
    Violation::new(code, format!("token rejected: {e}"))
}

fn now_s() -> u64 {
    now_ms() / 1000
}

impl Engine {
    pub(crate) fn new(config: ServerConfig) -> std::io::Result<Arc<Engine>> {
        let store: Arc<dyn crate::store::Store> =
            crate::store::open(&config.metadata_store, config.create_new_store)?.into();
        let mut stored_locks: HashMap<String, Vec<crate::store::StoredLock>> = HashMap::new();
        let mut highest = store.fencing_mark()?;
        for l in store.load_locks()? {
            highest = highest.max(l.fencing_token);
            stored_locks.entry(l.app.clone()).or_default().push(l);
        }
        let lock_store = Arc::new(crate::locks::LockStore::new(store.clone(), highest));
        let metrics = crate::metrics::Metrics::new();
        let meta_lock = Arc::new(Mutex::new(crate::meta_commit::MetaView::default()));
        let meta_commit = (store.durable() && config.cluster.is_none())
            .then(|| crate::meta_commit::MetaCommit::new(store.clone(), meta_lock.clone(), metrics.clone()));
        let history = Arc::new(crate::history::History::new(
            store.clone(),
            config.history_max_per_channel,
            config.history_max_age,
        ));
        Ok(Arc::new_cyclic(|engine| {
            let cluster = config.cluster.as_ref().map(|c| Cluster::start(c, config.cluster_replicas, engine.clone()));
            let apps = config
                .apps
                .iter()
                .map(|a| {
                    let app = App::new(
                        a.app_id.clone(),
                        a.certificates.clone(),
                        config.ttl_unit,
                        lock_store.clone(),
                        cluster.clone(),
                        metrics.clone(),
                        history.clone(),
                    );
                    (a.app_id.clone(), app)
                })
                .collect();
            // In a cluster, session ids differ between nodes (a resume names one of this node's).
            let first_session = if cluster.is_some() { ((now_ms() & 0xff_ffff) << 24) | 1 } else { 1 };
            Engine {
                config: Arc::new(config),
                connections: Arc::default(),
                apps: Mutex::new(apps),
                next_session: AtomicU64::new(first_session),
                sessions: Mutex::new(HashMap::new()),
                store,
                meta_lock,
                meta_commit,
                metrics,
                history,
                lock_store,
                stored_locks: Mutex::new(stored_locks),
                cluster,
            }
        }))
    }

    /// A new session id.
    pub(crate) fn next_session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }

    /// Takes one of the `max_connections` slots (released when the guard drops).
    pub(crate) fn connection_slot(&self) -> Option<ConnectionSlot> {
        let n = self.connections.fetch_add(1, Ordering::AcqRel);
        let slot = ConnectionSlot(self.connections.clone());
        (n < self.config.max_connections).then_some(slot)
    }

    /// Connections being served now.
    pub(crate) fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    pub(crate) fn app(&self, app_id: &str) -> Result<Arc<App>, Violation> {
        let mut apps = self.apps.lock().unwrap();
        let app = match apps.get(app_id) {
            Some(app) => app.clone(),
            None if self.config.dev_mode() => {
                let app = App::new(
                    app_id.to_string(),
                    Vec::new(),
                    self.config.ttl_unit,
                    self.lock_store.clone(),
                    self.cluster.clone(),
                    self.metrics.clone(),
                    self.history.clone(),
                );
                apps.insert(app_id.to_string(), app.clone());
                app
            }
            None => return Err(Violation::new(ErrorCode::INVALID_APP_ID, "this server does not serve that app id")),
        };
        // The app's persisted locks are back before its first session (under the apps lock, so
        // no login of the app gets ahead of them).
        if let Some(locks) = self.stored_locks.lock().unwrap().remove(app_id) {
            crate::locks::restore(&app, locks);
        }
        Ok(app)
    }

    /// Verifies a login. With `resume` naming a live session of this user that still has
    /// every frame the client missed, that session is resumed (returned with the sequence
    /// number to replay after). Otherwise a new session is registered; an earlier session of
    /// the same user is told SAME_UID_LOGIN and ended first.
    pub(crate) fn login(
        self: &Arc<Self>,
        login: pb::Login,
    ) -> Result<(Arc<Session>, pb::LoginResult, Option<u64>), Violation> {
        validate::app_id(&login.app_id)?;
        validate::user_id(&login.user_id)?;
        if let Some(c) = &self.cluster
            && !c.ready()
        {
            return Err(Violation::new(
                ErrorCode::LOGIN_NO_SERVER_RESOURCES,
                format!("node {} is not connected to the cluster (NATS): try another node", c.node_id),
            ));
        }
        let app = self.app(&login.app_id)?;
        let dev_mode = app.certificates.is_empty();
        let expires_at = if dev_mode {
            None
        } else {
            let certs: Vec<&str> = app.certificates.iter().map(String::as_str).collect();
            let v = token::verify_rtm_token(&login.token, &app.id, &certs, &login.user_id, now_s())
                .map_err(token_violation)?;
            Some(v.expires_at)
        };
        let heartbeat_s =
            login.heartbeat_interval_s.clamp(limits::MIN_HEARTBEAT_INTERVAL_S, limits::MAX_HEARTBEAT_INTERVAL_S);
        let presence_timeout_s = if login.presence_timeout_s == 0 {
            limits::DEFAULT_PRESENCE_TIMEOUT_S
        } else {
            login.presence_timeout_s.clamp(limits::MIN_PRESENCE_TIMEOUT_S, limits::MAX_PRESENCE_TIMEOUT_S)
        };
        // Why the server cut the connection this client wants to resume, if it did: reported
        // whether or not the session can be resumed.
        let cut_reason = login
            .resume
            .as_ref()
            .and_then(|r| self.take_cut_reason(&app, &login.user_id, r.session_id))
            .unwrap_or_default();
        if let Some(r) = &login.resume
            && let Some(s) = self.resumable(&app, &login.user_id, r)
        {
            if let Some(t) = expires_at {
                s.set_deadline("", Some(t));
            }
            // The connection it had (if the client noticed the drop first) is superseded.
            s.close_conn(Goodbye::new(
                0,
                LinkStateChangeReason::CONNECTION_ERROR,
                "the session was resumed on another connection",
            ));
            tracing::debug!(app = %app.id, user = %s.user_id, session = s.id, after = r.last_seq, "resumed");
            self.metrics.sessions_resumed.inc();
            let result = pb::LoginResult {
                session_id: s.id,
                token_expires_at_s: expires_at.unwrap_or(0),
                dev_mode,
                resumed: true,
                cut_reason,
                node_id: self.node_id(),
            };
            return Ok((s, result, Some(r.last_seq)));
        }
        if login.resume.is_some() {
            // Beyond the resume window (or after a restart): the client restores its channels.
            self.metrics.sessions_restored.inc();
        }
        let session = Session::new(SessionParams {
            id: self.next_session.fetch_add(1, Ordering::Relaxed),
            user_id: Arc::from(login.user_id.as_str()),
            app: app.clone(),
            receive_own: login.receive_own_messages,
            heartbeat_s,
            presence_timeout_s,
            replay_max_frames: self.config.resume_max_frames,
            replay_max_bytes: self.config.resume_max_bytes,
            rate_limits: self.config.rate_limits,
            sink: None,
        });
        if let Some(t) = expires_at {
            session.set_deadline("", Some(t));
        }
        let previous = app.users.lock().unwrap().insert(session.user_id.clone(), session.clone());
        if let Some(c) = &self.cluster {
            // One session per user id across the cluster: older ones elsewhere end.
            c.announce_login(&app.id, &session.user_id, session.login_ms);
        }
        if let Some(prev) = previous {
            tracing::info!(app = %app.id, user = %prev.user_id, "same user id logged in again; ending the earlier session");
            prev.close_conn(Goodbye::new(
                ErrorCode::LOGIN_REJECTED.code(),
                LinkStateChangeReason::SAME_UID_LOGIN,
                "the same user id logged in from another connection",
            ));
            self.end_session(&prev, Ending::Leave);
        }
        self.sessions.lock().unwrap().insert(session.id, session.clone());
        tracing::debug!(app = %app.id, user = %session.user_id, session = session.id, "login");
        Ok((
            session.clone(),
            pb::LoginResult {
                session_id: session.id,
                token_expires_at_s: expires_at.unwrap_or(0),
                dev_mode,
                resumed: false,
                cut_reason,
                node_id: self.node_id(),
            },
            None,
        ))
    }

    /// The app (created in development mode, as for a login), if this server serves it.
    pub(crate) fn existing_app(&self, app_id: &str) -> Option<Arc<App>> {
        self.app(app_id).ok()
    }

    pub(crate) fn all_apps(&self) -> Vec<Arc<App>> {
        self.apps.lock().unwrap().values().cloned().collect()
    }

    /// Who is present where on this node, and the members of its stream channels, as notes
    /// (a joining node's sync).
    pub(crate) fn local_presence_notes(&self) -> Vec<crate::cluster::Note> {
        let mut out = Vec::new();
        for app in self.all_apps() {
            crate::scope::local_notes(self, &app, &mut out);
            crate::stream::local_notes(&app, &mut out);
        }
        out
    }

    /// The users with a session on this node: (app, user, login time ms).
    pub(crate) fn local_users(&self) -> Vec<(String, String, u64)> {
        let apps: Vec<Arc<App>> = self.apps.lock().unwrap().values().cloned().collect();
        let mut out = Vec::new();
        for app in apps {
            for (user, s) in app.users.lock().unwrap().iter() {
                out.push((app.id.clone(), user.to_string(), s.login_ms));
            }
        }
        out
    }

    /// A peer-to-peer message from another node for a user of this node (dropped if the user
    /// left meanwhile, as a message to a user who just went offline).
    pub(crate) fn deliver_to_user(&self, app_id: &str, user: &str, body: Bytes) {
        let app = self.apps.lock().unwrap().get(app_id).cloned();
        if let Some(s) = app.and_then(|a| a.user(user)) {
            s.send(body);
        }
    }

    /// The app `app_id`, if this node has seen it (cluster events for others have no listener).
    pub(crate) fn app_if_known(&self, app_id: &str) -> Option<Arc<App>> {
        self.apps.lock().unwrap().get(app_id).cloned()
    }

    /// This node's id in its cluster ("" when it is not part of one).
    pub(crate) fn node_id(&self) -> String {
        self.cluster.as_ref().map(|c| c.node_id.clone()).unwrap_or_default()
    }

    /// Another node (`node`) logged `user` of `app_id` in at `login_ms`: this node's session of
    /// that user ends if it is older (ties: the larger node id wins), as for a second login here.
    pub(crate) fn login_elsewhere(&self, app_id: &str, user: &str, node: &str, login_ms: u64) {
        let Some(app) = self.apps.lock().unwrap().get(app_id).cloned() else { return };
        let Some(s) = app.user(user) else { return };
        if (s.login_ms, self.node_id().as_str()) >= (login_ms, node) {
            return;
        }
        {
            let mut users = app.users.lock().unwrap();
            if users.get(user).is_some_and(|u| u.id == s.id) {
                users.remove(user);
            }
        }
        tracing::info!(app = %app.id, user, node, "the same user id logged in on another node; ending the session here");
        s.close_conn(Goodbye::new(
            ErrorCode::LOGIN_REJECTED.code(),
            LinkStateChangeReason::SAME_UID_LOGIN,
            "the same user id logged in from another connection",
        ));
        self.end_session(&s, Ending::Leave);
    }

    /// The unreported cut reason of session `session_id` of this user (live, or ended).
    fn take_cut_reason(&self, app: &Arc<App>, user_id: &str, session_id: u64) -> Option<String> {
        let live = self.sessions.lock().unwrap().get(&session_id).cloned();
        if let Some(s) = live
            && Arc::ptr_eq(&s.app, app)
            && &*s.user_id == user_id
            && let Some(reason) = s.take_cut_reason()
        {
            return Some(reason);
        }
        let mut cuts = app.recent_cuts.lock().unwrap();
        let i = cuts.iter().position(|(id, user, _)| *id == session_id && &**user == user_id)?;
        cuts.remove(i).map(|(_, _, reason)| reason)
    }

    /// The session `r` names, if it belongs to this user, is still the user's current session
    /// and kept every frame after `r.last_seq`.
    fn resumable(&self, app: &Arc<App>, user_id: &str, r: &pb::Resume) -> Option<Arc<Session>> {
        let s = self.sessions.lock().unwrap().get(&r.session_id).cloned()?;
        let current = app.user(user_id).is_some_and(|u| u.id == s.id);
        (Arc::ptr_eq(&s.app, app)
            && &*s.user_id == user_id
            && current
            && !s.ended.load(Ordering::Acquire)
            && s.can_resume(r.last_seq))
        .then_some(s)
    }

    /// Keeps a session whose connection dropped for the resume window (at most the user's
    /// presence timeout), then ends it as timed out unless a connection was attached again.
    pub(crate) fn keep_detached(self: &Arc<Self>, session: Arc<Session>, generation: u64) {
        let engine = self.clone();
        let presence = self.config.ttl_unit * session.presence_timeout_s;
        let window = self.config.resume_window.min(presence);
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(window) => {
                    if session.still_detached(generation) {
                        tracing::debug!(user = %session.user_id, session = session.id, "resume window passed; ending the session");
                        // In a cluster, every node applies the timeout before anyone here is
                        // told: whoever sees the REMOTE_TIMEOUT sees it on every node.
                        if let Some(c) = &engine.cluster {
                            crate::scope::note_exits(&engine, &session, Some(Ending::Timeout));
                            c.barrier(c.notes_sent()).await;
                            if !session.still_detached(generation) {
                                // Back just in time: present after all.
                                crate::scope::note_exits(&engine, &session, None);
                                return;
                            }
                        }
                        engine.end_session(&session, Ending::Timeout);
                    }
                }
                _ = session.wait_ended() => {}
            }
        });
    }

    /// Removes a session from everything it takes part in. Idempotent.
    pub(crate) fn end_session(&self, session: &Arc<Session>, ending: Ending) {
        if !session.mark_ended() {
            return;
        }
        let app = &session.app;
        let was_current = {
            let mut users = app.users.lock().unwrap();
            let current = users.get(&session.user_id).is_some_and(|s| s.id == session.id);
            if current {
                users.remove(&session.user_id);
            }
            current
        };
        if let (true, Some(c)) = (was_current, &self.cluster) {
            c.announce_logout(&app.id, &session.user_id, session.login_ms);
        }
        // Presence first, so others see a timeout (not a leave) when that is what happened.
        let scopes: Vec<crate::scope::ScopeKey> = session.scopes.lock().unwrap().iter().cloned().collect();
        for key in scopes {
            crate::scope::exit(self, session, &key, ending);
        }
        crate::storage::drop_user_subscriptions(session);
        crate::locks::owner_away(app, &session.user_id);
        let channels: Vec<String> = session.subscriptions.lock().unwrap().drain().map(|(k, _)| k).collect();
        for ch in channels {
            app.remove_subscriber(&ch, session.id);
        }
        let streams: Vec<String> = session.streams.lock().unwrap().drain().collect();
        for ch in streams {
            crate::stream::leave(self, session, &ch);
        }
        session.deadlines.lock().unwrap().clear();
        session.deadlines_changed.notify_one();
        self.sessions.lock().unwrap().remove(&session.id);
        // Kept for the client's next login (it may come after the resume window).
        if let Some(reason) = session.take_cut_reason() {
            let mut cuts = app.recent_cuts.lock().unwrap();
            if cuts.len() >= MAX_REMEMBERED_CUTS {
                cuts.pop_front();
            }
            cuts.push_back((session.id, session.user_id.clone(), reason));
        }
    }

    /// Handles one request of a logged-in session. `None`: the handler answers `request_id`
    /// later itself (an acquisition waiting in a lock's queue).
    pub(crate) fn handle(&self, session: &Arc<Session>, request_id: u64, body: client_frame::Body) -> Option<Reply> {
        use client_frame::Body as B;
        // In a cluster, a request that changes what other nodes see (presence, stream
        // membership) is answered once every live node applied the change.
        let Some(c) = self.cluster.as_ref().filter(|_| {
            matches!(
                body,
                B::Subscribe(_)
                    | B::Unsubscribe(_)
                    | B::StreamJoin(_)
                    | B::StreamLeave(_)
                    | B::JoinTopic(_)
                    | B::LeaveTopic(_)
                    | B::SetState(_)
                    | B::RemoveState(_)
            )
        }) else {
            return self.handle_here(session, request_id, body);
        };
        let before = c.notes_sent();
        let reply = self.handle_here(session, request_id, body)?;
        let after = c.notes_sent();
        if after == before {
            return Some(reply);
        }
        let (c, session) = (c.clone(), session.clone());
        tokio::spawn(async move {
            c.barrier(after).await;
            session.send(response(request_id, reply));
        });
        None
    }

    fn handle_here(&self, session: &Arc<Session>, request_id: u64, body: client_frame::Body) -> Option<Reply> {
        use client_frame::Body as B;
        Some(match body {
            // In a cluster, locks live in its key-value bucket.
            b @ (B::SetLock(_)
            | B::RemoveLock(_)
            | B::AcquireLock(_)
            | B::ReleaseLock(_)
            | B::RevokeLock(_)
            | B::GetLocks(_))
                if self.cluster.is_some() =>
            {
                return crate::cluster::locks::handle(self.cluster.as_ref()?, session, request_id, b);
            }
            B::AcquireLock(r) => return crate::locks::acquire(self, session, request_id, r),
            B::Subscribe(r) => return self.subscribe_answer(session, request_id, r),
            B::Unsubscribe(r) => self.unsubscribe(session, r),
            B::Publish(r) => publish(session, PublishRef::from(&r), now_ms()),
            B::RenewToken(r) => self.renew_token(session, r),
            B::StreamJoin(r) => return crate::stream::join_answer(self, session, request_id, r),
            B::StreamLeave(r) => crate::stream::leave_request(self, session, r),
            B::JoinTopic(r) => crate::stream::join_topic(session, r),
            B::LeaveTopic(r) => crate::stream::leave_topic(session, r),
            B::PublishTopic(r) => crate::stream::publish_topic(session, r),
            B::SubscribeTopic(r) => crate::stream::subscribe_topic(session, r),
            B::UnsubscribeTopic(r) => crate::stream::unsubscribe_topic(session, r),
            B::GetOnlineUsers(r) => crate::scope::get_online_users(self, session, r),
            B::GetUserChannels(r) => crate::scope::get_user_channels(session, r),
            B::SetState(r) => crate::scope::set_state(self, session, r),
            B::GetState(r) => crate::scope::get_state(session, r),
            B::RemoveState(r) => crate::scope::remove_state(self, session, r),
            B::WriteMetadata(r) => return crate::storage::write(self, session, request_id, r),
            B::GetMetadata(r) => return crate::storage::get(self, session, request_id, r),
            B::SubscribeUserMetadata(r) => crate::storage::subscribe_user(self, session, r),
            B::UnsubscribeUserMetadata(r) => crate::storage::unsubscribe_user(session, r),
            B::SetLock(r) => crate::locks::set(session, r),
            B::RemoveLock(r) => crate::locks::remove(session, r),
            B::ReleaseLock(r) => crate::locks::release(session, r),
            B::RevokeLock(r) => crate::locks::revoke(session, r),
            B::GetLocks(r) => crate::locks::get(session, r),
            B::GetMessages(r) => crate::history::get_messages(self, session, r),
            B::RecoverMessages(r) => crate::history::recover(self, session, r),
            B::Hello(_) | B::Login(_) | B::Logout(_) | B::Ping(_) => {
                Err(Violation::new(ErrorCode::INVALID_PARAMETER, "unexpected session frame"))
            }
        })
    }

    fn renew_token(&self, session: &Arc<Session>, r: pb::RenewToken) -> Reply {
        let app = &session.app;
        let expires_at = if r.channel.is_empty() {
            if app.certificates.is_empty() {
                None
            } else {
                let certs: Vec<&str> = app.certificates.iter().map(String::as_str).collect();
                Some(
                    token::verify_rtm_token(&r.token, &app.id, &certs, &session.user_id, now_s())
                        .map_err(token_violation)?
                        .expires_at,
                )
            }
        } else {
            validate::channel_name(&r.channel)?;
            if !session.streams.lock().unwrap().contains(&r.channel) {
                return Err(Violation::new(
                    ErrorCode::CHANNEL_NOT_JOINED,
                    format!("stream channel {:?} is not joined", r.channel),
                ));
            }
            crate::stream::verify_join_token(session, &r.channel, &r.token)?
        };
        session.set_deadline(&r.channel, expires_at);
        Ok(Some(pb::response::Result::RenewToken(pb::RenewTokenResult { token_expires_at_s: expires_at.unwrap_or(0) })))
    }
}

impl App {
    fn new(
        id: String,
        certificates: Vec<String>,
        ttl_unit: std::time::Duration,
        lock_store: Arc<crate::locks::LockStore>,
        cluster: Option<Arc<Cluster>>,
        metrics: Arc<crate::metrics::Metrics>,
        history: Arc<crate::history::History>,
    ) -> Arc<App> {
        Arc::new(App {
            id,
            ttl_unit,
            certificates,
            users: Mutex::new(HashMap::new()),
            channels: DashMap::with_hasher(Hasher::default()),
            streams: DashMap::with_hasher(Hasher::default()),
            scopes: DashMap::with_hasher(Hasher::default()),
            user_meta_subs: Mutex::new(HashMap::new()),
            lock_owners: Mutex::new(HashMap::new()),
            expired_locks: Mutex::new(HashMap::new()),
            recent_cuts: Mutex::default(),
            lock_store: Arc::downgrade(&lock_store),
            cluster,
            metrics,
            history: Arc::downgrade(&history),
            unstored: DashMap::with_hasher(Hasher::default()),
            unstored_floor: AtomicU64::new(0),
        })
    }

    /// Notes a message not stored in the history published to `channel` at `ms` while the
    /// channel has no entry here (see `unstored`).
    pub(crate) fn note_unstored(&self, channel: &str, ms: u64) {
        if let Some(mut t) = self.unstored.get_mut(channel) {
            *t = (*t).max(ms);
            return;
        }
        if self.unstored.len() >= MAX_UNSTORED_MARKS {
            let newest = self.unstored.iter().map(|e| *e.value()).max().unwrap_or(0);
            self.unstored_floor.fetch_max(newest, Ordering::Relaxed);
            self.unstored.clear();
        }
        self.unstored.insert(channel.to_string(), ms);
    }

    /// When a message not stored in the history was last published to a message channel (0:
    /// not since the server started, as far as it knows).
    pub(crate) fn last_unstored(&self, channel: &str) -> u64 {
        let mark = match self.channels.get(channel) {
            Some(ch) => ch.unstored_ms.load(Ordering::Relaxed),
            None => self.unstored.get(channel).map_or(0, |t| *t),
        };
        mark.max(self.unstored_floor.load(Ordering::Relaxed))
    }

    fn remove_subscriber(&self, channel: &str, session_id: u64) {
        let now_empty = match self.channels.get(channel) {
            Some(ch) => {
                let mut subs = ch.subs.write().unwrap();
                subs.retain(|s| s.session.id != session_id);
                subs.is_empty()
            }
            None => false,
        };
        if now_empty
            && let Some((name, ch)) = self.channels.remove_if(channel, |_, ch| ch.subs.read().unwrap().is_empty())
        {
            let ms = ch.unstored_ms.load(Ordering::Relaxed);
            if ms != 0 {
                self.note_unstored(&name, ms);
            }
        }
    }

    pub(crate) fn user(&self, user_id: &str) -> Option<Arc<Session>> {
        self.users.lock().unwrap().get(user_id).cloned()
    }

    /// The user ids with a session on this node.
    pub(crate) fn local_users(&self) -> Vec<String> {
        self.users.lock().unwrap().keys().map(|u| u.to_string()).collect()
    }
}

impl Engine {
    fn subscribe(&self, session: &Arc<Session>, r: pb::Subscribe) -> Reply {
        validate::channel_name(&r.channel)?;
        if !r.states.is_empty() {
            validate::state_items(r.states.iter().map(|s| (s.key.as_str(), s.value.as_str())))?;
        }
        let opts = SubscribeOpts {
            with_message: r.with_message,
            with_presence: r.with_presence,
            with_metadata: r.with_metadata,
            with_lock: r.with_lock,
            be_quiet: r.be_quiet,
        };
        {
            let mut mine = session.subscriptions.lock().unwrap();
            if !mine.contains_key(&r.channel) && mine.len() >= limits::MAX_SUBSCRIBED_CHANNELS {
                return Err(Violation::new(
                    ErrorCode::CHANNEL_INSTANCE_EXCEED_LIMITATION,
                    format!("at most {} message channels may be subscribed", limits::MAX_SUBSCRIBED_CHANNELS),
                ));
            }
            mine.insert(r.channel.clone(), opts);
        }
        let ch = session
            .app
            .channels
            .entry(r.channel.clone())
            .or_insert_with(|| MsgChannel::new_for(&session.app, &r.channel))
            .clone();
        {
            let mut subs = ch.subs.write().unwrap();
            match subs.iter_mut().find(|s| s.session.id == session.id) {
                // A repeated subscribe updates the options (reference behaviour).
                Some(s) => s.opts = opts,
                None => subs.push(Subscriber { session: session.clone(), opts }),
            }
        }
        crate::scope::enter(self, session, ChannelType::MESSAGE, &r.channel, opts, r.states);
        Ok(None)
    }

    /// `subscribe`, answered once the channel's messages from other nodes also arrive here (in
    /// a cluster, the node's NATS subscription of a channel new to it is confirmed first).
    fn subscribe_answer(&self, session: &Arc<Session>, request_id: u64, r: pb::Subscribe) -> Option<Reply> {
        let channel = r.channel.clone();
        let reply = self.subscribe(session, r);
        if reply.is_err() || self.cluster.is_none() {
            return Some(reply);
        }
        let Some(ch) = session.app.channels.get(&channel).map(|c| c.clone()) else { return Some(reply) };
        if ch.remote.as_ref().is_none_or(|w| w.is_ready()) {
            return Some(reply);
        }
        let session = session.clone();
        let cluster = self.cluster.clone();
        tokio::spawn(async move {
            if let Some(w) = &ch.remote
                && !w.ready(std::time::Duration::from_secs(5)).await
            {
                tracing::warn!(channel, "cluster: the channel's NATS subscription was not confirmed within 5 s");
            }
            // (And every node knows of the subscriber's presence.)
            if let Some(c) = cluster {
                c.barrier(c.notes_sent()).await;
            }
            session.send(response(request_id, Ok(None)));
        });
        None
    }

    fn unsubscribe(&self, session: &Arc<Session>, r: pb::Unsubscribe) -> Reply {
        validate::channel_name(&r.channel)?;
        if session.subscriptions.lock().unwrap().remove(&r.channel).is_none() {
            return Err(Violation::new(
                ErrorCode::CHANNEL_NOT_SUBSCRIBED,
                format!("channel {:?} is not subscribed", r.channel),
            ));
        }
        session.app.remove_subscriber(&r.channel, session.id);
        crate::scope::exit(self, session, &(ChannelType::MESSAGE, r.channel), Ending::Leave);
        Ok(None)
    }
}

/// Sends "will expire" notices and ends what expired, for one session.
pub(crate) async fn token_timer(engine: Arc<Engine>, session: Arc<Session>) {
    let notice = engine.config.token_will_expire_notice.as_millis() as u64;
    loop {
        if session.ended.load(Ordering::Acquire) {
            return;
        }
        let now = now_ms();
        let mut next: Option<u64> = None;
        let mut notices = Vec::new();
        let mut expired = Vec::new();
        {
            let mut d = session.deadlines.lock().unwrap();
            for (key, dl) in d.iter_mut() {
                let expiry_ms = (dl.expires_at_s + 1) * 1000;
                let notice_ms = expiry_ms.saturating_sub(1000).saturating_sub(notice);
                if now >= expiry_ms {
                    expired.push(key.clone());
                    continue;
                }
                if !dl.notified {
                    if now >= notice_ms {
                        dl.notified = true;
                        notices.push((key.clone(), dl.expires_at_s));
                    } else {
                        next = Some(next.map_or(notice_ms, |n: u64| n.min(notice_ms)));
                    }
                }
                next = Some(next.map_or(expiry_ms, |n: u64| n.min(expiry_ms)));
            }
            for key in &expired {
                d.remove(key);
            }
        }
        for (channel, expires_at_s) in notices {
            session.send(frame::encode_server_body(&server_frame::Body::TokenWillExpire(pb::TokenWillExpire {
                channel,
                token_expires_at_s: expires_at_s,
            })));
        }
        for key in expired {
            if key.is_empty() {
                tracing::info!(user = %session.user_id, "login token expired; ending the session");
                session.close_conn(Goodbye::new(
                    ErrorCode::TOKEN_EXPIRED.code(),
                    LinkStateChangeReason::TOKEN_EXPIRED,
                    "the login token expired",
                ));
                engine.end_session(&session, Ending::Leave);
                return;
            }
            crate::stream::expire(&engine, &session, &key);
        }
        let wait = next.map(|n| Duration::from_millis(n.saturating_sub(now_ms())));
        tokio::select! {
            _ = session.deadlines_changed.notified() => {}
            _ = session.wait_ended() => return,
            _ = async {
                match wait {
                    Some(w) => tokio::time::sleep(w).await,
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
    }
}
