"""Presence, storage, locks and history: :class:`Presence` (``client.presence``),
:class:`Storage` (``client.storage``), :class:`Locks` (``client.lock``) and :class:`History`
(``client.history``).

Each method converts its arguments and awaits the native operation; validation, limits, the
local state cache and the error codes are the Rust SDK's. ``channel_type`` is ``"MESSAGE"``
(the default) or ``"STREAM"`` (or an :class:`rtm2.ChannelType`); a channel of each type is a
separate channel with its own presence, metadata and locks.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Iterable, List, Literal, Mapping, Optional, Tuple, Union

from ._enums import ChannelType
from ._responses import AcquireLockResponse, GetLockResponse, GetUserChannelsResponse
from ._rtm2 import (
    GetChannelMetadataResponse,
    GetStateResponse,
    GetUserMetadataResponse,
    HistoryPage,
    MetadataItem,
    MetadataWrite,
    OnlineUsers,
    ReleaseLockResponse,
    RemoveLockResponse,
    RemoveStateResponse,
    RevokeLockResponse,
    SetLockResponse,
    SetStateResponse,
    SubscribeUserMetaResponse,
    UnsubscribeUserMetaResponse,
)

if TYPE_CHECKING:
    from ._client import Client

__all__ = ["Presence", "Storage", "Locks", "History"]

ChannelTypeName = Union[Literal["MESSAGE", "STREAM"], ChannelType]
HistoryChannelTypeName = Union[Literal["MESSAGE", "USER"], ChannelType]
States = Union[Mapping[str, str], Iterable[Tuple[str, str]]]
"""A state: a dict, or (key, value) pairs (pairs keep a repeated key, which the SDK rejects)."""
ItemLike = Union[MetadataItem, str, Tuple[str, str], Tuple[str, str, int]]
Items = Union[Mapping[str, str], Iterable[ItemLike]]
"""Metadata items: a dict of key → value (no revision check), or an iterable of
:class:`MetadataItem`, ``(key, value)`` or ``(key, value, revision)`` tuples, or keys (``str``,
for removal)."""


def _not_str(value: Any, what: str) -> None:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what} must be a collection, not a {type(value).__name__}")


def _states(states: States) -> List[Tuple[str, str]]:
    _not_str(states, "states")
    if isinstance(states, Mapping):
        return list(states.items())
    return [tuple(p) for p in states]  # type: ignore[misc]  # the native side checks (str, str)


def _keys(keys: Iterable[str]) -> List[str]:
    _not_str(keys, "keys")
    return list(keys)


def _item(item: ItemLike) -> Tuple[str, str, int]:
    if isinstance(item, MetadataItem):
        return (item.key, item.value, item.revision)
    if isinstance(item, str):
        return (item, "", -1)
    if isinstance(item, tuple) and len(item) == 2:
        return (item[0], item[1], -1)
    if isinstance(item, tuple) and len(item) == 3:
        return item
    raise TypeError(f"a metadata item is a MetadataItem, a key or a (key, value[, revision]) tuple, not {item!r}")


def _items(items: Items) -> List[Tuple[str, str, int]]:
    _not_str(items, "items")
    if isinstance(items, Mapping):
        return [(k, v, -1) for k, v in items.items()]
    return [_item(i) for i in items]


class Presence:
    """Who is in a channel, where a user is, and each user's state in a channel (``client.presence``).

    Asking works for any channel (no need to be in it). Your own state in a channel is set on
    the server while you are present there (subscribed or joined with ``with_presence=True``);
    before that it is kept locally (at most 100 channels) and applied when you enter.
    Events: ``"presence"`` (:class:`rtm2.PresenceEvent`) for channels entered with
    ``with_presence=True``.
    """

    def __init__(self, client: "Client", native: Any) -> None:
        self._client = client
        self._native = native

    async def get_online_users(
        self,
        channel: str,
        *,
        channel_type: ChannelTypeName = "MESSAGE",
        include_user_id: bool = True,
        include_state: bool = False,
        page: str = "",
        timeout: Optional[float] = None,
    ) -> OnlineUsers:
        """One page of the users present in ``channel`` (``result.next_page`` is the ``page`` of
        the next one, "" on the last). ``include_user_id=False``: the count only;
        ``include_state=True`` also lists each user's state (needs ``include_user_id``, 13003).
        Users that entered with ``be_quiet=True`` are not listed. ``result.timestamp``: the
        server's time of its answer."""
        self._client._ensure_dispatcher()
        return await self._native.get_online_users(  # type: ignore[no-any-return]
            channel, channel_type, include_user_id, include_state, page, timeout
        )

    who_now = get_online_users
    """Alias of :meth:`get_online_users` (the reference's ``whoNow``)."""

    async def get_user_channels(self, user_id: str = "", *, timeout: Optional[float] = None) -> GetUserChannelsResponse:
        """The channels ``user_id`` ("" = you) is present in: a list of
        :class:`rtm2.ChannelInfo` that also has ``timestamp`` (the server's time of its answer),
        ``channels`` and ``total_channel``."""
        self._client._ensure_dispatcher()
        channels, timestamp = await self._native.get_user_channels(user_id, timeout)
        return GetUserChannelsResponse(channels, timestamp)

    where_now = get_user_channels
    """Alias of :meth:`get_user_channels` (the reference's ``whereNow``)."""

    async def set_state(
        self,
        channel: str,
        states: States,
        *,
        channel_type: ChannelTypeName = "MESSAGE",
        timeout: Optional[float] = None,
    ) -> SetStateResponse:
        """Adds or overwrites keys of your state in ``channel``. Others present get one
        ``REMOTE_STATE_CHANGED`` with your full state. At most 32 pairs (13005), keys ≤ 32
        bytes (13008), values ≤ 16 KB (13009). While the state is only kept locally (you are
        not present yet), the response's ``timestamp`` is the client's time."""
        self._client._ensure_dispatcher()
        return await self._native.set_state(  # type: ignore[no-any-return]
            channel, channel_type, _states(states), timeout
        )

    async def get_state(
        self,
        channel: str,
        user_id: str,
        *,
        channel_type: ChannelTypeName = "MESSAGE",
        timeout: Optional[float] = None,
    ) -> GetStateResponse:
        """The state of ``user_id`` in ``channel`` (13011 if that user is not present there): a
        :class:`rtm2.UserState` that also has ``channel``, ``channel_type`` and ``timestamp``
        (the server's time of its answer)."""
        self._client._ensure_dispatcher()
        return await self._native.get_state(channel, channel_type, user_id, timeout)  # type: ignore[no-any-return]

    async def remove_state(
        self,
        channel: str,
        keys: Iterable[str] = (),
        *,
        channel_type: ChannelTypeName = "MESSAGE",
        timeout: Optional[float] = None,
    ) -> RemoveStateResponse:
        """Removes these keys of your state in ``channel`` (no keys: all of them; more than 32:
        13005 PRESENCE_STATE_COUNT_OVERFLOW)."""
        self._client._ensure_dispatcher()
        return await self._native.remove_state(  # type: ignore[no-any-return]
            channel, channel_type, _keys(keys), timeout
        )

    def __repr__(self) -> str:
        return f"<rtm2.Presence of {self._client!r}>"


