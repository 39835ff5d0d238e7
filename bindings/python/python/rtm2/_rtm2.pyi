# Stub of the native module rtm2._rtm2 (bindings/python/src). The public API is the `rtm2`
# package; these types are re-exported there (events and results) or used by it (Native*).
import asyncio
from typing import Any, ClassVar, Dict, List, Literal, Optional, Sequence, Tuple, Union

__version__: str

ChannelTypeName = Literal["NONE", "MESSAGE", "STREAM", "USER"]
PresenceEventTypeName = Literal[
    "NONE",
    "SNAPSHOT",
    "INTERVAL",
    "REMOTE_JOIN",
    "REMOTE_LEAVE",
    "REMOTE_TIMEOUT",
    "REMOTE_STATE_CHANGED",
    "ERROR_OUT_OF_SERVICE",
]
StorageTypeName = Literal["NONE", "USER", "CHANNEL"]
StorageEventTypeName = Literal["NONE", "SNAPSHOT", "SET", "UPDATE", "REMOVE"]
LockEventTypeName = Literal["NONE", "SNAPSHOT", "SET", "REMOVED", "ACQUIRED", "RELEASED", "EXPIRED"]
MessageTypeName = Literal["BINARY", "STRING"]
LinkStateName = Literal["IDLE", "CONNECTING", "CONNECTED", "DISCONNECTED", "SUSPENDED", "FAILED"]

class RtmErrorBase(Exception):
    """Native base of rtm2.RtmError; catch rtm2.RtmError instead."""

def build_token(app_id: str, certificate: str, user_id: str, expire_secs: int) -> str: ...
def build_stream_token(app_id: str, certificate: str, channel: str, user_id: str, expire_secs: int) -> str: ...
def error_codes() -> List[Tuple[int, str, str]]: ...
def enum_tables() -> List[Tuple[str, List[Tuple[str, int]]]]: ...
def set_log_level(level: int) -> None: ...
def stop_logging() -> None: ...
def logout_all(timeout: float) -> int: ...

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
    @property
    def recovered(self) -> bool:
        """True when delivered from the channel's history after a reconnect that could not
        resume (session expired or server restarted): a stored message published while the
        client was away, delivered oldest first before anything newer. An rtm2 addition."""

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
    def reason_number(self) -> int:
        """Why, by number (e.g. 27): ``reason_number`` in C, ``reasonNumber`` in Node."""
    @property
    def reason_name(self) -> str:
        """Why, by name: LOGIN_SUCCESS, SAME_UID_LOGIN, TOKEN_EXPIRED, ... (``reason_name`` in C,
        ``reasonName`` in Node)."""
    @property
    def reason_text(self) -> str:
        """Why, in words (may be empty): ``reason_text`` in C, ``reasonText`` in Node."""
    @property
    def reason(self) -> str:
        """Same as :attr:`reason_name` (kept for existing code)."""
    @property
    def reason_code(self) -> int:
        """Same as :attr:`reason_number` (kept for existing code)."""
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
    @property
    def timestamp(self) -> int:
        """The server's time of its answer, ms since the Unix epoch."""

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
    @property
    def timestamp(self) -> int:
        """The server's time of its answer, ms since the Unix epoch."""

# -- responses: what a call that returns nothing else answers -----------------------------------

class _Response(_Record):
    """The names the call was about, then when the server answered it."""

    @property
    def timestamp(self) -> int:
        """The server's time of its answer, ms since the Unix epoch."""

class LoginResponse(_Response): ...

class LogoutResponse(_Response):
    """``timestamp``: the client's time when the server could not answer (not connected)."""

class RenewTokenResponse(_Response):
    @property
    def channel(self) -> Optional[str]:
        """None for the login token (Client.renew_token), else the stream channel's name."""

class PublishResponse(_Response):
    """``timestamp``: of an acknowledgement that covered the publish."""

    @property
    def channel(self) -> str:
        """The channel, or the user for a USER publish."""

class UnsubscribeResponse(_Response):
    @property
    def channel(self) -> str: ...

class LeaveChannelResponse(_Response):
    @property
    def channel(self) -> str: ...

class _TopicResponse(_Response):
    @property
    def channel(self) -> str: ...
    @property
    def topic(self) -> str: ...

class JoinTopicResponse(_TopicResponse): ...
class LeaveTopicResponse(_TopicResponse): ...
class PublishTopicMessageResponse(_TopicResponse): ...
class UnsubscribeTopicResponse(_TopicResponse): ...

