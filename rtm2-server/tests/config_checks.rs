//! A server refuses, when it starts, a configuration nobody could use: app ids and certificates
//! that cannot sign tokens, cluster node ids that cannot be part of a NATS subject.

use rtm2_server::{ClusterConfig, Server, ServerConfig};

fn start(config: ServerConfig) -> std::io::Result<Server> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { Server::try_start(config) })
}

#[test]
fn apps_with_certificates_need_32_hex_character_ids_and_certificates() {
    let hex_id = "970CA35de60c44645bbae8a215061b33";
    let hex_cert = "5CFd2fd1755d40ecb72977518be15d3b";
    assert!(start(ServerConfig::with_app(hex_id, hex_cert)).is_ok());
    // 32 alphanumerics, but not hex: a valid app id for a development-mode login, yet no token
    // builder signs with it.
    let e = start(ServerConfig::with_app("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", hex_cert)).err().expect("accepted");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("app id must be 32 hex characters"), "{e}");
    let e = start(ServerConfig::with_app(hex_id, "not-a-certificate")).err().expect("accepted");
    assert!(e.to_string().contains("app certificate must be 32 hex characters"), "{e}");
}

#[test]
fn cluster_node_ids_are_checked_when_the_server_starts() {
    let config = ServerConfig {
        cluster: Some(ClusterConfig { urls: vec!["nats://127.0.0.1:1".into()], node_id: "a.b".into() }),
        ..Default::default()
    };
    let e = start(config).err().expect("accepted");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("node id"), "{e}");
}
