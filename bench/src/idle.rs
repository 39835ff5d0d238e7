//! Many idle connections: the server's resident memory before and after N clients connected
//! (and, for rtm2, logged in), per connection.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::clients::{self, BoxError};
use crate::sys::{System, Target, loadavg, proc_rss};

#[derive(Clone, Debug, clap::Args)]
pub struct IdleArgs {
    /// Idle clients, each on its own connection.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Milliseconds to wait after the last connection before reading the RSS.
    #[arg(long, default_value_t = 2000)]
    pub settle_ms: u64,
}

type Keep = Box<dyn std::any::Any + Send>;

async fn connect_one(target: &Target, i: usize) -> Result<Keep, BoxError> {
    Ok(match target.system {
        System::Rtm2 | System::Rtm2Standalone | System::Rtm2Cluster => {
            Box::new(clients::rtm2_login(target.addr_of(i), &format!("idle{i}")).await?)
        }
        System::Nats => {
            let c = async_nats::connect(target.addr.as_str()).await?;
            c.flush().await?;
            Box::new(c)
        }
        System::Redis => {
            let client = redis::Client::open(format!("redis://{}/", target.addr))?;
            let mut con = client.get_multiplexed_async_connection().await?;
            let _: String = redis::cmd("PING").query_async(&mut con).await?;
            Box::new(con)
        }
        System::Relay => return Err("the relay has no idle workload (it has no process of its own)".into()),
    })
}

pub fn run(target: &Target, a: &IdleArgs, rt: &tokio::runtime::Runtime) -> Result<(Value, Vec<Keep>), BoxError> {
    let Some(pid) = target.pid() else {
        return Err("the idle workload needs a server process of its own (use --system rtm2-standalone)".into());
    };
    std::thread::sleep(Duration::from_millis(300));
    let rss_before = proc_rss(pid);
    let t0 = Instant::now();
    let results: Vec<_> = rt.block_on(
        futures::stream::iter(0..a.connections)
            .map(|i| connect_one(target, i))
            .buffer_unordered(a.concurrency.max(1))
            .collect(),
    );
    let connect_s = t0.elapsed().as_secs_f64();
    let mut keep = Vec::with_capacity(results.len());
    let mut failed = 0usize;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(k) => keep.push(k),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    std::thread::sleep(Duration::from_millis(a.settle_ms));
    let rss_after = proc_rss(pid);
    let n = keep.len().max(1) as f64;
    // A connection that failed, or a server whose memory cannot be read (gone, or this process
    // out of descriptors), makes the measurement a failure rather than a number.
    let error = if failed > 0 {
        Some(format!("{failed} of {} connections failed: {}", a.connections, first_error.as_deref().unwrap_or("?")))
    } else if rss_after == 0 || rss_before == 0 {
        Some("the server's memory could not be read (/proc/PID/status)".to_string())
    } else {
        None
    };
    let mut v = json!({
            "workload": "idle",
            "system": target.system.name(),
            "connections": a.connections,
            "connected": keep.len(),
            "failed": failed,
            "first_error": first_error,
            "rss_before": rss_before,
            "rss_after": rss_after,
            "rss_per_conn_kb": (rss_after.saturating_sub(rss_before)) as f64 / n / 1024.0,
            "connect_s": connect_s,
            "connects_per_s": keep.len() as f64 / connect_s,
            // The whole setup phase (connect, and for rtm2 log in, `concurrency` at a time).
            "setup_s": connect_s,
            "login_per_s": keep.len() as f64 / connect_s,
            "load1": loadavg(),
    });
    if let Some(e) = error {
        v["error"] = e.into();
    }
    Ok((v, keep))
}
