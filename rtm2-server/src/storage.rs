//! Storage: channel metadata and user metadata, with revisions and compare-and-set.
//!
//! A metadata set is `{major_revision, items}`. Every successful write increments the set's
//! major revision by one and gives each item it writes that new number as its revision, so
//! revisions only grow (also across a "remove all", which keeps the major revision). Writes
//! check, in order: the major revision (absent/-1 no check, 0 the set must be empty, N it must
//! be N), then each item's revision (absent/-1 no check, 0 create only, N it must be N),
//! failing with 12014 on a mismatch. Sets live in a [`Store`]: memory, or a crash-safe redb
//! database whose commits are on disk before the write is acknowledged (`store.rs`).

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use prost::Message;

use rtm2_proto::enums::{ChannelType, MetadataOp, StorageEventType, StorageType};
use rtm2_proto::frame;
use rtm2_proto::pb::{self, server_frame};
use rtm2_proto::validate::{self, Violation};
use rtm2_proto::{ErrorCode, limits, now_ms};

use crate::engine::{App, Engine, Reply};
use crate::meta_commit::{MetaView, Staged};
use crate::scope::ScopeKey;
use crate::session::{Session, response};

/// The store key of a channel's or user's set (the app id has a fixed length and no '/').
fn store_key(app: &str, target: &Target) -> String {
    match target {
        Target::Channel(key) => format!("{app}/c/{}/{}", key.0 as u32, key.1),
        Target::User(user) => format!("{app}/u/{user}"),
    }
}

pub(crate) enum Target {
    Channel(ScopeKey),
    User(String),
}

impl Target {
    fn parse(storage_type: u32, target: &str, channel_type: u32) -> Result<Target, Violation> {
        match StorageType::from_u32(storage_type) {
            Some(StorageType::CHANNEL) => {
                Ok(Target::Channel((validate::scope(target, channel_type)?, target.to_string())))
            }
            Some(StorageType::USER) => {
                validate::user_id(target)?;
                Ok(Target::User(target.to_string()))
            }
            _ => Err(Violation::new(
                ErrorCode::STORAGE_INVALID_ARGUMENT,
                format!("storage type must be USER (1) or CHANNEL (2), not {storage_type}"),
            )),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Channel(k) => format!("{} channel {:?}", k.0.name(), k.1),
            Target::User(u) => format!("user {u:?}"),
        }
    }
}

pub(crate) fn failed(e: io::Error) -> Violation {
    tracing::error!(error = %e, "metadata store failed");
    Violation::new(ErrorCode::STORAGE_OPERATION_FAILED, format!("the metadata store failed: {e}"))
}

/// A set as readers see it: as of its last write on disk (`view`: the engine's `meta_lock`).
fn load_visible(engine: &Engine, view: &MetaView, key: &str) -> Result<pb::Metadata, Violation> {
    match view.visible(key) {
        Some(set) => Ok(set.clone()),
        None => load(engine, key),
    }
}

fn load(engine: &Engine, key: &str) -> Result<pb::Metadata, Violation> {
    match engine.store.load(key).map_err(failed)? {
        None => Ok(pb::Metadata::default()),
        Some(bytes) => pb::Metadata::decode(bytes.as_slice())
            .map_err(|e| failed(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))),
    }
}

pub(crate) fn storage_event(
    event_type: StorageEventType,
    target: &Target,
    publisher: &str,
    data: pb::Metadata,
) -> bytes::Bytes {
    let (storage_type, channel_type, name) = match target {
        Target::Channel(k) => (StorageType::CHANNEL, k.0, k.1.clone()),
        Target::User(u) => (StorageType::USER, ChannelType::NONE, u.clone()),
    };
    frame::encode_server_body(&server_frame::Body::Storage(pb::StorageEvent {
        event_type: event_type as u32,
        storage_type: storage_type as u32,
        channel_type: channel_type as u32,
        target: name,
        publisher: publisher.to_string(),
        data: Some(data),
        timestamp_ms: now_ms(),
    }))
}

fn outdated(what: String) -> Violation {
    Violation::new(ErrorCode::STORAGE_OUTDATED_REVISION, what)
}

