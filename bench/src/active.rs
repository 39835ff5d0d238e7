//! Many active connections: C connections, each subscribed to its own message channel (rtm2) /
//! subject (NATS) and publishing `rate` messages per second to it, open loop, so each message
//! is delivered once, back to the connection that sent it. Connection i sends its n-th message
//! at t0 + (n + i/C) / rate (the C·rate messages per second spread evenly in time), driven by a
//! few timer tasks, each for every T-th connection (tokio timers: a send may be up to about a
//! millisecond late; `sender_max_behind_ms` reports the worst). Reported: offered, sent and
//! delivered per second, `lost`, the server's RSS (before, after setup, at the end), its CPU per
//! delivery, and the one-way latency from the send time in each payload (8-byte fields: intended
//! time, send time, connection index).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::{BoxStream, FuturesUnordered};
use futures::{FutureExt, StreamExt};
use hdrhistogram::Histogram;
use rtm2_core::{Client, PublishOptions, SubscribeOptions};
use serde_json::{Value, json};

use crate::clients::{self, BoxError, Delivery};
use crate::now_ns;
use crate::sys::{Meter, System, Target, loadavg, proc_rss};

#[derive(Clone, Debug, clap::Args)]
pub struct ActiveArgs {
    /// Connections, each subscribed to its own channel and publishing to it.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Messages per second each connection publishes (open loop).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Payload bytes (at least 24: intended time, send time, connection index).
    #[arg(long, default_value_t = 128)]
    pub payload: usize,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Timer tasks driving the publishes (task k drives connections k, k + T, k + 2T, ...).
    #[arg(long, default_value_t = 8)]
    pub timers: usize,
    /// After the publishing, wait at most this many seconds for deliveries still in flight.
    #[arg(long, default_value_t = 10.0)]
    pub drain_timeout: f64,
}

fn name(i: usize) -> String {
    format!("act{i}")
}

/// The publishing side of one connection.
enum Sender {
    Rtm2(Client),
    Nats(async_nats::Client),
}

type Keep = Box<dyn std::any::Any + Send>;

/// Connection `i`: logged in, subscribed to its own channel (confirmed by the server).
async fn connect(target: &Target, i: usize) -> Result<(Sender, BoxStream<'static, Delivery>, Keep), BoxError> {
    let addr = target.addr_of(i);
    if target.system.is_rtm2() {
        let client = clients::rtm2_login(addr, &name(i)).await?;
        let opts = SubscribeOptions { with_presence: false, ..Default::default() };
        let sub = client.subscribe(&name(i), opts).await?;
        let stream = futures::stream::unfold(sub, |mut sub| async move {
            let batch = sub.recv_batch(1024).await?;
            let mut payloads = Vec::with_capacity(batch.len());
            let mut dropped = 0;
            for ev in batch {
                match ev {
                    rtm2_core::Event::Message(m) => payloads.push(m.payload),
                    rtm2_core::Event::Overflow { dropped: d } => dropped += d,
                    _ => {}
                }
            }
            Some((Delivery { payloads, dropped }, sub))
        });
        Ok((Sender::Rtm2(client), stream.boxed(), Box::new(())))
    } else if target.system == System::Nats {
        let client = clients::nats_options()
            .event_callback(|ev| async move { clients::note_event(format!("nats: {ev}")) })
            .connect(addr)
            .await?;
        let sub = client.subscribe(name(i)).await?;
        client.flush().await?;
        let stream = sub
            .ready_chunks(1024)
            .map(|v| Delivery { payloads: v.into_iter().map(|m| m.payload).collect(), dropped: 0 });
        Ok((Sender::Nats(client.clone()), stream.boxed(), Box::new(client)))
    } else {
        Err(format!("{} has no active workload (rtm2, rtm2-standalone, rtm2-cluster, nats)", target.system.name())
            .into())
    }
}

struct Shared {
    sent: AtomicU64,
    received: AtomicU64,
    /// ns since the base instant of the last delivery.
    last_rx: AtomicU64,
    dropped: AtomicU64,
    bad: AtomicU64,
    misrouted: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    stop: AtomicBool,
    /// One-way latency from the send time, ns.
    hist: Mutex<Histogram<u64>>,
}

impl Shared {
    fn note(&self, e: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.first_error.lock().unwrap().get_or_insert(e);
    }
}

