//! Fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and by the normal test suite
//! (which replays the committed corpora). Each function must never panic on any input.

use bytes::BytesMut;
use prost::Message;

use crate::frame::{self, FrameDecoder};
use crate::pb;

/// Feeds `data` to the frame decoder in two pieces split at a position taken from the first
/// byte (a decoder must not care where reads end), decodes every frame as both a client and a
/// server frame, and checks that what decodes re-encodes to something that decodes the same.
pub fn frame_decoder(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else { return };
    let cut = if rest.is_empty() { 0 } else { split as usize % (rest.len() + 1) };
    let dec = FrameDecoder::new(64 * 1024);
    let mut buf = BytesMut::new();
    for piece in [&rest[..cut], &rest[cut..]] {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(body)) => {
                    fast_publish_agrees(&body);
                    fast_message_agrees(&body);
                    if let Ok(f) = frame::decode_client(body.clone()) {
                        let again = frame::encode_client(&f);
                        let mut b = BytesMut::from(&again[..]);
                        let body2 = dec.decode(&mut b).expect("re-encoded frame fits").expect("complete");
                        assert_eq!(frame::decode_client(body2).expect("re-encoded frame decodes"), f);
                    }
                    let _ = frame::decode_server(body);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// Whatever the borrowed `Publish` decoder accepts, prost decodes to the same values (the
/// server relies on it to take the fast path without changing behaviour).
fn fast_publish_agrees(body: &[u8]) {
    let Some((request_id, fast)) = crate::fastpath::decode_publish_frame(body) else { return };
    let f =
        frame::decode_client(bytes::Bytes::copy_from_slice(body)).expect("prost decodes what the fast path accepts");
    let Some(pb::client_frame::Body::Publish(p)) = &f.body else { panic!("fast path accepted a non-publish: {f:?}") };
    assert_eq!((request_id, fast), (f.request_id, crate::fastpath::PublishRef::from(p)));
}

/// Whatever the SDK's borrowed `MessageEvent` reader accepts, prost decodes to the same values,
/// and a `Publish` it accepts is written back by the SDK's publish writer to the same bytes
/// prost writes.
fn fast_message_agrees(body: &[u8]) {
    use crate::fastpath_client::{decode_message_frame, write_publish_frame};
    if let Some((seq, m)) = decode_message_frame(body) {
        let f =
            frame::decode_server(bytes::Bytes::copy_from_slice(body)).expect("prost decodes what the reader accepts");
        let Some(pb::server_frame::Body::Message(e)) = &f.body else { panic!("reader accepted a non-message: {f:?}") };
        assert_eq!(seq, f.seq);
        assert_eq!(
            (m.channel_type, m.channel, m.topic, m.publisher, m.message_type, m.payload, m.custom_type, m.timestamp_ms),
            (
                e.channel_type,
                e.channel.as_str(),
                e.topic.as_str(),
                e.publisher.as_str(),
                e.message_type,
                &e.payload[..],
                e.custom_type.as_str(),
                e.timestamp_ms
            )
        );
    }
    if let Some((request_id, p)) = crate::fastpath::decode_publish_frame(body) {
        let mut ours = BytesMut::new();
        write_publish_frame(&mut ours, request_id, &p);
        let f = frame::decode_client(bytes::Bytes::copy_from_slice(body)).expect("prost decodes it");
        assert_eq!(ours, frame::encode_client(&f), "the publish writer differs from prost");
    }
}

/// Decodes `data` as a server frame body; what decodes must survive an encode/decode round
/// trip (also through the shared-body path the server uses for fan-out).
pub fn server_roundtrip(data: &[u8]) {
    let Ok(f) = pb::ServerFrame::decode(data) else { return };
    let Some(body) = f.body.clone() else { return };
    let shared = frame::encode_server_body(&body);
    let mut buf = BytesMut::new();
    frame::write_server_frame(&mut buf, f.seq, &shared);
    let dec = FrameDecoder::new(usize::MAX);
    let wire = dec.decode(&mut buf).expect("fits").expect("complete");
    assert_eq!(frame::decode_server(wire).expect("decodes"), f);
}

/// Parses and verifies `data` as a token: errors are fine, panics are not.
pub fn token(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let _ = crate::token::parse(&s);
    let _ = crate::token::verify_rtm_token(
        &s,
        "970CA35de60c44645bbae8a215061b33",
        &["5CFd2fd1755d40ecb72977518be15d3b"],
        "test_user",
        1_111_111,
    );
    let _ = crate::token::verify_stream_token(
        &s,
        "970CA35de60c44645bbae8a215061b33",
        &["5CFd2fd1755d40ecb72977518be15d3b"],
        "ch",
        "test_user",
        1_111_111,
    );
}
