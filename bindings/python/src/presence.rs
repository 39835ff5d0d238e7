//! `NativePresence`: the core `Presence` behind `rtm2.Presence` (`client.presence`).
//!
//! Like every service call of the binding, an operation is started in the core when the method
//! is called (so calls keep their order) and awaited as an asyncio future; cancelling the
//! future drops, and so cancels, the operation.

use pyo3::prelude::*;

use rtm2_core::{GetOnlineUsersOptions, Presence};

use crate::bridge::{future, future_map};
use crate::client::{NativeClient, channel_type};
use crate::responses::{RemoveStateResponse, SetStateResponse};
use crate::services::{Out, get_state_response, user_channels};

/// The presence service of a client. It goes through the client's handle, so it fails with
/// 10018 once the client is closed.
#[pyclass(module = "rtm2._rtm2", frozen)]
pub struct NativePresence {
    client: Py<NativeClient>,
}

impl NativePresence {
    pub fn new(client: Py<NativeClient>) -> Self {
        NativePresence { client }
    }

    fn service(&self, operation: &str, timeout: Option<f64>) -> PyResult<Presence> {
        Ok(self.client.get().timed(operation, timeout)?.presence())
    }
}

#[pymethods]
impl NativePresence {
    #[pyo3(signature = (channel, channel_type_name="MESSAGE", include_user_id=true, include_state=false, page=String::new(), timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn get_online_users<'py>(
        &self,
        py: Python<'py>,
        channel: String,
        channel_type_name: &str,
        include_user_id: bool,
        include_state: bool,
        page: String,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "get_online_users";
        let p = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let options = GetOnlineUsersOptions { include_user_id, include_state, page };
        let started = p.get_online_users(&channel, t, options);
        future(py, async move { started.await.map(Out) })
    }

    #[pyo3(signature = (user_id=String::new(), timeout=None))]
    fn get_user_channels<'py>(
        &self,
        py: Python<'py>,
        user_id: String,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = self.service("get_user_channels", timeout)?;
        let started = p.get_user_channels(&user_id);
        future_map(py, started, user_channels)
    }

    #[pyo3(signature = (channel, channel_type_name, states, timeout=None))]
    fn set_state<'py>(
        &self,
        py: Python<'py>,
        channel: String,
        channel_type_name: &str,
        states: Vec<(String, String)>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "set_state";
        let p = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let started = p.set_state(&channel, t, states);
        SetStateResponse::future(py, started, channel, t.name())
    }

    #[pyo3(signature = (channel, channel_type_name, user_id, timeout=None))]
    fn get_state<'py>(
        &self,
        py: Python<'py>,
        channel: String,
        channel_type_name: &str,
        user_id: String,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "get_state";
        let p = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let started = p.get_state(&channel, t, &user_id);
        future_map(py, started, move |py, st| get_state_response(py, st, &channel, t.name()))
    }

    #[pyo3(signature = (channel, channel_type_name, keys, timeout=None))]
    fn remove_state<'py>(
        &self,
        py: Python<'py>,
        channel: String,
        channel_type_name: &str,
        keys: Vec<String>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "remove_state";
        let p = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let started = p.remove_state(&channel, t, keys);
        RemoveStateResponse::future(py, started, channel, t.name())
    }
}
