//! The users online on the other nodes, and which nodes are alive (heartbeats).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A node heartbeats this often; one silent for `NODE_TIMEOUT` is taken as gone.
pub(super) const HEARTBEAT: Duration = Duration::from_millis(250);
/// A node silent this long is not waited for by a request that waits for every node to apply a
/// change (`Cluster::barrier`): it is most likely dead, and is taken as gone at `NODE_TIMEOUT`.
pub(super) const UNRESPONSIVE: Duration = Duration::from_secs(1);
pub(super) const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// The users online on the other nodes, by (app, user): (node, login time ms).
#[derive(Default)]
pub(super) struct Directory {
    pub(super) users: HashMap<(String, String), (String, u64)>,
    pub(super) nodes: HashMap<String, Instant>,
}

impl Directory {
    pub(super) fn login(&mut self, app: &str, user: &str, node: &str, ms: u64) {
        self.nodes.insert(node.to_string(), Instant::now());
        let key = (app.to_string(), user.to_string());
        if self.users.get(&key).is_none_or(|(_, old)| *old <= ms) {
            self.users.insert(key, (node.to_string(), ms));
        }
    }

    pub(super) fn logout(&mut self, app: &str, user: &str, node: &str, ms: u64) {
        let key = (app.to_string(), user.to_string());
        if self.users.get(&key).is_some_and(|(n, m)| n == node && *m == ms) {
            self.users.remove(&key);
        }
    }

    /// Forgets nodes not heard from for `NODE_TIMEOUT`, and their users.
    pub(super) fn sweep(&mut self) -> Vec<String> {
        let now = Instant::now();
        let gone: Vec<String> =
            self.nodes.iter().filter(|(_, seen)| now - **seen > NODE_TIMEOUT).map(|(n, _)| n.clone()).collect();
        for n in &gone {
            tracing::warn!(node = %n, "cluster: a node stopped answering; its users are offline");
            self.nodes.remove(n);
            self.users.retain(|_, (node, _)| node != n);
        }
        gone
    }

    /// Makes `node`'s users what its sync answer says (its `Login` notes).
    pub(super) fn reconcile(&mut self, node: &str, notes: &[super::Note]) {
        self.nodes.insert(node.to_string(), Instant::now());
        self.users.retain(|_, (n, _)| n != node);
        for n in notes.iter().filter(|n| n.kind == super::NoteKind::Login as u32) {
            self.login(&n.app, &n.user, node, n.login_ms);
        }
    }
}
