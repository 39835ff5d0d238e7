//! `rtm2_config`: the settings of a client, built through setters so the ABI can grow.

use std::ffi::c_char;

use rtm2_core::{ClientConfig, EncryptionConfig, EncryptionMode, Endpoint, ErrorCode};

use crate::constants::RTM2_ENCRYPTION_SALT_MAX_LEN;
use crate::error::{FfiError, FfiResult, ffi_status};
use crate::ptr::{Out, borrow, borrow_bytes, borrow_mut, borrow_str, box_from_raw, box_into_raw};

/// A client configuration (opaque). Made by `rtm2_config_new`, changed by the
/// `rtm2_config_set_*` setters, read (copied) by `rtm2_client_new`, freed by
/// `rtm2_config_free`. Not thread-safe: do not change one config from two threads at once.
pub struct rtm2_config {
    inner: ClientConfig,
}

impl rtm2_config {
    pub(crate) fn client_config(&self) -> ClientConfig {
        self.inner.clone()
    }
}

/// Applies one tuning parameter through the core's validated `set_parameters` (10014 when out
/// of range), so the setters have exactly the core's rules.
fn set_param(cfg: *mut rtm2_config, key: &str, value: String) -> i32 {
    ffi_status(|| {
        let cfg = unsafe { borrow_mut(cfg, "config") }?;
        cfg.inner.set_parameters(&format!("{{\"{key}\":{value}}}"))?;
        Ok(())
    })
}

fn with_config(cfg: *mut rtm2_config, f: impl FnOnce(&mut ClientConfig) -> FfiResult<()>) -> i32 {
    ffi_status(|| f(&mut unsafe { borrow_mut(cfg, "config") }?.inner))
}

/// Makes a configuration for `user_id` of the app `app_id`, with every default: the default
/// endpoint (the `RTM2_ENDPOINT` environment variable if set, read by `rtm2_client_new`, which
/// fails with 10014 naming it when it is invalid; else the embedded server, which serves this
/// process only), a 10 s request timeout, own-message echo on.
///
/// The ids are checked by `rtm2_client_new` (10003 INVALID_APP_ID, 10006 INVALID_USER_ID).
/// On success `*out_config` receives a new config owned by the caller (free it with
/// `rtm2_config_free`); on failure it is not written.
///
/// # Safety
/// `app_id` and `user_id` are NUL-terminated strings (borrowed for the call); `out_config`
/// points to writable storage for a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_config_new(
    app_id: *const c_char,
    user_id: *const c_char,
    out_config: *mut *mut rtm2_config,
) -> i32 {
    ffi_status(|| {
        let app_id = unsafe { borrow_str(app_id, "app_id") }?;
        let user_id = unsafe { borrow_str(user_id, "user_id") }?;
        let out = Out::new(out_config, "out_config")?;
        let cfg = box_into_raw(rtm2_config { inner: ClientConfig::new(app_id, user_id) });
        unsafe { out.write(cfg) };
        Ok(())
    })
}

/// Frees a configuration. NULL is ignored. Clients made from it are not affected.
///
/// # Safety
/// `config` is NULL or a config from `rtm2_config_new` not freed before.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_config_free(config: *mut rtm2_config) {
    crate::error::ffi_value((), || drop(unsafe { box_from_raw(config) }));
}

/// Sets where the client connects: `""` (the default: the `RTM2_ENDPOINT` environment variable
/// if set, else the embedded server), `"embedded"` (the in-process embedded server: clients in
/// other processes do not see it), `"tcp://host:port"`, `"host:port"` or `"tls://host:port"`, or several of those
/// separated by commas (`"tcp://10.0.0.1:9696,tcp://10.0.0.2:9696"`: the nodes of one
/// service, in order of preference; the client connects to the first reachable one and fails
/// over to the next when its node dies, restoring its subscriptions, stream channels, topics,
/// presence state and held locks). The port must be 1..=65535 and the host an IPv4 address,
/// an IPv6 address in brackets (`[::1]:9696`) or a host name. 10014 INVALID_PARAMETER for
/// anything else (e.g. `"tcp://127.0.0.1:99999"`, an empty entry, `embedded` listed with
/// others, more than 64 entries), with the bad entry named; the config is then unchanged.
///
/// # Safety
/// `config` is a live config; `endpoint` a NUL-terminated string (borrowed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_config_set_endpoint(config: *mut rtm2_config, endpoint: *const c_char) -> i32 {
    with_config(config, |c| {
        let ep = unsafe { borrow_str(endpoint, "endpoint") }?;
        c.endpoints = Endpoint::parse_list(ep)?;
        Ok(())
    })
}

