//! The client: login state machine, reconnect with restore, and message-channel operations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::future::Either;
use tokio::sync::{mpsc, oneshot, watch};

use rtm2_proto::enums::*;
use rtm2_proto::fastpath::PublishRef;
use rtm2_proto::pb::{self, client_frame};
use rtm2_proto::{ErrorCode, limits, now_ms, validate};

use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::events::{EventHub, EventReceiver, Subscription};
use crate::link::{self, Inbound, Link, LinkEnd};
use crate::runtime::{Op, runtime};
use crate::stream_channel::{StreamChannel, StreamInner};
use crate::types::*;

/// Returns `Op::ready(Err(e))` from an operation when a check fails.
macro_rules! try_op {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Op::ready(Err(e)),
        }
    };
}
pub(crate) use try_op;

/// What operations see of the connection.
#[derive(Clone)]
pub(crate) enum Slot {
    /// Not logged in (or failed): operations fail with this error.
    Down(Error),
    /// Logged in, (re)connecting: operations wait (within their timeout).
    Connecting,
    /// Connected.
    Up(Arc<Link>),
}

/// What the client restores after a reconnect.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cache {
    pub channels: BTreeMap<String, SubscribeOptions>,
    pub streams: BTreeMap<String, StreamCache>,
    /// This client's presence state per channel: set on the server while present, kept here
    /// (and sent on subscribe/join) before that and for a restore.
    pub states: BTreeMap<(ChannelType, String), BTreeMap<String, String>>,
    /// Users whose metadata this client subscribed to.
    pub user_metadata: BTreeSet<String>,
}

impl Cache {
    /// Whether this client is present (subscribed/joined with presence) in a channel.
    pub(crate) fn present(&self, key: &(ChannelType, String)) -> bool {
        match key.0 {
            ChannelType::MESSAGE => self.channels.get(&key.1).is_some_and(|o| o.with_presence),
            ChannelType::STREAM => self.streams.get(&key.1).is_some_and(|s| s.opts.with_presence),
            _ => false,
        }
    }

