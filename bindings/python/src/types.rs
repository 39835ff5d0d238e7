//! Frozen, dataclass-like Python objects for events and results: readable `repr`, equality
//! by fields, `to_dict()`. Enumerations are their reference names (`"MESSAGE"`, `"CONNECTED"`);
//! sequences are tuples, presence states are dicts. The records of presence, storage and locks
//! are in services.rs, those of the calls that answer with a time only in responses.rs.

use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyTuple};

use rtm2_core::Event;

use crate::services;

/// A record: `record!(Name { fields } methods { … })`. `Name [subclass] { … }` lets a native
/// record extend it (services.rs: `GetStateResponse` is a `UserState`).
macro_rules! record {
    ($(#[$m:meta])* $name:ident $([$($opt:ident),*])? { $($field:ident),* $(,)? } $(methods { $($extra:tt)* })?) => {
        $(#[$m])*
        #[pyclass(module = "rtm2", frozen, get_all $($(, $opt)*)?)]
        pub struct $name {
            $(pub $field: Py<PyAny>,)*
        }

        #[pymethods]
        impl $name {
            /// The fields in order, for `match` (a tuple, as the language requires).
            #[classattr]
            fn __match_args__(py: Python<'_>) -> PyResult<Py<::pyo3::types::PyTuple>> {
                Ok(::pyo3::types::PyTuple::new(py, [$(stringify!($field)),*])?.unbind())
            }

            fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
                let mut parts: Vec<String> = Vec::new();
                $(parts.push(format!("{}={}", stringify!($field), self.$field.bind(py).repr()?));)*
                Ok(format!("{}({})", stringify!($name), parts.join(", ")))
            }

            fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                let Ok(other) = other.cast::<$name>() else { return Ok(py.NotImplemented()) };
                let other = other.get();
                $(if !self.$field.bind(py).eq(other.$field.bind(py))? { return ::pyo3::IntoPyObjectExt::into_py_any(false, py); })*
                ::pyo3::IntoPyObjectExt::into_py_any(true, py)
            }

            /// The fields as a dict (nested records stay objects).
            fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                let d = PyDict::new(py);
                $(d.set_item(stringify!($field), self.$field.bind(py))?;)*
                Ok(d)
            }

            $($($extra)*)?
        }
    };
}
pub(crate) use record;

/// A record that extends another (declared `Base [subclass] { … }`):
/// `extended_record!(Name: Base { base fields } + { own fields })`. An instance *is* a `Base`
/// (`isinstance`, `case Base(…)`, the base's methods) whose fields are the base's, then its
/// own. Equality: with another `Name`, all fields; with a `Base`, the base's (`Name.__eq__`
/// answers NotImplemented, so Python asks the `Base`). The base fields are named again here
/// (a macro cannot read `Base`'s): keep them in step with its declaration.
macro_rules! extended_record {
    ($(#[$m:meta])* $name:ident : $base:ident { $($bfield:ident),* $(,)? } + { $($field:ident),* $(,)? }) => {
        $(#[$m])*
        #[pyclass(module = "rtm2", frozen, get_all, extends = $base)]
        pub struct $name {
            $(pub $field: Py<PyAny>,)*
        }

        impl $name {
            /// The fields in order, the base's first.
            fn fields<'a>(slf: &'a Bound<'_, Self>) -> Vec<(&'static str, &'a Py<PyAny>)> {
                let (base, own) = (slf.as_super().get(), slf.get());
                vec![$((stringify!($bfield), &base.$bfield),)* $((stringify!($field), &own.$field),)*]
            }

            /// The Python object: `base` extended by this record's fields.
            pub fn with_base(self, py: Python<'_>, base: $base) -> PyResult<Py<PyAny>> {
                Ok(Py::new(py, ::pyo3::PyClassInitializer::from(base).add_subclass(self))?.into_any())
            }
        }

        #[pymethods]
        impl $name {
            /// The fields in order, for `match`: the base's, then its own.
            #[classattr]
            fn __match_args__(py: Python<'_>) -> PyResult<Py<::pyo3::types::PyTuple>> {
                Ok(::pyo3::types::PyTuple::new(py, [$(stringify!($bfield),)* $(stringify!($field)),*])?.unbind())
            }

            fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
                let py = slf.py();
                let mut parts: Vec<String> = Vec::new();
                for (name, v) in Self::fields(slf) {
                    parts.push(format!("{}={}", name, v.bind(py).repr()?));
                }
                Ok(format!("{}({})", stringify!($name), parts.join(", ")))
            }

            fn __eq__(slf: &Bound<'_, Self>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
                let py = slf.py();
                let Ok(other) = other.cast::<$name>() else { return Ok(py.NotImplemented()) };
                for ((_, a), (_, b)) in Self::fields(slf).into_iter().zip(Self::fields(other)) {
                    if !a.bind(py).eq(b.bind(py))? {
                        return ::pyo3::IntoPyObjectExt::into_py_any(false, py);
                    }
                }
                ::pyo3::IntoPyObjectExt::into_py_any(true, py)
            }

            /// The fields as a dict (nested records stay objects).
            fn to_dict<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyDict>> {
                let d = PyDict::new(slf.py());
                for (name, v) in Self::fields(slf) {
                    d.set_item(name, v.bind(slf.py()))?;
                }
                Ok(d)
            }
        }
    };
}
pub(crate) use extended_record;

