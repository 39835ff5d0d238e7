//! `NativeClient`: one `rtm2_core::Client`, its event receiver and the batch pump; its
//! presence, storage and lock services share its client slot ([`Shared`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use napi::Env;
use napi::bindgen_prelude::{Either, Object, Uint8Array};
use napi_derive::napi;

use rtm2_core::{Client, ClientConfig, EncryptionConfig, Endpoint, EventReceiver, PublishOptions, SubscribeOptions};

use crate::convert;
use crate::error;
use crate::events::{self, BatchFn, NativeSubscription, PackedBatchFn};
use crate::history::NativeHistory;
use crate::lock::NativeLock;
use crate::op::{self, Cancel, CancelToken};
use crate::presence::NativePresence;
use crate::storage::NativeStorage;
use crate::stream::NativeStreamChannel;

/// The client of a `NativeClient`, shared with its service objects; `None` once closed (every
/// later call then fails with 10018 INSTANCE_ALREADY_RELEASED).
#[derive(Clone, Default)]
pub(crate) struct Shared(Arc<Mutex<Option<Client>>>);

impl Shared {
    /// The client for one call of `op`, with its per-call timeout (`timeoutMs`) if given.
    pub(crate) fn get(&self, op: &'static str, timeout_ms: Option<u32>) -> rtm2_core::Result<Client> {
        let guard = self.0.lock().unwrap();
        let c = guard.as_ref().ok_or_else(|| error::closed(op))?;
        Ok(match op::timeout(timeout_ms) {
            Some(t) => c.with_timeout(t),
            None => c.clone(),
        })
    }

    fn current(&self) -> Option<Client> {
        self.0.lock().unwrap().clone()
    }

    fn take(&self) -> Option<Client> {
        self.0.lock().unwrap().take()
    }
}

/// Options of the native client. The JS layer maps the agora-style config onto these.
/// Where a client is connected (`connectedTo()`).
#[napi(object)]
pub struct ConnectedTo {
    /// The endpoint as text, e.g. `'tcp://10.0.0.2:9696'` or `'embedded'`.
    pub endpoint: String,
    /// The id of the node that answered (`''` for a server outside a cluster).
    pub node_id: String,
}

#[napi(object)]
pub struct NativeClientOptions {
    /// `""`/`"embedded"` (default: the in-process server), `"tcp://host:port"` or `"host:port"`,
    /// or several: separated by commas, or an array (the nodes of one service: the client
    /// fails over between them).
    pub endpoint: Option<Either<String, Vec<String>>>,
    /// Tuning parameters as a JSON object (keys of `ClientConfig::set_parameters`, e.g.
    /// `{"request_timeout_ms": 5000}`); a bad key or value fails with 10014.
    pub parameters: Option<String>,
    /// Level of the SDK's log file (`error`, `warn`, `info`, `debug`, `trace`).
    pub log_level: Option<String>,
    /// Write SDK logs to this file.
    pub log_file: Option<String>,
    /// End-to-end encryption: `'NONE'` (default), `'AES_128_GCM'` or `'AES_256_GCM'`, or the
    /// number (0, 1, 2); anything else fails with 10020.
    pub encryption_mode: Option<Either<String, f64>>,
    /// The secret every client of the conversation shares (non-empty with a mode, else 10020).
    pub cipher_key: Option<String>,
    /// At most 32 bytes (zero-padded; more: 10020); a string is taken as its UTF-8 bytes.
    pub salt: Option<Either<String, Uint8Array>>,
}

#[napi(object)]
pub struct NativePublishOptions {
    /// `'MESSAGE'` (default) or `'USER'`.
    pub channel_type: Option<String>,
    pub custom_type: Option<String>,
    pub store_in_history: Option<bool>,
}

#[napi(object)]
pub struct NativeSubscribeOptions {
    pub with_message: Option<bool>,
    pub with_presence: Option<bool>,
    pub with_metadata: Option<bool>,
    pub with_lock: Option<bool>,
    pub be_quiet: Option<bool>,
}