class _StateResponse(_Response):
    @property
    def channel(self) -> str: ...
    @property
    def channel_type(self) -> ChannelTypeName: ...

class SetStateResponse(_StateResponse):
    """``timestamp``: the client's time while the state is only kept locally."""

class RemoveStateResponse(_StateResponse): ...

class _LockResponse(_Response):
    @property
    def channel(self) -> str: ...
    @property
    def channel_type(self) -> ChannelTypeName: ...
    @property
    def lock_name(self) -> str: ...

class SetLockResponse(_LockResponse): ...
class RemoveLockResponse(_LockResponse): ...
class ReleaseLockResponse(_LockResponse): ...
class RevokeLockResponse(_LockResponse): ...

class _UserMetadataResponse(_Response):
    @property
    def user_id(self) -> str: ...

class SubscribeUserMetaResponse(_UserMetadataResponse): ...
class UnsubscribeUserMetaResponse(_UserMetadataResponse): ...

# -- presence ----------------------------------------------------------------------------------
# The results of the calls that return data end with ``timestamp``: the server's time of its
# answer, ms since the Unix epoch.

class UserState(_Record):
    """A user and its presence state in a channel."""

    @property
    def user_id(self) -> str: ...
    @property
    def states(self) -> Dict[str, str]:
        """key → value (empty unless asked for or set)."""

class GetStateResponse(UserState):
    """Result of presence.get_state: the UserState, with the channel and the server's time of
    its answer. Equal to a UserState with the same user and states."""

    @property
    def channel(self) -> str: ...
    @property
    def channel_type(self) -> ChannelTypeName: ...
    @property
    def timestamp(self) -> int:
        """The server's time of its answer, ms since the Unix epoch."""

class OnlineUsers(_Record):
    """One page of presence.get_online_users / who_now (agora-rtm-sdk's GetOnlineUsersResponse)."""

    @property
    def occupants(self) -> Tuple[UserState, ...]:
        """The users of this page (empty with include_user_id=False)."""
    @property
    def total_occupancy(self) -> int:
        """Users present in the channel."""
    @property
    def next_page(self) -> str:
        """Pass as ``page`` for the next page; "" on the last page."""
    @property
    def timestamp(self) -> int:
        """The server's time of its answer, ms since the Unix epoch."""

class ChannelInfo(_Record):
    """A channel a user is present in."""

    @property
    def channel(self) -> str: ...
    @property
    def channel_type(self) -> ChannelTypeName: ...

class PresenceInterval(_Record):
    """The changes of one presence interval (INTERVAL events)."""

    @property
    def joined(self) -> Tuple[str, ...]: ...
    @property
    def left(self) -> Tuple[str, ...]: ...
    @property
    def timed_out(self) -> Tuple[str, ...]: ...
    @property
    def states(self) -> Tuple[UserState, ...]:
        """The full state of every user whose state changed."""
    @property
    def total_occupancy(self) -> int: ...

class PresenceEvent(_Record):
    """A presence event of a channel entered with with_presence=True."""

    @property
    def event_type(self) -> PresenceEventTypeName: ...
    @property
    def channel_type(self) -> ChannelTypeName:
        """MESSAGE or STREAM."""
    @property
    def channel(self) -> str: ...
    @property
    def publisher(self) -> str:
        """The user the event is about ("" for SNAPSHOT and INTERVAL)."""
    @property
    def states(self) -> Dict[str, str]:
        """REMOTE_STATE_CHANGED: the publisher's full state."""
    @property
    def snapshot(self) -> Tuple[UserState, ...]:
        """SNAPSHOT: everyone present (with their states), including you."""
    @property
    def interval(self) -> Optional[PresenceInterval]:
        """INTERVAL: the aggregated changes (None for the other types)."""
    @property
    def timestamp(self) -> int: ...

# -- storage -----------------------------------------------------------------------------------

class MetadataItem(_Record):
    """A metadata item. In writes ``revision`` is a condition (-1 none, 0 create only, N must
    match); in reads and events it is the item's revision."""

    def __init__(self, key: str, value: str = "", revision: int = -1, updated: int = 0, author: str = "") -> None: ...
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> str: ...
    @property
    def revision(self) -> int: ...
    @property
    def updated(self) -> int:
        """When it was written, ms since the epoch (0 unless written with record_ts)."""
    @property
    def author(self) -> str:
        """Who wrote it ("" unless written with record_author)."""

