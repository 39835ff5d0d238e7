//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/*`) through the same harnesses the
//! fuzzers run, so every input a fuzzer ever kept stays a regression test. With
//! `RTM2_WRITE_SEEDS=1` it (re)writes the seed inputs first.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use rtm2_proto::frame;
use rtm2_proto::fuzzing;
use rtm2_proto::pb::{self, client_frame, server_frame};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut wire = BytesMut::new();
    frame::write_client_frame(
        &mut wire,
        &pb::ClientFrame {
            request_id: 0,
            body: Some(client_frame::Body::Hello(pb::Hello { protocol_version: 1, ..Default::default() })),
        },
    );
    frame::write_client_frame(
        &mut wire,
        &pb::ClientFrame {
            request_id: 1,
            body: Some(client_frame::Body::Login(pb::Login {
                app_id: "970CA35de60c44645bbae8a215061b33".into(),
                user_id: "alice".into(),
                ..Default::default()
            })),
        },
    );
    frame::write_client_frame(
        &mut wire,
        &pb::ClientFrame {
            request_id: 2,
            body: Some(client_frame::Body::Publish(pb::Publish {
                channel: "room".into(),
                channel_type: 1,
                message_type: 1,
                payload: "hello".into(),
                custom_type: "t".into(),
                store_in_history: false,
                encryption: 0,
            })),
        },
    );
    let mut frames = vec![7u8];
    frames.extend_from_slice(&wire);
    let server = {
        use prost::Message;
        pb::ServerFrame {
            seq: 42,
            body: Some(server_frame::Body::TopicEvent(pb::TopicEvent {
                event_type: 2,
                channel: "stage".into(),
                publisher: "bob".into(),
                topics: vec![pb::TopicInfo {
                    topic: "t".into(),
                    publishers: vec![pb::PublisherInfo { user_id: "bob".into(), meta: "m".into() }],
                }],
                timestamp_ms: 1,
            })),
        }
        .encode_to_vec()
    };
    let token = b"007eJxTYOCdJftjyTM2zxW6Xhm/5T0j5LdcUt/xYVt48fb5Mp3PX9coMFiaGzg7GpumpJoZJJuYmJmYJiUlplokGhmaGpgZJhkbu38RYIhgYmBgZABhJiBmBPM5GUpSi0viS4tTiwBZVh6A".to_vec();
    vec![
        ("frame_decoder", "seed-hello-login-publish", frames),
        ("frame_decoder", "seed-oversize", vec![0, 0xff, 0xff, 0xff, 0x7f, 1, 2]),
        ("server_roundtrip", "seed-topic-event", server),
        ("token", "seed-primary-vector", token),
    ]
}

#[test]
fn corpora_replay_without_panics() {
    if std::env::var_os("RTM2_WRITE_SEEDS").is_some() {
        for (target, name, data) in seeds() {
            std::fs::create_dir_all(corpus(target)).unwrap();
            std::fs::write(corpus(target).join(name), data).unwrap();
        }
    }
    let mut replayed = 0;
    for (target, run) in [
        ("frame_decoder", fuzzing::frame_decoder as fn(&[u8])),
        ("server_roundtrip", fuzzing::server_roundtrip),
        ("token", fuzzing::token),
    ] {
        let dir = corpus(target);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            run(&std::fs::read(&path).unwrap());
            replayed += 1;
        }
    }
    for (_, _, data) in seeds() {
        fuzzing::frame_decoder(&data);
        fuzzing::server_roundtrip(&data);
        fuzzing::token(&data);
    }
    assert!(replayed >= 4, "only {replayed} corpus inputs found");
}
