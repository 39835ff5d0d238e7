//! Storage: channel metadata and user metadata with revisions (compare-and-set).

use std::sync::Arc;

use rtm2_proto::enums::{ChannelType, MetadataOp, StorageEventType, StorageType};
use rtm2_proto::pb::{self, client_frame};
use rtm2_proto::{ErrorCode, limits, validate};

use crate::client::{Client, Inner, Late, Target as LateTarget, try_op};
use crate::error::{Error, Result};
use crate::runtime::Op;
use crate::types::{Ack, Timed};

/// One metadata item. In writes, `revision` is a condition: -1 (the default) no check, 0
/// create only (set), N the item's current revision must be N (else 12014). In reads and
/// events it is the item's revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataItem {
    /// Key (≤ 32 bytes, name rule).
    pub key: String,
    /// Value (≤ 16 KB).
    pub value: String,
    /// See the type's documentation.
    pub revision: i64,
    /// When it was written, ms (0 unless the write asked for `record_ts`). Read-only.
    pub updated_ms: u64,
    /// Who wrote it ("" unless the write asked for `record_author`). Read-only.
    pub author: String,
}

impl MetadataItem {
    /// An item with no revision check.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        MetadataItem { key: key.into(), value: value.into(), revision: -1, updated_ms: 0, author: String::new() }
    }

    /// A key to remove (the value does not matter for removal).
    pub fn key(key: impl Into<String>) -> Self {
        Self::new(key, "")
    }

    /// The same item with a revision condition.
    pub fn with_revision(mut self, revision: i64) -> Self {
        self.revision = revision;
        self
    }
}

impl From<pb::MetadataItem> for MetadataItem {
    fn from(i: pb::MetadataItem) -> Self {
        MetadataItem {
            key: i.key,
            value: i.value,
            revision: i.revision.unwrap_or(0),
            updated_ms: i.updated_ms,
            author: i.author,
        }
    }
}

/// A metadata set: its major revision and its items (sorted by key).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Incremented by every write of the set (0: never written).
    pub major_revision: i64,
    /// The items.
    pub items: Vec<MetadataItem>,
}

impl Metadata {
    /// The item of a key.
    pub fn get(&self, key: &str) -> Option<&MetadataItem> {
        self.items.iter().find(|i| i.key == key)
    }
}

impl From<pb::Metadata> for Metadata {
    fn from(m: pb::Metadata) -> Self {
        Metadata { major_revision: m.major_revision, items: m.items.into_iter().map(Into::into).collect() }
    }
}

/// Options of metadata writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataOptions {
    /// -1 (default) no check, 0 the set must be empty (set only), N the set's major revision
    /// must be N (else 12014).
    pub major_revision: i64,
    /// Channel metadata only: write only if this client holds this lock of the channel (12008).
    pub lock_name: String,
    /// With `lock_name`: the fencing token of the grant this client holds (from
    /// `acquire_lock`); the write is refused with 12008 unless it is the lock's current grant,
    /// so a writer whose hold ended (even if it got the lock again since) cannot write on
    /// stale reads. 0 (default) = not checked.
    pub fencing_token: u64,
    /// Stamp the written items with the server time.
    pub record_ts: bool,
    /// Stamp the written items with this user id.
    pub record_author: bool,
}

impl Default for MetadataOptions {
    fn default() -> Self {
        MetadataOptions {
            major_revision: -1,
            lock_name: String::new(),
            fencing_token: 0,
            record_ts: false,
            record_author: false,
        }
    }
}

/// The outcome of a metadata write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataWrite {
    /// The set's new major revision (also the revision of every item written).
    pub major_revision: i64,
    /// Items in the set after the write.
    pub total_count: u32,
}

/// A storage event: the whole set after a change (UPDATE) or when subscribing (SNAPSHOT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageEvent {
    /// SNAPSHOT or UPDATE (full-data mode).
    pub event_type: StorageEventType,
    /// CHANNEL or USER.
    pub storage_type: StorageType,
    /// MESSAGE or STREAM for channel metadata; NONE for user metadata.
    pub channel_type: ChannelType,
    /// The channel name or the user id.
    pub target: String,
    /// Who wrote (empty for SNAPSHOT).
    pub publisher: String,
    /// The whole set.
    pub data: Metadata,
    /// Server time, ms.
    pub timestamp_ms: u64,
}

