//! Agora AccessToken2 ("007") tokens: parsing, building and verification.
//!
//! Wire format (all integers little-endian, see `reference/accesstoken2.md`):
//!
//! ```text
//! token   = "007" || base64_std(zlib(body))
//! body    = bytes(signature) || signed
//! signed  = string(appId) || u32 issueTs || u32 expire || u32 salt
//!           || u16 serviceCount || service*
//! service = u16 type || privmap || type-specific fields
//! ```
//!
//! The signature is `HMAC-SHA256(k2, signed)` where
//! `k1 = HMAC-SHA256(u32le(issueTs), certificate)` and
//! `k2 = HMAC-SHA256(u32le(salt), k1)`; the certificate is used as its ASCII
//! text. Expiry values (`expire` and privilege values) are seconds relative to
//! `issueTs`.
//!
//! Verification always checks the HMAC over the raw `signed` bytes taken from
//! the decompressed body, never over a re-serialisation of the parsed fields.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::{Compression, Decompress, FlushDecompress, Status};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Version prefix of AccessToken2 tokens.
pub const TOKEN_VERSION: &str = "007";
/// Largest accepted token length in characters (bytes; valid tokens are ASCII).
pub const MAX_TOKEN_LEN: usize = 4096;
/// Largest accepted decompressed body in bytes (zip-bomb guard).
pub const MAX_INFLATED_LEN: usize = 64 * 1024;
/// A token whose `issueTs` lies more than this many seconds in the future is
/// rejected with [`TokenError::NotYetValid`].
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// Service type of the RTC service.
pub const SERVICE_RTC: u16 = 1;
/// Service type of the RTM service.
pub const SERVICE_RTM: u16 = 2;
/// RTM privilege id: login.
pub const PRIVILEGE_RTM_LOGIN: u16 = 1;
/// RTC privilege id: join channel.
pub const PRIVILEGE_RTC_JOIN_CHANNEL: u16 = 1;

/// Length of an HMAC-SHA256 signature.
const SIGNATURE_LEN: usize = 32;
/// Largest value a `u16` length prefix can describe.
const MAX_FIELD_LEN: usize = u16::MAX as usize;
/// Random salt range used by the official builders.
const SALT_MIN: u32 = 1;
const SALT_MAX: u32 = 99_999_999;

/// Errors produced while parsing, building or verifying a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token does not start with the `007` version prefix.
    #[error("unsupported token version (expected \"007\")")]
    UnsupportedVersion,
    /// The token could not be decoded (size, base64, zlib or body layout).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The signature does not match any configured certificate.
    #[error("token signature is invalid")]
    BadSignature,
    /// The token was issued for a different App ID.
    #[error("token app id does not match")]
    AppIdMismatch,
    /// The token carries no RTM service.
    #[error("token has no RTM service")]
    NoRtmService,
    /// The token carries no RTC service.
    #[error("token has no RTC service")]
    NoRtcService,
    /// The token was issued for a different user.
    #[error("token user id does not match")]
    UserMismatch,
    /// The token was issued for a different channel.
    #[error("token channel does not match")]
    ChannelMismatch,
    /// The matching service lacks the required login / join privilege.
    #[error("token lacks the required login/join privilege")]
    NoLoginPrivilege,
    /// The token or its privilege has expired.
    #[error("token has expired")]
    Expired,
    /// The token's issue time lies too far in the future.
    #[error("token is not yet valid (issue time in the future)")]
    NotYetValid,
    /// The caller passed invalid input (for example a malformed App ID).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// One parsed service of a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// RTC service (type 1).
    Rtc {
        /// `(privilege id, seconds relative to issueTs)` pairs, in wire order.
        privileges: Vec<(u16, u32)>,
        /// Channel name.
        channel: String,
        /// User id as text (numeric uid 0 is encoded as the empty string).
        uid: String,
    },
    /// RTM service (type 2).
    Rtm {
        /// `(privilege id, seconds relative to issueTs)` pairs, in wire order.
        privileges: Vec<(u16, u32)>,
        /// The user id the token was issued for.
        user_id: String,
    },
    /// Any other known service type (3..=10); its extra fields are skipped.
    Other {
        /// The service type number.
        service_type: u16,
        /// `(privilege id, seconds relative to issueTs)` pairs, in wire order.
        privileges: Vec<(u16, u32)>,
    },
}

/// A decoded token. Produced by [`parse`]; the signature is *not* checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedToken {
    /// The signature bytes (32 bytes in any valid token).
    pub signature: Vec<u8>,
    /// The App ID the token was issued for, as given by the issuer.
    pub app_id: String,
    /// Issue time in Unix seconds.
    pub issue_ts: u32,
    /// Token lifetime in seconds relative to `issue_ts`.
    pub expire: u32,
    /// Random salt.
    pub salt: u32,
    /// Services, in wire order. Parsing stops at the first unknown service type.
    pub services: Vec<Service>,
    /// The raw signed bytes: everything in the body after the signature field.
    pub signed: Vec<u8>,
}

/// Result of a successful verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Issue time of the token in Unix seconds.
    pub issue_ts: u64,
    /// Unix seconds after which the token/privilege is expired
    /// (`now > expires_at` means expired).
    pub expires_at: u64,
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

fn malformed(msg: impl Into<String>) -> TokenError {
    TokenError::Malformed(msg.into())
}