record!(
    /// A received message (message channel, user channel or stream topic). `recovered`: delivered
    /// from the channel's history after a reconnect that could not resume (an rtm2 addition).
    MessageEvent { channel_type, channel, topic, publisher, message_type, message, custom_type, timestamp, recovered }
);
record!(
    /// A topic event of a stream channel: SNAPSHOT, REMOTE_JOIN or REMOTE_LEAVE.
    TopicEvent { event_type, channel, publisher, topics, timestamp }
);
record!(
    /// A topic and its publishers.
    TopicInfo { topic, publishers }
);
record!(
    /// One publisher of a topic.
    PublisherInfo { user_id, meta }
);
record!(
    /// A change of the state of the client's connection or of a stream channel.
    LinkStateEvent {
        current, previous, service_type, operation, reason_number, reason_name, reason_text, reason,
        reason_code, channel, affected_channels, unrestored_channels, is_resumed, timestamp,
    }
);
record!(
    /// A token will expire soon: `channel` None = the login token, else that stream channel's.
    TokenPrivilegeWillExpireEvent { channel }
);
record!(
    /// The receiver's queue was full: `dropped` events were discarded before the next one.
    OverflowEvent { dropped }
);
record!(
    /// Result of StreamChannel.join: the topics and publishers at that moment, and the server's
    /// time of its answer (ms).
    JoinResult { channel, topics, timestamp }
);
record!(
    /// Result of StreamChannel.subscribe_topic, with the server's time of its answer (ms).
    SubscribeTopicResult { succeeded, failed, timestamp }
);
record!(
    /// A user that subscribe_topic could not subscribe, with the per-user code.
    FailedUser { user_id, code, reason }
);

pub(crate) fn s(py: Python<'_>, v: &str) -> Py<PyAny> {
    PyString::new(py, v).into_any().unbind()
}

pub(crate) fn any<'py, T: IntoPyObject<'py>>(py: Python<'py>, v: T) -> PyResult<Py<PyAny>> {
    v.into_py_any(py)
}

pub(crate) fn tuple<'py, T, I>(py: Python<'py>, items: I) -> PyResult<Py<PyAny>>
where
    T: IntoPyObject<'py>,
    I: IntoIterator<Item = T>,
    I::IntoIter: ExactSizeIterator,
{
    Ok(PyTuple::new(py, items)?.into_any().unbind())
}

pub fn topic_info(py: Python<'_>, t: &rtm2_core::TopicInfo) -> PyResult<Py<PyAny>> {
    let publishers = t
        .publishers
        .iter()
        .map(|p| Py::new(py, PublisherInfo { user_id: s(py, &p.user_id), meta: s(py, &p.meta) }))
        .collect::<PyResult<Vec<_>>>()?;
    any(py, TopicInfo { topic: s(py, &t.topic), publishers: tuple(py, publishers)? })
}

fn topics(py: Python<'_>, ts: &[rtm2_core::TopicInfo]) -> PyResult<Py<PyAny>> {
    let v = ts.iter().map(|t| topic_info(py, t)).collect::<PyResult<Vec<_>>>()?;
    tuple(py, v)
}

/// The string fields of the messages of one batch: consecutive messages mostly share their
/// channel, publisher, topic, types, so each is converted once and the `str` object is shared
/// (strings are immutable) instead of allocating six new ones per message.
#[derive(Default)]
pub struct BatchStrings<'a> {
    last: [Option<(&'a str, Py<PyAny>)>; 6],
}

impl<'a> BatchStrings<'a> {
    fn get(&mut self, py: Python<'_>, column: usize, v: &'a str) -> Py<PyAny> {
        if let Some((prev, obj)) = &self.last[column]
            && same(prev, v)
        {
            return obj.clone_ref(py);
        }
        let obj = s(py, v);
        self.last[column] = Some((v, obj.clone_ref(py)));
        obj
    }
}

/// `a == b` byte by byte: these strings are short, and glibc's vectorised memcmp (masked loads)
/// was measured to cost far more than the comparison itself on the benchmark machine.
#[inline]
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for i in 0..a.len() {
        diff |= a[i] ^ b[i];
    }
    diff == 0
}

