//! The records of the calls that answer with nothing but the server's time: the names the call
//! was about, then `timestamp` — when the server answered, ms since the epoch (agora-rtm-sdk's
//! `{timestamp, channelName, …}` responses; the core's `Ack`). One record per call, named as
//! agora-rtm-sdk (and the Node binding) names the call's response (`publish` →
//! `PublishResponse`, `leave` → `LeaveChannelResponse`, `publish_topic` →
//! `PublishTopicMessageResponse`). Same conventions as types.rs: frozen, dataclass-like,
//! channel types by their reference names.
//!
//! A record is made on the event loop's thread when the call completes, from the Rust values
//! the call already has: nothing is converted to Python before the answer is in (publishes are
//! pipelined by the thousand).

use pyo3::prelude::*;
use pyo3::types::PyDict;

use rtm2_core::Ack;

use crate::bridge::future_map;
use crate::types::{any, record};

macro_rules! response {
    ($(#[$m:meta])* $name:ident { $($field:ident),* $(,)? }) => {
        record!($(#[$m])* $name { $($field,)* timestamp });

        impl $name {
            /// The asyncio future of `op`, resolved with this record.
            pub fn future<'py>(
                py: Python<'py>,
                op: impl Future<Output = rtm2_core::Result<Ack>> + Send + 'static,
                $($field: impl for<'a> IntoPyObject<'a> + Send + 'static,)*
            ) -> PyResult<Bound<'py, PyAny>> {
                future_map(py, op, move |py, ack: Ack| {
                    any(py, $name { $($field: any(py, $field)?,)* timestamp: any(py, ack.timestamp_ms)? })
                })
            }
        }
    };
}

response!(
    /// Result of Client.login.
    LoginResponse {}
);
response!(
    /// Result of Client.logout (the client's time when the server could not answer).
    LogoutResponse {}
);
response!(
    /// Result of Client.renew_token (`channel` None) or StreamChannel.renew_token.
    RenewTokenResponse { channel }
);
response!(
    /// Result of Client.publish: the time of the acknowledgement that covered it.
    PublishResponse { channel }
);
response!(
    /// Result of Client.unsubscribe.
    UnsubscribeResponse { channel }
);
response!(
    /// Result of StreamChannel.leave.
    LeaveChannelResponse { channel }
);
response!(
    /// Result of StreamChannel.join_topic.
    JoinTopicResponse { channel, topic }
);
response!(
    /// Result of StreamChannel.leave_topic.
    LeaveTopicResponse { channel, topic }
);
response!(
    /// Result of StreamChannel.publish_topic.
    PublishTopicMessageResponse { channel, topic }
);
response!(
    /// Result of StreamChannel.unsubscribe_topic.
    UnsubscribeTopicResponse { channel, topic }
);
response!(
    /// Result of presence.set_state (the client's time while the state is only kept locally).
    SetStateResponse { channel, channel_type }
);
response!(
    /// Result of presence.remove_state.
    RemoveStateResponse { channel, channel_type }
);
response!(
    /// Result of lock.set_lock.
    SetLockResponse { channel, channel_type, lock_name }
);
response!(
    /// Result of lock.remove_lock.
    RemoveLockResponse { channel, channel_type, lock_name }
);
response!(
    /// Result of lock.release_lock.
    ReleaseLockResponse { channel, channel_type, lock_name }
);
response!(
    /// Result of lock.revoke_lock.
    RevokeLockResponse { channel, channel_type, lock_name }
);
response!(
    /// Result of storage.subscribe_user_metadata.
    SubscribeUserMetaResponse { user_id }
);
response!(
    /// Result of storage.unsubscribe_user_metadata.
    UnsubscribeUserMetaResponse { user_id }
);

/// Adds the response classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LoginResponse>()?;
    m.add_class::<LogoutResponse>()?;
    m.add_class::<RenewTokenResponse>()?;
    m.add_class::<PublishResponse>()?;
    m.add_class::<UnsubscribeResponse>()?;
    m.add_class::<LeaveChannelResponse>()?;
    m.add_class::<JoinTopicResponse>()?;
    m.add_class::<LeaveTopicResponse>()?;
    m.add_class::<PublishTopicMessageResponse>()?;
    m.add_class::<UnsubscribeTopicResponse>()?;
    m.add_class::<SetStateResponse>()?;
    m.add_class::<RemoveStateResponse>()?;
    m.add_class::<SetLockResponse>()?;
    m.add_class::<RemoveLockResponse>()?;
    m.add_class::<ReleaseLockResponse>()?;
    m.add_class::<RevokeLockResponse>()?;
    m.add_class::<SubscribeUserMetaResponse>()?;
    m.add_class::<UnsubscribeUserMetaResponse>()?;
    Ok(())
}