/// Size guard, version check and strict base64 decoding of the token.
fn decode_base64(token: &str) -> Result<Vec<u8>, TokenError> {
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
fn inflate(input: &[u8]) -> Result<Vec<u8>, TokenError> {
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
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], TokenError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| malformed(format!("truncated body while reading {what}")))?;
        let slice = &self.buf[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn u16(&mut self, what: &str) -> Result<u16, TokenError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn i16(&mut self, what: &str) -> Result<i16, TokenError> {
        let b = self.take(2, what)?;
        Ok(i16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, TokenError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], TokenError> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    fn string(&mut self, what: &str) -> Result<String, TokenError> {
        let raw = self.bytes(what)?;
        std::str::from_utf8(raw).map(str::to_owned).map_err(|_| malformed(format!("{what} is not valid UTF-8")))
    }

    fn privileges(&mut self) -> Result<Vec<(u16, u32)>, TokenError> {
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
fn parse_service(r: &mut Reader<'_>, service_type: u16) -> Result<Option<Service>, TokenError> {
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

fn parse_body(body: &[u8]) -> Result<ParsedToken, TokenError> {
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

// ---------------------------------------------------------------------------
// Signing
// ---------------------------------------------------------------------------

fn new_mac(key: &[u8]) -> Result<HmacSha256, TokenError> {
    // HMAC accepts keys of any length, so this never fails in practice.
    <HmacSha256 as Mac>::new_from_slice(key).map_err(|_| TokenError::InvalidInput("invalid HMAC key".into()))
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Result<[u8; 32], TokenError> {
    let mut mac = new_mac(key)?;
    mac.update(msg);
    Ok(mac.finalize().into_bytes().into())
}

/// `k2 = HMAC(u32le(salt), HMAC(u32le(issueTs), certificate))`.
fn signing_key(certificate: &str, issue_ts: u32, salt: u32) -> Result<[u8; 32], TokenError> {
    let k1 = hmac_sha256(&issue_ts.to_le_bytes(), certificate.as_bytes())?;
    hmac_sha256(&salt.to_le_bytes(), &k1)
}

fn sign(certificate: &str, issue_ts: u32, salt: u32, signed: &[u8]) -> Result<[u8; 32], TokenError> {
    let k2 = signing_key(certificate, issue_ts, salt)?;
    hmac_sha256(&k2, signed)
}

// ---------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_credentials(app_id: &str, app_certificate: &str) -> Result<(), TokenError> {
    if !is_hex32(app_id) {
        return Err(TokenError::InvalidInput("app id must be 32 hex characters".into()));
    }
    if !is_hex32(app_certificate) {
        return Err(TokenError::InvalidInput("app certificate must be 32 hex characters".into()));
    }
    Ok(())
}

/// Little-endian body writer.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes(&mut self, what: &str, v: &[u8]) -> Result<(), TokenError> {
        let len = u16::try_from(v.len())
            .map_err(|_| TokenError::InvalidInput(format!("{what} longer than {MAX_FIELD_LEN} bytes")))?;
        self.u16(len);
        self.buf.extend_from_slice(v);
        Ok(())
    }

    fn privileges(&mut self, privileges: &[(u16, u32)]) -> Result<(), TokenError> {
        let mut sorted = privileges.to_vec();
        sorted.sort_by_key(|&(id, _)| id);
        let count = u16::try_from(sorted.len()).map_err(|_| TokenError::InvalidInput("too many privileges".into()))?;
        self.u16(count);
        for (id, value) in sorted {
            self.u16(id);
            self.u32(value);
        }
        Ok(())
    }
}

/// Serialise, sign, compress and encode a token. Services are emitted in
/// ascending type order (stable). Only `Rtc`, `Rtm` and `Other` types without
/// extra fields (4, 9, 10) can be serialised.
fn encode_token(
    app_id: &str,
    app_certificate: &str,
    issue_ts: u32,
    expire: u32,
    salt: u32,
    services: &[Service],
) -> Result<String, TokenError> {
    check_credentials(app_id, app_certificate)?;
    if services.is_empty() {
        return Err(TokenError::InvalidInput("token needs a service".into()));
    }
    let mut ordered: Vec<&Service> = services.iter().collect();
    ordered.sort_by_key(|s| service_type(s));

    let mut w = Writer::default();
    w.bytes("app id", app_id.as_bytes())?;
    w.u32(issue_ts);
    w.u32(expire);
    w.u32(salt);
    let count = u16::try_from(ordered.len()).map_err(|_| TokenError::InvalidInput("too many services".into()))?;
    w.u16(count);
    for service in ordered {
        w.u16(service_type(service));
        match service {
            Service::Rtc { privileges, channel, uid } => {
                w.privileges(privileges)?;
                w.bytes("channel", channel.as_bytes())?;
                w.bytes("uid", uid.as_bytes())?;
            }
            Service::Rtm { privileges, user_id } => {
                w.privileges(privileges)?;
                w.bytes("user id", user_id.as_bytes())?;
            }
            Service::Other { service_type: 4 | 9 | 10, privileges } => w.privileges(privileges)?,
            Service::Other { service_type, .. } => {
                return Err(TokenError::InvalidInput(format!("cannot serialise service type {service_type}")));
            }
        }
    }
    let signed = w.buf;
    let signature = sign(app_certificate, issue_ts, salt, &signed)?;
    let mut body = Writer::default();
    body.bytes("signature", &signature)?;
    body.buf.extend_from_slice(&signed);
    encode_body(&body.buf)
}

fn service_type(service: &Service) -> u16 {
    match service {
        Service::Rtc { .. } => SERVICE_RTC,
        Service::Rtm { .. } => SERVICE_RTM,
        Service::Other { service_type, .. } => *service_type,
    }
}

/// `"007" + base64(zlib_level6(body))`.
fn encode_body(body: &[u8]) -> Result<String, TokenError> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), Compression::new(6));
    encoder.write_all(body).map_err(|e| TokenError::InvalidInput(format!("compression failed: {e}")))?;
    let compressed = encoder.finish().map_err(|e| TokenError::InvalidInput(format!("compression failed: {e}")))?;
    Ok(format!("{TOKEN_VERSION}{}", BASE64.encode(compressed)))
}

fn now_u32() -> Result<u32, TokenError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| TokenError::InvalidInput("system clock is before 1970".into()))?
        .as_secs();
    u32::try_from(secs).map_err(|_| TokenError::InvalidInput("system clock beyond u32".into()))
}

fn random_salt() -> u32 {
    rand::random_range(SALT_MIN..=SALT_MAX)
}

/// Build an RTM login token with a given issue time and salt (deterministic).
///
/// The token has one RTM service with the login privilege set to
/// `expire_secs`; `expire_secs` is also the token lifetime, relative to
/// `issue_ts`. `app_id` and `app_certificate` must be 32 hex characters
/// (either case) and `user_id` at most 65535 bytes, else
/// [`TokenError::InvalidInput`].
pub fn build_rtm_token_with(
    app_id: &str,
    app_certificate: &str,
    user_id: &str,
    expire_secs: u32,
    issue_ts: u32,
    salt: u32,
) -> Result<String, TokenError> {
    let services = [Service::Rtm { privileges: vec![(PRIVILEGE_RTM_LOGIN, expire_secs)], user_id: user_id.to_owned() }];
    encode_token(app_id, app_certificate, issue_ts, expire_secs, salt, &services)
}