/// One rtm2 client. Every async method returns a Promise and takes an optional per-call
/// timeout (ms; the operation then fails with its RTM timeout code) and a cancel token.
#[napi]
pub struct NativeClient {
    client: Shared,
    user_id: String,
    events: Arc<tokio::sync::Mutex<EventReceiver>>,
    pump: Mutex<Option<Arc<Cancel>>>,
    /// `undecryptableMessages()` of the client when it was closed.
    undecryptable_at_close: AtomicU64,
}

impl NativeClient {
    fn client(&self, op: &'static str, timeout_ms: Option<u32>) -> rtm2_core::Result<Client> {
        self.client.get(op, timeout_ms)
    }

    fn sync<T>(&self, env: &Env, r: rtm2_core::Result<T>) -> napi::Result<T> {
        r.map_err(|e| error::to_js(env, &e))
    }
}

#[napi]
impl NativeClient {
    /// Makes a client (10003 bad app id, 10006 bad user id, 10014 bad endpoint/parameters).
    #[napi(constructor)]
    pub fn new(env: &Env, app_id: String, user_id: String, options: Option<NativeClientOptions>) -> napi::Result<Self> {
        let make = || -> rtm2_core::Result<Client> {
            let mut cfg = ClientConfig::new(app_id, user_id.clone());
            if let Some(o) = options {
                match o.endpoint {
                    Some(Either::A(ep)) => cfg = cfg.endpoints(Endpoint::parse_list(&ep)?),
                    Some(Either::B(list)) => cfg = cfg.endpoints(Endpoint::parse_entries(&list)?),
                    None => {}
                }
                if let Some(p) = o.parameters {
                    cfg.set_parameters(&p)?;
                }
                if let Some(l) = o.log_level {
                    cfg.log_level = l;
                }
                cfg.log_file = o.log_file.map(Into::into);
                let mode = match o.encryption_mode {
                    None => rtm2_core::EncryptionMode::NONE,
                    Some(m) => convert::encryption_mode(m, "new")?,
                };
                let salt = match o.salt {
                    None => Vec::new(),
                    Some(Either::A(s)) => s.into_bytes(),
                    Some(Either::B(b)) => b.to_vec(),
                };
                cfg.encryption = EncryptionConfig::new(mode, o.cipher_key.unwrap_or_default(), salt);
            }
            Client::new(cfg)
        };
        let client = make().map_err(|e| error::to_js(env, &e))?;
        let events = Arc::new(tokio::sync::Mutex::new(client.events()));
        Ok(NativeClient {
            client: Shared(Arc::new(Mutex::new(Some(client)))),
            user_id,
            events,
            pump: Mutex::new(None),
            undecryptable_at_close: AtomicU64::new(0),
        })
    }

    /// The user id.
    #[napi(getter)]
    pub fn user_id(&self) -> String {
        self.user_id.clone()
    }

    /// Where the client is connected, or was last: `{ endpoint, nodeId }`; null before the
    /// first connection.
    #[napi]
    pub fn connected_to(&self) -> Option<ConnectedTo> {
        let (endpoint, node_id) = self.client.current()?.connected_to()?;
        Some(ConnectedTo { endpoint, node_id })
    }

