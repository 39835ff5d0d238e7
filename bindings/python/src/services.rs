//! The records of presence, storage and locks (events and results) and their conversion from
//! the core's types. Same conventions as types.rs: frozen, dataclass-like, enumerations as
//! reference names, sequences as tuples; a user's presence state is a dict.
//!
//! The results of the calls that return data carry `timestamp` last: the server's time of its
//! answer, ms since the epoch (the core's `Timed`). The records that events carry too
//! (`UserState`, `Metadata`) stay as they are there: `get_state` and the metadata reads answer
//! with a record that extends them with the call's scope and that time (`GetStateResponse`,
//! `GetChannelMetadataResponse`, `GetUserMetadataResponse`). The calls whose result was a list
//! or an int (`get_user_channels`, `get_locks`, `acquire_lock`) hand the Python layer a tuple
//! of the response's fields, which it makes into the list / int subclasses of
//! rtm2/_responses.py.

use std::collections::BTreeMap;

use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use rtm2_core::Timed;

use crate::types::{any, extended_record, record, s, tuple};

record!(
    /// A user and its presence state in a channel.
    UserState [subclass] { user_id, states }
);
record!(
    /// One page of `presence.get_online_users` (`who_now`), with the server's time of its answer.
    OnlineUsers { occupants, total_occupancy, next_page, timestamp }
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
    Metadata [subclass] { major_revision, items }
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
    /// The outcome of a metadata write: the set's new major revision, its item count and the
    /// server's time of its answer.
    MetadataWrite { major_revision, total_count, timestamp }
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
    /// 0 = nothing older, else the `start` of the next (older) page; `timestamp` the server's
    /// time of its answer.
    HistoryPage { messages, count, new_start, timestamp }
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

extended_record!(
    /// Result of `presence.get_state`: the `UserState` (as before, so `isinstance`,
    /// `case UserState(user_id, states)` and equality with a `UserState` keep working), with
    /// the channel and the server's time of its answer — agora-rtm-sdk's `GetStateResponse`.
    GetStateResponse: UserState { user_id, states } + { channel, channel_type, timestamp }
);
extended_record!(
    /// Result of `storage.get_channel_metadata`: the `Metadata` (as before; equal to a
    /// `Metadata` with the same revision and items, e.g. a `StorageEvent`'s `data`), with the
    /// channel and the server's time of its answer — agora-rtm-sdk's `GetChannelMetadataResponse`.
    GetChannelMetadataResponse: Metadata { major_revision, items } + { channel, channel_type, timestamp }
);
extended_record!(
    /// Result of `storage.get_user_metadata`: the `Metadata`, with the user and the server's
    /// time of its answer — agora-rtm-sdk's `GetUserMetadataResponse`.
    GetUserMetadataResponse: Metadata { major_revision, items } + { user_id, timestamp }
);

/// The `GetStateResponse` of a `get_state` answer.
pub fn get_state_response(
    py: Python<'_>,
    st: Timed<rtm2_core::UserState>,
    channel: &str,
    channel_type: &str,
) -> PyResult<Py<PyAny>> {
    let base = UserState { user_id: s(py, &st.user_id), states: states(py, &st.states)? };
    let timestamp = any(py, st.timestamp_ms)?;
    GetStateResponse { channel: s(py, channel), channel_type: s(py, channel_type), timestamp }.with_base(py, base)
}

/// The `GetChannelMetadataResponse` of a `get_channel_metadata` answer.
pub fn channel_metadata(
    py: Python<'_>,
    m: Timed<rtm2_core::Metadata>,
    channel: &str,
    channel_type: &str,
) -> PyResult<Py<PyAny>> {
    let timestamp = any(py, m.timestamp_ms)?;
    GetChannelMetadataResponse { channel: s(py, channel), channel_type: s(py, channel_type), timestamp }
        .with_base(py, metadata_record(py, &m)?)
}

/// The `GetUserMetadataResponse` of a `get_user_metadata` answer.
pub fn user_metadata(py: Python<'_>, m: Timed<rtm2_core::Metadata>, user_id: &str) -> PyResult<Py<PyAny>> {
    let timestamp = any(py, m.timestamp_ms)?;
    GetUserMetadataResponse { user_id: s(py, user_id), timestamp }.with_base(py, metadata_record(py, &m)?)
}

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

fn metadata_record(py: Python<'_>, m: &rtm2_core::Metadata) -> PyResult<Metadata> {
    let items = m.items.iter().map(|i| metadata_item(py, i)).collect::<PyResult<Vec<_>>>()?;
    Ok(Metadata { major_revision: any(py, m.major_revision)?, items: tuple(py, items)? })
}

fn metadata(py: Python<'_>, m: &rtm2_core::Metadata) -> PyResult<Py<PyAny>> {
    any(py, metadata_record(py, m)?)
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

out!(Timed<rtm2_core::OnlineUsers>, |py, v| any(
    py,
    OnlineUsers {
        occupants: user_states(py, &v.occupants)?,
        total_occupancy: any(py, v.total_occupancy)?,
        next_page: s(py, &v.next_page),
        timestamp: any(py, v.timestamp_ms)?,
    }
));
out!(Timed<rtm2_core::MetadataWrite>, |py, v| any(
    py,
    MetadataWrite {
        major_revision: any(py, v.major_revision)?,
        total_count: any(py, v.total_count)?,
        timestamp: any(py, v.timestamp_ms)?,
    }
));
out!(Timed<rtm2_core::HistoryPage>, |py, v| {
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
    any(
        py,
        HistoryPage {
            messages: tuple(py, list)?,
            count: any(py, count)?,
            new_start: any(py, v.new_start)?,
            timestamp: any(py, v.timestamp_ms)?,
        },
    )
});

/// `get_user_channels`' answer for the Python layer: `(channels, timestamp)`.
pub fn user_channels(py: Python<'_>, v: Timed<Vec<rtm2_core::ChannelInfo>>) -> PyResult<Py<PyAny>> {
    let list = v
        .iter()
        .map(|c| any(py, ChannelInfo { channel: s(py, &c.channel), channel_type: s(py, c.channel_type.name()) }))
        .collect::<PyResult<Vec<_>>>()?;
    (tuple(py, list)?, v.timestamp_ms).into_py_any(py)
}

/// `get_locks`' answer for the Python layer: `(channel, channel_type, locks, timestamp)`.
pub fn locks(
    py: Python<'_>,
    v: Timed<Vec<rtm2_core::LockDetail>>,
    channel: &str,
    channel_type: &str,
) -> PyResult<Py<PyAny>> {
    let list = v.iter().map(|d| lock_detail(py, d)).collect::<PyResult<Vec<_>>>()?;
    (channel, channel_type, tuple(py, list)?, v.timestamp_ms).into_py_any(py)
}