/// Build an RTM login token issued now (system clock) with a random salt in
/// `1..=99_999_999`. See [`build_rtm_token_with`].
pub fn build_rtm_token(
    app_id: &str,
    app_certificate: &str,
    user_id: &str,
    expire_secs: u32,
) -> Result<String, TokenError> {
    build_rtm_token_with(app_id, app_certificate, user_id, expire_secs, now_u32()?, random_salt())
}

/// Build a stream-channel token with a given issue time and salt
/// (deterministic).
///
/// Like the official `buildTokenWithRtm`, it holds one RTC service
/// (privilege joinChannel = `expire_secs`, `channel`, uid = `user_id` as text)
/// and one RTM service (login = `expire_secs`, `user_id`), in ascending type
/// order. Input validation as in [`build_rtm_token_with`]; `channel` is also
/// limited to 65535 bytes.
pub fn build_stream_token_with(
    app_id: &str,
    app_certificate: &str,
    channel: &str,
    user_id: &str,
    expire_secs: u32,
    issue_ts: u32,
    salt: u32,
) -> Result<String, TokenError> {
    let services = [
        Service::Rtc {
            privileges: vec![(PRIVILEGE_RTC_JOIN_CHANNEL, expire_secs)],
            channel: channel.to_owned(),
            uid: user_id.to_owned(),
        },
        Service::Rtm { privileges: vec![(PRIVILEGE_RTM_LOGIN, expire_secs)], user_id: user_id.to_owned() },
    ];
    encode_token(app_id, app_certificate, issue_ts, expire_secs, salt, &services)
}

/// Build a stream-channel token issued now with a random salt. See
/// [`build_stream_token_with`].
pub fn build_stream_token(
    app_id: &str,
    app_certificate: &str,
    channel: &str,
    user_id: &str,
    expire_secs: u32,
) -> Result<String, TokenError> {
    build_stream_token_with(app_id, app_certificate, channel, user_id, expire_secs, now_u32()?, random_salt())
}

// ---------------------------------------------------------------------------
// Verification
// ---------------------------------------------------------------------------

/// Parse, then check the signature (constant time, any certificate) and the
/// App ID. Nothing else in the token is trusted before this returns `Ok`.
fn verify_common(token: &str, app_id: &str, certificates: &[&str]) -> Result<ParsedToken, TokenError> {
    let parsed = parse(token)?;
    if certificates.is_empty() {
        return Err(TokenError::InvalidInput("no certificate configured".into()));
    }
    if parsed.signature.len() != SIGNATURE_LEN {
        return Err(TokenError::BadSignature);
    }
    let mut valid = false;
    for certificate in certificates {
        let k2 = signing_key(certificate, parsed.issue_ts, parsed.salt)?;
        let mut mac = new_mac(&k2)?;
        mac.update(&parsed.signed);
        if mac.verify_slice(&parsed.signature).is_ok() {
            valid = true;
            break;
        }
    }
    if !valid {
        return Err(TokenError::BadSignature);
    }
    if parsed.app_id != app_id {
        return Err(TokenError::AppIdMismatch);
    }
    Ok(parsed)
}

/// Value of the first privilege with the given id.
fn privilege(privileges: &[(u16, u32)], id: u16) -> Option<u32> {
    privileges.iter().find(|(p, _)| *p == id).map(|&(_, v)| v)
}

/// Expiry instant for a token with the given privilege value (0 = bounded by
/// the token expiry only), in u64 arithmetic.
fn expires_at(parsed: &ParsedToken, privilege_value: u32) -> u64 {
    let issue = u64::from(parsed.issue_ts);
    let token_end = issue + u64::from(parsed.expire);
    if privilege_value == 0 { token_end } else { token_end.min(issue + u64::from(privilege_value)) }
}

/// Apply the time policy to the best (latest) expiry among matching services.
fn check_time(parsed: &ParsedToken, privilege_values: &[u32], now: u64) -> Result<Verified, TokenError> {
    let issue_ts = u64::from(parsed.issue_ts);
    if issue_ts > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
        return Err(TokenError::NotYetValid);
    }
    if parsed.expire == 0 {
        return Err(TokenError::Expired);
    }
    let best = privilege_values.iter().map(|&v| expires_at(parsed, v)).max().ok_or(TokenError::NoLoginPrivilege)?;
    if now > best {
        return Err(TokenError::Expired);
    }
    Ok(Verified { issue_ts, expires_at: best })
}

/// Verify an RTM login token for `user_id` at Unix time `now`.
///
/// Steps: size guard, version, parse, HMAC over the raw signed bytes checked in
/// constant time against each of `certificates` (primary, secondary, ...),
/// exact App ID match, an RTM service whose user id equals `user_id` exactly
/// ([`TokenError::NoRtmService`] if there is no RTM service,
/// [`TokenError::UserMismatch`] if none matches), login privilege present
/// ([`TokenError::NoLoginPrivilege`]), then time: `issue_ts` more than
/// [`MAX_CLOCK_SKEW_SECS`] ahead of `now` is [`TokenError::NotYetValid`]; the
/// token is valid while `now <= issue_ts + expire` and
/// `now <= issue_ts + login` (login 0 = token expiry only; expire 0 =
/// expired). If several RTM services match, the latest expiry wins.
pub fn verify_rtm_token(
    token: &str,
    app_id: &str,
    certificates: &[&str],
    user_id: &str,
    now: u64,
) -> Result<Verified, TokenError> {
    let parsed = verify_common(token, app_id, certificates)?;
    let mut any_rtm = false;
    let mut any_user = false;
    let mut logins = Vec::new();
    for service in &parsed.services {
        if let Service::Rtm { privileges, user_id: token_user } = service {
            any_rtm = true;
            if token_user.as_bytes() == user_id.as_bytes() {
                any_user = true;
                if let Some(value) = privilege(privileges, PRIVILEGE_RTM_LOGIN) {
                    logins.push(value);
                }
            }
        }
    }
    if !any_rtm {
        return Err(TokenError::NoRtmService);
    }
    if !any_user {
        return Err(TokenError::UserMismatch);
    }
    if logins.is_empty() {
        return Err(TokenError::NoLoginPrivilege);
    }
    check_time(&parsed, &logins, now)
}

