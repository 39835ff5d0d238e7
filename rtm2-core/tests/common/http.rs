//! An HTTP/1.1 client for the tests of the HTTP side (one request per connection).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::WAIT;

/// The key and secret the tests configure (`HttpConfig::credentials`).
pub const KEY: &str = "ops";
pub const SECRET: &str = "s3cret-Key";

pub fn basic() -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:{SECRET}")))
}

/// An HTTP answer: status, headers (lower-case names), body.
pub struct Answer {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The RTM error code of an error answer.
    pub fn code(&self) -> u64 {
        self.json()["code"].as_u64().unwrap_or_else(|| panic!("no numeric code: {}", self.body))
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`), bounded in time.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        req.push_str("\r\n");
        if let Some(b) = body {
            req.push_str(b);
        }
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP answer: {raw:?}"));
        let mut lines = head.lines();
        let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Answer { status, headers, body: body.to_string() }
    };
    tokio::time::timeout(WAIT, fut).await.expect("an HTTP answer within the wait")
}

/// `request` with the operator's Basic credentials and a JSON body.
pub async fn op(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> Answer {
    let auth = basic();
    let body = body.map(|b| b.to_string());
    let mut headers = vec![("Authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    request(addr, method, path, &headers, body.as_deref()).await
}

/// Reads server-sent events from `path` until one named `event` whose data satisfies `pred`.
pub async fn sse_until(addr: SocketAddr, path: &str, event: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n\r\n", basic());
        s.write_all(req.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(s).lines();
        let mut name = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            // (Chunked encoding: size lines interleave; event lines are recognisable.)
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(data) = line.strip_prefix("data: ")
                && name == event
            {
                let v: Value = serde_json::from_str(data).unwrap();
                if pred(&v) {
                    return v;
                }
            }
        }
        panic!("the stream ended");
    };
    tokio::time::timeout(WAIT, fut).await.unwrap_or_else(|_| panic!("no {event} event on {path} within the wait"))
}
