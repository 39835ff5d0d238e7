# Stub of the native module rtm2._rtm2 (bindings/python/src). The public API is the `rtm2`
# package; these types are re-exported there (events and results) or used by it (Native*).
import asyncio
from typing import Any, ClassVar, Dict, List, Literal, Optional, Sequence, Tuple, Union

__version__: str

ChannelTypeName = Literal["NONE", "MESSAGE", "STREAM", "USER"]
MessageTypeName = Literal["BINARY", "STRING"]
LinkStateName = Literal["IDLE", "CONNECTING", "CONNECTED", "DISCONNECTED", "SUSPENDED", "FAILED"]

class RtmErrorBase(Exception):
    """Native base of rtm2.RtmError; catch rtm2.RtmError instead."""

def build_token(app_id: str, certificate: str, user_id: str, expire_secs: int) -> str: ...
def build_stream_token(app_id: str, certificate: str, channel: str, user_id: str, expire_secs: int) -> str: ...
def error_codes() -> List[Tuple[int, str, str]]: ...
def set_log_level(level: int) -> None: ...
def stop_logging() -> None: ...

class LoopBridge:
    def __init__(self, event_loop: asyncio.AbstractEventLoop) -> None: ...
    def fileno(self) -> int: ...
    def drain(self) -> None: ...

class _Record:
    __match_args__: ClassVar[Tuple[str, ...]]
    def to_dict(self) -> Dict[str, Any]: ...
    def __eq__(self, other: object) -> bool: ...

class MessageEvent(_Record):
    """A received message (message channel, user channel or stream topic)."""

    @property
    def channel_type(self) -> ChannelTypeName:
        """MESSAGE, USER (peer-to-peer) or STREAM (a topic message)."""
    @property
    def channel(self) -> str:
        """The channel; for USER messages the receiving user's id."""
    @property
    def topic(self) -> str:
        """The topic (STREAM only, else "")."""
    @property
    def publisher(self) -> str: ...
    @property
    def message_type(self) -> MessageTypeName: ...
    @property
    def message(self) -> Union[str, bytes]:
        """str for STRING messages, bytes for BINARY ones."""
    @property
    def custom_type(self) -> str: ...
    @property
    def timestamp(self) -> int:
        """Server time of receipt, milliseconds since the Unix epoch."""

class PublisherInfo(_Record):
    @property
    def user_id(self) -> str: ...
    @property
    def meta(self) -> str: ...

class TopicInfo(_Record):
    @property
    def topic(self) -> str: ...
    @property
    def publishers(self) -> Tuple[PublisherInfo, ...]: ...

class TopicEvent(_Record):
    """SNAPSHOT (after join), REMOTE_JOIN or REMOTE_LEAVE of publishers in topics."""

    @property
    def event_type(self) -> Literal["NONE", "SNAPSHOT", "REMOTE_JOIN", "REMOTE_LEAVE"]: ...
    @property
    def channel(self) -> str: ...
    @property
    def publisher(self) -> str:
        """The user that joined or left ("" for SNAPSHOT)."""
    @property
    def topics(self) -> Tuple[TopicInfo, ...]: ...
    @property
    def timestamp(self) -> int: ...

class LinkStateEvent(_Record):
    """A change of the state of the client's connection (service_type MESSAGE) or of a
    stream channel (service_type STREAM)."""

    @property
    def current(self) -> LinkStateName: ...
    @property
    def previous(self) -> LinkStateName: ...
    @property
    def service_type(self) -> Literal["NONE", "MESSAGE", "STREAM"]: ...
    @property
    def operation(self) -> str:
        """What caused it: LOGIN, LOGOUT, JOIN, LEAVE, SERVER_REJECT, AUTO_RECONNECT, ..."""
    @property
    def reason(self) -> str:
        """Why, by name: LOGIN_SUCCESS, SAME_UID_LOGIN, TOKEN_EXPIRED, ..."""
    @property
    def reason_code(self) -> int:
        """The reason's number (e.g. 27 for SAME_UID_LOGIN)."""
    @property
    def reason_text(self) -> str: ...
    @property
    def channel(self) -> str:
        """The stream channel (STREAM only)."""
    @property
    def affected_channels(self) -> Tuple[str, ...]: ...
    @property
    def unrestored_channels(self) -> Tuple[str, ...]: ...
    @property
    def is_resumed(self) -> bool: ...
    @property
    def timestamp(self) -> int: ...