/// Verify a stream-channel join token for `channel` / `user_id` at `now`.
///
/// Same checks as [`verify_rtm_token`], but requires an RTC service whose
/// channel equals `channel` ([`TokenError::ChannelMismatch`]) and whose uid
/// equals `user_id` ([`TokenError::UserMismatch`]); [`TokenError::NoRtcService`]
/// if the token has no RTC service. The joinChannel privilege (1) must be
/// present ([`TokenError::NoLoginPrivilege`]) and bounds the expiry.
pub fn verify_stream_token(
    token: &str,
    app_id: &str,
    certificates: &[&str],
    channel: &str,
    user_id: &str,
    now: u64,
) -> Result<Verified, TokenError> {
    let parsed = verify_common(token, app_id, certificates)?;
    let mut any_rtc = false;
    let mut any_channel = false;
    let mut any_user = false;
    let mut joins = Vec::new();
    for service in &parsed.services {
        if let Service::Rtc { privileges, channel: token_channel, uid } = service {
            any_rtc = true;
            if token_channel.as_bytes() != channel.as_bytes() {
                continue;
            }
            any_channel = true;
            if uid.as_bytes() != user_id.as_bytes() {
                continue;
            }
            any_user = true;
            if let Some(value) = privilege(privileges, PRIVILEGE_RTC_JOIN_CHANNEL) {
                joins.push(value);
            }
        }
    }
    if !any_rtc {
        return Err(TokenError::NoRtcService);
    }
    if !any_channel {
        return Err(TokenError::ChannelMismatch);
    }
    if !any_user {
        return Err(TokenError::UserMismatch);
    }
    if joins.is_empty() {
        return Err(TokenError::NoLoginPrivilege);
    }
    check_time(&parsed, &joins, now)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    const APP_ID: &str = "970CA35de60c44645bbae8a215061b33";
    const CERT: &str = "5CFd2fd1755d40ecb72977518be15d3b";
    const USER: &str = "test_user";
    const ISSUE_TS: u32 = 1_111_111;
    const SALT: u32 = 1;
    const EXPIRE: u32 = 600;
    const REFERENCE: &str = "007eJxTYOCdJftjyTM2zxW6Xhm/5T0j5LdcUt/xYVt48fb5Mp3PX9coMFiaGzg7GpumpJoZJJuYmJmYJiUlplokGhmaGpgZJhkbu38RYIhgYmBgZABhJiBmBPM5GUpSi0viS4tTiwBZVh6A";
    const K1_HEX: &str = "e0f6141e54329d72102500478ec18e0020a5eeef53bbcccc442c6c2f7f178251";
    const K2_HEX: &str = "cee2fa8dcbe868c30ca8c959d97fad4a5049c634da48449f1b8f59c14fa61073";
    const SIG_HEX: &str = "0d9a1df8a4e60649a82d4a68fb1f49581fb4d227b8f0b65773b79f1c89e7eb7c";
    const OTHER_CERT: &str = "0123456789abcdef0123456789abcdef";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2));
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// The reference body, assembled from the spec's annotated layout.
    fn reference_body() -> Vec<u8> {
        let mut b = unhex("2000");
        b.extend(unhex(SIG_HEX));
        b.extend(unhex("2000"));
        b.extend(APP_ID.as_bytes());
        b.extend(unhex("47f41000")); // issueTs 1111111
        b.extend(unhex("58020000")); // expire 600
        b.extend(unhex("01000000")); // salt 1
        b.extend(unhex("0100")); // 1 service
        b.extend(unhex("0200")); // RTM
        b.extend(unhex("0100010058020000")); // login = 600
        b.extend(unhex("0900"));
        b.extend(USER.as_bytes());
        assert_eq!(b.len(), 103);
        b
    }

    /// Encode a raw body with a compliant zlib stream (no signing).
    fn token_from_body(body: &[u8]) -> String {
        encode_body(body).unwrap()
    }

    /// Sign hand-built `signed` bytes and wrap them into a token.
    fn token_from_signed(cert: &str, issue_ts: u32, salt: u32, signed: &[u8]) -> String {
        let sig = sign(cert, issue_ts, salt, signed).unwrap();
        let mut w = Writer::default();
        w.bytes("signature", &sig).unwrap();
        w.buf.extend_from_slice(signed);
        token_from_body(&w.buf)
    }

    fn signed_header(w: &mut Writer, app_id: &str, issue_ts: u32, expire: u32, salt: u32, n: u16) {
        w.bytes("app id", app_id.as_bytes()).unwrap();
        w.u32(issue_ts);
        w.u32(expire);
        w.u32(salt);
        w.u16(n);
    }

    fn zlib(body: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Compression::new(6));
        e.write_all(body).unwrap();
        e.finish().unwrap()
    }

    fn verify_ref(token: &str, now: u64) -> Result<Verified, TokenError> {
        verify_rtm_token(token, APP_ID, &[CERT], USER, now)
    }

    #[test]
    fn primary_vector_verifies_until_expiry() {
        let now = u64::from(ISSUE_TS) + 600;
        assert_eq!(verify_ref(REFERENCE, now), Ok(Verified { issue_ts: 1_111_111, expires_at: 1_111_711 }));
        assert_eq!(verify_ref(REFERENCE, u64::from(ISSUE_TS)).map(|_| ()), Ok(()));
        assert_eq!(verify_ref(REFERENCE, now + 1), Err(TokenError::Expired));
    }

    #[test]
    fn primary_vector_parses_to_exact_fields() {
        let p = parse(REFERENCE).unwrap();
        assert_eq!(hex(&p.signature), SIG_HEX);
        assert_eq!(p.app_id, APP_ID);
        assert_eq!(p.issue_ts, 1_111_111);
        assert_eq!(p.expire, 600);
        assert_eq!(p.salt, 1);
        assert_eq!(p.services, vec![Service::Rtm { privileges: vec![(1, 600)], user_id: "test_user".into() }]);
        assert_eq!(p.signed, reference_body()[34..].to_vec());
        assert_eq!(p.signed.len(), 103 - 34);
    }

    #[test]
    fn reference_decompressed_body_matches_spec_layout() {
        let body = decompress_body(REFERENCE).unwrap();
        assert_eq!(hex(&body), hex(&reference_body()));
        // The spec's zlib stream: 105 bytes, 789c5360e09d25fb63c9...59561e80.
        let raw = BASE64.decode(&REFERENCE[3..]).unwrap();
        assert_eq!(raw.len(), 105);
        assert!(hex(&raw).starts_with("789c5360e09d25fb63c9"));
        assert!(hex(&raw).ends_with("59561e80"));
    }

    #[test]
    fn builder_reproduces_reference_string_byte_exact() {
        let token = build_rtm_token_with(APP_ID, CERT, USER, EXPIRE, ISSUE_TS, SALT).unwrap();
        // Body equality holds for any deflate implementation.
        assert_eq!(decompress_body(&token).unwrap(), reference_body());
        assert_eq!(decompress_body(&token).unwrap(), decompress_body(REFERENCE).unwrap());
        // Byte-exact string: holds with flate2's C zlib backend at level 6
        // (checked on this machine with system zlib 1.2.13).
        assert_eq!(token, REFERENCE);
    }

    #[test]
    fn hmac_intermediates_match_spec() {
        let k1 = hmac_sha256(&ISSUE_TS.to_le_bytes(), CERT.as_bytes()).unwrap();
        assert_eq!(hex(&k1), K1_HEX);
        let k2 = hmac_sha256(&SALT.to_le_bytes(), &k1).unwrap();
        assert_eq!(hex(&k2), K2_HEX);
        assert_eq!(hex(&signing_key(CERT, ISSUE_TS, SALT).unwrap()), K2_HEX);
        let signed = &reference_body()[34..];
        assert_eq!(hex(&hmac_sha256(&k2, signed).unwrap()), SIG_HEX);
        assert_eq!(hex(&sign(CERT, ISSUE_TS, SALT, signed).unwrap()), SIG_HEX);
    }

    #[test]
    fn wrong_certificate_is_bad_signature() {
        let r = verify_rtm_token(REFERENCE, APP_ID, &[OTHER_CERT], USER, 1_111_200);
        assert_eq!(r, Err(TokenError::BadSignature));
        // Bad signature wins even when every other field is wrong too.
        let r = verify_rtm_token(REFERENCE, "x", &[OTHER_CERT], "nobody", u64::MAX);
        assert_eq!(r, Err(TokenError::BadSignature));
    }

    #[test]
    fn certificate_case_matters() {
        let lower = CERT.to_ascii_lowercase();
        let upper = CERT.to_ascii_uppercase();
        for cert in [lower.as_str(), upper.as_str()] {
            assert_eq!(verify_rtm_token(REFERENCE, APP_ID, &[cert], USER, 1_111_200), Err(TokenError::BadSignature));
        }
    }

    #[test]
    fn secondary_certificate_is_accepted() {
        let r = verify_rtm_token(REFERENCE, APP_ID, &[OTHER_CERT, CERT], USER, 1_111_200);
        assert!(r.is_ok(), "{r:?}");
        let r = verify_rtm_token(REFERENCE, APP_ID, &[], USER, 1_111_200);
        assert!(matches!(r, Err(TokenError::InvalidInput(_))), "{r:?}");
    }

    #[test]
    fn wrong_app_id_is_mismatch() {
        let lower = APP_ID.to_ascii_lowercase();
        for app in ["970CA35de60c44645bbae8a215061b34", lower.as_str(), ""] {
            assert_eq!(verify_rtm_token(REFERENCE, app, &[CERT], USER, 1_111_200), Err(TokenError::AppIdMismatch));
        }
    }

    #[test]
    fn wrong_user_is_mismatch() {
        for user in ["test_use", "test_user2", "TEST_USER", ""] {
            assert_eq!(verify_rtm_token(REFERENCE, APP_ID, &[CERT], user, 1_111_200), Err(TokenError::UserMismatch));
        }
    }

    #[test]
    fn rtc_only_token_has_no_rtm_service() {
        let services = [Service::Rtc { privileges: vec![(1, 600)], channel: "ch".into(), uid: USER.into() }];
        let token = encode_token(APP_ID, CERT, ISSUE_TS, 600, SALT, &services).unwrap();
        assert_eq!(verify_ref(&token, 1_111_200), Err(TokenError::NoRtmService));
        // A stream join check on an RTM-only token has no RTC service.
        assert_eq!(
            verify_stream_token(REFERENCE, APP_ID, &[CERT], "ch", USER, 1_111_200),
            Err(TokenError::NoRtcService)
        );
    }

    #[test]
    fn missing_login_privilege() {
        let services = [Service::Rtm { privileges: vec![(2, 600)], user_id: USER.into() }];
        let token = encode_token(APP_ID, CERT, ISSUE_TS, 600, SALT, &services).unwrap();
        assert_eq!(verify_ref(&token, 1_111_200), Err(TokenError::NoLoginPrivilege));
    }

    #[test]
    fn expiry_policy() {
        let mk = |expire: u32, login: u32| {
            let services = [Service::Rtm { privileges: vec![(1, login)], user_id: USER.into() }];
            encode_token(APP_ID, CERT, ISSUE_TS, expire, SALT, &services).unwrap()
        };
        let t0 = u64::from(ISSUE_TS);
        // Login shorter than the token.
        let t = mk(600, 100);
        assert_eq!(verify_ref(&t, t0 + 100).unwrap().expires_at, t0 + 100);
        assert_eq!(verify_ref(&t, t0 + 101), Err(TokenError::Expired));
        // Login 0 = bounded by token expiry only.
        let t = mk(600, 0);
        assert_eq!(verify_ref(&t, t0 + 600).unwrap().expires_at, t0 + 600);
        assert_eq!(verify_ref(&t, t0 + 601), Err(TokenError::Expired));
        // Token expire 0 is expired even at the issue instant.
        let t = mk(0, 600);
        assert_eq!(verify_ref(&t, t0), Err(TokenError::Expired));
        // Login longer than the token is capped by the token.
        let t = mk(10, 600);
        assert_eq!(verify_ref(&t, t0 + 10).unwrap().expires_at, t0 + 10);
        assert_eq!(verify_ref(&t, t0 + 11), Err(TokenError::Expired));
        // No u32 overflow.
        let services = [Service::Rtm { privileges: vec![(1, u32::MAX)], user_id: USER.into() }];
        let t = encode_token(APP_ID, CERT, u32::MAX, u32::MAX, SALT, &services).unwrap();
        let v = verify_ref(&t, u64::from(u32::MAX)).unwrap();
        assert_eq!(v.expires_at, 2 * u64::from(u32::MAX));
    }

    #[test]
    fn clock_skew_policy() {
        let t0 = u64::from(ISSUE_TS);
        assert!(verify_ref(REFERENCE, t0 - MAX_CLOCK_SKEW_SECS).is_ok());
        assert_eq!(verify_ref(REFERENCE, t0 - MAX_CLOCK_SKEW_SECS - 1), Err(TokenError::NotYetValid));
        assert_eq!(verify_ref(REFERENCE, 0), Err(TokenError::NotYetValid));
    }

    #[test]
    fn truncated_body_is_malformed() {
        let body = reference_body();
        for len in 0..body.len() {
            let token = token_from_body(&body[..len]);
            let r = parse(&token);
            assert!(matches!(r, Err(TokenError::Malformed(_))), "len {len}: {r:?}");
            let r = verify_ref(&token, 1_111_200);
            assert!(matches!(r, Err(TokenError::Malformed(_))), "len {len}: {r:?}");
        }
        // Truncated zlib stream (compressed bytes cut short).
        let raw = zlib(&body);
        for len in 0..raw.len() {
            let token = format!("007{}", BASE64.encode(&raw[..len]));
            let r = parse(&token);
            assert!(matches!(r, Err(TokenError::Malformed(_))), "len {len}: {r:?}");
        }
    }

    #[test]
    fn bad_base64_is_malformed() {
        // Valid tokens whose base64 carries padding / a '+', to corrupt below.
        let find = |pred: &dyn Fn(&str) -> bool| {
            (0..1000)
                .map(|i| build_rtm_token_with(APP_ID, CERT, &format!("u{i}"), 600, ISSUE_TS, SALT))
                .map(Result::unwrap)
                .find(|t| pred(t))
                .unwrap()
        };
        let padded = find(&|t| t.ends_with('='));
        let with_plus = find(&|t| t.contains('+'));
        assert!(parse(&padded).is_ok() && parse(&with_plus).is_ok());
        let no_pad = padded.trim_end_matches('=').to_string();
        let url_safe = REFERENCE.replace('/', "_").replace('+', "-");
        let spaced = with_plus.replace('+', " ");
        let cases = [
            "007!!!!".to_string(),
            "007".to_string(),
            format!("{REFERENCE}="),
            REFERENCE[..REFERENCE.len() - 1].to_string(),
            format!("{REFERENCE}\n"),
            no_pad,
            url_safe,
            spaced,
            "007AAAAé".to_string(),
        ];
        for case in &cases {
            assert_ne!(case.as_str(), REFERENCE);
            let r = parse(case);
            assert!(matches!(r, Err(TokenError::Malformed(_))), "{case:?}: {r:?}");
        }
    }

    #[test]
    fn wrong_version_is_unsupported() {
        let v006 = format!("006{}", &REFERENCE[3..]);
        for t in [v006.as_str(), "006970CA35de60c44645bbae8a215061b33AAAA", "7", "é007"] {
            assert_eq!(parse(t), Err(TokenError::UnsupportedVersion), "{t:?}");
            assert_eq!(verify_ref(t, 1_111_200), Err(TokenError::UnsupportedVersion));
        }
        assert!(matches!(parse(""), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn oversize_token_is_rejected_before_decoding() {
        let t = format!("007{}", "A".repeat(MAX_TOKEN_LEN - 2));
        assert_eq!(t.len(), MAX_TOKEN_LEN + 1);
        match parse(&t) {
            Err(TokenError::Malformed(m)) => assert!(m.contains("too long"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Exactly at the limit it is not rejected for its size.
        let t = format!("007{}", "A".repeat(MAX_TOKEN_LEN - 3));
        match parse(&t) {
            Err(TokenError::Malformed(m)) => assert!(!m.contains("too long"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zip_bomb_is_capped() {
        let mut body = reference_body();
        body.resize(MAX_INFLATED_LEN + 1, 0);
        let token = token_from_body(&body);
        assert!(token.len() <= MAX_TOKEN_LEN);
        match parse(&token) {
            Err(TokenError::Malformed(m)) => assert!(m.contains("exceeds"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Exactly at the cap is fine (trailing bytes after services are ignored).
        body.truncate(MAX_INFLATED_LEN);
        assert!(parse(&token_from_body(&body)).is_ok());
    }

    #[test]
    fn zlib_trailing_garbage_is_rejected() {
        for extra in [&[0u8][..], b"garbage", &zlib(b"x")] {
            let mut raw = zlib(&reference_body());
            raw.extend_from_slice(extra);
            let token = format!("007{}", BASE64.encode(&raw));
            match parse(&token) {
                Err(TokenError::Malformed(m)) => assert!(m.contains("trailing"), "{m}"),
                other => panic!("{other:?}"),
            }
            assert!(matches!(verify_ref(&token, 1_111_200), Err(TokenError::Malformed(_))));
        }
    }

    #[test]
    fn corrupted_zlib_checksum_is_malformed() {
        let mut raw = zlib(&reference_body());
        let last = raw.len() - 1;
        raw[last] ^= 1; // Adler-32
        let token = format!("007{}", BASE64.encode(&raw));
        assert!(matches!(parse(&token), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn flipped_body_bits_are_rejected() {
        let body = reference_body();
        for byte in 0..body.len() {
            for bit in 0..8 {
                let mut b = body.clone();
                b[byte] ^= 1 << bit;
                let token = token_from_body(&b);
                let r = verify_ref(&token, 1_111_200);
                match byte {
                    // Signature length prefix.
                    0 | 1 => assert!(
                        matches!(r, Err(TokenError::Malformed(_) | TokenError::BadSignature)),
                        "{byte}/{bit}: {r:?}"
                    ),
                    // App id text: the high bit makes it invalid UTF-8.
                    36..=67 if bit == 7 => assert!(matches!(r, Err(TokenError::Malformed(_))), "{byte}/{bit}: {r:?}"),
                    // Signature bytes, app id text, integers: signature fails.
                    2..=33 | 36..=79 => {
                        assert_eq!(r, Err(TokenError::BadSignature), "{byte}/{bit}")
                    }
                    _ => assert!(
                        matches!(r, Err(TokenError::Malformed(_) | TokenError::BadSignature)),
                        "{byte}/{bit}: {r:?}"
                    ),
                }
            }
        }
        // Bit flips in the encoded token string never verify.
        let bytes = REFERENCE.as_bytes();
        for i in 0..bytes.len() {
            for bit in 0..7 {
                let mut b = bytes.to_vec();
                b[i] ^= 1 << bit;
                let Ok(t) = String::from_utf8(b) else {
                    continue;
                };
                assert!(verify_ref(&t, 1_111_200).is_err(), "{i}/{bit}");
            }
        }
    }

    #[test]
    fn round_trip_build_verify() {
        let now = now_u32().unwrap();
        let user = "alice-ü-用户";
        let token = build_rtm_token(APP_ID, CERT, user, 3600).unwrap();
        let lower_id = APP_ID.to_ascii_lowercase();
        let v = verify_rtm_token(&token, APP_ID, &[CERT], user, u64::from(now)).unwrap();
        assert!(v.issue_ts >= u64::from(now));
        assert_eq!(v.expires_at, v.issue_ts + 3600);
        assert_eq!(verify_rtm_token(&token, &lower_id, &[CERT], user, u64::from(now)), Err(TokenError::AppIdMismatch));
        let p = parse(&token).unwrap();
        assert!((SALT_MIN..=SALT_MAX).contains(&p.salt));
        assert_eq!(p.expire, 3600);

        // Deterministic builder with lowercase credentials.
        let t = build_rtm_token_with(&lower_id, "ABCDEF0123456789abcdef0123456789", "u", 60, 5, 7).unwrap();
        assert_eq!(
            verify_rtm_token(&t, &lower_id, &["ABCDEF0123456789abcdef0123456789"], "u", 65),
            Ok(Verified { issue_ts: 5, expires_at: 65 })
        );
    }

    #[test]
    fn builder_validates_input() {
        let bad = [
            ("970CA35de60c44645bbae8a215061b3", CERT),
            ("970CA35de60c44645bbae8a215061b333", CERT),
            ("970CA35de60c44645bbae8a215061b3g", CERT),
            (APP_ID, "5CFd2fd1755d40ecb72977518be15d3"),
            (APP_ID, "5CFd2fd1755d40ecb72977518be15d3z"),
            (APP_ID, ""),
        ];
        for (app, cert) in bad {
            assert!(matches!(build_rtm_token_with(app, cert, USER, 600, 1, 1), Err(TokenError::InvalidInput(_))));
            assert!(matches!(build_stream_token(app, cert, "ch", USER, 600), Err(TokenError::InvalidInput(_))));
        }
        // 65535 bytes is the wire limit; such a body exceeds the inflate cap,
        // so round-trip a smaller long id and only build the maximal one.
        let max_user = "u".repeat(65_535);
        assert!(build_rtm_token_with(APP_ID, CERT, &max_user, 600, 1, 1).is_ok());
        let long_ok = "u".repeat(60_000);
        let token = build_rtm_token_with(APP_ID, CERT, &long_ok, 600, 1, 1).unwrap();
        assert!(verify_rtm_token(&token, APP_ID, &[CERT], &long_ok, 1).is_ok());
        let long_user = "u".repeat(65_536);
        assert!(matches!(build_rtm_token_with(APP_ID, CERT, &long_user, 600, 1, 1), Err(TokenError::InvalidInput(_))));
        assert!(matches!(
            build_stream_token_with(APP_ID, CERT, &long_user, USER, 600, 1, 1),
            Err(TokenError::InvalidInput(_))
        ));
    }

    #[test]
    fn stream_token_verify() {
        let t0 = u64::from(ISSUE_TS);
        let token = build_stream_token_with(APP_ID, CERT, "room-1", USER, 600, ISSUE_TS, 42).unwrap();
        let p = parse(&token).unwrap();
        assert_eq!(
            p.services,
            vec![
                Service::Rtc {
                    privileges: vec![(PRIVILEGE_RTC_JOIN_CHANNEL, 600)],
                    channel: "room-1".into(),
                    uid: USER.into()
                },
                Service::Rtm { privileges: vec![(PRIVILEGE_RTM_LOGIN, 600)], user_id: USER.into() },
            ]
        );
        let ok = verify_stream_token(&token, APP_ID, &[CERT], "room-1", USER, t0 + 600);
        assert_eq!(ok, Ok(Verified { issue_ts: t0, expires_at: t0 + 600 }));
        assert_eq!(verify_stream_token(&token, APP_ID, &[CERT], "room-2", USER, t0), Err(TokenError::ChannelMismatch));
        assert_eq!(verify_stream_token(&token, APP_ID, &[CERT], "room-1", "bob", t0), Err(TokenError::UserMismatch));
        assert_eq!(verify_stream_token(&token, APP_ID, &[CERT], "room-1", USER, t0 + 601), Err(TokenError::Expired));
        assert_eq!(
            verify_stream_token(&token, APP_ID, &[OTHER_CERT], "room-2", "bob", t0),
            Err(TokenError::BadSignature)
        );
        // The same token is also an RTM login token.
        assert!(verify_rtm_token(&token, APP_ID, &[CERT], USER, t0).is_ok());
        // RTC service without the join privilege.
        let services = [Service::Rtc { privileges: vec![(2, 600)], channel: "room-1".into(), uid: USER.into() }];
        let t = encode_token(APP_ID, CERT, ISSUE_TS, 600, SALT, &services).unwrap();
        assert_eq!(verify_stream_token(&t, APP_ID, &[CERT], "room-1", USER, t0), Err(TokenError::NoLoginPrivilege));
        // Random-salt variant round trip.
        let t = build_stream_token(APP_ID, CERT, "c", "7", 60).unwrap();
        let now = u64::from(parse(&t).unwrap().issue_ts);
        assert!(verify_stream_token(&t, APP_ID, &[CERT], "c", "7", now).is_ok());
    }

    #[test]
    fn rtm_service_after_other_service_types_is_found() {
        // APaaS (7), RTM2 (8), Chat (5), Streaming (3), FPA (4), then RTM in
        // insertion (unsorted) order, as old Python builders emitted.
        let mut w = Writer::default();
        signed_header(&mut w, APP_ID, ISSUE_TS, 600, SALT, 6);
        w.u16(7);
        w.privileges(&[(1, 600)]).unwrap();
        w.bytes("", b"room").unwrap();
        w.bytes("", b"user").unwrap();
        w.u16((-1i16) as u16);
        w.u16(8);
        w.privileges(&[(1, 600)]).unwrap();
        w.bytes("", b"someone").unwrap();
        w.u16(1); // one resource
        w.u16(0); // messageChannels
        w.u16(2); // two permissions
        w.u16(0);
        w.u16(1);
        w.bytes("", b"chan-a").unwrap();
        w.u16(1);
        w.u16(0);
        w.u16(5);
        w.privileges(&[(1, 600)]).unwrap();
        w.bytes("", b"").unwrap();
        w.u16(3);
        w.privileges(&[]).unwrap();
        w.bytes("", b"c").unwrap();
        w.bytes("", b"a").unwrap();
        w.u16(4);
        w.privileges(&[(1, 600)]).unwrap();
        w.u16(2);
        w.privileges(&[(1, 300)]).unwrap();
        w.bytes("", USER.as_bytes()).unwrap();
        let token = token_from_signed(CERT, ISSUE_TS, SALT, &w.buf);
        let p = parse(&token).unwrap();
        let types: Vec<u16> = p.services.iter().map(service_type).collect();
        assert_eq!(types, vec![7, 8, 5, 3, 4, 2]);
        let v = verify_ref(&token, 1_111_200).unwrap();
        assert_eq!(v.expires_at, u64::from(ISSUE_TS) + 300);
    }

    #[test]
    fn unknown_service_type_stops_parsing() {
        let mut w = Writer::default();
        signed_header(&mut w, APP_ID, ISSUE_TS, 600, SALT, 3);
        w.u16(2);
        w.privileges(&[(1, 600)]).unwrap();
        w.bytes("", USER.as_bytes()).unwrap();
        w.u16(99); // unknown: the rest is opaque
        w.buf.extend_from_slice(&[0xff; 7]);
        let token = token_from_signed(CERT, ISSUE_TS, SALT, &w.buf);
        let p = parse(&token).unwrap();
        assert_eq!(p.services.len(), 1);
        assert!(verify_ref(&token, 1_111_200).is_ok());

        // An RTM service behind an unknown type is not reached.
        let mut w = Writer::default();
        signed_header(&mut w, APP_ID, ISSUE_TS, 600, SALT, 2);
        w.u16(11);
        w.u16(2);
        w.privileges(&[(1, 600)]).unwrap();
        w.bytes("", USER.as_bytes()).unwrap();
        let token = token_from_signed(CERT, ISSUE_TS, SALT, &w.buf);
        assert!(parse(&token).unwrap().services.is_empty());
        assert_eq!(verify_ref(&token, 1_111_200), Err(TokenError::NoRtmService));
    }

    #[test]
    fn multiple_rtm_services_any_match() {
        let services = [
            Service::Rtm { privileges: vec![(1, 600)], user_id: "other".into() },
            Service::Rtm { privileges: vec![(1, 100)], user_id: USER.into() },
        ];
        let token = encode_token(APP_ID, CERT, ISSUE_TS, 600, SALT, &services).unwrap();
        let v = verify_ref(&token, 1_111_200).unwrap();
        assert_eq!(v.expires_at, u64::from(ISSUE_TS) + 100);
        assert!(verify_rtm_token(&token, APP_ID, &[CERT], "other", 1_111_200).is_ok());
    }

    #[test]
    fn builder_sorts_services_and_privileges() {
        let services = [
            Service::Rtm { privileges: vec![(1, 600)], user_id: "second".into() },
            Service::Rtc { privileges: vec![(3, 30), (1, 10), (2, 20)], channel: "c".into(), uid: "u".into() },
            Service::Rtm { privileges: vec![(1, 600)], user_id: "third".into() },
        ];
        let token = encode_token(APP_ID, CERT, ISSUE_TS, 600, SALT, &services).unwrap();
        let p = parse(&token).unwrap();
        assert_eq!(
            p.services,
            vec![
                Service::Rtc { privileges: vec![(1, 10), (2, 20), (3, 30)], channel: "c".into(), uid: "u".into() },
                services[0].clone(),
                services[2].clone(),
            ]
        );
    }

    #[test]
    fn short_signature_is_bad_signature() {
        let mut w = Writer::default();
        w.bytes("signature", &unhex(SIG_HEX)[..31]).unwrap();
        w.buf.extend_from_slice(&reference_body()[34..]);
        let token = token_from_body(&w.buf);
        assert!(parse(&token).is_ok());
        assert_eq!(verify_ref(&token, 1_111_200), Err(TokenError::BadSignature));
    }

    #[test]
    fn invalid_utf8_user_id_is_malformed() {
        let mut body = reference_body();
        let n = body.len();
        body[n - 1] = 0xff;
        assert!(matches!(parse(&token_from_body(&body)), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn fuzz_prefixes_and_mutations_never_panic() {
        let stream = build_stream_token_with(APP_ID, CERT, "room", USER, 600, ISSUE_TS, 9).unwrap();
        let replacements = ['A', '/', '+', '=', '0', 'z', ' ', '\0', 'é', '用'];
        for token in [REFERENCE, stream.as_str()] {
            let chars: Vec<char> = token.chars().collect();
            let mut checked = 0usize;
            // Every prefix.
            for len in 0..=chars.len() {
                let t: String = chars[..len].iter().collect();
                let r = verify_ref(&t, 1_111_200);
                assert_eq!(r.is_ok(), t == token, "prefix {len}");
                let _ = parse(&t);
                checked += 1;
            }
            // Single-character substitutions, deletions and insertions.
            for i in 0..chars.len() {
                for &c in &replacements {
                    let mut m = chars.clone();
                    m[i] = c;
                    let t: String = m.iter().collect();
                    let _ = parse(&t);
                    let _ = verify_ref(&t, 1_111_200);
                    let mut m = chars.clone();
                    m.insert(i, c);
                    let t: String = m.iter().collect();
                    let _ = parse(&t);
                    let _ = verify_ref(&t, 1_111_200);
                    checked += 2;
                }
                let mut m = chars.clone();
                m.remove(i);
                let t: String = m.iter().collect();
                assert!(verify_ref(&t, 1_111_200).is_err());
                checked += 1;
            }
            assert!(checked > 1000);

            // Body-level mutations behind a valid zlib stream reach the parser.
            let body = decompress_body(token).unwrap();
            for i in 0..body.len() {
                for v in [0u8, 1, 0x7f, 0x80, 0xff, body[i].wrapping_add(1)] {
                    let mut b = body.clone();
                    b[i] = v;
                    let t = token_from_body(&b);
                    let _ = parse(&t);
                    let r = verify_ref(&t, 1_111_200);
                    if b != body {
                        assert!(r.is_err(), "{i}={v}");
                    }
                    let _ = verify_stream_token(&t, APP_ID, &[CERT], "room", USER, 1_111_200);
                }
                // Truncate and extend.
                let t = token_from_body(&body[..i]);
                assert!(parse(&t).is_err());
                let mut b = body.clone();
                b.insert(i, 0xff);
                let _ = verify_ref(&token_from_body(&b), 1_111_200);
            }
        }
    }
}
