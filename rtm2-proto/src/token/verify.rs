//! Verifying tokens: app id, signature (constant time, any certificate), service, user or
//! channel, privilege and time, in that order.

use hmac::Mac;

use super::codec::parse;
use super::*;

/// Parse, then check the App ID, then the signature (constant time, any certificate).
/// Nothing else in the token is trusted before this returns `Ok`.
///
/// The App ID comes first (as Agora's servers and SDKs do: 10016 INCONSISTENT_APPID): a
/// token of another app cannot carry a signature made with this app's certificates, so
/// checking the signature first would report any other app's token as a bad signature
/// (10005) and hide the actual mistake. The App ID is not secret: answering it first tells
/// a caller nothing the token does not already say.
pub(super) fn verify_common(token: &str, app_id: &str, certificates: &[&str]) -> Result<ParsedToken, TokenError> {
    let parsed = parse(token)?;
    if certificates.is_empty() {
        return Err(TokenError::InvalidInput("no certificate configured".into()));
    }
    if parsed.app_id != app_id {
        return Err(TokenError::AppIdMismatch);
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
    Ok(parsed)
}

/// Value of the first privilege with the given id.
pub(super) fn privilege(privileges: &[(u16, u32)], id: u16) -> Option<u32> {
    privileges.iter().find(|(p, _)| *p == id).map(|&(_, v)| v)
}

/// Expiry instant for a token with the given privilege value (0 = bounded by
/// the token expiry only), in u64 arithmetic.
pub(super) fn expires_at(parsed: &ParsedToken, privilege_value: u32) -> u64 {
    let issue = u64::from(parsed.issue_ts);
    let token_end = issue + u64::from(parsed.expire);
    if privilege_value == 0 { token_end } else { token_end.min(issue + u64::from(privilege_value)) }
}

/// Apply the time policy to the best (latest) expiry among matching services.
pub(super) fn check_time(parsed: &ParsedToken, privilege_values: &[u32], now: u64) -> Result<Verified, TokenError> {
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
/// Steps: size guard, version, parse, exact App ID match
/// ([`TokenError::AppIdMismatch`], whichever certificate signed the token), HMAC
/// over the raw signed bytes checked in constant time against each of
/// `certificates` (primary, secondary, ...), an RTM service whose user id equals `user_id` exactly
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
