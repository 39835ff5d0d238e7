//! The systems under test, their servers (started on loopback, on free ports, stopped by pid)
//! and what the harness reads from /proc about them.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Name of the threads of the in-process rtm2 server (15 characters at most: /proc `comm`).
pub const SERVER_THREAD: &str = "rtm2-bench-srv";

/// A system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    /// rtm2 server started in the bench process (its own runtime); clients over loopback TCP.
    Rtm2,
    /// The standalone `rtm2 serve --no-rate-limits` process.
    Rtm2Standalone,
    /// nats-server, driven with async-nats.
    Nats,
    /// redis-server, driven with the `redis` crate (pub/sub).
    Redis,
    /// Three `rtm2 serve --cluster` nodes over one nats-server: the publisher on the first
    /// node, subscriber i on node (i + 1) mod 3 (so a single subscriber is on another node).
    Rtm2Cluster,
    /// The machine's limit: a plain TCP relay in the bench process (its own runtime, as the
    /// in-process rtm2 server), the same sockets and batching with no protocol (relay.rs).
    Relay,
}

impl System {
    pub const ALL: [System; 6] =
        [System::Rtm2, System::Rtm2Standalone, System::Rtm2Cluster, System::Nats, System::Redis, System::Relay];

    pub fn name(self) -> &'static str {
        match self {
            System::Rtm2 => "rtm2",
            System::Rtm2Standalone => "rtm2-standalone",
            System::Nats => "nats",
            System::Redis => "redis",
            System::Rtm2Cluster => "rtm2-cluster",
            System::Relay => "relay",
        }
    }

    pub fn parse(s: &str) -> Option<System> {
        System::ALL.into_iter().find(|x| x.name() == s)
    }

    pub fn is_rtm2(self) -> bool {
        matches!(self, System::Rtm2 | System::Rtm2Standalone | System::Rtm2Cluster)
    }
}

/// Where the server binaries are.
#[derive(Clone, Debug, clap::Args)]
pub struct Binaries {
    /// nats-server binary.
    #[arg(long, env = "RTM2_BENCH_NATS_SERVER", default_value = "nats-server", global = true)]
    pub nats_server: PathBuf,
    /// redis-server binary.
    #[arg(long, env = "RTM2_BENCH_REDIS_SERVER", default_value = "redis-server", global = true)]
    pub redis_server: PathBuf,
    /// rtm2 binary (`rtm2 serve`); default: `rtm2` next to this program, else on PATH.
    #[arg(long, env = "RTM2_BIN", global = true)]
    pub rtm2_bin: Option<PathBuf>,
    /// Worker threads of the in-process rtm2 server's runtime.
    #[arg(long, default_value_t = 2, global = true)]
    pub server_threads: usize,
}

impl Binaries {
    fn rtm2(&self) -> PathBuf {
        if let Some(p) = &self.rtm2_bin {
            return p.clone();
        }
        if let Ok(exe) = std::env::current_exe()
            && let Some(dir) = exe.parent()
            && dir.join("rtm2").is_file()
        {
            return dir.join("rtm2");
        }
        PathBuf::from("rtm2")
    }
}

enum ServerProc {
    Child(Child),
    /// nats-server first, then the nodes; NATS's storage directory (removed at the end).
    Cluster(Vec<Child>, PathBuf),
    InProcess {
        server: rtm2_server::Server,
        rt: Option<tokio::runtime::Runtime>,
    },
    /// The relay's runtime (its threads are named like the in-process server's).
    Relay(Option<tokio::runtime::Runtime>),
}

/// A running server of one system.
pub struct Target {
    pub system: System,
    /// `127.0.0.1:PORT` (of a cluster: the first node's, the publisher's)
    pub addr: String,
    /// Of a cluster: every node's address.
    pub nodes: Vec<String>,
    proc_: ServerProc,
}

/// What the harness reads about the server at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerSample {
    /// CPU time (user + system), seconds.
    pub cpu_s: f64,
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn spawn(cmd: &mut Command) -> Result<Child, String> {
    // The server dies with the bench process even if it is killed.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))
}

fn wait_listening(child: &mut Child, addr: &str, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited before listening on {addr} ({status})"));
        }
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not listen on {addr} within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The runtime of a server in the bench process (the in-process rtm2 server, the relay): its
/// threads are named `SERVER_THREAD`, so their CPU is the server's.
fn server_runtime(bins: &Binaries) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(bins.server_threads.max(1))
        .thread_name(SERVER_THREAD)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// A server start, tried up to three times (a free port may be taken before the server binds it);
