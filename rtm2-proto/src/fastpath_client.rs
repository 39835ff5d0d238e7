//! The SDK's hottest frames: the `Publish` it sends, written straight from borrowed parts, and
//! the `MessageEvent` it receives, read in place.
//!
//! The writer produces the bytes prost produces for the same frame. Like [`crate::fastpath`],
//! the reader accepts only the plain shape the server writes (each known
//! field at most once, with its declared wire type, valid UTF-8, in-range scalars) and says
//! `None` for anything else, so that the caller decodes with prost instead and every input
//! behaves exactly as before. When it says `Some`, prost decodes the same bytes to the same
//! values (tested below).

use bytes::{BufMut, BytesMut};

use crate::fastpath::{
    PublishRef, bytes_len, delimited, envelope, once, put_bytes, put_scalar, put_varint, scalar_len, text, u32_field,
    varint, varint_len,
};
use crate::frame::LEN_PREFIX;

/// Key of `ClientFrame.publish` (field 22, length-delimited), as a varint.
const KEY_PUBLISH: u64 = 22 << 3 | 2;

/// Appends a length-prefixed `ClientFrame { request_id, publish: p }` to `buf`: the bytes
/// [`crate::frame::write_client_frame`] writes for the same frame, without building it.
pub fn write_publish_frame(buf: &mut BytesMut, request_id: u64, p: &PublishRef<'_>) {
    let inner = bytes_len(p.channel.as_bytes())
        + scalar_len(p.channel_type.into())
        + scalar_len(p.message_type.into())
        + bytes_len(p.payload)
        + bytes_len(p.custom_type.as_bytes())
        + scalar_len(p.store_in_history.into())
        + scalar_len(p.encryption.into());
    let len = scalar_len(request_id) + varint_len(KEY_PUBLISH) + varint_len(inner as u64) + inner;
    buf.reserve(LEN_PREFIX + len);
    buf.put_u32_le(len as u32);
    put_scalar(buf, 0x08, request_id);
    put_varint(buf, KEY_PUBLISH);
    put_varint(buf, inner as u64);
    put_bytes(buf, 0x0a, p.channel.as_bytes());
    put_scalar(buf, 0x10, p.channel_type.into());
    put_scalar(buf, 0x18, p.message_type.into());
    put_bytes(buf, 0x22, p.payload);
    put_bytes(buf, 0x2a, p.custom_type.as_bytes());
    put_scalar(buf, 0x30, p.store_in_history.into());
    put_scalar(buf, 0x38, p.encryption.into());
}

/// A `MessageEvent` borrowed from the bytes of its frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageEventRef<'a> {
    /// Channel type (1 MESSAGE, 2 STREAM, 3 USER).
    pub channel_type: u32,
    /// Channel name.
    pub channel: &'a str,
    /// Topic (stream channels).
    pub topic: &'a str,
    /// Publisher's user id.
    pub publisher: &'a str,
    /// Message type (0 BINARY, 1 STRING).
    pub message_type: u32,
    /// The message.
    pub payload: &'a [u8],
    /// customType.
    pub custom_type: &'a str,
    /// Server time, ms.
    pub timestamp_ms: u64,
    /// 0, or the encryption mode of an end-to-end encrypted payload.
    pub encryption: u32,
    /// The message is in its channel's history (`timestamp_ms` is its key there).
    pub stored: bool,
}

const KEY_MESSAGE: u64 = 20 << 3 | 2; // ServerFrame.message, length-delimited

/// Reads a `ServerFrame` body (length prefix removed) whose body is a `MessageEvent`: its `seq`
/// and the borrowed event. `None` for any other frame or shape: use
/// [`crate::frame::decode_server`] then.
pub fn decode_message_frame(body: &[u8]) -> Option<(u64, MessageEventRef<'_>)> {
    let (seq, message) = envelope(body, KEY_MESSAGE)?;
    Some((seq, decode_message(message)?))
}

