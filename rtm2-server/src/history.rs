//! Message history (`Publish.store_in_history`, `GetMessages`): stored messages of message
//! channels and user channels, in the server's store — the crash-safe database of `--data-dir`
//! (an acknowledged stored message is on disk), or memory.
//!
//! * A stored message gets a timestamp unique within its channel's history (the publish time,
//!   or one more than the channel's newest), delivered with the message too, so that paging by
//!   timestamp (`start` exclusive) never skips a message.
//! * Retention, per server: the newest `history_max_per_channel` messages of each channel, at
//!   most `history_max_age` old; older ones are removed when the channel is next written and
//!   never returned.
//! * A user channel's history is the receiver's: stored under its user id, read only by it.
//! * A publish without `store_in_history` does not come here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;

use rtm2_proto::ErrorCode;
use rtm2_proto::enums::ChannelType;
use rtm2_proto::pb;
use rtm2_proto::validate::{self, Violation};

use crate::engine::{Engine, Reply};
use crate::group_commit::{GroupCommit, Ticket};
use crate::session::Session;
use crate::store::{HistoryAppend, Store};

/// Messages a `GetMessages` returns at most (and when it asks for 0).
pub(crate) const MAX_PAGE: usize = 100;
/// Widest `start - end` a query may ask for, ms (the reference's 24 h).
const MAX_SPAN_MS: u64 = 24 * 3600 * 1000;

/// The history of every channel of a server.
pub(crate) struct History {
    store: Arc<dyn Store>,
    max_per_channel: usize,
    max_age: Duration,
    /// Per channel key: (records, newest timestamp), read from the store on first use; held
    /// across a write and the delivery of what was written, so that timestamps increase one
    /// write at a time and receivers get stored messages in timestamp order.
    channels: Mutex<HashMap<String, (usize, u64)>>,
    /// When this history began to see publishes (ms): what was published before (before a
    /// restart) and not stored is unknown to it.
    started_ms: u64,
    /// Appends to a durable store, committed together (`group_commit.rs`).
    group: GroupCommit,
    /// Records commits removed beyond their planned trim (retention by age), per channel key:
    /// taken off the channel's cached count at its next write.
    trimmed: Mutex<HashMap<String, usize>>,
    /// A commit failed: the cached counts and timestamps are read from the store again.
    stale: AtomicBool,
}

fn key(app: &str, channel_type: ChannelType, channel: &str) -> String {
    // An app id has a fixed length and no '/'; a name has no NUL.
    format!("{app}/{}/{channel}", channel_type as u32)
}

impl History {
    pub(crate) fn new(store: Arc<dyn Store>, max_per_channel: usize, max_age: Duration) -> History {
        History {
            store,
            max_per_channel: max_per_channel.max(1),
            max_age,
            channels: Mutex::default(),
            started_ms: rtm2_proto::now_ms(),
            group: GroupCommit::new(),
            trimmed: Mutex::default(),
            stale: AtomicBool::new(false),
        }
    }

