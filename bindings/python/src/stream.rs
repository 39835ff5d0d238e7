//! `NativeStreamChannel`: the core `StreamChannel` behind `rtm2.StreamChannel`.

use pyo3::prelude::*;

use rtm2_core::{
    ErrorCode, JoinOptions, JoinTopicOptions, MessagePriority, MessageQos, StreamChannel, TopicMessageOptions,
};

use crate::bridge::future;
use crate::client::{by_name, payload};
use crate::errors::{rtm_error, to_py};
use crate::responses::{
    JoinTopicResponse, LeaveChannelResponse, LeaveTopicResponse, PublishTopicMessageResponse, RenewTokenResponse,
    UnsubscribeTopicResponse,
};
use crate::runtime;
use crate::types::{JoinOut, SubscribeTopicOut};

#[pyclass(module = "rtm2._rtm2", frozen)]
pub struct NativeStreamChannel {
    inner: StreamChannel,
}

impl NativeStreamChannel {
    pub fn new(inner: StreamChannel) -> Self {
        NativeStreamChannel { inner }
    }

    fn timed(&self, operation: &str, timeout: Option<f64>) -> PyResult<StreamChannel> {
        runtime::check(operation)?;
        Ok(match runtime::timeout(operation, timeout)? {
            Some(t) => self.inner.with_timeout(t),
            None => self.inner.clone(),
        })
    }
}

fn users_ref(users: &[String]) -> Vec<&str> {
    users.iter().map(String::as_str).collect()
}

#[pymethods]
impl NativeStreamChannel {
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    #[pyo3(signature = (token=String::new(), with_presence=true, with_metadata=false, with_lock=false, be_quiet=false, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn join<'py>(
        &self,
        py: Python<'py>,
        token: String,
        with_presence: bool,
        with_metadata: bool,
        with_lock: bool,
        be_quiet: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let sc = self.timed("join", timeout)?;
        let options = JoinOptions { token, with_presence, with_metadata, with_lock, be_quiet };
        let started = sc.join(options);
        future(py, async move { started.await.map(JoinOut) })
    }

    #[pyo3(signature = (timeout=None))]
    fn leave<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let sc = self.timed("leave", timeout)?;
        LeaveChannelResponse::future(py, sc.leave(), sc.name().to_string())
    }

    #[pyo3(signature = (topic, qos="UNORDERED", priority="NORMAL", meta=String::new(), sync_with_media=false, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn join_topic<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        qos: &str,
        priority: &str,
        meta: String,
        sync_with_media: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "join_topic";
        let sc = self.timed(op, timeout)?;
        let qos = by_name(qos, MessageQos::from_u32, MessageQos::name).ok_or_else(|| {
            rtm_error(
                ErrorCode::INVALID_PARAMETER,
                op,
                format!("qos must be \"UNORDERED\" or \"ORDERED\", got {qos:?}"),
            )
        })?;
        let priority = by_name(priority, MessagePriority::from_u32, MessagePriority::name).ok_or_else(|| {
            rtm_error(
                ErrorCode::INVALID_PARAMETER,
                op,
                format!("priority must be \"HIGHEST\", \"HIGH\", \"NORMAL\" or \"LOW\", got {priority:?}"),
            )
        })?;
        let options = JoinTopicOptions { qos, priority, meta, sync_with_media };
        let started = sc.join_topic(&topic, options);
        JoinTopicResponse::future(py, started, sc.name().to_string(), topic)
    }

    #[pyo3(signature = (topic, timeout=None))]
    fn leave_topic<'py>(&self, py: Python<'py>, topic: String, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let sc = self.timed("leave_topic", timeout)?;
        let started = sc.leave_topic(&topic);
        LeaveTopicResponse::future(py, started, sc.name().to_string(), topic)
    }

    #[pyo3(signature = (topic, message, custom_type=String::new(), send_ts=0, timeout=None))]
    fn publish_topic<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        message: &Bound<'py, PyAny>,
        custom_type: String,
        send_ts: u64,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "publish_topic";
        let sc = self.timed(op, timeout)?;
        let payload = payload(op, message)?;
        let options = TopicMessageOptions { custom_type, send_ts };
        let started = sc.publish_topic(&topic, payload, options);
        PublishTopicMessageResponse::future(py, started, sc.name().to_string(), topic)
    }

    #[pyo3(signature = (topic, users=Vec::new(), timeout=None))]
    fn subscribe_topic<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        users: Vec<String>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let sc = self.timed("subscribe_topic", timeout)?;
        let started = sc.subscribe_topic(&topic, &users_ref(&users));
        future(py, async move { started.await.map(SubscribeTopicOut) })
    }

    #[pyo3(signature = (topic, users=Vec::new(), timeout=None))]
    fn unsubscribe_topic<'py>(
        &self,
        py: Python<'py>,
        topic: String,
        users: Vec<String>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let sc = self.timed("unsubscribe_topic", timeout)?;
        let started = sc.unsubscribe_topic(&topic, &users_ref(&users));
        UnsubscribeTopicResponse::future(py, started, sc.name().to_string(), topic)
    }

    fn subscribed_users(&self, topic: &str) -> PyResult<Vec<String>> {
        runtime::check("subscribed_users")?;
        self.inner.subscribed_users(topic).map_err(to_py)
    }

    fn joined_topics(&self) -> PyResult<Vec<String>> {
        runtime::check("joined_topics")?;
        Ok(self.inner.joined_topics())
    }

    fn is_joined(&self) -> PyResult<bool> {
        runtime::check("is_joined")?;
        Ok(self.inner.is_joined())
    }

    #[pyo3(signature = (token, timeout=None))]
    fn renew_token<'py>(&self, py: Python<'py>, token: String, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let sc = self.timed("renew_token", timeout)?;
        RenewTokenResponse::future(py, sc.renew_token(&token), Some(sc.name().to_string()))
    }
}
