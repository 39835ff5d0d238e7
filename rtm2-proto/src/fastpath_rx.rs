//! The hottest frame the SDK receives, a `ServerFrame` carrying a `MessageEvent`, read in place.
//!
//! Like [`crate::fastpath`], this accepts only the plain shape the server writes (each known
//! field at most once, with its declared wire type, valid UTF-8, in-range scalars) and says
//! `None` for anything else, so that the caller decodes with prost instead and every input
//! behaves exactly as before. When it says `Some`, prost decodes the same bytes to the same
//! values (tested below).

use crate::fastpath::{delimited, once, u32_field, varint};

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
}

const KEY_SEQ: u64 = 1 << 3; // ServerFrame.seq, varint
const KEY_MESSAGE: u64 = 20 << 3 | 2; // ServerFrame.message, length-delimited

/// Reads a `ServerFrame` body (length prefix removed) whose body is a `MessageEvent`: its `seq`
/// and the borrowed event. `None` for any other frame or shape: use
/// [`crate::frame::decode_server`] then.
pub fn decode_message_frame(body: &[u8]) -> Option<(u64, MessageEventRef<'_>)> {
    let (mut pos, mut seen) = (0usize, 0u8);
    let mut seq = 0;
    let mut message = None;
    while pos < body.len() {
        match varint(body, &mut pos)? {
            KEY_SEQ => {
                once(&mut seen, 1)?;
                seq = varint(body, &mut pos)?;
            }
            KEY_MESSAGE => {
                once(&mut seen, 2)?;
                message = Some(decode_message(delimited(body, &mut pos)?)?);
            }
            _ => return None,
        }
    }
    Some((seq, message?))
}

fn text<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    std::str::from_utf8(delimited(buf, pos)?).ok()
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
    fn reads_what_the_server_writes_as_prost_does() {
        for i in 0..200 {
            let body = wire(i * 7919, event(i));
            let (seq, m) = decode_message_frame(&body).expect("plain shape");
            assert_eq!(Some(owned(seq, m)), prost_view(&body), "event {i}");
        }
    }

    #[test]
    fn anything_unusual_is_left_to_prost() {
        let other = frame::encode_server_body(&server_frame::Body::PublishAck(pb::PublishAck { up_to: 3 }));
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