    /// Stores a message (its `timestamp_ms` is set here), then calls `then` with its timestamp
    /// — still holding the history's lock, so that what `then` delivers is delivered in
    /// timestamp order. With a durable store the message is staged for a group commit: it is
    /// on disk once [`wait`](Self::wait) for the returned ticket succeeds (a memory store
    /// writes it at once: ticket 0).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn store<T>(
        &self,
        app: &str,
        channel_type: ChannelType,
        channel: &str,
        mut m: pb::HistoryMessage,
        now_ms: u64,
        then: impl FnOnce(u64) -> T,
    ) -> std::io::Result<(T, Ticket)> {
        let key = key(app, channel_type, channel);
        let mut channels = self.channels.lock().unwrap();
        if self.stale.swap(false, Ordering::AcqRel) {
            // (What is still staged is written first: the store must know every timestamp given.)
            let _ = self.wait(self.group.pending());
            channels.clear();
        }
        let (mut count, last) = match channels.get(&key) {
            Some(c) => *c,
            None => self.store.history_stat(&key)?,
        };
        if let Some(extra) = self.trimmed.lock().unwrap().remove(&key) {
            count = count.saturating_sub(extra);
        }
        let ts = now_ms.max(last + 1);
        m.timestamp_ms = ts;
        let append = HistoryAppend {
            channel: key,
            ts,
            record: m.encode_to_vec(),
            min_ts: now_ms.saturating_sub(self.max_age.as_millis() as u64),
            drop: (count + 1).saturating_sub(self.max_per_channel),
        };
        let ticket = if self.store.durable() {
            channels.insert(append.channel.clone(), (count + 1 - append.drop, ts));
            self.group.stage(append)
        } else {
            let removed = self.store.history_append(std::slice::from_ref(&append))?[0];
            channels.insert(append.channel, (count + 1 - removed.min(count + 1), ts));
            0
        };
        Ok((then(ts), ticket))
    }

    /// Waits until the messages staged with `ticket` are on disk (see `group_commit.rs`).
    pub(crate) fn wait(&self, ticket: Ticket) -> std::io::Result<()> {
        if ticket == 0 {
            return Ok(());
        }
        let r = blocking(|| {
            self.group.wait(&*self.store, ticket, |trimmed| {
                let mut extra = self.trimmed.lock().unwrap();
                for (key, n) in trimmed.iter().filter(|(_, n)| *n > 0) {
                    *extra.entry(key.clone()).or_default() += n;
                }
            })
        });
        if r.is_err() {
            self.stale.store(true, Ordering::Release);
        }
        r
    }

    /// The stored messages of a channel newer than `after_ms`, oldest first (the newest `max`
    /// of them), and whether the history holds every message stored there since `after_ms`
    /// (none left out by `max`, removed by retention, or stored before a restart it does not
    /// know of). Read under the history's lock: a stored message is either in the answer or
    /// delivered after it (to a subscriber), never both after it nor neither.
    pub(crate) fn recover(
        &self,
        app: &str,
        channel_type: ChannelType,
        channel: &str,
        after_ms: u64,
        max: usize,
        now_ms: u64,
    ) -> std::io::Result<(Vec<pb::HistoryMessage>, bool)> {
        let key = key(app, channel_type, channel);
        let channels = self.channels.lock().unwrap();
        // Everything staged is written first (nothing new is staged meanwhile: that takes the
        // lock held here).
        self.wait(self.group.pending())?;
        let mut rows = self.store.history_read(&key, u64::MAX, after_ms.saturating_add(1), max + 1)?;
        let mut complete = rows.len() <= max
            && after_ms.saturating_add(1) >= self.started_ms
            && after_ms >= now_ms.saturating_sub(self.max_age.as_millis() as u64);
        if complete {
            // Retention removes the oldest first: if it removed a message newer than
            // `after_ms`, none older is left, and the channel is full.
            let count = match channels.get(&key) {
                Some((count, _)) => *count,
                None => self.store.history_stat(&key)?.0,
            };
            complete = count < self.max_per_channel || !self.store.history_read(&key, after_ms + 1, 0, 1)?.is_empty();
        }
        drop(channels);
        rows.truncate(max);
        let mut messages = Vec::with_capacity(rows.len());
        for (_, record) in rows.into_iter().rev() {
            match pb::HistoryMessage::decode(record.as_slice()) {
                Ok(m) => messages.push(m),
                Err(e) => {
                    tracing::error!(channel, error = %e, "history: a damaged record is left out of a recovery");
                    complete = false;
                }
            }
        }
        Ok((messages, complete))
    }

    /// A page of a channel's history, newest first (see `pb::GetMessages`).
    pub(crate) fn query(
        &self,
        app: &str,
        channel_type: ChannelType,
        channel: &str,
        r: &pb::GetMessages,
        now_ms: u64,
    ) -> Result<pb::MessageList, Violation> {
        if r.start > 0 && r.end > 0 && (r.start <= r.end || r.start - r.end > MAX_SPAN_MS) {
            return Err(Violation::new(
                ErrorCode::HISTORY_INVALID_TIMESTAMP,
                format!("start ({}) must be after end ({}) and at most 24 h after it", r.start, r.end),
            ));
        }
        let count = match r.message_count as usize {
            0 => MAX_PAGE,
            n => n.min(MAX_PAGE),
        };
        let oldest = now_ms.saturating_sub(self.max_age.as_millis() as u64);
        let end = r.end.max(oldest);
        let start = if r.start == 0 { u64::MAX } else { r.start };
        let key = key(app, channel_type, channel);
        self.wait(self.group.pending())
            .map_err(|e| Violation::new(ErrorCode::HISTORY_OPERATION_FAILED, format!("history store: {e}")))?;
        // One more than asked: whether older messages remain.
        let mut rows = self
            .store
            .history_read(&key, start, end, count + 1)
            .map_err(|e| Violation::new(ErrorCode::HISTORY_OPERATION_FAILED, format!("history store: {e}")))?;
        let more = rows.len() > count;
        rows.truncate(count);
        let mut messages = Vec::with_capacity(rows.len());
        for (_, record) in rows {
            let m = pb::HistoryMessage::decode(record.as_slice())
                .map_err(|e| Violation::new(ErrorCode::HISTORY_OPERATION_FAILED, format!("a damaged record: {e}")))?;
            messages.push(m);
        }
        let new_start = if more { messages.last().map_or(0, |m| m.timestamp_ms) } else { 0 };
        Ok(pb::MessageList { messages, new_start })
    }
}