/// Sets the timeout of every operation in milliseconds (100..=600000; default 10000). An
/// operation that runs out of time completes with its RTM timeout code (10011 for login,
/// 11026 for publish, …). 10014 when out of range.
///
/// # Safety
/// `config` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_config_set_request_timeout_ms(config: *mut rtm2_config, timeout_ms: u64) -> i32 {
    set_param(config, "request_timeout_ms", timeout_ms.to_string())
}

/// Sets how long (seconds, 5..=300, default 300) this user stays present after an unexpected
/// disconnect. A value out of the range is clamped into it (4 → 5, 301 → 300), as the server
/// does; `rtm2_client_get_parameters` shows the value in effect.
///
/// # Safety
/// `config` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_config_set_presence_timeout_s(config: *mut rtm2_config, seconds: u32) -> i32 {
    set_param(config, "presence_timeout_s", seconds.to_string())
}

/// Sets the interval between keep-alive pings (seconds, 5..=1800, default 5). A value out of
/// the range is clamped into it (0 or 4 → 5, 1801 → 1800), as the server does;
/// `rtm2_client_get_parameters` shows the value in effect.
///
/// # Safety
/// `config` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_config_set_heartbeat_interval_s(config: *mut rtm2_config, seconds: u32) -> i32 {
    set_param(config, "heartbeat_interval_s", seconds.to_string())
}

/// Sets whether the client receives its own message-channel publishes (default true).
///
/// # Safety
/// `config` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_config_set_receive_own_messages(config: *mut rtm2_config, enabled: bool) -> i32 {
    set_param(config, "receive_own_messages", enabled.to_string())
}

/// Sets the capacity of the client's event queue (1..=16777216, default 65536). When the
/// application's callbacks fall behind by more than this many events, newer events are dropped
/// and counted, and `on_overflow` reports the count. 10014 when out of range.
///
/// # Safety
/// `config` is a live config.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_config_set_event_queue_capacity(config: *mut rtm2_config, capacity: u64) -> i32 {
    set_param(config, "event_queue_capacity", capacity.to_string())
}

/// Applies tuning parameters given as a JSON object, all or nothing, e.g.
/// `{"request_timeout_ms": 3000, "tls_ca_file": "/etc/rtm2/ca.pem"}`. Keys:
/// * integers: `request_timeout_ms` (100..=600000), `heartbeat_interval_s` (5..=1800),
///   `presence_timeout_s` (5..=300), `pong_timeout_ms` (100..=600000),
///   `reconnect_initial_backoff_ms` and `reconnect_max_backoff_ms` (10..=600000),
///   `event_queue_capacity` and `max_queued_requests` (1..=16777216; operations that may wait
///   to be sent, e.g. while reconnecting: beyond it they fail at once with 10025);
/// * `receive_own_messages`: true or false;
/// * strings: `tls_ca_file` (the PEM file of the root certificates that `tls://` endpoints
///   are verified against; `""` = the system roots), `log_file` (the SDK's log file, `""` =
///   none: as `rtm2_config_set_log_file`), `log_level` (`"trace"`..`"error"`: as
///   `rtm2_config_set_log_level`).
///
/// An unknown key, a wrong type or a value out of range fails with 10014 INVALID_PARAMETER (the
/// reason names the key) and changes nothing — except `presence_timeout_s` and
/// `heartbeat_interval_s`, whose integers ≥ 0 are clamped into their range.
/// `rtm2_client_get_parameters` returns every key with the value in effect.
///
/// # Safety
/// `config` is a live config; `json` a NUL-terminated string (borrowed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_config_set_parameters(config: *mut rtm2_config, json: *const c_char) -> i32 {
    with_config(config, |c| {
        let json = unsafe { borrow_str(json, "json") }?;
        c.set_parameters(json)?;
        Ok(())
    })
}

