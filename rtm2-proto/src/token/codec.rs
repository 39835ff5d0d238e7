//! The byte codec of a token: size guard, strict base64, capped zlib inflate, and the
//! bounds-checked body reader that parses the fields (nothing is verified here).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::{Decompress, FlushDecompress, Status};

use super::*;

pub(super) fn malformed(msg: impl Into<String>) -> TokenError {
    TokenError::Malformed(msg.into())
}

/// Size guard, version check and strict base64 decoding of the token.
pub(super) fn decode_base64(token: &str) -> Result<Vec<u8>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed(format!("token too long ({} > {MAX_TOKEN_LEN} chars)", token.len())));
    }
    if token.is_empty() {
        return Err(malformed("empty token"));
    }
    let payload = token.strip_prefix(TOKEN_VERSION).ok_or(TokenError::UnsupportedVersion)?;
    if payload.is_empty() {
        return Err(malformed("empty token payload"));
    }
    // The STANDARD engine requires canonical padding and rejects the URL-safe
    // alphabet, whitespace and non-zero trailing bits.
    BASE64.decode(payload).map_err(|e| malformed(format!("invalid base64: {e}")))
}

/// Inflate a complete zlib stream (Adler-32 checked), capping the output at
/// [`MAX_INFLATED_LEN`] and rejecting truncated streams and trailing data.
pub(super) fn inflate(input: &[u8]) -> Result<Vec<u8>, TokenError> {
    let mut decoder = Decompress::new(true);
    let mut out = Vec::with_capacity(input.len().saturating_mul(2).min(MAX_INFLATED_LEN));
    let mut chunk = [0u8; 4096];
    loop {
        let in_before = decoder.total_in();
        let out_before = decoder.total_out();
        let consumed_so_far = usize::try_from(in_before).unwrap_or(usize::MAX);
        let rest = input.get(consumed_so_far..).unwrap_or(&[]);
        let status = decoder
            .decompress(rest, &mut chunk, FlushDecompress::None)
            .map_err(|e| malformed(format!("invalid zlib stream: {e}")))?;
        let produced = usize::try_from(decoder.total_out() - out_before).unwrap_or(usize::MAX);
        let consumed = decoder.total_in() - in_before;
        if produced > MAX_INFLATED_LEN - out.len() {
            return Err(malformed(format!("inflated body exceeds {MAX_INFLATED_LEN} bytes")));
        }
        out.extend_from_slice(chunk.get(..produced).unwrap_or(&[]));
        match status {
            Status::StreamEnd => break,
            Status::Ok | Status::BufError => {
                if produced == 0 && consumed == 0 {
                    return Err(malformed("truncated zlib stream"));
                }
            }
        }
    }
    if decoder.total_in() != input.len() as u64 {
        return Err(malformed("trailing data after zlib stream"));
    }
    Ok(out)
}

/// Return the decompressed body of a token (size guard, version check,
/// strict base64, capped zlib inflate). Useful for comparing builders, since
/// different deflate implementations produce different token strings.
pub fn decompress_body(token: &str) -> Result<Vec<u8>, TokenError> {
    let compressed = decode_base64(token)?;
    inflate(&compressed)
}

/// Bounds-checked little-endian reader over the body.
pub(super) struct Reader<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(super) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], TokenError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| malformed(format!("truncated body while reading {what}")))?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    pub(super) fn u16(&mut self, what: &str) -> Result<u16, TokenError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(super) fn i16(&mut self, what: &str) -> Result<i16, TokenError> {
        let b = self.take(2, what)?;
        Ok(i16::from_le_bytes([b[0], b[1]]))
    }

    pub(super) fn u32(&mut self, what: &str) -> Result<u32, TokenError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn bytes(&mut self, what: &str) -> Result<&'a [u8], TokenError> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    pub(super) fn string(&mut self, what: &str) -> Result<String, TokenError> {
        let raw = self.bytes(what)?;
        std::str::from_utf8(raw).map(str::to_owned).map_err(|_| malformed(format!("{what} is not valid UTF-8")))
    }

    pub(super) fn privileges(&mut self) -> Result<Vec<(u16, u32)>, TokenError> {
        let count = self.u16("privilege count")?;
        // Each entry is 6 bytes; reject impossible counts before allocating.
        let remaining = self.buf.len() - self.pos;
        if usize::from(count) * 6 > remaining {
            return Err(malformed("truncated body while reading privileges"));
        }
        let mut out = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let id = self.u16("privilege id")?;
            let value = self.u32("privilege value")?;
            out.push((id, value));
        }
        Ok(out)
    }
}