impl From<pb::StorageEvent> for StorageEvent {
    fn from(e: pb::StorageEvent) -> Self {
        StorageEvent {
            event_type: StorageEventType::from_u32(e.event_type).unwrap_or(StorageEventType::NONE),
            storage_type: StorageType::from_u32(e.storage_type).unwrap_or(StorageType::NONE),
            channel_type: ChannelType::from_u32(e.channel_type).unwrap_or(ChannelType::NONE),
            target: e.target,
            publisher: e.publisher,
            data: e.data.map(Into::into).unwrap_or_default(),
            timestamp_ms: e.timestamp_ms,
        }
    }
}

/// The storage service of a client (`Client::storage`). Works without subscribing; events
/// need `with_metadata` (channel) or [`subscribe_user_metadata`](Self::subscribe_user_metadata).
#[derive(Clone)]
pub struct Storage {
    pub(crate) client: Client,
}

fn v(op: &'static str, r: std::result::Result<(), validate::Violation>) -> Result<()> {
    r.map_err(|v| Error::from_violation(op, v))
}

/// (storage type, target, channel type) of a call.
struct Target(StorageType, String, ChannelType);

impl Storage {
    fn inner(&self) -> &Arc<Inner> {
        &self.client.inner
    }

    fn request(
        &self,
        op: &'static str,
        body: client_frame::Body,
    ) -> impl Future<Output = Result<pb::Response>> + Send + 'static {
        self.inner().submit(op, ErrorCode::STORAGE_OPERATION_TIMEOUT, body, self.client.timeout())
    }

    fn channel(op: &'static str, channel: &str, channel_type: ChannelType) -> Result<Target> {
        v(op, validate::scope(channel, channel_type as u32).map(|_| ()))?;
        Ok(Target(StorageType::CHANNEL, channel.to_string(), channel_type))
    }

    fn user(&self, op: &'static str, user_id: &str) -> Result<Target> {
        let user = if user_id.is_empty() { self.client.user_id() } else { user_id.to_string() };
        v(op, validate::user_id(&user))?;
        Ok(Target(StorageType::USER, user, ChannelType::NONE))
    }

    fn write(
        &self,
        op: &'static str,
        kind: MetadataOp,
        target: Result<Target>,
        items: Vec<MetadataItem>,
        options: MetadataOptions,
    ) -> Op<Result<Timed<MetadataWrite>>> {
        let Target(storage_type, target, channel_type) = try_op!(target);
        let wire = |r: i64| if r == -1 { None } else { Some(r) };
        try_op!(v(op, validate::revision(wire(options.major_revision), kind, "major")));
        if kind == MetadataOp::REMOVE && options.major_revision == 0 {
            return Op::ready(Err(Error::new(
                ErrorCode::STORAGE_INVALID_REVISION,
                op,
                "major revision 0 is only valid for set",
            )));
        }
        try_op!(v(
            op,
            validate::metadata_items(items.iter().map(|i| (i.key.as_str(), i.value.as_str(), wire(i.revision))), kind)
        ));
        if !options.lock_name.is_empty() {
            if storage_type == StorageType::USER {
                return Op::ready(Err(Error::new(
                    ErrorCode::STORAGE_INVALID_ARGUMENT,
                    op,
                    "user metadata takes no lock name",
                )));
            }
            try_op!(validate::lock_name(&options.lock_name).map_err(|e| Error::new(
                ErrorCode::STORAGE_INVALID_LOCK_NAME,
                op,
                e.reason
            )));
        } else if options.fencing_token != 0 {
            return Op::ready(Err(Error::new(
                ErrorCode::STORAGE_INVALID_ARGUMENT,
                op,
                "a fencing token needs the lock name it belongs to",
            )));
        }
        let body = client_frame::Body::WriteMetadata(pb::WriteMetadata {
            storage_type: storage_type as u32,
            target,
            channel_type: channel_type as u32,
            op: kind as u32,
            major_revision: wire(options.major_revision),
            items: items
                .into_iter()
                .map(|i| pb::MetadataItem {
                    key: i.key,
                    value: if kind == MetadataOp::REMOVE { String::new() } else { i.value },
                    revision: wire(i.revision),
                    updated_ms: 0,
                    author: String::new(),
                })
                .collect(),
            lock_name: options.lock_name,
            fencing_token: options.fencing_token,
            record_ts: options.record_ts,
            record_author: options.record_author,
        });
        let reply = self.request(op, body);
        Op::lazy(async move {
            let resp = reply.await?;
            let ts = resp.server_time_ms;
            match resp.result {
                Some(pb::response::Result::MetadataWrite(w)) => Ok(Timed {
                    value: MetadataWrite { major_revision: w.major_revision, total_count: w.total_count },
                    timestamp_ms: ts,
                }),
                _ => Err(Error::new(ErrorCode::STORAGE_OPERATION_FAILED, op, "the server sent no write result")),
            }
        })
    }

    fn read(&self, op: &'static str, target: Result<Target>) -> Op<Result<Timed<Metadata>>> {
        let Target(storage_type, target, channel_type) = try_op!(target);
        let reply = self.request(
            op,
            client_frame::Body::GetMetadata(pb::GetMetadata {
                storage_type: storage_type as u32,
                target,
                channel_type: channel_type as u32,
            }),
        );
        Op::lazy(async move {
            let resp = reply.await?;
            let ts = resp.server_time_ms;
            let m = match resp.result {
                Some(pb::response::Result::Metadata(m)) => m.into(),
                _ => Metadata::default(),
            };
            Ok(Timed { value: m, timestamp_ms: ts })
        })
    }

    /// Adds or overwrites items of a channel's metadata (at most 32 per call).
    pub fn set_channel_metadata(
        &self,
        channel: &str,
        channel_type: ChannelType,
        items: Vec<MetadataItem>,
        options: MetadataOptions,
    ) -> Op<Result<Timed<MetadataWrite>>> {
        let op = "set_channel_metadata";
        self.write(op, MetadataOp::SET, Self::channel(op, channel, channel_type), items, options)
    }

    /// Changes existing items of a channel's metadata (12014 if one does not exist).
    pub fn update_channel_metadata(
        &self,
        channel: &str,
        channel_type: ChannelType,
        items: Vec<MetadataItem>,
        options: MetadataOptions,
    ) -> Op<Result<Timed<MetadataWrite>>> {
        let op = "update_channel_metadata";
        self.write(op, MetadataOp::UPDATE, Self::channel(op, channel, channel_type), items, options)
    }

    /// Removes items (by key) of a channel's metadata; `items` empty: removes all of them.
    pub fn remove_channel_metadata(
        &self,
        channel: &str,
        channel_type: ChannelType,
        items: Vec<MetadataItem>,
        options: MetadataOptions,
    ) -> Op<Result<Timed<MetadataWrite>>> {
        let op = "remove_channel_metadata";
        self.write(op, MetadataOp::REMOVE, Self::channel(op, channel, channel_type), items, options)
    }

    /// A channel's metadata (empty, major revision 0, if never written).
    pub fn get_channel_metadata(&self, channel: &str, channel_type: ChannelType) -> Op<Result<Timed<Metadata>>> {
        let op = "get_channel_metadata";
        self.read(op, Self::channel(op, channel, channel_type))
    }

    /// Adds or overwrites items of a user's metadata (`user_id` "" = this client).
    pub fn set_user_metadata(
        &self,
        user_id: &str,
        items: Vec<MetadataItem>,
        options: MetadataOptions,
    ) -> Op<Result<Timed<MetadataWrite>>> {
        let op = "set_user_metadata";
        self.write(op, MetadataOp::SET, self.user(op, user_id), items, options)
    }

    /// Changes existing items of a user's metadata.
    pub fn update_user_metadata(
        &self,
        user_id: &str,
        items: Vec<MetadataItem>,
        options: MetadataOptions,
    ) -> Op<Result<Timed<MetadataWrite>>> {
        let op = "update_user_metadata";
        self.write(op, MetadataOp::UPDATE, self.user(op, user_id), items, options)
    }

    /// Removes items of a user's metadata; `items` empty: all of them.
    pub fn remove_user_metadata(
        &self,
        user_id: &str,
        items: Vec<MetadataItem>,
        options: MetadataOptions,
    ) -> Op<Result<Timed<MetadataWrite>>> {
        let op = "remove_user_metadata";
        self.write(op, MetadataOp::REMOVE, self.user(op, user_id), items, options)
    }

    /// A user's metadata (`user_id` "" = this client).
    pub fn get_user_metadata(&self, user_id: &str) -> Op<Result<Timed<Metadata>>> {
        let op = "get_user_metadata";
        self.read(op, self.user(op, user_id))
    }

    /// Receive a user's metadata: a SNAPSHOT event now, then an UPDATE per change (at most 50
    /// users, 12017). Restored after reconnects.
    pub fn subscribe_user_metadata(&self, user_id: &str) -> Op<Result<Ack>> {
        let op = "subscribe_user_metadata";
        try_op!(v(op, validate::user_id(user_id)));
        {
            let st = self.inner().state.lock().unwrap();
            if !st.cache.user_metadata.contains(user_id)
                && st.cache.user_metadata.len() >= limits::MAX_SUBSCRIBED_USER_METADATA
            {
                return Op::ready(Err(Error::new(
                    ErrorCode::STORAGE_SUBSCRIBE_USER_EXCEED_LIMITATION,
                    op,
                    format!("at most {} users' metadata may be subscribed", limits::MAX_SUBSCRIBED_USER_METADATA),
                )));
            }
        }
        let user = user_id.to_string();
        // Carried out after the caller stopped waiting: undone, unless subscribed before or a
        // newer (un)subscribe of this user decides.
        let late = Late::new(LateTarget::UserMetadata(user.clone()), move |inner, _, superseded| {
            if superseded || inner.state.lock().unwrap().cache.user_metadata.contains(&user) {
                return;
            }
            let body = client_frame::Body::UnsubscribeUserMetadata(pb::UnsubscribeUserMetadata { user_id: user });
            inner.send_corrective("unsubscribe_user_metadata", ErrorCode::STORAGE_OPERATION_TIMEOUT, body);
        });
        let reply = self.inner().submit_stateful(
            op,
            ErrorCode::STORAGE_OPERATION_TIMEOUT,
            subscribe_user_body(user_id),
            self.client.timeout(),
            late,
        );
        let (inner, user) = (self.inner().clone(), user_id.to_string());
        Op::lazy(async move {
            let r = reply.await?;
            inner.state.lock().unwrap().cache.user_metadata.insert(user);
            Ok(Ack::of(&r))
        })
    }

    /// Stops receiving a user's metadata (12015 if not subscribed).
    pub fn unsubscribe_user_metadata(&self, user_id: &str) -> Op<Result<Ack>> {
        let op = "unsubscribe_user_metadata";
        try_op!(v(op, validate::user_id(user_id)));
        let user = user_id.to_string();
        // Carried out after the caller stopped waiting: the client is unsubscribed too.
        let late = Late::new(LateTarget::UserMetadata(user.clone()), move |inner, _, superseded| {
            if !superseded {
                inner.state.lock().unwrap().cache.user_metadata.remove(&user);
            }
        });
        let reply = self.inner().submit_stateful(
            op,
            ErrorCode::STORAGE_OPERATION_TIMEOUT,
            client_frame::Body::UnsubscribeUserMetadata(pb::UnsubscribeUserMetadata { user_id: user_id.to_string() }),
            self.client.timeout(),
            late,
        );
        let (inner, user) = (self.inner().clone(), user_id.to_string());
        Op::lazy(async move {
            let r = reply.await;
            if r.is_ok() || r.as_ref().is_err_and(|e| e.code == ErrorCode::STORAGE_NOT_SUBSCRIBE) {
                inner.state.lock().unwrap().cache.user_metadata.remove(&user);
            }
            r.map(|r| Ack::of(&r))
        })
    }
}

pub(crate) fn subscribe_user_body(user_id: &str) -> client_frame::Body {
    client_frame::Body::SubscribeUserMetadata(pb::SubscribeUserMetadata { user_id: user_id.to_string() })
}