/// the last error.
fn three_tries(mut start: impl FnMut() -> Result<Target, String>) -> Result<Target, String> {
    let mut last_err = String::new();
    for _ in 0..3 {
        match start() {
            Ok(t) => return Ok(t),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

impl Target {
    /// Starts the server of `system` on loopback. Must be called from the main thread (the
    /// child is killed when the thread that started it exits). With `tls` (rtm2, rtm2-standalone
    /// and nats only) the server serves TLS with its certificate and `addr` is the TLS address.
    pub fn start(system: System, bins: &Binaries, tls: Option<&crate::tls::Certs>) -> Result<Target, String> {
        three_tries(|| Self::try_start(system, bins, tls))
    }

    fn try_start(system: System, bins: &Binaries, tls: Option<&crate::tls::Certs>) -> Result<Target, String> {
        if tls.is_some() && !matches!(system, System::Rtm2 | System::Rtm2Standalone | System::Nats) {
            return Err(format!("{} has no TLS variant (rtm2, rtm2-standalone, nats)", system.name()));
        }
        match system {
            System::Rtm2 => {
                let rt = server_runtime(bins)?;
                let (server, addr) = rt.block_on(async {
                    let server = rtm2_server::Server::start(rtm2_server::ServerConfig {
                        rate_limits: rtm2_server::RateLimits::unlimited(),
                        ..Default::default()
                    });
                    let mut addr = server.listen_tcp("127.0.0.1:0").await.map_err(|e| e.to_string())?;
                    if let Some(c) = tls {
                        addr = server.listen_tls("127.0.0.1:0", &c.cert, &c.key).await.map_err(|e| e.to_string())?;
                    }
                    Ok::<_, String>((server, addr))
                })?;
                Ok(Target {
                    system,
                    addr: addr.to_string(),
                    nodes: Vec::new(),
                    proc_: ServerProc::InProcess { server, rt: Some(rt) },
                })
            }
            System::Relay => {
                let rt = server_runtime(bins)?;
                let listener =
                    rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).map_err(|e| format!("relay: {e}"))?;
                let addr = listener.local_addr().map_err(|e| e.to_string())?.to_string();
                rt.spawn(crate::relay::serve(listener));
                Ok(Target { system, addr, nodes: Vec::new(), proc_: ServerProc::Relay(Some(rt)) })
            }
            System::Rtm2Standalone => {
                let (child, addr) = match tls {
                    // The TLS listener's line ("… listening on ADDR (tls)") comes after the TCP one's.
                    Some(c) => {
                        let (cert, key) = (c.cert.to_string_lossy(), c.key.to_string_lossy());
                        let flags = ["--tls-listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key];
                        rtm2_serve(bins, &flags, " (tls)")?
                    }
                    None => rtm2_serve(bins, &[], "rtm2 server listening on ")?,
                };
                Ok(Target { system, addr, nodes: Vec::new(), proc_: ServerProc::Child(child) })
            }
            System::Rtm2Cluster => {
                let port = free_port().map_err(|e| e.to_string())?;
                let nats_addr = format!("127.0.0.1:{port}");
                // JetStream on (the nodes keep metadata and locks in its key-value buckets), its
                // files in a directory of this run.
                let store = std::env::temp_dir().join(format!("rtm2-bench-js-{}-{port}", std::process::id()));
                let mut nats = spawn(
                    Command::new(&bins.nats_server)
                        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                        .arg(&store)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null()),
                )?;
                wait_listening(&mut nats, &nats_addr, "nats-server")?;
                let mut children = vec![nats];
                let mut nodes = Vec::new();
                for i in 0..3 {
                    let url = format!("nats://{nats_addr}");
                    let id = format!("bench-{i}");
                    let flags = ["--cluster", url.as_str(), "--node-id", id.as_str()];
                    match rtm2_serve(bins, &flags, "joined the cluster: serving logins") {
                        Ok((child, addr)) => {
                            children.push(child);
                            nodes.push(addr);
                        }
                        Err(e) => {
                            for c in &mut children {
                                let _ = c.kill();
                                let _ = c.wait();
                            }
                            let _ = std::fs::remove_dir_all(&store);
                            return Err(e);
                        }
                    }
                }
                Ok(Target { system, addr: nodes[0].clone(), nodes, proc_: ServerProc::Cluster(children, store) })
            }
            System::Nats => {
                let port = free_port().map_err(|e| e.to_string())?;
                let addr = format!("127.0.0.1:{port}");
                // TLS required of every client.
                let tls_flags: Vec<&std::ffi::OsStr> = tls.map_or(Vec::new(), |c| {
                    vec!["--tls".as_ref(), "--tlscert".as_ref(), c.cert.as_ref(), "--tlskey".as_ref(), c.key.as_ref()]
                });
                let mut child = spawn(
                    Command::new(&bins.nats_server)
                        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
                        .args(&tls_flags)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null()),
                )?;
                wait_listening(&mut child, &addr, "nats-server")?;
                Ok(Target { system, addr, nodes: Vec::new(), proc_: ServerProc::Child(child) })
            }
            System::Redis => {
                let port = free_port().map_err(|e| e.to_string())?;
                let addr = format!("127.0.0.1:{port}");
                // No persistence (nothing written to the working directory); room for the
                // idle-connection workload (the default maxclients is 10000).
                let mut child = spawn(
                    Command::new(&bins.redis_server)
                        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                        .args(["--maxclients", "20000", "--loglevel", "warning"])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null()),
                )?;
                wait_listening(&mut child, &addr, "redis-server")?;
                Ok(Target { system, addr, nodes: Vec::new(), proc_: ServerProc::Child(child) })
            }
        }
    }

    /// The address of the node client `idx` connects to (of a cluster: node (idx + 1) mod n;
    /// otherwise the server's).
    pub fn addr_of(&self, idx: usize) -> &str {
        if self.nodes.is_empty() { &self.addr } else { &self.nodes[(idx + 1) % self.nodes.len()] }
    }

    /// The server process id (None for the in-process server; of a cluster, the first node).
    pub fn pid(&self) -> Option<u32> {
        match &self.proc_ {
            ServerProc::Child(c) => Some(c.id()),
            ServerProc::Cluster(c, _) => c.get(1).map(Child::id),
            ServerProc::InProcess { .. } | ServerProc::Relay(_) => None,
        }
    }

    /// Number of connections the in-process rtm2 server serves (None for other systems).
    #[allow(dead_code)]
    pub fn in_process_connections(&self) -> Option<usize> {
        match &self.proc_ {
            ServerProc::InProcess { server, .. } => Some(server.connection_count()),
            ServerProc::Child(_) | ServerProc::Cluster(..) | ServerProc::Relay(_) => None,
        }
    }

    /// rtm2: connections the server cut off as slow consumers so far (their clients reconnect;
    /// a reconnect that cannot resume announces the channels that may have missed messages).
    /// None for other systems.
    pub fn slow_consumer_cuts(&self) -> Option<u64> {
        match &self.proc_ {
            ServerProc::InProcess { server, .. } => Some(server.slow_consumer_cuts()),
            ServerProc::Child(_) | ServerProc::Cluster(..) if self.system.is_rtm2() => {
                Some(SLOW_CONSUMER_CUTS.load(std::sync::atomic::Ordering::Relaxed))
            }
            _ => None,
        }
    }

    /// CPU time of the server so far.
    pub fn sample(&self) -> ServerSample {
        match &self.proc_ {
            ServerProc::Child(c) => ServerSample { cpu_s: proc_stat_cpu(&format!("/proc/{}/stat", c.id())) },
            // Every node and NATS: the cluster's cost.
            ServerProc::Cluster(cs, _) => {
                ServerSample { cpu_s: cs.iter().map(|c| proc_stat_cpu(&format!("/proc/{}/stat", c.id()))).sum() }
            }
            ServerProc::InProcess { .. } | ServerProc::Relay(_) => ServerSample {
                cpu_s: server_threads().iter().map(|tid| proc_stat_cpu(&format!("/proc/self/task/{tid}/stat"))).sum(),
            },
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        match &mut self.proc_ {
            ServerProc::Child(c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
            ServerProc::Cluster(cs, store) => {
                for c in cs.iter_mut().rev() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                let _ = std::fs::remove_dir_all(store);
            }
            ServerProc::InProcess { server, rt } => {
                server.shutdown();
                if let Some(rt) = rt.take() {
                    rt.shutdown_timeout(Duration::from_secs(1));
                }
            }
            ServerProc::Relay(rt) => {
                if let Some(rt) = rt.take() {
                    rt.shutdown_timeout(Duration::from_secs(1));
                }
            }
        }
    }
}

/// Starts `rtm2 serve` with `flags` and returns it with its address, once its stderr had a line
/// with `ready` in it (for a cluster node: "… joined the cluster: serving logins"; the address is
/// from its "listening on" line, which comes first).
/// Subscribers the `rtm2 serve` processes of this run cut off as slow consumers (their
/// warning lines; the server logs at `warn`).
static SLOW_CONSUMER_CUTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn rtm2_serve(bins: &Binaries, flags: &[&str], ready: &'static str) -> Result<(Child, String), String> {
    let bin = bins.rtm2();
    // Extra flags for every `rtm2 serve` of the run (e.g. `--data-dir DIR` for durable history).
    let extra: Vec<String> =
        std::env::var("RTM2_BENCH_SERVE_FLAGS").unwrap_or_default().split_whitespace().map(String::from).collect();
    let mut child = spawn(
        Command::new(&bin)
            .args(["--log-level", "warn", "serve", "--listen", "127.0.0.1:0", "--no-rate-limits"])
            .args(flags)
            .args(&extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads the "listening on" (and ready) lines, then keeps draining stderr so the server
    // never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut addr = None;
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("rtm2 server listening on ") {
                addr = Some(rest.split_whitespace().next().unwrap_or("").to_string());
            }
            if line.contains("slow consumer cut off") {
                SLOW_CONSUMER_CUTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if line.contains(ready)
                && let Some(a) = &addr
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(a.clone());
            } else if std::env::var_os("RTM2_BENCH_VERBOSE").is_some() {
                eprintln!("[rtm2 serve] {line}");
            }
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(a) => a,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{} serve did not report its address (and readiness) within 15 s", bin.display()));
        }
    };
    wait_listening(&mut child, &addr, "rtm2 serve")?;
    Ok((child, addr))
}

/// Thread ids of this process's in-process server threads.
fn server_threads() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for e in dir.flatten() {
            let tid = e.file_name().to_string_lossy().to_string();
            if let Ok(comm) = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                && comm.trim_end() == SERVER_THREAD
            {
                out.push(tid);
            }
        }
    }
    out
}

