//! `rtm2-bench curves`: how the cost grows with the work — rtm2 (`rtm2 serve`) and NATS side
//! by side in the same run (and the plain TCP relay, the machine's limit, on the fan-out
//! curves; Redis on the durable one). Each point is one measurement per system in a fresh
//! child process with a fresh server (suite.rs's `measure`), the systems alternating point by
//! point; every JSON line goes to `DIR/curves.jsonl` and one markdown table per curve to
//! `DIR/curves.md` (bench/plot_curves.py draws the PNGs from the JSON lines).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::suite::{Fmt, first_line, fmt, machine, measure, median, passthrough};
use crate::sys::{Binaries, System, loadavg, raise_nofile};

/// The rtm2 system of every curve: the standalone server, the deployment comparable to
/// nats-server.
const RTM2: System = System::Rtm2Standalone;

/// The curves, in run order.
pub const NAMES: [&str; 7] = ["channels", "subscribers", "connections", "payload", "latency", "tls", "durable"];

#[derive(Clone, Debug, clap::Args)]
pub struct CurvesArgs {
    /// Directory of curves.jsonl and curves.md (default docs/bench/curves; with --quick
    /// target/bench/curves-quick, so a smoke run never overwrites the committed results).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Only these curves (comma-separated): channels, subscribers, connections, payload,
    /// latency, tls, durable.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Fewer and smaller points: a smoke test (under 3 minutes).
    #[arg(long)]
    pub quick: bool,
    /// Measurements of each point and system (a cell is their median; 2 for the median of 2).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// No measurement starts after this many seconds (default 840; 170 with --quick): the
    /// points left are empty cells, so the run stays within its time bound.
    #[arg(long)]
    pub budget: Option<u64>,
    /// The command line to print under the tables (scripts/bench passes its own).
    #[arg(long)]
    pub command_line: Option<String>,
}

/// Which way is better: the ratio is rtm2 / peer for `Higher`, peer / rtm2 for `Lower`, so
/// above 1 always means rtm2 is better.
#[derive(Clone, Copy, PartialEq)]
enum Better {
    Higher,
    Lower,
}

struct Metric {
    label: &'static str,
    get: fn(&Value) -> Option<f64>,
    fmt: Fmt,
    better: Better,
}

struct Point {
    /// The x value (as recorded in the JSON lines).
    x: u64,
    /// A second coordinate shown in its own column (`tls`: plain / TLS), or "".
    variant: &'static str,
    /// The measurement's command line without `--system`.
    args: Vec<String>,
    timeout: u64,
    /// Expected seconds for one measurement of every system of the group.
    est_s: f64,
}

struct Group {
    /// "" or the group's name within its curve (`connections`: idle, active).
    name: &'static str,
    title: String,
    x_label: &'static str,
    systems: Vec<System>,
    points: Vec<Point>,
    metrics: Vec<Metric>,
    /// The x value is a number of connections this process and the server both hold.
    needs_fds: bool,
    /// The header of the variant column (points with a variant only).
    variant_label: &'static str,
}

struct Curve {
    name: &'static str,
    what: &'static str,
    groups: Vec<Group>,
}

