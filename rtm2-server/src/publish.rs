//! Publishing to message channels and users: the checks, the one encoding of each message, and
//! delivery — to the channel's subscribers here (a connection's run of publishes to one channel
//! delivered together) and, in a cluster, to the other nodes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use rtm2_proto::ErrorCode;
use rtm2_proto::enums::ChannelType;
use rtm2_proto::fastpath::{self, MessageEventRef, PublishRef};
use rtm2_proto::validate::{self, Violation};

use crate::engine::{MsgChannel, Reply};
use crate::group_commit::Ticket;
use crate::session::Session;

/// A message-channel or user-channel publish, borrowed either from a prost-decoded request or
/// straight from the frame bytes (the session's fast path): one set of checks for both.
/// `now_ms` is the message's timestamp. A stored message is on disk (with a data directory)
/// when this returns.
pub(crate) fn publish(session: &Arc<Session>, r: PublishRef<'_>, now_ms: u64) -> Reply {
    let (reply, pending) = publish_deferred(session, r, now_ms);
    match pending {
        Some((history, ticket)) => durable(&history, ticket, reply),
        None => reply,
    }
}

/// `publish`, except that a stored message answered with success may not be on disk yet:
/// then its history and ticket come back, and the answer holds once
/// [`durable`] says so (the session waits once per read batch: `session.rs`).
pub(crate) fn publish_deferred(
    session: &Arc<Session>,
    r: PublishRef<'_>,
    now_ms: u64,
) -> (Reply, Option<(Arc<crate::history::History>, Ticket)>) {
    if let Err(v) = check_publish(&r) {
        return (Err(v), None);
    }
    let channel_type = match ChannelType::from_u32(r.channel_type) {
        Some(ChannelType::USER) => ChannelType::USER,
        _ => ChannelType::MESSAGE,
    };
    let name = match channel_type {
        ChannelType::USER => validate::user_id(r.channel),
        _ => validate::channel_name(r.channel),
    };
    if let Err(v) = name {
        return (Err(v), None);
    }
    if !r.store_in_history {
        return (route(session, channel_type, &r, now_ms, None), None);
    }
    // Stored before it is delivered (the delivered message carries its history timestamp),
    // and delivered under the history's lock: every receiver gets a channel's stored messages
    // in timestamp order (a recovering client relies on it: `history::recover`).
    if session.app.cluster.is_some() {
        return (Err(crate::history::not_in_a_cluster()), None);
    }
    let Some(history) = session.app.history.upgrade() else {
        return (route(session, channel_type, &r, now_ms, Some(false)), None); // the server is shutting down
    };
    let record = crate::history::record(&session.user_id, &r);
    let stored = history.store(&session.app.id, channel_type, r.channel, record, now_ms, |ts| {
        route(session, channel_type, &r, ts, Some(true))
    });
    match stored {
        // Only a success waits for its batch; an answer that says "stored" (11035) waits now.
        Ok((reply @ Ok(None), ticket)) if ticket != 0 => (reply, Some((history, ticket))),
        Ok((reply, ticket)) => {
            let reply = durable(&history, ticket, reply);
            (reply, None)
        }
        Err(e) => {
            tracing::error!(app = %session.app.id, channel = r.channel, error = %e, "history: a message could not be stored");
            (route(session, channel_type, &r, now_ms, Some(false)), None)
        }
    }
}

/// The answer of a stored publish once its `ticket` is on disk: `reply`, or what it becomes
/// when the write failed (delivered but not stored: 11037; to an offline user: 11036).
pub(crate) fn durable(history: &crate::history::History, ticket: Ticket, reply: Reply) -> Reply {
    let Err(e) = history.wait(ticket) else { return reply };
    tracing::error!(error = %e, "history: a stored message could not be written");
    match reply {
        Err(v) if v.code == ErrorCode::CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED => Err(Violation::new(
            ErrorCode::CHANNEL_RECEIVER_OFFLINE_AND_STORE_FAILED,
            "the user is not online, and the message could not be stored",
        )),
        Ok(_) => store_result(Some(false)),
        other => other,
    }
}

