//! The records of presence, storage and locks (events and results) and their conversion from
//! the core's types. Same conventions as types.rs: frozen, dataclass-like, enumerations as
//! reference names, sequences as tuples; a user's presence state is a dict.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::types::{any, record, s, tuple};

record!(
    /// A user and its presence state in a channel.
    UserState { user_id, states }
);
record!(
    /// One page of `presence.get_online_users` (`who_now`).
    OnlineUsers { occupants, total_occupancy, next_page }
);
record!(
    /// A channel a user is present in (`presence.get_user_channels` / `where_now`).
    ChannelInfo { channel, channel_type }
);
record!(
    /// The changes of one presence interval (INTERVAL events).
    PresenceInterval { joined, left, timed_out, states, total_occupancy }
);
record!(
    /// A presence event: SNAPSHOT, INTERVAL, REMOTE_JOIN, REMOTE_LEAVE, REMOTE_TIMEOUT or
    /// REMOTE_STATE_CHANGED.
    PresenceEvent { event_type, channel_type, channel, publisher, states, snapshot, interval, timestamp }
);
record!(
    /// A metadata item. Made by the SDK in reads and events (with the item's revision, update
    /// time and author), or by the application for writes, where `revision` is a condition:
    /// -1 no check, 0 create only (set), N the stored revision must be N (else 12014).
    MetadataItem { key, value, revision, updated, author }
    methods {
        #[new]
        #[pyo3(signature = (key, value=String::new(), revision=-1, updated=0, author=String::new()))]
        fn new(py: Python<'_>, key: String, value: String, revision: i64, updated: u64, author: String) -> PyResult<Self> {
            Ok(MetadataItem {
                key: s(py, &key),
                value: s(py, &value),
                revision: any(py, revision)?,
                updated: any(py, updated)?,
                author: s(py, &author),
            })
        }
    }
);
record!(
    /// A metadata set: its major revision and its items (sorted by key).
    Metadata { major_revision, items }
    methods {
        /// The item of a key, or None.
        fn get(&self, py: Python<'_>, key: &str) -> PyResult<Option<Py<PyAny>>> {
            for item in self.items.bind(py).try_iter()? {
                let item = item?;
                if item.cast::<MetadataItem>()?.get().key.bind(py).eq(key)? {
                    return Ok(Some(item.unbind()));
                }
            }
            Ok(None)
        }
    }
);
record!(
    /// The outcome of a metadata write: the set's new major revision and its item count.
    MetadataWrite { major_revision, total_count }
);
record!(
    /// A storage event: the whole metadata set after a change (UPDATE) or on subscribing
    /// (SNAPSHOT).
    StorageEvent { event_type, storage_type, channel_type, target, publisher, data, timestamp }
);
record!(
    /// A stored message (`history.get_messages`): `message` is a str for STRING messages, bytes
    /// for BINARY ones (as in message events).
    HistoryMessage { message, message_type, custom_type, publisher, timestamp }
);
record!(
    /// One page of `history.get_messages`, newest first: `count` = len(messages); `new_start`
    /// 0 = nothing older, else the `start` of the next (older) page.
    HistoryPage { messages, count, new_start }
);
record!(
    /// A lock of a channel: its name, its owner ("" = free), its ttl in seconds and the
    /// fencing token of the owner's grant (0 when free).
    LockDetail { name, owner, ttl, fencing_token }
);
record!(
    /// A lock event: SNAPSHOT, SET, REMOVED, ACQUIRED, RELEASED or EXPIRED.
    /// `fencing_token`: ACQUIRED the new grant's, RELEASED / EXPIRED / REMOVED the ended grant's.
    LockEvent { event_type, channel_type, channel, lock_name, ttl, owner, publisher, snapshot, timestamp, fencing_token }
);

fn states(py: Python<'_>, st: &BTreeMap<String, String>) -> PyResult<Py<PyAny>> {
    let d = PyDict::new(py);
    for (k, v) in st {
        d.set_item(PyString::new(py, k), PyString::new(py, v))?;
    }
    Ok(d.into_any().unbind())
}

fn user_state(py: Python<'_>, u: &rtm2_core::UserState) -> PyResult<Py<PyAny>> {
    any(py, UserState { user_id: s(py, &u.user_id), states: states(py, &u.states)? })
}

fn user_states(py: Python<'_>, us: &[rtm2_core::UserState]) -> PyResult<Py<PyAny>> {
    let v = us.iter().map(|u| user_state(py, u)).collect::<PyResult<Vec<_>>>()?;
    tuple(py, v)
}

fn strings(py: Python<'_>, v: &[String]) -> PyResult<Py<PyAny>> {
    tuple(py, v.iter().map(String::as_str))
}

fn metadata_item(py: Python<'_>, i: &rtm2_core::MetadataItem) -> PyResult<Py<PyAny>> {
    any(
        py,
        MetadataItem {
            key: s(py, &i.key),
            value: s(py, &i.value),
            revision: any(py, i.revision)?,
            updated: any(py, i.updated_ms)?,
            author: s(py, &i.author),
        },
    )
}

fn metadata(py: Python<'_>, m: &rtm2_core::Metadata) -> PyResult<Py<PyAny>> {
    let items = m.items.iter().map(|i| metadata_item(py, i)).collect::<PyResult<Vec<_>>>()?;
    any(py, Metadata { major_revision: any(py, m.major_revision)?, items: tuple(py, items)? })
}