fn num(v: &Value, pointer: &str) -> Option<f64> {
    v.pointer(pointer).and_then(Value::as_f64)
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn args(v: &[&str], tail: &[(&str, u64)]) -> Vec<String> {
    let mut a = s(v);
    for (k, n) in tail {
        a.push(k.to_string());
        a.push(n.to_string());
    }
    a
}

fn delivered() -> Metric {
    Metric { label: "delivered msg/s", get: |v| num(v, "/delivered_per_s"), fmt: Fmt::Rate, better: Better::Higher }
}

fn server_cpu() -> Metric {
    Metric {
        label: "server CPU µs/delivery",
        get: |v| num(v, "/server_cpu_us_per_delivery"),
        fmt: Fmt::CpuMicros,
        better: Better::Lower,
    }
}

fn curves(quick: bool) -> Vec<Curve> {
    use System::*;
    let q = |full: u64, quick_n: u64| if quick { quick_n } else { full };
    let peers = vec![RTM2, Nats];
    let with_relay = vec![RTM2, Nats, Relay];

    // channels: one subscriber of N message channels, the messages spread over them.
    let channels = Curve {
        name: "channels",
        what: "N message channels (NATS: subjects), one subscription each, spread over the subscriber \
               connections (min(N, 100), at least N / 50: rtm2's 50 channels per client); 1 publisher \
               publishes round-robin over them, each message delivered once (`channels --channels N`): \
               throughput, server CPU per delivery, and how long subscribing to the N channels took.",
        groups: vec![Group {
            name: "",
            title: "channels".into(),
            x_label: "channels",
            systems: peers.clone(),
            points: (if quick { vec![1, 10_000] } else { vec![1, 100, 10_000, 100_000] })
                .into_iter()
                .map(|n: u64| Point {
                    x: n,
                    variant: "",
                    args: args(&["channels"], &[("--channels", n), ("--messages", (q(500_000, 100_000)).max(5 * n))]),
                    timeout: q(90, 45),
                    est_s: 2.0 + n as f64 / 9_000.0,
                })
                .collect(),
            metrics: vec![
                delivered(),
                server_cpu(),
                Metric {
                    label: "subscribe ms",
                    get: |v| num(v, "/subscribe_s").map(|s| s * 1e3),
                    fmt: Fmt::Micros,
                    better: Better::Lower,
                },
            ],
            needs_fds: false,
            variant_label: "",
        }],
    };

    // subscribers: 1 → N on one channel, each subscriber its own connection.
    let sub_points: Vec<(u64, u64, f64)> = if quick {
        vec![(1, 300_000, 1.5), (100, 5_000, 1.5), (1_000, 500, 2.5)]
    } else {
        // NATS delivers 0.1–0.5 M msg/s to 5,000 subscribers here (loaded–quiet): 3 M deliveries there.
        vec![(1, 4_000_000, 6.0), (10, 500_000, 3.5), (100, 50_000, 4.5), (1_000, 5_000, 6.0), (5_000, 600, 10.0)]
    };
    let subscribers = Curve {
        name: "subscribers",
        what: "1 publisher → N subscribers of one message channel, each subscriber on its own connection \
               (`fanout --subscribers N`), loss-free (the publisher at most 32,768 messages ahead of the \
               slowest subscriber); 5 M deliveries a point (4 M at 1, 3 M at 5,000; 0.3–0.5 M with --quick).",
        groups: vec![Group {
            name: "",
            title: "subscribers per channel".into(),
            x_label: "subscribers",
            systems: with_relay.clone(),
            points: sub_points
                .into_iter()
                .map(|(n, m, est)| Point {
                    x: n,
                    variant: "",
                    args: args(&["fanout", "--idle-timeout", "5"], &[("--subscribers", n), ("--messages", m)]),
                    timeout: 60,
                    est_s: est,
                })
                .collect(),
            metrics: vec![delivered(), server_cpu()],
            needs_fds: false,
            variant_label: "",
        }],
    };

    // connections: idle memory and logins; then one point with every connection active.
    let idle_points: Vec<u64> = if quick { vec![1_000, 5_000] } else { vec![1_000, 10_000, 15_000, 30_000] };
    let (active_conns, active_secs) = (q(1_000, 200), q(10, 3));
    let connections = Curve {
        name: "connections",
        what: "N idle connections (`idle --connections N`: rtm2 clients logged in, NATS clients connected \
               and flushed): the server's RSS per connection and the rate of connects (+ logins); then \
               N connections each publishing 10 msg/s (`active`).",
        groups: vec![
            Group {
                name: "idle",
                title: "idle connections".into(),
                x_label: "idle connections",
                systems: peers.clone(),
                points: idle_points
                    .into_iter()
                    .map(|n| Point {
                        x: n,
                        variant: "",
                        args: args(&["idle"], &[("--connections", n)]),
                        timeout: 150,
                        est_s: 4.5 + n as f64 * (1.0 / 12_000.0 + 1.0 / 5_000.0),
                    })
                    .collect(),
                metrics: vec![
                    Metric {
                        label: "server RSS KB/connection",
                        get: |v| num(v, "/rss_per_conn_kb"),
                        fmt: Fmt::Kb,
                        better: Better::Lower,
                    },
                    Metric {
                        label: "logins/s",
                        get: |v| num(v, "/login_per_s").or_else(|| num(v, "/connects_per_s")),
                        fmt: Fmt::Rate,
                        better: Better::Higher,
                    },
                ],
                needs_fds: true,
                variant_label: "",
            },
            Group {
                name: "active",
                title: format!("{active_conns} active connections, 10 msg/s each"),
                x_label: "active connections",
                systems: peers.clone(),
                points: vec![Point {
                    x: active_conns,
                    variant: "",
                    args: args(
                        &["active"],
                        &[("--connections", active_conns), ("--rate", 10), ("--seconds", active_secs)],
                    ),
                    timeout: active_secs + 60,
                    est_s: 2.0 * (active_secs as f64 + 1.0),
                }],
                metrics: vec![
                    delivered(),
                    server_cpu(),
                    Metric {
                        label: "server RSS MB (at the end)",
                        get: |v| num(v, "/rss_end").map(|b| b / 1048576.0),
                        fmt: Fmt::Mb,
                        better: Better::Lower,
                    },
                    Metric {
                        label: "latency p50 µs",
                        get: |v| num(v, "/latency_us/p50").or_else(|| num(v, "/co_us/p50")),
                        fmt: Fmt::Micros,
                        better: Better::Lower,
                    },
                    Metric {
                        label: "latency p99 µs",
                        get: |v| num(v, "/latency_us/p99").or_else(|| num(v, "/co_us/p99")),
                        fmt: Fmt::Micros,
                        better: Better::Lower,
                    },
                ],
                needs_fds: true,
                variant_label: "",
            },
        ],
    };

    // payload: 1 → 10, the bytes of a point bounded (and the window, in bytes).
    let payloads: Vec<u64> = if quick { vec![16, 1024, 32_768] } else { vec![16, 128, 1024, 8192, 32_768] };
    let payload = Curve {
        name: "payload",
        what: "1 publisher → 10 subscribers of one message channel (`fanout --subscribers 10 --payload P`): \
               messages and bytes delivered per second. The count shrinks as the payload grows (at most \
               about 2 GB delivered a point), and so does the window: the publisher at most 4 MiB ahead of \
               the slowest subscriber, as with the default 32,768 messages of 128 bytes.",
        groups: vec![Group {
            name: "",
            title: "payload bytes, 1 → 10".into(),
            x_label: "payload bytes",
            systems: with_relay.clone(),
            points: payloads
                .into_iter()
                .map(|p| {
                    let m = (q(2_000_000_000, 300_000_000) / (10 * p)).clamp(q(5_000, 2_000), q(500_000, 60_000));
                    // The bytes in flight of the default window at 128 bytes (32,768 messages: 4 MiB);
                    // rtm2 stalls a subscriber 16 MiB behind (1 KiB × 16,384: every later message lost).
                    let window = (4 * 1024 * 1024 / p).clamp(32, 32_768);
                    Point {
                        x: p,
                        variant: "",
                        args: args(
                            &["fanout", "--idle-timeout", "5", "--subscribers", "10"],
                            &[("--payload", p), ("--messages", m), ("--window", window)],
                        ),
                        timeout: 60,
                        est_s: q(3, 2) as f64,
                    }
                })
                .collect(),
            metrics: vec![
                delivered(),
                Metric {
                    label: "delivered MB/s",
                    get: |v| Some(num(v, "/delivered_per_s")? * num(v, "/payload")? / 1e6),
                    fmt: Fmt::Rate,
                    better: Better::Higher,
                },
                server_cpu(),
            ],
            needs_fds: false,
            variant_label: "",
        }],
    };

    // latency: open loop, 1 → 1, about 3 s of samples at each rate (1 s with --quick).
    let rates: Vec<u64> =
        if quick { vec![1_000, 10_000, 100_000] } else { vec![1_000, 10_000, 100_000, 300_000, 1_000_000] };
    let secs = q(3, 1);
    let latency = Curve {
        name: "latency",
        what: "One-way latency 1 → 1 at an offered rate, open loop (`latency --rate R`), corrected for \
               coordinated omission; about 3 s of samples at each rate after a warm-up of 0.5 s. The \
               achieved rate shows where a system (or the pacing client) stops keeping up.",
        groups: vec![Group {
            name: "",
            title: "offered rate, 1 → 1".into(),
            x_label: "offered msg/s",
            systems: peers.clone(),
            points: rates
                .into_iter()
                .map(|r| Point {
                    x: r,
                    variant: "",
                    args: args(
                        &["latency"],
                        &[("--rate", r), ("--samples", r * secs), ("--warmup", (r / 2).clamp(500, 50_000))],
                    ),
                    timeout: secs + 40,
                    est_s: 2.0 * (secs as f64 + 0.7),
                })
                .collect(),
            metrics: vec![
                Metric {
                    label: "one-way p50 µs",
                    get: |v| num(v, "/co_us/p50"),
                    fmt: Fmt::Micros,
                    better: Better::Lower,
                },
                Metric {
                    label: "one-way p99 µs",
                    get: |v| num(v, "/co_us/p99"),
                    fmt: Fmt::Micros,
                    better: Better::Lower,
                },
                Metric {
                    label: "achieved msg/s",
                    get: |v| num(v, "/achieved_rate"),
                    fmt: Fmt::Rate,
                    better: Better::Higher,
                },
            ],
            needs_fds: false,
            variant_label: "",
        }],
    };

    // tls: fan-out 1 → 1 and 1 → 10 with and without TLS.
    let mut tls_points = Vec::new();
    for (n, m) in [(1, q(3_000_000, 200_000)), (10, q(500_000, 50_000))] {
        for variant in ["plain", "TLS"] {
            let mut a = args(&["fanout", "--idle-timeout", "5"], &[("--subscribers", n), ("--messages", m)]);
            if variant == "TLS" {
                a.push("--tls".into());
            }
            tls_points.push(Point { x: n, variant, args: a, timeout: 60, est_s: q(5, 2) as f64 });
        }
    }
    let tls = Curve {
        name: "tls",
        what: "The fan-out rows 1 → 1 and 1 → 10 with every connection over TLS (`fanout --tls`) beside \
               the same rows in plain TCP.",
        groups: vec![Group {
            name: "",
            title: "TLS".into(),
            x_label: "subscribers",
            systems: peers.clone(),
            points: tls_points,
            metrics: vec![delivered(), server_cpu()],
            needs_fds: false,
            variant_label: "connections",
        }],
    };

    // durable: W writers, each waiting for its write to be on disk.
    let writers: Vec<u64> = if quick { vec![1, 10] } else { vec![1, 10, 100] };
    let dsecs = q(5, 2);
    let durable = Curve {
        name: "durable",
        what: "W concurrent writers, each on its own connection, one write at a time, each on disk (fsync) \
               before it is acknowledged (`durable --writers W`): rtm2 channel metadata (`rtm2 serve \
               --data-dir`), a NATS JetStream key-value bucket (`sync_interval: always`), Redis `SET` with \
               `appendfsync always`. Writes per second and the p99 latency of a write.",
        groups: vec![Group {
            name: "",
            title: "durable writers".into(),
            x_label: "writers",
            systems: vec![RTM2, Nats, Redis],
            points: writers
                .into_iter()
                .map(|w| Point {
                    x: w,
                    variant: "",
                    args: args(&["durable"], &[("--writers", w), ("--seconds", dsecs)]),
                    timeout: dsecs + 45,
                    est_s: 3.0 * (dsecs as f64 + 0.6),
                })
                .collect(),
            metrics: vec![
                Metric { label: "writes/s", get: |v| num(v, "/writes_per_s"), fmt: Fmt::Rate, better: Better::Higher },
                Metric {
                    label: "write p99 µs",
                    get: |v| num(v, "/latency_us/p99"),
                    fmt: Fmt::Micros,
                    better: Better::Lower,
                },
            ],
            needs_fds: false,
            variant_label: "",
        }],
    };

    vec![channels, subscribers, connections, payload, latency, tls, durable]
}

fn x_label(x: u64) -> String {
    match x {
        x if x >= 1_000_000 && x % 1_000_000 == 0 => format!("{}M", x / 1_000_000),
        x if x >= 1_000 && x % 1_000 == 0 => format!("{}k", x / 1_000),
        x => x.to_string(),
    }
}

fn col(sys: System) -> &'static str {
    match sys {
        System::Rtm2Standalone => "rtm2",
        System::Rtm2 => "rtm2 (in-process)",
        System::Rtm2Cluster => "rtm2 cluster",
        System::Nats => "NATS",
        System::Redis => "Redis",
        System::Relay => "relay",
    }
}

