//! The JetStream key-value buckets of the cluster (metadata, locks): opening one, and following
//! its changes into a node's replica.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;

use super::Cluster;
use crate::engine::Engine;

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
        history: 1,
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
/// bucket's order, for as long as the engine lives; a watch that ends is opened again (what
/// the replica has already is for `apply` to skip). `what` names the bucket in the log.
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
        loop {
            while let Some(change) = watch.next().await {
                let Some(engine) = engine.upgrade() else { return };
                match change {
                    Ok(entry) => apply(&me, &engine, entry),
                    Err(e) => tracing::warn!(error = %e, "cluster: watching the {what} bucket"),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            match store.watch_with_history(">").await {
                Ok(w) => watch = w,
                Err(e) => tracing::warn!(error = %e, "cluster: watching the {what} bucket again"),
            }
        }
    }));
    Ok(())
}