fn lock_detail(py: Python<'_>, d: &rtm2_core::LockDetail) -> PyResult<Py<PyAny>> {
    any(
        py,
        LockDetail {
            name: s(py, &d.name),
            owner: s(py, &d.owner),
            ttl: any(py, d.ttl_s)?,
            fencing_token: any(py, d.fencing_token)?,
        },
    )
}

pub fn presence_event(py: Python<'_>, e: &rtm2_core::PresenceEvent) -> PyResult<Py<PyAny>> {
    let interval = match &e.interval {
        None => py.None(),
        Some(i) => any(
            py,
            PresenceInterval {
                joined: strings(py, &i.joined)?,
                left: strings(py, &i.left)?,
                timed_out: strings(py, &i.timed_out)?,
                states: user_states(py, &i.states)?,
                total_occupancy: any(py, i.total_occupancy)?,
            },
        )?,
    };
    any(
        py,
        PresenceEvent {
            event_type: s(py, e.event_type.name()),
            channel_type: s(py, e.channel_type.name()),
            channel: s(py, &e.channel),
            publisher: s(py, &e.publisher),
            states: states(py, &e.states)?,
            snapshot: user_states(py, &e.snapshot)?,
            interval,
            timestamp: any(py, e.timestamp_ms)?,
        },
    )
}

pub fn storage_event(py: Python<'_>, e: &rtm2_core::StorageEvent) -> PyResult<Py<PyAny>> {
    any(
        py,
        StorageEvent {
            event_type: s(py, e.event_type.name()),
            storage_type: s(py, e.storage_type.name()),
            channel_type: s(py, e.channel_type.name()),
            target: s(py, &e.target),
            publisher: s(py, &e.publisher),
            data: metadata(py, &e.data)?,
            timestamp: any(py, e.timestamp_ms)?,
        },
    )
}

pub fn lock_event(py: Python<'_>, e: &rtm2_core::LockEvent) -> PyResult<Py<PyAny>> {
    let snapshot = e.snapshot.iter().map(|d| lock_detail(py, d)).collect::<PyResult<Vec<_>>>()?;
    any(
        py,
        LockEvent {
            event_type: s(py, e.event_type.name()),
            channel_type: s(py, e.channel_type.name()),
            channel: s(py, &e.channel),
            lock_name: s(py, &e.lock_name),
            ttl: any(py, e.ttl_s)?,
            owner: s(py, &e.owner),
            publisher: s(py, &e.publisher),
            snapshot: tuple(py, snapshot)?,
            timestamp: any(py, e.timestamp_ms)?,
            fencing_token: any(py, e.fencing_token)?,
        },
    )
}

/// A core result converted on the Python side of the future (on the event loop's thread).
pub struct Out<T>(pub T);

macro_rules! out {
    ($t:ty, |$py:ident, $v:ident| $body:expr) => {
        impl<'py> IntoPyObject<'py> for Out<$t> {
            type Target = PyAny;
            type Output = Bound<'py, PyAny>;
            type Error = PyErr;

            fn into_pyobject(self, $py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                let $v = self.0;
                let made: PyResult<Py<PyAny>> = $body;
                Ok(made?.into_bound($py))
            }
        }
    };
}

out!(rtm2_core::OnlineUsers, |py, v| any(
    py,
    OnlineUsers {
        occupants: user_states(py, &v.occupants)?,
        total_occupancy: any(py, v.total_occupancy)?,
        next_page: s(py, &v.next_page),
    }
));
out!(Vec<rtm2_core::ChannelInfo>, |py, v| {
    let list = v
        .iter()
        .map(|c| any(py, ChannelInfo { channel: s(py, &c.channel), channel_type: s(py, c.channel_type.name()) }))
        .collect::<PyResult<Vec<_>>>()?;
    any(py, list)
});
out!(rtm2_core::UserState, |py, v| user_state(py, &v));
out!(rtm2_core::Metadata, |py, v| metadata(py, &v));
out!(rtm2_core::MetadataWrite, |py, v| any(
    py,
    MetadataWrite { major_revision: any(py, v.major_revision)?, total_count: any(py, v.total_count)? }
));
out!(Vec<rtm2_core::LockDetail>, |py, v| {
    let list = v.iter().map(|d| lock_detail(py, d)).collect::<PyResult<Vec<_>>>()?;
    any(py, list)
});
out!(rtm2_core::HistoryPage, |py, v| {
    let list = v
        .messages
        .iter()
        .map(|m| {
            // STRING messages are str; BINARY ones (and a STRING that is not valid UTF-8) bytes.
            let message = match m.text() {
                Some(t) => s(py, t),
                None => PyBytes::new(py, &m.payload).into_any().unbind(),
            };
            any(
                py,
                HistoryMessage {
                    message,
                    message_type: s(py, m.message_type.name()),
                    custom_type: s(py, &m.custom_type),
                    publisher: s(py, &m.publisher),
                    timestamp: any(py, m.timestamp_ms)?,
                },
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    let count = list.len();
    any(py, HistoryPage { messages: tuple(py, list)?, count: any(py, count)?, new_start: any(py, v.new_start)? })
});