fn clk_tck() -> f64 {
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

/// utime + stime of a /proc/.../stat file, seconds.
pub(crate) fn proc_stat_cpu(path: &str) -> f64 {
    let Ok(s) = std::fs::read_to_string(path) else { return 0.0 };
    let Some(rest) = s.rfind(')').map(|i| &s[i + 1..]) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3; utime is field 14, stime field 15.
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (get(11) + get(12)) as f64 / clk_tck()
}

/// VmRSS of a process, bytes.
pub fn proc_rss(pid: u32) -> u64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return 0 };
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// CPU time of this process (all threads), seconds.
pub fn self_cpu_s() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Machine-wide CPU counters from /proc/stat, seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineCpu {
    /// user + nice + system: time charged to processes.
    pub tasks: f64,
    /// irq + softirq: not charged to any process (loopback TCP is processed largely here).
    pub irq: f64,
    pub steal: f64,
}

pub fn machine_cpu_s() -> MachineCpu {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else { return MachineCpu::default() };
    let Some(line) = s.lines().next() else { return MachineCpu::default() };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal guest guest_nice
    let at = |i: usize| v.get(i).copied().unwrap_or(0) as f64 / clk_tck();
    MachineCpu { tasks: at(0) + at(1) + at(2), irq: at(5) + at(6), steal: at(7) }
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Raises this process's open-file limit to its hard limit (children inherit it).
pub fn raise_nofile() -> u64 {
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
        rl.rlim_cur = rl.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
    }
    rl.rlim_cur
}

