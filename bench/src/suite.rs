//! The whole comparison: every workload against every system, each measurement in a fresh
//! child process with a fresh server, repetitions interleaved (A B C D A B C D …), and one
//! markdown table of medians [min..max] with the ratio rtm2 / peer.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::sys::{Binaries, System, loadavg};

#[derive(Clone, Debug, clap::Args)]
pub struct SuiteArgs {
    /// A one-run subset with smaller counts (about 2 minutes).
    #[arg(long)]
    pub quick: bool,
    /// Repetitions of each configuration (default 3; 1 with --quick).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Only these workloads (comma-separated ids: pub, f1, f10, f100, t10, f1e, lat, idle, py, node;
    /// and, only when named, py-iter, node-iter).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Leave these workloads out (comma-separated ids).
    #[arg(long, value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Only these systems (comma-separated: rtm2, rtm2-standalone, rtm2-cluster, nats, redis,
    /// relay).
    #[arg(long, value_delimiter = ',')]
    pub systems: Vec<String>,
    /// Append every measurement (JSON lines) to this file.
    #[arg(long)]
    pub raw: Option<PathBuf>,
    /// The command line to print under the table (scripts/bench passes its own).
    #[arg(long)]
    pub command_line: Option<String>,
}

/// How a metric is printed (here and in the curves' tables).
#[derive(Clone, Copy)]
pub(crate) enum Fmt {
    Rate,
    Micros,
    CpuMicros,
    Kb,
    Mb,
}

struct Row {
    label: &'static str,
    /// JSON pointer into a measurement.
    pointer: &'static str,
    fmt: Fmt,
}