/// Parse one service body after its type; `None` for an unknown type.
pub(super) fn parse_service(r: &mut Reader<'_>, service_type: u16) -> Result<Option<Service>, TokenError> {
    if !(1..=10).contains(&service_type) {
        return Ok(None);
    }
    let privileges = r.privileges()?;
    let service = match service_type {
        SERVICE_RTC => {
            let channel = r.string("RTC channel name")?;
            let uid = r.string("RTC uid")?;
            Service::Rtc { privileges, channel, uid }
        }
        SERVICE_RTM => {
            let user_id = r.string("RTM user id")?;
            Service::Rtm { privileges, user_id }
        }
        other => {
            match other {
                // Streaming, FCDN: channel name, account.
                3 | 6 => {
                    r.bytes("channel name")?;
                    r.bytes("account")?;
                }
                // FPA, ConvoAI, STT: privileges only.
                4 | 9 | 10 => {}
                // Chat: user id.
                5 => {
                    r.bytes("chat user id")?;
                }
                // APaaS: room uuid, user uuid, role.
                7 => {
                    r.bytes("room uuid")?;
                    r.bytes("user uuid")?;
                    r.i16("role")?;
                }
                // RTM2: user id, then nested resource permissions.
                _ => {
                    r.bytes("RTM2 user id")?;
                    let resources = r.u16("RTM2 resource count")?;
                    for _ in 0..resources {
                        r.u16("RTM2 resource type")?;
                        let perms = r.u16("RTM2 permission count")?;
                        for _ in 0..perms {
                            r.u16("RTM2 permission type")?;
                            let names = r.u16("RTM2 name count")?;
                            for _ in 0..names {
                                r.bytes("RTM2 resource name")?;
                            }
                        }
                    }
                }
            }
            Service::Other { service_type: other, privileges }
        }
    };
    Ok(Some(service))
}

/// Decode `"007" + base64(zlib(body))` without checking the signature.
///
/// The input is size-capped ([`MAX_TOKEN_LEN`]), base64 must be standard and
/// padded, the inflated body is capped ([`MAX_INFLATED_LEN`]) and data after
/// the zlib stream is rejected. Every read is bounds-checked. Services of
/// types 1..=10 are decoded; parsing stops at the first unknown service type
/// (its length is unknowable), which the signature still covers.
pub fn parse(token: &str) -> Result<ParsedToken, TokenError> {
    let body = decompress_body(token)?;
    parse_body(&body)
}

pub(super) fn parse_body(body: &[u8]) -> Result<ParsedToken, TokenError> {
    let mut r = Reader::new(body);
    let signature = r.bytes("signature")?.to_vec();
    let signed = body[r.pos..].to_vec();

    let app_id = r.string("app id")?;
    let issue_ts = r.u32("issue ts")?;
    let expire = r.u32("expire")?;
    let salt = r.u32("salt")?;
    let count = r.u16("service count")?;
    let mut services = Vec::new();
    for _ in 0..count {
        let service_type = r.u16("service type")?;
        match parse_service(&mut r, service_type)? {
            Some(service) => services.push(service),
            None => break,
        }
    }
    Ok(ParsedToken { signature, app_id, issue_ts, expire, salt, services, signed })
}