fn lost(v: &Value) -> u64 {
    v.get("lost").and_then(Value::as_u64).unwrap_or(0)
}

/// The measurements of one point and system.
struct Cell<'a>(&'a [Value]);

impl Cell<'_> {
    /// The median over the runs without an error; and whether one of them lost messages.
    fn value(&self, m: &Metric) -> (Option<f64>, u64) {
        let good: Vec<&Value> = self.0.iter().filter(|v| v.get("error").is_none()).collect();
        (median(&mut good.iter().filter_map(|v| (m.get)(v)).collect::<Vec<_>>()), good.iter().map(|v| lost(v)).sum())
    }

    fn show(&self, m: &Metric) -> String {
        match self.value(m) {
            (None, _) => "–".into(),
            (Some(x), 0) => fmt(m.fmt, x),
            (Some(x), l) => format!("{} ⚠ lost {l}", fmt(m.fmt, x)),
        }
    }
}

fn ratio(rtm2: &Cell, peer: &Cell, m: &Metric) -> String {
    match (rtm2.value(m), peer.value(m)) {
        ((Some(a), 0), (Some(b), 0)) if a > 0.0 && b > 0.0 => {
            format!("{:.2}", if m.better == Better::Higher { a / b } else { b / a })
        }
        _ => "–".into(),
    }
}