fn u64_at(p: &[u8], i: usize) -> u64 {
    p.get(i..i + 8).map_or(u64::MAX, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// Publishes the messages of the connections `mine` at their times; returns them (closing them
/// would lose the deliveries still in flight) and how far behind its schedule it was, at most (ns).
async fn drive(
    mine: Vec<(usize, Sender)>,
    conns: usize,
    a: ActiveArgs,
    start_ns: u64,
    sh: Arc<Shared>,
) -> (Vec<(usize, Sender)>, u64) {
    let per_conn = (a.seconds * a.rate).round() as u64;
    let names: Vec<String> = mine.iter().map(|(i, _)| name(*i)).collect();
    let subjects: Vec<async_nats::Subject> = names.iter().map(|n| async_nats::Subject::from(n.clone())).collect();
    let mut ops = FuturesUnordered::new();
    let mut max_behind = 0u64;
    'run: for n in 0..per_conn {
        for (k, (i, sender)) in mine.iter().enumerate() {
            if sh.stop.load(Ordering::Relaxed) {
                break 'run;
            }
            let intended = start_ns + ((n as f64 + *i as f64 / conns as f64) * 1e9 / a.rate) as u64;
            let now = now_ns();
            if intended > now {
                tokio::time::sleep(Duration::from_nanos(intended - now)).await;
            } else {
                max_behind = max_behind.max(now - intended);
            }
            let mut b = BytesMut::with_capacity(a.payload);
            b.put_u64_le(intended);
            b.put_u64_le(now_ns());
            b.put_u64_le(*i as u64);
            b.resize(a.payload, b'x');
            let b: Bytes = b.freeze();
            match sender {
                Sender::Rtm2(c) => ops.push(c.publish(&names[k], clients::rtm2_payload(b), PublishOptions::default())),
                Sender::Nats(c) => {
                    if let Err(e) = c.publish(subjects[k].clone(), b).await {
                        sh.note(e.to_string());
                    }
                }
            }
            sh.sent.fetch_add(1, Ordering::Relaxed);
            // Reap the acknowledged publishes (rtm2).
            while let Some(Some(r)) = ops.next().now_or_never() {
                if let Err(e) = r {
                    sh.note(e.to_string());
                }
            }
        }
    }
    let rest = async {
        while let Some(r) = ops.next().await {
            if let Err(e) = r {
                sh.note(e.to_string());
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs_f64(a.drain_timeout), rest).await.is_err() {
        sh.note("publishes not acknowledged within the drain timeout".into());
    }
    (mine, max_behind)
}

fn percentiles(h: &Histogram<u64>) -> Value {
    let us = |v: u64| (v as f64 / 100.0).round() / 10.0;
    json!({
        "p50": us(h.value_at_quantile(0.50)),
        "p90": us(h.value_at_quantile(0.90)),
        "p99": us(h.value_at_quantile(0.99)),
        "p999": us(h.value_at_quantile(0.999)),
        "max": us(h.max()),
        "mean": (h.mean() / 100.0).round() / 10.0,
    })
}

pub fn run(target: &Target, a: &ActiveArgs, rt: &tokio::runtime::Runtime) -> Result<Value, BoxError> {
    let conns = a.connections;
    if conns == 0 || a.rate <= 0.0 || a.seconds <= 0.0 {
        return Err("--connections, --rate and --seconds must be positive".into());
    }
    if a.payload < 24 {
        return Err("--payload must be at least 24 bytes".into());
    }
    let per_conn = (a.seconds * a.rate).round() as u64;
    let rss_before = target.pid().map(proc_rss);
    let setup_t0 = Instant::now();
    let set_up: Vec<_> = rt
        .block_on(futures::stream::iter(0..conns).map(|i| connect(target, i)).buffered(a.concurrency.max(1)).collect());
    let set_up = set_up.into_iter().collect::<Result<Vec<_>, _>>()?;
    let setup_s = setup_t0.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(500));
    let rss_after_setup = target.pid().map(proc_rss);

    let sh = Arc::new(Shared {
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        last_rx: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        bad: AtomicU64::new(0),
        misrouted: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        stop: AtomicBool::new(false),
        hist: Mutex::new(Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("valid bounds")),
    });
    let timers = a.timers.clamp(1, conns);
    let mut groups: Vec<Vec<(usize, Sender)>> = (0..timers).map(|_| Vec::new()).collect();
    let mut keep = Vec::with_capacity(conns);
    let mut receivers = Vec::with_capacity(conns);
    for (i, (sender, mut stream, k)) in set_up.into_iter().enumerate() {
        groups[i % timers].push((i, sender));
        keep.push(k);
        let (sh, size) = (sh.clone(), a.payload);
        receivers.push(rt.spawn(async move {
            let mut count = 0u64;
            let mut lat = Vec::new();
            while count < per_conn
                && let Some(d) = stream.next().await
            {
                let now = now_ns();
                lat.clear();
                for p in &d.payloads {
                    if p.len() != size {
                        sh.bad.fetch_add(1, Ordering::Relaxed);
                    }
                    if u64_at(p, 16) != i as u64 {
                        sh.misrouted.fetch_add(1, Ordering::Relaxed);
                    }
                    lat.push(now.saturating_sub(u64_at(p, 8)).max(1));
                }
                if d.dropped > 0 {
                    sh.dropped.fetch_add(d.dropped, Ordering::Relaxed);
                }
                {
                    let mut h = sh.hist.lock().unwrap();
                    for &v in &lat {
                        h.saturating_record(v);
                    }
                }
                count += d.payloads.len() as u64;
                sh.last_rx.fetch_max(now, Ordering::Relaxed);
                sh.received.fetch_add(d.payloads.len() as u64, Ordering::Relaxed);
            }
            stream
        }));
    }

    let meter = Meter::start(target);
    let start_ns = crate::since_base(meter.t0()) + 20_000_000;
    let drivers: Vec<_> =
        groups.into_iter().map(|g| rt.spawn(drive(g, conns, a.clone(), start_ns, sh.clone()))).collect();

    // The publishing: bounded by its length plus the drain timeout.
    let send_deadline = Instant::now() + Duration::from_secs_f64(a.seconds + a.drain_timeout + 1.0);
    let mut stalled = false;
    while !drivers.iter().all(|d| d.is_finished()) {
        if Instant::now() > send_deadline {
            stalled = true;
            sh.stop.store(true, Ordering::Relaxed);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent_end_ns = now_ns();
    let mut max_behind = 0u64;
    let mut senders = Vec::new();
    for d in drivers {
        if let Ok(Ok((s, behind))) = rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), d).await }) {
            max_behind = max_behind.max(behind);
            senders.push(s);
        }
    }
    // Deliveries still in flight: a bounded wait.
    let expected = per_conn * conns as u64;
    let drain_deadline = Instant::now() + Duration::from_secs_f64(a.drain_timeout);
    while sh.received.load(Ordering::Relaxed) < sh.sent.load(Ordering::Relaxed) && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let end_ns = sh.last_rx.load(Ordering::Relaxed).max(sent_end_ns.min(now_ns()));
    let t0_ns = crate::since_base(meter.t0());
    let m = meter.finish(target, meter.t0() + Duration::from_nanos(end_ns.saturating_sub(t0_ns)));
    let rss_end = target.pid().map(proc_rss);
    for r in &receivers {
        r.abort();
    }
    // Leave the clients to the process's exit (thousands of them).
    std::mem::forget(senders);
    std::mem::forget(keep);

    let sent = sh.sent.load(Ordering::Relaxed);
    let received = sh.received.load(Ordering::Relaxed);
    let send_s = sent_end_ns.saturating_sub(start_ns) as f64 / 1e9;
    let hist = sh.hist.lock().unwrap();
    Ok(json!({
        "workload": "active",
        "system": target.system.name(),
        "tls": clients::tls(),
        "connections": conns,
        "rate_per_connection": a.rate,
        "seconds": a.seconds,
        "payload": a.payload,
        "expected": expected,
        "published": sent,
        "received": received,
        "lost": expected.saturating_sub(received),
        // Of the lost: never published (the publishing was stopped at its time limit).
        "unsent": expected.saturating_sub(sent),
        "misrouted": sh.misrouted.load(Ordering::Relaxed),
        "dropped_reported": sh.dropped.load(Ordering::Relaxed),
        "bad_payloads": sh.bad.load(Ordering::Relaxed),
        "publish_errors": sh.errors.load(Ordering::Relaxed),
        "first_error": sh.first_error.lock().unwrap().clone(),
        "stalled": stalled,
        "client_events": clients::events(),
        "setup_s": setup_s,
        "login_per_s": conns as f64 / setup_s.max(1e-9),
        "offered_per_s": conns as f64 * a.rate,
        "sent_per_s": sent as f64 / send_s.max(1e-9),
        "delivered_per_s": received as f64 / m.elapsed_s,
        "sender_max_behind_ms": max_behind as f64 / 1e6,
        "latency_us": percentiles(&hist),
        "rss_before": rss_before,
        "rss_after_setup": rss_after_setup,
        "rss_end": rss_end,
        "elapsed_s": m.elapsed_s,
        "server_cpu_s": m.server_cpu_s,
        "client_cpu_s": m.client_cpu_s,
        "server_cores": m.server_cpu_s / m.elapsed_s,
        "server_cpu_us_per_delivery": m.server_cpu_s * 1e6 / received.max(1) as f64,
        "client_cpu_us_per_delivery": m.client_cpu_s * 1e6 / received.max(1) as f64,
        "foreign_cores": m.foreign_cores,
        "irq_cores": m.irq_cores,
        "steal_cores": m.steal_cores,
        "load1": loadavg(),
    }))
}
