//! `rtm2 stat`: a server's live numbers in a terminal, read from its HTTP side's `/metrics`
//! (Prometheus text; no authentication needed).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use clap::Args;

#[derive(Args)]
pub(crate) struct StatArgs {
    /// The server's HTTP address (`host:port`, as given to `rtm2 serve --http`).
    #[arg(long, env = "RTM2_HTTP", default_value = "127.0.0.1:9080")]
    http: String,
    /// Print again every this many seconds, with rates since the previous print (0 = once).
    #[arg(long, default_value_t = 0)]
    watch: u64,
    /// Stop after this many prints with --watch (0 = until interrupted).
    #[arg(long, default_value_t = 0)]
    count: u64,
}

/// A scrape: every sample by its name with labels (`name{label="v"}`), summed per bare name too.
type Samples = BTreeMap<String, f64>;

pub(crate) fn run(a: StatArgs) -> Result<(), String> {
    let mut previous: Option<(Instant, Samples)> = None;
    let mut printed = 0u64;
    loop {
        let text = get(&a.http, "/metrics")?;
        let now = Instant::now();
        let samples = parse(&text);
        print!("{}", render(&samples, previous.as_ref().map(|(t, s)| (now.duration_since(*t), s))));
        printed += 1;
        if a.watch == 0 || (a.count != 0 && printed >= a.count) {
            return Ok(());
        }
        previous = Some((now, samples));
        std::thread::sleep(Duration::from_secs(a.watch));
    }
}

/// One HTTP/1.1 GET (the body, for a 200).
fn get(addr: &str, path: &str) -> Result<String, String> {
    let target = addr.trim_start_matches("http://").trim_end_matches('/');
    let sock = target
        .to_socket_addrs()
        .map_err(|e| format!("--http {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("--http {addr}: no address"))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(5))
        .map_err(|e| format!("cannot reach {target}: {e} (is the server running with --http {target}?)"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| format!("reading from {target}: {e}"))?;
    let raw = String::from_utf8_lossy(&raw);
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(|| format!("{target} did not answer in HTTP"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!("{target}{path} answered {status}: {body}"));
    }
    Ok(body.to_string())
}

fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(v) = value.parse::<f64>() else { continue };
        let bare = series.split('{').next().unwrap_or(series).to_string();
        if bare != series {
            *out.entry(bare).or_default() += v;
        }
        out.insert(series.to_string(), v);
    }
    out
}

fn render(s: &Samples, previous: Option<(Duration, &Samples)>) -> String {
    let v = |name: &str| s.get(name).copied().unwrap_or(0.0);
    let rate = |name: &str| match previous {
        Some((dt, p)) if dt.as_secs_f64() > 0.0 => {
            format!("  {:>10.0}/s", (v(name) - p.get(name).copied().unwrap_or(0.0)).max(0.0) / dt.as_secs_f64())
        }
        _ => String::new(),
    };
    let mut out = String::new();
    let mut row = |label: &str, value: String, r: String| out.push_str(&format!("{label:<28}{value:>14}{r}\n"));
    row("ready", if v("rtm2_ready") >= 1.0 { "yes".into() } else { "NO".into() }, String::new());
    row("connections", format!("{}", v("rtm2_connections")), String::new());
    row("sessions", format!("{}", v("rtm2_sessions")), String::new());
    row("logins", format!("{}", v("rtm2_logins_total{result=\"ok\"}")), rate("rtm2_logins_total{result=\"ok\"}"));
    row("logins refused", format!("{}", v("rtm2_logins_total{result=\"refused\"}")), String::new());
    row("sessions resumed", format!("{}", v("rtm2_sessions_resumed_total")), String::new());
    row("sessions restored", format!("{}", v("rtm2_sessions_restored_total")), String::new());
    for t in ["message", "user", "stream"] {
        let p = format!("rtm2_messages_published_total{{channel_type=\"{t}\"}}");
        let d = format!("rtm2_messages_delivered_total{{channel_type=\"{t}\"}}");
        row(&format!("published ({t})"), format!("{}", v(&p)), rate(&p));
        row(&format!("delivered ({t})"), format!("{}", v(&d)), rate(&d));
    }
    row("received MiB", format!("{:.1}", v("rtm2_received_bytes_total") / 1048576.0), String::new());
    row("sent MiB", format!("{:.1}", v("rtm2_sent_bytes_total") / 1048576.0), String::new());
    row("slow consumers cut", format!("{}", v("rtm2_slow_consumer_cuts_total")), String::new());
    row("rate-limited requests", format!("{}", v("rtm2_rate_limited_total")), String::new());
    row(
        "requests",
        format!("{}", v("rtm2_request_duration_seconds_count")),
        rate("rtm2_request_duration_seconds_count"),
    );
    row("memory MiB", format!("{:.1}", v("process_resident_memory_bytes") / 1048576.0), String::new());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_with_and_without_labels_and_rates_are_per_second() {
        let a = parse("# HELP x\nrtm2_connections 3\nrtm2_messages_published_total{channel_type=\"message\"} 10\n");
        let b = parse("rtm2_connections 3\nrtm2_messages_published_total{channel_type=\"message\"} 30\n");
        assert_eq!(a["rtm2_messages_published_total"], 10.0);
        let text = render(&b, Some((Duration::from_secs(2), &a)));
        assert!(text.contains("connections") && text.contains('3'), "{text}");
        assert!(text.lines().any(|l| l.starts_with("published (message)") && l.trim_end().ends_with("10/s")), "{text}");
    }
}