struct Case {
    id: &'static str,
    title: String,
    args: Vec<String>,
    systems: Vec<System>,
    rows: Vec<Row>,
    /// A measurement taking longer than this is killed.
    timeout: Duration,
    /// Run only when named in `--only`.
    optional: bool,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn fanout_rows() -> Vec<Row> {
    vec![
        Row { label: "delivered msg/s", pointer: "/delivered_per_s", fmt: Fmt::Rate },
        Row { label: "server CPU µs/delivery", pointer: "/server_cpu_us_per_delivery", fmt: Fmt::CpuMicros },
        Row { label: "client CPU µs/delivery", pointer: "/client_cpu_us_per_delivery", fmt: Fmt::CpuMicros },
    ]
}

fn cases(quick: bool) -> Vec<Case> {
    use System::*;
    let all = vec![Rtm2, Rtm2Standalone, Nats, Redis];
    // The cluster rows: fan-out with subscribers spread over the nodes, and latency across nodes.
    let with_cluster = vec![Rtm2, Rtm2Standalone, Rtm2Cluster, Nats, Redis];
    // The message-channel fan-out rows also show the machine's limit: a plain TCP relay with
    // the same sockets and batching and no protocol (relay.rs).
    let with = |v: &Vec<System>, extra: System| [v.clone(), vec![extra]].concat();
    let q = |full: u64, quick_n: u64| if quick { quick_n } else { full }.to_string();
    let fan = |id, title: &str, kind: &str, subs: &str, msgs: String, systems: Vec<System>| Case {
        id,
        title: title.to_string(),
        args: [s(&["fanout", "--kind", kind, "--subscribers", subs, "--messages"]), vec![msgs]].concat(),
        systems,
        rows: fanout_rows(),
        timeout: Duration::from_secs(200),
        optional: false,
    };
    let mut publish_only =
        fan("pub", "publish only, no subscriber", "channel", "0", q(1_000_000, 300_000), all.clone());
    publish_only.rows = vec![
        Row { label: "published msg/s (acknowledged)", pointer: "/publish_per_s", fmt: Fmt::Rate },
        Row { label: "server CPU µs/msg", pointer: "/server_cpu_us_per_delivery", fmt: Fmt::CpuMicros },
        Row { label: "client CPU µs/msg", pointer: "/client_cpu_us_per_delivery", fmt: Fmt::CpuMicros },
    ];
    vec![
        publish_only,
        fan("f1", "1→1 message channel", "channel", "1", q(1_000_000, 300_000), with(&all, Relay)),
        fan("f10", "1→10 message channel", "channel", "10", q(200_000, 100_000), with(&with_cluster, Relay)),
        fan("f100", "1→100 message channel", "channel", "100", q(20_000, 10_000), with(&with_cluster, Relay)),
        fan("t10", "1→10 stream topic", "topic", "10", q(200_000, 100_000), vec![Rtm2, Rtm2Standalone]),
        {
            // The cost of end-to-end encryption: f1 with every payload sealed and opened.
            let mut c = fan(
                "f1e",
                "1→1 message channel, AES_128_GCM",
                "channel",
                "1",
                q(1_000_000, 300_000),
                vec![Rtm2, Rtm2Standalone],
            );
            c.args.extend(s(&["--encryption", "AES_128_GCM"]));
            c
        },
        Case {
            id: "lat",
            title: "latency 1→1 at 10k msg/s".into(),
            args: [
                s(&["latency", "--rate", "10000", "--samples"]),
                vec![q(50_000, 20_000)],
                s(&["--warmup"]),
                vec![q(5_000, 2_000)],
            ]
            .concat(),
            systems: with_cluster.clone(),
            rows: vec![
                Row { label: "one-way p50 µs", pointer: "/co_us/p50", fmt: Fmt::Micros },
                Row { label: "one-way p90 µs", pointer: "/co_us/p90", fmt: Fmt::Micros },
                Row { label: "one-way p99 µs", pointer: "/co_us/p99", fmt: Fmt::Micros },
                Row { label: "one-way p99 µs from actual send", pointer: "/raw_us/p99", fmt: Fmt::Micros },
                Row { label: "server CPU µs/msg", pointer: "/server_cpu_us_per_msg", fmt: Fmt::CpuMicros },
            ],
            timeout: Duration::from_secs(120),
            optional: false,
        },
        Case {
            id: "idle",
            title: "10k idle connections".into(),
            args: [s(&["idle", "--connections"]), vec![q(10_000, 10_000)]].concat(),
            systems: vec![Rtm2Standalone, Nats, Redis],
            rows: vec![
                Row { label: "server RSS KB/connection", pointer: "/rss_per_conn_kb", fmt: Fmt::Kb },
                Row { label: "connects (+login)/s", pointer: "/connects_per_s", fmt: Fmt::Rate },
            ],
            timeout: Duration::from_secs(200),
            optional: false,
        },
        lang("py", "delivery into Python code, 1→1 (callback)", "py", "callback", q(500_000, 200_000), false),
        lang("node", "delivery into Node.js code, 1→1 (callback)", "node", "callback", q(1_000_000, 300_000), false),
        lang("go", "delivery into Go code, 1→1 (channel receive)", "go", "callback", q(1_000_000, 300_000), false),
        lang("py-iter", "delivery into Python code, 1→1 (async for)", "py", "iter", q(200_000, 100_000), true),
        lang("node-iter", "delivery into Node.js code, 1→1 (for await)", "node", "iter", q(1_000_000, 300_000), true),
    ]
}

/// Delivery into Python / Node user code: rtm2's binding against the NATS client of that
/// language (nats-py, nats.js); the publisher is the Rust client of each system.
fn lang(id: &'static str, title: &str, lang: &str, api: &str, msgs: String, optional: bool) -> Case {
    Case {
        id,
        title: title.to_string(),
        args: [s(&["lang", "--lang", lang, "--api", api, "--messages"]), vec![msgs]].concat(),
        systems: vec![System::Rtm2Standalone, System::Nats],
        rows: vec![
            Row { label: "delivered msg/s into user code", pointer: "/delivered_per_s", fmt: Fmt::Rate },
            Row {
                label: "subscriber process CPU µs/msg",
                pointer: "/subscriber_cpu_us_per_delivery",
                fmt: Fmt::CpuMicros,
            },
            Row { label: "server CPU µs/msg", pointer: "/server_cpu_us_per_delivery", fmt: Fmt::CpuMicros },
            Row { label: "publisher (Rust) CPU µs/msg", pointer: "/publisher_cpu_us_per_msg", fmt: Fmt::CpuMicros },
        ],
        timeout: Duration::from_secs(200),
        optional,
    }
}

pub(crate) fn passthrough(bins: &Binaries, client_threads: usize) -> Vec<String> {
    let mut v = vec![
        "--nats-server".to_string(),
        bins.nats_server.display().to_string(),
        "--redis-server".to_string(),
        bins.redis_server.display().to_string(),
        "--server-threads".to_string(),
        bins.server_threads.to_string(),
        "--client-threads".to_string(),
        client_threads.to_string(),
    ];
    if let Some(p) = &bins.rtm2_bin {
        v.push("--rtm2-bin".into());
        v.push(p.display().to_string());
    }
    v
}

/// Runs one measurement in a child process; its last stdout line is the JSON result.
pub(crate) fn measure(args: &[String], timeout: Duration) -> Value {
    let err = |e: String| serde_json::json!({ "error": e });
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return err(e.to_string()),
    };
    let mut cmd = Command::new(exe);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return err(e.to_string()),
    };
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return err(format!("timed out after {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return err(e.to_string()),
        }
    }
    let out = reader.join().unwrap_or_default();
    match out.lines().rev().find(|l| l.trim_start().starts_with('{')) {
        Some(line) => serde_json::from_str(line).unwrap_or_else(|e| err(format!("bad output {line:?}: {e}"))),
        None => err(format!("no result (output: {out:?})")),
    }
}

