//! Fan-out throughput, loss-free: one publisher, N subscribers on their own connections; the
//! publisher stays at most `window` messages ahead of the slowest subscriber, every delivery
//! is counted, and `lost = expected - received` is reported (it must be 0).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use rtm2_core::{PublishOptions, TopicMessageOptions};
use serde_json::{Value, json};

use crate::clients::{self, BoxError, CHANNEL, Kind, Publisher, TOPIC};
use crate::sys::{Meter, Target, loadavg};
use crate::{now_ns, since_base};

#[derive(Clone, Debug, clap::Args)]
pub struct FanoutArgs {
    /// Subscribers, each on its own connection.
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// Messages published (each is delivered to every subscriber).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Most messages the publisher may be ahead of the slowest subscriber.
    #[arg(long, default_value_t = 32 * 1024)]
    pub window: u64,
    /// rtm2: publish operations in flight at most (await the oldest beyond); by default the
    /// window, so that like a NATS publisher it is bounded only by the slowest subscriber.
    /// Redis: pipelines in flight at most (default 64).
    #[arg(long)]
    pub inflight: Option<usize>,
    /// Redis: PUBLISH commands per pipeline.
    #[arg(long, default_value_t = 100)]
    pub pipeline: usize,
    /// Payload bytes.
    #[arg(long, default_value_t = 128)]
    pub payload: usize,
    /// Message channel (all systems) or stream topic (rtm2 only).
    #[arg(long, value_enum, default_value_t = Kind::Channel)]
    pub kind: Kind,
    /// Give up when no delivery arrived for this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub idle_timeout: f64,
    /// Give up after this many seconds of publishing and delivering.
    #[arg(long, default_value_t = 120.0)]
    pub max_seconds: f64,
    /// rtm2: end-to-end encryption of every client (AES_128_GCM or AES_256_GCM): the publisher
    /// seals each payload, each subscriber opens it.
    #[arg(long)]
    pub encryption: Option<String>,
    /// rtm2: every message published with `store_in_history` (durable with a server started
    /// with `--data-dir`: RTM2_BENCH_SERVE_FLAGS).
    #[arg(long)]
    pub store_in_history: bool,
}

/// Waits until `expected` messages were received and the publisher is done, bounded by
/// `idle_timeout` seconds without progress (nothing published or received) and `max_seconds`
/// overall; whether it gave up (stalled).
pub(crate) fn wait_for_deliveries(
    expected: u64,
    received: impl Fn() -> u64,
    published: impl Fn() -> u64,
    publisher_done: impl Fn() -> bool,
    idle_timeout: f64,
    max_seconds: f64,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs_f64(max_seconds);
    let (mut last_total, mut last_progress) = (0, Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let got = received();
        if got >= expected && publisher_done() {
            return false;
        }
        let total = got + published();
        if total != last_total {
            last_total = total;
            last_progress = Instant::now();
        } else if last_progress.elapsed().as_secs_f64() > idle_timeout || Instant::now() > deadline {
            return true;
        }
    }
}

pub(crate) struct Shared {
    pub(crate) received: Vec<AtomicU64>,
    /// ns since the base instant of the last delivery, per subscriber.
    last_rx: Vec<AtomicU64>,
    pub(crate) published: AtomicU64,
    dropped: AtomicU64,
    bad: AtomicU64,
    pub(crate) notify: tokio::sync::Notify,
    pub(crate) stop: AtomicBool,
}

impl Shared {
    /// The state of a run with `n` subscribers.
    pub(crate) fn new(n: usize) -> Shared {
        Shared {
            received: (0..n).map(|_| AtomicU64::new(0)).collect(),
            last_rx: (0..n).map(|_| AtomicU64::new(0)).collect(),
            published: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            bad: AtomicU64::new(0),
            notify: tokio::sync::Notify::new(),
            stop: AtomicBool::new(false),
        }
    }

    fn min_received(&self) -> u64 {
        // No subscribers (publish only): no window.
        self.received.iter().map(|a| a.load(Ordering::Acquire)).min().unwrap_or(u64::MAX)
    }
    fn total_received(&self) -> u64 {
        self.received.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }
}

