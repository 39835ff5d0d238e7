//! The client: its state, the message-channel operations and event emission; the login state
//! machine is in `lifecycle`, request sending in `requests`.

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

mod exit;
mod late;
mod lifecycle;
mod recovery;
mod requests;

pub use exit::logout_all;

/// The log target of the client and its submodules: one logger name
/// (`rtm2.core.client` in Python) however the code is split.
const LOG_TARGET: &str = "rtm2_core::client";

pub(crate) use late::{Late, Target};

use requests::{Outgoing, pump};

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
    /// Locks this client holds, by (channel type, channel, lock name): re-acquired when a
    /// reconnect lands on another node (failover), which does not know them.
    pub locks: BTreeSet<LockKey>,
    /// The ttl of locks, as this client set them or saw them in lock events (to define a held
    /// lock again on another node); at most `MAX_LOCK_TTLS` entries.
    pub lock_ttls: BTreeMap<LockKey, u32>,
    /// Where a reconnect that cannot resume recovers stored messages from (`recovery.rs`):
    /// per subscribed message channel, and for this user's own channel, the timestamp of the
    /// last stored message received there, or the server's time when it was subscribed (when
    /// the client logged in) less a millisecond.
    pub recover_after: RecoverAfter,
}

/// See `Cache::recover_after`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecoverAfter {
    pub channels: BTreeMap<String, u64>,
    pub user: Option<u64>,
}

/// A lock: (channel type, channel, lock name).
pub(crate) type LockKey = (ChannelType, String, String);

/// Lock ttls remembered, at most (beyond it a lock defined again elsewhere gets the default).
pub(crate) const MAX_LOCK_TTLS: usize = 4096;

impl Cache {
    /// Whether this client is present (subscribed/joined with presence) in a channel.
    pub(crate) fn present(&self, key: &(ChannelType, String)) -> bool {
        match key.0 {
            ChannelType::MESSAGE => self.channels.get(&key.1).is_some_and(|o| o.with_presence),
            ChannelType::STREAM => self.streams.get(&key.1).is_some_and(|s| s.opts.with_presence),
            _ => false,
        }
    }

