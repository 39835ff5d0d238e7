//! Recovering missed messages from the history: after a reconnect that could not resume
//! (beyond the resume window, after a server restart, after a failover), the stored messages
//! published to the client's message channels and to its own user channel while it was away
//! are delivered — marked `recovered`, oldest first, before anything newer — and only the
//! channels where something may still be missing (a message not stored, removed by retention,
//! or published before a server restart, or on another server before a failover) are announced
//! in the CONNECTED event's `affected_channels`.
//!
//! How exactness is kept (see `pb::RecoverMessages`): the server delivers a channel's stored
//! messages in timestamp order, and answers a recovery under the same lock, after the channel
//! was subscribed again; so a stored message is in the answer, or arrives live after it, or
//! both — in which case the live copy arrived (and was held, see `Inner::held`) before the
//! answer, with a timestamp not above the newest recovered one, and is dropped here.

use super::*;
use crate::SharedStr;

impl Inner {
    /// After a reconnect that could not resume: restores subscriptions, stream channels,
    /// topics, states and locks (`restore`), then recovers the stored messages missed. Returns
    /// what could not be restored, and the message channels that missed nothing (left out of
    /// the CONNECTED event's `affected_channels`).
    pub(super) async fn restore_and_recover(self: &Arc<Self>, link: &Link, moved: bool) -> (Vec<String>, Vec<String>) {
        // Where to recover from: as it was before anything arrives on this session. (Only
        // channels subscribed with their messages: the others missed none.)
        let (since, without_messages) = {
            let st = self.state.lock().unwrap();
            let mut since = st.cache.recover_after.clone();
            since.channels.retain(|c, _| st.cache.channels.get(c).is_some_and(|o| o.with_message));
            let without: Vec<String> =
                st.cache.channels.iter().filter(|(_, o)| !o.with_message).map(|(c, _)| c.clone()).collect();
            (since, without)
        };
        let unrestored = self.restore(link, moved).await;
        let mut recovered = self.recover_missed(link, since, &unrestored).await;
        recovered.extend(without_messages.into_iter().filter(|c| !unrestored.contains(c)));
        if moved {
            // Another server (or node) cannot vouch for what was published on the one that was
            // left: every channel is announced.
            recovered.clear();
        }
        (unrestored, recovered)
    }

    /// Notes the stored messages among `evs`: for each, its channel's last stored message
    /// received (`Cache::recover_after`). A batch without one costs a scan of its flags.
    pub(super) fn note_stored(&self, evs: &[Event]) {
        if !evs.iter().any(|e| matches!(e, Event::Message(m) if m.stored)) {
            return;
        }
        let mut st = self.state.lock().unwrap();
        let after = &mut st.cache.recover_after;
        for e in evs {
            let Event::Message(m) = e else { continue };
            if !m.stored {
                continue;
            }
            let mark = match m.channel_type {
                ChannelType::MESSAGE => after.channels.get_mut(&*m.channel),
                ChannelType::USER => after.user.as_mut(),
                _ => None,
            };
            if let Some(t) = mark {
                *t = (*t).max(m.timestamp_ms);
            }
        }
    }

    /// Asks the server for the stored messages missed in each restored message channel and in
    /// this user's channel since `since` (the marks as they were before this session), puts
    /// them before the held events (dropping held duplicates), and returns the message
    /// channels whose recovery was complete.
    async fn recover_missed(&self, link: &Link, since: RecoverAfter, unrestored: &[String]) -> Vec<String> {
        let timeout = self.request_timeout();
        let mut wanted: Vec<(ChannelType, String, u64)> = since
            .channels
            .into_iter()
            .filter(|(c, _)| !unrestored.contains(c))
            .map(|(c, t)| (ChannelType::MESSAGE, c, t))
            .collect();
        if let Some(t) = since.user {
            wanted.push((ChannelType::USER, self.user_id.clone(), t));
        }
        let mut recovered = Vec::new();
        let mut complete = Vec::new();
        let mut newest: HashMap<(ChannelType, String), u64> = HashMap::new();
        for (channel_type, channel, after_ms) in wanted {
            let body = client_frame::Body::RecoverMessages(pb::RecoverMessages {
                channel: channel.clone(),
                channel_type: channel_type as u32,
                after_ms,
                max: 0,
            });
            let list = match tokio::time::timeout(timeout, link.request("recover_messages", body)).await {
                Ok(Ok(pb::Response { result: Some(pb::response::Result::RecoveredMessages(l)), .. })) => l,
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => {
                    // 15005 in a cluster; an older server does not know the request.
                    tracing::debug!(target: LOG_TARGET, %channel, error = %e, "no recovery from the history");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(target: LOG_TARGET, %channel, "no recovery reply in time");
                    continue;
                }
            };
            if list.complete && channel_type == ChannelType::MESSAGE {
                complete.push(channel.clone());
            }
            let Some(last) = list.messages.last() else { continue };
            newest.insert((channel_type, channel.clone()), last.timestamp_ms);
            let shared: SharedStr = channel.as_str().into();
            let mut evs: Vec<Event> = list
                .messages
                .into_iter()
                .map(|m| {
                    Event::Message(MessageEvent {
                        channel_type,
                        channel: shared.clone(),
                        topic: SharedStr::default(),
                        publisher: m.publisher.into(),
                        message_type: MessageType::from_u32(m.message_type).unwrap_or(MessageType::BINARY),
                        payload: m.payload,
                        custom_type: m.custom_type.into(),
                        timestamp_ms: m.timestamp_ms,
                        encryption: m.encryption,
                        stored: true,
                        recovered: true,
                    })
                })
                .collect();
            let n = evs.len();
            self.e2ee.screen(&mut evs);
            tracing::info!(target: LOG_TARGET, %channel, messages = n, complete = list.complete,
                "recovered missed messages from the history");
            recovered.extend(evs);
        }
        self.put_recovered(recovered, &newest);
        complete
    }

    /// Puts recovered messages before the held events, dropping held live copies of them, and
    /// advances the marks past them.
    fn put_recovered(&self, recovered: Vec<Event>, newest: &HashMap<(ChannelType, String), u64>) {
        if newest.is_empty() {
            return;
        }
        {
            let mut st = self.state.lock().unwrap();
            let after = &mut st.cache.recover_after;
            for ((channel_type, channel), ts) in newest {
                let mark = match channel_type {
                    ChannelType::USER => after.user.as_mut(),
                    _ => after.channels.get_mut(channel),
                };
                if let Some(t) = mark {
                    *t = (*t).max(*ts);
                }
            }
        }
        let mut held = self.held.lock().unwrap();
        let Some(live) = held.as_mut() else {
            // Not holding (cannot happen while restoring): deliver them at once.
            drop(held);
            self.hub.emit_batch_owned(recovered);
            return;
        };
        live.retain(|e| match e {
            Event::Message(m) if m.stored => {
                newest.get(&(m.channel_type, m.channel.to_string())).is_none_or(|ts| m.timestamp_ms > *ts)
            }
            _ => true,
        });
        let rest = std::mem::replace(live, recovered);
        live.extend(rest);
    }
}
