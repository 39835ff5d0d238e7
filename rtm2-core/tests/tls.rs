//! TLS on the TCP transport: the SDK verifies the server's certificate.

mod common;

use common::*;
use rtm2_core::*;

struct Pki {
    dir: std::path::PathBuf,
}

impl Pki {
    /// A self-signed certificate for "localhost" and 127.0.0.1, written as PEM files.
    fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("rtm2-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.join("other.pem"), other.cert.pem()).unwrap();
        Pki { dir }
    }
    fn path(&self, f: &str) -> std::path::PathBuf {
        self.dir.join(f)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn tls_endpoint_with_a_verified_certificate() {
    let pki = Pki::new("ok");
    let server = dev_server();
    let addr = server.listen_tls("127.0.0.1:0", &pki.path("cert.pem"), &pki.path("key.pem")).await.unwrap();
    let mk = |user: &str, host: &str| {
        let mut cfg = ClientConfig::new(APP_ID, user)
            .endpoint(Endpoint::parse(&format!("tls://{host}:{}", addr.port())).unwrap());
        cfg.tls_ca_file = Some(pki.path("cert.pem"));
        Client::new(cfg).unwrap()
    };
    let alice = mk("alice", "localhost");
    let bob = mk("bob", "127.0.0.1");
    // The CA file can also come through set_parameters (what every binding offers).
    let carol = Client::new(
        ClientConfig::new(APP_ID, "carol")
            .endpoint(Endpoint::parse(&format!("tls://localhost:{}", addr.port())).unwrap()),
    )
    .unwrap();
    carol.set_parameters(&format!(r#"{{"tls_ca_file": "{}"}}"#, pki.path("cert.pem").display())).unwrap();
    carol.login("").await.unwrap();
    assert!(carol.get_parameters().contains("cert.pem"));
    assert_eq!(carol.set_parameters(r#"{"tls_ca_file": 7}"#).unwrap_err().code, ErrorCode::INVALID_PARAMETER);
    assert_eq!(carol.set_parameters(r#"{"log_level": "loud"}"#).unwrap_err().code, ErrorCode::INVALID_PARAMETER);
    alice.login("").await.unwrap();
    bob.login("").await.unwrap();
    let mut sub = bob.subscribe("secure", SubscribeOptions::default()).await.unwrap();
    alice.publish("secure", "over tls", PublishOptions::default()).await.unwrap();
    assert_eq!(next_message(&mut sub).await.text(), Some("over tls"));
}

#[tokio::test]
async fn an_unverifiable_server_is_refused() {
    let pki = Pki::new("bad");
    let server = dev_server();
    let addr = server.listen_tls("127.0.0.1:0", &pki.path("cert.pem"), &pki.path("key.pem")).await.unwrap();
    let ep = Endpoint::parse(&format!("tls://localhost:{}", addr.port())).unwrap();

    // Signed by another root: refused at once, with a clear reason.
    let mut cfg = ClientConfig::new(APP_ID, "alice").endpoint(ep.clone());
    cfg.tls_ca_file = Some(pki.path("other.pem"));
    let e = Client::new(cfg).unwrap().login("").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::INIT_SERVICE_FAILED);
    assert!(e.reason.to_lowercase().contains("certificate"), "{}", e.reason);

    // The system roots do not know a self-signed certificate either.
    let e = Client::new(ClientConfig::new(APP_ID, "alice").endpoint(ep)).unwrap().login("").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::INIT_SERVICE_FAILED);

    // A missing CA file is a configuration error, also reported at login.
    let mut cfg = ClientConfig::new(APP_ID, "alice")
        .endpoint(Endpoint::parse(&format!("tls://localhost:{}", addr.port())).unwrap());
    cfg.tls_ca_file = Some(pki.path("missing.pem"));
    let e = Client::new(cfg).unwrap().login("").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::INIT_SERVICE_FAILED);

    // Plain TCP to a TLS port is not a silent hang: login fails within its timeout.
    let plain = Client::new(ClientConfig::new(APP_ID, "carol").endpoint(Endpoint::Tcp(addr.to_string()))).unwrap();
    let e = plain.with_timeout(std::time::Duration::from_millis(500)).login("").await.unwrap_err();
    assert_eq!(e.code, ErrorCode::LOGIN_TIMEOUT);
}

#[test]
fn endpoint_parsing() {
    // "" is the default endpoint: RTM2_ENDPOINT when set, else the embedded server.
    assert!(matches!(Endpoint::parse("").unwrap(), Endpoint::Default));
    assert!(matches!(Endpoint::parse("embedded").unwrap(), Endpoint::Embedded));
    assert!(matches!(Endpoint::parse("127.0.0.1:9696").unwrap(), Endpoint::Tcp(a) if a == "127.0.0.1:9696"));
    assert!(matches!(Endpoint::parse("tcp://h:1").unwrap(), Endpoint::Tcp(a) if a == "h:1"));
    assert!(matches!(Endpoint::parse("tls://h:1").unwrap(), Endpoint::Tls(a) if a == "h:1"));
    assert_eq!(Endpoint::parse("http://h:1").unwrap_err().code, ErrorCode::INVALID_PARAMETER);
    assert_eq!(Endpoint::parse("nohost").unwrap_err().code, ErrorCode::INVALID_PARAMETER);
}