/// Runs a store write that may wait for the disk: on a multi-threaded runtime the worker hands
/// its other tasks over first (`block_in_place`).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// `GetMessages` of a session: a message channel, or its own user channel (15004 for
/// another's). In a cluster history is not available yet (15005).
pub(crate) fn get_messages(engine: &Engine, session: &Arc<Session>, r: pb::GetMessages) -> Reply {
    if engine.cluster.is_some() {
        return Err(not_in_a_cluster());
    }
    let channel_type = channel_of(session, r.channel_type, &r.channel)?;
    let list = engine.history.query(&session.app.id, channel_type, &r.channel, &r, rtm2_proto::now_ms())?;
    Ok(Some(pb::response::Result::MessageList(list)))
}

/// Messages a `RecoverMessages` returns at most (and when it asks for 0).
pub(crate) const MAX_RECOVERED: usize = 1000;

/// `RecoverMessages` of a session (see `pb::RecoverMessages`): a message channel, whose
/// recovery is complete only if no message was published there without being stored since
/// `after_ms`, or its own user channel.
pub(crate) fn recover(engine: &Engine, session: &Arc<Session>, r: pb::RecoverMessages) -> Reply {
    if engine.cluster.is_some() {
        return Err(not_in_a_cluster());
    }
    let channel_type = channel_of(session, r.channel_type, &r.channel)?;
    let max = match r.max as usize {
        0 => MAX_RECOVERED,
        n => n.min(MAX_RECOVERED),
    };
    let (messages, mut complete) = engine
        .history
        .recover(&session.app.id, channel_type, &r.channel, r.after_ms, max, rtm2_proto::now_ms())
        .map_err(|e| Violation::new(ErrorCode::HISTORY_OPERATION_FAILED, format!("history store: {e}")))?;
    if channel_type == ChannelType::MESSAGE {
        // (`<`: one of the same millisecond may be later than the client's last message.)
        complete &= session.app.last_unstored(&r.channel) < r.after_ms;
    }
    Ok(Some(pb::response::Result::RecoveredMessages(pb::RecoveredMessages { messages, complete })))
}

/// The history a session may read: a message channel, or its own user channel (15004 for
/// another's).
fn channel_of(session: &Session, channel_type: u32, channel: &str) -> Result<ChannelType, Violation> {
    match ChannelType::from_u32(channel_type) {
        Some(ChannelType::MESSAGE) => {
            validate::channel_name(channel)?;
            Ok(ChannelType::MESSAGE)
        }
        Some(ChannelType::USER) => {
            validate::user_id(channel)?;
            if channel != &*session.user_id {
                return Err(Violation::new(
                    ErrorCode::HISTORY_OPERATION_NOT_PERMITTED,
                    "a user channel's history is read by its own user only",
                ));
            }
            Ok(ChannelType::USER)
        }
        _ => Err(Violation::new(
            ErrorCode::INVALID_CHANNEL_TYPE,
            format!("history is kept for MESSAGE (1) and USER (3) channels, not {channel_type}"),
        )),
    }
}

