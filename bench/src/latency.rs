//! One-way latency at a fixed open-loop rate: a pacing thread sends message i at its intended
//! time t0 + i/rate whether or not earlier ones were delivered, with the intended and the actual
//! send time in the payload. The subscriber records now − intended (corrected for coordinated
//! omission: a stalled sender or server counts against the system) and now − actual.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use hdrhistogram::Histogram;
use rtm2_core::{PublishOptions, TopicMessageOptions};
use serde_json::{Value, json};

use crate::clients::{self, BoxError, CHANNEL, Kind, Publisher, TOPIC};
use crate::now_ns;
use crate::sys::{Meter, Target, loadavg};

#[derive(Clone, Debug, clap::Args)]
pub struct LatencyArgs {
    /// Messages per second (open loop).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Messages recorded (after the warm-up).
    #[arg(long, default_value_t = 50_000)]
    pub samples: u64,
    /// Messages sent first and not recorded.
    #[arg(long, default_value_t = 5_000)]
    pub warmup: u64,
    /// Payload bytes (at least 24: intended time, send time, sequence number).
    #[arg(long, default_value_t = 128)]
    pub payload: usize,
    /// Message channel (all systems) or stream topic (rtm2 only).
    #[arg(long, value_enum, default_value_t = Kind::Channel)]
    pub kind: Kind,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("valid bounds")
}