/// Waits until `sent` messages are within the window of the slowest subscriber. False when
/// the run is being abandoned.
async fn wait_window(sh: &Shared, sent: u64, window: u64, min_seen: &mut u64) -> bool {
    while sent.saturating_sub(*min_seen) > window {
        let notified = sh.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        *min_seen = sh.min_received();
        if sent.saturating_sub(*min_seen) <= window {
            break;
        }
        if sh.stop.load(Ordering::Relaxed) {
            return false;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
    }
    true
}

fn note(out: &mut PubOutcome, e: String) {
    out.errors += 1;
    out.first_error.get_or_insert(e);
}

pub(crate) struct PubOutcome {
    pub(crate) published: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    /// ns since base when the last publish was issued / acknowledged.
    pub(crate) done_ns: u64,
}

pub(crate) async fn publish_all(p: Publisher, a: FanoutArgs, sh: Arc<Shared>) -> (PubOutcome, Publisher) {
    let payload = Bytes::from(vec![b'x'; a.payload]);
    let mut out = PubOutcome { published: 0, errors: 0, first_error: None, done_ns: 0 };
    let mut min_seen = 0;
    match &p {
        Publisher::Rtm2(_) | Publisher::Rtm2Topic(..) => {
            let max_inflight = a.inflight.unwrap_or(a.window as usize).max(1);
            let mut ops = VecDeque::with_capacity(max_inflight);
            for i in 0..a.messages {
                if !wait_window(&sh, i + 1, a.window, &mut min_seen).await {
                    break;
                }
                let op = match &p {
                    Publisher::Rtm2(c) => {
                        let opts = PublishOptions { store_in_history: a.store_in_history, ..Default::default() };
                        c.publish(CHANNEL, clients::rtm2_payload(payload.clone()), opts)
                    }
                    Publisher::Rtm2Topic(_, ch) => {
                        ch.publish_topic(TOPIC, clients::rtm2_payload(payload.clone()), TopicMessageOptions::default())
                    }
                    _ => unreachable!(),
                };
                ops.push_back(op);
                out.published += 1;
                sh.published.store(out.published, Ordering::Relaxed);
                if ops.len() >= max_inflight
                    && let Err(e) = ops.pop_front().expect("not empty").await
                {
                    note(&mut out, e.to_string());
                }
            }
            for op in ops {
                if let Err(e) = op.await {
                    note(&mut out, e.to_string());
                }
            }
        }
        Publisher::Nats(c) => {
            for i in 0..a.messages {
                if !wait_window(&sh, i + 1, a.window, &mut min_seen).await {
                    break;
                }
                if let Err(e) = c.publish(CHANNEL, payload.clone()).await {
                    note(&mut out, e.to_string());
                }
                out.published += 1;
                sh.published.store(out.published, Ordering::Relaxed);
            }
            if let Err(e) = c.flush().await {
                note(&mut out, e.to_string());
            }
        }
        Publisher::Relay(r) => {
            for i in 0..a.messages {
                // Buffered frames must be on the wire before waiting for the subscribers.
                if (i + 1).saturating_sub(min_seen) > a.window
                    && let Err(e) = r.flush().await
                {
                    note(&mut out, e.to_string());
                }
                if !wait_window(&sh, i + 1, a.window, &mut min_seen).await {
                    break;
                }
                if let Err(e) = r.publish(&payload).await {
                    note(&mut out, e.to_string());
                }
                out.published += 1;
                sh.published.store(out.published, Ordering::Relaxed);
            }
            if let Err(e) = r.flush().await {
                note(&mut out, e.to_string());
            }
        }
        Publisher::Redis(con) => {
            let batch = a.pipeline.max(1) as u64;
            let full = {
                let mut pipe = redis::pipe();
                for _ in 0..batch {
                    pipe.publish(CHANNEL, payload.as_ref()).ignore();
                }
                Arc::new(pipe)
            };
            let mut inflight = FuturesOrdered::new();
            let mut i = 0;
            while i < a.messages {
                let n = batch.min(a.messages - i);
                if !wait_window(&sh, i + n, a.window, &mut min_seen).await {
                    break;
                }
                let pipe = if n == batch {
                    full.clone()
                } else {
                    let mut pipe = redis::pipe();
                    for _ in 0..n {
                        pipe.publish(CHANNEL, payload.as_ref()).ignore();
                    }
                    Arc::new(pipe)
                };
                let mut con = con.clone();
                inflight.push_back(async move { pipe.query_async::<()>(&mut con).await });
                i += n;
                out.published += n;
                sh.published.store(out.published, Ordering::Relaxed);
                if inflight.len() >= a.inflight.unwrap_or(64).max(1)
                    && let Some(Err(e)) = inflight.next().await
                {
                    note(&mut out, e.to_string());
                }
            }
            while let Some(r) = inflight.next().await {
                if let Err(e) = r {
                    note(&mut out, e.to_string());
                }
            }
        }
    }
    out.done_ns = now_ns();
    (out, p)
}

pub fn run(target: &Target, a: &FanoutArgs, rt: &tokio::runtime::Runtime) -> Result<Value, BoxError> {
    if let Some(mode) = &a.encryption {
        clients::set_encryption(mode)?;
    }
    let setup_t0 = Instant::now();
    let n = a.subscribers;
    // The publisher first: topic subscribers subscribe to it by user id.
    let (publisher, subs) = rt.block_on(async {
        let publisher = clients::publisher(target, a.kind).await?;
        let cap = (a.window as usize * 2).max(65536);
        let subs: Vec<_> = futures::stream::iter(0..n)
            .map(|i| clients::subscriber(target, a.kind, i, cap))
            .buffered(16)
            .collect()
            .await;
        let subs = subs.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok::<_, BoxError>((publisher, subs))
    })?;
    let setup_s = setup_t0.elapsed().as_secs_f64();

    let sh = Arc::new(Shared::new(n));
    let meter = Meter::start(target);
    let t0_ns = since_base(meter.t0());
    let mut tasks = Vec::new();
    for (i, mut sub) in subs.into_iter().enumerate() {
        let (sh, expected, size) = (sh.clone(), a.messages, a.payload);
        tasks.push(rt.spawn(async move {
            let mut count = 0u64;
            while let Some(d) = sub.stream.next().await {
                let bad = d.payloads.iter().filter(|p| p.len() != size).count() as u64;
                if bad > 0 {
                    sh.bad.fetch_add(bad, Ordering::Relaxed);
                }
                if d.dropped > 0 {
                    sh.dropped.fetch_add(d.dropped, Ordering::Relaxed);
                }
                count += d.payloads.len() as u64;
                sh.last_rx[i].store(now_ns(), Ordering::Relaxed);
                sh.received[i].store(count, Ordering::Release);
                sh.notify.notify_one();
                if count >= expected {
                    break;
                }
            }
            drop(sub);
        }));
    }
    let publisher_task = rt.spawn(publish_all(publisher, a.clone(), sh.clone()));

    let expected = a.messages * n as u64;
    let stalled = wait_for_deliveries(
        expected,
        || sh.total_received(),
        || sh.published.load(Ordering::Relaxed),
        || publisher_task.is_finished(),
        a.idle_timeout,
        a.max_seconds,
    );
    sh.stop.store(true, Ordering::Relaxed);
    let (outcome, publisher) = rt
        .block_on(async {
            match tokio::time::timeout(Duration::from_secs(10), publisher_task).await {
                Ok(Ok(v)) => Some(v),
                _ => None,
            }
        })
        .unzip();
    // The interval ends with the last delivery (publish only: the last acknowledged publish).
    let end_ns = match n {
        0 => outcome.as_ref().map_or(t0_ns, |o| o.done_ns),
        _ => sh.last_rx.iter().map(|a| a.load(Ordering::Relaxed)).max().unwrap_or(t0_ns),
    };
    let end = meter.t0() + Duration::from_nanos(end_ns.saturating_sub(t0_ns));
    let m = meter.finish(target, end);
    for t in &tasks {
        t.abort();
    }
    drop(publisher);

    let received = sh.total_received();
    let outcome = outcome.unwrap_or(PubOutcome {
        published: 0,
        errors: 1,
        first_error: Some("the publisher did not finish".into()),
        done_ns: 0,
    });
    // CPU per delivered message (publish only: per published message).
    let deliveries = if n == 0 { outcome.published } else { received }.max(1) as f64;
    let pub_s = (outcome.done_ns.saturating_sub(t0_ns)) as f64 / 1e9;
    Ok(json!({
        "workload": "fanout",
        "system": target.system.name(),
        "tls": clients::tls(),
        "kind": a.kind.name(),
        "subscribers": n,
        "messages": a.messages,
        "payload": a.payload,
        "window": a.window,
        "expected": expected,
        "received": received,
        "lost": expected.saturating_sub(received),
        "dropped_reported": sh.dropped.load(Ordering::Relaxed),
        "bad_payloads": sh.bad.load(Ordering::Relaxed),
        "published": outcome.published,
        "publish_errors": outcome.errors,
        "first_error": outcome.first_error,
        "stalled": stalled,
        "client_events": clients::events(),
        "server_slow_consumer_cuts": target.slow_consumer_cuts(),
        "setup_s": setup_s,
        "elapsed_s": m.elapsed_s,
        "delivered_per_s": received as f64 / m.elapsed_s,
        "publish_per_s": if pub_s > 0.0 { outcome.published as f64 / pub_s } else { 0.0 },
        "server_cpu_s": m.server_cpu_s,
        "client_cpu_s": m.client_cpu_s,
        "server_cpu_us_per_delivery": m.server_cpu_s * 1e6 / deliveries,
        "client_cpu_us_per_delivery": m.client_cpu_s * 1e6 / deliveries,
        "foreign_cores": m.foreign_cores,
        "irq_cores": m.irq_cores,
        "steal_cores": m.steal_cores,
        "load1": loadavg(),
    }))
}
