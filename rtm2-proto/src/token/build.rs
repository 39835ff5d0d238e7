//! Building tokens: the body writer, signing, compression and the public builders.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::Compression;

use super::*;

pub(super) fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether an app id and certificate can sign tokens: 32 hex characters each (what the token
/// builders, Agora's and rtm2's, take). A server configured with others could verify no token.
pub fn check_credentials(app_id: &str, app_certificate: &str) -> Result<(), TokenError> {
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
pub(super) struct Writer {
    pub(super) buf: Vec<u8>,
}

impl Writer {
    pub(super) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(super) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(super) fn bytes(&mut self, what: &str, v: &[u8]) -> Result<(), TokenError> {
        let len = u16::try_from(v.len())
            .map_err(|_| TokenError::InvalidInput(format!("{what} longer than {MAX_FIELD_LEN} bytes")))?;
        self.u16(len);
        self.buf.extend_from_slice(v);
        Ok(())
    }

    pub(super) fn privileges(&mut self, privileges: &[(u16, u32)]) -> Result<(), TokenError> {
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
pub(super) fn encode_token(
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

pub(super) fn service_type(service: &Service) -> u16 {
    match service {
        Service::Rtc { .. } => SERVICE_RTC,
        Service::Rtm { .. } => SERVICE_RTM,
        Service::Other { service_type, .. } => *service_type,
    }
}

/// `"007" + base64(zlib_level6(body))`.
pub(super) fn encode_body(body: &[u8]) -> Result<String, TokenError> {
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), Compression::new(6));
    encoder.write_all(body).map_err(|e| TokenError::InvalidInput(format!("compression failed: {e}")))?;
    let compressed = encoder.finish().map_err(|e| TokenError::InvalidInput(format!("compression failed: {e}")))?;
    Ok(format!("{TOKEN_VERSION}{}", BASE64.encode(compressed)))
}

pub(super) fn now_u32() -> Result<u32, TokenError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| TokenError::InvalidInput("system clock is before 1970".into()))?
        .as_secs();
    u32::try_from(secs).map_err(|_| TokenError::InvalidInput("system clock beyond u32".into()))
}

pub(super) fn random_salt() -> u32 {
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