    /// Messages dropped because they did not decrypt with this client's encryption settings
    /// (another key, salt or mode, plain to an encrypting client or the reverse, tampered); the
    /// count at `close()` once closed.
    #[napi]
    pub fn undecryptable_messages(&self) -> i64 {
        let n = match self.client.current() {
            Some(c) => c.undecryptable_messages(),
            None => self.undecryptable_at_close.load(Ordering::Relaxed),
        };
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// The state of the message connection (`'IDLE'`, `'CONNECTING'`, `'CONNECTED'`, ...).
    #[napi]
    pub fn link_state(&self) -> String {
        match self.client.current() {
            Some(c) => c.link_state().name().to_string(),
            None => rtm2_core::LinkState::IDLE.name().to_string(),
        }
    }

    /// Starts delivering events to `callback`, in batches of at most `maxBatch`, one call per
    /// batch. While the pump runs it keeps the event loop alive. A second start replaces the
    /// first (the earlier pump delivers what is queued, then ends).
    #[napi(ts_args_type = "callback: (batch: Array<NativeEvent>) => void, maxBatch?: number | undefined | null")]
    pub fn start_events(&self, callback: BatchFn, max_batch: Option<u32>) {
        let max = max_batch.map(|m| m.max(1) as usize).unwrap_or(events::DEFAULT_BATCH);
        let stop = events::start_pump(self.events.clone(), callback, max, events::convert_batch);
        if let Some(old) = self.pump.lock().unwrap().replace(stop) {
            old.cancel();
        }
    }

    /// `startEvents`, with each batch packed in columns (a `NativePackedBatch`: what the JS
    /// layer uses; it builds the event objects itself, which is much cheaper per message).
    #[napi(ts_args_type = "callback: (batch: NativePackedBatch) => void, maxBatch?: number | undefined | null")]
    pub fn start_packed_events(&self, callback: PackedBatchFn, max_batch: Option<u32>) {
        let max = max_batch.map(|m| m.max(1) as usize).unwrap_or(events::DEFAULT_BATCH);
        let stop = events::start_pump(self.events.clone(), callback, max, events::pack_batch);
        if let Some(old) = self.pump.lock().unwrap().replace(stop) {
            old.cancel();
        }
    }

    /// Stops the pump after it delivered what is queued now; the event loop is no longer kept
    /// alive by it. Events that arrive later wait (bounded) for the next `startEvents`.
    #[napi]
    pub fn stop_events(&self) {
        if let Some(p) = self.pump.lock().unwrap().take() {
            p.cancel();
        }
    }

    /// Releases the client: its connection closes, every subscription ends and later calls
    /// fail with 10018 INSTANCE_ALREADY_RELEASED. Idempotent.
    #[napi]
    pub fn close(&self) {
        let client = self.client.take();
        if let Some(c) = &client {
            self.undecryptable_at_close.store(c.undecryptable_messages(), Ordering::Relaxed);
        }
        drop(client);
        self.stop_events();
    }

    /// Logs in with a token (empty in development mode); resolves with the server's time of
    /// the login (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn login<'e>(
        &self,
        env: &'e Env,
        token: String,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.client("login", timeout_ms) {
            Ok(c) => op::ack(env, cancel, c.login(&token)),
            Err(e) => op::rejected(env, e),
        }
    }

