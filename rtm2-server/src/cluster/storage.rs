//! Channel and user metadata shared by every node, in the JetStream key-value bucket
//! `rtm2-meta` (docs/CLUSTER.md).
//!
//! One bucket entry per metadata set: key `<app>.c<channel type>.<channel>` or
//! `<app>.u.<user>` (hex-encoded, as the cluster's subjects), value a [`Stored`]: the set and
//! the user id of the write that made it. The rules of a write are those of one node
//! (`storage::apply`); only where the set is read from and written to differs:
//!
//! * a write reads the entry and its revision, applies the rules, and writes the new set only
//!   if the entry still has that revision (`update`, or `create` for a set that does not exist
//!   yet); on a conflict (another node wrote meanwhile) it starts again from a fresh read, so
//!   a conditional write that lost a race sees the winner's revision and fails with 12014, as
//!   on one node. The client is answered once the bucket acknowledged the write. When the
//!   outcome is unknown (the acknowledgement did not come), the entry is read again: the write
//!   is reported as done only if the bucket holds it, so a client told "failed" was not
//!   written (unless the write was still in flight in NATS after that read);
//! * every node watches the bucket and keeps a replica of it; under the engine's `meta_lock`
//!   it applies each change to the replica and sends the UPDATE event to its own listeners of
//!   that channel (`with_metadata`) or user. A new listener is registered and given its
//!   SNAPSHOT from the replica under the same lock, so it gets every later change exactly once,
//!   in revision order (the order of the bucket's stream);
//! * reads (`getChannelMetadata`, `getUserMetadata`) read the bucket, not the replica: a read
//!   on any node sees every write acknowledged before it.
//!
//! Requests of one session that go to the buckets (metadata and locks) run one after the
//! other, in the order the session sent them ([`Serial`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::future::BoxFuture;
use prost::Message;
use tokio::sync::mpsc;

use rtm2_proto::enums::{ChannelType, MetadataOp};
use rtm2_proto::pb;
use rtm2_proto::validate::Violation;
use rtm2_proto::{ErrorCode, now_ms};

use super::bucket::{follow, open_bucket};
use super::{Cluster, hex, unhex};
use crate::engine::{Engine, Reply};
use crate::session::{Session, response};
use crate::storage::{self, Target};

/// The metadata bucket.
pub(crate) const BUCKET: &str = "rtm2-meta";

/// Attempts of one write against concurrent writes of the same set before it gives up.
const MAX_ATTEMPTS: usize = 64;

/// A bucket entry: a metadata set and who wrote it.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Stored {
    #[prost(message, optional, tag = "1")]
    pub data: Option<pb::Metadata>,
    /// The user id of the write (the UPDATE event's publisher).
    #[prost(string, tag = "2")]
    pub publisher: String,
    /// When the write was made (ms; tells identical sets written twice apart).
    #[prost(uint64, tag = "3")]
    pub written_ms: u64,
}

/// This node's side of the metadata bucket.
#[derive(Default)]
pub(crate) struct State {
    kv: OnceLock<kv::Store>,
    /// The bucket as this node last saw it: key -> (revision, set). Changed under `meta_lock`.
    replica: Mutex<HashMap<String, (u64, pb::Metadata)>>,
    /// Requests to the buckets, in order per session.
    pub(super) serial: Serial,
}

/// Runs the bucket requests of each session one after the other, in the order they came.
#[derive(Default)]
pub(crate) struct Serial {
    queues: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<BoxFuture<'static, ()>>>>>,
}

impl Serial {
    /// Runs `job` after the earlier jobs of session `id`.
    pub(crate) fn run(&self, id: u64, job: BoxFuture<'static, ()>) {
        let mut queues = self.queues.lock().unwrap();
        let job = match queues.get(&id) {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _ = tx.send(job);
        queues.insert(id, tx);
        let queues = self.queues.clone();
        tokio::spawn(async move {
            loop {
                match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
                    Ok(Some(job)) => job.await,
                    Ok(None) => return,
                    Err(_) => {
                        // Idle: gone, unless a job came in the meantime (senders hold the map).
                        let mut q = queues.lock().unwrap();
                        match rx.try_recv() {
                            Ok(job) => {
                                drop(q);
                                job.await;
                            }
                            Err(_) => {
                                q.remove(&id);
                                return;
                            }
                        }
                    }
                }
            }
        });
    }
}

/// The bucket key of a set.
pub(crate) fn kv_key(app: &str, target: &Target) -> String {
    match target {
        Target::Channel((t, name)) => format!("{}.c{}.{}", hex(app.as_bytes()), *t as u32, hex(name.as_bytes())),
        Target::User(user) => format!("{}.u.{}", hex(app.as_bytes()), hex(user.as_bytes())),
    }
}

fn parse_key(key: &str) -> Option<(String, Target)> {
    let mut parts = key.split('.');
    let app = unhex(parts.next()?)?;
    let kind = parts.next()?;
    let name = unhex(parts.next()?)?;
    let target = match kind {
        "u" => Target::User(name),
        c => Target::Channel((ChannelType::from_u32(c.strip_prefix('c')?.parse().ok()?)?, name)),
    };
    Some((app, target))
}

/// The failure of a request this node cannot take to the bucket (`code`: the service's
/// OPERATION_FAILED).
pub(crate) fn unavailable(c: &Cluster, code: ErrorCode) -> Violation {
    Violation::new(
        code,
        format!("node {} is not connected to the cluster (NATS): try again or another node", c.node_id),
    )
}

fn failed(why: impl std::fmt::Display) -> Violation {
    tracing::warn!(error = %why, "cluster: a metadata request to NATS failed");
    Violation::new(ErrorCode::STORAGE_OPERATION_FAILED, format!("the cluster's metadata store failed: {why}"))
}