class Storage:
    """Channel metadata and user metadata, with revisions for compare-and-set (``client.storage``).

    Writes return :class:`rtm2.MetadataWrite` (the set's new ``major_revision``, which is also
    the revision of every item written, its ``total_count`` and the server's ``timestamp`` of its
    answer); reads a :class:`rtm2.Metadata` that also has the channel or user and the
    ``timestamp`` of the answer (:class:`rtm2.GetChannelMetadataResponse`,
    :class:`rtm2.GetUserMetadataResponse`). Conditions: ``major_revision``
    -1 (default) no check, 0 the set must be empty (set only), N the set's major revision must
    be N; an item's ``revision`` likewise (-1, 0 = create only, N) — a failed condition is 12014.
    ``record_ts`` / ``record_author`` stamp the written items with the server time / your user
    id. ``lock_name`` (channel metadata): write only while you hold that lock (12008);
    ``fencing_token`` (with ``lock_name``): the token :meth:`Locks.acquire_lock` returned — the
    write is refused (12008) unless it is the lock's current grant, so a holder whose lock was
    freed and granted again meanwhile cannot write on stale reads (0 = not checked).

    Events: ``"storage"`` (:class:`rtm2.StorageEvent`, the whole set): for channels subscribed or
    joined with ``with_metadata=True``, and for users after :meth:`subscribe_user_metadata`.
    """

    def __init__(self, client: "Client", native: Any) -> None:
        self._client = client
        self._native = native

    # -- channel metadata ----------------------------------------------------------------------

    async def set_channel_metadata(
        self,
        channel: str,
        items: Items,
        *,
        channel_type: ChannelTypeName = "MESSAGE",
        major_revision: int = -1,
        lock_name: str = "",
        record_ts: bool = False,
        record_author: bool = False,
        timeout: Optional[float] = None,
        fencing_token: int = 0,
    ) -> MetadataWrite:
        """Adds or overwrites items of a channel's metadata (at most 32 per call)."""
        self._client._ensure_dispatcher()
        return await self._native.set_channel_metadata(  # type: ignore[no-any-return]
            channel,
            channel_type,
            _items(items),
            major_revision,
            lock_name,
            record_ts,
            record_author,
            timeout,
            fencing_token,
        )

    async def update_channel_metadata(
        self,
        channel: str,
        items: Items,
        *,
        channel_type: ChannelTypeName = "MESSAGE",
        major_revision: int = -1,
        lock_name: str = "",
        record_ts: bool = False,
        record_author: bool = False,
        timeout: Optional[float] = None,
        fencing_token: int = 0,
    ) -> MetadataWrite:
        """Changes existing items of a channel's metadata (12014 if one does not exist)."""
        self._client._ensure_dispatcher()
        return await self._native.update_channel_metadata(  # type: ignore[no-any-return]
            channel,
            channel_type,
            _items(items),
            major_revision,
            lock_name,
            record_ts,
            record_author,
            timeout,
            fencing_token,
        )

    async def remove_channel_metadata(
        self,
        channel: str,
        items: Items = (),
        *,
        channel_type: ChannelTypeName = "MESSAGE",
        major_revision: int = -1,
        lock_name: str = "",
        record_ts: bool = False,
        record_author: bool = False,
        timeout: Optional[float] = None,
        fencing_token: int = 0,
    ) -> MetadataWrite:
        """Removes items (keys, or items with a revision condition) of a channel's metadata;
        no items: the whole set."""
        self._client._ensure_dispatcher()
        return await self._native.remove_channel_metadata(  # type: ignore[no-any-return]
            channel,
            channel_type,
            _items(items),
            major_revision,
            lock_name,
            record_ts,
            record_author,
            timeout,
            fencing_token,
        )

    async def get_channel_metadata(
        self, channel: str, *, channel_type: ChannelTypeName = "MESSAGE", timeout: Optional[float] = None
    ) -> GetChannelMetadataResponse:
        """A channel's metadata (no items and major revision 0 if never written): a
        :class:`rtm2.Metadata` that also has ``channel``, ``channel_type`` and ``timestamp``
        (the server's time of its answer)."""
        self._client._ensure_dispatcher()
        return await self._native.get_channel_metadata(channel, channel_type, timeout)  # type: ignore[no-any-return]

    # -- user metadata -------------------------------------------------------------------------

    async def set_user_metadata(
        self,
        user_id: str,
        items: Items,
        *,
        major_revision: int = -1,
        lock_name: str = "",
        record_ts: bool = False,
        record_author: bool = False,
        timeout: Optional[float] = None,
    ) -> MetadataWrite:
        """Adds or overwrites items of a user's metadata (``user_id`` "" = you). User
        metadata takes no ``lock_name`` (12004)."""
        self._client._ensure_dispatcher()
        return await self._native.set_user_metadata(  # type: ignore[no-any-return]
            user_id, _items(items), major_revision, lock_name, record_ts, record_author, timeout
        )

    async def update_user_metadata(
        self,
        user_id: str,
        items: Items,
        *,
        major_revision: int = -1,
        lock_name: str = "",
        record_ts: bool = False,
        record_author: bool = False,
        timeout: Optional[float] = None,
    ) -> MetadataWrite:
        """Changes existing items of a user's metadata (``user_id`` "" = you)."""
        self._client._ensure_dispatcher()
        return await self._native.update_user_metadata(  # type: ignore[no-any-return]
            user_id, _items(items), major_revision, lock_name, record_ts, record_author, timeout
        )

    async def remove_user_metadata(
        self,
        user_id: str,
        items: Items = (),
        *,
        major_revision: int = -1,
        lock_name: str = "",
        record_ts: bool = False,
        record_author: bool = False,
        timeout: Optional[float] = None,
    ) -> MetadataWrite:
        """Removes items of a user's metadata (``user_id`` "" = you); no items: all of them."""
        self._client._ensure_dispatcher()
        return await self._native.remove_user_metadata(  # type: ignore[no-any-return]
            user_id, _items(items), major_revision, lock_name, record_ts, record_author, timeout
        )

    async def get_user_metadata(self, user_id: str = "", *, timeout: Optional[float] = None) -> GetUserMetadataResponse:
        """A user's metadata (``user_id`` "" = you): a :class:`rtm2.Metadata` that also has
        ``user_id`` (yours for "") and ``timestamp`` (the server's time of its answer)."""
        self._client._ensure_dispatcher()
        return await self._native.get_user_metadata(user_id, timeout)  # type: ignore[no-any-return]

    async def subscribe_user_metadata(
        self, user_id: str, *, timeout: Optional[float] = None
    ) -> SubscribeUserMetaResponse:
        """Receive ``user_id``'s metadata as ``"storage"`` events: a SNAPSHOT now, then an UPDATE
        per change (at most 50 users, 12017). Restored after reconnects."""
        self._client._ensure_dispatcher()
        return await self._native.subscribe_user_metadata(user_id, timeout)  # type: ignore[no-any-return]

    async def unsubscribe_user_metadata(
        self, user_id: str, *, timeout: Optional[float] = None
    ) -> UnsubscribeUserMetaResponse:
        """Stops receiving ``user_id``'s metadata (12015 if not subscribed)."""
        return await self._native.unsubscribe_user_metadata(user_id, timeout)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<rtm2.Storage of {self._client!r}>"


