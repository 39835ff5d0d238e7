//! End-to-end encryption (`ClientConfig::encryption`): message payloads, topic messages and
//! presence state values are encrypted in the SDK before they leave the process and decrypted
//! on receipt, so the server (and whatever it stores) holds only ciphertext.
//!
//! * Keys: HKDF-SHA-256 over the cipher key's bytes, with the 32-byte salt (a shorter one is
//!   zero-padded, as the reference does) and the mode's name as context, gives the 16 or 32
//!   bytes of AES-128-GCM or AES-256-GCM (RustCrypto `aes-gcm`, `hkdf`).
//! * A sealed payload is a fresh random 12-byte nonce, the ciphertext and the 16-byte tag; its
//!   message names the mode (`Publish.encryption`). The associated data binds it to where it
//!   was published and by whom — channel type, channel, topic, publisher, message type and
//!   custom type — so a server cannot replay it elsewhere or as another user's.
//! * A presence state value is `rtm2e1:` and the base64 of a sealed value, bound to the channel,
//!   the user and the key.
//! * A message that does not decrypt with this client's configuration — another key, another
//!   mode, a plain message to an encrypting client or an encrypted one to a plain client,
//!   tampered bytes — is dropped and counted (`Client::undecryptable_messages`), and logged once
//!   per client; never delivered as garbage. A state value that does not decrypt is left out.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use base64::Engine as _;
use bytes::Bytes;
use rand::RngCore;

use rtm2_proto::enums::ChannelType;
pub use rtm2_proto::enums::EncryptionMode;
use rtm2_proto::pb;
use rtm2_proto::{ErrorCode, limits};

use crate::error::{Error, Result};
use crate::types::MessageEvent;

/// Bytes of the salt; a shorter one is zero-padded.
pub const SALT_LEN: usize = 32;
/// The prefix of an encrypted presence state value.
pub const STATE_PREFIX: &str = limits::ENCRYPTED_STATE_PREFIX;
const NONCE_LEN: usize = 12;

/// How a client encrypts (`ClientConfig::encryption`); the default is no encryption.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionConfig {
    /// NONE (default), AES_128_GCM or AES_256_GCM.
    pub mode: EncryptionMode,
    /// The secret every client of the conversation shares (any non-empty string).
    pub cipher_key: String,
    /// At most 32 bytes, zero-padded to 32 (shared like the key).
    pub salt: Vec<u8>,
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        EncryptionConfig { mode: EncryptionMode::NONE, cipher_key: String::new(), salt: Vec::new() }
    }
}

impl std::fmt::Debug for EncryptionConfig {
    // The key and salt are secrets: never in logs or debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionConfig")
            .field("mode", &self.mode)
            .field("cipher_key", &if self.cipher_key.is_empty() { "" } else { "<set>" })
            .field("salt", &format_args!("<{} bytes>", self.salt.len()))
            .finish()
    }
}

impl EncryptionConfig {
    /// Encryption with `mode`, `cipher_key` and `salt`.
    pub fn new(mode: EncryptionMode, cipher_key: impl Into<String>, salt: impl Into<Vec<u8>>) -> Self {
        EncryptionConfig { mode, cipher_key: cipher_key.into(), salt: salt.into() }
    }

    /// The check `Client::new` makes: 10020 for a salt over [`SALT_LEN`] bytes, an empty key
    /// with a mode, or a key or salt without one.
    pub fn check(&self) -> Result<()> {
        E2ee::new(self).map(|_| ())
    }
}

enum Aes {
    A128(Box<Aes128Gcm>),
    A256(Box<Aes256Gcm>),
}

/// A client's cipher (`None` without encryption) and what it dropped.
pub(crate) struct E2ee {
    cipher: Option<(EncryptionMode, Aes)>,
    dropped: AtomicU64,
    logged: AtomicBool,
}

