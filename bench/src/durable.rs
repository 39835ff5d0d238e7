//! Durable key-value writes (issue #21): W concurrent writers, each on its own connection,
//! each issuing one write at a time (await the acknowledgement, then the next), every write on
//! disk (fsync) before it is acknowledged. Reports acknowledged writes per second and the
//! latency of each write.
//!
//! * rtm2-standalone: `rtm2 serve --data-dir DIR`; writer i sets one item of the metadata of
//!   its own channel `durable{i}` (key `k{n % 16}`), `set_channel_metadata` with default
//!   options.
//! * nats: nats-server with JetStream, `sync_interval: always` (config file), a key-value
//!   bucket with file storage and history 1; writer i `put`s `w{i}.k{n % 16}`.
//! * redis: `redis-server --appendonly yes --appendfsync always`; writer i `SET`s
//!   `w{i}:k{n % 16}`.
//!
//! `--same-key`: every writer writes writer 0's keys (rtm2: the one channel `durable0`).
//! Each measurement has a fresh data directory under the temporary directory (`TMPDIR`: put
//! it on the disk to measure), removed afterwards; its size at the end is `disk_bytes`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use rtm2_core::{ChannelType, MetadataItem, MetadataOptions};
use serde_json::{Value, json};

use crate::clients::{self, BoxError};
use crate::now_ns;
use crate::sys::{Binaries, Meter, Metered, System, Target, loadavg};

/// Keys per writer (n % KEYS): the metadata of a channel stays small.
const KEYS: u64 = 16;
/// The run fails when no write is acknowledged for this long.
const STALL: Duration = Duration::from_secs(10);
/// The key-value bucket of the NATS variant.
const BUCKET: &str = "durable";
/// How long one write may wait for its acknowledgement (each client's default is shorter:
/// 500 ms for redis, 5 s for a JetStream publish; rtm2's is set to 30 s in clients.rs).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, clap::Args)]
pub struct DurableArgs {
    /// Concurrent writers, each with its own connection and one write in flight.
    #[arg(long, default_value_t = 1)]
    pub writers: usize,
    /// Measured writes per writer (instead of a measured duration).
    #[arg(long, conflicts_with = "seconds")]
    pub writes_per_writer: Option<u64>,
    /// Measured seconds [default: 5].
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Bytes of each value.
    #[arg(long, default_value_t = 64)]
    pub value_bytes: usize,
    /// Every writer writes the same keys (rtm2: the same channel): the contention case.
    #[arg(long)]
    pub same_key: bool,
    /// Seconds of writes first, not measured.
    #[arg(long, default_value_t = 0.5)]
    pub warmup: f64,
}

impl DurableArgs {
    /// The measured duration (None: `--writes-per-writer`), once the options are checked.
    fn measured_seconds(&self) -> Result<Option<f64>, String> {
        if self.writers == 0 {
            return Err("--writers must be at least 1".into());
        }
        if !(0.0..=3600.0).contains(&self.warmup) {
            return Err("--warmup must be between 0 and 3600 s".into());
        }
        match (self.seconds, self.writes_per_writer) {
            (_, Some(0)) => Err("--writes-per-writer must be at least 1".into()),
            (_, Some(_)) => Ok(None),
            (Some(s), None) if !(s > 0.0 && s <= 86_400.0) => Err("--seconds must be positive".into()),
            (s, None) => Ok(Some(s.unwrap_or(5.0))),
        }
    }
}

/// What makes each system's write durable before its acknowledgement.
fn fsync_note(system: System) -> &'static str {
    match system {
        System::Rtm2Standalone => {
            "rtm2 serve --data-dir: the metadata write is committed to the redb store (fsync) before the response"
        }
        System::Nats => {
            "JetStream file store with sync_interval: always (nats-server config): each stored message is fsynced \
             before its PubAck (the default syncs every 2 min)"
        }
        System::Redis => {
            "appendonly yes, appendfsync always: the AOF is written and fsynced before the replies of each \
             event-loop iteration (one fsync shared by the clients served in it)"
        }
        _ => "",
    }
}