pub fn message_event<'a>(
    py: Python<'_>,
    m: &'a rtm2_core::MessageEvent,
    strings: &mut BatchStrings<'a>,
) -> PyResult<Py<PyAny>> {
    // STRING messages are str; BINARY ones (and a STRING that is not valid UTF-8) are bytes.
    let message = match m.text() {
        Some(t) => s(py, t),
        None => PyBytes::new(py, &m.payload).into_any().unbind(),
    };
    any(
        py,
        MessageEvent {
            channel_type: strings.get(py, 0, m.channel_type.name()),
            channel: strings.get(py, 1, &m.channel),
            topic: strings.get(py, 2, &m.topic),
            publisher: strings.get(py, 3, &m.publisher),
            message_type: strings.get(py, 4, m.message_type.name()),
            message,
            custom_type: strings.get(py, 5, &m.custom_type),
            timestamp: any(py, m.timestamp_ms)?,
            recovered: any(py, m.recovered)?,
        },
    )
}

/// Converts one core event (`strings`: shared by the events of one batch).
pub fn event<'a>(py: Python<'_>, ev: &'a Event, strings: &mut BatchStrings<'a>) -> PyResult<Py<PyAny>> {
    match ev {
        Event::Message(m) => message_event(py, m, strings),
        Event::Topic(t) => any(
            py,
            TopicEvent {
                event_type: s(py, t.event_type.name()),
                channel: s(py, &t.channel),
                publisher: s(py, &t.publisher),
                topics: topics(py, &t.topics)?,
                timestamp: any(py, t.timestamp_ms)?,
            },
        ),
        Event::LinkState(l) => any(
            py,
            LinkStateEvent {
                current: s(py, l.current.name()),
                previous: s(py, l.previous.name()),
                service_type: s(py, l.service_type.name()),
                operation: s(py, l.operation.name()),
                reason_number: any(py, l.reason_number())?,
                reason_name: s(py, l.reason_name()),
                reason_text: s(py, &l.reason_text),
                reason: s(py, l.reason_name()),
                reason_code: any(py, l.reason_number())?,
                channel: s(py, &l.channel),
                affected_channels: tuple(py, l.affected_channels.iter().map(String::as_str))?,
                unrestored_channels: tuple(py, l.unrestored_channels.iter().map(String::as_str))?,
                is_resumed: any(py, l.is_resumed)?,
                timestamp: any(py, l.timestamp_ms)?,
            },
        ),
        Event::TokenPrivilegeWillExpire(ch) => {
            any(py, TokenPrivilegeWillExpireEvent { channel: any(py, ch.as_deref())? })
        }
        Event::Overflow { dropped } => any(py, OverflowEvent { dropped: any(py, *dropped)? }),
        Event::Presence(p) => services::presence_event(py, p),
        Event::Storage(e) => services::storage_event(py, e),
        Event::Lock(e) => services::lock_event(py, e),
    }
}

/// Result of join, converted on the Python side of the future.
pub struct JoinOut(pub rtm2_core::JoinResult);

impl<'py> IntoPyObject<'py> for JoinOut {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let r = JoinResult {
            channel: s(py, &self.0.channel),
            topics: topics(py, &self.0.topics)?,
            timestamp: any(py, self.0.timestamp_ms)?,
        };
        Ok(Bound::new(py, r)?.into_any())
    }
}

/// Result of subscribe_topic, converted on the Python side of the future.
pub struct SubscribeTopicOut(pub rtm2_core::SubscribeTopicResult);

impl<'py> IntoPyObject<'py> for SubscribeTopicOut {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let failed = self
            .0
            .failed
            .iter()
            .map(|f| {
                Py::new(py, FailedUser { user_id: s(py, &f.user_id), code: any(py, f.code)?, reason: s(py, &f.reason) })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let r = SubscribeTopicResult {
            succeeded: tuple(py, self.0.succeeded.iter().map(String::as_str))?,
            failed: tuple(py, failed)?,
            timestamp: any(py, self.0.timestamp_ms)?,
        };
        Ok(Bound::new(py, r)?.into_any())
    }
}