/// One curve's results: `[group][point][system] = runs`.
type Results = Vec<Vec<Vec<Vec<Value>>>>;

fn table(curve: &Curve, res: &Results, out: &mut String) {
    let mut notes: Vec<String> = Vec::new();
    for (gi, g) in curve.groups.iter().enumerate() {
        let rtm2_i = g.systems.iter().position(|s| *s == RTM2);
        let peers: Vec<usize> =
            (0..g.systems.len()).filter(|i| !g.systems[*i].is_rtm2() && g.systems[*i] != System::Relay).collect();
        if !g.name.is_empty() {
            let _ = writeln!(out, "**{}**\n", g.title);
        }
        let has_variant = g.points.iter().any(|p| !p.variant.is_empty());
        let mut header = vec![g.x_label.to_string()];
        if has_variant {
            header.push(g.variant_label.to_string());
        }
        for m in &g.metrics {
            header.extend(g.systems.iter().map(|s| format!("{} · {}", m.label, col(*s))));
            if rtm2_i.is_some() {
                for p in &peers {
                    let peer = col(g.systems[*p]);
                    header.push(match m.better {
                        Better::Higher => format!("rtm2 / {peer} (> 1: rtm2 better)"),
                        Better::Lower => format!("{peer} / rtm2 (> 1: rtm2 better)"),
                    });
                }
            }
        }
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for (pi, p) in g.points.iter().enumerate() {
            let mut cells = vec![x_label(p.x)];
            if has_variant {
                cells.push(p.variant.to_string());
            }
            for m in &g.metrics {
                cells.extend((0..g.systems.len()).map(|si| Cell(&res[gi][pi][si]).show(m)));
                if let Some(r) = rtm2_i {
                    cells.extend(peers.iter().map(|&pe| ratio(&Cell(&res[gi][pi][r]), &Cell(&res[gi][pi][pe]), m)));
                }
            }
            let _ = writeln!(out, "| {} |", cells.join(" | "));
            for (si, sys) in g.systems.iter().enumerate() {
                for v in &res[gi][pi][si] {
                    if let Some(e) = v.get("error") {
                        let e = e.as_str().map_or_else(|| e.to_string(), str::to_string);
                        let e: String = e.chars().take(200).collect();
                        let which = format!(
                            "{} {}{}",
                            col(*sys),
                            x_label(p.x),
                            if p.variant.is_empty() { String::new() } else { format!(" {}", p.variant) }
                        );
                        let note = format!("{which}: {}", e.replace('\n', " ").replace('|', "/"));
                        // Once, not once per run.
                        if !notes.contains(&note) {
                            notes.push(note);
                        }
                    }
                }
            }
        }
        out.push('\n');
    }
    if !notes.is_empty() {
        out.push_str("Failed or not run (empty cells):\n\n");
        for n in notes {
            let _ = writeln!(out, "* {n}");
        }
        out.push('\n');
    }
}

