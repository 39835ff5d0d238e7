"""The responses of the calls whose result was a list or an int before they carried the
server's time (#18): :class:`GetUserChannelsResponse` (``presence.get_user_channels`` /
``where_now``), :class:`GetLockResponse` (``lock.get_locks``) and :class:`AcquireLockResponse`
(``lock.acquire_lock``), named as agora-rtm-sdk (and the Node binding) names them.

Each still *is* what the call returned before — a ``list`` of :class:`rtm2.ChannelInfo` or of
:class:`rtm2.LockDetail`, an ``int`` (the fencing token) — so existing code keeps working
unchanged: iteration, ``len``, indexing, unpacking, ``== []``, arithmetic, passing the token as
``fencing_token=``, ``repr``/``str``, equality and hashing are the list's or the int's. What
agora-rtm-sdk's response has besides is read-only attributes (``timestamp``: the server's time
of its answer, ms since the epoch), listed in ``__match_args__`` and returned by
``to_dict()`` like the fields of the other records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Dict, Iterable, List, Tuple

from ._rtm2 import ChannelInfo, LockDetail

if TYPE_CHECKING:
    from ._rtm2 import ChannelTypeName

__all__ = ["GetUserChannelsResponse", "GetLockResponse", "AcquireLockResponse"]


class _Fields:
    """``to_dict()`` of a response: its ``__match_args__`` fields."""

    __slots__ = ()
    __match_args__: ClassVar[Tuple[str, ...]]

    def to_dict(self) -> Dict[str, Any]:
        """The response's fields as a dict."""
        return {name: getattr(self, name) for name in self.__match_args__}


class GetUserChannelsResponse(_Fields, List[ChannelInfo]):
    """Result of ``presence.get_user_channels`` / ``where_now``: the list of
    :class:`rtm2.ChannelInfo` it always was, with agora-rtm-sdk's ``channels``,
    ``total_channel`` and ``timestamp``."""

    __slots__ = ("_timestamp",)
    __match_args__: ClassVar[Tuple[str, ...]] = ("channels", "total_channel", "timestamp")

    def __init__(self, channels: Iterable[ChannelInfo] = (), timestamp: int = 0) -> None:
        super().__init__(channels)
        self._timestamp = timestamp

    @property
    def channels(self) -> Tuple[ChannelInfo, ...]:
        """The channels (the list's items)."""
        return tuple(self)

    @property
    def total_channel(self) -> int:
        """How many channels: ``len(self)``."""
        return len(self)

    @property
    def timestamp(self) -> int:
        """The server's time of its answer, ms since the Unix epoch."""
        return self._timestamp


class GetLockResponse(_Fields, List[LockDetail]):
    """Result of ``lock.get_locks``: the list of :class:`rtm2.LockDetail` it always was, with
    agora-rtm-sdk's ``channel``, ``channel_type``, ``lock_details``, ``total_locks`` and
    ``timestamp``."""

    __slots__ = ("_channel", "_channel_type", "_timestamp")
    __match_args__: ClassVar[Tuple[str, ...]] = ("channel", "channel_type", "lock_details", "total_locks", "timestamp")

    def __init__(
        self,
        channel: str,
        channel_type: ChannelTypeName,
        lock_details: Iterable[LockDetail] = (),
        timestamp: int = 0,
    ) -> None:
        super().__init__(lock_details)
        self._channel = channel
        self._channel_type = channel_type
        self._timestamp = timestamp

    @property
    def channel(self) -> str:
        return self._channel

    @property
    def channel_type(self) -> ChannelTypeName:
        """``"MESSAGE"`` or ``"STREAM"``."""
        return self._channel_type

    @property
    def lock_details(self) -> Tuple[LockDetail, ...]:
        """The locks (the list's items)."""
        return tuple(self)

    @property
    def total_locks(self) -> int:
        """How many locks: ``len(self)``."""
        return len(self)

    @property
    def timestamp(self) -> int:
        """The server's time of its answer, ms since the Unix epoch."""
        return self._timestamp


class AcquireLockResponse(_Fields, int):
    """Result of ``lock.acquire_lock``: the grant's fencing token, an ``int`` as it always was,
    with agora-rtm-sdk's ``channel``, ``channel_type``, ``lock_name``, ``fencing_token`` (the
    same ``int``) and ``timestamp`` (the server's time of the grant)."""

    __match_args__: ClassVar[Tuple[str, ...]] = ("channel", "channel_type", "lock_name", "fencing_token", "timestamp")
    _channel: str
    _channel_type: ChannelTypeName
    _lock_name: str
    _timestamp: int

    def __new__(
        cls,
        fencing_token: int,
        channel: str = "",
        channel_type: ChannelTypeName = "MESSAGE",
        lock_name: str = "",
        timestamp: int = 0,
    ) -> "AcquireLockResponse":
        self = super().__new__(cls, fencing_token)
        self.__dict__.update(_channel=channel, _channel_type=channel_type, _lock_name=lock_name, _timestamp=timestamp)
        return self

    def __getnewargs__(self) -> Tuple[int, str, ChannelTypeName, str, int]:  # type: ignore[override]
        return (int(self), self._channel, self._channel_type, self._lock_name, self._timestamp)

    @property
    def channel(self) -> str:
        return self._channel

    @property
    def channel_type(self) -> ChannelTypeName:
        """``"MESSAGE"`` or ``"STREAM"``."""
        return self._channel_type

    @property
    def lock_name(self) -> str:
        return self._lock_name

    @property
    def fencing_token(self) -> int:
        """The token as a plain ``int`` (``int(self)``)."""
        return int(self)

    @property
    def timestamp(self) -> int:
        """The server's time of the grant, ms since the Unix epoch."""
        return self._timestamp
