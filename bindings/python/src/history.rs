//! `NativeHistory`: the core `History` behind `rtm2.History` (`client.history`).
//!
//! Like every service call of the binding, the operation is started in the core when the
//! method is called and awaited as an asyncio future; cancelling the future drops it.

use pyo3::prelude::*;

use rtm2_core::{GetMessagesOptions, History};

use crate::bridge::future;
use crate::client::{NativeClient, channel_type};
use crate::services::Out;

/// The history service of a client (fails with 10018 once the client is closed).
#[pyclass(module = "rtm2._rtm2", frozen)]
pub struct NativeHistory {
    client: Py<NativeClient>,
}

impl NativeHistory {
    pub fn new(client: Py<NativeClient>) -> Self {
        NativeHistory { client }
    }

    fn service(&self, operation: &str, timeout: Option<f64>) -> PyResult<History> {
        Ok(self.client.get().timed(operation, timeout)?.history())
    }
}

#[pymethods]
impl NativeHistory {
    #[pyo3(signature = (channel, channel_type_name="MESSAGE", message_count=0, start=0, end=0, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn get_messages<'py>(
        &self,
        py: Python<'py>,
        channel: String,
        channel_type_name: &str,
        message_count: u32,
        start: u64,
        end: u64,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "get_messages";
        let h = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let started = h.get_messages(&channel, t, GetMessagesOptions { message_count, start, end });
        future(py, async move { started.await.map(Out) })
    }
}
