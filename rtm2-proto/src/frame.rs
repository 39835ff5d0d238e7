//! Framing: `u32 little-endian length` + protobuf body.
//!
//! The decoder is incremental (feed it bytes split anywhere) and rejects a length above its
//! maximum before allocating anything for the body.
//!
//! Server frames are built in two parts so that a message fanned out to many subscribers is
//! encoded once: [`encode_server_body`] encodes the `body` oneof field once, and
//! [`write_server_frame`] writes the per-session prefix (length and `seq`) before the shared
//! bytes. Protobuf merges concatenated fields, so the result is an ordinary `ServerFrame`.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

use crate::fastpath::varint_len;
use crate::pb::{ClientFrame, ServerFrame, server_frame};

/// Bytes of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// A framing or decoding error. Any of them ends the session with a protocol error.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more than the receiver accepts.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Maximum accepted.
        max: usize,
    },
    /// The body is not a valid protobuf message of the expected type.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// The body decoded but lacks its required `body` field.
    #[error("frame has no body")]
    Empty,
}

/// Incremental frame splitter.
#[derive(Debug, Clone, Copy)]
pub struct FrameDecoder {
    max_len: usize,
}

impl FrameDecoder {
    /// A decoder accepting bodies of at most `max_len` bytes.
    pub fn new(max_len: usize) -> Self {
        FrameDecoder { max_len }
    }

