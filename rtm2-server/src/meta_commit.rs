//! Group commit of metadata writes with a data directory. One transaction (one fsync) per write,
//! taken one at a time under the server-wide `meta_lock`, capped a server at a few thousand
//! acknowledged writes a second whatever the writers and channels (3–4 k on the benchmark machine:
//! docs/BENCHMARKS.md). Here a write is checked and applied under
//! `meta_lock` as before, against the newest set including writes not on disk yet, and then
//! staged; a committer writes everything staged in one transaction while new writes stage behind
//! it. Once a transaction is on disk the committer — under `meta_lock`, in staging order — sends
//! each write's UPDATE event and then its answer.
//!
//! What holds:
//! * acknowledged = on disk: a write is answered only after the transaction holding it
//!   committed;
//! * readers never see what is not on disk: reads and SNAPSHOTs show a set as of its last
//!   committed and announced write (`MetaView::visible`), so a snapshot and the UPDATE events that
//!   follow it stay in revision order;
//! * a failed transaction fails every write in it and every write staged since (they may rest on
//!   the failed ones); the sets are read from the store again.
//!
//! The sets written lately stay known here after their commit (up to `KEEP_WRITTEN`), so a write
//! or read of a set written lately does not read the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message;
use rtm2_proto::pb;

use crate::engine::App;
use crate::session::{Session, response};
use crate::storage::Target;
use crate::store::Store;

/// Sets written lately, kept after their commit so that the next write of the same set needs no
/// read of the store, at most this many (beyond it, those with nothing in flight are dropped).
const KEEP_WRITTEN: usize = 1024;

/// The sets with writes not yet committed and announced, and those written lately. Guarded by
/// the engine's `meta_lock`.
#[derive(Default)]
pub(crate) struct MetaView {
    pending: HashMap<String, Pending>,
}

struct Pending {
    /// The set as of its last committed and announced write: what readers see.
    visible: pb::Metadata,
    /// The set with every staged write applied: what the next write builds on (`None`: nothing
    /// in flight, the visible set).
    latest: Option<pb::Metadata>,
    /// The batch of the newest staged write.
    batch: u64,
}

impl MetaView {
    /// What a reader sees of `key`, if it is known here (else: the store's).
    pub(crate) fn visible(&self, key: &str) -> Option<&pb::Metadata> {
        self.pending.get(key).map(|p| &p.visible)
    }

    /// What the next write of `key` builds on, if it is known here (else: the store's).
    pub(crate) fn latest(&self, key: &str) -> Option<&pb::Metadata> {
        self.pending.get(key).map(|p| p.latest.as_ref().unwrap_or(&p.visible))
    }

    /// Whether `key` has a write not on disk yet.
    #[cfg(test)]
    fn in_flight(&self, key: &str) -> bool {
        self.pending.get(key).is_some_and(|p| p.latest.is_some())
    }
}

/// A checked and applied write waiting for its transaction.
pub(crate) struct Staged {
    pub key: String,
    /// The set after the write.
    pub next: pb::Metadata,
    pub app: Arc<App>,
    pub target: Target,
    pub publisher: String,
    /// Who to answer (`request_id`), with `MetadataWriteResult`.
    pub session: Arc<Session>,
    pub request_id: u64,
    /// When the request was taken up (its time is recorded once it is answered).
    pub start: std::time::Instant,
}

#[derive(Default)]
struct State {
    staged: Vec<Staged>,
    /// The batch new writes join.
    batch: u64,
    /// A committer is running (it stops when nothing is staged).
    running: bool,
}

pub(crate) struct MetaCommit {
    store: Arc<dyn Store>,
    /// The engine's `meta_lock`.
    view: Arc<Mutex<MetaView>>,
    state: Mutex<State>,
    /// `rtm2_metadata_commits_total`, and each write's time in `rtm2_request_duration_seconds`.
    metrics: Arc<crate::metrics::Metrics>,
}