/// The data directory of one measurement, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let p = std::env::temp_dir().join(format!("rtm2-bench-durable-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Apparent size and allocated size of the files under `p`, bytes.
fn dir_size(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let (mut len, mut alloc) = (0, 0);
    let Ok(rd) = std::fs::read_dir(p) else { return (0, 0) };
    for e in rd.flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            let (l, a) = dir_size(&e.path());
            len += l;
            alloc += a;
        } else {
            len += m.len();
            alloc += m.blocks() * 512;
        }
    }
    (len, alloc)
}

/// The file system type of `p` (fsync is a no-op on tmpfs).
fn fs_type(p: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else { return String::new() };
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return String::new();
    }
    match s.f_type as u64 {
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlayfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        t => format!("0x{t:x}"),
    }
}

/// One writer's connection.
enum Writer {
    Rtm2 {
        storage: rtm2_core::Storage,
        channel: String,
        #[allow(dead_code)]
        client: rtm2_core::Client,
    },
    Nats(Box<async_nats::jetstream::kv::Store>),
    Redis(redis::aio::MultiplexedConnection),
}

impl Writer {
    /// Connects writer `i`, whose keys are writer `owner`'s.
    async fn connect(target: &Target, i: usize, owner: usize) -> Result<Writer, BoxError> {
        Ok(match target.system {
            System::Rtm2Standalone => {
                let client = clients::rtm2_login(&target.addr, &format!("durable{i}")).await?;
                Writer::Rtm2 { storage: client.storage(), channel: format!("durable{owner}"), client }
            }
            System::Nats => {
                let client = async_nats::ConnectOptions::new()
                    .event_callback(|ev| async move { clients::note_event(format!("nats: {ev}")) })
                    .connect(target.addr.as_str())
                    .await?;
                let mut js = async_nats::jetstream::new(client);
                js.set_timeout(WRITE_TIMEOUT);
                Writer::Nats(Box::new(js.get_key_value(BUCKET).await?))
            }
            System::Redis => {
                let client = redis::Client::open(format!("redis://{}/", target.addr))?;
                let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(WRITE_TIMEOUT));
                Writer::Redis(client.get_multiplexed_async_connection_with_config(&config).await?)
            }
            s => return Err(format!("{} has no durable variant", s.name()).into()),
        })
    }

    /// Write `n` (of writer `owner`'s keys), acknowledged once durable.
    async fn write(&mut self, owner: usize, n: u64, value: String) -> Result<(), String> {
        let slot = n % KEYS;
        match self {
            Writer::Rtm2 { storage, channel, .. } => storage
                .set_channel_metadata(
                    channel,
                    ChannelType::MESSAGE,
                    vec![MetadataItem::new(format!("k{slot}"), value)],
                    MetadataOptions::default(),
                )
                .await
                .map(|_| ())
                .map_err(|e| format!("set_channel_metadata: {e}")),
            Writer::Nats(kv) => kv
                .put(format!("w{owner}.k{slot}"), Bytes::from(value))
                .await
                .map(|_| ())
                .map_err(|e| format!("kv put: {e}")),
            Writer::Redis(con) => redis::cmd("SET")
                .arg(format!("w{owner}:k{slot}"))
                .arg(value)
                .query_async::<()>(con)
                .await
                .map_err(|e| format!("SET: {e}")),
        }
    }
}

