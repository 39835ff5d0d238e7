//! Allocation-free handling of the hottest frames: a client `Publish` read in place, and the
//! `MessageEvent` body it becomes written straight from borrowed slices.
//!
//! The decoder accepts only the plain shape an encoder produces (each known field at most once,
//! with its declared wire type, valid UTF-8, in-range scalars) and says `None` for anything else,
//! so that a caller falls back to the general prost decoder and every input behaves exactly as
//! before. When it says `Some`, prost decodes the same bytes to the same values (tested below and
//! by the `frame_decoder` fuzz harness).

use bytes::{BufMut, Bytes, BytesMut};

use crate::pb;

/// A `Publish` request borrowed from the bytes of its frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishRef<'a> {
    /// Message channel name, or the target user id for the user channel.
    pub channel: &'a str,
    /// Channel type as sent (1 MESSAGE, 3 USER, ...).
    pub channel_type: u32,
    /// Message type as sent (0 BINARY, 1 STRING, ...).
    pub message_type: u32,
    /// The message.
    pub payload: &'a [u8],
    /// customType ("" when absent).
    pub custom_type: &'a str,
    /// Whether history storage was asked for.
    pub store_in_history: bool,
    /// 0, or the encryption mode of an end-to-end encrypted payload (`Publish.encryption`).
    pub encryption: u32,
}

impl<'a> From<&'a pb::Publish> for PublishRef<'a> {
    fn from(p: &'a pb::Publish) -> Self {
        PublishRef {
            channel: &p.channel,
            channel_type: p.channel_type,
            message_type: p.message_type,
            payload: &p.payload,
            custom_type: &p.custom_type,
            store_in_history: p.store_in_history,
            encryption: p.encryption,
        }
    }
}

// Keys (field number << 3 | wire type) of the fields read here.
const KEY_REQUEST_ID: u64 = 1 << 3; // field 1, varint: ClientFrame.request_id (ServerFrame.seq too)
const KEY_PUBLISH: u64 = 22 << 3 | 2; // ClientFrame.publish, length-delimited
const KEY_CHANNEL: u64 = 1 << 3 | 2;
const KEY_CHANNEL_TYPE: u64 = 2 << 3;
const KEY_MESSAGE_TYPE: u64 = 3 << 3;
const KEY_PAYLOAD: u64 = 4 << 3 | 2;
const KEY_CUSTOM_TYPE: u64 = 5 << 3 | 2;
const KEY_STORE: u64 = 6 << 3;
const KEY_ENCRYPTION: u64 = 7 << 3;

/// A varint at `*pos`, as prost reads it (at most 10 bytes, the last one at most 1).
#[inline]
pub(crate) fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    // Most varints of these frames (keys, lengths, types) are one byte.
    let b = *buf.get(*pos)?;
    if b < 0x80 {
        *pos += 1;
        return Some(u64::from(b));
    }
    let mut v = u64::from(b & 0x7f);
    for i in 1..10 {
        let b = *buf.get(*pos + i)?;
        if i == 9 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            *pos += i + 1;
            return Some(v);
        }
    }
    None
}

pub(crate) fn delimited<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(varint(buf, pos)?).ok()?;
    let end = pos.checked_add(len).filter(|&e| e <= buf.len())?;
    let s = &buf[*pos..end];
    *pos = end;
    Some(s)
}

pub(crate) fn u32_field(buf: &[u8], pos: &mut usize) -> Option<u32> {
    u32::try_from(varint(buf, pos)?).ok()
}

/// Marks field `bit` seen; `None` if it was seen before (prost would merge: leave that to it).
pub(crate) fn once(seen: &mut u8, bit: u8) -> Option<()> {
    if *seen & bit != 0 {
        return None;
    }
    *seen |= bit;
    Some(())
}

/// Reads a `ClientFrame` body (length prefix removed) whose body is a `Publish`: its
/// `request_id` and the borrowed publish. `None` when the frame is anything else or not in the
/// plain shape (see the module doc): decode it with [`crate::frame::decode_client`] then.
pub fn decode_publish_frame(body: &[u8]) -> Option<(u64, PublishRef<'_>)> {
    let (request_id, publish) = envelope(body, KEY_PUBLISH)?;
    Some((request_id, decode_publish(publish)?))
}