impl E2ee {
    /// Checks the configuration: 10020 for a salt over 32 bytes, an empty key with a mode, or
    /// a key or salt without a mode (the messages would go out in clear).
    pub(crate) fn new(c: &EncryptionConfig) -> Result<E2ee> {
        let bad = |why: &str| Error::new(ErrorCode::INVALID_ENCRYPTION_PARAMETER, "new", why.to_string());
        if c.salt.len() > SALT_LEN {
            return Err(bad(&format!("the salt is {} bytes; at most {SALT_LEN}", c.salt.len())));
        }
        let cipher = match c.mode {
            EncryptionMode::NONE if !c.cipher_key.is_empty() || !c.salt.is_empty() => {
                return Err(bad(
                    "a cipher key or salt without an encryption mode: set the mode (messages would go out in clear) or leave them out",
                ));
            }
            EncryptionMode::NONE => None,
            mode => {
                if c.cipher_key.is_empty() {
                    return Err(bad("encryption needs a cipher key (a non-empty string)"));
                }
                let mut salt = [0u8; SALT_LEN];
                salt[..c.salt.len()].copy_from_slice(&c.salt);
                let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), c.cipher_key.as_bytes());
                let info = format!("rtm2 end-to-end {}", mode.name());
                let aes = if mode == EncryptionMode::AES_128_GCM {
                    let mut key = [0u8; 16];
                    hk.expand(info.as_bytes(), &mut key).expect("16 bytes are a valid HKDF length");
                    Aes::A128(Box::new(Aes128Gcm::new(&key.into())))
                } else {
                    let mut key = [0u8; 32];
                    hk.expand(info.as_bytes(), &mut key).expect("32 bytes are a valid HKDF length");
                    Aes::A256(Box::new(Aes256Gcm::new(&key.into())))
                };
                Some((mode, aes))
            }
        };
        Ok(E2ee { cipher, dropped: AtomicU64::new(0), logged: AtomicBool::new(false) })
    }

    /// The mode number a publish names (0 without encryption).
    pub(crate) fn mode(&self) -> u32 {
        self.cipher.as_ref().map_or(0, |(m, _)| *m as u32)
    }

    /// Messages dropped because they did not decrypt with this configuration.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn seal_bytes(&self, aad: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
        let (_, aes) = self.cipher.as_ref()?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload { msg: plain, aad };
        let sealed = match aes {
            Aes::A128(a) => a.encrypt(Nonce::from_slice(&nonce), payload),
            Aes::A256(a) => a.encrypt(Nonce::from_slice(&nonce), payload),
        }
        .expect("AES-GCM encrypts any length the limits allow");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn open_bytes(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (_, aes) = self.cipher.as_ref()?;
        if sealed.len() < limits::ENCRYPTION_OVERHEAD {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let payload = Payload { msg: rest, aad };
        match aes {
            Aes::A128(a) => a.decrypt(Nonce::from_slice(nonce), payload).ok(),
            Aes::A256(a) => a.decrypt(Nonce::from_slice(nonce), payload).ok(),
        }
    }

    /// The payload to publish: sealed for this publish's place, or `None` without encryption.
    pub(crate) fn seal_message(&self, place: &Place<'_>, plain: &[u8]) -> Option<Bytes> {
        self.seal_bytes(&place.aad(), plain).map(Bytes::from)
    }

    /// A stored message's payload as this client reads it: decrypted, or as it is when neither
    /// side encrypts; `None` when it does not open with this configuration (left out of a
    /// history page, as the reference does; not counted: it is not a live message).
    pub(crate) fn open_stored(&self, place: &Place<'_>, encryption: u32, payload: Bytes) -> Option<Bytes> {
        match &self.cipher {
            None => (encryption == 0).then_some(payload),
            Some((mode, _)) if encryption == *mode as u32 => self.open_bytes(&place.aad(), &payload).map(Bytes::from),
            Some(_) => None,
        }
    }

    /// Decrypts the messages of a batch in place; drops (and counts) those that do not
    /// decrypt with this configuration. Without encryption, a batch of plain messages is not
    /// touched.
    pub(crate) fn screen(&self, events: &mut Vec<crate::Event>) {
        let plain = |e: &crate::Event| !matches!(e, crate::Event::Message(m) if m.encryption != 0);
        if self.cipher.is_none() && events.iter().all(plain) {
            return;
        }
        let before = events.len();
        events.retain_mut(|e| match e {
            crate::Event::Message(m) => self.open_message(m),
            _ => true,
        });
        self.count(before - events.len());
    }

    /// Decrypts one message in place; false when it does not decrypt here (counted by the caller).
    fn open_message(&self, m: &mut MessageEvent) -> bool {
        match &self.cipher {
            None => m.encryption == 0,
            Some((mode, _)) if m.encryption == *mode as u32 => {
                let place = Place {
                    channel_type: m.channel_type as u32,
                    channel: &m.channel,
                    topic: &m.topic,
                    publisher: &m.publisher,
                    message_type: m.message_type as u32,
                    custom_type: &m.custom_type,
                };
                match self.open_bytes(&place.aad(), &m.payload) {
                    Some(plain) => {
                        m.payload = Bytes::from(plain);
                        m.encryption = 0;
                        true
                    }
                    None => false,
                }
            }
            Some(_) => false,
        }
    }

    fn count(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
        if !self.logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                dropped = n,
                "dropped messages that do not decrypt with this client's encryption configuration (another key, salt or mode, or not encrypted as configured); counted in undecryptable_messages, logged once"
            );
        }
    }

    /// Encrypts the values of presence states this user sets in a channel (unchanged without
    /// encryption).
    pub(crate) fn seal_states(
        &self,
        channel_type: ChannelType,
        channel: &str,
        user: &str,
        items: &mut [pb::StateItem],
    ) {
        if self.cipher.is_none() {
            return;
        }
        for i in items {
            let aad = state_aad(channel_type, channel, user, &i.key);
            if let Some(sealed) = self.seal_bytes(&aad, i.value.as_bytes()) {
                i.value = format!("{STATE_PREFIX}{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(sealed));
            }
        }
    }

    /// Decrypts the state values of `user` in a channel; values that do not decrypt with this
    /// configuration (or are plain while it encrypts, or encrypted while it does not) are left
    /// out.
    pub(crate) fn open_states(
        &self,
        channel_type: ChannelType,
        channel: &str,
        user: &str,
        items: &mut Vec<pb::StateItem>,
    ) {
        if self.cipher.is_none() && !items.iter().any(|i| i.value.starts_with(STATE_PREFIX)) {
            return;
        }
        items.retain_mut(|i| {
            // A plain value: kept by a plain client only.
            let Some(b64) = i.value.strip_prefix(STATE_PREFIX) else { return self.cipher.is_none() };
            let Ok(sealed) = base64::engine::general_purpose::STANDARD_NO_PAD.decode(b64) else { return false };
            let aad = state_aad(channel_type, channel, user, &i.key);
            match self.open_bytes(&aad, &sealed).and_then(|p| String::from_utf8(p).ok()) {
                Some(plain) => {
                    i.value = plain;
                    true
                }
                None => false,
            }
        });
    }

    /// `open_states` for every user state of a presence event.
    pub(crate) fn open_presence(&self, e: &mut pb::PresenceEvent) {
        let t = ChannelType::from_u32(e.channel_type).unwrap_or(ChannelType::NONE);
        self.open_states(t, &e.channel, &e.publisher.clone(), &mut e.states);
        for u in e.snapshot.iter_mut() {
            self.open_states(t, &e.channel, &u.user_id, &mut u.states);
        }
        if let Some(i) = e.interval.as_mut() {
            for u in i.states.iter_mut() {
                self.open_states(t, &e.channel, &u.user_id, &mut u.states);
            }
        }
    }
}