    /// Logs out (never fails; a closed client is already logged out); resolves with the
    /// server's time of its answer (ms since the epoch), or this machine's when there was no
    /// server to ask (not connected, or closed).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn logout<'e>(&self, env: &'e Env) -> napi::Result<Object<'e>> {
        let c = self.client.current();
        let started = c.map(|c| c.logout());
        op::ack(env, None, async move {
            match started {
                Some(op) => op.await,
                None => Ok(rtm2_core::Ack { timestamp_ms: rtm2_proto::now_ms() }),
            }
        })
    }

    /// Renews the login token; resolves with the server's time of its answer.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn renew_token<'e>(
        &self,
        env: &'e Env,
        token: String,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.client("renew_token", timeout_ms) {
            Ok(c) => op::ack(env, cancel, c.renew_token(&token)),
            Err(e) => op::rejected(env, e),
        }
    }

    /// Publishes a string (STRING) or bytes (BINARY) to a channel or (`channelType: 'USER'`)
    /// a user; resolves with the server's time of the acknowledgement that covered it.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn publish<'e>(
        &self,
        env: &'e Env,
        channel: String,
        message: Either<String, Uint8Array>,
        options: Option<NativePublishOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let op = "publish";
        let payload = convert::payload(message);
        let prep = || -> rtm2_core::Result<(Client, PublishOptions)> {
            let c = self.client(op, timeout_ms)?;
            let mut po = PublishOptions::default();
            if let Some(o) = options {
                po.channel_type = convert::channel_type(o.channel_type.as_deref(), op)?;
                po.custom_type = o.custom_type.unwrap_or_default();
                po.store_in_history = o.store_in_history.unwrap_or(false);
            }
            Ok((c, po))
        };
        match prep() {
            // Started here, not in the spawned task: publishes (and every request) go out in
            // call order.
            Ok((c, po)) => op::ack(env, cancel, c.publish(&channel, payload, po)),
            Err(e) => op::rejected(env, e),
        }
    }

    /// Subscribes to a message channel; resolves with the subscription (its messages).
    #[napi(ts_return_type = "Promise<NativeSubscription>")]
    pub fn subscribe<'e>(
        &self,
        env: &'e Env,
        channel: String,
        options: Option<NativeSubscribeOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let mut so = SubscribeOptions::default();
        if let Some(o) = options {
            so.with_message = o.with_message.unwrap_or(so.with_message);
            so.with_presence = o.with_presence.unwrap_or(so.with_presence);
            so.with_metadata = o.with_metadata.unwrap_or(so.with_metadata);
            so.with_lock = o.with_lock.unwrap_or(so.with_lock);
            so.be_quiet = o.be_quiet.unwrap_or(so.be_quiet);
        }
        match self.client("subscribe", timeout_ms) {
            Ok(c) => {
                let started = c.subscribe(&channel, so);
                op::promise(env, cancel, async move { started.await.map(NativeSubscription::new) })
            }
            Err(e) => op::rejected(env, e),
        }
    }

    /// Unsubscribes from a message channel (11002 if not subscribed); resolves with the
    /// server's time of its answer.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn unsubscribe<'e>(
        &self,
        env: &'e Env,
        channel: String,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.client("unsubscribe", timeout_ms) {
            Ok(c) => op::ack(env, cancel, c.unsubscribe(&channel)),
            Err(e) => op::rejected(env, e),
        }
    }

    /// The stream channel of this name (10008 for an invalid name).
    #[napi]
    pub fn stream_channel(&self, env: &Env, name: String) -> napi::Result<NativeStreamChannel> {
        let r = self.client("stream_channel", None).and_then(|c| c.stream_channel(&name));
        self.sync(env, r).map(NativeStreamChannel::new)
    }

    /// The presence service (who is where, per-channel user state).
    #[napi]
    pub fn presence(&self) -> NativePresence {
        NativePresence::new(self.client.clone())
    }

    /// The storage service (channel and user metadata).
    #[napi]
    pub fn storage(&self) -> NativeStorage {
        NativeStorage::new(self.client.clone())
    }

    /// The lock service.
    #[napi]
    pub fn lock(&self) -> NativeLock {
        NativeLock::new(self.client.clone())
    }

    /// The history service (messages published with `storeInHistory`).
    #[napi]
    pub fn history(&self) -> NativeHistory {
        NativeHistory::new(self.client.clone())
    }

    /// Channels this client is subscribed to.
    #[napi]
    pub fn subscribed_channels(&self) -> Vec<String> {
        self.client.current().map(|c| c.subscribed_channels()).unwrap_or_default()
    }

    /// Applies tuning parameters (a JSON object); unknown keys fail with 10014.
    #[napi]
    pub fn set_parameters(&self, env: &Env, json: String) -> napi::Result<()> {
        let r = self.client("set_parameters", None).and_then(|c| c.set_parameters(&json));
        self.sync(env, r)
    }

    /// The tuning parameters as a JSON object.
    #[napi]
    pub fn get_parameters(&self, env: &Env) -> napi::Result<String> {
        let r = self.client("get_parameters", None).map(|c| c.get_parameters());
        self.sync(env, r)
    }
}