    /// Whether `buf` starts with a complete frame (or a length prefix over the limit, which
    /// `decode` reports): decoding now would not need more bytes.
    pub fn has_frame(&self, buf: &[u8]) -> bool {
        if buf.len() < LEN_PREFIX {
            return false;
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        len > self.max_len || buf.len() >= LEN_PREFIX + len
    }

    /// The body length of the complete frame at the front of `buf`, without taking it off (the
    /// body is `buf[LEN_PREFIX..LEN_PREFIX + len]`), so a caller can read it in place.
    pub fn peek(&self, buf: &[u8]) -> Result<Option<usize>, FrameError> {
        if buf.len() < LEN_PREFIX {
            return Ok(None);
        }
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > self.max_len {
            return Err(FrameError::TooLarge { len, max: self.max_len });
        }
        Ok((buf.len() >= LEN_PREFIX + len).then_some(len))
    }

    /// Takes one complete frame body off the front of `buf`, if there is one.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(len) = self.peek(buf)? else {
            if buf.len() >= LEN_PREFIX {
                // Reserve only what the announced (already bounded) frame needs.
                let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                buf.reserve(LEN_PREFIX + len - buf.len());
            }
            return Ok(None);
        };
        buf.advance(LEN_PREFIX);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

/// Encodes a client frame with its length prefix.
pub fn encode_client(frame: &ClientFrame) -> Bytes {
    let len = frame.encoded_len();
    let mut buf = BytesMut::with_capacity(LEN_PREFIX + len);
    buf.put_u32_le(len as u32);
    frame.encode_raw(&mut buf);
    buf.freeze()
}

/// Appends a client frame with its length prefix to `buf`.
pub fn write_client_frame(buf: &mut BytesMut, frame: &ClientFrame) {
    let len = frame.encoded_len();
    buf.reserve(LEN_PREFIX + len);
    buf.put_u32_le(len as u32);
    frame.encode_raw(buf);
}

/// Writes `ClientFrame { request_id, body }` with its length prefix, as [`write_client_frame`]
/// does, from a borrowed body.
pub fn write_client_frame_parts(buf: &mut BytesMut, request_id: u64, body: &crate::pb::client_frame::Body) {
    let id_len = crate::fastpath::scalar_len(request_id);
    let len = id_len + body.encoded_len();
    buf.reserve(LEN_PREFIX + len);
    buf.put_u32_le(len as u32);
    if request_id != 0 {
        prost::encoding::uint64::encode(1, &request_id, buf);
    }
    body.encode(buf);
}

/// Decodes a client frame body (length prefix already removed).
pub fn decode_client(body: Bytes) -> Result<ClientFrame, FrameError> {
    let frame = ClientFrame::decode(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if frame.body.is_none() {
        return Err(FrameError::Empty);
    }
    Ok(frame)
}

/// Encodes the `body` field of a server frame once, to be shared by many sessions.
pub fn encode_server_body(body: &server_frame::Body) -> Bytes {
    let mut buf = BytesMut::with_capacity(body.encoded_len());
    body.encode(&mut buf);
    buf.freeze()
}

/// Appends one complete server frame: length prefix, `seq` (field 1), then the shared body.
pub fn write_server_frame(buf: &mut BytesMut, seq: u64, body: &[u8]) {
    let seq_len = if seq == 0 { 0 } else { 1 + varint_len(seq) };
    let len = seq_len + body.len();
    buf.reserve(LEN_PREFIX + len);
    buf.put_u32_le(len as u32);
    if seq != 0 {
        buf.put_u8(0x08); // field 1, wire type varint
        crate::fastpath::put_varint(buf, seq);
    }
    buf.put_slice(body);
}

/// Decodes a server frame body (length prefix already removed).
pub fn decode_server(body: Bytes) -> Result<ServerFrame, FrameError> {
    let frame = ServerFrame::decode(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if frame.body.is_none() {
        return Err(FrameError::Empty);
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{self, client_frame};

    #[test]
    fn a_frame_written_from_a_borrowed_body_is_the_same_frame() {
        let bodies = [
            client_frame::Body::PublishTopic(pb::PublishTopic {
                channel: "s".into(),
                topic: "t".into(),
                payload: bytes::Bytes::from_static(b"hello"),
                ..Default::default()
            }),
            client_frame::Body::Logout(pb::Logout {}),
        ];
        for body in bodies {
            for request_id in [0, 1, 300, u64::MAX] {
                let mut parts = BytesMut::new();
                write_client_frame_parts(&mut parts, request_id, &body);
                let mut whole = BytesMut::new();
                write_client_frame(&mut whole, &ClientFrame { request_id, body: Some(body.clone()) });
                assert_eq!(parts, whole);
            }
        }
    }

    #[test]
    fn client_frames_round_trip_when_split_anywhere() {
        let frame = ClientFrame {
            request_id: 7,
            body: Some(client_frame::Body::Publish(pb::Publish {
                channel: "room".into(),
                channel_type: 1,
                message_type: 1,
                payload: Bytes::from_static(b"hello"),
                custom_type: "text".into(),
                store_in_history: false,
                encryption: 0,
            })),
        };
        let mut wire = BytesMut::new();
        write_client_frame(&mut wire, &frame);
        write_client_frame(&mut wire, &frame);
        let wire = wire.freeze();
        let dec = FrameDecoder::new(1024);
        for split in 0..wire.len() {
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                buf.extend_from_slice(chunk);
                while let Some(body) = dec.decode(&mut buf).unwrap() {
                    out.push(decode_client(body).unwrap());
                }
            }
            assert_eq!(out, vec![frame.clone(), frame.clone()], "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn shared_body_with_seq_is_an_ordinary_server_frame() {
        let body = server_frame::Body::Message(pb::MessageEvent {
            channel_type: 1,
            channel: "c".into(),
            publisher: "alice".into(),
            payload: Bytes::from_static(b"hi"),
            ..Default::default()
        });
        let shared = encode_server_body(&body);
        for seq in [0u64, 1, 127, 128, 300, u64::MAX] {
            let mut buf = BytesMut::new();
            write_server_frame(&mut buf, seq, &shared);
            let dec = FrameDecoder::new(1 << 20);
            let got = decode_server(dec.decode(&mut buf).unwrap().unwrap()).unwrap();
            assert_eq!(got, ServerFrame { seq, body: Some(body.clone()) });
            assert_eq!(varint_len(seq), prost::encoding::encoded_len_varint(seq));
        }
    }

    #[test]
    fn oversize_length_is_rejected_before_the_body_arrives() {
        let dec = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&101u32.to_le_bytes()[..]);
        assert_eq!(dec.decode(&mut buf), Err(FrameError::TooLarge { len: 101, max: 100 }));
        let mut buf = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
        assert!(matches!(dec.decode(&mut buf), Err(FrameError::TooLarge { .. })));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_client(Bytes::from_static(&[0xff, 0xff, 0xff])).is_err());
        assert_eq!(decode_client(Bytes::new()), Err(FrameError::Empty));
        assert!(decode_server(Bytes::from_static(&[0x0a, 0x05, 0x01])).is_err());
    }
}
