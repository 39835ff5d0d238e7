//! Delivery into Python, Node.js or Go user code: one publisher (this process, the Rust client
//! of the system) → one subscriber in a child process (`bench/python/sub.py`,
//! `bench/node/sub.js` or the program of `bench/go`) that uses rtm2's binding or the system's
//! usual client in that language (nats-py, nats.js, nats.go) and counts every message in user
//! code.
//!
//! The subscriber reports its running count on stdout every `--ack` messages; the publisher stays
//! at most `--window` messages ahead of that count, so the run is loss-free by construction and
//! `lost = expected − received` (counted in user code) must be 0. The rate is messages over the
//! time from the first publish to the last delivery into user code (both CLOCK_MONOTONIC).

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::clients::{self, BoxError, Kind};
use crate::fanout::{self, FanoutArgs, PubOutcome, Shared};
use crate::sys::{Meter, System, Target, loadavg, proc_stat_cpu};

/// The language of the subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Python (asyncio): rtm2 via bindings/python, NATS via nats-py.
    Py,
    /// Node.js: rtm2 via bindings/node, NATS via nats.js (`nats` 2.x).
    Node,
    /// Go: rtm2 via bindings/go (a receive from the subscription's Go channel), NATS via
    /// nats.go (a receive from a `ChanSubscribe` channel).
    Go,
}

/// How user code receives messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// A callback per message (rtm2: `client.on("message")` / `rtm.on('message')`; nats-py
    /// `cb=`; nats.js `callback`).
    Callback,
    /// Async iteration (`async for m in sub` / `for await (const m of sub)`).
    Iter,
}

impl Lang {
    fn name(self) -> &'static str {
        match self {
            Lang::Py => "py",
            Lang::Node => "node",
            Lang::Go => "go",
        }
    }
}

impl Api {
    fn name(self) -> &'static str {
        match self {
            Api::Callback => "callback",
            Api::Iter => "iter",
        }
    }
}

#[derive(Clone, Debug, clap::Args)]
pub struct LangArgs {
    /// The subscriber's language.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Callback or async iteration.
    #[arg(long, value_enum, default_value_t = Api::Callback)]
    pub api: Api,
    /// Messages published (and expected in user code).
    #[arg(long, default_value_t = 200_000)]
    pub messages: u64,
    /// Most messages the publisher may be ahead of the subscriber's reported count.
    #[arg(long, default_value_t = 32 * 1024)]
    pub window: u64,
    /// The subscriber reports its count every this many messages.
    #[arg(long, default_value_t = 4096)]
    pub ack: u64,
    /// rtm2: publish operations in flight at most (default: the window).
    #[arg(long)]
    pub inflight: Option<usize>,
    /// Payload bytes.
    #[arg(long, default_value_t = 128)]
    pub payload: usize,
    /// The subscriber gives up when no message arrived for this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub idle_timeout: f64,
    /// Give up (kill the subscriber) after this many seconds of publishing and delivering.
    #[arg(long, default_value_t = 120.0)]
    pub max_seconds: f64,
    /// Python interpreter with rtm2 and nats-py installed (default: .venv-bench/bin/python of
    /// the repository).
    #[arg(long, env = "RTM2_BENCH_PYTHON")]
    pub python: Option<PathBuf>,
    /// Node.js.
    #[arg(long, env = "RTM2_BENCH_NODE", default_value = "node")]
    pub node: PathBuf,
    /// The rtm2 Node addon to load (NAPI_RS_NATIVE_LIBRARY_PATH; default: the one in
    /// bindings/node).
    #[arg(long, env = "RTM2_BENCH_NODE_ADDON")]
    pub node_addon: Option<PathBuf>,
    /// The Go subscriber program, built from bench/go (default: target/bench/rtm2-bench-go-sub).
    #[arg(long, env = "RTM2_BENCH_GO_SUB")]
    pub go_sub: Option<PathBuf>,
}

