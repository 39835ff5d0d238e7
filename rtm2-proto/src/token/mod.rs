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

mod build;
mod codec;
#[cfg(test)]
mod tests;
mod verify;

pub use build::{
    build_rtm_token, build_rtm_token_with, build_stream_token, build_stream_token_with, check_credentials,
};
pub use codec::{decompress_body, parse};
pub use verify::{verify_rtm_token, verify_stream_token};

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
pub(super) const SIGNATURE_LEN: usize = 32;
/// Largest value a `u16` length prefix can describe.
pub(super) const MAX_FIELD_LEN: usize = u16::MAX as usize;
/// Random salt range used by the official builders.
pub(super) const SALT_MIN: u32 = 1;
pub(super) const SALT_MAX: u32 = 99_999_999;

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
// Signing
// ---------------------------------------------------------------------------

pub(super) fn new_mac(key: &[u8]) -> Result<HmacSha256, TokenError> {
    // HMAC accepts keys of any length, so this never fails in practice.
    <HmacSha256 as Mac>::new_from_slice(key).map_err(|_| TokenError::InvalidInput("invalid HMAC key".into()))
}

pub(super) fn hmac_sha256(key: &[u8], msg: &[u8]) -> Result<[u8; 32], TokenError> {
    let mut mac = new_mac(key)?;
    mac.update(msg);
    Ok(mac.finalize().into_bytes().into())
}

/// `k2 = HMAC(u32le(salt), HMAC(u32le(issueTs), certificate))`.
pub(super) fn signing_key(certificate: &str, issue_ts: u32, salt: u32) -> Result<[u8; 32], TokenError> {
    let k1 = hmac_sha256(&issue_ts.to_le_bytes(), certificate.as_bytes())?;
    hmac_sha256(&salt.to_le_bytes(), &k1)
}

pub(super) fn sign(certificate: &str, issue_ts: u32, salt: u32, signed: &[u8]) -> Result<[u8; 32], TokenError> {
    let k2 = signing_key(certificate, issue_ts, salt)?;
    hmac_sha256(&k2, signed)
}