/// The plain shape of both frame envelopes: field 1 (`request_id` or `seq`, a varint) and the
/// length-delimited body under `body_key`, each at most once, nothing else. Returns field 1
/// (0 when absent) and the body's bytes.
pub(crate) fn envelope(body: &[u8], body_key: u64) -> Option<(u64, &[u8])> {
    let (mut pos, mut seen) = (0usize, 0u8);
    let mut first = 0;
    let mut inner = None;
    while pos < body.len() {
        match varint(body, &mut pos)? {
            KEY_REQUEST_ID => {
                once(&mut seen, 1)?;
                first = varint(body, &mut pos)?;
            }
            k if k == body_key => {
                once(&mut seen, 2)?;
                inner = Some(delimited(body, &mut pos)?);
            }
            _ => return None,
        }
    }
    Some((first, inner?))
}

/// A length-delimited field holding valid UTF-8.
pub(crate) fn text<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    std::str::from_utf8(delimited(buf, pos)?).ok()
}

fn decode_publish(buf: &[u8]) -> Option<PublishRef<'_>> {
    let (mut pos, mut seen) = (0usize, 0u8);
    let mut p = PublishRef::default();
    while pos < buf.len() {
        match varint(buf, &mut pos)? {
            KEY_CHANNEL => {
                once(&mut seen, 1)?;
                p.channel = text(buf, &mut pos)?;
            }
            KEY_CHANNEL_TYPE => {
                once(&mut seen, 2)?;
                p.channel_type = u32_field(buf, &mut pos)?;
            }
            KEY_MESSAGE_TYPE => {
                once(&mut seen, 4)?;
                p.message_type = u32_field(buf, &mut pos)?;
            }
            KEY_PAYLOAD => {
                once(&mut seen, 8)?;
                p.payload = delimited(buf, &mut pos)?;
            }
            KEY_CUSTOM_TYPE => {
                once(&mut seen, 16)?;
                p.custom_type = text(buf, &mut pos)?;
            }
            KEY_STORE => {
                once(&mut seen, 32)?;
                p.store_in_history = match varint(buf, &mut pos)? {
                    0 => false,
                    1 => true,
                    _ => return None,
                };
            }
            KEY_ENCRYPTION => {
                once(&mut seen, 64)?;
                p.encryption = u32_field(buf, &mut pos)?;
            }
            _ => return None,
        }
    }
    Some(p)
}

/// A `MessageEvent` to encode from borrowed parts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageEventRef<'a> {
    /// 1 MESSAGE, 2 STREAM, 3 USER.
    pub channel_type: u32,
    /// Channel name (the target user id for the user channel).
    pub channel: &'a str,
    /// Topic ("" outside stream channels).
    pub topic: &'a str,
    /// Publishing user id.
    pub publisher: &'a str,
    /// 0 BINARY, 1 STRING.
    pub message_type: u32,
    /// The message.
    pub payload: &'a [u8],
    /// customType ("" when absent).
    pub custom_type: &'a str,
    /// Server time of the publish.
    pub timestamp_ms: u64,
    /// 0, or the encryption mode of an end-to-end encrypted payload.
    pub encryption: u32,
    /// The message is in its channel's history (`timestamp_ms` is its key there).
    pub stored: bool,
}

/// The encoded size of varint `v`.
#[inline]
pub(crate) fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros()).div_ceil(7) as usize
}

/// Appends varint `v` a byte at a time: a varint is at most 10 bytes, and copying it from a
/// scratch array would be a call to `memcpy` for a handful of bytes (it showed in profiles).
#[inline]
pub(crate) fn put_varint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

// Proto3 leaves default values out; these give a field's encoded size (key of one byte).
#[inline]
pub(crate) fn scalar_len(v: u64) -> usize {
    if v == 0 { 0 } else { 1 + varint_len(v) }
}

#[inline]
pub(crate) fn bytes_len(b: &[u8]) -> usize {
    if b.is_empty() { 0 } else { 1 + varint_len(b.len() as u64) + b.len() }
}

#[inline]
pub(crate) fn put_scalar(buf: &mut BytesMut, key: u8, v: u64) {
    if v != 0 {
        buf.put_u8(key);
        put_varint(buf, v);
    }
}

