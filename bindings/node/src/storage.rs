//! `NativeStorage`: the storage service of a client (channel and user metadata with
//! revisions) and the `storage` event payload, in agora-rtm-sdk shapes.

use std::collections::BTreeMap;

use napi::Env;
use napi::bindgen_prelude::Object;
use napi_derive::napi;

use rtm2_core::{Metadata, MetadataItem, MetadataOptions, MetadataWrite, Storage, Timed};

use crate::client::Shared;
use crate::convert;
use crate::op::{self, CancelToken};

/// An item to write. `revision` is a condition: -1 (none given) no check, 0 create only (set),
/// N the item's revision must be N (else 12014). For removal only `key` matters.
#[napi(object)]
pub struct NativeMetadataItem {
    pub key: String,
    pub value: Option<String>,
    pub revision: Option<i64>,
}

/// Options of metadata writes (agora-rtm-sdk names).
#[napi(object)]
pub struct NativeMetadataOptions {
    /// -1 (none given) no check, 0 the set must be empty (set only), N the set's major revision
    /// must be N (else 12014).
    pub major_revision: Option<i64>,
    /// Write only if this client holds this lock of the channel (12008); user metadata takes
    /// none (12004).
    pub lock_name: Option<String>,
    /// Stamp the written items with the server time (`updated`).
    pub add_time_stamp: Option<bool>,
    /// Stamp the written items with this user id (`authorUid`).
    pub add_user_id: Option<bool>,
    /// With `lockName`: the fencing token of this client's grant (from `acquireLock`); the
    /// write is refused (12008) unless it is the lock's current grant. 0 / none: not checked.
    pub fencing_token: Option<f64>,
}

/// One item of a metadata set, by key in `metadata`.
#[napi(object)]
pub struct MetadataDetail {
    pub value: String,
    /// The major revision of the write that wrote it.
    pub revision: i64,
    /// When it was written, ms (0 unless the write had `addTimeStamp`).
    pub updated: f64,
    /// Who wrote it (`''` unless the write had `addUserId`).
    pub author_uid: String,
}

/// A metadata set: its major revision and its items by key.
#[napi(object)]
pub struct StorageData {
    pub total_count: u32,
    /// Incremented by every write of the set (0: never written).
    pub major_revision: i64,
    pub metadata: BTreeMap<String, MetadataDetail>,
}

/// The outcome of a metadata write.
#[napi(object)]
pub struct MetadataWriteResult {
    /// Items in the set after the write.
    pub total_count: u32,
    /// The set's new major revision (also the revision of every item written).
    pub major_revision: i64,
    /// The server's time of the answer, ms since the epoch.
    pub timestamp: f64,
}

/// A metadata set as a read answers it: the set's fields and the server's time of the answer.
#[napi(object)]
pub struct MetadataAnswer {
    pub total_count: u32,
    /// Incremented by every write of the set (0: never written).
    pub major_revision: i64,
    pub metadata: BTreeMap<String, MetadataDetail>,
    /// The server's time of the answer, ms since the epoch.
    pub timestamp: f64,
}

/// A storage event (`storage` event): the whole set after a change (UPDATE) or when
/// subscribing (SNAPSHOT).
#[napi(object)]
pub struct StorageEvent {
    /// `'SNAPSHOT'` or `'UPDATE'`.
    pub event_type: String,
    /// `'CHANNEL'` or `'USER'`.
    pub storage_type: String,
    /// `'MESSAGE'` or `'STREAM'` for channel metadata, `'NONE'` for user metadata.
    pub channel_type: String,
    /// The channel name, or the user id for user metadata.
    pub channel_name: String,
    /// Who wrote (`''` for SNAPSHOT).
    pub publisher: String,
    pub data: StorageData,
    /// Server time, ms since the epoch.
    pub timestamp: f64,
}

pub(crate) fn data(m: &Metadata) -> StorageData {
    StorageData {
        total_count: m.items.len() as u32,
        major_revision: m.major_revision,
        metadata: m
            .items
            .iter()
            .map(|i| {
                let d = MetadataDetail {
                    value: i.value.clone(),
                    revision: i.revision,
                    updated: i.updated_ms as f64,
                    author_uid: i.author.clone(),
                };
                (i.key.clone(), d)
            })
            .collect(),
    }
}

pub(crate) fn event(e: &rtm2_core::StorageEvent) -> StorageEvent {
    StorageEvent {
        event_type: e.event_type.name().to_string(),
        storage_type: e.storage_type.name().to_string(),
        channel_type: e.channel_type.name().to_string(),
        channel_name: e.target.clone(),
        publisher: e.publisher.clone(),
        data: data(&e.data),
        timestamp: e.timestamp_ms as f64,
    }
}