/// The repository (this crate is its `bench/` directory).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// CLOCK_MONOTONIC in nanoseconds (the clock of time.monotonic_ns and process.hrtime).
fn mono_ns() -> u64 {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

enum Line {
    Ready,
    Done(Value),
    Error(String),
    Eof,
}

fn subscriber_command(a: &LangArgs, system: System, addr: &str) -> Command {
    let root = repo();
    let sys_name = if system.is_rtm2() { "rtm2" } else { "nats" };
    let mut cmd = match a.lang {
        Lang::Py => {
            let py = a.python.clone().unwrap_or_else(|| root.join(".venv-bench/bin/python"));
            let mut c = Command::new(py);
            c.arg(root.join("bench/python/sub.py"));
            c
        }
        Lang::Node => {
            let mut c = Command::new(&a.node);
            c.arg(root.join("bench/node/sub.js"));
            if std::env::var_os("RTM2_BENCH_NODE_PKG").is_none() {
                c.env("RTM2_BENCH_NODE_PKG", root.join("bindings/node"));
            }
            if let Some(addon) = &a.node_addon {
                // require() resolves a relative path against the loader's directory, not ours.
                c.env("NAPI_RS_NATIVE_LIBRARY_PATH", std::fs::canonicalize(addon).unwrap_or_else(|_| addon.clone()));
            }
            c
        }
        Lang::Go => Command::new(a.go_sub.clone().unwrap_or_else(|| root.join("target/bench/rtm2-bench-go-sub"))),
    };
    cmd.args(["--system", sys_name, "--addr", addr, "--api", a.api.name()])
        .args(["--messages", &a.messages.to_string(), "--payload", &a.payload.to_string()])
        .args(["--ack", &a.ack.to_string(), "--idle-timeout", &a.idle_timeout.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // The subscriber dies with this process.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

/// Reads the subscriber's lines: counts go straight into the window state, the rest to `tx`.
fn read_lines(child: &mut Child, sh: Arc<Shared>, tx: mpsc::Sender<Line>) {
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("n ") {
                if let Ok(n) = n.trim().parse::<u64>() {
                    sh.received[0].store(n, Ordering::Release);
                    sh.notify.notify_one();
                }
            } else if line == "ready" {
                let _ = tx.send(Line::Ready);
            } else if let Some(j) = line.strip_prefix("done ") {
                let v = serde_json::from_str(j).unwrap_or_else(|e| json!({ "parse_error": e.to_string() }));
                let _ = tx.send(Line::Done(v));
            } else if let Some(e) = line.strip_prefix("error ") {
                let _ = tx.send(Line::Error(e.to_string()));
            } else {
                eprintln!("[subscriber] {line}");
            }
        }
        let _ = tx.send(Line::Eof);
    });
}

fn stop_child(child: &mut Child, grace: Duration) {
    drop(child.stdin.take());
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

pub fn run(target: &Target, a: &LangArgs, rt: &tokio::runtime::Runtime) -> Result<Value, BoxError> {
    if target.system == System::Redis {
        return Err("the binding workloads compare rtm2 with NATS only".into());
    }
    let setup_t0 = Instant::now();
    let sh = Arc::new(Shared::new(1));
    let mut child = subscriber_command(a, target.system, &target.addr)
        .spawn()
        .map_err(|e| format!("cannot start the {} subscriber: {e}", a.lang.name()))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    read_lines(&mut child, sh.clone(), tx);
    let publisher = match rt.block_on(clients::publisher(target, Kind::Channel)) {
        Ok(p) => p,
        Err(e) => {
            stop_child(&mut child, Duration::from_secs(2));
            return Err(e);
        }
    };
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Line::Ready) => {}
        other => {
            stop_child(&mut child, Duration::from_secs(2));
            return Err(match other {
                Ok(Line::Error(e)) => format!("subscriber failed: {e}"),
                Ok(_) => "subscriber ended before it was ready".to_string(),
                Err(_) => "subscriber not ready within 60 s".to_string(),
            }
            .into());
        }
    }
    let setup_s = setup_t0.elapsed().as_secs_f64();

    let proc_cpu = |pid: u32| proc_stat_cpu(&format!("/proc/{pid}/stat"));
    let sub_cpu0 = proc_cpu(pid);
    let meter = Meter::start(target);
    let t0_mono = mono_ns();
    let fa = FanoutArgs {
        subscribers: 1,
        messages: a.messages,
        window: a.window,
        inflight: a.inflight,
        pipeline: 100,
        payload: a.payload,
        kind: Kind::Channel,
        idle_timeout: a.idle_timeout,
        max_seconds: a.max_seconds,
        encryption: None,
        store_in_history: false,
    };
    let publisher_task = rt.spawn(fanout::publish_all(publisher, fa, sh.clone()));

    // The subscriber ends the run: at the expected count, or after its idle timeout.
    let deadline = Instant::now() + Duration::from_secs_f64(a.max_seconds + a.idle_timeout);
    let mut failure = None;
    let done = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Line::Done(v)) => break Some(v),
            Ok(Line::Error(e)) => {
                failure = Some(format!("subscriber failed: {e}"));
                break None;
            }
            Ok(Line::Eof) => {
                failure = Some("subscriber exited without a result".into());
                break None;
            }
            Ok(Line::Ready) | Err(mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() > deadline {
                    failure = Some(format!("no result within {:.0} s", a.max_seconds + a.idle_timeout));
                    break None;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                failure = Some("subscriber output closed".into());
                break None;
            }
        }
    };
    let sub_cpu = (proc_cpu(pid) - sub_cpu0).max(0.0);
    sh.stop.store(true, Ordering::Relaxed);
    let outcome = rt.block_on(async {
        match tokio::time::timeout(Duration::from_secs(10), publisher_task).await {
            Ok(Ok((o, p))) => {
                drop(p);
                Some(o)
            }
            _ => None,
        }
    });
    let done = done.unwrap_or(Value::Null);
    let last_ns = done.get("last_ns").and_then(Value::as_u64).unwrap_or(0);
    let first_ns = done.get("first_ns").and_then(Value::as_u64).unwrap_or(0);
    let end = meter.t0() + Duration::from_nanos(last_ns.saturating_sub(t0_mono));
    let m = meter.finish(target, end);
    stop_child(&mut child, Duration::from_secs(5));
    if let Some(f) = failure {
        return Err(f.into());
    }

    let received = done.get("received").and_then(Value::as_u64).unwrap_or(0);
    let outcome = outcome.unwrap_or(PubOutcome {
        published: 0,
        errors: 1,
        first_error: Some("the publisher did not finish".into()),
        done_ns: 0,
    });
    let per = received.max(1) as f64;
    let cb_s = last_ns.saturating_sub(first_ns) as f64 / 1e9;
    // The subscriber is another process: what Meter counts as foreign includes it.
    let foreign = (m.foreign_cores - sub_cpu / m.wall_s).max(0.0);
    Ok(json!({
        "workload": "lang",
        "system": target.system.name(),
        "lang": a.lang.name(),
        "api": a.api.name(),
        "messages": a.messages,
        "payload": a.payload,
        "window": a.window,
        "expected": a.messages,
        "received": received,
        "lost": a.messages.saturating_sub(received),
        "dropped_reported": done.get("dropped").cloned().unwrap_or(Value::Null),
        "bad_payloads": done.get("bad").cloned().unwrap_or(Value::Null),
        "published": outcome.published,
        "publish_errors": outcome.errors,
        "first_error": outcome.first_error,
        "setup_s": setup_s,
        "elapsed_s": m.elapsed_s,
        "delivered_per_s": received as f64 / m.elapsed_s,
        "first_to_last_per_s": if cb_s > 0.0 { (received.saturating_sub(1)) as f64 / cb_s } else { 0.0 },
        "server_cpu_s": m.server_cpu_s,
        "subscriber_cpu_s": sub_cpu,
        "publisher_cpu_s": m.client_cpu_s,
        "server_cpu_us_per_delivery": m.server_cpu_s * 1e6 / per,
        "subscriber_cpu_us_per_delivery": sub_cpu * 1e6 / per,
        "publisher_cpu_us_per_msg": m.client_cpu_s * 1e6 / outcome.published.max(1) as f64,
        "foreign_cores": foreign,
        "irq_cores": m.irq_cores,
        "steal_cores": m.steal_cores,
        "load1": loadavg(),
    }))
}
