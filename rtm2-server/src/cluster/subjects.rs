//! NATS subjects of the cluster. App ids, channel names and user ids are hex-encoded in them:
//! a subject token cannot hold every character those may contain.

pub(crate) fn hex(b: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(H[(x >> 4) as usize] as char);
        s.push(H[(x & 15) as usize] as char);
    }
    s
}

pub(crate) fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let v: Option<Vec<u8>> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect();
    String::from_utf8(v?).ok()
}

pub(crate) fn msg_subject(app: &str, channel: &str) -> String {
    format!("rtm2.v1.msg.{}.{}", hex(app.as_bytes()), hex(channel.as_bytes()))
}

/// A stream channel's topic messages (`<topic> <publisher>\n` + a MessageEvent body).
pub(crate) fn topic_subject(app: &str, channel: &str) -> String {
    format!("rtm2.v1.topic.{}.{}", hex(app.as_bytes()), hex(channel.as_bytes()))
}

/// `<topic hex> <publisher hex>\n<body>` -> (topic, publisher, body).
pub(crate) fn parse_topic_message(p: &bytes::Bytes) -> Option<(String, String, bytes::Bytes)> {
    let nl = p.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&p[..nl]).ok()?;
    let mut w = head.split(' ');
    let (topic, publisher) = (w.next().and_then(unhex)?, w.next().and_then(unhex)?);
    Some((topic, publisher, p.slice(nl + 1..)))
}

/// A batch of message-channel messages is at most this big (NATS refuses payloads over its
/// `max_payload`, 1 MB by default); a larger run is sent as several batches.
pub(crate) const MAX_BATCH: usize = 512 * 1024;

/// Packs `bodies` into batches: each body prefixed by its length (u32, big endian).
pub(crate) fn pack(bodies: &[bytes::Bytes]) -> Vec<bytes::Bytes> {
    use bytes::BufMut;
    let mut out = Vec::new();
    let total: usize = bodies.iter().map(|b| 4 + b.len()).sum();
    let mut buf = bytes::BytesMut::with_capacity(total.min(MAX_BATCH));
    for b in bodies {
        if !buf.is_empty() && buf.len() + 4 + b.len() > MAX_BATCH {
            out.push(buf.split().freeze());
        }
        buf.put_u32(b.len() as u32);
        buf.extend_from_slice(b);
    }
    if !buf.is_empty() {
        out.push(buf.freeze());
    }
    out
}

/// The bodies of a batch (slices of it, no copy); a truncated tail is dropped.
pub(crate) fn unpack(batch: &bytes::Bytes) -> Vec<bytes::Bytes> {
    let mut out = Vec::new();
    let mut at = 0;
    while batch.len() - at >= 4 {
        let n = u32::from_be_bytes([batch[at], batch[at + 1], batch[at + 2], batch[at + 3]]) as usize;
        if batch.len() - at - 4 < n {
            tracing::warn!("cluster: a truncated message batch from NATS");
            break;
        }
        out.push(batch.slice(at + 4..at + 4 + n));
        at += 4 + n;
    }
    out
}
