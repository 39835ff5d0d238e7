//! `NativeStorage`: the core `Storage` behind `rtm2.Storage` (`client.storage`): channel and
//! user metadata. Items arrive from the Python layer as `(key, value, revision)` tuples.

use pyo3::prelude::*;

use rtm2_core::{MetadataItem, MetadataOptions, Storage};

use crate::bridge::{future, future_map};
use crate::client::{NativeClient, channel_type};
use crate::responses::{SubscribeUserMetaResponse, UnsubscribeUserMetaResponse};
use crate::services::{Out, channel_metadata, user_metadata};

/// The storage service of a client (fails with 10018 once the client is closed).
#[pyclass(module = "rtm2._rtm2", frozen)]
pub struct NativeStorage {
    client: Py<NativeClient>,
}

type Items = Vec<(String, String, i64)>;

fn items(items: Items) -> Vec<MetadataItem> {
    items.into_iter().map(|(k, v, r)| MetadataItem::new(k, v).with_revision(r)).collect()
}

fn options(major_revision: i64, lock_name: String, record_ts: bool, record_author: bool) -> MetadataOptions {
    MetadataOptions { major_revision, lock_name, record_ts, record_author, fencing_token: 0 }
}

/// Which write of a set.
#[derive(Clone, Copy)]
enum Write {
    Set,
    Update,
    Remove,
}

impl NativeStorage {
    pub fn new(client: Py<NativeClient>) -> Self {
        NativeStorage { client }
    }

    fn service(&self, operation: &str, timeout: Option<f64>) -> PyResult<Storage> {
        Ok(self.client.get().timed(operation, timeout)?.storage())
    }

    #[allow(clippy::too_many_arguments)]
    fn channel_write<'py>(
        &self,
        py: Python<'py>,
        w: Write,
        channel: &str,
        channel_type_name: &str,
        data: Items,
        opts: MetadataOptions,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = match w {
            Write::Set => "set_channel_metadata",
            Write::Update => "update_channel_metadata",
            Write::Remove => "remove_channel_metadata",
        };
        let st = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let data = items(data);
        let started = match w {
            Write::Set => st.set_channel_metadata(channel, t, data, opts),
            Write::Update => st.update_channel_metadata(channel, t, data, opts),
            Write::Remove => st.remove_channel_metadata(channel, t, data, opts),
        };
        future(py, async move { started.await.map(Out) })
    }

    fn user_write<'py>(
        &self,
        py: Python<'py>,
        w: Write,
        user_id: &str,
        data: Items,
        opts: MetadataOptions,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = match w {
            Write::Set => "set_user_metadata",
            Write::Update => "update_user_metadata",
            Write::Remove => "remove_user_metadata",
        };
        let st = self.service(op, timeout)?;
        let data = items(data);
        let started = match w {
            Write::Set => st.set_user_metadata(user_id, data, opts),
            Write::Update => st.update_user_metadata(user_id, data, opts),
            Write::Remove => st.remove_user_metadata(user_id, data, opts),
        };
        future(py, async move { started.await.map(Out) })
    }
}