fn items(items: Option<Vec<NativeMetadataItem>>) -> Vec<MetadataItem> {
    items
        .unwrap_or_default()
        .into_iter()
        .map(|i| MetadataItem::new(i.key, i.value.unwrap_or_default()).with_revision(i.revision.unwrap_or(-1)))
        .collect()
}

fn options(o: Option<NativeMetadataOptions>) -> MetadataOptions {
    let mut mo = MetadataOptions::default();
    if let Some(o) = o {
        mo.major_revision = o.major_revision.unwrap_or(mo.major_revision);
        mo.lock_name = o.lock_name.unwrap_or_default();
        mo.record_ts = o.add_time_stamp.unwrap_or(false);
        mo.record_author = o.add_user_id.unwrap_or(false);
        // A JS number: negative, fractional or NaN values are no token a server ever issued;
        // they saturate to 0 (not checked) or to an integer the server refuses as stale.
        mo.fencing_token = o.fencing_token.unwrap_or(0.0) as u64;
    }
    mo
}

fn write_result(w: Timed<MetadataWrite>) -> MetadataWriteResult {
    MetadataWriteResult {
        total_count: w.total_count,
        major_revision: w.major_revision,
        timestamp: w.timestamp_ms as f64,
    }
}

fn read_result(m: Timed<Metadata>) -> MetadataAnswer {
    let StorageData { total_count, major_revision, metadata } = data(&m);
    MetadataAnswer { total_count, major_revision, metadata, timestamp: m.timestamp_ms as f64 }
}

/// Which write a call is.
#[derive(Clone, Copy)]
enum Write {
    Set,
    Update,
    Remove,
}

/// The storage service of a client. Every method returns a Promise and takes an optional
/// per-call timeout (ms) and a cancel token. User ids `''` (or none) mean this client.
#[napi]
pub struct NativeStorage {
    client: Shared,
}

impl NativeStorage {
    pub(crate) fn new(client: Shared) -> Self {
        NativeStorage { client }
    }

    fn service(&self, op: &'static str, timeout_ms: Option<u32>) -> rtm2_core::Result<Storage> {
        Ok(self.client.get(op, timeout_ms)?.storage())
    }

    #[allow(clippy::too_many_arguments)]
    fn channel_write<'e>(
        &self,
        env: &'e Env,
        kind: Write,
        channel: String,
        channel_type: Option<String>,
        data: Option<Vec<NativeMetadataItem>>,
        opts: Option<NativeMetadataOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let op = match kind {
            Write::Set => "set_channel_metadata",
            Write::Update => "update_channel_metadata",
            Write::Remove => "remove_channel_metadata",
        };
        let prep = || -> rtm2_core::Result<_> {
            let t = convert::channel_type(channel_type.as_deref(), op)?;
            Ok((self.service(op, timeout_ms)?, t))
        };
        match prep() {
            Ok((s, t)) => {
                let (items, opts) = (items(data), options(opts));
                let call = match kind {
                    Write::Set => s.set_channel_metadata(&channel, t, items, opts),
                    Write::Update => s.update_channel_metadata(&channel, t, items, opts),
                    Write::Remove => s.remove_channel_metadata(&channel, t, items, opts),
                };
                op::promise(env, cancel, async move { call.await.map(write_result) })
            }
            Err(e) => op::rejected(env, e),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn user_write<'e>(
        &self,
        env: &'e Env,
        kind: Write,
        user_id: Option<String>,
        data: Option<Vec<NativeMetadataItem>>,
        opts: Option<NativeMetadataOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let op = match kind {
            Write::Set => "set_user_metadata",
            Write::Update => "update_user_metadata",
            Write::Remove => "remove_user_metadata",
        };
        match self.service(op, timeout_ms) {
            Ok(s) => {
                let (user, items, opts) = (user_id.unwrap_or_default(), items(data), options(opts));
                let call = match kind {
                    Write::Set => s.set_user_metadata(&user, items, opts),
                    Write::Update => s.update_user_metadata(&user, items, opts),
                    Write::Remove => s.remove_user_metadata(&user, items, opts),
                };
                op::promise(env, cancel, async move { call.await.map(write_result) })
            }
            Err(e) => op::rejected(env, e),
        }
    }
}

