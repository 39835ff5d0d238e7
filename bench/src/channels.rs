//! Many channels: N message channels (rtm2) / subjects (NATS), one subscriber each, the N
//! subscriptions spread over C subscriber connections (channel j on connection j mod C); one
//! publisher publishes M messages round-robin over the N channels, so each delivery goes to
//! exactly one subscriber. Loss-free like fan-out: the publisher stays at most `window` messages
//! ahead of the total received; `lost = expected − received` is reported (it must be 0).
//!
//! Limits: rtm2 allows at most 50 subscribed message channels per client
//! (`rtm2_proto::limits::MAX_SUBSCRIBED_CHANNELS`, checked by the server and by the SDK; no
//! `rtm2 serve` flag raises it), so N channels need at least ⌈N / 50⌉ connections. The default C
//! is min(N, 100), raised to ⌈N / 50⌉ for every system (100,000 channels: 2,000 connections), so
//! that rtm2 and NATS run the same shape; an explicit `--connections` below ⌈N / 50⌉ is refused
//! for rtm2. The other rtm2 limits that matter here are off or large enough: `--no-rate-limits`
//! (always passed, sys.rs) makes the subscribes of a client unlimited (calls per second, and
//! `--channel-subscribes-per-5s`), and the server serves up to 100,000 connections.
//! nats-server's defaults (64 Ki connections, subscriptions unlimited) are large enough.
//!
//! Each message carries its channel's index (first 8 bytes), and each subscriber connection
//! checks it is one of its channels (`misrouted`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use rtm2_core::{Client, Event, PublishOptions, SubscribeOptions};
use serde_json::{Value, json};

use crate::clients::{self, BoxError, Delivery};
use crate::sys::{Meter, System, Target, loadavg, proc_rss};
use crate::{now_ns, since_base};

/// Subscribed message channels per rtm2 client, at most (rtm2_proto::limits::MAX_SUBSCRIBED_CHANNELS).
pub const RTM2_MAX_CHANNELS_PER_CLIENT: usize = 50;