impl MetaCommit {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        view: Arc<Mutex<MetaView>>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Arc<MetaCommit> {
        Arc::new(MetaCommit { store, view, state: Mutex::new(State { batch: 1, ..State::default() }), metrics })
    }

    /// Transactions written so far.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.metrics.metadata_commits.get()
    }

    /// Stages a write whose set was read through `view` (the caller holds `meta_lock`: `view` is
    /// its guard). `current` is the set it was applied to. Answered by the committer.
    pub(crate) fn stage(self: &Arc<Self>, view: &mut MetaView, current: pb::Metadata, write: Staged) {
        let mut s = self.state.lock().unwrap();
        let batch = s.batch;
        let next = write.next.clone();
        view.pending
            .entry(write.key.clone())
            .and_modify(|p| {
                p.latest = Some(next.clone());
                p.batch = batch;
            })
            .or_insert_with(|| Pending { visible: current, latest: Some(next), batch });
        s.staged.push(write);
        if !s.running {
            s.running = true;
            let this = self.clone();
            let run = move || this.run();
            match tokio::runtime::Handle::try_current() {
                Ok(h) => drop(h.spawn_blocking(run)),
                Err(_) => drop(std::thread::Builder::new().name("rtm2-meta-commit".into()).spawn(run)),
            }
        }
    }

    /// Commits what is staged, batch after batch, until nothing is.
    fn run(&self) {
        loop {
            let (writes, batch) = {
                let mut s = self.state.lock().unwrap();
                if s.staged.is_empty() {
                    s.running = false;
                    return;
                }
                let batch = s.batch;
                s.batch += 1;
                (std::mem::take(&mut s.staged), batch)
            };
            let encoded: Vec<(String, Vec<u8>)> =
                writes.iter().map(|w| (w.key.clone(), w.next.encode_to_vec())).collect();
            let written = self.store.save_many(&encoded);
            self.metrics.metadata_commits.inc();
            let op = crate::metrics::operation(&pb::client_frame::Body::WriteMetadata(Default::default()));
            let mut view = self.view.lock().unwrap();
            match written {
                Ok(()) => {
                    for w in writes {
                        if let Some(p) = view.pending.get_mut(&w.key) {
                            p.visible = w.next.clone();
                            if p.batch <= batch {
                                // Nothing in flight any more: the set stays known, as on disk.
                                p.latest = None;
                            }
                        }
                        let result = pb::MetadataWriteResult {
                            major_revision: w.next.major_revision,
                            total_count: w.next.items.len() as u32,
                        };
                        crate::storage::notify(&w.app, &w.target, &w.publisher, w.next);
                        w.session.send(response(w.request_id, Ok(Some(pb::response::Result::MetadataWrite(result)))));
                        self.metrics.request(op, w.start.elapsed(), false);
                    }
                    if view.pending.len() > KEEP_WRITTEN {
                        view.pending.retain(|_, p| p.latest.is_some());
                    }
                }
                Err(e) => {
                    // What was staged since may rest on these writes: it fails with them.
                    let later = {
                        let mut s = self.state.lock().unwrap();
                        s.batch += 1;
                        std::mem::take(&mut s.staged)
                    };
                    tracing::warn!(writes = writes.len() + later.len(), "metadata: a group commit failed");
                    let v = crate::storage::failed(e);
                    for w in writes.into_iter().chain(later) {
                        w.session.send(response(w.request_id, Err(v.clone())));
                        self.metrics.request(op, w.start.elapsed(), true);
                    }
                    view.pending.clear();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::Flaky;
    use crate::{MetadataStore, ServerConfig};
    use bytes::Bytes;
    use rtm2_proto::enums::{ChannelType, MetadataOp, StorageType};
    use rtm2_proto::frame;
    use rtm2_proto::pb::server_frame;
    use std::sync::atomic::{AtomicBool, Ordering};

    const APP: &str = "0123456789abcdef0123456789abcdef";

    fn dir(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("rtm2-mc-{name}-{}-{}", std::process::id(), rtm2_proto::now_ms()))
    }

    fn engine(dir: &std::path::Path) -> Arc<crate::engine::Engine> {
        let config = ServerConfig { metadata_store: MetadataStore::Directory(dir.to_path_buf()), ..Default::default() };
        crate::engine::Engine::new(config).unwrap()
    }

    fn set(channel: &str, key: &str, value: &str) -> pb::WriteMetadata {
        pb::WriteMetadata {
            op: MetadataOp::SET as u32,
            storage_type: StorageType::CHANNEL as u32,
            channel_type: ChannelType::MESSAGE as u32,
            target: channel.into(),
            items: vec![pb::MetadataItem { key: key.into(), value: value.into(), ..Default::default() }],
            ..Default::default()
        }
    }

    /// The answer to request `id` among what a backend session received.
    fn answer(rx: &mut tokio::sync::mpsc::Receiver<Bytes>, id: u64) -> pb::Response {
        loop {
            let bytes = rx.blocking_recv().expect("the session's sink closed");
            let frame = frame::decode_server(bytes).unwrap();
            if let Some(server_frame::Body::Response(r)) = frame.body
                && r.request_id == id
            {
                return r;
            }
        }
    }

    fn store_key(channel: &str) -> String {
        format!("{APP}/c/{}/{channel}", ChannelType::MESSAGE as u32)
    }

    fn revision_on_disk(store: &dyn Store, channel: &str) -> i64 {
        store
            .load(&store_key(channel))
            .unwrap()
            .map_or(0, |b| pb::Metadata::decode(b.as_slice()).unwrap().major_revision)
    }

    /// Writers on many threads (channels of their own and one shared): every write is on disk
    /// when it is answered, revisions advance one by one, and the writes share transactions.
    #[test]
    fn concurrent_writes_share_commits_and_each_is_on_disk_when_answered() {
        let dir = dir("share");
        let engine = engine(&dir);
        let app = engine.app(APP).unwrap();
        let (threads, per) = (8u64, 40u64);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (engine, app) = (engine.clone(), app.clone());
                std::thread::spawn(move || {
                    let (session, mut rx) = engine.backend_session(&app, &format!("w{t}"), 64).unwrap();
                    let mut shared_revisions = Vec::new();
                    for i in 1..=per {
                        for (channel, id) in [(format!("own{t}"), 2 * i), ("shared".to_string(), 2 * i + 1)] {
                            let r = set(&channel, &format!("k{}", i % 4), &format!("{t}:{i}"));
                            assert!(
                                crate::storage::write(&engine, &session, id, r).is_none(),
                                "answered before its commit"
                            );
                            let Some(pb::response::Result::MetadataWrite(w)) = answer(&mut rx, id).result else {
                                panic!("write {id} of {t} failed")
                            };
                            let on_disk = revision_on_disk(&*engine.store, &channel);
                            assert!(
                                on_disk >= w.major_revision,
                                "{channel}: answered {} but {on_disk} on disk",
                                w.major_revision
                            );
                            if channel.starts_with("own") {
                                assert_eq!(w.major_revision, i as i64, "{channel}: revisions advance one by one");
                            } else {
                                shared_revisions.push(w.major_revision);
                            }
                        }
                    }
                    shared_revisions
                })
            })
            .collect();
        let mut shared: Vec<i64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        shared.sort();
        assert_eq!(shared, (1..=(threads * per) as i64).collect::<Vec<_>>(), "each shared write got its own revision");
        let commit = engine.meta_commit.as_ref().unwrap();
        let (writes, commits) = (2 * threads * per, commit.commits());
        assert!(commits < writes, "{commits} transactions for {writes} writes");
        // Every write is timed once it is answered; the commits are counted.
        let text = engine.metrics.render(0, 0, true);
        assert!(
            text.contains(&format!("rtm2_request_duration_seconds_count{{operation=\"write_metadata\"}} {writes}")),
            "{text}"
        );
        assert!(text.contains(&format!("rtm2_metadata_commits_total {commits}")), "{text}");
        println!("{writes} writes in {commits} transactions");
        drop(engine);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Sets beyond those kept after their commit are read from the store again, with their
    /// revisions.
    #[test]
    fn sets_written_long_ago_are_read_from_the_store() {
        let dir = dir("evict");
        let engine = engine(&dir);
        let app = engine.app(APP).unwrap();
        let (session, mut rx) = engine.backend_session(&app, "u", 64).unwrap();
        let mut id = 0;
        let mut write = |channel: &str| {
            id += 1;
            assert!(crate::storage::write(&engine, &session, id, set(channel, "k", "v")).is_none());
            match answer(&mut rx, id).result {
                Some(pb::response::Result::MetadataWrite(w)) => w.major_revision,
                other => panic!("write {id} to {channel}: {other:?}"),
            }
        };
        for round in 1..=2 {
            for c in 0..KEEP_WRITTEN + 100 {
                assert_eq!(write(&format!("c{c}")), round, "c{c}");
            }
        }
        assert!(engine.meta_lock.lock().unwrap().pending.len() <= KEEP_WRITTEN + 1);
        drop(engine);
        let _ = std::fs::remove_dir_all(dir);
    }

    fn stage(commit: &Arc<MetaCommit>, view: &mut MetaView, session: &Arc<Session>, id: u64, value: &str) {
        let key = store_key("c");
        let current = match view.latest(&key) {
            Some(set) => set.clone(),
            None => pb::Metadata::default(),
        };
        let next = crate::storage::apply(&current, &set("c", "k", value), MetadataOp::SET, "u").unwrap();
        let target = crate::storage::Target::Channel((ChannelType::MESSAGE, "c".into()));
        let write = Staged {
            key,
            next,
            app: session.app.clone(),
            target,
            publisher: "u".into(),
            session: session.clone(),
            request_id: id,
            start: std::time::Instant::now(),
        };
        commit.stage(view, current, write);
    }

    /// A failed transaction fails its writes and those staged behind it (they built on them);
    /// readers never saw them; the next write builds on what is on disk.
    #[test]
    fn a_failed_commit_fails_its_writes_and_those_staged_behind_it() {
        let dir = dir("fail");
        let engine = engine(&dir);
        let app = engine.app(APP).unwrap();
        let (session, mut rx) = engine.backend_session(&app, "u", 64).unwrap();
        let store = Arc::new(Flaky { inner: engine.store.clone(), failing: AtomicBool::new(true) });
        let view = Arc::new(Mutex::new(MetaView::default()));
        let commit = MetaCommit::new(store.clone(), view.clone(), engine.metrics.clone());
        {
            let mut v = view.lock().unwrap();
            for id in 1..=3 {
                stage(&commit, &mut v, &session, id, &format!("v{id}"));
            }
            assert_eq!(v.latest(&store_key("c")).unwrap().major_revision, 3);
            assert_eq!(v.visible(&store_key("c")).unwrap().major_revision, 0, "readers see only what is on disk");
        }
        for id in 1..=3 {
            let r = answer(&mut rx, id);
            assert_eq!(r.code, rtm2_proto::ErrorCode::STORAGE_OPERATION_FAILED.code(), "{r:?}");
            assert!(r.reason.contains("disk full"), "{r:?}");
        }
        assert!(!view.lock().unwrap().in_flight(&store_key("c")), "the failed writes are forgotten");
        let text = engine.metrics.render(0, 0, true);
        assert!(text.contains("rtm2_request_errors_total{operation=\"write_metadata\"} 3"), "{text}");
        assert!(view.lock().unwrap().latest(&store_key("c")).is_none(), "the set is read from the store again");
        store.failing.store(false, Ordering::Relaxed);
        stage(&commit, &mut view.lock().unwrap(), &session, 4, "v4");
        let Some(pb::response::Result::MetadataWrite(w)) = answer(&mut rx, 4).result else { panic!("write 4 failed") };
        assert_eq!(w.major_revision, 1, "built on the store's set, not on the failed writes");
        assert_eq!(revision_on_disk(&*store, "c"), 1);
        drop(engine);
        let _ = std::fs::remove_dir_all(dir);
    }
}