    /// The cached state to send when entering a channel with these options.
    pub(crate) fn entry_states(&self, key: &(ChannelType, String), with_presence: bool) -> Vec<pb::StateItem> {
        match self.states.get(key) {
            Some(s) if with_presence => crate::presence::to_items(s),
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct StreamCache {
    pub opts: JoinOptions,
    pub topics: BTreeMap<String, JoinTopicOptions>,
    pub subscriptions: BTreeMap<String, BTreeSet<String>>,
}

pub(crate) struct State {
    pub link_state: LinkState,
    token: String,
    generation: u64,
    supervisor: Option<tokio::task::AbortHandle>,
    link: Option<Arc<Link>>,
    pub cache: Cache,
}

fn duration_us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub(crate) struct Inner {
    pub config: Mutex<ClientConfig>,
    /// `config.request_timeout` in µs, read without the lock (every publish needs it).
    request_timeout_us: AtomicU64,
    pub hub: Arc<EventHub>,
    pub state: Mutex<State>,
    slot: watch::Sender<Slot>,
    streams: Mutex<HashMap<String, Arc<StreamInner>>>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    session: Arc<link::SessionState>,
    /// While restoring after a reconnect that could not resume, events are held here so that
    /// the CONNECTED event (saying what may have been missed) comes before anything newer.
    held: Mutex<Option<Vec<Event>>>,
    holding: AtomicBool,
    /// Requests queued in `outbox` and not yet taken by the pump.
    queued: Arc<AtomicUsize>,
}

/// A request waiting to be sent, in call order.
struct Outgoing {
    op: &'static str,
    body: client_frame::Body,
    reply: link::Reply,
    deadline: tokio::time::Instant,
}

/// Sends queued requests in order over whichever link is up; waits while (re)connecting.
async fn pump(mut rx: mpsc::UnboundedReceiver<Outgoing>, mut slot: watch::Receiver<Slot>, queued: Arc<AtomicUsize>) {
    while let Some(out) = rx.recv().await {
        // Counted as waiting until it is handed to a link (or given up), not just dequeued.
        let _waiting = Dequeued(&queued);
        if out.reply.is_closed() {
            continue; // the caller gave up
        }
        loop {
            let current = slot.borrow_and_update().clone();
            match current {
                Slot::Down(e) => {
                    let _ = out.reply.send(Err(e.with_op(out.op)));
                    break;
                }
                Slot::Up(l) if !l.is_ended() => {
                    l.submit(out.op, out.body, out.reply).await;
                    break;
                }
                _ => {}
            }
            tokio::select! {
                changed = slot.changed() => if changed.is_err() { return },
                // The caller's own timeout reports it; stop holding up the queue.
                _ = tokio::time::sleep_until(out.deadline) => break,
            }
        }
    }
}

/// Decrements the count of requests waiting to be sent when dropped.
struct Dequeued<'a>(&'a AtomicUsize);

impl Drop for Dequeued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

struct DropGuard(Arc<Inner>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// An rtm2 client: one user of one app. Cheap to clone; the client shuts down (closing its
/// connection and ending every receiver) when the last clone is dropped.
///
/// Every operation is `async`, runs on the SDK's own runtime (so it can be awaited from any
/// executor), applies the request timeout, and completes exactly once with a result or an
/// [`Error`] carrying the RTM code.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    _guard: Arc<DropGuard>,
    timeout: Option<Duration>,
}

fn not_logged_in(reason: &str) -> Error {
    Error::new(ErrorCode::NOT_LOGIN, "request", reason)
}

impl Client {
    /// Makes a client. Checks the app id (10003) and user id (10006); connects nothing until
    /// [`login`](Self::login).
    pub fn new(config: ClientConfig) -> Result<Client> {
        if crate::runtime::forked() {
            return Err(crate::runtime::forked_error("new"));
        }
        validate::app_id(&config.app_id).map_err(|v| Error::from_violation("new", v))?;
        validate::user_id(&config.user_id).map_err(|v| Error::from_violation("new", v))?;
        crate::logging::init(&config);
        let (slot, _) = watch::channel(Slot::Down(not_logged_in("call login first")));
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        runtime().spawn(pump(outbox_rx, slot.subscribe(), queued.clone()));
        let inner = Arc::new(Inner {
            request_timeout_us: AtomicU64::new(duration_us(config.request_timeout)),
            config: Mutex::new(config),
            hub: Arc::new(EventHub::default()),
            state: Mutex::new(State {
                link_state: LinkState::IDLE,
                token: String::new(),
                generation: 0,
                supervisor: None,
                link: None,
                cache: Cache::default(),
            }),
            slot,
            streams: Mutex::new(HashMap::new()),
            outbox,
            session: Arc::default(),
            held: Mutex::new(None),
            holding: AtomicBool::new(false),
            queued,
        });
        Ok(Client { _guard: Arc::new(DropGuard(inner.clone())), inner, timeout: None })
    }

    /// A handle to the same client whose operations use `timeout` instead of the configured
    /// request timeout. An operation that runs out of time fails with its RTM timeout code.
    pub fn with_timeout(&self, timeout: Duration) -> Client {
        Client { timeout: Some(timeout), ..self.clone() }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout.unwrap_or_else(|| self.inner.request_timeout())
    }

    /// The timeout given by `with_timeout`, if any.
    pub(crate) fn explicit_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The presence service (whoNow, whereNow, user state).
    pub fn presence(&self) -> crate::presence::Presence {
        crate::presence::Presence { client: self.clone() }
    }

    /// The storage service (channel and user metadata).
    pub fn storage(&self) -> crate::storage::Storage {
        crate::storage::Storage { client: self.clone() }
    }

    /// The lock service.
    pub fn lock(&self) -> crate::lock::Locks {
        crate::lock::Locks { client: self.clone() }
    }

    /// The user id.
    pub fn user_id(&self) -> String {
        self.inner.config.lock().unwrap().user_id.clone()
    }

    /// The current state of the message connection.
    pub fn link_state(&self) -> LinkState {
        self.inner.state.lock().unwrap().link_state
    }

    /// A receiver of every event of this client, from now on.
    pub fn events(&self) -> EventReceiver {
        let cap = self.inner.config.lock().unwrap().event_queue_capacity;
        self.inner.hub.listener(cap)
    }

    /// Applies tuning parameters (a JSON object); unknown keys fail with 10014. See
    /// [`ClientConfig::set_parameters`].
    pub fn set_parameters(&self, json: &str) -> Result<()> {
        let mut config = self.inner.config.lock().unwrap();
        config.set_parameters(json)?;
        self.inner.request_timeout_us.store(duration_us(config.request_timeout), Ordering::Relaxed);
        crate::logging::init(&config);
        Ok(())
    }

    /// The tuning parameters as a JSON object.
    pub fn get_parameters(&self) -> String {
        self.inner.config.lock().unwrap().parameters().to_string()
    }

    /// Logs in with an RTM token (empty in development mode). Completes when connected, or
    /// with the server's rejection (10005, 10009, 10016, ...), or 10011 on timeout. A login
    /// while another is in progress cancels the earlier one (10023); a login while connected
    /// fails with 10017.
    pub fn login(&self, token: &str) -> Op<Result<()>> {
        let t = self.timeout();
        let (generation, rx) = try_op!(self.inner.begin_login(token.to_string()));
        let inner = self.inner.clone();
        Op::spawn(async move { inner.finish_login(generation, rx, t).await })
    }

    /// Logs out: ends the session, every subscription and stream channel. Operations in flight
    /// complete with an error. Never fails.
    pub fn logout(&self) -> Op<Result<()>> {
        if crate::runtime::forked() {
            return Op::ready(Err(crate::runtime::forked_error("logout")));
        }
        let inner = self.inner.clone();
        Op::spawn(async move { inner.logout().await })
    }

    /// Renews the login token.
    pub fn renew_token(&self, token: &str) -> Op<Result<()>> {
        let op = "renew_token";
        if token.len() > rtm2_proto::token::MAX_TOKEN_LEN {
            return Op::ready(Err(Error::new(ErrorCode::INVALID_TOKEN, op, "token is too long")));
        }
        let body = client_frame::Body::RenewToken(pb::RenewToken { token: token.to_string(), channel: String::new() });
        let reply = self.inner.submit(op, ErrorCode::RENEW_TOKEN_TIMEOUT, body, self.timeout());
        let (inner, token) = (self.inner.clone(), token.to_string());
        Op::spawn(async move {
            reply.await?;
            inner.state.lock().unwrap().token = token;
            Ok(())
        })
    }

    /// Subscribes to a message channel and returns the stream of its messages. Subscribing
    /// again updates the options (and returns another stream).
    pub fn subscribe(&self, channel: &str, options: SubscribeOptions) -> Op<Result<Subscription>> {
        let op = "subscribe";
        try_op!(validate::channel_name(channel).map_err(|v| Error::from_violation(op, v)));
        {
            let st = self.inner.state.lock().unwrap();
            if !st.cache.channels.contains_key(channel) && st.cache.channels.len() >= limits::MAX_SUBSCRIBED_CHANNELS {
                return Op::ready(Err(Error::new(
                    ErrorCode::CHANNEL_INSTANCE_EXCEED_LIMITATION,
                    op,
                    format!("at most {} message channels may be subscribed", limits::MAX_SUBSCRIBED_CHANNELS),
                )));
            }
        }
        // Registered before the request so no message after the reply can be missed.
        let cap = self.inner.config.lock().unwrap().event_queue_capacity;
        let sub = self.inner.hub.subscription(channel, cap);
        let states = self
            .inner
            .state
            .lock()
            .unwrap()
            .cache
            .entry_states(&(ChannelType::MESSAGE, channel.to_string()), options.with_presence);
        let reply = self.inner.submit(
            op,
            ErrorCode::CHANNEL_SUBSCRIBE_TIMEOUT,
            subscribe_body(channel, &options, states),
            self.timeout(),
        );
        let (inner, ch) = (self.inner.clone(), channel.to_string());
        Op::spawn(async move {
            reply.await?;
            inner.state.lock().unwrap().cache.channels.insert(ch, options);
            Ok(sub)
        })
    }

    /// Unsubscribes from a message channel (11002 if not subscribed); its streams end.
    pub fn unsubscribe(&self, channel: &str) -> Op<Result<()>> {
        let op = "unsubscribe";
        try_op!(validate::channel_name(channel).map_err(|v| Error::from_violation(op, v)));
        let body = client_frame::Body::Unsubscribe(pb::Unsubscribe { channel: channel.to_string() });
        let reply = self.inner.submit(op, ErrorCode::CHANNEL_UNSUBSCRIBE_FAILED, body, self.timeout());
        let (inner, ch) = (self.inner.clone(), channel.to_string());
        Op::spawn(async move {
            let r = reply.await;
            if r.is_ok() || r.as_ref().is_err_and(|e| e.code == ErrorCode::CHANNEL_NOT_SUBSCRIBED) {
                let mut st = inner.state.lock().unwrap();
                st.cache.channels.remove(&ch);
                // Leaving a channel deletes this user's state there (reference behaviour).
                st.cache.states.remove(&(ChannelType::MESSAGE, ch.clone()));
                drop(st);
                inner.hub.close_channel(&ch);
            }
            r.map(|_| ())
        })
    }

    /// Publishes to a message channel, or to a user (`PublishOptions::user()`): 11033 when
    /// that user is offline. Publishes are sent in call order.
    pub fn publish(&self, channel: &str, payload: impl Into<Payload>, options: PublishOptions) -> Op<Result<()>> {
        let op = "publish";
        let payload = payload.into();
        let v = |r: std::result::Result<(), validate::Violation>| r.map_err(|v| Error::from_violation(op, v));
        match options.channel_type {
            ChannelType::MESSAGE => try_op!(v(validate::channel_name(channel))),
            ChannelType::USER => try_op!(v(validate::user_id(channel))),
            other => {
                return Op::ready(Err(Error::new(
                    ErrorCode::INVALID_CHANNEL_TYPE,
                    op,
                    format!("publish takes MESSAGE or USER, not {}; use StreamChannel::publish_topic", other.name()),
                )));
            }
        }
        try_op!(v(validate::message(&payload.data, payload.message_type as u32, &options.custom_type)));
        let parts = PublishRef {
            channel,
            channel_type: options.channel_type as u32,
            message_type: payload.message_type as u32,
            payload: &payload.data,
            custom_type: &options.custom_type,
            store_in_history: options.store_in_history,
        };
        let code = ErrorCode::CHANNEL_PUBLISH_MESSAGE_TIMEOUT;
        let timeout = self.timeout();
        if let Some(wait) = self.inner.try_publish_now(op, |link| link.try_publish_ref(op, &parts, code, timeout)) {
            return wait;
        }
        let body = client_frame::Body::Publish(pb::Publish {
            channel: channel.to_string(),
            channel_type: parts.channel_type,
            message_type: parts.message_type,
            payload: payload.data.clone(),
            custom_type: options.custom_type.clone(),
            store_in_history: options.store_in_history,
        });
        self.inner.publish(op, code, body, timeout)
    }

    /// The stream channel of this name; the same handle for the same name. 10008 for an
    /// invalid name.
    pub fn stream_channel(&self, name: &str) -> Result<StreamChannel> {
        validate::channel_name(name).map_err(|v| Error::from_violation("stream_channel", v))?;
        let mut map = self.inner.streams.lock().unwrap();
        let inner = map
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(StreamInner { name: name.to_string(), client: Arc::downgrade(&self.inner) }))
            .clone();
        Ok(StreamChannel { inner, timeout: self.timeout })
    }

    /// Channels this client is subscribed to.
    pub fn subscribed_channels(&self) -> Vec<String> {
        self.inner.state.lock().unwrap().cache.channels.keys().cloned().collect()
    }
}

pub(crate) fn subscribe_body(channel: &str, o: &SubscribeOptions, states: Vec<pb::StateItem>) -> client_frame::Body {
    client_frame::Body::Subscribe(pb::Subscribe {
        channel: channel.to_string(),
        with_message: o.with_message,
        with_presence: o.with_presence,
        with_metadata: o.with_metadata,
        with_lock: o.with_lock,
        be_quiet: o.be_quiet,
        states,
    })
}

pub(crate) fn join_body(channel: &str, o: &JoinOptions, states: Vec<pb::StateItem>) -> client_frame::Body {
    client_frame::Body::StreamJoin(pb::StreamJoin {
        channel: channel.to_string(),
        token: o.token.clone(),
        with_presence: o.with_presence,
        with_metadata: o.with_metadata,
        with_lock: o.with_lock,
        be_quiet: o.be_quiet,
        states,
    })
}

pub(crate) fn join_topic_body(channel: &str, topic: &str, o: &JoinTopicOptions) -> client_frame::Body {
    client_frame::Body::JoinTopic(pb::JoinTopic {
        channel: channel.to_string(),
        topic: topic.to_string(),
        qos: o.qos as u32,
        priority: o.priority as u32,
        meta: o.meta.clone(),
        sync_with_media: o.sync_with_media,
    })
}

pub(crate) fn subscribe_topic_body(channel: &str, topic: &str, users: Vec<String>) -> client_frame::Body {
    client_frame::Body::SubscribeTopic(pb::SubscribeTopic {
        channel: channel.to_string(),
        topic: topic.to_string(),
        users,
    })
}

enum EndKind {
    Fatal(LinkStateChangeReason, String),
    Transient(LinkOperation, LinkStateChangeReason, String),
}

fn classify(end: LinkEnd) -> EndKind {
    match end.goodbye {
        Some((_, reason, text)) => match reason {
            LinkStateChangeReason::CONNECTION_ERROR
            | LinkStateChangeReason::KEEP_ALIVE_TIMEOUT
            | LinkStateChangeReason::UNKNOWN => EndKind::Transient(LinkOperation::SERVER_REJECT, reason, text),
            _ => EndKind::Fatal(reason, text),
        },
        None if end.keepalive_timeout => {
            EndKind::Transient(LinkOperation::HEARTBEAT_TIMEOUT, LinkStateChangeReason::KEEP_ALIVE_TIMEOUT, end.detail)
        }
        None => EndKind::Transient(LinkOperation::NETWORK_CHANGE, LinkStateChangeReason::CONNECTION_ERROR, end.detail),
    }
}

impl Inner {
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_micros(self.request_timeout_us.load(Ordering::Relaxed))
    }

