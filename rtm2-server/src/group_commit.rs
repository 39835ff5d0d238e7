//! Group commit of stored messages: with a data directory every stored message must be on disk
//! before its publish is acknowledged, and one transaction (one fsync) per message caps a
//! server at a few thousand stored messages a second. Here messages are staged in memory (in
//! the order their timestamps were given) and written by whoever waits first — the leader —
//! in one transaction with everything staged until then; the others wait for that commit. A
//! connection's read batch of stored publishes waits once, before its acknowledgement
//! (`session.rs`), so even one pipelining publisher shares fsyncs across its messages.
//!
//! "Acknowledged = on disk" holds: a publish is answered only after the transaction holding
//! it committed; a failed commit fails every publish in it.

use std::collections::VecDeque;
use std::io;
use std::sync::{Condvar, Mutex};

use crate::store::{HistoryAppend, Store};

/// A staged message's batch: wait for it with [`GroupCommit::wait`]. 0: nothing to wait for.
pub(crate) type Ticket = u64;

/// Failed batches remembered for their waiters, at most.
const MAX_FAILURES: usize = 64;

#[derive(Default)]
struct State {
    /// Appends of the batch being staged (number `staging`), in order.
    staged: Vec<HistoryAppend>,
    /// The batch new appends join.
    staging: u64,
    /// Every batch up to this one is committed (or failed).
    committed: u64,
    /// A leader is writing batch `staging - 1`.
    committing: bool,
    /// Batches whose commit failed, with why.
    failures: VecDeque<(u64, String)>,
}

pub(crate) struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
    /// Transactions written (what the tests count).
    #[cfg(test)]
    commits: std::sync::atomic::AtomicU64,
}

/// What a commit wrote: per append of the batch, in order, its channel key and how many records
/// of that channel the store removed (retention) beyond the planned `drop`.
pub(crate) type Trimmed = Vec<(String, usize)>;

impl GroupCommit {
    pub(crate) fn new() -> GroupCommit {
        GroupCommit {
            state: Mutex::new(State { staging: 1, ..State::default() }),
            done: Condvar::new(),
            #[cfg(test)]
            commits: Default::default(),
        }
    }

    /// Transactions written so far.
    #[cfg(test)]
    pub(crate) fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stages an append; its ticket.
    pub(crate) fn stage(&self, append: HistoryAppend) -> Ticket {
        let mut s = self.state.lock().unwrap();
        s.staged.push(append);
        s.staging
    }

    /// The ticket that covers everything staged so far (0: nothing pending).
    pub(crate) fn pending(&self) -> Ticket {
        let s = self.state.lock().unwrap();
        match (s.staged.is_empty(), s.committing) {
            (false, _) => s.staging,
            (true, true) => s.staging - 1,
            (true, false) => 0,
        }
    }

    /// Waits until the batch of `ticket` is on disk, committing it (and everything staged with
    /// it) if no one else is; `after` is told what each commit this call led trimmed. Blocks
    /// the thread (call it through `history::blocking` on a runtime).
    pub(crate) fn wait(&self, store: &dyn Store, ticket: Ticket, after: impl Fn(&Trimmed)) -> io::Result<()> {
        if ticket == 0 {
            return Ok(());
        }
        let mut s = self.state.lock().unwrap();
        loop {
            if s.committed >= ticket {
                return match s.failures.iter().find(|(b, _)| *b == ticket) {
                    Some((_, why)) => Err(io::Error::other(why.clone())),
                    None => Ok(()),
                };
            }
            if s.committing {
                s = self.done.wait(s).unwrap();
                continue;
            }
            // Lead: write everything staged, in one transaction.
            s.committing = true;
            let batch = s.staging;
            s.staging += 1;
            let items = std::mem::take(&mut s.staged);
            drop(s);
            let written = store.history_append(&items);
            #[cfg(test)]
            self.commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Ok(removed) = &written {
                let trimmed: Trimmed =
                    items.iter().zip(removed).map(|(a, r)| (a.channel.clone(), r.saturating_sub(a.drop))).collect();
                after(&trimmed);
            }
            s = self.state.lock().unwrap();
            s.committing = false;
            s.committed = batch;
            if let Err(e) = written {
                tracing::error!(messages = items.len(), error = %e, "history: a group commit failed");
                if s.failures.len() == MAX_FAILURES {
                    s.failures.pop_front();
                }
                s.failures.push_back((batch, e.to_string()));
            }
            self.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::Flaky;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn append(channel: &str, ts: u64) -> HistoryAppend {
        HistoryAppend { channel: channel.into(), ts, record: ts.to_le_bytes().to_vec(), min_ts: 0, drop: 0 }
    }

    fn file_store(name: &str) -> (Arc<dyn Store>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("rtm2-gc-{name}-{}-{}", std::process::id(), rtm2_proto::now_ms()));
        let store = crate::store::open(&crate::MetadataStore::Directory(dir.clone()), false).unwrap();
        (store.into(), dir)
    }

    /// Writers on many threads: each append is readable once its wait returns, and they share
    /// transactions.
    #[test]
    fn concurrent_appends_share_commits_and_each_is_on_disk_when_answered() {
        let (store, dir) = file_store("share");
        let group = Arc::new(GroupCommit::new());
        let (threads, per) = (8u64, 100u64);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (store, group) = (store.clone(), group.clone());
                std::thread::spawn(move || {
                    for i in 1..=per {
                        let channel = format!("c{t}");
                        let ticket = group.stage(append(&channel, i));
                        group.wait(&*store, ticket, |_| {}).unwrap();
                        let row = store.history_read(&channel, i + 1, i, 1).unwrap();
                        assert_eq!(row.len(), 1, "message {i} of {channel} answered but not in the store");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let commits = group.commits();
        assert!(commits < threads * per, "{commits} transactions for {} messages", threads * per);
        println!("{} messages in {commits} transactions", threads * per);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Every message of a failed commit is told so, none is told it is stored; later batches
    /// commit again.
    #[test]
    fn a_failed_commit_fails_every_message_in_it() {
        let (inner, dir) = file_store("fail");
        let store = Flaky { inner, failing: AtomicBool::new(true) };
        let group = GroupCommit::new();
        let tickets: Vec<Ticket> = (1..=5).map(|i| group.stage(append("c", i))).collect();
        for t in &tickets {
            let e = group.wait(&store, *t, |_| {}).unwrap_err();
            assert!(e.to_string().contains("disk full"), "{e}");
        }
        assert!(store.history_read("c", u64::MAX, 0, 10).unwrap().is_empty());
        store.failing.store(false, Ordering::Relaxed);
        let t = group.stage(append("c", 6));
        group.wait(&store, t, |_| {}).unwrap();
        assert_eq!(store.history_read("c", u64::MAX, 0, 10).unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