fn u64_at(p: &[u8], i: usize) -> u64 {
    p.get(i..i + 8).map_or(0, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// Sends one payload without waiting for it (open loop).
type Fire = Box<dyn FnMut(Bytes) + Send>;

fn fire_for(p: Publisher, handle: tokio::runtime::Handle, errors: Arc<AtomicU64>) -> (Fire, Box<dyn FnOnce() + Send>) {
    match p {
        Publisher::Rtm2(_) | Publisher::Rtm2Topic(..) => {
            // Publishes are queued when called; the Ops are kept (dropping one would cancel
            // it) and reaped as they complete.
            let ops = Arc::new(std::sync::Mutex::new(VecDeque::new()));
            let (ops2, errs2) = (ops.clone(), errors.clone());
            let p = Arc::new(p);
            let fire: Fire = Box::new(move |b| {
                let op = match &*p {
                    Publisher::Rtm2(c) => c.publish(CHANNEL, clients::rtm2_payload(b), PublishOptions::default()),
                    Publisher::Rtm2Topic(_, ch) => {
                        ch.publish_topic(TOPIC, clients::rtm2_payload(b), TopicMessageOptions::default())
                    }
                    _ => unreachable!(),
                };
                let mut ops = ops.lock().unwrap();
                ops.push_back(op);
                while let Some(front) = ops.front_mut() {
                    match front.now_or_never() {
                        Some(r) => {
                            if r.is_err() {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                            ops.pop_front();
                        }
                        None => break,
                    }
                }
            });
            let finish = Box::new(move || {
                let rest: Vec<_> = ops2.lock().unwrap().drain(..).collect();
                for op in rest {
                    if futures::executor::block_on(op).is_err() {
                        errs2.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            (fire, finish)
        }
        Publisher::Nats(c) => {
            let c2 = c.clone();
            let fire: Fire = Box::new(move |b| {
                if futures::executor::block_on(c.publish(CHANNEL, b)).is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            });
            let finish = Box::new(move || {
                let _ = handle.block_on(c2.flush());
            });
            (fire, finish)
        }
        Publisher::Redis(con) => {
            let fire: Fire = Box::new(move |b| {
                let mut con = con.clone();
                let errors = errors.clone();
                handle.spawn(async move {
                    let r: redis::RedisResult<i64> =
                        redis::cmd("PUBLISH").arg(CHANNEL).arg(&b[..]).query_async(&mut con).await;
                    if r.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                });
            });
            (fire, Box::new(|| {}))
        }
        Publisher::Relay(r) => {
            // Each message on the wire at once (nothing to batch it with at a paced rate).
            let fire: Fire = Box::new(move |b| {
                if futures::executor::block_on(async {
                    r.publish(&b).await?;
                    r.flush().await
                })
                .is_err()
                {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            });
            (fire, Box::new(|| {}))
        }
    }
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

pub fn run(target: &Target, a: &LatencyArgs, rt: &tokio::runtime::Runtime) -> Result<Value, BoxError> {
    if a.payload < 24 {
        return Err("--payload must be at least 24 bytes".into());
    }
    let total = a.warmup + a.samples;
    let (publisher, mut sub) = rt.block_on(async {
        let p = clients::publisher(target, a.kind).await?;
        let s = clients::subscriber(target, a.kind, 0, 1 << 20).await?;
        Ok::<_, BoxError>((p, s))
    })?;

    let received = Arc::new(AtomicU64::new(0));
    let warmup = a.warmup;
    let rx_count = received.clone();
    let receiver = rt.spawn(async move {
        let (mut co, mut raw) = (hist(), hist());
        let mut count = 0u64;
        while let Some(d) = sub.stream.next().await {
            let now = now_ns();
            for p in &d.payloads {
                let (intended, sent, seq) = (u64_at(p, 0), u64_at(p, 8), u64_at(p, 16));
                if seq >= warmup {
                    co.saturating_record(now.saturating_sub(intended).max(1));
                    raw.saturating_record(now.saturating_sub(sent).max(1));
                }
            }
            count += d.payloads.len() as u64;
            rx_count.store(count, Ordering::Relaxed);
            if count >= total {
                break;
            }
        }
        (co, raw)
    });

    let errors = Arc::new(AtomicU64::new(0));
    let (mut fire, finish) = fire_for(publisher, rt.handle().clone(), errors.clone());
    let meter = Meter::start(target);
    let (rate, size) = (a.rate.max(1), a.payload);
    let pacer = std::thread::spawn(move || {
        // Sleep precisely (default timer slack is 50 µs).
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64) };
        let start = now_ns() + 5_000_000;
        let mut max_behind = 0u64;
        for i in 0..total {
            let intended = start + i * 1_000_000_000 / rate;
            let now = now_ns();
            if intended > now {
                std::thread::sleep(Duration::from_nanos(intended - now));
            } else {
                max_behind = max_behind.max(now - intended);
            }
            let mut b = BytesMut::with_capacity(size);
            b.put_u64_le(intended);
            b.put_u64_le(now_ns());
            b.put_u64_le(i);
            b.resize(size, b'x');
            fire(b.freeze());
        }
        let sent_ns = now_ns() - start;
        finish();
        (sent_ns, max_behind)
    });
    let (sent_ns, max_behind) = pacer.join().map_err(|_| "the pacing thread panicked")?;

    // Deliveries still in flight: wait a bounded time.
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let m = meter.finish(target, Instant::now());
    let hists = rt.block_on(async { tokio::time::timeout(Duration::from_millis(200), receiver).await });
    let got = received.load(Ordering::Relaxed);
    let (co, raw) = match hists {
        Ok(Ok(h)) => h,
        _ => return Err(format!("only {got} of {total} messages arrived within 10 s").into()),
    };
    let msgs = got.max(1) as f64;
    Ok(json!({
        "workload": "latency",
        "system": target.system.name(),
        "tls": clients::tls(),
        "kind": a.kind.name(),
        "rate": a.rate,
        "samples": a.samples,
        "warmup": a.warmup,
        "payload": a.payload,
        "expected": total,
        "received": got,
        "lost": total.saturating_sub(got),
        "publish_errors": errors.load(Ordering::Relaxed),
        "achieved_rate": total as f64 * 1e9 / sent_ns.max(1) as f64,
        "pacer_max_behind_us": max_behind as f64 / 1e3,
        "co_us": percentiles(&co),
        "raw_us": percentiles(&raw),
        "elapsed_s": m.elapsed_s,
        "server_cpu_s": m.server_cpu_s,
        "client_cpu_s": m.client_cpu_s,
        "server_cpu_us_per_msg": m.server_cpu_s * 1e6 / msgs,
        "client_cpu_us_per_msg": m.client_cpu_s * 1e6 / msgs,
        "foreign_cores": m.foreign_cores,
        "irq_cores": m.irq_cores,
        "steal_cores": m.steal_cores,
        "load1": loadavg(),
    }))
}
