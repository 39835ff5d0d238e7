//! Logging out at process exit: the clients of the process, and [`logout_all`], which the
//! Python and Node bindings call from their exit hooks (and a C or Rust program may call before
//! it returns from `main`).
//!
//! A program that ends without logging out leaves its user online on the server until the
//! presence timeout (others see REMOTE_TIMEOUT, minutes later, instead of REMOTE_LEAVE). The
//! runtime's threads die with the process, so a logout started in the background (a dropped
//! client's) may never be sent; `logout_all` sends every one and waits, for a bounded time.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::Inner;

/// Every client of the process that may be logged in (dead entries pruned on insert).
static CLIENTS: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());

/// Logouts of dropped clients still running in the background.
static DROPPED: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

pub(super) fn register(inner: &Arc<Inner>) {
    let mut clients = CLIENTS.lock().unwrap();
    clients.retain(|c| c.strong_count() > 0);
    clients.push(Arc::downgrade(inner));
}

/// Keeps the background logout of a dropped client, for [`logout_all`] to wait for.
pub(super) fn track_dropped(logout: JoinHandle<()>) {
    let mut dropped = DROPPED.lock().unwrap();
    dropped.retain(|h| !h.is_finished());
    dropped.push(logout);
}

/// Logs out every client of this process that is logged in (or logging in, or reconnecting),
/// and waits for the background logouts of dropped clients, all at once, for at most `timeout`
/// in total; returns the number of logouts waited for (clients and dropped clients).
///
/// This is a blocking call for the end of a process (the Python and Node packages call it from
/// their exit hooks, with a 1 s bound): the server ends each session at once, so the other
/// users see REMOTE_LEAVE instead of REMOTE_TIMEOUT after the presence timeout. The clients
/// stay usable (logged out, as after [`Client::logout`](crate::Client::logout)). Do not call
/// it from the SDK's own threads (a callback, an event handler): it returns after `timeout`
/// there without waiting. Does nothing in a `fork()` child or before the SDK started.
pub fn logout_all(timeout: Duration) -> usize {
    if crate::runtime::forked() {
        return 0;
    }
    let Some(rt) = crate::runtime::started() else { return 0 };
    let clients: Vec<Arc<Inner>> = CLIENTS
        .lock()
        .unwrap()
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|c| {
            let st = c.state.lock().unwrap();
            st.supervisor.is_some() || st.link.is_some()
        })
        .collect();
    let dropped: Vec<JoinHandle<()>> = DROPPED.lock().unwrap().drain(..).filter(|h| !h.is_finished()).collect();
    let n = clients.len() + dropped.len();
    if n == 0 {
        return 0;
    }
    let deadline = Instant::now() + timeout;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let logouts = clients.into_iter().map(|c| tokio::spawn(async move { drop(c.logout().await) }));
        let all = futures::future::join_all(logouts.chain(dropped));
        let _ = tokio::time::timeout_at(deadline.into(), all).await;
        let _ = done_tx.send(());
    });
    let _ = done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    n
}
