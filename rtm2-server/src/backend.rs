//! The server acting for an app's backend, without a connection: the HTTP side's REST calls
//! (a message from a user, metadata, locks, presence queries) run through the very request
//! handlers a client's requests run through — same checks, error codes, revision rules and,
//! in a cluster, the same reach — as a session of the server's own that no one sees: it is not
//! a login (it ends no session of that user id), it is never present anywhere, and what it is
//! sent goes to its caller instead of a connection.
//!
//! Also here: what the console and the REST API read of the engine's state (users online,
//! channels and their counts) and the kicking of a user.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use rtm2_proto::enums::{ChannelType, LinkStateChangeReason};
use rtm2_proto::frame;
use rtm2_proto::pb::{self, client_frame, server_frame};
use rtm2_proto::validate::{self, Violation};
use rtm2_proto::{ErrorCode, limits};

use crate::engine::{App, Ending, Engine};
use crate::session::{Goodbye, Session, SessionParams};

/// Longest a backend call waits for an answer the handler gives later.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The request id of a backend session's one call.
const REQUEST_ID: u64 = 1;

impl Engine {
    /// The app `app_id` as a REST request names it: 10001-style errors for an id that is not
    /// well formed or not served here (in development mode every well-formed id is served).
    pub(crate) fn backend_app(&self, app_id: &str) -> Result<Arc<App>, Violation> {
        validate::app_id(app_id)?;
        if let Some(c) = &self.cluster
            && !c.ready()
        {
            return Err(Violation::new(
                ErrorCode::LOGIN_NO_SERVER_RESOURCES,
                format!("node {} is not connected to the cluster (NATS)", c.node_id),
            ));
        }
        self.app(app_id)
    }

    /// A session of the server's own acting as `user` of `app` (see the module's words); what
    /// it is sent arrives on the returned receiver (at most `capacity` frames wait; more are
    /// dropped).
    pub(crate) fn backend_session(
        &self,
        app: &Arc<App>,
        user: &str,
        capacity: usize,
    ) -> Result<(Arc<Session>, mpsc::Receiver<Bytes>), Violation> {
        validate::user_id(user)?;
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let session = Session::new(SessionParams {
            id: self.next_session_id(),
            user_id: Arc::from(user),
            app: app.clone(),
            receive_own: false,
            heartbeat_s: limits::MAX_HEARTBEAT_INTERVAL_S,
            presence_timeout_s: limits::MIN_PRESENCE_TIMEOUT_S,
            replay_max_frames: 1,
            replay_max_bytes: 0,
            rate_limits: crate::RateLimits::unlimited(),
            sink: Some(tx),
        });
        Ok((session, rx))
    }

    /// Runs one request as `user` of `app` and returns its answer.
    pub(crate) async fn backend_call(
        self: &Arc<Self>,
        app: &Arc<App>,
        user: &str,
        body: client_frame::Body,
    ) -> Result<Option<pb::response::Result>, Violation> {
        let (session, mut rx) = self.backend_session(app, user, 16)?;
        let operation = crate::metrics::operation(&body);
        let start = std::time::Instant::now();
        let timeout_code = match operation {
            20..=25 => ErrorCode::LOCK_OPERATION_TIMEOUT,
            11..=15 => ErrorCode::PRESENCE_OPERATION_TIMEOUT,
            _ => ErrorCode::STORAGE_OPERATION_TIMEOUT,
        };
        let reply = match self.handle(&session, REQUEST_ID, body) {
            Some(reply) => reply,
            None => wait_response(&mut rx, timeout_code).await,
        };
        self.metrics.request(operation, start.elapsed(), reply.is_err());
        // It entered nothing that lasts; this only makes sure.
        self.end_session(&session, Ending::Leave);
        reply
    }

    /// Ends the session of `user` (on whichever node of the cluster it is) as the server's
    /// decision: its client is told KICKED_OUT_BY_SERVER with `reason` and does not reconnect
    /// by itself. False when the user is online nowhere.
    pub(crate) fn kick(&self, app: &Arc<App>, user: &str, reason: &str) -> bool {
        if self.kick_here(&app.id, user, reason) {
            return true;
        }
        self.cluster.as_ref().is_some_and(|c| c.kick(&app.id, user, reason))
    }