class Locks:
    """Locks of a channel (``client.lock``). No need to be in the channel.

    ``set_lock`` defines a lock (name + ttl), ``acquire_lock`` takes it. ``ttl`` (seconds,
    clamped to 10…300) is how long an owner whose connection drops (or who leaves the channel)
    keeps the lock; after that it is released. Events: ``"lock"`` (:class:`rtm2.LockEvent`) for
    channels subscribed or joined with ``with_lock=True``.

    Every grant has a **fencing token** (returned by :meth:`acquire_lock`, also in ACQUIRED
    events and :meth:`get_locks`), strictly increasing from grant to grant. A paused owner may
    believe it still holds a lock that was freed and granted to another client: send the token
    with every write to a resource the lock guards, and have the resource reject a token lower
    than the highest it has seen. Metadata writes take it as ``fencing_token=``.
    """

    def __init__(self, client: "Client", native: Any) -> None:
        self._client = client
        self._native = native

    async def set_lock(
        self,
        channel: str,
        name: str,
        *,
        channel_type: ChannelTypeName = "MESSAGE",
        ttl: int = 10,
        timeout: Optional[float] = None,
    ) -> SetLockResponse:
        """Defines a lock in ``channel`` (14004 if it exists, 14005 for an invalid name)."""
        self._client._ensure_dispatcher()
        return await self._native.set_lock(channel, channel_type, name, ttl, timeout)  # type: ignore[no-any-return]

    async def remove_lock(
        self, channel: str, name: str, *, channel_type: ChannelTypeName = "MESSAGE", timeout: Optional[float] = None
    ) -> RemoveLockResponse:
        """Removes a lock (14008 if it does not exist); acquisitions waiting for it fail with 14008."""
        self._client._ensure_dispatcher()
        return await self._native.remove_lock(channel, channel_type, name, timeout)  # type: ignore[no-any-return]

    async def acquire_lock(
        self,
        channel: str,
        name: str,
        *,
        channel_type: ChannelTypeName = "MESSAGE",
        retry: bool = False,
        timeout: Optional[float] = None,
    ) -> AcquireLockResponse:
        """Takes a lock and returns the grant's fencing token: an ``int`` that also has
        ``channel``, ``channel_type``, ``lock_name``, ``fencing_token`` and ``timestamp`` (the
        server's time of the grant). If another user holds it: fails with 14007, or with
        ``retry=True`` waits in the server's queue until it is granted — without a time limit
        unless ``timeout`` is given (then 14002). The wait never blocks the event loop; cancel it
        like any awaitable. Acquiring a lock you hold returns its token."""
        self._client._ensure_dispatcher()
        acquired, withdrawal = self._native.acquire_lock(channel, channel_type, name, retry, timeout)
        try:
            granted = await acquired
        except asyncio.CancelledError:
            # The cancellation completes once the server has withdrawn the acquisition: from
            # then on the lock cannot be granted to it (one granted meanwhile was released).
            await withdrawal.withdraw()
            raise
        scope, scope_type, lock_name, token, timestamp = granted
        return AcquireLockResponse(token, scope, scope_type, lock_name, timestamp)

    async def release_lock(
        self, channel: str, name: str, *, channel_type: ChannelTypeName = "MESSAGE", timeout: Optional[float] = None
    ) -> ReleaseLockResponse:
        """Releases a lock you hold (14006 otherwise); the next waiter gets it."""
        self._client._ensure_dispatcher()
        return await self._native.release_lock(channel, channel_type, name, timeout)  # type: ignore[no-any-return]

    async def revoke_lock(
        self,
        channel: str,
        name: str,
        owner: str,
        *,
        channel_type: ChannelTypeName = "MESSAGE",
        timeout: Optional[float] = None,
    ) -> RevokeLockResponse:
        """Frees a lock held by ``owner`` (14006 if ``owner`` does not hold it)."""
        self._client._ensure_dispatcher()
        return await self._native.revoke_lock(  # type: ignore[no-any-return]
            channel, channel_type, name, owner, timeout
        )

    async def get_locks(
        self, channel: str, *, channel_type: ChannelTypeName = "MESSAGE", timeout: Optional[float] = None
    ) -> GetLockResponse:
        """Every lock of ``channel`` with its owner ("" = free) and ttl: a list of
        :class:`rtm2.LockDetail` that also has ``channel``, ``channel_type``, ``lock_details``,
        ``total_locks`` and ``timestamp`` (the server's time of its answer)."""
        self._client._ensure_dispatcher()
        scope, scope_type, locks, timestamp = await self._native.get_locks(channel, channel_type, timeout)
        return GetLockResponse(scope, scope_type, locks, timestamp)

    def __repr__(self) -> str:
        return f"<rtm2.Locks of {self._client!r}>"