#[inline]
pub(crate) fn put_bytes(buf: &mut BytesMut, key: u8, b: &[u8]) {
    if !b.is_empty() {
        buf.put_u8(key);
        put_varint(buf, b.len() as u64);
        buf.put_slice(b);
    }
}

/// Encodes `server_frame::Body::Message` from borrowed parts: the same bytes as
/// `frame::encode_server_body` of the owned message, without building it.
pub fn encode_message_body(m: &MessageEventRef<'_>) -> Bytes {
    let inner = scalar_len(m.channel_type.into())
        + bytes_len(m.channel.as_bytes())
        + bytes_len(m.topic.as_bytes())
        + bytes_len(m.publisher.as_bytes())
        + scalar_len(m.message_type.into())
        + bytes_len(m.payload)
        + bytes_len(m.custom_type.as_bytes())
        + scalar_len(m.timestamp_ms)
        + scalar_len(m.encryption.into())
        + scalar_len(m.stored.into());
    let mut buf = BytesMut::with_capacity(2 + varint_len(inner as u64) + inner);
    // ServerFrame.message: field 20, length-delimited (a two-byte key).
    put_varint(&mut buf, 20 << 3 | 2);
    put_varint(&mut buf, inner as u64);
    put_scalar(&mut buf, 1 << 3, m.channel_type.into());
    put_bytes(&mut buf, 2 << 3 | 2, m.channel.as_bytes());
    put_bytes(&mut buf, 3 << 3 | 2, m.topic.as_bytes());
    put_bytes(&mut buf, 4 << 3 | 2, m.publisher.as_bytes());
    put_scalar(&mut buf, 5 << 3, m.message_type.into());
    put_bytes(&mut buf, 6 << 3 | 2, m.payload);
    put_bytes(&mut buf, 7 << 3 | 2, m.custom_type.as_bytes());
    put_scalar(&mut buf, 8 << 3, m.timestamp_ms);
    put_scalar(&mut buf, 9 << 3, m.encryption.into());
    put_scalar(&mut buf, 10 << 3, m.stored.into());
    debug_assert_eq!(buf.len(), buf.capacity());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode_client, encode_client, encode_server_body};
    use crate::pb::{ClientFrame, client_frame, server_frame};
    use prost::Message;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// What prost makes of `body`, as the fast decoder would report it.
    fn prost_view(body: &[u8]) -> Option<(u64, pb::Publish)> {
        match decode_client(Bytes::copy_from_slice(body)) {
            Ok(ClientFrame { request_id, body: Some(client_frame::Body::Publish(p)) }) => Some((request_id, p)),
            _ => None,
        }
    }

    #[test]
    fn varints_are_written_and_read_as_prost_does() {
        let mut values: Vec<u64> =
            vec![0, 1, 127, 128, 255, 300, 16383, 16384, u32::MAX as u64, u64::MAX - 1, u64::MAX];
        values.extend((1..64).flat_map(|b| [(1u64 << b) - 1, 1u64 << b, (1u64 << b) + 1]));
        for v in values {
            let mut ours = BytesMut::new();
            put_varint(&mut ours, v);
            let mut theirs = BytesMut::new();
            prost::encoding::encode_varint(v, &mut theirs);
            assert_eq!(ours, theirs, "{v}");
            assert_eq!(varint_len(v), theirs.len(), "{v}");
            let mut pos = 0;
            assert_eq!(varint(&ours, &mut pos), Some(v));
            assert_eq!(pos, ours.len());
            for cut in 0..ours.len() {
                assert_eq!(varint(&ours[..cut], &mut 0), None, "{v} cut at {cut}");
            }
        }
        // Ten bytes whose last one is above 1 overflow u64: prost refuses them, so do we.
        assert_eq!(varint(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], &mut 0), None);
        assert_eq!(varint(&[0x80; 11], &mut 0), None);
    }

    /// The property: whatever the fast decoder accepts, prost decodes to the same values.
    fn check_agrees(body: &[u8]) -> bool {
        let Some((rid, fast)) = decode_publish_frame(body) else { return false };
        let (prid, p) = prost_view(body).unwrap_or_else(|| panic!("fast accepted what prost refuses: {body:02x?}"));
        assert_eq!((rid, fast), (prid, PublishRef::from(&p)), "{body:02x?}");
        true
    }

    fn random_string(rng: &mut StdRng, max: usize) -> String {
        let n = rng.random_range(0..=max);
        (0..n)
            .map(|_| match rng.random_range(0..10) {
                0 => 'é',
                1 => '中',
                _ => rng.random_range(b' '..=b'~') as char,
            })
            .collect()
    }

    fn random_publish(rng: &mut StdRng) -> ClientFrame {
        let big = |rng: &mut StdRng| if rng.random_bool(0.2) { rng.random() } else { rng.random_range(0..5) };
        let payload: Vec<u8> = (0..rng.random_range(0..300)).map(|_| rng.random()).collect();
        ClientFrame {
            request_id: if rng.random_bool(0.1) {
                0
            } else {
                let shift = rng.random_range(0..64);
                rng.random_range(0..u64::MAX >> shift)
            },
            body: Some(client_frame::Body::Publish(pb::Publish {
                channel: random_string(rng, 70),
                channel_type: big(rng),
                message_type: big(rng),
                payload: payload.into(),
                custom_type: random_string(rng, 40),
                store_in_history: rng.random_bool(0.3),
                encryption: if rng.random_bool(0.7) { 0 } else { rng.random_range(0..4) },
            })),
        }
    }

    #[test]
    fn encoder_output_is_taken_by_the_fast_path() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..5000 {
            let f = random_publish(&mut rng);
            let wire = encode_client(&f);
            assert!(check_agrees(&wire[4..]), "{f:?}");
        }
        // An empty Publish and a frame without a request id are plain too.
        let f = ClientFrame { request_id: 0, body: Some(client_frame::Body::Publish(pb::Publish::default())) };
        assert!(check_agrees(&encode_client(&f)[4..]));
    }

    #[test]
    fn mutated_frames_are_either_identical_to_prost_or_refused() {
        let mut rng = StdRng::seed_from_u64(11);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..40_000 {
            let f = random_publish(&mut rng);
            let mut body = encode_client(&f)[4..].to_vec();
            for _ in 0..rng.random_range(1..4) {
                match rng.random_range(0..6) {
                    0 if !body.is_empty() => {
                        let i = rng.random_range(0..body.len());
                        body[i] = rng.random();
                    }
                    1 if !body.is_empty() => {
                        let i = rng.random_range(0..body.len());
                        body[i] ^= 1 << rng.random_range(0..8);
                    }
                    2 => body.truncate(rng.random_range(0..=body.len())),
                    3 => {
                        let i = rng.random_range(0..=body.len());
                        body.insert(i, rng.random());
                    }
                    4 => {
                        // A copy of a stretch of itself (repeated fields).
                        let a = rng.random_range(0..=body.len());
                        let b = rng.random_range(a..=body.len());
                        let piece = body[a..b].to_vec();
                        body.extend_from_slice(&piece);
                    }
                    _ => body.push(rng.random()),
                }
            }
            if check_agrees(&body) { accepted += 1 } else { refused += 1 }
        }
        // Both outcomes are exercised.
        assert!(accepted > 1000 && refused > 1000, "accepted {accepted}, refused {refused}");
    }

    #[test]
    fn unusual_shapes_fall_back() {
        let publish = |rid: u64, p: pb::Publish| {
            encode_client(&ClientFrame { request_id: rid, body: Some(client_frame::Body::Publish(p)) })[4..].to_vec()
        };
        let p = pb::Publish { channel: "c".into(), payload: Bytes::from_static(b"x"), ..Default::default() };
        let plain = publish(5, p.clone());
        assert!(decode_publish_frame(&plain).is_some());

        // Unknown field (prost would skip it): fall back.
        let mut unknown = plain.clone();
        unknown.extend_from_slice(&[0x78, 0x01]); // field 15, varint
        assert!(decode_publish_frame(&unknown).is_none());
        assert!(prost_view(&unknown).is_some());
        // Repeated request_id (prost: last wins) and repeated Publish (prost: merged).
        let mut twice = plain.clone();
        twice.extend_from_slice(&[0x08, 0x09]);
        assert!(decode_publish_frame(&twice).is_none());
        assert_eq!(prost_view(&twice).unwrap().0, 9);
        let doubled = [plain.clone(), plain.clone()].concat();
        assert!(decode_publish_frame(&doubled).is_none());
        // A field inside Publish repeated.
        let inner = [0x0a, 0x01, b'a', 0x0a, 0x01, b'b'];
        let frame = [&[0x08, 0x01, 0xb2, 0x01, inner.len() as u8][..], &inner].concat();
        assert!(decode_publish_frame(&frame).is_none());
        assert_eq!(prost_view(&frame).unwrap().1.channel, "b");
        // Wire-type mismatch: channel_type sent length-delimited.
        let frame = [0x08, 0x01, 0xb2, 0x01, 0x03, 0x12, 0x01, 0x01];
        assert!(decode_publish_frame(&frame).is_none());
        // Non-UTF-8 channel and customType.
        for key in [0x0a, 0x2a] {
            let frame = [0x08, 0x01, 0xb2, 0x01, 0x03, key, 0x01, 0xff];
            assert!(decode_publish_frame(&frame).is_none());
            assert!(prost_view(&frame).is_none());
        }
        // Scalars out of range: a u32 above u32::MAX (prost truncates) and a bool of 2.
        let frame = [0x08, 0x01, 0xb2, 0x01, 0x06, 0x10, 0x80, 0x80, 0x80, 0x80, 0x10];
        assert!(decode_publish_frame(&frame).is_none());
        assert_eq!(prost_view(&frame).unwrap().1.channel_type, 0);
        let frame = [0x08, 0x01, 0xb2, 0x01, 0x02, 0x30, 0x02];
        assert!(decode_publish_frame(&frame).is_none());
        assert!(prost_view(&frame).unwrap().1.store_in_history);
        // Other bodies, an empty frame, and a frame with only a request id.
        let ping =
            encode_client(&ClientFrame { request_id: 0, body: Some(client_frame::Body::Ping(pb::Ping::default())) });
        assert!(decode_publish_frame(&ping[4..]).is_none());
        assert!(decode_publish_frame(&[]).is_none());
        assert!(decode_publish_frame(&[0x08, 0x01]).is_none());
        // Over-long but valid varints read as prost reads them.
        let frame = [0x88, 0x00, 0x85, 0x80, 0x00, 0xb2, 0x01, 0x00];
        assert!(check_agrees(&frame));
        assert_eq!(decode_publish_frame(&frame).unwrap().0, 5);
        // A varint of 11 bytes, or with a 10th byte above 1, is refused (prost errors too).
        let frame = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0xb2, 0x01, 0x00];
        assert!(decode_publish_frame(&frame).is_none());
        assert!(prost_view(&frame).is_none());
        let frame = [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0xb2, 0x01, 0x00];
        assert!(check_agrees(&frame));
        assert_eq!(decode_publish_frame(&frame).unwrap().0, u64::MAX);
    }

    #[test]
    fn message_body_matches_prost_byte_for_byte() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut cases = vec![pb::MessageEvent::default()];
        for _ in 0..3000 {
            let big_payload = rng.random_bool(0.05);
            let n = if big_payload { rng.random_range(100..40_000) } else { rng.random_range(0..200) };
            cases.push(pb::MessageEvent {
                channel_type: if rng.random_bool(0.3) { 0 } else { rng.random() },
                channel: random_string(&mut rng, 70),
                topic: random_string(&mut rng, 20),
                publisher: random_string(&mut rng, 70),
                message_type: if rng.random_bool(0.3) { 0 } else { rng.random_range(0..3) },
                payload: (0..n).map(|_| rng.random()).collect::<Vec<u8>>().into(),
                custom_type: random_string(&mut rng, 40),
                timestamp_ms: if rng.random_bool(0.1) { 0 } else { rng.random() },
                encryption: if rng.random_bool(0.7) { 0 } else { rng.random_range(1..3) },
                stored: rng.random_bool(0.2),
            });
        }
        for m in cases {
            let fast = encode_message_body(&MessageEventRef {
                channel_type: m.channel_type,
                channel: &m.channel,
                topic: &m.topic,
                publisher: &m.publisher,
                message_type: m.message_type,
                payload: &m.payload,
                custom_type: &m.custom_type,
                timestamp_ms: m.timestamp_ms,
                encryption: m.encryption,
                stored: m.stored,
            });
            assert_eq!(fast, encode_server_body(&server_frame::Body::Message(m.clone())), "{m:?}");
            assert_eq!(pb::ServerFrame::decode(fast).unwrap().body, Some(server_frame::Body::Message(m)));
        }
    }
}