    /// The cached state to send when entering a channel with these options (its values
    /// encrypted when the client encrypts).
    pub(crate) fn entry_states(
        &self,
        key: &(ChannelType, String),
        with_presence: bool,
        inner: &Inner,
    ) -> Vec<pb::StateItem> {
        match self.states.get(key) {
            Some(s) if with_presence => {
                let mut items = crate::presence::to_items(s);
                inner.e2ee.seal_states(key.0, &key.1, &inner.user_id, &mut items);
                items
            }
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
    /// Requests with lasting server-side state in flight, per target (see `late.rs`).
    in_flight: Mutex<HashMap<Target, usize>>,
    /// Where the client is (or was last) connected: the index in `config.endpoints` and the
    /// node id the server reported (see `Client::connected_to`).
    connected: Mutex<Option<(usize, String)>>,
    /// End-to-end encryption (`ClientConfig::encryption`), fixed when the client is made.
    pub(crate) e2ee: crate::encryption::E2ee,
    /// This client's user id (the publisher its encrypted messages are bound to).
    pub(crate) user_id: String,
    /// The last failure of each endpoint since the last connection (index, why).
    attempts: Mutex<Vec<(usize, String)>>,
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
    ///
    /// With no endpoint given ([`Endpoint::Default`](crate::Endpoint::Default), the default),
    /// the client uses the endpoint(s) in the `RTM2_ENDPOINT` environment variable, read here
    /// (10014 naming the variable when it is invalid), or else the embedded server.
    pub fn new(mut config: ClientConfig) -> Result<Client> {
        if crate::runtime::forked() {
            return Err(crate::runtime::forked_error("new"));
        }
        config.endpoints = crate::config::resolve_default(std::mem::take(&mut config.endpoints))
            .map_err(|e| Error::new(e.code, "new", e.reason))?;
        validate::app_id(&config.app_id).map_err(|v| Error::from_violation("new", v))?;
        validate::user_id(&config.user_id).map_err(|v| Error::from_violation("new", v))?;
        crate::config::check_list(&config.endpoints).map_err(|e| Error::new(e.code, "new", e.reason))?;
        let e2ee = crate::encryption::E2ee::new(&config.encryption)?;
        crate::logging::init(&config);
        let (slot, _) = watch::channel(Slot::Down(not_logged_in("call login first")));
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        runtime().spawn(pump(outbox_rx, slot.subscribe(), queued.clone()));
        let config_user = config.user_id.clone();
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
            in_flight: Mutex::new(HashMap::new()),
            connected: Mutex::new(None),
            attempts: Mutex::new(Vec::new()),
            user_id: config_user.clone(),
            e2ee,
        });
        exit::register(&inner);
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

    /// The history service: stored messages of message channels and of this user's channel.
    pub fn history(&self) -> crate::history::History {
        crate::history::History { client: self.clone() }
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

    /// Where the client is connected, or was last: the endpoint (as text, e.g.
    /// `tcp://10.0.0.2:9696`) and the id of the node that answered (`""` for a server that is
    /// not part of a cluster). `None` before the first connection.
    pub fn connected_to(&self) -> Option<(String, String)> {
        let (i, node) = self.inner.connected.lock().unwrap().clone()?;
        let endpoint = self.inner.config.lock().unwrap().endpoints.get(i).map(|e| format!("{e:?}"))?;
        Some((endpoint, node))
    }

    /// Messages dropped because they did not decrypt with this client's encryption
    /// configuration (`ClientConfig::encryption`): another key, salt or mode, a plain message to
    /// an encrypting client or an encrypted one to a plain client, or tampered bytes.
    pub fn undecryptable_messages(&self) -> u64 {
        self.inner.e2ee.dropped()
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
    pub fn login(&self, token: &str) -> Op<Result<Ack>> {
        let t = self.timeout();
        let (generation, rx) = try_op!(self.inner.begin_login(token.to_string()));
        let inner = self.inner.clone();
        Op::spawn(async move { inner.finish_login(generation, rx, t).await })
    }

    /// Logs out: ends the session, every subscription and stream channel. Operations in flight
    /// complete with an error. Never fails.
    pub fn logout(&self) -> Op<Result<Ack>> {
        if crate::runtime::forked() {
            return Op::ready(Err(crate::runtime::forked_error("logout")));
        }
        let inner = self.inner.clone();
        Op::spawn(async move { inner.logout().await })
    }

    /// Renews the login token.
    pub fn renew_token(&self, token: &str) -> Op<Result<Ack>> {
        let op = "renew_token";
        if token.len() > rtm2_proto::token::MAX_TOKEN_LEN {
            return Op::ready(Err(Error::new(ErrorCode::INVALID_TOKEN, op, "token is too long")));
        }
        let body = client_frame::Body::RenewToken(pb::RenewToken { token: token.to_string(), channel: String::new() });
        let reply = self.inner.submit(op, ErrorCode::RENEW_TOKEN_TIMEOUT, body, self.timeout());
        let (inner, token) = (self.inner.clone(), token.to_string());
        Op::spawn(async move {
            let r = reply.await?;
            inner.state.lock().unwrap().token = token;
            Ok(Ack::of(&r))
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
        let states = self.inner.state.lock().unwrap().cache.entry_states(
            &(ChannelType::MESSAGE, channel.to_string()),
            options.with_presence,
            &self.inner,
        );
        let ch = channel.to_string();
        // Carried out after the caller stopped waiting: undone (or the earlier options put back).
        let late = Late::new(Target::Channel(ch.clone()), move |inner, _, superseded| {
            if superseded {
                return; // a newer subscribe or unsubscribe of this channel decides
            }
            let st = inner.state.lock().unwrap();
            match st.cache.channels.get(&ch) {
                Some(before) => {
                    let body = subscribe_body(
                        &ch,
                        before,
                        st.cache.entry_states(&(ChannelType::MESSAGE, ch.clone()), before.with_presence, inner),
                    );
                    drop(st);
                    inner.send_corrective("subscribe", ErrorCode::CHANNEL_SUBSCRIBE_TIMEOUT, body);
                }
                None => {
                    drop(st);
                    let body = client_frame::Body::Unsubscribe(pb::Unsubscribe { channel: ch });
                    inner.send_corrective("unsubscribe", ErrorCode::CHANNEL_UNSUBSCRIBE_FAILED, body);
                }
            }
        });
        let reply = self.inner.submit_stateful(
            op,
            ErrorCode::CHANNEL_SUBSCRIBE_TIMEOUT,
            subscribe_body(channel, &options, states),
            self.timeout(),
            late,
        );
        let (inner, ch) = (self.inner.clone(), channel.to_string());
        Op::spawn(async move {
            let mut sub = sub;
            sub.timestamp_ms = reply.await?.server_time_ms;
            let mut st = inner.state.lock().unwrap();
            // (Less one: a message stored in the reply's millisecond may not have arrived.)
            st.cache.recover_after.channels.entry(ch.clone()).or_insert(sub.timestamp_ms.saturating_sub(1));
            st.cache.channels.insert(ch, options);
            Ok(sub)
        })
    }

    /// Unsubscribes from a message channel (11002 if not subscribed); its streams end.
    pub fn unsubscribe(&self, channel: &str) -> Op<Result<Ack>> {
        let op = "unsubscribe";
        try_op!(validate::channel_name(channel).map_err(|v| Error::from_violation(op, v)));
        let body = client_frame::Body::Unsubscribe(pb::Unsubscribe { channel: channel.to_string() });
        let ch = channel.to_string();
        // Carried out after the caller stopped waiting: the client is unsubscribed too.
        let late = Late::new(Target::Channel(ch.clone()), move |inner, _, superseded| {
            if !superseded {
                inner.forget_channel(&ch);
            }
        });
        let reply = self.inner.submit_stateful(op, ErrorCode::CHANNEL_UNSUBSCRIBE_FAILED, body, self.timeout(), late);
        let (inner, ch) = (self.inner.clone(), channel.to_string());
        Op::spawn(async move {
            let r = reply.await;
            if r.is_ok() || r.as_ref().is_err_and(|e| e.code == ErrorCode::CHANNEL_NOT_SUBSCRIBED) {
                inner.forget_channel(&ch);
            }
            r.map(|r| Ack::of(&r))
        })
    }

    /// Publishes to a message channel, or to a user (`PublishOptions::user()`): 11033 when
    /// that user is offline. Publishes are sent in call order.
    pub fn publish(&self, channel: &str, payload: impl Into<Payload>, options: PublishOptions) -> Op<Result<Ack>> {
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
        let place = crate::encryption::Place {
            channel_type: options.channel_type as u32,
            channel,
            topic: "",
            publisher: &self.inner.user_id,
            message_type: payload.message_type as u32,
            custom_type: &options.custom_type,
        };
        let data = match self.inner.e2ee.seal_message(&place, &payload.data) {
            Some(sealed) => sealed,
            None => payload.data.clone(),
        };
        let parts = PublishRef {
            channel,
            channel_type: options.channel_type as u32,
            message_type: payload.message_type as u32,
            payload: &data,
            custom_type: &options.custom_type,
            store_in_history: options.store_in_history,
            encryption: self.inner.e2ee.mode(),
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
            payload: data.clone(),
            custom_type: options.custom_type.clone(),
            store_in_history: options.store_in_history,
            encryption: parts.encryption,
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

impl Inner {
    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_micros(self.request_timeout_us.load(Ordering::Relaxed))
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
        self.emit_link_state_ex(generation, current, operation, reason, text, unrestored, false, &[])
    }

    /// Emits a MESSAGE link-state event; `is_resumed` tells after a reconnect whether the
    /// session resumed without loss; `recovered`: channels whose missed messages were all
    /// recovered from their history (left out of `affected_channels`).
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
        recovered: &[String],
    ) {
        let (previous, affected) = {
            let mut st = self.state.lock().unwrap();
            if generation.is_some_and(|g| g != st.generation) {
                return;
            }
            let prev = st.link_state;
            st.link_state = current;
            let affected = st
                .cache
                .channels
                .keys()
                .filter(|c| !recovered.contains(c))
                .chain(st.cache.streams.keys())
                .cloned()
                .collect();
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

    /// Drops a message channel from the client's state and ends its streams (after an
    /// unsubscribe).
    pub(crate) fn forget_channel(&self, ch: &str) {
        let mut st = self.state.lock().unwrap();
        st.cache.channels.remove(ch);
        st.cache.recover_after.channels.remove(ch);
        // Leaving a channel deletes this user's state there (reference behaviour).
        st.cache.states.remove(&(ChannelType::MESSAGE, ch.to_string()));
        drop(st);
        self.hub.close_channel(ch);
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
