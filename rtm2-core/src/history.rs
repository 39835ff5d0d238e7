//! Message history: messages published with `PublishOptions::store_in_history`, read back a
//! page at a time (`Client::history`).

use std::sync::Arc;

use bytes::Bytes;
use rtm2_proto::enums::{ChannelType, MessageType};
use rtm2_proto::pb::{self, client_frame};
use rtm2_proto::{ErrorCode, validate};

use crate::client::{Client, try_op};
use crate::error::{Error, Result};
use crate::runtime::Op;
use crate::types::Timed;

/// Options of [`History::get_messages`] (the reference's `{messageCount, start, end}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GetMessagesOptions {
    /// Messages per page: 1..=100; 0 (the default) or more than 100 means 100.
    pub message_count: u32,
    /// Only messages before this server timestamp, ms (exclusive); 0 = from the newest. Pass
    /// an answer's `new_start` here for the next (older) page.
    pub start: u64,
    /// Only messages at or after this server timestamp, ms; 0 = no bound. With `start`:
    /// `start > end` and at most 24 h apart (else 15002).
    pub end: u64,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    /// STRING or BINARY.
    pub message_type: MessageType,
    /// The payload (decrypted, when the client encrypts).
    pub payload: Bytes,
    /// Application-defined type.
    pub custom_type: String,
    /// Who published it.
    pub publisher: String,
    /// The server's timestamp (unique within the channel's history), ms since the epoch.
    pub timestamp_ms: u64,
}

impl HistoryMessage {
    /// The payload as text, if it is a STRING message.
    pub fn text(&self) -> Option<&str> {
        match self.message_type {
            MessageType::STRING => std::str::from_utf8(&self.payload).ok(),
            MessageType::BINARY => None,
        }
    }
}

/// A page of a channel's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryPage {
    /// The messages, newest first (those that do not decrypt with this client's encryption
    /// settings are left out, as the reference does).
    pub messages: Vec<HistoryMessage>,
    /// 0: no older message; else pass it as `start` for the next page.
    pub new_start: u64,
}

/// The history service of a client (`Client::history`).
#[derive(Clone)]
pub struct History {
    pub(crate) client: Client,
}

impl History {
    /// A page of the stored messages of a message channel, or of this client's own user
    /// channel (`channel` = its user id; another user's: 15004), newest first.
    pub fn get_messages(
        &self,
        channel: &str,
        channel_type: ChannelType,
        options: GetMessagesOptions,
    ) -> Op<Result<Timed<HistoryPage>>> {
        let op = "get_messages";
        let v = |r: std::result::Result<(), validate::Violation>| r.map_err(|v| Error::from_violation(op, v));
        match channel_type {
            ChannelType::MESSAGE => try_op!(v(validate::channel_name(channel))),
            ChannelType::USER => try_op!(v(validate::user_id(channel))),
            other => {
                return Op::ready(Err(Error::new(
                    ErrorCode::INVALID_CHANNEL_TYPE,
                    op,
                    format!("history is kept for MESSAGE and USER channels, not {}", other.name()),
                )));
            }
        }
        let inner = self.client.inner.clone();
        let reply = inner.submit(
            op,
            ErrorCode::HISTORY_OPERATION_TIMEOUT,
            client_frame::Body::GetMessages(pb::GetMessages {
                channel: channel.to_string(),
                channel_type: channel_type as u32,
                message_count: options.message_count,
                start: options.start,
                end: options.end,
            }),
            self.client.timeout(),
        );
        let channel = channel.to_string();
        Op::lazy(async move {
            let resp = reply.await?;
            let ts = resp.server_time_ms;
            let list = match resp.result {
                Some(pb::response::Result::MessageList(l)) => l,
                _ => return Err(Error::new(ErrorCode::HISTORY_OPERATION_FAILED, op, "the server sent no messages")),
            };
            Ok(Timed { value: page(&inner, channel_type, &channel, list), timestamp_ms: ts })
        })
    }
}

fn page(
    inner: &Arc<crate::client::Inner>,
    channel_type: ChannelType,
    channel: &str,
    list: pb::MessageList,
) -> HistoryPage {
    let messages = list
        .messages
        .into_iter()
        .filter_map(|m| {
            let message_type = MessageType::from_u32(m.message_type).unwrap_or(MessageType::BINARY);
            let place = crate::encryption::Place {
                channel_type: channel_type as u32,
                channel,
                topic: "",
                publisher: &m.publisher,
                message_type: m.message_type,
                custom_type: &m.custom_type,
            };
            let payload = inner.e2ee.open_stored(&place, m.encryption, m.payload)?;
            Some(HistoryMessage {
                message_type,
                payload,
                custom_type: m.custom_type,
                publisher: m.publisher,
                timestamp_ms: m.timestamp_ms,
            })
        })
        .collect();
    HistoryPage { messages, new_start: list.new_start }
}