/// Where a message is published, and by whom: its associated data.
pub(crate) struct Place<'a> {
    pub channel_type: u32,
    pub channel: &'a str,
    pub topic: &'a str,
    pub publisher: &'a str,
    pub message_type: u32,
    pub custom_type: &'a str,
}

impl Place<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(32 + self.channel.len() + self.topic.len() + self.publisher.len());
        aad.extend_from_slice(b"rtm2e1m");
        aad.push(self.channel_type as u8);
        aad.push(self.message_type as u8);
        for part in [self.channel, self.topic, self.publisher, self.custom_type] {
            aad.extend_from_slice(&(part.len() as u16).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

fn state_aad(channel_type: ChannelType, channel: &str, user: &str, key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + channel.len() + user.len() + key.len());
    aad.extend_from_slice(b"rtm2e1s");
    aad.push(channel_type as u8);
    for part in [channel, user, key] {
        aad.extend_from_slice(&(part.len() as u16).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e2ee(mode: EncryptionMode, key: &str, salt: &[u8]) -> E2ee {
        E2ee::new(&EncryptionConfig::new(mode, key, salt)).unwrap()
    }

    fn place<'a>(publisher: &'a str) -> Place<'a> {
        Place { channel_type: 1, channel: "room", topic: "", publisher, message_type: 1, custom_type: "" }
    }

    #[test]
    fn sealed_payloads_open_only_with_the_same_key_salt_mode_and_place() {
        let a = e2ee(EncryptionMode::AES_128_GCM, "secret", b"salt");
        let sealed = a.seal_message(&place("alice"), b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + limits::ENCRYPTION_OVERHEAD);
        assert_eq!(a.open_bytes(&place("alice").aad(), &sealed).as_deref(), Some(&b"hello"[..]));
        // A fresh nonce per message.
        assert_ne!(a.seal_message(&place("alice"), b"hello").unwrap(), sealed);
        // Another publisher (a server replaying it as someone else's), key, salt or mode: no.
        assert_eq!(a.open_bytes(&place("mallory").aad(), &sealed), None);
        for other in [
            e2ee(EncryptionMode::AES_128_GCM, "other", b"salt"),
            e2ee(EncryptionMode::AES_128_GCM, "secret", b"pepper"),
            e2ee(EncryptionMode::AES_256_GCM, "secret", b"salt"),
        ] {
            assert_eq!(other.open_bytes(&place("alice").aad(), &sealed), None);
        }
        // A salt shorter than 32 bytes is zero-padded: the same as its padded form.
        let padded = e2ee(
            EncryptionMode::AES_128_GCM,
            "secret",
            b"salt\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        );
        assert_eq!(padded.open_bytes(&place("alice").aad(), &sealed).as_deref(), Some(&b"hello"[..]));
        // Any flipped bit: no.
        for i in [0, 12, sealed.len() - 1] {
            let mut t = sealed.to_vec();
            t[i] ^= 1;
            assert_eq!(a.open_bytes(&place("alice").aad(), &t), None, "byte {i}");
        }
    }

    #[test]
    fn invalid_configurations_are_10020_and_secrets_stay_out_of_debug() {
        for c in [
            EncryptionConfig::new(EncryptionMode::AES_128_GCM, "", b"salt".to_vec()),
            EncryptionConfig::new(EncryptionMode::AES_256_GCM, "k", vec![1u8; 33]),
            EncryptionConfig::new(EncryptionMode::NONE, "", vec![1u8; 33]),
            EncryptionConfig::new(EncryptionMode::NONE, "a key", Vec::new()),
            EncryptionConfig::new(EncryptionMode::NONE, "", b"salt".to_vec()),
        ] {
            assert_eq!(E2ee::new(&c).err().map(|e| e.code), Some(ErrorCode::INVALID_ENCRYPTION_PARAMETER));
        }
        assert_eq!(E2ee::new(&EncryptionConfig::default()).unwrap().mode(), 0);
        let shown = format!("{:?}", EncryptionConfig::new(EncryptionMode::AES_128_GCM, "hunter2", b"pepper".to_vec()));
        assert!(!shown.contains("hunter2") && !shown.contains("pepper"), "{shown}");
    }

    #[test]
    fn states_round_trip_and_foreign_values_are_left_out() {
        let a = e2ee(EncryptionMode::AES_256_GCM, "k", b"s");
        let mut items = vec![pb::StateItem { key: "mood".into(), value: "sunny".into() }];
        a.seal_states(ChannelType::MESSAGE, "room", "alice", &mut items);
        assert!(items[0].value.starts_with(STATE_PREFIX) && !items[0].value.contains("sunny"));
        let sealed = items.clone();
        a.open_states(ChannelType::MESSAGE, "room", "alice", &mut items);
        assert_eq!(items[0].value, "sunny");
        // Moved to another user by the server: left out. A plain value: left out.
        let mut moved = sealed.clone();
        a.open_states(ChannelType::MESSAGE, "room", "bob", &mut moved);
        assert!(moved.is_empty());
        let mut plain = vec![pb::StateItem { key: "k".into(), value: "v".into() }];
        a.open_states(ChannelType::MESSAGE, "room", "alice", &mut plain);
        assert!(plain.is_empty());
        // A plain client leaves encrypted values out and keeps plain ones.
        let none = E2ee::new(&EncryptionConfig::default()).unwrap();
        let mut mixed = vec![sealed[0].clone(), pb::StateItem { key: "k".into(), value: "v".into() }];
        none.open_states(ChannelType::MESSAGE, "room", "alice", &mut mixed);
        assert_eq!(mixed.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), ["k"]);
    }
}
