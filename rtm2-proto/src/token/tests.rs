//! Unit tests of the token codec, builders and verification (reference vectors included).

use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use flate2::Compression;

use super::build::*;
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
    // Bad signature wins over every field checked after the app id.
    let r = verify_rtm_token(REFERENCE, APP_ID, &[OTHER_CERT], "nobody", u64::MAX);
    assert_eq!(r, Err(TokenError::BadSignature));
}

/// The app id is checked before the signature: another app's token is an app id mismatch
/// (10016) whichever certificate signed it, its own or ours (issue #14 item 10).
#[test]
fn another_apps_token_is_app_id_mismatch_whatever_signed_it() {
    const OTHER_APP: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for signer in [OTHER_CERT, CERT] {
        let rtm = build_rtm_token_with(OTHER_APP, signer, USER, EXPIRE, ISSUE_TS, SALT).unwrap();
        assert_eq!(verify_rtm_token(&rtm, APP_ID, &[CERT], USER, 1_111_200), Err(TokenError::AppIdMismatch));
        let stream = build_stream_token_with(OTHER_APP, signer, "room", USER, EXPIRE, ISSUE_TS, SALT).unwrap();
        assert_eq!(
            verify_stream_token(&stream, APP_ID, &[CERT], "room", USER, 1_111_200),
            Err(TokenError::AppIdMismatch)
        );
    }
    // Even with everything else wrong too (user, time): the app id is the first answer.
    let rtm = build_rtm_token_with(OTHER_APP, OTHER_CERT, USER, EXPIRE, ISSUE_TS, SALT).unwrap();
    assert_eq!(verify_rtm_token(&rtm, APP_ID, &[CERT], "nobody", u64::MAX), Err(TokenError::AppIdMismatch));
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
    assert_eq!(verify_stream_token(REFERENCE, APP_ID, &[CERT], "ch", USER, 1_111_200), Err(TokenError::NoRtcService));
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
                // App id length prefix: a different (or unreadable) app id.
                34 | 35 => assert!(
                    matches!(r, Err(TokenError::Malformed(_) | TokenError::AppIdMismatch)),
                    "{byte}/{bit}: {r:?}"
                ),
                // App id text: checked before the signature, so another app's id.
                36..=67 => assert_eq!(r, Err(TokenError::AppIdMismatch), "{byte}/{bit}"),
                // Signature bytes, integers: signature fails.
                2..=33 | 68..=79 => {
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
    assert_eq!(verify_stream_token(&token, APP_ID, &[OTHER_CERT], "room-2", "bob", t0), Err(TokenError::BadSignature));
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