/// Sets the level (`"error"`, `"warn"`, `"info"`, `"debug"`, `"trace"`) of the SDK's log file
/// (see `rtm2_config_set_log_file`). 10014 for another word.
///
/// # Safety
/// `config` is a live config; `level` a NUL-terminated string (borrowed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_config_set_log_level(config: *mut rtm2_config, level: *const c_char) -> i32 {
    with_config(config, |c| {
        let level = unsafe { borrow_str(level, "level") }?;
        if rtm2_core::logging::parse_level(level).is_none() {
            return Err(FfiError::rtm(
                ErrorCode::INVALID_PARAMETER,
                format!("log level {level:?} is not error, warn, info, debug or trace"),
            ));
        }
        c.log_level = level.to_string();
        Ok(())
    })
}

/// Makes the SDK append its logs to the file at `path` (process-wide, from the first client
/// made with a log file on, unless the process already routes logs elsewhere). NULL or `""`
/// turns it off for clients made later.
///
/// # Safety
/// `config` is a live config; `path` NULL or a NUL-terminated string (borrowed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_config_set_log_file(config: *mut rtm2_config, path: *const c_char) -> i32 {
    with_config(config, |c| {
        let path = unsafe { crate::ptr::borrow_opt_str(path, "path") }?;
        c.log_file = path.filter(|p| !p.is_empty()).map(Into::into);
        Ok(())
    })
}

/// Sets end-to-end encryption (default: none). With a mode, every message-channel,
/// peer-to-peer and topic payload and every presence state value this client sends is
/// encrypted before it leaves the process (the server holds only ciphertext), and what it
/// receives is decrypted; every client of a conversation needs the same mode, key and salt.
///
/// * `mode`: `RTM2_ENCRYPTION_MODE_NONE` (turns encryption off: then the key must be `""` and
///   the salt empty), `RTM2_ENCRYPTION_MODE_AES_128_GCM` or `RTM2_ENCRYPTION_MODE_AES_256_GCM`.
/// * `cipher_key`: the shared secret, a non-empty string with a mode (`""` with NONE).
/// * `salt`, `salt_len`: at most `RTM2_ENCRYPTION_SALT_MAX_LEN` (32) bytes, shared like the
///   key; a shorter salt is zero-padded to 32 bytes (as the RTM 2 reference does). `(NULL, 0)`
///   is the empty salt.
///
/// The setter checks everything `rtm2_client_new` would, at once, like the other setters: it
/// fails with 10020 INVALID_ENCRYPTION_PARAMETER for a `mode` that is none of the three, an
/// empty key with a mode, a key or salt with NONE (the messages would go out in clear), or a
/// `salt_len` over 32 (whatever the mode; checked before `salt` is
/// read, so a wrong length never makes the SDK read past the caller's buffer); with
/// `RTM2_ERR_NULL_PARAMETER` for a NULL `config` or `cipher_key`, or a NULL `salt` with a
/// non-zero `salt_len`; with `RTM2_ERR_INVALID_UTF8` for a key that is not UTF-8. The reason
/// (`rtm2_last_error_message`) never contains the key or salt. On failure the config is
/// unchanged. The key and salt are copied.
///
/// A message that does not decrypt with the receiving client's settings (another key, salt or
/// mode, a plain message to an encrypting client, an encrypted one to a plain client, tampered
/// bytes) is dropped — never delivered as garbage — and counted: see
/// `rtm2_client_get_undecryptable_messages`. A presence state value that does not decrypt is
/// left out of the states the client reports.
///
/// # Safety
/// `config` is a live config; `cipher_key` a NUL-terminated string (borrowed); `salt` NULL or
/// `salt_len` readable bytes (borrowed; not read when `salt_len` is over 32).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rtm2_config_set_encryption(
    config: *mut rtm2_config,
    mode: u32,
    cipher_key: *const c_char,
    salt: *const u8,
    salt_len: usize,
) -> i32 {
    with_config(config, |c| {
        let bad = |why: String| FfiError::rtm(ErrorCode::INVALID_ENCRYPTION_PARAMETER, why);
        // The length first: a wrong one must not make us read past the caller's buffer.
        if salt_len > RTM2_ENCRYPTION_SALT_MAX_LEN {
            return Err(bad(format!(
                "salt_len is {salt_len}; the salt is at most {RTM2_ENCRYPTION_SALT_MAX_LEN} bytes"
            )));
        }
        let key = unsafe { borrow_str(cipher_key, "cipher_key") }?;
        let salt = unsafe { borrow_bytes(salt.cast(), salt_len, "salt") }?;
        let mode = EncryptionMode::from_u32(mode).ok_or_else(|| {
            bad(format!("encryption mode {mode} is not NONE (0), AES_128_GCM (1) or AES_256_GCM (2)"))
        })?;
        let encryption = EncryptionConfig::new(mode, key, salt);
        encryption.check().map_err(|e| bad(e.reason))?;
        c.encryption = encryption;
        Ok(())
    })
}