    /// `kick` on this node only.
    pub(crate) fn kick_here(&self, app_id: &str, user: &str, reason: &str) -> bool {
        let Some(session) = self.app_if_known(app_id).and_then(|a| a.user(user)) else { return false };
        tracing::info!(app = %app_id, user, reason, "kicked out by the server");
        session.close_conn(Goodbye::new(
            ErrorCode::LOGIN_REJECTED.code(),
            LinkStateChangeReason::KICKED_OUT_BY_SERVER,
            format!("kicked out by the server: {reason}"),
        ));
        self.end_session(&session, Ending::Leave);
        true
    }

    /// The users of `app` online now, on every node: (user, node id; "" for a single server),
    /// sorted by user id.
    pub(crate) fn online_users(&self, app: &App) -> Vec<(String, String)> {
        let node = self.node_id();
        let mut users: Vec<(String, String)> = app.local_users().into_iter().map(|u| (u, node.clone())).collect();
        if let Some(c) = &self.cluster {
            users.extend(c.users_of(&app.id));
        }
        users.sort();
        users.dedup_by(|a, b| a.0 == b.0);
        users
    }

    /// The node `user` of `app` is online on (`Some("")` for a single server), if any.
    pub(crate) fn user_node(&self, app: &App, user: &str) -> Option<String> {
        if app.user(user).is_some() {
            return Some(self.node_id());
        }
        self.cluster.as_ref().and_then(|c| c.node_of(&app.id, user))
    }
}

/// Waits for the response to the backend call (other frames the session is sent meanwhile,
/// such as a lock event, are not its answer).
async fn wait_response(
    rx: &mut mpsc::Receiver<Bytes>,
    timeout_code: ErrorCode,
) -> Result<Option<pb::response::Result>, Violation> {
    let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
    loop {
        let body = match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(body)) => body,
            Ok(None) | Err(_) => {
                return Err(Violation::new(timeout_code, "the server did not answer the call in time"));
            }
        };
        let Ok(f) = frame::decode_server(body) else { continue };
        if let Some(server_frame::Body::Response(r)) = f.body
            && r.request_id == REQUEST_ID
        {
            if r.code == 0 {
                return Ok(r.result);
            }
            return Err(Violation::new(ErrorCode::from_u32(r.code).unwrap_or(ErrorCode::INVALID_PARAMETER), r.reason));
        }
    }
}

/// What the console shows of one channel.
pub(crate) struct ChannelView {
    pub channel_type: ChannelType,
    pub name: String,
    /// Message channel: clients subscribed on this node. Stream channel: members on every node.
    pub subscribers: usize,
    /// Users present and visible, on every node.
    pub occupancy: usize,
    /// Messages published to it while it had subscribers here (message channels).
    pub messages: u64,
}

impl App {
    /// The app's channels known to this node (message channels with subscribers, stream
    /// channels with members, channels with presence or locks), sorted by type and name;
    /// at most `max`.
    pub(crate) fn channel_views(&self, max: usize) -> Vec<ChannelView> {
        type Views = std::collections::BTreeMap<(u32, String), ChannelView>;
        fn view<'a>(out: &'a mut Views, max: usize, t: ChannelType, name: &str) -> Option<&'a mut ChannelView> {
            let key = (t as u32, name.to_string());
            if !out.contains_key(&key) && out.len() >= max {
                return None;
            }
            Some(out.entry(key).or_insert_with(|| ChannelView {
                channel_type: t,
                name: name.to_string(),
                subscribers: 0,
                occupancy: 0,
                messages: 0,
            }))
        }
        let mut out = Views::new();
        for ch in self.channels.iter() {
            if let Some(v) = view(&mut out, max, ChannelType::MESSAGE, ch.key()) {
                // (The console's quiet tail is not a subscriber to show.)
                v.subscribers = ch.subs.read().unwrap().iter().filter(|s| !s.session.is_backend()).count();
                v.messages = ch.messages.load(Ordering::Relaxed);
            }
        }
        for s in self.streams.iter() {
            if let Some(v) = view(&mut out, max, ChannelType::STREAM, s.key()) {
                v.subscribers = s.value().lock().unwrap().user_count();
            }
        }
        for s in self.scopes.iter() {
            let (t, name) = s.key();
            if let Some(v) = view(&mut out, max, *t, name) {
                v.occupancy = s.value().lock().unwrap().occupancy();
            }
        }
        out.into_values().collect()
    }
}