#[derive(Clone, Debug, clap::Args)]
pub struct ChannelsArgs {
    /// Message channels (rtm2) / subjects (NATS), one subscriber each.
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Subscriber connections the subscriptions are spread over (channel j on connection
    /// j mod C). Default: min(N, 100), at least ⌈N / 50⌉ (rtm2's limit per client).
    #[arg(long)]
    pub connections: Option<usize>,
    /// Messages published, round-robin over the channels (each is delivered once).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Payload bytes (at least 8: the channel's index).
    #[arg(long, default_value_t = 128)]
    pub payload: usize,
    /// Most messages the publisher may be ahead of the total received.
    #[arg(long, default_value_t = 32 * 1024)]
    pub window: u64,
    /// rtm2: publish operations in flight at most (await the oldest beyond); default the window.
    #[arg(long)]
    pub inflight: Option<usize>,
    /// Subscriber connections being set up (connected, or subscribing) at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Give up when no delivery arrived for this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub idle_timeout: f64,
    /// Give up after this many seconds of publishing and delivering.
    #[arg(long, default_value_t = 120.0)]
    pub max_seconds: f64,
}

fn name(j: usize) -> String {
    format!("ch{j}")
}

/// One subscriber connection, connected (and logged in), not yet subscribed.
enum Conn {
    Rtm2(Client, rtm2_core::EventReceiver),
    Nats(async_nats::Client),
}

fn delivery_of(batch: Vec<Event>) -> Delivery {
    let mut payloads = Vec::with_capacity(batch.len());
    let mut dropped = 0;
    for ev in batch {
        match ev {
            Event::Message(m) => payloads.push(m.payload),
            Event::Overflow { dropped: d } => dropped += d,
            _ => {}
        }
    }
    Delivery { payloads, dropped }
}

async fn connect(target: &Target, c: usize, cap: usize) -> Result<Conn, BoxError> {
    let addr = target.addr_of(c);
    if target.system.is_rtm2() {
        let mut cfg = clients::rtm2_config(addr, &format!("csub{c}"));
        cfg.event_queue_capacity = cap;
        let client = Client::new(cfg)?;
        client.login("").await?;
        // One listener for all the connection's channels (the subscriptions are dropped: their
        // messages then go to it).
        let events = client.events();
        Ok(Conn::Rtm2(client, events))
    } else if target.system == System::Nats {
        let client = clients::nats_options()
            .subscription_capacity(cap)
            .event_callback(|ev| async move { clients::note_event(format!("nats: {ev}")) })
            .connect(addr)
            .await?;
        client.flush().await?;
        Ok(Conn::Nats(client))
    } else {
        Err(format!("{} has no channels workload (rtm2, rtm2-standalone, rtm2-cluster, nats)", target.system.name())
            .into())
    }
}

type Keep = Box<dyn std::any::Any + Send>;

/// Subscribes connection `c` to `chans` (all at once), returns once the server confirmed.
async fn subscribe(conn: Conn, chans: Vec<usize>) -> Result<(BoxStream<'static, Delivery>, Keep), BoxError> {
    match conn {
        Conn::Rtm2(client, events) => {
            let opts = SubscribeOptions { with_presence: false, ..Default::default() };
            let ops: Vec<_> = chans.iter().map(|&j| client.subscribe(&name(j), opts)).collect();
            for sub in futures::future::join_all(ops).await {
                drop(sub?);
            }
            let stream = futures::stream::unfold(events, |mut rx| async move {
                let batch = rx.recv_batch(4096).await?;
                Some((delivery_of(batch), rx))
            });
            Ok((stream.boxed(), Box::new(client)))
        }
        Conn::Nats(client) => {
            let mut subs = Vec::with_capacity(chans.len());
            for &j in &chans {
                subs.push(client.subscribe(name(j)).await?);
            }
            client.flush().await?;
            let stream = futures::stream::select_all(subs)
                .ready_chunks(1024)
                .map(|v| Delivery { payloads: v.into_iter().map(|m| m.payload).collect(), dropped: 0 });
            Ok((stream.boxed(), Box::new(client)))
        }
    }
}

struct Shared {
    received: AtomicU64,
    published: AtomicU64,
    /// ns since the base instant of the last delivery.
    last_rx: AtomicU64,
    dropped: AtomicU64,
    bad: AtomicU64,
    misrouted: AtomicU64,
    notify: tokio::sync::Notify,
    stop: AtomicBool,
}

/// Waits until `sent` messages are within the window of the total received. False when the run
/// is being abandoned.
async fn wait_window(sh: &Shared, sent: u64, window: u64) -> bool {
    loop {
        let notified = sh.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if sent.saturating_sub(sh.received.load(Ordering::Acquire)) <= window {
            return true;
        }
        if sh.stop.load(Ordering::Relaxed) {
            return false;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
    }
}

enum Pub {
    Rtm2(Client),
    Nats(async_nats::Client),
}

struct PubOutcome {
    published: u64,
    errors: u64,
    first_error: Option<String>,
    /// ns since base when the last publish was issued / acknowledged.
    done_ns: u64,
}

async fn publish_all(p: Pub, a: ChannelsArgs, sh: Arc<Shared>) -> (PubOutcome, Pub) {
    let n = a.channels;
    let payloads: Vec<Bytes> = (0..n)
        .map(|j| {
            let mut b = BytesMut::with_capacity(a.payload);
            b.put_u64_le(j as u64);
            b.resize(a.payload, b'x');
            b.freeze()
        })
        .collect();
    let mut out = PubOutcome { published: 0, errors: 0, first_error: None, done_ns: 0 };
    let note = |out: &mut PubOutcome, e: String| {
        out.errors += 1;
        out.first_error.get_or_insert(e);
    };
    // Within the window no wait: the received count is read once per 256 messages there.
    let mut room = 0u64;
    match &p {
        Pub::Rtm2(c) => {
            let names: Vec<String> = (0..n).map(name).collect();
            let max_inflight = a.inflight.unwrap_or(a.window as usize).max(1);
            let mut ops = VecDeque::with_capacity(max_inflight.min(1 << 16));
            for i in 0..a.messages {
                if room == 0 {
                    if !wait_window(&sh, i + 1, a.window).await {
                        break;
                    }
                    room = (a.window + sh.received.load(Ordering::Acquire)).saturating_sub(i).min(256);
                }
                room -= 1;
                let j = (i % n as u64) as usize;
                ops.push_back(c.publish(
                    &names[j],
                    clients::rtm2_payload(payloads[j].clone()),
                    PublishOptions::default(),
                ));
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
        Pub::Nats(c) => {
            let subjects: Vec<async_nats::Subject> = (0..n).map(|j| async_nats::Subject::from(name(j))).collect();
            for i in 0..a.messages {
                if room == 0 {
                    if !wait_window(&sh, i + 1, a.window).await {
                        break;
                    }
                    room = (a.window + sh.received.load(Ordering::Acquire)).saturating_sub(i).min(256);
                }
                room -= 1;
                let j = (i % n as u64) as usize;
                if let Err(e) = c.publish(subjects[j].clone(), payloads[j].clone()).await {
                    note(&mut out, e.to_string());
                }
                out.published += 1;
                sh.published.store(out.published, Ordering::Relaxed);
            }
            if let Err(e) = c.flush().await {
                note(&mut out, e.to_string());
            }
        }
    }
    out.done_ns = now_ns();
    (out, p)
}

fn u64_at(p: &[u8], i: usize) -> u64 {
    p.get(i..i + 8).map_or(u64::MAX, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

pub fn run(target: &Target, a: &ChannelsArgs, rt: &tokio::runtime::Runtime) -> Result<Value, BoxError> {
    let n = a.channels;
    if n == 0 {
        return Err("--channels must be at least 1".into());
    }
    if a.payload < 8 {
        return Err("--payload must be at least 8 bytes (the channel's index)".into());
    }
    let min_conns = n.div_ceil(RTM2_MAX_CHANNELS_PER_CLIENT);
    let conns = a.connections.unwrap_or(n.min(100).max(min_conns)).clamp(1, n);
    if target.system.is_rtm2() && conns < min_conns {
        return Err(format!(
            "rtm2 allows {RTM2_MAX_CHANNELS_PER_CLIENT} subscribed channels per client: {n} channels need \
             --connections {min_conns} or more"
        )
        .into());
    }
    let cap = (a.window as usize * 2).max(65536);
    // Channel j on connection j mod C; each connection's expected count.
    let mut chans: Vec<Vec<usize>> = vec![Vec::new(); conns];
    let mut expected_of = vec![0u64; conns];
    let (per, extra) = (a.messages / n as u64, (a.messages % n as u64) as usize);
    for j in 0..n {
        chans[j % conns].push(j);
        expected_of[j % conns] += per + u64::from(j < extra);
    }

    let setup_t0 = Instant::now();
    let publisher = rt.block_on(async {
        Ok::<_, BoxError>(if target.system.is_rtm2() {
            Pub::Rtm2(clients::rtm2_login(&target.addr, clients::PUBLISHER).await?)
        } else if target.system == System::Nats {
            Pub::Nats(
                clients::nats_options()
                    .event_callback(|ev| async move { clients::note_event(format!("nats publisher: {ev}")) })
                    .connect(target.addr.as_str())
                    .await?,
            )
        } else {
            return Err(format!("{} has no channels workload", target.system.name()).into());
        })
    })?;
    let concurrency = a.concurrency.max(1);
    let connected: Vec<Conn> = rt.block_on(async {
        let v: Vec<_> =
            futures::stream::iter(0..conns).map(|c| connect(target, c, cap)).buffered(concurrency).collect().await;
        v.into_iter().collect::<Result<Vec<_>, _>>()
    })?;
    let connect_s = setup_t0.elapsed().as_secs_f64();
    let sub_t0 = Instant::now();
    let subscribed: Vec<(BoxStream<'static, Delivery>, Keep)> = rt.block_on(async {
        let v: Vec<_> = futures::stream::iter(connected.into_iter().zip(chans))
            .map(|(conn, ch)| subscribe(conn, ch))
            .buffered(concurrency)
            .collect()
            .await;
        v.into_iter().collect::<Result<Vec<_>, _>>()
    })?;
    let subscribe_s = sub_t0.elapsed().as_secs_f64();
    let setup_s = setup_t0.elapsed().as_secs_f64();
    let rss_after_setup = target.pid().map(proc_rss);

    let sh = Arc::new(Shared {
        received: AtomicU64::new(0),
        published: AtomicU64::new(0),
        last_rx: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        bad: AtomicU64::new(0),
        misrouted: AtomicU64::new(0),
        notify: tokio::sync::Notify::new(),
        stop: AtomicBool::new(false),
    });
    let meter = Meter::start(target);
    let t0_ns = since_base(meter.t0());
    let mut keep = Vec::with_capacity(conns);
    let mut tasks = Vec::with_capacity(conns);
    for (c, (mut stream, k)) in subscribed.into_iter().enumerate() {
        keep.push(k);
        let (sh, expected, size) = (sh.clone(), expected_of[c], a.payload);
        tasks.push(rt.spawn(async move {
            let mut count = 0u64;
            while count < expected
                && let Some(d) = stream.next().await
            {
                let bad = d.payloads.iter().filter(|p| p.len() != size).count() as u64;
                let wrong = d.payloads.iter().filter(|p| u64_at(p, 0) % conns as u64 != c as u64).count() as u64;
                if bad > 0 {
                    sh.bad.fetch_add(bad, Ordering::Relaxed);
                }
                if wrong > 0 {
                    sh.misrouted.fetch_add(wrong, Ordering::Relaxed);
                }
                if d.dropped > 0 {
                    sh.dropped.fetch_add(d.dropped, Ordering::Relaxed);
                }
                count += d.payloads.len() as u64;
                sh.last_rx.fetch_max(now_ns(), Ordering::Relaxed);
                sh.received.fetch_add(d.payloads.len() as u64, Ordering::Release);
                sh.notify.notify_one();
            }
            stream
        }));
    }
    let publisher_task = rt.spawn(publish_all(publisher, a.clone(), sh.clone()));

    let expected = a.messages;
    let stalled = crate::fanout::wait_for_deliveries(
        expected,
        || sh.received.load(Ordering::Relaxed),
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
    // The interval ends with the last delivery.
    let end_ns = sh.last_rx.load(Ordering::Relaxed).max(t0_ns);
    let end = meter.t0() + Duration::from_nanos(end_ns - t0_ns);
    let m = meter.finish(target, end);
    let rss_end = target.pid().map(proc_rss);
    for t in &tasks {
        t.abort();
    }
    // Leave the clients to the process's exit (thousands of them).
    std::mem::forget(keep);
    std::mem::forget(publisher);

    let received = sh.received.load(Ordering::Relaxed);
    let outcome = outcome.unwrap_or(PubOutcome {
        published: 0,
        errors: 1,
        first_error: Some("the publisher did not finish".into()),
        done_ns: 0,
    });
    let deliveries = received.max(1) as f64;
    let pub_s = (outcome.done_ns.saturating_sub(t0_ns)) as f64 / 1e9;
    Ok(json!({
        "workload": "channels",
        "system": target.system.name(),
        "tls": clients::tls(),
        "channels": n,
        "connections": conns,
        "messages": a.messages,
        "payload": a.payload,
        "window": a.window,
        "expected": expected,
        "received": received,
        "lost": expected.saturating_sub(received),
        "misrouted": sh.misrouted.load(Ordering::Relaxed),
        "dropped_reported": sh.dropped.load(Ordering::Relaxed),
        "bad_payloads": sh.bad.load(Ordering::Relaxed),
        "published": outcome.published,
        "publish_errors": outcome.errors,
        "first_error": outcome.first_error,
        "stalled": stalled,
        "client_events": clients::events(),
        "server_slow_consumer_cuts": target.slow_consumer_cuts(),
        "connect_s": connect_s,
        "subscribe_s": subscribe_s,
        "subscribes_per_s": n as f64 / subscribe_s.max(1e-9),
        "setup_s": setup_s,
        "server_rss_after_setup": rss_after_setup,
        "server_rss_end": rss_end,
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