class Metadata(_Record):
    """A metadata set."""

    @property
    def major_revision(self) -> int:
        """Incremented by every write of the set (0: never written)."""
    @property
    def items(self) -> Tuple[MetadataItem, ...]:
        """Sorted by key."""
    def get(self, key: str) -> Optional[MetadataItem]: ...

class GetChannelMetadataResponse(Metadata):
    """Result of storage.get_channel_metadata: the Metadata, with the channel and the server's
    time of its answer. Equal to a Metadata with the same revision and items."""

    @property
    def channel(self) -> str: ...
    @property
    def channel_type(self) -> ChannelTypeName: ...
    @property
    def timestamp(self) -> int:
        """The server's time of its answer, ms since the Unix epoch."""

class GetUserMetadataResponse(Metadata):
    """Result of storage.get_user_metadata: the Metadata, with the user and the server's time of
    its answer. Equal to a Metadata with the same revision and items."""

    @property
    def user_id(self) -> str:
        """The user read (yours when asked for "")."""
    @property
    def timestamp(self) -> int:
        """The server's time of its answer, ms since the Unix epoch."""

class MetadataWrite(_Record):
    """The outcome of a metadata write (agora-rtm-sdk's SetChannelMetadataResponse and the others)."""

    @property
    def major_revision(self) -> int:
        """The set's new major revision (also the revision of every item written)."""
    @property
    def total_count(self) -> int:
        """Items in the set after the write."""
    @property
    def timestamp(self) -> int:
        """The server's time of its answer, ms since the Unix epoch."""

class StorageEvent(_Record):
    """The whole metadata set of a channel or user: SNAPSHOT (on subscribing) or UPDATE."""

    @property
    def event_type(self) -> StorageEventTypeName: ...
    @property
    def storage_type(self) -> StorageTypeName: ...
    @property
    def channel_type(self) -> ChannelTypeName:
        """MESSAGE or STREAM for channel metadata, NONE for user metadata."""
    @property
    def target(self) -> str:
        """The channel name or the user id."""
    @property
    def publisher(self) -> str:
        """Who wrote ("" for SNAPSHOT)."""
    @property
    def data(self) -> Metadata: ...
    @property
    def timestamp(self) -> int: ...

# -- locks -------------------------------------------------------------------------------------

class LockDetail(_Record):
    @property
    def name(self) -> str: ...
    @property
    def owner(self) -> str:
        """ "" = free."""
    @property
    def ttl(self) -> int:
        """Seconds an owner keeps the lock after its connection drops."""
    @property
    def fencing_token(self) -> int:
        """The fencing token of the owner's grant (0 when free)."""

class LockEvent(_Record):
    """A lock event of a channel entered with with_lock=True (EXPIRED also reaches the owner)."""

    @property
    def event_type(self) -> LockEventTypeName: ...
    @property
    def channel_type(self) -> ChannelTypeName: ...
    @property
    def channel(self) -> str: ...
    @property
    def lock_name(self) -> str:
        """ "" for SNAPSHOT."""
    @property
    def ttl(self) -> int: ...
    @property
    def owner(self) -> str:
        """The new owner (ACQUIRED) or the former one (RELEASED, EXPIRED)."""
    @property
    def publisher(self) -> str:
        """Who caused the event."""
    @property
    def snapshot(self) -> Tuple[LockDetail, ...]:
        """SNAPSHOT: every lock of the channel."""
    @property
    def fencing_token(self) -> int:
        """ACQUIRED: the new grant's token; RELEASED, EXPIRED, REMOVED: the ended grant's (0 if
        the lock was free); 0 for SET and SNAPSHOT."""
    @property
    def timestamp(self) -> int: ...

# -- history -----------------------------------------------------------------------------------

class HistoryMessage(_Record):
    """A stored message (``history.get_messages``)."""

    @property
    def message(self) -> Union[str, bytes]:
        """str for STRING messages, bytes for BINARY ones (decrypted, when the client encrypts)."""
    @property
    def message_type(self) -> MessageTypeName: ...
    @property
    def custom_type(self) -> str: ...
    @property
    def publisher(self) -> str: ...
    @property
    def timestamp(self) -> int:
        """The server's timestamp, ms since the Unix epoch (unique within the channel's history;
        the delivered MessageEvent carries the same)."""

class HistoryPage(_Record):
    """One page of a channel's history, newest first (agora-rtm-sdk's GetHistoryMessagesResponse)."""

    @property
    def messages(self) -> Tuple[HistoryMessage, ...]: ...
    @property
    def count(self) -> int:
        """len(messages)."""
    @property
    def new_start(self) -> int:
        """0: nothing older; else the ``start`` of the next (older) page."""
    @property
    def timestamp(self) -> int:
        """The server's time of its answer, ms since the Unix epoch."""

