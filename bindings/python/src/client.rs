//! `NativeClient`: the core `Client` behind the Python `rtm2.Client`. Each method converts its
//! arguments, calls the core and maps the result; async methods return asyncio futures driven
//! by the core runtime (cancelling the future cancels the operation).

use std::borrow::Cow;
use std::sync::RwLock;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyString};

use rtm2_core::{
    ChannelType, Client, ClientConfig, EncryptionConfig, EncryptionMode, Endpoint, ErrorCode, MessageType, Payload,
    PublishOptions, SubscribeOptions,
};

use crate::bridge::future;
use crate::errors::{rtm_error, to_py};
use crate::history::NativeHistory;
use crate::lock::NativeLock;
use crate::presence::NativePresence;
use crate::receivers::{NativeEventReceiver, NativeSubscription};
use crate::responses::{LoginResponse, LogoutResponse, PublishResponse, RenewTokenResponse, UnsubscribeResponse};
use crate::runtime;
use crate::storage::NativeStorage;
use crate::stream::NativeStreamChannel;

/// Looks an enum value up by its reference name (`"MESSAGE"`, `"ORDERED"`, ...).
pub fn by_name<T: Copy>(name: &str, from_u32: fn(u32) -> Option<T>, name_of: fn(T) -> &'static str) -> Option<T> {
    (0..=64).filter_map(from_u32).find(|v| name_of(*v) == name)
}

/// A channel type by its reference name (10019 for a name that is not one).
pub fn channel_type(operation: &str, name: &str) -> PyResult<ChannelType> {
    by_name(name, ChannelType::from_u32, ChannelType::name).ok_or_else(|| {
        rtm_error(
            ErrorCode::INVALID_CHANNEL_TYPE,
            operation,
            format!("channel_type must be \"MESSAGE\" or \"STREAM\", got {name:?}"),
        )
    })
}

/// A str payload is STRING, a bytes-like one BINARY.
pub fn payload(operation: &str, message: &Bound<'_, PyAny>) -> PyResult<Payload> {
    if let Ok(s) = message.cast::<PyString>() {
        return Ok(Payload::from(s.to_cow()?.into_owned()));
    }
    match message.extract::<Cow<'_, [u8]>>() {
        Ok(b) => Ok(Payload { data: b.into_owned().into(), message_type: MessageType::BINARY }),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "{operation}: the message must be str or bytes, not {}",
            message.get_type().name()?
        ))),
    }
}

/// The `encryption_mode` argument: a name (`"NONE"`, `"AES_128_GCM"`, `"AES_256_GCM"`, or an
/// `rtm2.EncryptionMode`, a str enum) or the number; a value that is not a mode is 10020, like
/// the SDK's other refusals of the settings.
fn encryption_mode(mode: &Bound<'_, PyAny>) -> PyResult<EncryptionMode> {
    let bad = |got: String| {
        rtm_error(
            ErrorCode::INVALID_ENCRYPTION_PARAMETER,
            "new",
            format!("encryption_mode must be \"NONE\", \"AES_128_GCM\" or \"AES_256_GCM\" (or 0, 1, 2), got {got}"),
        )
    };
    if mode.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err("encryption_mode must be a str or an int, not bool"));
    }
    if let Ok(s) = mode.cast::<PyString>() {
        let name = s.to_cow()?;
        return by_name(&name, EncryptionMode::from_u32, EncryptionMode::name).ok_or_else(|| bad(format!("{name:?}")));
    }
    if mode.is_instance_of::<PyInt>() {
        let n = mode.extract::<i64>().ok().and_then(|n| u32::try_from(n).ok());
        return n.and_then(EncryptionMode::from_u32).ok_or_else(|| bad(mode.to_string()));
    }
    Err(PyTypeError::new_err(format!("encryption_mode must be a str or an int, not {}", mode.get_type().name()?)))
}