/// Checks that a config pointer is non-NULL and borrows it.
///
/// # Safety
/// `config` is NULL or a live config.
pub(crate) unsafe fn borrow_config<'a>(config: *const rtm2_config) -> FfiResult<&'a rtm2_config> {
    unsafe { borrow(config, "config") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_config() -> *mut rtm2_config {
        let mut cfg = std::ptr::null_mut();
        assert_eq!(
            unsafe { rtm2_config_new(c"0123456789abcdef0123456789abcdef".as_ptr(), c"u".as_ptr(), &mut cfg) },
            0
        );
        cfg
    }

    /// The setter refuses exactly what `Client::new` would refuse, so a config it accepted
    /// always makes a client: the salt limit is the core's.
    #[test]
    fn encryption_setter_has_the_core_rules() {
        let cfg = new_config();
        let salt = [7u8; 33];
        let set = |mode, key: &std::ffi::CStr, len| unsafe {
            rtm2_config_set_encryption(cfg, mode, key.as_ptr(), salt.as_ptr(), len)
        };
        let refused = ErrorCode::INVALID_ENCRYPTION_PARAMETER as i32;
        assert_eq!(set(1, c"k", RTM2_ENCRYPTION_SALT_MAX_LEN), 0);
        let client = rtm2_core::Client::new(unsafe { &*cfg }.client_config());
        assert!(client.is_ok());
        drop(client);
        assert_eq!(set(2, c"k", RTM2_ENCRYPTION_SALT_MAX_LEN + 1), refused);
        assert_eq!(set(1, c"", 4), refused);
        assert_eq!(set(3, c"k", 4), refused);
        // Refused settings leave the config as it was.
        assert_eq!(unsafe { &*cfg }.inner.encryption.salt.len(), RTM2_ENCRYPTION_SALT_MAX_LEN);
        let mut core = unsafe { &*cfg }.client_config();
        core.encryption.salt = salt.to_vec();
        let e = rtm2_core::Client::new(core).err().expect("33 bytes refused by the core");
        assert_eq!(e.code, ErrorCode::INVALID_ENCRYPTION_PARAMETER);
        // NONE forgets the key and salt.
        assert_eq!(set(crate::constants::RTM2_ENCRYPTION_MODE_NONE, c"", 0), 0);
        assert!(unsafe { &*cfg }.inner.encryption == EncryptionConfig::default());
        unsafe { rtm2_config_free(cfg) };
    }
}
