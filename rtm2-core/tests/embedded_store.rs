//! The embedded server keeps metadata in the directory named by RTM2_EMBEDDED_DATA_DIR, across
//! processes. (Its own test binary: the embedded server is one per process.)

use rtm2_core::*;

const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";

#[test]
fn the_embedded_server_keeps_metadata_in_the_configured_directory() {
    let dir = std::env::temp_dir().join(format!("rtm2-embedded-{}-{}", std::process::id(), rtm2_proto::now_ms()));
    for phase in ["write", "read"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_phase", "--ignored", "--nocapture", "--test-threads=1"])
            .env(embedded::DATA_DIR_ENV, &dir)
            .env("RTM2_TEST_PHASE", phase)
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("1 passed"), "phase {phase} failed:\n{text}");
    }
    assert!(dir.join("metadata.redb").exists());
    let _ = std::fs::remove_dir_all(dir);
}

/// One phase in a child process (run by the test above).
#[test]
#[ignore]
fn child_phase() {
    let phase = std::env::var("RTM2_TEST_PHASE").expect("run by the_embedded_server_keeps_metadata_...");
    let c = Client::new(ClientConfig::new(APP_ID, "keeper")).unwrap();
    block_on(c.login("")).unwrap();
    let st = c.storage();
    match phase.as_str() {
        "write" => {
            let items = vec![MetadataItem::new("kept", "across processes")];
            block_on(st.set_user_metadata("", items, MetadataOptions::default())).unwrap();
        }
        _ => {
            let m = block_on(st.get_user_metadata("")).unwrap();
            assert_eq!(m.get("kept").map(|i| i.value.as_str()), Some("across processes"));
            assert_eq!(m.major_revision, 1);
        }
    }
    block_on(c.logout()).unwrap();
}
