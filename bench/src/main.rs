//! `rtm2-bench`: rtm2 side by side with NATS and Redis pub/sub on loopback.
//!
//! One measurement (prints one JSON line):
//!
//! ```text
//! rtm2-bench fanout  --system rtm2|rtm2-standalone|nats|redis --subscribers 10 --messages 200000
//! rtm2-bench latency --system nats --rate 10000 --samples 50000
//! rtm2-bench idle    --system rtm2-standalone --connections 10000
//! rtm2-bench channels --system nats --channels 10000 --messages 1000000   # [--connections C] [--tls]
//! rtm2-bench active  --system rtm2-standalone --connections 1000 --rate 10 --seconds 10
//! rtm2-bench lang    --system nats --lang py --messages 200000   # into Python / Node code
//! rtm2-bench durable --system redis --writers 10 --seconds 5   # fsynced key-value writes
//! ```
//!
//! The whole comparison (interleaved repetitions, one markdown table): `rtm2-bench suite
//! [--quick] [--runs 3]`, which `scripts/bench` runs after installing and building everything.

mod active;
mod channels;
mod clients;
mod curves;
mod durable;
mod fanout;
mod idle;
mod lang;
mod latency;
mod relay;
mod suite;
mod sys;
mod tls;

use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Instant;

use clap::{Parser, Subcommand};
use serde_json::json;

use sys::{Binaries, System, Target};

static BASE: OnceLock<Instant> = OnceLock::new();

fn base() -> Instant {
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds since the process's base instant (one clock for sender and receiver).
pub fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}

/// `t` as nanoseconds since the base instant.
pub fn since_base(t: Instant) -> u64 {
    t.saturating_duration_since(base()).as_nanos() as u64
}

#[derive(Parser)]
#[command(name = "rtm2-bench", about = "rtm2 side by side with NATS and Redis pub/sub (loopback, 128-byte payloads)")]
struct Cli {
    #[command(flatten)]
    bins: Binaries,
    /// Worker threads of the benchmark clients' tokio runtime (the rtm2 SDK has its own).
    #[arg(long, default_value_t = 2, global = true)]
    client_threads: usize,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fan-out throughput, loss-free (window): 1 publisher → N subscribers.
    Fanout {
        #[arg(long, value_enum)]
        system: System,
        /// Over TLS (rtm2, rtm2-standalone, nats): a certificate of the run's own CA (tls.rs).
        #[arg(long)]
        tls: bool,
        #[command(flatten)]
        args: fanout::FanoutArgs,
    },
    /// One-way latency percentiles at a fixed open-loop rate (1 → 1).
    Latency {
        #[arg(long, value_enum)]
        system: System,
        /// Over TLS (rtm2, rtm2-standalone, nats): a certificate of the run's own CA (tls.rs).
        #[arg(long)]
        tls: bool,
        #[command(flatten)]
        args: latency::LatencyArgs,
    },
    /// Server memory per idle connection.
    Idle {
        #[arg(long, value_enum)]
        system: System,
        #[command(flatten)]
        args: idle::IdleArgs,
    },
    /// Many channels: N channels / subjects, one subscriber each over C connections; 1 publisher
    /// round-robin over them (each delivery to one subscriber), loss-free (window).
    Channels {
        #[arg(long, value_enum)]
        system: System,
        /// Over TLS (rtm2, rtm2-standalone, nats): a certificate of the run's own CA (tls.rs).
        #[arg(long)]
        tls: bool,
        #[command(flatten)]
        args: channels::ChannelsArgs,
    },
    /// Many active connections: each publishes `rate` msg/s (open loop) to its own channel and
    /// receives it back; delivered vs offered, loss, server RSS and CPU, latency.
    Active {
        #[arg(long, value_enum)]
        system: System,
        #[command(flatten)]
        args: active::ActiveArgs,
    },
    /// Delivery into Python or Node.js user code (rtm2's binding vs the NATS client), 1 → 1.
    Lang {
        #[arg(long, value_enum)]
        system: System,
        #[command(flatten)]
        args: lang::LangArgs,
    },
    /// Every workload against every system, interleaved and repeated; prints one markdown table.
    Suite(suite::SuiteArgs),
    /// Scaling curves: rtm2 and NATS point by point as the work grows; markdown tables + JSON lines.
    Curves(curves::CurvesArgs),
    /// Acknowledged durable key-value writes (on disk before the ack) by concurrent writers.
    Durable {
        #[arg(long, value_enum)]
        system: System,
        #[command(flatten)]
        args: durable::DurableArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    base();
    sys::raise_nofile();
    let (system, workload) = match &cli.cmd {
        Cmd::Suite(a) => return suite::run(a, &cli.bins, cli.client_threads),
        Cmd::Curves(a) => return curves::run(a, &cli.bins, cli.client_threads),
        Cmd::Durable { system, args } => return durable::main(*system, args, &cli.bins, cli.client_threads),
        Cmd::Fanout { system, .. } => (*system, "fanout"),
        Cmd::Latency { system, .. } => (*system, "latency"),
        Cmd::Idle { system, .. } => (*system, "idle"),
        Cmd::Lang { system, .. } => (*system, "lang"),
        Cmd::Channels { system, .. } => (*system, "channels"),
        Cmd::Active { system, .. } => (*system, "active"),
    };
    let fail = |e: String| -> ! {
        println!("{}", json!({ "workload": workload, "system": system.name(), "error": e }));
        std::process::exit(1)
    };
    // Started on the main thread: a child server dies with the thread that started it.
    // `--tls`: certificates made for this run, removed after the server stopped.
    let tls = matches!(
        &cli.cmd,
        Cmd::Fanout { tls: true, .. } | Cmd::Latency { tls: true, .. } | Cmd::Channels { tls: true, .. }
    );
    let certs = tls.then(tls::Certs::generate).transpose().unwrap_or_else(|e| fail(e));
    let target = match Target::start(system, &cli.bins, certs.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            drop(certs);
            fail(e)
        }
    };
    if let Some(c) = &certs {
        clients::set_tls_ca(&c.ca);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.client_threads.max(1))
        .thread_name("bench-client")
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(e.to_string()));
    let mut keep = Vec::new();
    let result = match &cli.cmd {
        Cmd::Fanout { args, .. } => fanout::run(&target, args, &rt),
        Cmd::Latency { args, .. } => latency::run(&target, args, &rt),
        Cmd::Lang { args, .. } => lang::run(&target, args, &rt),
        Cmd::Channels { args, .. } => channels::run(&target, args, &rt),
        Cmd::Active { args, .. } => active::run(&target, args, &rt),
        Cmd::Idle { args, .. } => idle::run(&target, args, &rt).map(|(v, k)| {
            keep = k;
            v
        }),
        Cmd::Suite(_) | Cmd::Curves(_) => unreachable!(),
        Cmd::Durable { .. } => unreachable!(),
    };
    let code = match result {
        Ok(v) => {
            println!("{v}");
            0
        }
        Err(e) => {
            println!("{}", json!({ "workload": workload, "system": system.name(), "error": e.to_string() }));
            1
        }
    };
    // Stop the server, then leave without tearing down thousands of clients one by one.
    drop(target);
    drop(certs);
    std::mem::forget(keep);
    std::mem::forget(rt);
    std::process::exit(code)
}
