//! The JetStream key-value buckets of the cluster (metadata, locks): opening one, and following
//! its changes into a node's replica.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;

use super::Cluster;
use crate::engine::Engine;

/// Revisions a bucket keeps per key (the most JetStream allows). A node's watch is a consumer
/// that may fall behind the writes; with one revision per key, a revision superseded before the
/// watch reached it would be gone, and the node's listeners would miss that update. With 64, a
/// watch must fall 64 writes of one key behind to skip one.
const HISTORY: i64 = 64;

/// Opens a bucket of the cluster, creating it (with `replicas` replicas) if it does not exist.
pub(super) async fn open_bucket(
    js: &jetstream::Context,
    bucket: &str,
    replicas: usize,
    description: &str,
) -> Result<kv::Store, String> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    let config = kv::Config {
        bucket: bucket.to_string(),
        description: description.to_string(),
        history: HISTORY,
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas.max(1),
        ..Default::default()
    };
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        // Another node created it meanwhile.
        Err(e) => js.get_key_value(bucket).await.map_err(|_| format!("bucket {bucket}: {e}")),
    }
}

/// Follows every change of `store` (from each key's last entry on) with `apply`, in the
/// bucket's order, for as long as the engine lives. A watch that ends is opened again from the
/// revision after the last one applied (the bucket keeps `HISTORY` revisions per key, so the
/// changes made meanwhile are still there); what the replica has already is for `apply` to
/// skip. `what` names the bucket in the log.
pub(super) async fn follow(
    c: &Arc<Cluster>,
    store: &kv::Store,
    what: &'static str,
    engine: Weak<Engine>,
    apply: impl Fn(&Arc<Cluster>, &Engine, kv::Entry) + Send + 'static,
) -> Result<(), String> {
    let mut watch = store.watch_with_history(">").await.map_err(|e| format!("watching the {what} bucket: {e}"))?;
    let (me, store) = (c.clone(), store.clone());
    c.keep_spawned(tokio::spawn(async move {
        let mut last = 0;
        loop {
            while let Some(change) = watch.next().await {
                let Some(engine) = engine.upgrade() else { return };
                match change {
                    Ok(entry) => {
                        last = last.max(entry.revision);
                        apply(&me, &engine, entry)
                    }
                    Err(e) => tracing::warn!(error = %e, "cluster: watching the {what} bucket"),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let again = if last == 0 {
                store.watch_with_history(">").await
            } else {
                store.watch_all_from_revision(last + 1).await
            };
            match again {
                Ok(w) => watch = w,
                Err(e) => tracing::warn!(error = %e, "cluster: watching the {what} bucket again"),
            }
        }
    }));
    Ok(())
}