/// Binds the metadata bucket and starts watching it (the node is not ready before).
pub(super) async fn bind(
    c: &Arc<Cluster>,
    js: &jetstream::Context,
    replicas: usize,
    engine: Weak<Engine>,
) -> Result<(), String> {
    let store = open_bucket(js, BUCKET, replicas, "rtm2: channel and user metadata").await?;
    follow(c, &store, "metadata", engine, |c, engine, entry| apply_change(c, engine, entry)).await?;
    let _ = c.storage.kv.set(store);
    Ok(())
}

/// A change of the bucket: into the replica, and its UPDATE event to this node's listeners.
fn apply_change(c: &Cluster, engine: &Engine, entry: kv::Entry) {
    let Some((app_id, target)) = parse_key(&entry.key) else { return };
    let stored = match entry.operation {
        kv::Operation::Put => match Stored::decode(entry.value.as_ref()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(key = %entry.key, error = %e, "cluster: an undecodable metadata entry");
                return;
            }
        },
        _ => Stored::default(),
    };
    let data = stored.data.unwrap_or_default();
    let _guard = engine.meta_lock.lock().unwrap();
    {
        let mut replica = c.storage.replica.lock().unwrap();
        if replica.get(&entry.key).is_some_and(|(rev, _)| *rev >= entry.revision) {
            return; // seen already (a watch started again)
        }
        replica.insert(entry.key.clone(), (entry.revision, data.clone()));
    }
    if let Some(app) = engine.app_if_known(&app_id) {
        storage::notify(&app, &target, &stored.publisher, data);
    }
}

/// A set and the revision of its entry (`None`: no entry).
async fn read(store: &kv::Store, key: &str) -> Result<(pb::Metadata, Option<u64>), Violation> {
    match store.entry(key).await.map_err(failed)? {
        None => Ok((pb::Metadata::default(), None)),
        Some(e) if e.operation == kv::Operation::Put => {
            let s = Stored::decode(e.value.as_ref()).map_err(failed)?;
            Ok((s.data.unwrap_or_default(), Some(e.revision)))
        }
        Some(e) => Ok((pb::Metadata::default(), Some(e.revision))),
    }
}

/// A checked metadata write (`storage::write`), answered once the bucket has it.
pub(crate) fn write(
    c: &Arc<Cluster>,
    session: &Arc<Session>,
    request_id: u64,
    r: pb::WriteMetadata,
    op: MetadataOp,
    target: Target,
) -> Option<Reply> {
    let Some(store) = c.storage.kv.get().cloned().filter(|_| c.ready()) else {
        return Some(Err(unavailable(c, ErrorCode::STORAGE_OPERATION_FAILED)));
    };
    let (me, s) = (c.clone(), session.clone());
    c.storage.serial.run(
        session.id,
        Box::pin(async move {
            let reply = write_kv(&me, &store, &s, r, op, target).await;
            s.send(response(request_id, reply));
        }),
    );
    None
}

async fn write_kv(
    c: &Cluster,
    store: &kv::Store,
    session: &Session,
    r: pb::WriteMetadata,
    op: MetadataOp,
    target: Target,
) -> Reply {
    let key = kv_key(&session.app.id, &target);
    for _ in 0..MAX_ATTEMPTS {
        if let (false, Target::Channel(scope_key)) = (r.lock_name.is_empty(), &target) {
            let held = c.lock_token(&session.app.id, scope_key, &r.lock_name, &session.user_id).await?;
            storage::check_lock(&r, &target, &session.user_id, held)?;
        }
        let (current, revision) = read(store, &key).await?;
        let next = storage::apply(&current, &r, op, &session.user_id)?;
        let result =
            pb::MetadataWriteResult { major_revision: next.major_revision, total_count: next.items.len() as u32 };
        let value = Bytes::from(
            Stored { data: Some(next), publisher: session.user_id.to_string(), written_ms: now_ms() }.encode_to_vec(),
        );
        let outcome = match revision {
            Some(rev) => store
                .update(&key, value.clone(), rev)
                .await
                .map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, e.to_string())),
            None => store
                .create(&key, value.clone())
                .await
                .map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, e.to_string())),
        };
        match outcome {
            Ok(_) => return Ok(Some(pb::response::Result::MetadataWrite(result))),
            // Another write came first: again, from what it wrote.
            Err((true, _)) => continue,
            Err((false, why)) => {
                // Written or not? The bucket says.
                return match store.entry(&key).await {
                    Ok(Some(e)) if e.value == value => Ok(Some(pb::response::Result::MetadataWrite(result))),
                    _ => Err(failed(why)),
                };
            }
        }
    }
    Err(Violation::new(
        ErrorCode::STORAGE_OPERATION_FAILED,
        format!("{} is written too often at once: gave up after {MAX_ATTEMPTS} attempts", target.describe()),
    ))
}

impl Cluster {
    /// A set as the bucket holds it now.
    pub(crate) async fn read_metadata(&self, app: &str, target: &Target) -> Result<pb::Metadata, Violation> {
        let Some(store) = self.storage.kv.get().filter(|_| self.ready()) else {
            return Err(unavailable(self, ErrorCode::STORAGE_OPERATION_FAILED));
        };
        Ok(read(store, &kv_key(app, target)).await?.0)
    }

    /// A set as this node's replica holds it (for snapshots; the caller holds `meta_lock`).
    pub(crate) fn replica_metadata(&self, app: &str, target: &Target) -> pb::Metadata {
        self.storage.replica.lock().unwrap().get(&kv_key(app, target)).map(|(_, m)| m.clone()).unwrap_or_default()
    }
}