class History:
    """Stored messages (``client.history``): those published with ``store_in_history=True`` to
    a message channel, or to a user (kept in the receiver's user channel).

    :meth:`get_messages` reads a page at a time, newest first; pass a page's ``new_start`` as
    ``start`` for the next (older) one, until ``new_start`` is 0. The server keeps, per channel,
    the newest 1,000 messages for 7 days at most (its defaults); durable with
    ``rtm2 serve --data-dir``. Not yet available in a cluster (15005). With end-to-end
    encryption, messages are decrypted with this client's settings; those that do not decrypt
    are left out.
    """

    def __init__(self, client: "Client", native: Any) -> None:
        self._client = client
        self._native = native

    async def get_messages(
        self,
        channel: str,
        channel_type: HistoryChannelTypeName = "MESSAGE",
        *,
        message_count: int = 0,
        start: int = 0,
        end: int = 0,
        timeout: Optional[float] = None,
    ) -> HistoryPage:
        """One page of the stored messages of message channel ``channel``, or with
        ``channel_type="USER"`` of your own user channel (``channel`` = your user id; another
        user's: 15004), newest first. ``message_count``: 1..100 per page (0 = 100). ``start``:
        only messages older than this server timestamp in ms (exclusive; 0 = from the newest);
        ``end``: only messages at or after it (inclusive; 0 = no bound); both given: ``start``
        must be after ``end``, at most 24 h apart (else 15002). Another channel type: 10019.
        ``page.timestamp``: the server's time of its answer."""
        self._client._ensure_dispatcher()
        return await self._native.get_messages(  # type: ignore[no-any-return]
            channel, channel_type, message_count, start, end, timeout
        )

    def __repr__(self) -> str:
        return f"<rtm2.History of {self._client!r}>"