/// Delivers a checked publish; `stored`: whether it was stored (None: not to be).
fn route(
    session: &Arc<Session>,
    channel_type: ChannelType,
    r: &PublishRef<'_>,
    now_ms: u64,
    stored: Option<bool>,
) -> Reply {
    let metrics = &session.app.metrics;
    let in_history = stored == Some(true);
    if channel_type == ChannelType::USER {
        let Some(target) = session.app.user(r.channel) else {
            // In a cluster: to the user's node, if it is online on another one.
            if let Some(c) = &session.app.cluster
                && c.send_to_user(
                    &session.app.id,
                    r.channel,
                    message_body(session, ChannelType::USER, r, now_ms, in_history),
                )
            {
                metrics.published.add(ChannelType::USER, 1);
                return Ok(None);
            }
            return Err(match stored {
                Some(true) => Violation::new(
                    ErrorCode::CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED,
                    format!("user {:?} is not online; the message is in its history", r.channel),
                ),
                Some(false) => Violation::new(
                    ErrorCode::CHANNEL_RECEIVER_OFFLINE_AND_STORE_FAILED,
                    format!("user {:?} is not online, and the message could not be stored", r.channel),
                ),
                None => {
                    Violation::new(ErrorCode::CHANNEL_RECEIVER_OFFLINE, format!("user {:?} is not online", r.channel))
                }
            });
        };
        target.send(message_body(session, ChannelType::USER, r, now_ms, in_history));
        metrics.published.add(ChannelType::USER, 1);
        metrics.delivered.add(ChannelType::USER, 1);
        return store_result(stored);
    }
    metrics.published.add(ChannelType::MESSAGE, 1);
    let cluster = session.app.cluster.as_ref();
    // The map's read guard is held while fanning out (no reference count taken per publish):
    // it only keeps the channel from being removed meanwhile.
    let Some(ch) = session.app.channels.get(r.channel) else {
        if !in_history {
            session.app.note_unstored(r.channel, now_ms);
        }
        if let Some(c) = cluster {
            c.forward(&session.app.id, r.channel, &[message_body(session, ChannelType::MESSAGE, r, now_ms, false)]);
        }
        return store_result(stored);
    };
    if !in_history {
        ch.unstored_ms.store(now_ms, Ordering::Relaxed);
    }
    let body = message_body(session, ChannelType::MESSAGE, r, now_ms, in_history);
    if let Some(c) = cluster {
        c.forward(&session.app.id, r.channel, std::slice::from_ref(&body));
    }
    let subs = ch.subs.read().unwrap();
    let mut receivers =
        subs.iter().filter(|s| s.opts.with_message && (s.session.receive_own || s.session.id != session.id));
    // The last receiver gets the body itself, the others a reference each.
    let mut delivered = 0;
    if let Some(mut s) = receivers.next() {
        // (The console's tail is not a delivery to count.)
        for next in receivers {
            s.session.send(body.clone());
            delivered += !s.session.is_backend() as u64;
            s = next;
        }
        delivered += !s.session.is_backend() as u64;
        s.session.send(body);
    }
    ch.messages.fetch_add(1, Ordering::Relaxed);
    metrics.delivered.add(ChannelType::MESSAGE, delivered);
    store_result(stored)
}

/// A delivered publish's answer: success, or 11037 when it was to be stored and was not.
fn store_result(stored: Option<bool>) -> Reply {
    match stored {
        Some(false) => Err(Violation::new(
            ErrorCode::CHANNEL_MESSAGE_DELIVERED_BUT_STORE_FAILED,
            "the message was delivered but could not be stored in the history",
        )),
        _ => Ok(None),
    }
}

/// Publishes of one connection's read batch to one message channel, delivered together: the
/// channel is looked up once per run, and each receiver's session and connection are locked
/// once per run instead of once per message. A run ends (is delivered) when a publish to
/// another channel or to a user comes, before any other request or reply of the connection,
/// and at the end of the read batch, before the batch's publishes are acknowledged.
///
/// The receivers are the channel's subscribers when the run is delivered, a few microseconds
/// after its first publish: as with publishes of separate connections racing a subscribe,
/// which of them a new subscriber gets is not defined; a connection's own subscribe comes
/// after its earlier publishes' delivery.
#[derive(Default)]
pub(crate) struct PublishRun {
    channel: String,
    /// The channel, when it had subscribers at the run's first publish (else the run's
    /// messages have nobody to go to and are not even encoded).
    target: Option<Arc<MsgChannel>>,
    bodies: Vec<Bytes>,
    /// Publishes accepted since the last delivery (counted then, once per run).
    accepted: u64,
    /// The timestamp of the run's last publish.
    last_ms: u64,
    /// Stored publishes answered with success whose messages are not on disk yet: the ticket
    /// that covers them all and their request ids (see `take_durable`).
    durable: Option<(Arc<crate::history::History>, Ticket, Vec<u64>)>,
}