    /// Queues a request now (so requests go out in call order) and returns the future of its
    /// response: the request waits (within `timeout`) for a connected link; `timeout_code` is
    /// the operation's RTM timeout code.
    pub(crate) fn submit(
        &self,
        op: &'static str,
        timeout_code: ErrorCode,
        body: client_frame::Body,
        timeout: Duration,
    ) -> impl Future<Output = Result<pb::Response>> + Send + 'static {
        if crate::runtime::forked() {
            return Either::Right(std::future::ready(Err(crate::runtime::forked_error(op))));
        }
        let (reply, rx) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + timeout;
        // Fast path: connected and nothing waiting in the queue, so sending now keeps the call
        // order; otherwise the request joins the queue behind the others.
        let (body, reply) = match self.send_now(op, body, reply) {
            Ok(()) => return Either::Left(Self::await_reply(op, timeout_code, timeout, deadline, rx)),
            Err(back) => back,
        };
        let max = self.config.lock().unwrap().max_queued_requests;
        let waiting = self.queued.fetch_add(1, Ordering::AcqRel);
        let queued = if waiting >= max {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            Err(Error::new(
                ErrorCode::NOT_CONNECTED,
                op,
                format!("{waiting} requests are already waiting to be sent (the limit is {max}); not connected?"),
            ))
        } else if self.outbox.send(Outgoing { op, body, reply, deadline }).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            Err(Error::new(ErrorCode::INSTANCE_ALREADY_RELEASED, op, "the client was dropped"))
        } else {
            Ok(())
        };
        match queued {
            Ok(()) => Either::Left(Self::await_reply(op, timeout_code, timeout, deadline, rx)),
            Err(e) => Either::Right(std::future::ready(Err(e))),
        }
    }

    /// Sends a publish (or topic publish) and returns the wait for its acknowledgement. When the
    /// link is up and nothing is queued it goes straight to the connection and is awaited on
    /// the session's acknowledgements (no channel or task per publish); otherwise it takes the
    /// queue like any request.
    pub(crate) fn publish(
        &self,
        op: &'static str,
        timeout_code: ErrorCode,
        body: client_frame::Body,
        timeout: Duration,
    ) -> Op<Result<()>> {
        let mut body = Some(body);
        let fast = self.try_publish_now(op, |link| {
            match link.try_publish(op, body.take().expect("once"), timeout_code, timeout) {
                Ok(wait) => Some(wait),
                Err(back) => {
                    body = Some(back);
                    None
                }
            }
        });
        if let Some(op) = fast {
            return op;
        }
        let reply = self.submit(op, timeout_code, body.take().expect("handed back"), timeout);
        Op::lazy(async move { reply.await.map(|_| ()) })
    }

    /// Runs `send` on the link if it is up and nothing is queued before it; the wait for the
    /// acknowledgement of what it sent, if it sent it. A forked child gets its error at once.
    pub(crate) fn try_publish_now(
        &self,
        op: &'static str,
        send: impl FnOnce(&Link) -> Option<link::PubWait>,
    ) -> Option<Op<Result<()>>> {
        if crate::runtime::forked() {
            return Some(Op::ready(Err(crate::runtime::forked_error(op))));
        }
        if self.queued.load(Ordering::Acquire) != 0 {
            return None;
        }
        let slot = self.slot.borrow();
        let Slot::Up(link) = &*slot else { return None };
        send(link).map(Op::published)
    }

    /// Sends a request at once if the link is up and no earlier request is waiting.
    // The "error" is the request handed back to take the queue instead; no boxing on the hot path.
    #[allow(clippy::result_large_err)]
    fn send_now(
        &self,
        op: &'static str,
        body: client_frame::Body,
        reply: link::Reply,
    ) -> std::result::Result<(), (client_frame::Body, link::Reply)> {
        if self.queued.load(Ordering::Acquire) != 0 {
            return Err((body, reply));
        }
        let link = match &*self.slot.borrow() {
            Slot::Up(l) => l.clone(),
            _ => return Err((body, reply)),
        };
        link.try_submit(op, body, reply)
    }

    async fn await_reply(
        op: &'static str,
        timeout_code: ErrorCode,
        timeout: Duration,
        deadline: tokio::time::Instant,
        rx: oneshot::Receiver<Result<pb::Response>>,
    ) -> Result<pb::Response> {
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::new(ErrorCode::NOT_CONNECTED, op, "the request was dropped before it was sent")),
            Err(_) => Err(Error::timeout(timeout_code, op, format!("no reply within {} ms", timeout.as_millis()))),
        }
    }

    /// Emits events in order (see `emit`).
    pub(crate) fn emit_batch(&self, evs: Vec<Event>) {
        if self.holding.load(Ordering::Acquire) {
            for ev in evs {
                self.emit(ev);
            }
        } else {
            self.hub.emit_batch_owned(evs);
        }
    }

    /// Emits an event, or holds it while a restore is in progress.
    pub(crate) fn emit(&self, ev: Event) {
        if !self.holding.load(Ordering::Acquire) {
            return self.hub.emit(ev);
        }
        let mut held = self.held.lock().unwrap();
        match held.as_mut() {
            Some(v) => v.push(ev),
            None => {
                drop(held);
                self.hub.emit(ev)
            }
        }
    }

    pub(crate) fn emit_link_state(
        &self,
        generation: Option<u64>,
        current: LinkState,
        operation: LinkOperation,
        reason: LinkStateChangeReason,
        text: String,
        unrestored: Vec<String>,
    ) {
        self.emit_link_state_ex(generation, current, operation, reason, text, unrestored, false)
    }

    /// Emits a MESSAGE link-state event; `is_resumed` tells after a reconnect whether the
    /// session resumed without loss.
    /// `generation`: the login this change belongs to; a change of an older login (a supervisor
    /// finishing after a newer login began) is dropped, so it cannot overwrite the newer state.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn emit_link_state_ex(
        &self,
        generation: Option<u64>,
        current: LinkState,
        operation: LinkOperation,
        reason: LinkStateChangeReason,
        text: String,
        unrestored: Vec<String>,
        is_resumed: bool,
    ) {
        let (previous, affected) = {
            let mut st = self.state.lock().unwrap();
            if generation.is_some_and(|g| g != st.generation) {
                return;
            }
            let prev = st.link_state;
            st.link_state = current;
            let affected = st.cache.channels.keys().chain(st.cache.streams.keys()).cloned().collect();
            (prev, affected)
        };
        tracing::debug!(?previous, ?current, ?reason, %text, "link state");
        self.hub.emit(Event::LinkState(Arc::new(LinkStateEvent {
            current,
            previous,
            service_type: ServiceType::MESSAGE,
            operation,
            reason,
            reason_text: text,
            channel: String::new(),
            affected_channels: affected,
            unrestored_channels: unrestored,
            is_resumed,
            timestamp_ms: now_ms(),
        })));
    }

    /// Starts holding events (see `held`).
    fn hold(&self) {
        let mut held = self.held.lock().unwrap();
        if held.is_none() {
            *held = Some(Vec::new());
        }
        self.holding.store(true, Ordering::Release);
    }

    /// Delivers the held events, in order, and stops holding.
    fn release(&self) {
        let mut held = self.held.lock().unwrap();
        // Delivered under the lock so that nothing newer overtakes them.
        if let Some(events) = held.take() {
            for ev in events {
                self.hub.emit(ev);
            }
        }
        self.holding.store(false, Ordering::Release);
    }

    pub(crate) fn emit_stream_state(
        &self,
        channel: &str,
        current: LinkState,
        previous: LinkState,
        operation: LinkOperation,
        reason: LinkStateChangeReason,
        text: String,
    ) {
        self.emit(Event::LinkState(Arc::new(LinkStateEvent {
            current,
            previous,
            service_type: ServiceType::STREAM,
            operation,
            reason,
            reason_text: text,
            channel: channel.to_string(),
            affected_channels: vec![channel.to_string()],
            unrestored_channels: Vec::new(),
            is_resumed: false,
            timestamp_ms: now_ms(),
        })));
    }

    /// Starts a login at call time, so that operations issued right after `login()` wait for
    /// it instead of failing with NOT_LOGIN.
    fn begin_login(self: &Arc<Self>, token: String) -> Result<(u64, oneshot::Receiver<Result<()>>)> {
        let op = "login";
        if crate::runtime::forked() {
            return Err(crate::runtime::forked_error(op));
        }
        if token.len() > rtm2_proto::token::MAX_TOKEN_LEN {
            return Err(Error::new(ErrorCode::INVALID_TOKEN, op, "token is too long"));
        }
        let (tx, rx) = oneshot::channel();
        let generation = {
            let mut st = self.state.lock().unwrap();
            match st.link_state {
                LinkState::CONNECTED | LinkState::DISCONNECTED | LinkState::SUSPENDED => {
                    return Err(Error::new(
                        ErrorCode::DUPLICATE_OPERATION,
                        op,
                        "already logged in; call logout before logging in again",
                    ));
                }
                _ => {}
            }
            // A login in progress is cancelled (its caller gets LOGIN_CANCELED).
            if let Some(s) = st.supervisor.take() {
                s.abort();
            }
            if let Some(l) = st.link.take() {
                l.close("login cancelled");
            }
            st.generation += 1;
            st.token = token;
            st.cache = Cache::default();
            // A new login starts a new session: nothing of an earlier one is resumed.
            self.session.reset("a new login started");
            st.generation
        };
        self.slot.send_replace(Slot::Connecting);
        self.emit_link_state(
            Some(generation),
            LinkState::CONNECTING,
            LinkOperation::LOGIN,
            LinkStateChangeReason::LOGIN,
            String::new(),
            vec![],
        );
        let mut st = self.state.lock().unwrap();
        if st.generation == generation {
            let handle = runtime().spawn(supervise(self.clone(), generation, tx));
            st.supervisor = Some(handle.abort_handle());
        }
        Ok((generation, rx))
    }

    async fn finish_login(
        self: Arc<Self>,
        generation: u64,
        rx: oneshot::Receiver<Result<()>>,
        timeout: Duration,
    ) -> Result<()> {
        let op = "login";
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => {
                Err(Error::new(ErrorCode::LOGIN_CANCELED, op, "a newer login or a logout cancelled this login"))
            }
            Err(_) => {
                let current = {
                    let mut st = self.state.lock().unwrap();
                    if st.generation == generation {
                        if let Some(s) = st.supervisor.take() {
                            s.abort();
                        }
                        true
                    } else {
                        false
                    }
                };
                let e = Error::timeout(
                    ErrorCode::LOGIN_TIMEOUT,
                    op,
                    format!("not connected within {} ms", timeout.as_millis()),
                );
                if current {
                    self.fail(
                        Some(generation),
                        LinkStateChangeReason::LOGIN_TIMEOUT,
                        LinkOperation::LOGIN,
                        e.reason.clone(),
                    );
                }
                Err(e)
            }
        }
    }

    /// Enters FAILED for login `generation` (None: whatever login is current): no more
    /// reconnects; operations fail with NOT_LOGIN until the next login. Does nothing if a newer
    /// login began meanwhile. The check and the state change happen under one lock, so an old
    /// supervisor finishing late cannot fail a newer login.
    fn fail(&self, generation: Option<u64>, reason: LinkStateChangeReason, operation: LinkOperation, text: String) {
        let (previous, affected) = {
            let mut st = self.state.lock().unwrap();
            if generation.is_some_and(|g| g != st.generation) {
                return;
            }
            st.supervisor = None;
            if let Some(l) = st.link.take() {
                l.close("failed");
            }
            let previous = st.link_state;
            st.link_state = LinkState::FAILED;
            self.slot.send_replace(Slot::Down(Error::new(
                ErrorCode::NOT_LOGIN,
                "request",
                format!("the client is not logged in (link failed: {}: {text})", reason.name()),
            )));
            let affected = st.cache.channels.keys().chain(st.cache.streams.keys()).cloned().collect();
            (previous, affected)
        };
        self.session.reset("the client is not logged in");
        self.hub.emit(Event::LinkState(Arc::new(LinkStateEvent {
            current: LinkState::FAILED,
            previous,
            service_type: ServiceType::MESSAGE,
            operation,
            reason,
            reason_text: text,
            channel: String::new(),
            affected_channels: affected,
            unrestored_channels: Vec::new(),
            is_resumed: false,
            timestamp_ms: now_ms(),
        })));
        self.release();
        self.hub.close_all_channels();
    }

    async fn logout(self: Arc<Self>) -> Result<()> {
        let (supervisor, link, was) = {
            let mut st = self.state.lock().unwrap();
            st.generation += 1;
            st.cache = Cache::default();
            (st.supervisor.take(), st.link.take(), st.link_state)
        };
        if let Some(s) = supervisor {
            s.abort();
        }
        self.slot.send_replace(Slot::Down(not_logged_in("logged out")));
        if let Some(link) = link {
            link.logout().await;
        }
        self.session.reset("logged out");
        self.release();
        self.hub.close_all_channels();
        if was != LinkState::IDLE {
            self.emit_link_state(
                None,
                LinkState::IDLE,
                LinkOperation::LOGOUT,
                LinkStateChangeReason::LOGOUT,
                String::new(),
                vec![],
            );
        }
        Ok(())
    }

    fn shutdown(&self) {
        let (supervisor, link) = {
            let mut st = self.state.lock().unwrap();
            st.generation += 1;
            (st.supervisor.take(), st.link.take())
        };
        if let Some(s) = supervisor {
            s.abort();
        }
        if let Some(l) = link {
            if crate::runtime::forked() {
                l.close("client dropped");
            } else {
                // A dropped client is gone for good: log out (briefly, in the background) so
                // the server ends the session now — others see it leave, its lock waits end —
                // instead of keeping it for a resume that will not come.
                runtime().spawn(async move { l.logout().await });
            }
        }
        self.slot.send_replace(Slot::Down(Error::new(
            ErrorCode::INSTANCE_ALREADY_RELEASED,
            "request",
            "the client was dropped",
        )));
        self.session.reset("the client was dropped");
        self.release();
        self.hub.close_all_channels();
        self.hub.close_listeners();
    }

    fn on_inbound(self: &Arc<Self>, ev: Inbound) {
        match ev {
            Inbound::Message(m) => self.emit(Event::Message(m)),
            Inbound::Messages(evs) => self.emit_batch(evs),
            Inbound::Topic(t) => self.emit(Event::Topic(Arc::new(TopicEvent {
                event_type: TopicEventType::from_u32(t.event_type).unwrap_or(TopicEventType::NONE),
                channel: t.channel,
                publisher: t.publisher,
                topics: t.topics.into_iter().map(Into::into).collect(),
                timestamp_ms: t.timestamp_ms,
            }))),
            Inbound::Presence(p) => self.emit(Event::Presence(Arc::new(p.into()))),
            Inbound::Storage(e) => self.emit(Event::Storage(Arc::new(e.into()))),
            Inbound::Lock(e) => self.emit(Event::Lock(Arc::new(e.into()))),
            Inbound::TokenWillExpire(t) => self.hub.emit(Event::TokenPrivilegeWillExpire(if t.channel.is_empty() {
                None
            } else {
                Some(t.channel)
            })),
            Inbound::StreamClosed(c) => {
                self.state.lock().unwrap().cache.streams.remove(&c.channel);
                let reason = LinkStateChangeReason::from_u32(c.link_reason).unwrap_or(LinkStateChangeReason::UNKNOWN);
                self.emit_stream_state(
                    &c.channel,
                    LinkState::FAILED,
                    LinkState::CONNECTED,
                    LinkOperation::SERVER_REJECT,
                    reason,
                    c.reason,
                );
            }
        }
    }

    /// Re-subscribes, re-joins and re-subscribes topics after a reconnect; returns what failed.
    async fn restore(self: &Arc<Self>, link: &Link) -> Vec<String> {
        let timeout = self.request_timeout();
        let req = |op: &'static str, body| async move {
            match tokio::time::timeout(timeout, link.request(op, body)).await {
                Ok(r) => r,
                Err(_) => Err(Error::new(ErrorCode::NOT_CONNECTED, op, "no reply while restoring")),
            }
        };
        let cache = self.state.lock().unwrap().cache.clone();
        let mut unrestored = Vec::new();
        for (ch, o) in &cache.channels {
            let states = cache.entry_states(&(ChannelType::MESSAGE, ch.clone()), o.with_presence);
            if let Err(e) = req("subscribe", subscribe_body(ch, o, states)).await {
                tracing::warn!(channel = %ch, error = %e, "could not restore a subscription");
                unrestored.push(ch.clone());
                self.state.lock().unwrap().cache.channels.remove(ch);
                self.hub.close_channel(ch);
            }
        }
        for user in &cache.user_metadata {
            if let Err(e) = req("subscribe_user_metadata", crate::storage::subscribe_user_body(user)).await {
                tracing::warn!(user = %user, error = %e, "could not restore a user-metadata subscription");
                unrestored.push(format!("user-metadata/{user}"));
                self.state.lock().unwrap().cache.user_metadata.remove(user);
            }
        }
        for (name, sc) in &cache.streams {
            let states = cache.entry_states(&(ChannelType::STREAM, name.clone()), sc.opts.with_presence);
            match req("join", join_body(name, &sc.opts, states)).await {
                Ok(resp) => {
                    if let Some(pb::response::Result::StreamJoin(j)) = resp.result {
                        self.emit_snapshot(name, j.topics);
                    }
                }
                Err(e) => {
                    tracing::warn!(channel = %name, error = %e, "could not rejoin a stream channel");
                    unrestored.push(name.clone());
                    self.state.lock().unwrap().cache.streams.remove(name);
                    self.emit_stream_state(
                        name,
                        LinkState::FAILED,
                        LinkState::CONNECTED,
                        LinkOperation::AUTO_RECONNECT,
                        LinkStateChangeReason::JOIN_FAILED,
                        e.reason,
                    );
                    continue;
                }
            }
            for (topic, o) in &sc.topics {
                if req("join_topic", join_topic_body(name, topic, o)).await.is_err() {
                    unrestored.push(format!("{name}/{topic}"));
                    if let Some(s) = self.state.lock().unwrap().cache.streams.get_mut(name) {
                        s.topics.remove(topic);
                    }
                }
            }
            for (topic, users) in &sc.subscriptions {
                let body = subscribe_topic_body(name, topic, users.iter().cloned().collect());
                if req("subscribe_topic", body).await.is_err() {
                    unrestored.push(format!("{name}/{topic}"));
                    if let Some(s) = self.state.lock().unwrap().cache.streams.get_mut(name) {
                        s.subscriptions.remove(topic);
                    }
                }
            }
        }
        unrestored
    }

    pub(crate) fn emit_snapshot(&self, channel: &str, topics: Vec<pb::TopicInfo>) {
        self.emit(Event::Topic(Arc::new(TopicEvent {
            event_type: TopicEventType::SNAPSHOT,
            channel: channel.to_string(),
            publisher: String::new(),
            topics: topics.into_iter().map(Into::into).collect(),
            timestamp_ms: now_ms(),
        })));
    }
}