pub(crate) fn not_in_a_cluster() -> Violation {
    Violation::new(ErrorCode::HISTORY_NOT_AVAILABLE, "message history is not available in a cluster yet")
}

/// The stored form of a publish.
pub(crate) fn record(publisher: &str, p: &rtm2_proto::fastpath::PublishRef<'_>) -> pb::HistoryMessage {
    pb::HistoryMessage {
        publisher: publisher.to_string(),
        message_type: p.message_type,
        payload: bytes::Bytes::copy_from_slice(p.payload),
        custom_type: p.custom_type.to_string(),
        timestamp_ms: 0,
        encryption: p.encryption,
    }
}

/// Defaults of `ServerConfig::history_max_per_channel` and `history_max_age`.
pub(crate) const DEFAULT_MAX_PER_CHANNEL: usize = 1000;
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: u32) -> pb::HistoryMessage {
        pb::HistoryMessage { publisher: "p".into(), payload: i.to_string().into_bytes().into(), ..Default::default() }
    }

    fn history(max: usize) -> History {
        let store: Arc<dyn Store> = crate::store::open(&crate::MetadataStore::Memory, false).unwrap().into();
        History::new(store, max, Duration::from_secs(3600))
    }

    fn page(h: &History, start: u64, end: u64, n: u32, now: u64) -> Result<pb::MessageList, Violation> {
        let r = pb::GetMessages { message_count: n, start, end, ..Default::default() };
        h.query("app", ChannelType::MESSAGE, "c", &r, now)
    }

    #[test]
    fn timestamps_are_unique_and_pages_go_back_without_a_gap() {
        let h = history(1000);
        // 250 messages in the same millisecond: each gets its own timestamp.
        let ts: Vec<u64> =
            (0..250).map(|i| h.store("app", ChannelType::MESSAGE, "c", msg(i), 1_000, |ts| ts).unwrap().0).collect();
        assert_eq!(ts[0], 1_000);
        assert!(ts.windows(2).all(|w| w[1] == w[0] + 1));
        let now = 2_000;
        let mut seen = Vec::new();
        let mut start = 0;
        loop {
            let p = page(&h, start, 0, 100, now).unwrap();
            seen.extend(p.messages.iter().map(|m| String::from_utf8(m.payload.to_vec()).unwrap()));
            if p.new_start == 0 {
                break;
            }
            start = p.new_start;
        }
        let want: Vec<String> = (0..250).rev().map(|i| i.to_string()).collect();
        assert_eq!(seen, want);
        // end is inclusive, start exclusive; 0 or over 100 means 100.
        let p = page(&h, 1_010, 1_005, 0, now).unwrap();
        assert_eq!(p.messages.iter().map(|m| m.timestamp_ms).collect::<Vec<_>>(), [1_009, 1_008, 1_007, 1_006, 1_005]);
        assert_eq!((p.new_start, page(&h, 0, 0, 500, now).unwrap().messages.len()), (0, 100));
    }

    #[test]
    fn retention_keeps_the_newest_and_the_recent_and_ranges_are_checked() {
        let h = history(10);
        for i in 0..25 {
            h.store("app", ChannelType::MESSAGE, "c", msg(i), 1_000 + i as u64, |ts| ts).unwrap();
        }
        let p = page(&h, 0, 0, 100, 2_000).unwrap();
        assert_eq!(p.messages.len(), 10);
        assert_eq!(p.messages[9].payload.as_ref(), b"15");
        // Older than the age limit (an hour): not returned.
        assert!(page(&h, 0, 0, 100, 1_000 + 3_600_000 + 100).unwrap().messages.is_empty());
        for (start, end) in [(5, 5), (5, 9), (MAX_SPAN_MS + 10, 5)] {
            assert_eq!(page(&h, start, end, 10, 2_000).unwrap_err().code, ErrorCode::HISTORY_INVALID_TIMESTAMP);
        }
    }
}