fn rtm2_path(bins: &Binaries) -> String {
    bins.rtm2_bin.as_ref().map_or_else(
        || {
            std::env::current_exe()
                .ok()
                .and_then(|e| e.parent().map(|d| d.join("rtm2").display().to_string()))
                .unwrap_or_else(|| "rtm2".into())
        },
        |p| p.display().to_string(),
    )
}

struct Timing {
    est_s: f64,
    took_s: f64,
}

#[allow(clippy::too_many_arguments)]
fn write_md(
    path: &Path,
    curves: &[Curve],
    results: &[Results],
    timing: &[Timing],
    a: &CurvesArgs,
    bins: &Binaries,
    footer: &str,
    done: bool,
) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Scaling curves: rtm2 and NATS\n\n\
         {}: rtm2 is `rtm2 serve` (`--system rtm2-standalone`), NATS is nats-server; the relay (a plain TCP relay \
         with the same sockets and batching and no protocol: the machine's limit) on the fan-out curves. \
         One measurement per point and system{}, each in a fresh process with a fresh server, the systems \
         alternating point by point; loopback; 128-byte payloads unless the curve varies them. \
         Ratios are oriented so that **above 1 means rtm2 is better**: rtm2 / NATS for rates, NATS / rtm2 \
         for CPU, memory, time and latency. A cell marked ⚠ lost is a run that lost messages (left out of \
         the ratio); – is a measurement that failed (listed under its table). Raw JSON lines: `curves.jsonl`; \
         plots: `<curve>.png` (bench/plot_curves.py).\n",
        if done { "One run of `rtm2-bench curves`" } else { "PARTIAL (the run is still going or was stopped)" },
        if a.runs > 1 { format!(" (the median of {})", a.runs) } else { String::new() },
    );
    for ((c, res), t) in curves.iter().zip(results).zip(timing) {
        let _ = writeln!(out, "## {}\n\n{}\n", c.name, c.what);
        table(c, res, &mut out);
        let _ = writeln!(out, "![{0}]({0}.png)\n\nEstimated {1:.0} s, took {2:.0} s.\n", c.name, t.est_s, t.took_s);
    }
    out.push_str(footer);
    let _ = writeln!(out, "Machine: {}", machine());
    let _ = writeln!(
        out,
        "Versions: {}; {}; {}",
        first_line(&bins.nats_server.display().to_string(), &["--version"]),
        first_line(&bins.redis_server.display().to_string(), &["--version"]),
        first_line(&rtm2_path(bins), &["--version"]),
    );
    if let Some(c) = &a.command_line {
        let _ = writeln!(out, "Command: `{c}`");
    }
    if let Err(e) = std::fs::write(path, out) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}