fn decode_message(buf: &[u8]) -> Option<MessageEventRef<'_>> {
    let (mut pos, mut seen) = (0usize, 0u8);
    let mut m = MessageEventRef::default();
    while pos < buf.len() {
        match varint(buf, &mut pos)? {
            0x08 => {
                once(&mut seen, 1)?;
                m.channel_type = u32_field(buf, &mut pos)?;
            }
            0x12 => {
                once(&mut seen, 2)?;
                m.channel = text(buf, &mut pos)?;
            }
            0x1a => {
                once(&mut seen, 4)?;
                m.topic = text(buf, &mut pos)?;
            }
            0x22 => {
                once(&mut seen, 8)?;
                m.publisher = text(buf, &mut pos)?;
            }
            0x28 => {
                once(&mut seen, 16)?;
                m.message_type = u32_field(buf, &mut pos)?;
            }
            0x32 => {
                once(&mut seen, 32)?;
                m.payload = delimited(buf, &mut pos)?;
            }
            0x3a => {
                once(&mut seen, 64)?;
                m.custom_type = text(buf, &mut pos)?;
            }
            0x40 => {
                once(&mut seen, 128)?;
                m.timestamp_ms = varint(buf, &mut pos)?;
            }
            // (`seen` has no bit left: a second field 9, or a 0 written out, is left to prost.)
            0x48 if m.encryption == 0 => {
                m.encryption = u32_field(buf, &mut pos)?;
                if m.encryption == 0 {
                    return None;
                }
            }
            // (Likewise field 10: once, and only `true`.)
            0x50 if !m.stored => {
                if varint(buf, &mut pos)? != 1 {
                    return None;
                }
                m.stored = true;
            }
            _ => return None,
        }
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;
    use crate::pb::{self, server_frame};
    use bytes::{Bytes, BytesMut};
    use prost::Message;

    fn event(i: u64) -> pb::MessageEvent {
        pb::MessageEvent {
            channel_type: (i % 4) as u32,
            channel: format!("chännel-{i}"),
            topic: if i.is_multiple_of(3) { String::new() } else { format!("t{i}") },
            publisher: format!("user{i}"),
            message_type: (i % 2) as u32,
            payload: Bytes::from(vec![i as u8; (i * 37 % 300) as usize]),
            custom_type: if i.is_multiple_of(2) { "ct".into() } else { String::new() },
            timestamp_ms: i * 1_000_003,
            encryption: (i % 5 / 3) as u32 * (1 + (i % 2) as u32),
            stored: i % 7 == 2,
        }
    }

    /// The bytes the server writes: a per-session seq prefix, then the shared body.
    fn wire(seq: u64, m: pb::MessageEvent) -> Vec<u8> {
        let mut buf = BytesMut::new();
        frame::write_server_frame(&mut buf, seq, &frame::encode_server_body(&server_frame::Body::Message(m)));
        buf[frame::LEN_PREFIX..].to_vec()
    }

    fn owned(seq: u64, m: MessageEventRef<'_>) -> (u64, pb::MessageEvent) {
        let e = pb::MessageEvent {
            channel_type: m.channel_type,
            channel: m.channel.into(),
            topic: m.topic.into(),
            publisher: m.publisher.into(),
            message_type: m.message_type,
            payload: Bytes::copy_from_slice(m.payload),
            custom_type: m.custom_type.into(),
            timestamp_ms: m.timestamp_ms,
            encryption: m.encryption,
            stored: m.stored,
        };
        (seq, e)
    }

    fn prost_view(body: &[u8]) -> Option<(u64, pb::MessageEvent)> {
        let f = pb::ServerFrame::decode(body).ok()?;
        match f.body {
            Some(server_frame::Body::Message(m)) => Some((f.seq, m)),
            _ => None,
        }
    }

    #[test]
    fn writes_a_publish_as_prost_does() {
        let payloads = [vec![], vec![7u8; 1], vec![1u8; 200], vec![2u8; 70_000]];
        for (i, payload) in payloads.iter().enumerate() {
            for request_id in [0u64, 1, 127, 128, 1 << 40] {
                for store_in_history in [false, true] {
                    let p = PublishRef {
                        channel: if i == 1 { "" } else { "chännel" },
                        channel_type: [0, 1, 3, 300][i],
                        message_type: (i % 2) as u32,
                        payload,
                        custom_type: if i == 2 { "type" } else { "" },
                        store_in_history,
                        encryption: (request_id % 3) as u32,
                    };
                    let mut ours = BytesMut::from(&b"xy"[..]);
                    write_publish_frame(&mut ours, request_id, &p);
                    let mut prost = BytesMut::from(&b"xy"[..]);
                    let body = pb::client_frame::Body::Publish(pb::Publish {
                        channel: p.channel.into(),
                        channel_type: p.channel_type,
                        message_type: p.message_type,
                        payload: Bytes::copy_from_slice(payload),
                        custom_type: p.custom_type.into(),
                        store_in_history,
                        encryption: p.encryption,
                    });
                    frame::write_client_frame(&mut prost, &pb::ClientFrame { request_id, body: Some(body) });
                    assert_eq!(ours, prost, "payload {i}, request {request_id}, history {store_in_history}");
                }
            }
        }
    }

    #[test]
    fn reads_what_the_server_writes_as_prost_does() {
        for i in 0..200 {
            let body = wire(i * 7919, event(i));
            let (seq, m) = decode_message_frame(&body).expect("plain shape");
            assert_eq!(Some(owned(seq, m)), prost_view(&body), "event {i}");
        }
    }

    #[test]
    fn anything_unusual_is_left_to_prost() {
        let other =
            frame::encode_server_body(&server_frame::Body::PublishAck(pb::PublishAck { up_to: 3, server_time_ms: 0 }));
        assert_eq!(decode_message_frame(&other), None, "not a message");
        let body = wire(5, event(4));
        // Every truncation and every single-byte change either reads as prost reads it, or
        // is declined.
        for cut in 0..body.len() {
            if let Some((seq, m)) = decode_message_frame(&body[..cut]) {
                assert_eq!(Some(owned(seq, m)), prost_view(&body[..cut]), "cut at {cut}");
            }
        }
        for at in 0..body.len() {
            for b in [0x00, 0x01, 0x08, 0x12, 0x7f, 0x80, 0xc3, 0xff] {
                let mut bad = body.clone();
                bad[at] = b;
                if let Some((seq, m)) = decode_message_frame(&bad) {
                    assert_eq!(Some(owned(seq, m)), prost_view(&bad), "byte {at} set to {b:#x}");
                }
            }
        }
        // A field repeated (prost would keep the last one) is declined.
        let mut twice = body.clone();
        twice.extend_from_slice(&[0x08, 0x09]);
        assert_eq!(decode_message_frame(&twice), None);
    }
}
