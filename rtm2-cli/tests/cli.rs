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