/// CPU accounting over a measured interval.
pub struct Meter {
    t0: Instant,
    server0: ServerSample,
    self0: f64,
    machine0: MachineCpu,
}

/// What a [`Meter`] measured.
#[derive(Clone, Copy, Debug)]
pub struct Metered {
    pub elapsed_s: f64,
    pub server_cpu_s: f64,
    pub client_cpu_s: f64,
    /// CPU used by other processes on the machine during the interval, in cores.
    pub foreign_cores: f64,
    /// Interrupt and softirq time during the interval (mostly the loopback network), in cores.
    pub irq_cores: f64,
    pub steal_cores: f64,
    /// Wall time from the start of the interval until the counters were read, seconds.
    pub wall_s: f64,
}

impl Meter {
    pub fn start(target: &Target) -> Meter {
        Meter { t0: Instant::now(), server0: target.sample(), self0: self_cpu_s(), machine0: machine_cpu_s() }
    }

    pub fn t0(&self) -> Instant {
        self.t0
    }

    /// Ends the interval at `end` (CPU counters are read now).
    pub fn finish(&self, target: &Target, end: Instant) -> Metered {
        let s1 = target.sample();
        let self1 = self_cpu_s();
        let m1 = machine_cpu_s();
        let elapsed = end.saturating_duration_since(self.t0).as_secs_f64().max(1e-9);
        let wall = self.t0.elapsed().as_secs_f64().max(1e-9);
        let server = (s1.cpu_s - self.server0.cpu_s).max(0.0);
        let own = (self1 - self.self0).max(0.0);
        // The in-process server's threads are part of this process.
        let client = if target.pid().is_none() { (own - server).max(0.0) } else { own };
        let foreign = (m1.tasks - self.machine0.tasks - server - client).max(0.0) / wall;
        Metered {
            elapsed_s: elapsed,
            server_cpu_s: server,
            client_cpu_s: client,
            foreign_cores: foreign,
            irq_cores: (m1.irq - self.machine0.irq).max(0.0) / wall,
            steal_cores: (m1.steal - self.machine0.steal).max(0.0) / wall,
            wall_s: wall,
        }
    }
}