Event = Union[
    MessageEvent,
    TopicEvent,
    PresenceEvent,
    StorageEvent,
    LockEvent,
    LinkStateEvent,
    TokenPrivilegeWillExpireEvent,
    OverflowEvent,
]

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
    @property
    def timestamp(self) -> int: ...

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
    def leave(self, timeout: Optional[float] = None) -> asyncio.Future[LeaveChannelResponse]: ...
    def join_topic(
        self,
        topic: str,
        qos: str = "UNORDERED",
        priority: str = "NORMAL",
        meta: str = "",
        sync_with_media: bool = False,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[JoinTopicResponse]: ...
    def leave_topic(self, topic: str, timeout: Optional[float] = None) -> asyncio.Future[LeaveTopicResponse]: ...
    def publish_topic(
        self,
        topic: str,
        message: Union[str, bytes, bytearray],
        custom_type: str = "",
        send_ts: int = 0,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[PublishTopicMessageResponse]: ...
    def subscribe_topic(
        self, topic: str, users: Sequence[str] = ..., timeout: Optional[float] = None
    ) -> asyncio.Future[SubscribeTopicResult]: ...
    def unsubscribe_topic(
        self, topic: str, users: Sequence[str] = ..., timeout: Optional[float] = None
    ) -> asyncio.Future[UnsubscribeTopicResponse]: ...
    def subscribed_users(self, topic: str) -> List[str]: ...
    def joined_topics(self) -> List[str]: ...
    def is_joined(self) -> bool: ...
    def renew_token(self, token: str, timeout: Optional[float] = None) -> asyncio.Future[RenewTokenResponse]: ...

_Items = Sequence[Tuple[str, str, int]]

class NativePresence:
    def get_online_users(
        self,
        channel: str,
        channel_type_name: str = "MESSAGE",
        include_user_id: bool = True,
        include_state: bool = False,
        page: str = "",
        timeout: Optional[float] = None,
    ) -> asyncio.Future[OnlineUsers]: ...
    def get_user_channels(
        self, user_id: str = "", timeout: Optional[float] = None
    ) -> asyncio.Future[Tuple[Tuple[ChannelInfo, ...], int]]:
        """(channels, timestamp): rtm2.GetUserChannelsResponse's fields."""
    def set_state(
        self, channel: str, channel_type_name: str, states: Sequence[Tuple[str, str]], timeout: Optional[float] = None
    ) -> asyncio.Future[SetStateResponse]: ...
    def get_state(
        self, channel: str, channel_type_name: str, user_id: str, timeout: Optional[float] = None
    ) -> asyncio.Future[GetStateResponse]: ...
    def remove_state(
        self, channel: str, channel_type_name: str, keys: Sequence[str], timeout: Optional[float] = None
    ) -> asyncio.Future[RemoveStateResponse]: ...

class NativeStorage:
    def set_channel_metadata(
        self,
        channel: str,
        channel_type_name: str,
        items: _Items,
        major_revision: int = -1,
        lock_name: str = "",
        record_ts: bool = False,
        record_author: bool = False,
        timeout: Optional[float] = None,
        fencing_token: int = 0,
    ) -> asyncio.Future[MetadataWrite]: ...
    def update_channel_metadata(
        self,
        channel: str,
        channel_type_name: str,
        items: _Items,
        major_revision: int = -1,
        lock_name: str = "",
        record_ts: bool = False,
        record_author: bool = False,
        timeout: Optional[float] = None,
        fencing_token: int = 0,
    ) -> asyncio.Future[MetadataWrite]: ...
    def remove_channel_metadata(
        self,
        channel: str,
        channel_type_name: str,
        items: _Items,
        major_revision: int = -1,
        lock_name: str = "",
        record_ts: bool = False,
        record_author: bool = False,
        timeout: Optional[float] = None,
        fencing_token: int = 0,
    ) -> asyncio.Future[MetadataWrite]: ...
    def get_channel_metadata(
        self, channel: str, channel_type_name: str, timeout: Optional[float] = None
    ) -> asyncio.Future[GetChannelMetadataResponse]: ...
    def set_user_metadata(
        self,
        user_id: str,
        items: _Items,
        major_revision: int = -1,
        lock_name: str = "",
        record_ts: bool = False,
        record_author: bool = False,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[MetadataWrite]: ...
    def update_user_metadata(
        self,
        user_id: str,
        items: _Items,
        major_revision: int = -1,
        lock_name: str = "",
        record_ts: bool = False,
        record_author: bool = False,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[MetadataWrite]: ...
    def remove_user_metadata(
        self,
        user_id: str,
        items: _Items,
        major_revision: int = -1,
        lock_name: str = "",
        record_ts: bool = False,
        record_author: bool = False,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[MetadataWrite]: ...
    def get_user_metadata(
        self, user_id: str = "", timeout: Optional[float] = None
    ) -> asyncio.Future[GetUserMetadataResponse]: ...
    def subscribe_user_metadata(
        self, user_id: str, timeout: Optional[float] = None
    ) -> asyncio.Future[SubscribeUserMetaResponse]: ...
    def unsubscribe_user_metadata(
        self, user_id: str, timeout: Optional[float] = None
    ) -> asyncio.Future[UnsubscribeUserMetaResponse]: ...

class NativeWithdrawal:
    def withdraw(self) -> asyncio.Future[None]: ...

class NativeLock:
    def set_lock(
        self, channel: str, channel_type_name: str, name: str, ttl: int = 0, timeout: Optional[float] = None
    ) -> asyncio.Future[SetLockResponse]: ...
    def remove_lock(
        self, channel: str, channel_type_name: str, name: str, timeout: Optional[float] = None
    ) -> asyncio.Future[RemoveLockResponse]: ...
    def acquire_lock(
        self, channel: str, channel_type_name: str, name: str, retry: bool = False, timeout: Optional[float] = None
    ) -> Tuple[asyncio.Future[Tuple[str, ChannelTypeName, str, int, int]], NativeWithdrawal]:
        """The acquisition, resolved with (channel, channel_type, lock_name, fencing_token,
        timestamp) — rtm2.AcquireLockResponse's fields —, and its withdrawal."""
    def release_lock(
        self, channel: str, channel_type_name: str, name: str, timeout: Optional[float] = None
    ) -> asyncio.Future[ReleaseLockResponse]: ...
    def revoke_lock(
        self, channel: str, channel_type_name: str, name: str, owner: str, timeout: Optional[float] = None
    ) -> asyncio.Future[RevokeLockResponse]: ...
    def get_locks(
        self, channel: str, channel_type_name: str, timeout: Optional[float] = None
    ) -> asyncio.Future[Tuple[str, ChannelTypeName, Tuple[LockDetail, ...], int]]:
        """(channel, channel_type, locks, timestamp): rtm2.GetLockResponse's fields."""

class NativeHistory:
    def get_messages(
        self,
        channel: str,
        channel_type_name: str = "MESSAGE",
        message_count: int = 0,
        start: int = 0,
        end: int = 0,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[HistoryPage]: ...

class NativeClient:
    def __init__(
        self,
        app_id: str,
        user_id: str,
        endpoint: Union[str, List[str], None] = None,
        parameters: Optional[str] = None,
        encryption_mode: Union[str, int, None] = None,
        cipher_key: str = "",
        salt: Union[bytes, bytearray, str, None] = None,
    ) -> None: ...
    def login(self, token: str, timeout: Optional[float] = None) -> asyncio.Future[LoginResponse]: ...
    def logout(self) -> asyncio.Future[LogoutResponse]: ...
    def renew_token(self, token: str, timeout: Optional[float] = None) -> asyncio.Future[RenewTokenResponse]: ...
    def publish(
        self,
        channel: str,
        message: Union[str, bytes, bytearray],
        channel_type: str = "MESSAGE",
        custom_type: str = "",
        store_in_history: bool = False,
        timeout: Optional[float] = None,
    ) -> asyncio.Future[PublishResponse]: ...
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
    def unsubscribe(self, channel: str, timeout: Optional[float] = None) -> asyncio.Future[UnsubscribeResponse]: ...
    def stream_channel(self, name: str) -> NativeStreamChannel: ...
    def presence(self) -> NativePresence: ...
    def storage(self) -> NativeStorage: ...
    def lock(self) -> NativeLock: ...
    def history(self) -> NativeHistory: ...
    def events(self) -> NativeEventReceiver: ...
    def link_state(self) -> LinkStateName: ...
    def user_id(self) -> str: ...
    def connected_to(self) -> Optional[Tuple[str, str]]: ...
    def undecryptable_messages(self) -> int: ...
    def set_parameters(self, json: str) -> None: ...
    def get_parameters(self) -> str: ...
    def subscribed_channels(self) -> List[str]: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