#[pymethods]
impl NativeStorage {
    #[pyo3(signature = (channel, channel_type_name, items, major_revision=-1, lock_name=String::new(), record_ts=false, record_author=false, timeout=None, fencing_token=0))]
    #[allow(clippy::too_many_arguments)]
    fn set_channel_metadata<'py>(
        &self,
        py: Python<'py>,
        channel: &str,
        channel_type_name: &str,
        items: Items,
        major_revision: i64,
        lock_name: String,
        record_ts: bool,
        record_author: bool,
        timeout: Option<f64>,
        fencing_token: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = MetadataOptions { fencing_token, ..options(major_revision, lock_name, record_ts, record_author) };
        self.channel_write(py, Write::Set, channel, channel_type_name, items, o, timeout)
    }

    #[pyo3(signature = (channel, channel_type_name, items, major_revision=-1, lock_name=String::new(), record_ts=false, record_author=false, timeout=None, fencing_token=0))]
    #[allow(clippy::too_many_arguments)]
    fn update_channel_metadata<'py>(
        &self,
        py: Python<'py>,
        channel: &str,
        channel_type_name: &str,
        items: Items,
        major_revision: i64,
        lock_name: String,
        record_ts: bool,
        record_author: bool,
        timeout: Option<f64>,
        fencing_token: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = MetadataOptions { fencing_token, ..options(major_revision, lock_name, record_ts, record_author) };
        self.channel_write(py, Write::Update, channel, channel_type_name, items, o, timeout)
    }

    #[pyo3(signature = (channel, channel_type_name, items, major_revision=-1, lock_name=String::new(), record_ts=false, record_author=false, timeout=None, fencing_token=0))]
    #[allow(clippy::too_many_arguments)]
    fn remove_channel_metadata<'py>(
        &self,
        py: Python<'py>,
        channel: &str,
        channel_type_name: &str,
        items: Items,
        major_revision: i64,
        lock_name: String,
        record_ts: bool,
        record_author: bool,
        timeout: Option<f64>,
        fencing_token: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = MetadataOptions { fencing_token, ..options(major_revision, lock_name, record_ts, record_author) };
        self.channel_write(py, Write::Remove, channel, channel_type_name, items, o, timeout)
    }

    #[pyo3(signature = (channel, channel_type_name, timeout=None))]
    fn get_channel_metadata<'py>(
        &self,
        py: Python<'py>,
        channel: &str,
        channel_type_name: &str,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let op = "get_channel_metadata";
        let st = self.service(op, timeout)?;
        let t = channel_type(op, channel_type_name)?;
        let started = st.get_channel_metadata(channel, t);
        let channel = channel.to_string();
        future_map(py, started, move |py, m| channel_metadata(py, m, &channel, t.name()))
    }

    #[pyo3(signature = (user_id, items, major_revision=-1, lock_name=String::new(), record_ts=false, record_author=false, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn set_user_metadata<'py>(
        &self,
        py: Python<'py>,
        user_id: &str,
        items: Items,
        major_revision: i64,
        lock_name: String,
        record_ts: bool,
        record_author: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = options(major_revision, lock_name, record_ts, record_author);
        self.user_write(py, Write::Set, user_id, items, o, timeout)
    }

    #[pyo3(signature = (user_id, items, major_revision=-1, lock_name=String::new(), record_ts=false, record_author=false, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn update_user_metadata<'py>(
        &self,
        py: Python<'py>,
        user_id: &str,
        items: Items,
        major_revision: i64,
        lock_name: String,
        record_ts: bool,
        record_author: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = options(major_revision, lock_name, record_ts, record_author);
        self.user_write(py, Write::Update, user_id, items, o, timeout)
    }

    #[pyo3(signature = (user_id, items, major_revision=-1, lock_name=String::new(), record_ts=false, record_author=false, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn remove_user_metadata<'py>(
        &self,
        py: Python<'py>,
        user_id: &str,
        items: Items,
        major_revision: i64,
        lock_name: String,
        record_ts: bool,
        record_author: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let o = options(major_revision, lock_name, record_ts, record_author);
        self.user_write(py, Write::Remove, user_id, items, o, timeout)
    }

    #[pyo3(signature = (user_id=String::new(), timeout=None))]
    fn get_user_metadata<'py>(
        &self,
        py: Python<'py>,
        user_id: String,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.client.get().timed("get_user_metadata", timeout)?;
        let started = client.storage().get_user_metadata(&user_id);
        // The response names the user read: "" is this client.
        let user_id = if user_id.is_empty() { client.user_id() } else { user_id };
        future_map(py, started, move |py, m| user_metadata(py, m, &user_id))
    }

    #[pyo3(signature = (user_id, timeout=None))]
    fn subscribe_user_metadata<'py>(
        &self,
        py: Python<'py>,
        user_id: String,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let st = self.service("subscribe_user_metadata", timeout)?;
        let started = st.subscribe_user_metadata(&user_id);
        SubscribeUserMetaResponse::future(py, started, user_id)
    }

    #[pyo3(signature = (user_id, timeout=None))]
    fn unsubscribe_user_metadata<'py>(
        &self,
        py: Python<'py>,
        user_id: String,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let st = self.service("unsubscribe_user_metadata", timeout)?;
        let started = st.unsubscribe_user_metadata(&user_id);
        UnsubscribeUserMetaResponse::future(py, started, user_id)
    }
}