/// The `salt` argument: bytes-like, or a str (its UTF-8 bytes).
fn salt(salt: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(s) = salt.cast::<PyString>() {
        return Ok(s.to_cow()?.as_bytes().to_vec());
    }
    match salt.extract::<Cow<'_, [u8]>>() {
        Ok(b) => Ok(b.into_owned()),
        Err(_) => Err(PyTypeError::new_err(format!("salt must be bytes or str, not {}", salt.get_type().name()?))),
    }
}

/// The `endpoint` argument: one str (an endpoint, or several separated by commas) or a list
/// of str (one endpoint each).
#[derive(FromPyObject)]
enum EndpointArg {
    One(String),
    Many(Vec<String>),
}

/// The core client; `None` once closed.
#[pyclass(module = "rtm2._rtm2", frozen)]
pub struct NativeClient {
    inner: RwLock<Option<Client>>,
}

impl NativeClient {
    fn client(&self, operation: &str) -> PyResult<Client> {
        runtime::check(operation)?;
        self.inner
            .read()
            .unwrap()
            .clone()
            .ok_or_else(|| rtm_error(ErrorCode::INSTANCE_ALREADY_RELEASED, operation, "the client is closed"))
    }

    /// The client, with a per-call timeout when one is given.
    pub(crate) fn timed(&self, operation: &str, timeout: Option<f64>) -> PyResult<Client> {
        let c = self.client(operation)?;
        Ok(match runtime::timeout(operation, timeout)? {
            Some(t) => c.with_timeout(t),
            None => c,
        })
    }
}

impl Drop for NativeClient {
    fn drop(&mut self) {
        if runtime::forked() {
            std::mem::forget(self.inner.get_mut().unwrap().take());
        }
    }
}

#[pymethods]
impl NativeClient {
    /// `parameters`: a JSON object of the core's tuning parameters (unknown keys: 10014).
    /// `endpoint`: a str (one endpoint, or several separated by commas) or a list of str.
    /// `encryption_mode` (a name or number; None: NONE), `cipher_key` and `salt` (bytes or str):
    /// end-to-end encryption, fixed for the client's life; invalid settings are 10020.
    #[new]
    #[pyo3(signature = (app_id, user_id, endpoint=None, parameters=None, encryption_mode=None, cipher_key=String::new(), salt=None))]
    fn new(
        app_id: &str,
        user_id: &str,
        endpoint: Option<EndpointArg>,
        parameters: Option<&str>,
        encryption_mode: Option<&Bound<'_, PyAny>>,
        cipher_key: String,
        salt: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        runtime::start()?;
        let mode = encryption_mode.map(self::encryption_mode).transpose()?.unwrap_or(EncryptionMode::NONE);
        let salt = salt.map(self::salt).transpose()?.unwrap_or_default();
        let endpoints = match endpoint {
            None => Endpoint::parse_list(""),
            Some(EndpointArg::One(s)) => Endpoint::parse_list(&s),
            Some(EndpointArg::Many(v)) => Endpoint::parse_entries(&v),
        };
        let mut cfg = ClientConfig::new(app_id, user_id).endpoints(endpoints.map_err(to_py)?);
        if let Some(p) = parameters {
            cfg.set_parameters(p).map_err(to_py)?;
        }
        cfg.encryption = EncryptionConfig::new(mode, cipher_key, salt);
        let client = Client::new(cfg).map_err(to_py)?;
        Ok(NativeClient { inner: RwLock::new(Some(client)) })
    }