/// The servers of `rtm2-bench durable` (durable.rs): each keeps its state in `dir`/data, and
/// acknowledges a write only once it is on disk (fsync).
impl Target {
    /// Starts the durable variant of `system` (rtm2-standalone, nats or redis) with its data in
    /// `dir`/data (emptied first); `dir` must exist and is the caller's to remove. Must be
    /// called from the main thread, as [`Target::start`].
    pub fn start_durable(system: System, bins: &Binaries, dir: &std::path::Path) -> Result<Target, String> {
        three_tries(|| Self::try_start_durable(system, bins, dir))
    }

    fn try_start_durable(system: System, bins: &Binaries, dir: &std::path::Path) -> Result<Target, String> {
        let data = dir.join("data");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        let (child, addr) = match system {
            // Each metadata write is committed to the redb store (fsync) before its response.
            System::Rtm2Standalone => {
                let d = data.to_str().ok_or("the data directory's path is not UTF-8")?;
                rtm2_serve(bins, &["--data-dir", d], "rtm2 server listening on ")?
            }
            // JetStream file storage syncs every write before its PubAck only with
            // `sync_interval: always` (the default is every 2 minutes); that has no flag.
            System::Nats => {
                let port = free_port().map_err(|e| e.to_string())?;
                let addr = format!("127.0.0.1:{port}");
                let conf = dir.join("nats-server.conf");
                let store = data.to_string_lossy();
                let text = format!("jetstream {{\n  store_dir: {store:?}\n  sync_interval: always\n}}\n");
                std::fs::write(&conf, text).map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
                let mut child = spawn(
                    Command::new(&bins.nats_server)
                        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-c"])
                        .arg(&conf)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null()),
                )?;
                wait_listening(&mut child, &addr, "nats-server")?;
                (child, addr)
            }
            // The AOF is written and fsynced before the replies of each event-loop iteration.
            System::Redis => {
                let port = free_port().map_err(|e| e.to_string())?;
                let addr = format!("127.0.0.1:{port}");
                let mut child = spawn(
                    Command::new(&bins.redis_server)
                        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                        .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir"])
                        .arg(&data)
                        .args(["--daemonize", "no", "--loglevel", "warning"])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null()),
                )?;
                wait_listening(&mut child, &addr, "redis-server")?;
                (child, addr)
            }
            s => return Err(format!("{} has no durable variant (rtm2-standalone, nats, redis)", s.name())),
        };
        Ok(Target { system, addr, nodes: Vec::new(), proc_: ServerProc::Child(child) })
    }
}