/// The median (None of nothing).
pub(crate) fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => None,
        _ => Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }),
    }
}

pub(crate) fn fmt(f: Fmt, v: f64) -> String {
    match f {
        Fmt::Rate => {
            if v >= 1e6 {
                format!("{:.2}M", v / 1e6)
            } else if v >= 1e4 {
                format!("{:.0}k", v / 1e3)
            } else if v >= 1e3 {
                format!("{:.1}k", v / 1e3)
            } else if v >= 10.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        }
        Fmt::Micros => {
            if v >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        }
        Fmt::CpuMicros => format!("{v:.2}"),
        Fmt::Kb | Fmt::Mb => format!("{v:.1}"),
    }
}

/// One system's measurements of one case, in run order.
struct Series<'a> {
    runs: Vec<&'a Value>,
}

impl Series<'_> {
    fn values(&self, pointer: &str) -> Vec<Option<f64>> {
        self.runs.iter().map(|v| if ok(v) { v.pointer(pointer).and_then(Value::as_f64) } else { None }).collect()
    }

    fn cell(&self, row: &Row) -> String {
        if self.runs.is_empty() {
            return "–".into();
        }
        let mut vals: Vec<f64> = self.values(row.pointer).into_iter().flatten().collect();
        let failed = self.runs.iter().filter(|v| !ok(v)).count();
        let lost: u64 = self.runs.iter().filter_map(|v| v.get("lost").and_then(Value::as_u64)).sum();
        let mut c = if vals.is_empty() {
            "failed".to_string()
        } else if vals.len() == 1 {
            fmt(row.fmt, vals[0])
        } else {
            let (lo, hi) = (
                vals.iter().copied().fold(f64::INFINITY, f64::min),
                vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            );
            format!("{} [{}..{}]", fmt(row.fmt, median(&mut vals).unwrap_or(0.0)), fmt(row.fmt, lo), fmt(row.fmt, hi))
        };
        if lost > 0 {
            c.push_str(&format!(" ⚠ lost {lost}"));
        }
        if failed > 0 && !vals.is_empty() {
            c.push_str(&format!(" ⚠ {failed} failed"));
        }
        c
    }
}

/// A run counts when it has no error and lost nothing.
fn ok(v: &Value) -> bool {
    v.get("error").is_none() && v.get("lost").and_then(Value::as_u64).unwrap_or(0) == 0
}

/// Median over runs of (a_r / b_r), pairing the same repetition of both systems.
fn ratio(a: &Series, b: &Series, row: &Row) -> String {
    let (va, vb) = (a.values(row.pointer), b.values(row.pointer));
    let mut r: Vec<f64> = va
        .iter()
        .zip(vb.iter())
        .filter_map(|(x, y)| match (x, y) {
            (Some(x), Some(y)) if *y > 0.0 => Some(x / y),
            _ => None,
        })
        .collect();
    median(&mut r).map_or_else(|| "–".into(), |m| format!("{m:.2}"))
}

pub(crate) fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let s = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&s).lines().next().unwrap_or("").trim().to_string()
        })
        .unwrap_or_default()
}

pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_kb: u64 = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| l.strip_prefix("MemTotal:").and_then(|r| r.split_whitespace().next()?.parse().ok()))
        })
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpus} CPUs ({model}), {:.1} GiB RAM, Linux {}", mem_kb as f64 / 1048576.0, kernel.trim())
}