    #[pyo3(signature = (token, timeout=None))]
    fn login<'py>(&self, py: Python<'py>, token: String, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.timed("login", timeout)?;
        LoginResponse::future(py, c.login(&token))
    }

    fn logout<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.client("logout")?;
        LogoutResponse::future(py, c.logout())
    }

    #[pyo3(signature = (token, timeout=None))]
    fn renew_token<'py>(&self, py: Python<'py>, token: String, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.timed("renew_token", timeout)?;
        RenewTokenResponse::future(py, c.renew_token(&token), None::<String>)
    }

    #[pyo3(signature = (channel, message, channel_type="MESSAGE", custom_type=String::new(), store_in_history=false, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn publish<'py>(
        &self,
        py: Python<'py>,
        channel: String,
        message: &Bound<'py, PyAny>,
        channel_type: &str,
        custom_type: String,
        store_in_history: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "publish";
        let c = self.timed(op, timeout)?;
        let payload = payload(op, message)?;
        let channel_type = by_name(channel_type, ChannelType::from_u32, ChannelType::name).ok_or_else(|| {
            rtm_error(
                ErrorCode::INVALID_CHANNEL_TYPE,
                op,
                format!("channel_type must be \"MESSAGE\" or \"USER\", got {channel_type:?}"),
            )
        })?;
        let options = PublishOptions { channel_type, custom_type, store_in_history };
        // Started here, not in the spawned task: publishes (and every request) go out in call order.
        let started = c.publish(&channel, payload, options);
        PublishResponse::future(py, started, channel)
    }

    #[pyo3(signature = (channel, with_message=true, with_presence=true, with_metadata=false, with_lock=false, be_quiet=false, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn subscribe<'py>(
        &self,
        py: Python<'py>,
        channel: String,
        with_message: bool,
        with_presence: bool,
        with_metadata: bool,
        with_lock: bool,
        be_quiet: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.timed("subscribe", timeout)?;
        let options = SubscribeOptions { with_message, with_presence, with_metadata, with_lock, be_quiet };
        let started = c.subscribe(&channel, options);
        future(py, async move { started.await.map(NativeSubscription::new) })
    }

    #[pyo3(signature = (channel, timeout=None))]
    fn unsubscribe<'py>(&self, py: Python<'py>, channel: String, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let c = self.timed("unsubscribe", timeout)?;
        let started = c.unsubscribe(&channel);
        UnsubscribeResponse::future(py, started, channel)
    }

    /// The stream channel of this name (10008 for an invalid name).
    fn stream_channel(&self, name: &str) -> PyResult<NativeStreamChannel> {
        let c = self.client("stream_channel")?;
        Ok(NativeStreamChannel::new(c.stream_channel(name).map_err(to_py)?))
    }

    /// The presence service (it uses this handle: closing the client ends it too).
    fn presence(slf: &Bound<'_, Self>) -> NativePresence {
        NativePresence::new(slf.clone().unbind())
    }

    /// The storage service.
    fn storage(slf: &Bound<'_, Self>) -> NativeStorage {
        NativeStorage::new(slf.clone().unbind())
    }

    /// The lock service.
    fn lock(slf: &Bound<'_, Self>) -> NativeLock {
        NativeLock::new(slf.clone().unbind())
    }

    /// The history service.
    fn history(slf: &Bound<'_, Self>) -> NativeHistory {
        NativeHistory::new(slf.clone().unbind())
    }

    /// A receiver of every event of this client from now on.
    fn events(&self) -> PyResult<NativeEventReceiver> {
        Ok(NativeEventReceiver::new(self.client("events")?.events()))
    }

    fn link_state(&self) -> PyResult<&'static str> {
        Ok(self.client("link_state")?.link_state().name())
    }

    fn user_id(&self) -> PyResult<String> {
        Ok(self.client("user_id")?.user_id())
    }

    fn connected_to(&self) -> PyResult<Option<(String, String)>> {
        Ok(self.client("connected_to")?.connected_to())
    }

    /// Messages dropped because they did not decrypt with this client's encryption settings.
    fn undecryptable_messages(&self) -> PyResult<u64> {
        Ok(self.client("undecryptable_messages")?.undecryptable_messages())
    }

    fn set_parameters(&self, json: &str) -> PyResult<()> {
        self.client("set_parameters")?.set_parameters(json).map_err(to_py)
    }

    fn get_parameters(&self) -> PyResult<String> {
        Ok(self.client("get_parameters")?.get_parameters())
    }

    fn subscribed_channels(&self) -> PyResult<Vec<String>> {
        Ok(self.client("subscribed_channels")?.subscribed_channels())
    }

    /// Releases this handle: the core client shuts down once no operation uses it any more.
    fn close(&self) {
        let c = self.inner.write().unwrap().take();
        if runtime::forked() {
            std::mem::forget(c);
        }
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.read().unwrap().is_none()
    }
}