pub fn run(a: &CurvesArgs, bins: &Binaries, client_threads: usize) -> ExitCode {
    for n in &a.only {
        if !NAMES.contains(&n.as_str()) {
            eprintln!("unknown curve {n:?} ({})", NAMES.join(", "));
            return ExitCode::FAILURE;
        }
    }
    let runs = a.runs.max(1);
    let out_dir =
        a.out.clone().unwrap_or_else(|| if a.quick { "target/bench/curves-quick" } else { "docs/bench/curves" }.into());
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("cannot create {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    let (jsonl_path, md_path) = (out_dir.join("curves.jsonl"), out_dir.join("curves.md"));
    let mut jsonl = match std::fs::File::create(&jsonl_path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot create {}: {e}", jsonl_path.display());
            return ExitCode::FAILURE;
        }
    };
    let curves: Vec<Curve> =
        curves(a.quick).into_iter().filter(|c| a.only.is_empty() || a.only.iter().any(|o| o == c.name)).collect();
    let budget = Duration::from_secs(a.budget.unwrap_or(if a.quick { 170 } else { 840 }));
    let nofile = raise_nofile();

    let mut timing: Vec<Timing> = curves
        .iter()
        .map(|c| Timing {
            est_s: c.groups.iter().flat_map(|g| &g.points).map(|p| p.est_s).sum::<f64>() * runs as f64,
            took_s: 0.0,
        })
        .collect();
    let est_total: f64 = timing.iter().map(|t| t.est_s).sum();
    let total: usize =
        curves.iter().flat_map(|c| &c.groups).map(|g| g.points.len() * g.systems.len()).sum::<usize>() * runs;
    eprintln!(
        "curves: {total} measurements, estimated {:.0} s ({}); budget {} s; results in {}",
        est_total,
        curves.iter().zip(&timing).map(|(c, t)| format!("{} {:.0} s", c.name, t.est_s)).collect::<Vec<_>>().join(", "),
        budget.as_secs(),
        out_dir.display()
    );

    let pass = passthrough(bins, client_threads);
    let started = Instant::now();
    let load_before = loadavg();
    let mut foreign = Vec::new();
    let mut results: Vec<Results> = curves
        .iter()
        .map(|c| c.groups.iter().map(|g| vec![vec![Vec::new(); g.systems.len()]; g.points.len()]).collect())
        .collect();
    let (mut k, mut failed) = (0, 0);
    for (ci, c) in curves.iter().enumerate() {
        let t_curve = Instant::now();
        for (gi, g) in c.groups.iter().enumerate() {
            for (pi, p) in g.points.iter().enumerate() {
                for run in 0..runs {
                    for (si, sys) in g.systems.iter().enumerate() {
                        k += 1;
                        let left = budget.saturating_sub(started.elapsed());
                        let t = Instant::now();
                        let mut v = if left < Duration::from_secs(5) {
                            serde_json::json!({ "error": format!("not run: the time budget ({} s) was used up", budget.as_secs()) })
                        } else if g.needs_fds && p.x + 1024 > nofile {
                            serde_json::json!({ "error": format!("not run: needs about {} open files, the limit is {nofile}", p.x + 1024) })
                        } else {
                            let cmd: Vec<String> =
                                [pass.clone(), p.args.clone(), vec!["--system".into(), sys.name().into()]].concat();
                            measure(&cmd, Duration::from_secs(p.timeout).min(left))
                        };
                        if let Some(o) = v.as_object_mut() {
                            o.insert("curve".into(), c.name.into());
                            if !g.name.is_empty() {
                                o.insert("group".into(), g.name.into());
                            }
                            o.insert("x".into(), p.x.into());
                            if !p.variant.is_empty() {
                                o.insert("variant".into(), p.variant.into());
                            }
                            o.insert("run".into(), run.into());
                            o.entry("system").or_insert(sys.name().into());
                            o.insert("command".into(), p.args.join(" ").into());
                        }
                        let summary = if let Some(e) = v.get("error") {
                            failed += 1;
                            let e = e.as_str().map_or_else(|| e.to_string(), str::to_string);
                            format!("ERROR {}", e.chars().take(160).collect::<String>())
                        } else {
                            let m = &g.metrics[0];
                            (m.get)(&v).map_or_else(String::new, |x| format!("{} {}", m.label, fmt(m.fmt, x)))
                                + &match lost(&v) {
                                    0 => String::new(),
                                    l => format!(" LOST {l}"),
                                }
                        };
                        eprintln!(
                            "[{k}/{total}] {}{} · {}{} · {}: {summary} ({:.1} s)",
                            c.name,
                            if g.name.is_empty() { String::new() } else { format!(" {}", g.name) },
                            x_label(p.x),
                            if p.variant.is_empty() { String::new() } else { format!(" {}", p.variant) },
                            sys.name(),
                            t.elapsed().as_secs_f64()
                        );
                        if let Some(f) = v.get("foreign_cores").and_then(Value::as_f64) {
                            foreign.push(f);
                        }
                        let _ = writeln!(jsonl, "{v}");
                        let _ = jsonl.flush();
                        results[ci][gi][pi][si].push(v);
                    }
                }
            }
        }
        timing[ci].took_s = t_curve.elapsed().as_secs_f64();
        let done = &curves[..=ci];
        write_md(&md_path, done, &results[..=ci], &timing[..=ci], a, bins, "", false);
    }
    let took = started.elapsed().as_secs_f64();
    let max_foreign = foreign.iter().copied().fold(0.0, f64::max);
    let median_foreign = median(&mut foreign).unwrap_or(0.0);
    let mut footer = format!(
        "Load average (1 min): {load_before:.2} before, {:.2} after; CPU used by other processes during a run: \
         median {median_foreign:.2}, max {max_foreign:.2} cores. Estimated {est_total:.0} s, took {took:.0} s.\n",
        loadavg()
    );
    if median_foreign > 0.25 {
        footer.push_str(
            "PROVISIONAL: other processes used a sizeable share of the CPUs while this ran; re-run on a quiet machine.\n",
        );
    }
    write_md(&md_path, &curves, &results, &timing, a, bins, &footer, true);
    eprintln!(
        "curves: took {took:.0} s (estimated {est_total:.0} s): {}",
        curves
            .iter()
            .zip(&timing)
            .map(|(c, t)| format!("{} {:.0} s (est. {:.0})", c.name, t.took_s, t.est_s))
            .collect::<Vec<_>>()
            .join(", ")
    );
    eprintln!("curves: {} and {}", md_path.display(), jsonl_path.display());
    if failed > 0 {
        eprintln!("curves: {failed} of {total} measurement(s) failed or were not run (empty cells; see curves.md)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