pub fn run(a: &SuiteArgs, bins: &Binaries, client_threads: usize) -> ExitCode {
    let runs = a.runs.unwrap_or(if a.quick { 1 } else { 3 }).max(1);
    let wanted_systems: Vec<System> = if a.systems.is_empty() {
        System::ALL.to_vec()
    } else {
        let mut v = Vec::new();
        for name in &a.systems {
            match System::parse(name) {
                Some(s) => v.push(s),
                None => {
                    eprintln!("unknown system {name:?} (rtm2, rtm2-standalone, rtm2-cluster, nats, redis, relay)");
                    return ExitCode::FAILURE;
                }
            }
        }
        v
    };
    let all_cases = cases(a.quick);
    for id in a.only.iter().chain(&a.skip) {
        if !all_cases.iter().any(|c| c.id == id) {
            eprintln!(
                "unknown workload {id:?} (pub, f1, f10, f100, t10, f1e, lat, idle, py, node, py-iter, node-iter)"
            );
            return ExitCode::FAILURE;
        }
    }
    let cases: Vec<Case> = all_cases
        .into_iter()
        .filter(|c| if a.only.is_empty() { !c.optional } else { a.only.iter().any(|o| o == c.id) })
        .filter(|c| !a.skip.iter().any(|o| o == c.id))
        .map(|mut c| {
            c.systems.retain(|s| wanted_systems.contains(s));
            c
        })
        .filter(|c| !c.systems.is_empty())
        .collect();
    let mut raw = a.raw.as_ref().map(|p| {
        std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap_or_else(|e| {
            eprintln!("cannot open {}: {e}", p.display());
            std::process::exit(2)
        })
    });

    let load_before = loadavg();
    let started = Instant::now();
    let total: usize = cases.iter().map(|c| c.systems.len() * runs).sum();
    let pass = passthrough(bins, client_threads);
    // results[case][system] = runs in order
    let mut results: Vec<Vec<Vec<Value>>> = cases.iter().map(|c| vec![Vec::new(); c.systems.len()]).collect();
    let mut foreign = Vec::new();
    let mut k = 0;
    for (ci, case) in cases.iter().enumerate() {
        for run in 0..runs {
            for (si, sys) in case.systems.iter().enumerate() {
                k += 1;
                let args: Vec<String> =
                    [pass.clone(), case.args.clone(), vec!["--system".into(), sys.name().into()]].concat();
                let t = Instant::now();
                let mut v = measure(&args, case.timeout);
                if let Some(o) = v.as_object_mut() {
                    o.insert("case".into(), case.id.into());
                    o.insert("run".into(), run.into());
                    o.entry("system").or_insert(sys.name().into());
                }
                let summary = if let Some(e) = v.get("error") {
                    format!("ERROR {e}")
                } else {
                    case.rows
                        .first()
                        .and_then(|r| v.pointer(r.pointer).and_then(Value::as_f64).map(|x| (r, x)))
                        .map(|(r, x)| format!("{} {}", r.label, fmt(r.fmt, x)))
                        .unwrap_or_default()
                        + &match v.get("lost").and_then(Value::as_u64) {
                            Some(l) if l > 0 => format!(" LOST {l}"),
                            _ => String::new(),
                        }
                };
                eprintln!(
                    "[{k}/{total}] {} · {} · run {}: {summary} ({:.1} s)",
                    case.id,
                    sys.name(),
                    run + 1,
                    t.elapsed().as_secs_f64()
                );
                if let Some(f) = v.get("foreign_cores").and_then(Value::as_f64) {
                    foreign.push(f);
                }
                if let Some(f) = raw.as_mut() {
                    let _ = writeln!(f, "{v}");
                }
                results[ci][si].push(v);
            }
        }
    }
    let load_after = loadavg();

    // The table.
    let col = |sys: System| match sys {
        System::Rtm2 => "rtm2 (in-process server)",
        System::Rtm2Standalone => "rtm2 serve",
        System::Nats => "NATS",
        System::Redis => "Redis",
        System::Rtm2Cluster => "rtm2 cluster (3 nodes + NATS)",
        System::Relay => "TCP relay (the machine's limit)",
    };
    let shown: Vec<System> = System::ALL.into_iter().filter(|s| cases.iter().any(|c| c.systems.contains(s))).collect();
    let base = [System::Rtm2Standalone, System::Rtm2].into_iter().find(|s| shown.contains(s));
    let peers: Vec<System> = shown.iter().copied().filter(|s| !s.is_rtm2()).collect();
    let mut out = String::new();
    out.push_str(&format!(
        "rtm2 benchmarks: {} run(s) per configuration, interleaved; 128-byte payloads; loopback\n\n",
        runs
    ));
    let mut header = vec!["workload".to_string(), "metric".to_string()];
    header.extend(shown.iter().map(|s| col(*s).to_string()));
    if let Some(b) = base {
        header.extend(peers.iter().map(|p| format!("{} / {}", col(b), col(*p))));
    }
    // The cluster against one node (msg/s: above 1 is better; CPU: the cluster's cost factor).
    let cluster_vs = shown.contains(&System::Rtm2Cluster).then_some(base).flatten();
    if let Some(b) = cluster_vs {
        header.push(format!("{} / {}", col(System::Rtm2Cluster), col(b)));
    }
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for (ci, case) in cases.iter().enumerate() {
        let series = |sys: System| Series {
            runs: case.systems.iter().position(|s| *s == sys).map_or(Vec::new(), |i| results[ci][i].iter().collect()),
        };
        for row in &case.rows {
            let mut cells = vec![case.title.clone(), row.label.to_string()];
            cells.extend(shown.iter().map(|s| series(*s).cell(row)));
            if let Some(b) = base {
                cells.extend(peers.iter().map(|p| ratio(&series(b), &series(*p), row)));
            }
            if let Some(b) = cluster_vs {
                cells.push(ratio(&series(System::Rtm2Cluster), &series(b), row));
            }
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
    }
    out.push('\n');
    out.push_str(&format!(
        "Cells: median [min..max] over runs. Ratios: median of the per-run ratios ({} / peer; above 1 is better for msg/s and connects/s, below 1 is better for µs, CPU and KB). \
         Throughput is loss-free (publisher at most 32768 messages ahead of the slowest subscriber); a run that lost a message is flagged and left out.\n",
        base.map_or("rtm2", col)
    ));
    out.push_str(&format!("Machine: {}\n", machine()));
    out.push_str(&format!(
        "Versions: {}; {}; {}\n",
        first_line(&bins.nats_server.display().to_string(), &["--version"]),
        first_line(&bins.redis_server.display().to_string(), &["--version"]),
        first_line(
            &bins.rtm2_bin.as_ref().map_or_else(
                || {
                    std::env::current_exe()
                        .ok()
                        .and_then(|e| e.parent().map(|d| d.join("rtm2").display().to_string()))
                        .unwrap_or_else(|| "rtm2".into())
                },
                |p| p.display().to_string()
            ),
            &["--version"]
        ),
    ));
    let max_foreign = foreign.iter().copied().fold(0.0, f64::max);
    let median_foreign = median(&mut foreign).unwrap_or(0.0);
    out.push_str(&format!(
        "Load average (1 min): {load_before:.2} before, {load_after:.2} after; CPU used by other processes during a run: median {median_foreign:.2}, max {max_foreign:.2} cores; took {:.0} s\n",
        started.elapsed().as_secs_f64()
    ));
    if median_foreign > 0.25 {
        out.push_str("PROVISIONAL: other processes used a sizeable share of the 2 CPUs while this ran; re-run on a quiet machine.\n");
    }
    if let Some(c) = &a.command_line {
        out.push_str(&format!("Command: `{c}`\n"));
    }
    print!("{out}");
    // A failed measurement, or a message lost by rtm2, fails the run; a peer's loss (core NATS
    // is at-most-once) is only flagged in the table.
    let all = || results.iter().flatten().flatten();
    let failed = all().filter(|v| v.get("error").is_some()).count();
    let rtm2_lost = all()
        .filter(|v| !ok(v) && v.get("system").and_then(Value::as_str).is_some_and(|s| s.starts_with("rtm2")))
        .count();
    let peer_lost = all()
        .filter(|v| !ok(v) && v.get("error").is_none())
        .filter(|v| !v.get("system").and_then(Value::as_str).is_some_and(|s| s.starts_with("rtm2")))
        .count();
    if peer_lost > 0 {
        eprintln!("{peer_lost} peer measurement(s) lost messages (flagged in the table)");
    }
    if failed > 0 || rtm2_lost > 0 {
        eprintln!(
            "{failed} measurement(s) failed, {rtm2_lost} rtm2 measurement(s) failed or lost messages (see the raw JSON lines)"
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