/// Applies a write to `set` (checks first, then changes); returns the new set.
pub(crate) fn apply(
    set: &pb::Metadata,
    r: &pb::WriteMetadata,
    op: MetadataOp,
    author: &str,
) -> Result<pb::Metadata, Violation> {
    match r.major_revision {
        Some(0) if !set.items.is_empty() => {
            return Err(outdated("major revision 0 (create only) but the metadata already exists".into()));
        }
        Some(n) if n > 0 && n != set.major_revision => {
            return Err(outdated(format!("major revision is {}, not {n}", set.major_revision)));
        }
        _ => {}
    }
    let mut items: BTreeMap<String, pb::MetadataItem> = set.items.iter().map(|i| (i.key.clone(), i.clone())).collect();
    let major = set.major_revision + 1;
    let now = now_ms();
    let check = |current: Option<&pb::MetadataItem>, key: &str, rev: Option<i64>| -> Result<(), Violation> {
        match (rev, current) {
            (Some(0), Some(_)) => Err(outdated(format!("item {key:?} already exists (revision 0 is create only)"))),
            (Some(n), Some(c)) if n > 0 && c.revision != Some(n) => {
                Err(outdated(format!("item {key:?} has revision {}, not {n}", c.revision.unwrap_or_default())))
            }
            (Some(n), None) if n > 0 => Err(outdated(format!("item {key:?} does not exist"))),
            _ => Ok(()),
        }
    };
    match op {
        MetadataOp::SET | MetadataOp::UPDATE => {
            for it in &r.items {
                let current = items.get(&it.key);
                if op == MetadataOp::UPDATE && current.is_none() {
                    return Err(outdated(format!("item {:?} does not exist (update changes existing items)", it.key)));
                }
                check(current, &it.key, it.revision)?;
            }
            for it in &r.items {
                items.insert(
                    it.key.clone(),
                    pb::MetadataItem {
                        key: it.key.clone(),
                        value: it.value.clone(),
                        revision: Some(major),
                        updated_ms: if r.record_ts { now } else { 0 },
                        author: if r.record_author { author.to_string() } else { String::new() },
                    },
                );
            }
        }
        MetadataOp::REMOVE => {
            if r.items.is_empty() {
                items.clear();
            } else {
                for it in &r.items {
                    check(items.get(&it.key), &it.key, it.revision)?;
                }
                for it in &r.items {
                    items.remove(&it.key);
                }
            }
        }
        _ => unreachable!("checked by the caller"),
    }
    let size: usize = items.values().map(|i| i.key.len() + i.value.len()).sum();
    if size > limits::MAX_METADATA_SET_LEN {
        return Err(Violation::new(
            ErrorCode::STORAGE_METADATA_LENGTH_OVERFLOW,
            format!("the metadata would be {size} bytes; at most {} are allowed", limits::MAX_METADATA_SET_LEN),
        ));
    }
    Ok(pb::Metadata { major_revision: major, items: items.into_values().collect() })
}

/// A metadata write. `None`: answered later (in a cluster, once the write is in the cluster's
/// key-value bucket: `cluster/storage.rs`).
pub(crate) fn write(engine: &Engine, session: &Arc<Session>, request_id: u64, r: pb::WriteMetadata) -> Option<Reply> {
    let (op, target) = match check_write(&r) {
        Ok(checked) => checked,
        Err(v) => return Some(Err(v)),
    };
    if let Some(c) = &engine.cluster {
        return crate::cluster::storage::write(c, session, request_id, r, op, target);
    }
    write_local(engine, session, request_id, r, op, target)
}

/// The checks of a write that need no stored state.
fn check_write(r: &pb::WriteMetadata) -> Result<(MetadataOp, Target), Violation> {
    let op = match MetadataOp::from_u32(r.op) {
        Some(op @ (MetadataOp::SET | MetadataOp::UPDATE | MetadataOp::REMOVE)) => op,
        _ => {
            return Err(Violation::new(
                ErrorCode::STORAGE_INVALID_ARGUMENT,
                format!("op must be SET (1), UPDATE (2) or REMOVE (3), not {}", r.op),
            ));
        }
    };
    let target = Target::parse(r.storage_type, &r.target, r.channel_type)?;
    validate::revision(r.major_revision, op, "major")?;
    validate::metadata_items(r.items.iter().map(|i| (i.key.as_str(), i.value.as_str(), i.revision)), op)?;
    if !r.lock_name.is_empty() {
        if matches!(target, Target::User(_)) {
            return Err(Violation::new(ErrorCode::STORAGE_INVALID_ARGUMENT, "user metadata takes no lock name"));
        }
        validate::lock_name(&r.lock_name)
            .map_err(|v| Violation::new(ErrorCode::STORAGE_INVALID_LOCK_NAME, v.reason))?;
    } else if r.fencing_token != 0 {
        return Err(Violation::new(
            ErrorCode::STORAGE_INVALID_ARGUMENT,
            "a fencing token needs the lock name it belongs to",
        ));
    }
    Ok((op, target))
}