impl PublishRun {
    /// `publish`, with delivery to a message channel left to `deliver`; with `defer`, a stored
    /// message's success is answered before it is on disk, and [`take_durable`] says what
    /// must be waited for before the acknowledgement.
    pub(crate) fn publish(
        &mut self,
        session: &Arc<Session>,
        request_id: u64,
        r: PublishRef<'_>,
        now_ms: u64,
        defer: bool,
    ) -> Reply {
        // A user's message, or one to store (its own timestamp): on its own, after the run.
        if r.channel_type == ChannelType::USER as u32 || r.store_in_history {
            self.deliver(session);
            if !defer {
                return publish(session, r, now_ms);
            }
            let (reply, pending) = publish_deferred(session, r, now_ms);
            if let Some((history, ticket)) = pending {
                match &mut self.durable {
                    Some((_, t, ids)) => {
                        *t = (*t).max(ticket);
                        ids.push(request_id);
                    }
                    None => self.durable = Some((history, ticket, vec![request_id])),
                }
            }
            return reply;
        }
        check_publish(&r)?;
        validate::channel_name(r.channel)?;
        if r.channel != self.channel {
            self.deliver(session);
            self.channel.clear();
            self.channel.push_str(r.channel);
            self.target = session.app.channels.get(r.channel).map(|c| c.clone());
        }
        self.accepted += 1;
        self.last_ms = now_ms;
        // (In a cluster the messages also go to the other nodes, subscribed here or not.)
        if self.target.is_some() || session.app.cluster.is_some() {
            self.bodies.push(message_body(session, ChannelType::MESSAGE, &r, now_ms, false));
        }
        Ok(None)
    }

    /// Stored publishes answered before they were on disk: their history, the ticket to wait
    /// for, and their request ids (each to be answered with a failure if the write fails).
    pub(crate) fn take_durable(&mut self) -> Option<(Arc<crate::history::History>, Ticket, Vec<u64>)> {
        self.durable.take()
    }

    /// Gives back the memory of a long run (the connection has been quiet).
    pub(crate) fn release_idle(&mut self) {
        if self.bodies.is_empty() && self.bodies.capacity() > 64 {
            self.bodies = Vec::new();
        }
    }

    /// Delivers the run's messages, in order, to every receiver.
    pub(crate) fn deliver(&mut self, session: &Session) {
        if self.accepted != 0 {
            session.app.metrics.published.add(ChannelType::MESSAGE, std::mem::take(&mut self.accepted));
            // (None is stored: see `MsgChannel::unstored_ms`.)
            match &self.target {
                Some(ch) => ch.unstored_ms.store(self.last_ms, Ordering::Relaxed),
                None => session.app.note_unstored(&self.channel, self.last_ms),
            }
        }
        if let Some(c) = &session.app.cluster
            && !self.bodies.is_empty()
        {
            c.forward(&session.app.id, &self.channel, &self.bodies);
        }
        self.channel.clear();
        let Some(ch) = self.target.take() else {
            self.bodies.clear();
            return;
        };
        if self.bodies.is_empty() {
            return;
        }
        {
            let subs = ch.subs.read().unwrap();
            let mut receivers =
                subs.iter().filter(|s| s.opts.with_message && (s.session.receive_own || s.session.id != session.id));
            // The last receiver gets the bodies themselves, the others a reference each.
            let (n, mut delivered) = (self.bodies.len() as u64, 0);
            if let Some(mut s) = receivers.next() {
                // (The console's tail is not a delivery to count.)
                for next in receivers {
                    s.session.send_many(self.bodies.iter().cloned());
                    delivered += n * !s.session.is_backend() as u64;
                    s = next;
                }
                delivered += n * !s.session.is_backend() as u64;
                s.session.send_many(self.bodies.drain(..));
            }
            ch.messages.fetch_add(n, Ordering::Relaxed);
            session.app.metrics.delivered.add(ChannelType::MESSAGE, delivered);
        }
        self.bodies.clear();
    }
}

/// The checks of a publish that do not depend on where it goes.
fn check_publish(r: &PublishRef<'_>) -> Result<(), Violation> {
    validate::published(r.payload, r.message_type, r.custom_type, r.encryption, false)?;
    match ChannelType::from_u32(r.channel_type) {
        Some(ChannelType::MESSAGE) | Some(ChannelType::NONE) | Some(ChannelType::USER) => Ok(()),
        _ => Err(Violation::new(
            ErrorCode::INVALID_CHANNEL_TYPE,
            format!("publish takes channel type MESSAGE (1) or USER (3), not {}", r.channel_type),
        )),
    }
}

/// The delivered `MessageEvent`, encoded once for every receiver.
fn message_body(session: &Session, channel_type: ChannelType, r: &PublishRef<'_>, now_ms: u64, stored: bool) -> Bytes {
    fastpath::encode_message_body(&MessageEventRef {
        channel_type: channel_type as u32,
        channel: r.channel,
        topic: "",
        publisher: &session.user_id,
        message_type: r.message_type,
        payload: r.payload,
        custom_type: r.custom_type,
        timestamp_ms: now_ms,
        encryption: r.encryption,
        stored,
    })
}