/// The text of a RECONNECTED link-state event: why the server had closed the connection (if
/// it said, e.g. "slow consumer: ..."), and whether the session could not be resumed.
fn reconnected_text(resumed: bool, cut_reason: &str) -> String {
    match (resumed, cut_reason.is_empty()) {
        (true, true) => String::new(),
        (false, true) => "the session could not be resumed".into(),
        (true, false) => format!("the server had closed the connection: {cut_reason}"),
        (false, false) => {
            format!("the server had closed the connection: {cut_reason}; the session could not be resumed")
        }
    }
}

fn backoff(config: &ClientConfig, attempt: u32) -> Duration {
    let base = config.reconnect_initial_backoff.as_millis() as u64;
    let max = config.reconnect_max_backoff.as_millis() as u64;
    let ms = base.saturating_mul(1u64 << attempt.min(20)).min(max.max(base));
    // Up to 20% jitter so that many clients do not reconnect in lockstep.
    let jitter = (now_ms() % 1000) * ms / 5000;
    Duration::from_millis(ms + jitter)
}

/// Owns the connection of one login: connects, restores after reconnects, and decides
/// between DISCONNECTED (retry) and FAILED (stop).
async fn supervise(inner: Arc<Inner>, generation: u64, waiter: oneshot::Sender<Result<()>>) {
    let mut waiter = Some(waiter);
    let mut attempt: u32 = 0;
    let mut reconnecting = false;
    let weak: Weak<Inner> = Arc::downgrade(&inner);
    let on_inbound: link::OnInbound = Arc::new(move |ev| {
        if let Some(inner) = weak.upgrade() {
            inner.on_inbound(ev);
        }
    });
    loop {
        let (config, token) = {
            let cfg = inner.config.lock().unwrap().clone();
            let st = inner.state.lock().unwrap();
            if st.generation != generation {
                return;
            }
            (cfg, st.token.clone())
        };
        if reconnecting {
            inner.hold();
        }
        match link::establish(&config, &token, on_inbound.clone(), inner.session.clone()).await {
            Ok(link) => {
                {
                    let mut st = inner.state.lock().unwrap();
                    if st.generation != generation {
                        link.close("superseded");
                        return;
                    }
                    st.link = Some(link.clone());
                }
                tracing::debug!(
                    session = link.login.session_id,
                    dev_mode = link.login.dev_mode,
                    reconnecting,
                    "logged in"
                );
                let resumed = reconnecting && link.login.resumed;
                let unrestored = if resumed {
                    // The server kept the session: resend what it may not have received (it
                    // runs each request once), then carry on where the stream stopped.
                    link.resend(inner.session.unanswered()).await;
                    Vec::new()
                } else if reconnecting {
                    inner.restore(&link).await
                } else {
                    Vec::new()
                };
                {
                    let st = inner.state.lock().unwrap();
                    if st.generation != generation {
                        link.close("superseded");
                        return;
                    }
                    inner.slot.send_replace(Slot::Up(link.clone()));
                }
                if reconnecting {
                    // When not resumed, this event says (before anything newer is delivered)
                    // that messages of `affected_channels` may have been missed. Why the server
                    // had cut the connection off (a slow consumer) is said here too: a client
                    // that was not reading may never have read the goodbye.
                    inner.emit_link_state_ex(
                        Some(generation),
                        LinkState::CONNECTED,
                        LinkOperation::RECONNECTED,
                        LinkStateChangeReason::RECONNECT_SUCCESS,
                        reconnected_text(resumed, &link.login.cut_reason),
                        unrestored,
                        resumed,
                    );
                    inner.release();
                } else {
                    inner.emit_link_state(
                        Some(generation),
                        LinkState::CONNECTED,
                        LinkOperation::LOGIN,
                        LinkStateChangeReason::LOGIN_SUCCESS,
                        String::new(),
                        unrestored,
                    );
                }
                if let Some(w) = waiter.take() {
                    let _ = w.send(Ok(()));
                }
                attempt = 0;
                let end = link.ended().await;
                {
                    let mut st = inner.state.lock().unwrap();
                    if st.generation != generation {
                        return;
                    }
                    st.link = None;
                }
                inner.slot.send_replace(Slot::Connecting);
                match classify(end) {
                    EndKind::Fatal(reason, text) => {
                        tracing::info!(?reason, %text, "the server ended the session");
                        inner.fail(Some(generation), reason, LinkOperation::SERVER_REJECT, text);
                        return;
                    }
                    EndKind::Transient(op, reason, text) => {
                        tracing::info!(?reason, %text, "connection lost; reconnecting");
                        inner.emit_link_state(Some(generation), LinkState::DISCONNECTED, op, reason, text, vec![]);
                        reconnecting = true;
                    }
                }
            }
            Err(ce) if ce.fatal => {
                // FAILED first, then the login's answer: whoever reacts to the answer (e.g. by
                // logging in again) sees the state that answer left.
                inner.fail(Some(generation), ce.reason, LinkOperation::SERVER_REJECT, ce.error.reason.clone());
                if let Some(w) = waiter.take() {
                    let _ = w.send(Err(ce.error));
                }
                return;
            }
            Err(ce) => {
                tracing::debug!(error = %ce.error, attempt, "connect attempt failed");
            }
        }
        tokio::time::sleep(backoff(&config, attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_gets_a_clear_error_instead_of_a_hang() {
        let _ = crate::runtime::runtime();
        let c = Client::new(ClientConfig::new("0123456789abcdef0123456789abcdef", "f")).unwrap();
        crate::runtime::pretend_forked(true);
        let login = crate::runtime::block_on_unchecked(c.login(""));
        let publish = crate::runtime::block_on_unchecked(c.publish("c", "x", PublishOptions::default()));
        let new = Client::new(ClientConfig::new("0123456789abcdef0123456789abcdef", "g")).err();
        crate::runtime::pretend_forked(false);
        assert_eq!(login.unwrap_err().code, ErrorCode::NOT_INITIALIZED);
        assert_eq!(publish.unwrap_err().code, ErrorCode::NOT_INITIALIZED);
        assert_eq!(new.unwrap().code, ErrorCode::NOT_INITIALIZED);
    }
}
