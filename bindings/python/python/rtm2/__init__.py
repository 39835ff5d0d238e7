"""rtm2 for Python: asyncio client of rtm2, an open, self-hostable real-time messaging system
with the concepts, events and error codes of Agora RTM 2.

>>> import asyncio, rtm2
>>> async def main():
...     async with rtm2.Client("0123456789abcdef0123456789abcdef", "alice") as client:
...         await client.login()            # the embedded server: no token needed
...         sub = await client.subscribe("room")
...         await client.publish("room", "hello")
...         async for message in sub:
...             print(message.publisher, message.message)
...             break
>>> asyncio.run(main())
alice hello

See docs/python.md for the guide.
"""

from . import _rtm2
from ._client import EVENT_TYPES, Client, Event, EventName, EventStream, StreamChannel, Subscription
from ._codes import ErrorCode
from ._enums import (
    ENUMS,
    ChannelType,
    EncryptionMode,
    LinkOperation,
    LinkState,
    LinkStateChangeReason,
    LockEventType,
    MessagePriority,
    MessageQos,
    MessageType,
    PresenceEventType,
    RtmEnum,
    ServiceType,
    StorageEventType,
    StorageType,
    TopicEventType,
)
from ._errors import (
    ChannelError,
    ClientError,
    HistoryError,
    InvalidArgumentError,
    LockError,
    LoginError,
    PresenceError,
    RtmError,
    RtmTimeoutError,
    StorageError,
    error_class,
)
from ._logging import TRACE, refresh_log_level
from ._responses import AcquireLockResponse, GetLockResponse, GetUserChannelsResponse
from ._rtm2 import (
    ChannelInfo,
    FailedUser,
    GetChannelMetadataResponse,
    GetStateResponse,
    GetUserMetadataResponse,
    HistoryMessage,
    HistoryPage,
    JoinResult,
    JoinTopicResponse,
    LeaveChannelResponse,
    LeaveTopicResponse,
    LinkStateEvent,
    LockDetail,
    LockEvent,
    LoginResponse,
    LogoutResponse,
    MessageEvent,
    Metadata,
    MetadataItem,
    MetadataWrite,
    OnlineUsers,
    OverflowEvent,
    PresenceEvent,
    PresenceInterval,
    PublisherInfo,
    PublishResponse,
    PublishTopicMessageResponse,
    ReleaseLockResponse,
    RemoveLockResponse,
    RemoveStateResponse,
    RenewTokenResponse,
    RevokeLockResponse,
    SetLockResponse,
    SetStateResponse,
    StorageEvent,
    SubscribeTopicResult,
    SubscribeUserMetaResponse,
    TokenPrivilegeWillExpireEvent,
    TopicEvent,
    TopicInfo,
    UnsubscribeResponse,
    UnsubscribeTopicResponse,
    UnsubscribeUserMetaResponse,
    UserState,
)
from ._services import History, Locks, Presence, Storage

__version__: str = _rtm2.__version__

# Public classes show (and pickle) as rtm2.X rather than rtm2._module.X.
for _cls in (
    Client,
    Subscription,
    EventStream,
    StreamChannel,
    Presence,
    Storage,
    Locks,
    History,
    GetUserChannelsResponse,
    GetLockResponse,
    AcquireLockResponse,
    RtmError,
    RtmTimeoutError,
    LoginError,
    InvalidArgumentError,
    ClientError,
    ChannelError,
    StorageError,
    PresenceError,
    LockError,
    HistoryError,
):
    _cls.__module__ = __name__
del _cls


def build_token(app_id: str, certificate: str, user_id: str, expire_secs: int) -> str:
    """An AccessToken2 RTM login token for ``user_id``, valid ``expire_secs`` seconds from now.
    Raises InvalidArgumentError (10014) for a malformed app id or certificate."""
    return _rtm2.build_token(app_id, certificate, user_id, expire_secs)


def build_stream_token(app_id: str, certificate: str, channel: str, user_id: str, expire_secs: int) -> str:
    """An AccessToken2 token for joining stream channel ``channel`` as ``user_id``."""
    return _rtm2.build_stream_token(app_id, certificate, channel, user_id, expire_secs)


__all__ = [
    "Client",
    "Subscription",
    "EventStream",
    "StreamChannel",
    "Presence",
    "Storage",
    "Locks",
    "History",
    "Event",
    "EventName",
    "EVENT_TYPES",
    "ErrorCode",
    "RtmEnum",
    "ENUMS",
    "ChannelType",
    "MessageType",
    "EncryptionMode",
    "MessageQos",
    "MessagePriority",
    "TopicEventType",
    "PresenceEventType",
    "StorageType",
    "StorageEventType",
    "LockEventType",
    "ServiceType",
    "LinkState",
    "LinkOperation",
    "LinkStateChangeReason",
    "RtmError",
    "RtmTimeoutError",
    "LoginError",
    "InvalidArgumentError",
    "ClientError",
    "ChannelError",
    "StorageError",
    "PresenceError",
    "LockError",
    "HistoryError",
    "error_class",
    "MessageEvent",
    "TopicEvent",
    "TopicInfo",
    "PublisherInfo",
    "LinkStateEvent",
    "TokenPrivilegeWillExpireEvent",
    "OverflowEvent",
    "JoinResult",
    "SubscribeTopicResult",
    "FailedUser",
    "PresenceEvent",
    "PresenceInterval",
    "UserState",
    "OnlineUsers",
    "ChannelInfo",
    "GetUserChannelsResponse",
    "GetStateResponse",
    "StorageEvent",
    "Metadata",
    "GetChannelMetadataResponse",
    "GetUserMetadataResponse",
    "MetadataItem",
    "MetadataWrite",
    "LockEvent",
    "LockDetail",
    "GetLockResponse",
    "AcquireLockResponse",
    "HistoryMessage",
    "HistoryPage",
    "LoginResponse",
    "LogoutResponse",
    "RenewTokenResponse",
    "PublishResponse",
    "UnsubscribeResponse",
    "LeaveChannelResponse",
    "JoinTopicResponse",
    "LeaveTopicResponse",
    "PublishTopicMessageResponse",
    "UnsubscribeTopicResponse",
    "SetStateResponse",
    "RemoveStateResponse",
    "SetLockResponse",
    "RemoveLockResponse",
    "ReleaseLockResponse",
    "RevokeLockResponse",
    "SubscribeUserMetaResponse",
    "UnsubscribeUserMetaResponse",
    "build_token",
    "build_stream_token",
    "refresh_log_level",
    "TRACE",
    "__version__",
]
