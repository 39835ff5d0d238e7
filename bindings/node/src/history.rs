//! `NativeHistory`: the history service of a client (messages published with
//! `storeInHistory`), in agora-rtm-sdk shapes (`rtm.history.getMessages`).

use napi::Env;
use napi::bindgen_prelude::{Either, Object, Uint8Array};
use napi_derive::napi;

use rtm2_core::{GetMessagesOptions, MessageType};

use crate::client::Shared;
use crate::convert;
use crate::op::{self, CancelToken};

/// Options of `getMessages` (agora-rtm-sdk names; all default 0).
#[napi(object)]
pub struct NativeGetMessagesOptions {
    /// Messages per page, 1..100 (0 or none: 100).
    pub message_count: Option<u32>,
    /// Only messages before this server timestamp, ms (exclusive; 0: from the newest).
    pub start: Option<f64>,
    /// Only messages at or after this server timestamp, ms (inclusive; 0: no bound).
    pub end: Option<f64>,
}

/// A stored message.
#[napi(object)]
pub struct HistoryMessage {
    /// A string for STRING messages, a Uint8Array for BINARY ones (as in `message` events).
    pub message: Either<String, Uint8Array>,
    /// `'STRING'` or `'BINARY'`.
    pub message_type: String,
    pub custom_type: String,
    pub publisher: String,
    /// The server's timestamp, ms since the epoch (unique within the channel's history).
    pub timestamp: f64,
}

/// One page of a channel's history, newest first.
#[napi(object)]
pub struct HistoryPage {
    pub message_list: Vec<HistoryMessage>,
    /// `messageList.length`.
    pub count: u32,
    /// 0: nothing older; else the `start` of the next (older) page.
    pub new_start: f64,
    /// The server's time of the answer, ms since the epoch.
    pub timestamp: f64,
}

/// A timestamp option: a non-negative integer number of ms (else 10014).
fn timestamp(v: Option<f64>, what: &str, op: &'static str) -> rtm2_core::Result<u64> {
    match v {
        None => Ok(0),
        Some(x) if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= 9_007_199_254_740_991.0 => Ok(x as u64),
        Some(x) => Err(crate::error::new(
            rtm2_core::ErrorCode::INVALID_PARAMETER,
            op,
            format!("{what} must be a non-negative integer (ms), got {x}"),
        )),
    }
}

/// The history service of a client. `getMessages` returns a Promise, takes the channel type by
/// name (`'MESSAGE'` default, `'USER'`; others fail with 10019), an optional per-call timeout
/// (ms) and a cancel token.
#[napi]
pub struct NativeHistory {
    client: Shared,
}

impl NativeHistory {
    pub(crate) fn new(client: Shared) -> Self {
        NativeHistory { client }
    }
}

#[napi]
impl NativeHistory {
    /// A page of the stored messages of a message channel, or of this client's own user
    /// channel (another user's: 15004), newest first.
    #[napi(ts_return_type = "Promise<HistoryPage>")]
    pub fn get_messages<'e>(
        &self,
        env: &'e Env,
        channel: String,
        channel_type: Option<String>,
        options: Option<NativeGetMessagesOptions>,
        timeout_ms: Option<u32>,
        cancel: Option<&CancelToken>,
    ) -> napi::Result<Object<'e>> {
        let op = "get_messages";
        let started = (|| {
            let t = convert::channel_type(channel_type.as_deref(), op)?;
            let mut o = GetMessagesOptions::default();
            if let Some(x) = options {
                o.message_count = x.message_count.unwrap_or(0);
                o.start = timestamp(x.start, "start", op)?;
                o.end = timestamp(x.end, "end", op)?;
            }
            Ok(self.client.get(op, timeout_ms)?.history().get_messages(&channel, t, o))
        })();
        match started {
            Ok(call) => op::promise(env, cancel, async move {
                let r = call.await?;
                let timestamp = r.timestamp_ms as f64;
                let page = r.into_inner();
                let message_list: Vec<HistoryMessage> = page
                    .messages
                    .into_iter()
                    .map(|m| HistoryMessage {
                        message: match m.message_type {
                            MessageType::STRING => Either::A(String::from_utf8_lossy(&m.payload).into_owned()),
                            MessageType::BINARY => Either::B(Uint8Array::new(m.payload.to_vec())),
                        },
                        message_type: m.message_type.name().to_string(),
                        custom_type: m.custom_type,
                        publisher: m.publisher,
                        timestamp: m.timestamp_ms as f64,
                    })
                    .collect();
                Ok(HistoryPage {
                    count: message_list.len() as u32,
                    message_list,
                    new_start: page.new_start as f64,
                    timestamp,
                })
            }),
            Err(e) => op::rejected(env, e),
        }
    }
}
