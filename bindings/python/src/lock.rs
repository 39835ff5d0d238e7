//! `NativeLock`: the core `Locks` behind `rtm2.Locks` (`client.lock`).
//!
//! `acquire_lock(retry=True)` may wait in the server's queue for as long as the lock is held:
//! it is an asyncio future like every other call, so it never blocks the event loop, and
//! cancelling it (task.cancel(), asyncio.wait_for, a `timeout=`) drops the operation.

use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;

use rtm2_core::{Locks, Withdrawal};

use crate::bridge::{future, future_map};
use crate::client::{NativeClient, channel_type};
use crate::responses::{ReleaseLockResponse, RemoveLockResponse, RevokeLockResponse, SetLockResponse};
use crate::services::locks;

/// Withdraws one acquisition (`acquire_lock` returns it with the acquisition's future): the
/// Python layer awaits `withdraw()` when the acquisition is cancelled, so that the cancellation
/// completes only once the server can no longer grant the lock to it.
#[pyclass(module = "rtm2._rtm2", frozen)]
pub struct NativeWithdrawal(Withdrawal);

#[pymethods]
impl NativeWithdrawal {
    fn withdraw<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let done = self.0.withdraw();
        future(py, async move {
            done.await;
            Ok(())
        })
    }
}

/// The lock service of a client (fails with 10018 once the client is closed).
#[pyclass(module = "rtm2._rtm2", frozen)]
pub struct NativeLock {
    client: Py<NativeClient>,
}

impl NativeLock {
    pub fn new(client: Py<NativeClient>) -> Self {
        NativeLock { client }
    }

    fn service(&self, operation: &str, timeout: Option<f64>) -> PyResult<Locks> {
        Ok(self.client.get().timed(operation, timeout)?.lock())
    }
}

#[pymethods]
impl NativeLock {
    #[pyo3(signature = (channel, channel_type_name, name, ttl=0, timeout=None))]
    fn set_lock<'py>(
        &self,
        py: Python<'py>,
        channel: &str,
        channel_type_name: &str,
        name: &str,
        ttl: u32,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "set_lock";
        let l = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let started = l.set_lock(channel, t, name, ttl);
        SetLockResponse::future(py, started, channel.to_string(), t.name(), name.to_string())
    }

    #[pyo3(signature = (channel, channel_type_name, name, timeout=None))]
    fn remove_lock<'py>(
        &self,
        py: Python<'py>,
        channel: &str,
        channel_type_name: &str,
        name: &str,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "remove_lock";
        let l = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let started = l.remove_lock(channel, t, name);
        RemoveLockResponse::future(py, started, channel.to_string(), t.name(), name.to_string())
    }

    #[pyo3(signature = (channel, channel_type_name, name, retry=false, timeout=None))]
    fn acquire_lock<'py>(
        &self,
        py: Python<'py>,
        channel: &str,
        channel_type_name: &str,
        name: &str,
        retry: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "acquire_lock";
        let l = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let (acquired, withdrawal) = l.acquire_lock_withdrawable(channel, t, name, retry);
        // The fields of the AcquireLockResponse the Python layer makes (an int: the token).
        let (channel, name) = (channel.to_string(), name.to_string());
        let acquired = future_map(py, acquired, move |py, token| {
            (channel, t.name(), name, token.value, token.timestamp_ms).into_py_any(py)
        })?;
        (acquired, NativeWithdrawal(withdrawal)).into_bound_py_any(py)
    }

    #[pyo3(signature = (channel, channel_type_name, name, timeout=None))]
    fn release_lock<'py>(
        &self,
        py: Python<'py>,
        channel: &str,
        channel_type_name: &str,
        name: &str,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "release_lock";
        let l = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let started = l.release_lock(channel, t, name);
        ReleaseLockResponse::future(py, started, channel.to_string(), t.name(), name.to_string())
    }

    #[pyo3(signature = (channel, channel_type_name, name, owner, timeout=None))]
    fn revoke_lock<'py>(
        &self,
        py: Python<'py>,
        channel: &str,
        channel_type_name: &str,
        name: &str,
        owner: &str,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "revoke_lock";
        let l = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let started = l.revoke_lock(channel, t, name, owner);
        RevokeLockResponse::future(py, started, channel.to_string(), t.name(), name.to_string())
    }

    #[pyo3(signature = (channel, channel_type_name, timeout=None))]
    fn get_locks<'py>(
        &self,
        py: Python<'py>,
        channel: &str,
        channel_type_name: &str,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "get_locks";
        let l = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let started = l.get_locks(channel, t);
        let channel = channel.to_string();
        future_map(py, started, move |py, v| locks(py, v, &channel, t.name()))
    }
}