class TokenPrivilegeWillExpireEvent(_Record):
    @property
    def channel(self) -> Optional[str]:
        """None for the login token, else the stream channel whose token expires."""

class OverflowEvent(_Record):
    @property
    def dropped(self) -> int:
        """Events dropped because the receiver's queue was full."""

class JoinResult(_Record):
    @property
    def channel(self) -> str: ...
    @property
    def topics(self) -> Tuple[TopicInfo, ...]: ...

class FailedUser(_Record):
    @property
    def user_id(self) -> str: ...
    @property
    def code(self) -> int:
        """Per-user code: 6 INVALID_REMOTE_USER, 20003 SUB_USER_EXCEED_LIMITATION."""
    @property
    def reason(self) -> str: ...

class SubscribeTopicResult(_Record):
    @property
    def succeeded(self) -> Tuple[str, ...]: ...
    @property
    def failed(self) -> Tuple[FailedUser, ...]: ...

Event = Union[MessageEvent, TopicEvent, LinkStateEvent, TokenPrivilegeWillExpireEvent, OverflowEvent]

class NativeEventReceiver:
    def wait(self, max: int) -> asyncio.Future[bool]: ...
    def take(self, max: int) -> List[Event]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...

class NativeSubscription:
    def wait(self, max: int) -> asyncio.Future[bool]: ...
    def take(self, max: int) -> List[Union[MessageEvent, OverflowEvent]]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def channel(self) -> str: ...

class NativeStreamChannel:
    @property
    def name(self) -> str: ...
    def join(
        self,
        token: str = "",
        with_presence: bool = True,
        with_metadata: bool = False,
        with_lock: bool = False,
        be_quiet: bool = False,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[JoinResult]: ...
    def leave(self, timeout: Optional[float] = None) -> asyncio.Future[None]: ...
    def join_topic(
        self,
        topic: str,
        qos: str = "UNORDERED",
        priority: str = "NORMAL",
        meta: str = "",
        sync_with_media: bool = False,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[None]: ...
    def leave_topic(self, topic: str, timeout: Optional[float] = None) -> asyncio.Future[None]: ...
    def publish_topic(
        self,
        topic: str,
        message: Union[str, bytes, bytearray],
        custom_type: str = "",
        send_ts: int = 0,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[None]: ...
    def subscribe_topic(
        self, topic: str, users: Sequence[str] = ..., timeout: Optional[float] = None
    ) -> asyncio.Future[SubscribeTopicResult]: ...
    def unsubscribe_topic(
        self, topic: str, users: Sequence[str] = ..., timeout: Optional[float] = None
    ) -> asyncio.Future[None]: ...
    def subscribed_users(self, topic: str) -> List[str]: ...
    def joined_topics(self) -> List[str]: ...
    def is_joined(self) -> bool: ...
    def renew_token(self, token: str, timeout: Optional[float] = None) -> asyncio.Future[None]: ...

class NativeClient:
    def __init__(
        self, app_id: str, user_id: str, endpoint: Optional[str] = None, parameters: Optional[str] = None
    ) -> None: ...
    def login(self, token: str, timeout: Optional[float] = None) -> asyncio.Future[None]: ...
    def logout(self) -> asyncio.Future[None]: ...
    def renew_token(self, token: str, timeout: Optional[float] = None) -> asyncio.Future[None]: ...
    def publish(
        self,
        channel: str,
        message: Union[str, bytes, bytearray],
        channel_type: str = "MESSAGE",
        custom_type: str = "",
        store_in_history: bool = False,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[None]: ...
    def subscribe(
        self,
        channel: str,
        with_message: bool = True,
        with_presence: bool = True,
        with_metadata: bool = False,
        with_lock: bool = False,
        be_quiet: bool = False,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[NativeSubscription]: ...
    def unsubscribe(self, channel: str, timeout: Optional[float] = None) -> asyncio.Future[None]: ...
    def stream_channel(self, name: str) -> NativeStreamChannel: ...
    def events(self) -> NativeEventReceiver: ...
    def link_state(self) -> LinkStateName: ...
    def user_id(self) -> str: ...
    def set_parameters(self, json: str) -> None: ...
    def get_parameters(self) -> str: ...
    def subscribed_channels(self) -> List[str]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