#[napi]
impl NativeStorage {
    /// Adds or overwrites items of a channel's metadata (at most 32 per call).
    #[napi(ts_return_type = "Promise<MetadataWriteResult>")]
    #[allow(clippy::too_many_arguments)]
    pub fn set_channel_metadata<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        data: Vec<NativeMetadataItem>,
        options: Option<NativeMetadataOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        self.channel_write(env, Write::Set, channel, channel_type, Some(data), options, timeout_ms, cancel)
    }

    /// Changes existing items of a channel's metadata (12014 if one does not exist).
    #[napi(ts_return_type = "Promise<MetadataWriteResult>")]
    #[allow(clippy::too_many_arguments)]
    pub fn update_channel_metadata<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        data: Vec<NativeMetadataItem>,
        options: Option<NativeMetadataOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        self.channel_write(env, Write::Update, channel, channel_type, Some(data), options, timeout_ms, cancel)
    }

    /// Removes items (by key) of a channel's metadata; none or empty: the whole set.
    #[napi(ts_return_type = "Promise<MetadataWriteResult>")]
    #[allow(clippy::too_many_arguments)]
    pub fn remove_channel_metadata<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        data: Option<Vec<NativeMetadataItem>>,
        options: Option<NativeMetadataOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        self.channel_write(env, Write::Remove, channel, channel_type, data, options, timeout_ms, cancel)
    }

    /// A channel's metadata (empty, major revision 0, if never written).
    #[napi(ts_return_type = "Promise<MetadataAnswer>")]
    pub fn get_channel_metadata<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let op = "get_channel_metadata";
        let prep = || -> rtm2_core::Result<_> {
            let t = convert::channel_type(channel_type.as_deref(), op)?;
            Ok((self.service(op, timeout_ms)?, t))
        };
        match prep() {
            Ok((s, t)) => {
                let call = s.get_channel_metadata(&channel, t);
                op::promise(env, cancel, async move { call.await.map(read_result) })
            }
            Err(e) => op::rejected(env, e),
        }
    }

    /// Adds or overwrites items of a user's metadata.
    #[napi(ts_return_type = "Promise<MetadataWriteResult>")]
    pub fn set_user_metadata<'e>(
        &self,
        env: &'e Env,
        user_id: Option<String>,
        data: Vec<NativeMetadataItem>,
        options: Option<NativeMetadataOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        self.user_write(env, Write::Set, user_id, Some(data), options, timeout_ms, cancel)
    }

    /// Changes existing items of a user's metadata (12014 if one does not exist).
    #[napi(ts_return_type = "Promise<MetadataWriteResult>")]
    pub fn update_user_metadata<'e>(
        &self,
        env: &'e Env,
        user_id: Option<String>,
        data: Vec<NativeMetadataItem>,
        options: Option<NativeMetadataOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        self.user_write(env, Write::Update, user_id, Some(data), options, timeout_ms, cancel)
    }

    /// Removes items of a user's metadata; none or empty: the whole set.
    #[napi(ts_return_type = "Promise<MetadataWriteResult>")]
    pub fn remove_user_metadata<'e>(
        &self,
        env: &'e Env,
        user_id: Option<String>,
        data: Option<Vec<NativeMetadataItem>>,
        options: Option<NativeMetadataOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        self.user_write(env, Write::Remove, user_id, data, options, timeout_ms, cancel)
    }

    /// A user's metadata.
    #[napi(ts_return_type = "Promise<MetadataAnswer>")]
    pub fn get_user_metadata<'e>(
        &self,
        env: &'e Env,
        user_id: Option<String>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.service("get_user_metadata", timeout_ms) {
            Ok(s) => {
                let call = s.get_user_metadata(&user_id.unwrap_or_default());
                op::promise(env, cancel, async move { call.await.map(read_result) })
            }
            Err(e) => op::rejected(env, e),
        }
    }

    /// Receives a user's metadata: a SNAPSHOT event now, then an UPDATE per change (at most 50
    /// users, 12017).
    /// Resolves with the server's time of the answer (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn subscribe_user_metadata<'e>(
        &self,
        env: &'e Env,
        user_id: String,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.service("subscribe_user_metadata", timeout_ms) {
            Ok(s) => op::ack(env, cancel, s.subscribe_user_metadata(&user_id)),
            Err(e) => op::rejected(env, e),
        }
    }

    /// Stops receiving a user's metadata (12015 if not subscribed).
    /// Resolves with the server's time of the answer (ms since the epoch).
    #[napi(ts_return_type = "Promise<number>")]
    pub fn unsubscribe_user_metadata<'e>(
        &self,
        env: &'e Env,
        user_id: String,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        match self.service("unsubscribe_user_metadata", timeout_ms) {
            Ok(s) => op::ack(env, cancel, s.unsubscribe_user_metadata(&user_id)),
            Err(e) => op::rejected(env, e),
        }
    }
}
