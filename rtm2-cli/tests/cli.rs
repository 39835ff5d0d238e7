//! The `rtm2` binary: two terminals talk through `rtm2 serve`; `rtm2 token` makes valid tokens.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_rtm2");
const APP: &str = "970CA35de60c44645bbae8a215061b33";
const CERT: &str = "5CFd2fd1755d40ecb72977518be15d3b";

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns a reader thread sending each line of `r` to a channel.
fn lines(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(_) => continue,
            Err(_) => panic!("no line containing {needle:?}"),
        }
    }
}

#[test]
fn two_terminals_talk_through_a_server_with_tokens() {
    let mut server = Killed(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--app-id", APP, "--app-certificate", CERT])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let srv = lines(server.0.stderr.take().unwrap());
    let line = wait_line(&srv, "listening on");
    let addr = line.split_whitespace().nth(4).unwrap().to_string();

    let token = |user: &str| {
        let out = Command::new(BIN)
            .args(["token", "--app-id", APP, "--app-certificate", CERT, "--user-id", user])
            .output()
            .unwrap();
        assert!(out.status.success());
        let t = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let now = rtm2_proto::now_ms() / 1000;
        rtm2_proto::token::verify_rtm_token(&t, APP, &[CERT], user, now).unwrap();
        t
    };

    let mut sub = Killed(
        Command::new(BIN)
            .args([
                "subscribe",
                "--endpoint",
                &addr,
                "--app-id",
                APP,
                "--user-id",
                "bob",
                "--token",
                &token("bob"),
                "--count",
                "2",
                "room",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let sub_err = lines(sub.0.stderr.take().unwrap());
    let sub_out = lines(sub.0.stdout.take().unwrap());
    wait_line(&sub_err, "subscribed to room");

    let alice = token("alice");
    let publish = |args: &[&str]| {
        let mut all = vec!["publish", "--endpoint", &addr, "--app-id", APP, "--user-id", "alice", "--token", &alice];
        all.extend_from_slice(args);
        Command::new(BIN).args(&all).output().unwrap()
    };
    let out = publish(&["room", "hello from alice"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(wait_line(&sub_out, "hello"), "room alice: hello from alice");
    let out = publish(&["--to-user", "bob", "psst"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(wait_line(&sub_out, "psst"), "(direct) alice: psst");
    assert!(sub.0.wait().unwrap().success());

    // Errors are reported with their RTM code and a failing exit status.
    let out = publish(&["--to-user", "nobody", "hi"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CHANNEL_RECEIVER_OFFLINE (11033)"));
    let out = Command::new(BIN)
        .args(["publish", "--endpoint", &addr, "--app-id", APP, "--user-id", "eve", "--token", "bogus", "room", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("INVALID_TOKEN (10005)"));
}

#[test]
fn demo_runs_on_the_embedded_server() {
    let out = Command::new(BIN).arg("demo").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("bob got    lobby alice [greeting]: hello, lobby!"), "{text}");
    assert!(text.contains("alice got  (direct) bob: hi alice"), "{text}");
    assert!(text.contains("CHANNEL_RECEIVER_OFFLINE (11033)"), "{text}");
    assert!(text.contains("bob got    stage/slides alice: slide 1"), "{text}");
    assert!(text.contains("bob saw    alice in lobby with state {\"mood\": \"excited\"}"), "{text}");
    assert!(text.contains("who is in lobby: [\"alice\", \"bob\"]"), "{text}");
    assert!(text.contains("bob got    lobby metadata topic = \"rtm2 demo\" (revision 1)"), "{text}");
    assert!(text.contains("STORAGE_OUTDATED_REVISION (12014)"), "{text}");
    assert!(text.contains("bob waited for the microphone and got it"), "{text}");
}

#[test]
fn serve_tls_and_talk_over_it() {
    let dir = std::env::temp_dir().join(format!("rtm2-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut server = Killed(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"])
            .arg("--tls-cert")
            .arg(&cert_path)
            .arg("--tls-key")
            .arg(&key_path)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let srv = lines(server.0.stderr.take().unwrap());
    let line = wait_line(&srv, "(tls)");
    let endpoint = format!("tls://{}", line.split_whitespace().nth(4).unwrap());
    let ca = cert_path.to_str().unwrap();
    let mut sub = Killed(
        Command::new(BIN)
            .args(["subscribe", "--endpoint", &endpoint, "--tls-ca", ca, "--user-id", "bob", "--count", "1", "secure"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let sub_err = lines(sub.0.stderr.take().unwrap());
    let sub_out = lines(sub.0.stdout.take().unwrap());
    wait_line(&sub_err, "subscribed to secure");
    let out = Command::new(BIN)
        .args(["publish", "--endpoint", &endpoint, "--tls-ca", ca, "--user-id", "alice", "secure", "over tls"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(wait_line(&sub_out, "over tls"), "secure alice: over tls");
    // Without the CA the server cannot be verified: a clear error, no hang.
    let out = Command::new(BIN)
        .args(["publish", "--endpoint", &endpoint, "--user-id", "eve", "secure", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("INIT_SERVICE_FAILED (10007)"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `rtm2 serve` on a data directory; returns the process and its address.
fn serve_on(dir: &std::path::Path) -> (Killed, String) {
    let mut server = Killed(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--no-rate-limits", "--data-dir"])
            .arg(dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let srv = lines(server.0.stderr.take().unwrap());
    let line = wait_line(&srv, "listening on");
    (server, line.split_whitespace().nth(4).unwrap().to_string())
}

/// Every acknowledged metadata write survives `kill -9` of the server: four writers on channels
/// of their own and one shared channel (their writes committed together) run while the process
/// is killed; after a restart on the same data directory each acknowledged write is there (and
/// nothing newer than the writes sent).
#[test]
fn acknowledged_metadata_survives_kill_9() {
    use rtm2_core::{ChannelType, Client, ClientConfig, Endpoint, MetadataItem, MetadataOptions};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    const WRITERS: usize = 4;
    let dir = std::env::temp_dir().join(format!("rtm2-kill9-{}-{}", std::process::id(), rtm2_proto::now_ms()));
    let (mut server, addr) = serve_on(&dir);
    let connect = |addr: &str, user: &str| {
        let mut cfg = ClientConfig::new(APP, user).endpoint(Endpoint::parse(addr).unwrap());
        cfg.request_timeout = Duration::from_secs(2);
        let c = Client::new(cfg).unwrap();
        rtm2_core::block_on(c.login("")).unwrap();
        c
    };
    // Per channel: the acknowledged (value, major revision)s, and the writes sent.
    let channels: Vec<String> = (0..WRITERS).map(|w| format!("durable{w}")).chain(["shared".to_string()]).collect();
    type Acked = Vec<Mutex<Vec<(String, i64)>>>;
    let acked: Arc<Acked> = Arc::new(channels.iter().map(|_| Mutex::new(Vec::new())).collect());
    let sent: Arc<Vec<AtomicUsize>> = Arc::new(channels.iter().map(|_| AtomicUsize::new(0)).collect());
    let jobs: Vec<_> = (0..WRITERS)
        .map(|w| {
            let writer = connect(&addr, &format!("writer{w}"));
            let (acked, sent, channels) = (acked.clone(), sent.clone(), channels.clone());
            std::thread::spawn(move || {
                for i in 0..100_000 {
                    // Mostly its own channel; every fourth write the shared one.
                    let c = if i % 4 == 3 { WRITERS } else { w };
                    let value = format!("value {w}/{i}");
                    sent[c].fetch_add(1, Ordering::SeqCst);
                    let item = MetadataItem::new(format!("k{}", i % 30), value.clone());
                    let op = writer.storage().set_channel_metadata(
                        &channels[c],
                        ChannelType::MESSAGE,
                        vec![item],
                        MetadataOptions::default(),
                    );
                    match rtm2_core::block_on(op) {
                        Ok(r) => acked[c].lock().unwrap().push((value, r.major_revision)),
                        Err(_) => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    // Kill the server in the middle of the writes.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while acked.iter().map(|a| a.lock().unwrap().len()).sum::<usize>() < 200 {
        assert!(std::time::Instant::now() < deadline, "writes are not acknowledged");
        std::thread::sleep(Duration::from_millis(5));
    }
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();
    for job in jobs {
        job.join().unwrap();
    }

    let (_server, addr) = serve_on(&dir);
    let reader = connect(&addr, "reader");
    for (c, channel) in channels.iter().enumerate() {
        let acked = acked[c].lock().unwrap().clone();
        let m = rtm2_core::block_on(reader.storage().get_channel_metadata(channel, ChannelType::MESSAGE)).unwrap();
        // Only writes that were sent may have landed (those in flight at the kill without their answer).
        let sent = sent[c].load(Ordering::SeqCst);
        assert!(m.major_revision as usize <= sent, "{channel}: revision {} but {sent} writes sent", m.major_revision);
        let Some((last_value, last_major)) = acked.iter().max_by_key(|(_, major)| *major).cloned() else { continue };
        assert!(
            m.major_revision >= last_major,
            "{channel}: acknowledged revision {last_major} lost: the store has {} ({} writes acknowledged)",
            m.major_revision,
            acked.len()
        );
        if m.major_revision == last_major {
            assert!(
                m.items.iter().any(|it| it.value == last_value),
                "{channel}: the last acknowledged value is missing"
            );
        }
        eprintln!(
            "{channel}: {} writes acknowledged of {sent} sent; revision {} after the restart",
            acked.len(),
            m.major_revision
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `rtm2 serve --data-dir DIR` expecting it to refuse to start; returns what it printed.
/// Fails (does not hang) if it starts serving instead.
fn serve_refused(dir: &std::path::Path) -> String {
    let mut server = Killed(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let srv = lines(server.0.stderr.take().unwrap());
    let mut printed = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match srv.recv_timeout(left) {
            Ok(l) => {
                assert!(!l.contains("listening on"), "the server started on a damaged data directory: {printed}{l}");
                printed.push_str(&l);
                printed.push('\n');
            }
            // stderr closed: the process ended.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the server neither started nor exited: {printed}"),
        }
    }
    let status = server.0.wait().unwrap();
    assert!(!status.success(), "refused, yet exit status {status}: {printed}");
    printed
}

/// A data directory that held a store is never silently re-initialised: a zero-byte or missing
/// database file (or one of another store) makes `rtm2 serve` refuse to start with a clear
/// message; `--create-new-store` starts a new empty store (moving the old file aside).
#[test]
fn a_store_that_was_emptied_or_removed_is_refused_not_reinitialised() {
    use rtm2_core::{ChannelType, Client, ClientConfig, Endpoint, MetadataItem, MetadataOptions};
    let dir = std::env::temp_dir().join(format!("rtm2-empty-{}-{}", std::process::id(), rtm2_proto::now_ms()));
    let connect = |addr: &str| {
        let mut cfg = ClientConfig::new(APP, "writer").endpoint(Endpoint::parse(addr).unwrap());
        cfg.request_timeout = Duration::from_secs(5);
        let c = Client::new(cfg).unwrap();
        rtm2_core::block_on(c.login("")).unwrap();
        c
    };
    // First run: an empty directory is initialised without any flag.
    {
        let (_server, addr) = serve_on(&dir);
        let c = connect(&addr);
        let item = MetadataItem::new("k", "acknowledged");
        let op =
            c.storage().set_channel_metadata("durable", ChannelType::MESSAGE, vec![item], MetadataOptions::default());
        assert_eq!(rtm2_core::block_on(op).unwrap().major_revision, 1);
    }
    let db = dir.join("metadata.redb");

    // Zero bytes (e.g. `truncate -s0`): refused.
    let saved = std::fs::read(&db).unwrap();
    std::fs::File::create(&db).unwrap(); // truncates to 0 bytes
    let out = serve_refused(&dir);
    assert!(out.contains("metadata.redb is empty (0 bytes)") && out.contains("--create-new-store"), "{out}");
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "the refused start changed the file");

    // Missing: refused.
    std::fs::remove_file(&db).unwrap();
    let out = serve_refused(&dir);
    assert!(out.contains("metadata.redb is missing") && out.contains("--create-new-store"), "{out}");
    assert!(!db.exists(), "the refused start created a store");

    // A store of another directory: refused.
    let other = dir.with_extension("other");
    drop(serve_on(&other));
    std::fs::copy(other.join("metadata.redb"), &db).unwrap();
    let out = serve_refused(&dir);
    assert!(out.contains("belongs to another store"), "{out}");

    // The original file back: served, with its data.
    std::fs::write(&db, &saved).unwrap();
    {
        let (_server, addr) = serve_on(&dir);
        let c = connect(&addr);
        let m = rtm2_core::block_on(c.storage().get_channel_metadata("durable", ChannelType::MESSAGE)).unwrap();
        assert_eq!(m.major_revision, 1);
        assert_eq!(m.items[0].value, "acknowledged");
    }

    // The explicit flag starts a new empty store and keeps the old file aside.
    std::fs::File::create(&db).unwrap();
    let mut server = Killed(
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--create-new-store", "--data-dir"])
            .arg(&dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let srv = lines(server.0.stderr.take().unwrap());
    let addr = wait_line(&srv, "listening on").split_whitespace().nth(4).unwrap().to_string();
    let c = connect(&addr);
    let m = rtm2_core::block_on(c.storage().get_channel_metadata("durable", ChannelType::MESSAGE)).unwrap();
    assert_eq!(m.major_revision, 0, "a new store is empty");
    let kept = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("metadata.redb.replaced-"));
    assert!(kept, "the old store file was not kept");
    drop(c);
    drop(server);
    // And it is a store like any other from then on: restarting without the flag serves it.
    drop(serve_on(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn serve_refuses_credentials_that_cannot_sign_tokens_and_logs_without_colour_into_a_pipe() {
    // A non-hex app id with a certificate: no token builder signs with it, so nobody could log in.
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--app-id", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"])
        .args(["--app-certificate", CERT])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("app id must be 32 hex characters"), "{err}");
    // Its log into a pipe (as into a file) carries no ANSI escape codes.
    let mut server = Killed(
        Command::new(BIN)
            .args(["--log-level", "info", "serve", "--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let srv = lines(server.0.stderr.take().unwrap());
    let logged = wait_line(&srv, "DEVELOPMENT MODE");
    assert!(!logged.contains('\u{1b}'), "escape codes in {logged:?}");
    drop(server);
}
