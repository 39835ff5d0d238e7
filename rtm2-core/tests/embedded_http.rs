//! The embedded server serves its HTTP side where RTM2_EMBEDDED_HTTP says (with the key and
//! secret of RTM2_EMBEDDED_HTTP_AUTH). (Its own test binary: the embedded server is one per
//! process; the check runs in a child process that sets the environment before its start.)

use std::io::{Read, Write};

use rtm2_core::*;

const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";

#[test]
fn the_embedded_server_serves_http_when_asked() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(embedded::HTTP_ENV, format!("127.0.0.1:{port}"))
        .env(embedded::HTTP_AUTH_ENV, "ops:secret")
        .env("RTM2_TEST_HTTP_PORT", port.to_string())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "the child failed:\n{text}");
}

/// `GET path` on the embedded server's HTTP side: (status, body).
fn get(port: u16, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let auth = auth.map(|a| format!("Authorization: Basic {a}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.split_whitespace().nth(1).unwrap().parse().unwrap(), body.to_string())
}

#[test]
#[ignore]
fn child() {
    let port: u16 = std::env::var("RTM2_TEST_HTTP_PORT").expect("run by the test above").parse().unwrap();
    let c = Client::new(ClientConfig::new(APP_ID, "alice")).unwrap();
    block_on(c.login("")).unwrap();
    // "ops:secret" in base64.
    let auth = Some("b3BzOnNlY3JldA==");
    let (status, body) = get(port, &format!("/v1/apps/{APP_ID}/users"), auth);
    assert_eq!(status, 200, "{body}");
    let users: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(users["users"][0]["user_id"], "alice", "{body}");
    assert_eq!(get(port, &format!("/v1/apps/{APP_ID}/users"), None).0, 401);
    let (status, metrics) = get(port, "/metrics", None);
    assert_eq!(status, 200);
    assert!(metrics.lines().any(|l| l == "rtm2_logins_total{result=\"ok\"} 1"), "{metrics}");
    block_on(c.logout()).unwrap();
}