/// The lock check of a write naming a lock: `held` is the fencing token of the writer's grant
/// of that lock, if it holds it.
pub(crate) fn check_lock(
    r: &pb::WriteMetadata,
    target: &Target,
    user: &str,
    held: Option<u64>,
) -> Result<(), Violation> {
    match held {
        None => Err(Violation::new(
            ErrorCode::STORAGE_LOCK_NOT_ACQUIRED,
            format!("lock {:?} of {} is not held by {user:?}", r.lock_name, target.describe()),
        )),
        // A token of an earlier grant: the writer's hold ended since (even if it was
        // granted the lock again), so what it is about to write may rest on stale reads.
        Some(current) if r.fencing_token != 0 && r.fencing_token != current => Err(Violation::new(
            ErrorCode::STORAGE_LOCK_NOT_ACQUIRED,
            format!(
                "fencing token {} of lock {:?} of {} is stale: the current grant has token {current}",
                r.fencing_token,
                r.lock_name,
                target.describe()
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// A write on this server. `None`: answered once it is on disk (`meta_commit.rs`).
fn write_local(
    engine: &Engine,
    session: &Arc<Session>,
    request_id: u64,
    r: pb::WriteMetadata,
    op: MetadataOp,
    target: Target,
) -> Option<Reply> {
    match write_or_stage(engine, session, request_id, r, op, target) {
        Ok(Some(result)) => Some(Ok(Some(pb::response::Result::MetadataWrite(result)))),
        Ok(None) => None,
        Err(v) => Some(Err(v)),
    }
}

/// `Ok(None)`: staged for a group commit.
fn write_or_stage(
    engine: &Engine,
    session: &Arc<Session>,
    request_id: u64,
    r: pb::WriteMetadata,
    op: MetadataOp,
    target: Target,
) -> Result<Option<pb::MetadataWriteResult>, Violation> {
    let app = &session.app;
    let key = store_key(&app.id, &target);
    let mut view = engine.meta_lock.lock().unwrap();
    if let (false, Target::Channel(scope_key)) = (r.lock_name.is_empty(), &target) {
        let held = crate::locks::held_token(app, scope_key, &r.lock_name, &session.user_id);
        check_lock(&r, &target, &session.user_id, held)?;
    }
    let current = match view.latest(&key) {
        Some(set) => set.clone(),
        None => load(engine, &key)?,
    };
    let next = apply(&current, &r, op, &session.user_id)?;
    if let Some(commit) = &engine.meta_commit {
        // On disk together with other writes; answered (and announced) once it is there.
        let publisher = session.user_id.to_string();
        let start = std::time::Instant::now();
        let write =
            Staged { key, next, app: app.clone(), target, publisher, session: session.clone(), request_id, start };
        commit.stage(&mut view, current, write);
        return Ok(None);
    }
    engine.store.save(&key, &next.encode_to_vec()).map_err(failed)?;
    let result = pb::MetadataWriteResult { major_revision: next.major_revision, total_count: next.items.len() as u32 };
    notify(app, &target, &session.user_id, next);
    Ok(Some(result))
}

/// Sends the UPDATE event of a write to the listeners of its channel or user on this node
/// (the caller holds `meta_lock`).
pub(crate) fn notify(app: &App, target: &Target, publisher: &str, data: pb::Metadata) {
    let body = storage_event(StorageEventType::UPDATE, target, publisher, data);
    match target {
        Target::Channel(scope_key) => {
            if let Some(scope) = app.scopes.get(scope_key).map(|s| s.clone()) {
                scope.lock().unwrap().send_to(|e| e.opts.with_metadata, &body);
            }
        }
        Target::User(user) => {
            if let Some(subs) = app.user_meta_subs.lock().unwrap().get(user) {
                for s in subs {
                    s.send(body.clone());
                }
            }
        }
    }
}

/// `None`: answered later (in a cluster, once read from the cluster's bucket).
pub(crate) fn get(engine: &Engine, session: &Arc<Session>, request_id: u64, r: pb::GetMetadata) -> Option<Reply> {
    let target = match Target::parse(r.storage_type, &r.target, r.channel_type) {
        Ok(t) => t,
        Err(v) => return Some(Err(v)),
    };
    if let Some(c) = &engine.cluster {
        let (c, session) = (c.clone(), session.clone());
        tokio::spawn(async move {
            let reply = c.read_metadata(&session.app.id, &target).await;
            session.send(response(request_id, reply.map(|data| Some(pb::response::Result::Metadata(data)))));
        });
        return None;
    }
    let key = store_key(&session.app.id, &target);
    let data = match &engine.meta_commit {
        Some(_) => load_visible(engine, &engine.meta_lock.lock().unwrap(), &key),
        None => load(engine, &key),
    };
    Some(data.map(|data| Some(pb::response::Result::Metadata(data))))
}

/// The set a snapshot shows: in a cluster, this node's replica of the bucket (the caller holds
/// `meta_lock`, under which the replica is updated and its UPDATE events sent).
fn snapshot_data(engine: &Engine, view: &MetaView, app: &App, target: &Target) -> Result<pb::Metadata, Violation> {
    match &engine.cluster {
        Some(c) => Ok(c.replica_metadata(&app.id, target)),
        None => load_visible(engine, view, &store_key(&app.id, target)),
    }
}

/// Sends a channel's metadata SNAPSHOT to a session that entered it with `with_metadata`
/// (the caller holds `meta_lock`: `view` is its guard).
pub(crate) fn send_channel_snapshot(engine: &Engine, view: &MetaView, session: &Arc<Session>, key: &ScopeKey) {
    let target = Target::Channel(key.clone());
    match snapshot_data(engine, view, &session.app, &target) {
        Ok(data) => session.send(storage_event(StorageEventType::SNAPSHOT, &target, "", data)),
        Err(v) => tracing::warn!(reason = %v.reason, "no metadata snapshot sent"),
    }
}

pub(crate) fn subscribe_user(engine: &Engine, session: &Arc<Session>, r: pb::SubscribeUserMetadata) -> Reply {
    validate::user_id(&r.user_id)?;
    let target = Target::User(r.user_id.clone());
    let view = engine.meta_lock.lock().unwrap();
    {
        let mut mine = session.user_meta_subs.lock().unwrap();
        if !mine.contains(&r.user_id) {
            if mine.len() >= limits::MAX_SUBSCRIBED_USER_METADATA {
                return Err(Violation::new(
                    ErrorCode::STORAGE_SUBSCRIBE_USER_EXCEED_LIMITATION,
                    format!("at most {} users' metadata may be subscribed", limits::MAX_SUBSCRIBED_USER_METADATA),
                ));
            }
            mine.insert(r.user_id.clone());
            session.app.user_meta_subs.lock().unwrap().entry(r.user_id.clone()).or_default().push(session.clone());
        }
    }
    let data = snapshot_data(engine, &view, &session.app, &target)?;
    session.send(storage_event(StorageEventType::SNAPSHOT, &target, "", data));
    Ok(None)
}

pub(crate) fn unsubscribe_user(session: &Arc<Session>, r: pb::UnsubscribeUserMetadata) -> Reply {
    validate::user_id(&r.user_id)?;
    if !session.user_meta_subs.lock().unwrap().remove(&r.user_id) {
        return Err(Violation::new(
            ErrorCode::STORAGE_NOT_SUBSCRIBE,
            format!("the metadata of user {:?} is not subscribed", r.user_id),
        ));
    }
    forget_subscriber(session, &r.user_id);
    Ok(None)
}

fn forget_subscriber(session: &Session, user: &str) {
    let mut subs = session.app.user_meta_subs.lock().unwrap();
    if let Some(list) = subs.get_mut(user) {
        list.retain(|s| s.id != session.id);
        if list.is_empty() {
            subs.remove(user);
        }
    }
}

/// Forgets every user-metadata subscription of an ending session.
pub(crate) fn drop_user_subscriptions(session: &Arc<Session>) {
    let users = std::mem::take(&mut *session.user_meta_subs.lock().unwrap());
    for u in users {
        forget_subscriber(session, &u);
    }
}