/// Creates the NATS key-value bucket (file storage, history 1); JetStream may need a moment
/// after the server listens.
async fn create_bucket(target: &Target) -> Result<async_nats::Client, BoxError> {
    let client = async_nats::connect(target.addr.as_str()).await?;
    let js = async_nats::jetstream::new(client.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = js
            .create_key_value(async_nats::jetstream::kv::Config {
                bucket: BUCKET.to_string(),
                history: 1,
                storage: async_nats::jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await;
        match r {
            Ok(_) => return Ok(client),
            Err(e) if Instant::now() > deadline => return Err(format!("cannot create the KV bucket: {e}").into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A value of `len` bytes, different for every write (no server can skip an unchanged one).
fn value_of(i: usize, n: u64, len: usize) -> String {
    let mut v = format!("{i}.{n}.");
    v.truncate(len);
    while v.len() < len {
        v.push('x');
    }
    v
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("valid bounds")
}

/// Percentiles of a histogram of nanoseconds, in microseconds.
fn percentiles(h: &Histogram<u64>) -> Value {
    let us = |v: u64| (v as f64 / 100.0).round() / 10.0;
    json!({
        "p50": us(h.value_at_quantile(0.50)),
        "p90": us(h.value_at_quantile(0.90)),
        "p99": us(h.value_at_quantile(0.99)),
        "max": us(h.max()),
        "mean": (h.mean() / 100.0).round() / 10.0,
    })
}

/// Shared by the writers and the thread that watches them.
struct Shared {
    /// Start of the measured interval (after the warm-up).
    t0: Instant,
    /// End of the measured interval (`--seconds`).
    end: Option<Instant>,
    /// Measured writes per writer (`--writes-per-writer`).
    per_writer: Option<u64>,
    stop: AtomicBool,
    /// now_ns() when a write was last acknowledged.
    progress_ns: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// What one writer measured: latencies (ns), acknowledged writes, the last one's completion.
struct Tally {
    hist: Histogram<u64>,
    writes: u64,
    last: Option<Instant>,
}

async fn writer(mut w: Writer, i: usize, owner: usize, len: usize, sh: Arc<Shared>) -> Tally {
    let mut t = Tally { hist: hist(), writes: 0, last: None };
    let (mut n, mut measured) = (0u64, 0u64);
    loop {
        let start = Instant::now();
        if sh.stop.load(Ordering::Relaxed) || sh.end.is_some_and(|e| start >= e) {
            break;
        }
        let in_window = start >= sh.t0;
        if let Some(k) = sh.per_writer
            && in_window
        {
            if measured >= k {
                break;
            }
            measured += 1;
        }
        let r = w.write(owner, n, value_of(i, n, len)).await;
        let done = Instant::now();
        n += 1;
        match r {
            Ok(()) => {
                sh.progress_ns.store(now_ns(), Ordering::Relaxed);
                // --seconds: acknowledged within [t0, end]; --writes-per-writer: begun after t0.
                let counted = match sh.end {
                    Some(end) => done >= sh.t0 && done <= end,
                    None => in_window,
                };
                if counted {
                    t.hist.saturating_record(done.duration_since(start).as_nanos().max(1) as u64);
                    t.writes += 1;
                    t.last = Some(done);
                }
            }
            Err(e) => {
                sh.errors.fetch_add(1, Ordering::Relaxed);
                sh.first_error.lock().unwrap().get_or_insert(e);
                // A server refusing every write is not spun on.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    t
}

fn measure(target: &Target, a: &DurableArgs, data: &Path, rt: &tokio::runtime::Runtime) -> Result<Value, BoxError> {
    let seconds = a.measured_seconds()?;
    let warmup = Duration::from_secs_f64(a.warmup);
    let owner = |i: usize| if a.same_key { 0 } else { i };

    let writers = rt.block_on(async {
        let _bucket = if target.system == System::Nats { Some(create_bucket(target).await?) } else { None };
        let conns = (0..a.writers).map(|i| Writer::connect(target, i, owner(i)));
        futures::future::try_join_all(conns).await
    })?;

    let t0 = Instant::now() + warmup;
    let sh = Arc::new(Shared {
        t0,
        end: seconds.map(|s| t0 + Duration::from_secs_f64(s)),
        per_writer: a.writes_per_writer,
        stop: AtomicBool::new(false),
        progress_ns: AtomicU64::new(now_ns()),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let tasks: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(i, w)| rt.spawn(writer(w, i, owner(i), a.value_bytes, sh.clone())))
        .collect();

    // Watch: the CPU counters at t0 and at the end, a stall ends the run.
    let mut meter: Option<Meter> = None;
    let mut metered: Option<Metered> = None;
    loop {
        std::thread::sleep(Duration::from_millis(10));
        let now = Instant::now();
        if meter.is_none() && now >= t0 {
            meter = Some(Meter::start(target));
        }
        if let (Some(m), Some(end), None) = (&meter, sh.end, metered)
            && now >= end
        {
            metered = Some(m.finish(target, end));
        }
        if tasks.iter().all(|t| t.is_finished()) {
            break;
        }
        let idle_ns = now_ns().saturating_sub(sh.progress_ns.load(Ordering::Relaxed));
        if idle_ns > STALL.as_nanos() as u64 {
            sh.stop.store(true, Ordering::Relaxed);
            let e = sh.first_error.lock().unwrap().clone();
            return Err(format!(
                "no write acknowledged for {} s ({} errors; first: {})",
                STALL.as_secs(),
                sh.errors.load(Ordering::Relaxed),
                e.as_deref().unwrap_or("none")
            )
            .into());
        }
    }
    let mut h = hist();
    let (mut writes, mut last) = (0u64, t0);
    for task in tasks {
        let t = rt.block_on(task).map_err(|e| format!("a writer failed: {e}"))?;
        h.add(&t.hist).map_err(|e| e.to_string())?;
        writes += t.writes;
        last = last.max(t.last.unwrap_or(t0));
    }
    let end = sh.end.unwrap_or(last);
    let m = match (metered, &meter) {
        (Some(m), _) => m,
        (None, Some(meter)) => meter.finish(target, end),
        // Done before t0 (cannot happen with at least one measured write per writer).
        (None, None) => return Err("the writers finished before the measurement began".into()),
    };
    let elapsed = end.saturating_duration_since(t0).as_secs_f64().max(1e-9);
    let (disk_bytes, disk_alloc_bytes) = dir_size(data);
    let first_error = sh.first_error.lock().unwrap().clone();
    Ok(json!({
        "workload": "durable",
        "system": target.system.name(),
        "writers": a.writers,
        "same_key": a.same_key,
        "value_bytes": a.value_bytes,
        "seconds": seconds,
        "writes_per_writer": a.writes_per_writer,
        "warmup_s": warmup.as_secs_f64(),
        "writes": writes,
        "errors": sh.errors.load(Ordering::Relaxed),
        "first_error": first_error,
        "elapsed_s": elapsed,
        "writes_per_s": writes as f64 / elapsed,
        "latency_us": percentiles(&h),
        "server_cpu_s": m.server_cpu_s,
        "server_cpu_us_per_write": m.server_cpu_s * 1e6 / writes.max(1) as f64,
        "client_cpu_s": m.client_cpu_s,
        "disk_bytes": disk_bytes,
        "disk_alloc_bytes": disk_alloc_bytes,
        "data_fs": fs_type(data),
        "fsync": fsync_note(target.system),
        "foreign_cores": m.foreign_cores,
        "load1": loadavg(),
        "events": clients::events(),
    }))
}

/// `rtm2-bench durable`: one measurement, one JSON line; a fresh server and data directory,
/// both gone afterwards. Called from the main thread (the server is a child of it).
pub fn main(system: System, a: &DurableArgs, bins: &Binaries, client_threads: usize) -> ExitCode {
    let fail = |e: String| {
        println!("{}", json!({ "workload": "durable", "system": system.name(), "error": e }));
        ExitCode::FAILURE
    };
    if !matches!(system, System::Rtm2Standalone | System::Nats | System::Redis) {
        return fail(format!("{} has no durable variant: use rtm2-standalone, nats or redis", system.name()));
    }
    if system == System::Rtm2Standalone
        && std::env::var("RTM2_BENCH_SERVE_FLAGS")
            .is_ok_and(|f| f.split_whitespace().any(|x| x.starts_with("--data-dir")))
    {
        return fail("RTM2_BENCH_SERVE_FLAGS has --data-dir: durable gives rtm2 serve its own".into());
    }
    if let Err(e) = a.measured_seconds() {
        return fail(e);
    }
    let dir = match TempDir::new() {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let target = match Target::start_durable(system, bins, &dir.0) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads.max(1))
        .thread_name("bench-client")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(e.to_string()),
    };
    let result = measure(&target, a, &dir.0.join("data"), &rt);
    // The server first, then its files.
    drop(target);
    drop(dir);
    let code = match result {
        Ok(v) => {
            println!("{v}");
            0
        }
        Err(e) => {
            println!("{}", json!({ "workload": "durable", "system": system.name(), "error": e.to_string() }));
            1
        }
    };
    // Writers stuck on a stopped server are not waited for.
    std::mem::forget(rt);
    std::process::exit(code)
}
