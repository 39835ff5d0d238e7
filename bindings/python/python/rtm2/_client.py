"""The asyncio API: :class:`Client`, :class:`Subscription`, :class:`EventStream` and
:class:`StreamChannel`. Each method converts its arguments and awaits the native operation;
the behaviour (validation, limits, state, reconnects) is the Rust SDK's.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import inspect
import json
import logging
from typing import (
    Any,
    Awaitable,
    Callable,
    Deque,
    Dict,
    Iterable,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    TypeVar,
    Union,
    overload,
)

from . import _rtm2
from ._codes import ErrorCode
from ._enums import EncryptionMode
from ._errors import InvalidArgumentError
from ._logging import refresh_log_level
from ._rtm2 import (
    JoinResult,
    JoinTopicResponse,
    LeaveChannelResponse,
    LeaveTopicResponse,
    LinkStateEvent,
    LockEvent,
    LoginResponse,
    LogoutResponse,
    MessageEvent,
    OverflowEvent,
    PresenceEvent,
    PublishResponse,
    PublishTopicMessageResponse,
    RenewTokenResponse,
    StorageEvent,
    SubscribeTopicResult,
    TokenPrivilegeWillExpireEvent,
    TopicEvent,
    UnsubscribeResponse,
    UnsubscribeTopicResponse,
)
from ._services import History, Locks, Presence, Storage

__all__ = ["Client", "Subscription", "EventStream", "StreamChannel", "Event", "EventName", "EVENT_TYPES"]

logger = logging.getLogger("rtm2")

EXIT_LOGOUT_TIMEOUT = 1.0
"""Seconds the interpreter-exit hook waits, at most, for the logouts of all clients."""


def _logout_all_at_exit() -> None:
    # A client still logged in when the program ends (no close()) would stay online on the
    # server until the presence timeout; log every one out now, briefly. Registered after
    # _logging's hook, so it runs before the log thread stops.
    _rtm2.logout_all(EXIT_LOGOUT_TIMEOUT)


atexit.register(_logout_all_at_exit)

BATCH = 512
"""Most events taken from the SDK per crossing (one GIL acquisition per batch)."""

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
EventName = Literal[
    "message", "topic", "presence", "storage", "lock", "link_state", "token_privilege_will_expire", "overflow"
]
Payload = Union[str, bytes, bytearray, memoryview]
EncryptionModeArg = Union[EncryptionMode, Literal["NONE", "AES_128_GCM", "AES_256_GCM"], int, None]
"""``encryption_mode``: a name, an :class:`rtm2.EncryptionMode` or the number (None: ``"NONE"``)."""

EVENT_TYPES: Dict[str, type] = {
    "message": MessageEvent,
    "topic": TopicEvent,
    "presence": PresenceEvent,
    "storage": StorageEvent,
    "lock": LockEvent,
    "link_state": LinkStateEvent,
    "token_privilege_will_expire": TokenPrivilegeWillExpireEvent,
    "overflow": OverflowEvent,
}
_NAME_OF: Dict[type, str] = {t: n for n, t in EVENT_TYPES.items()}

Handler = Callable[[Any], Optional[Awaitable[Any]]]
H = TypeVar("H", bound=Handler)


def _event_name(name: str) -> str:
    if name not in EVENT_TYPES:
        raise InvalidArgumentError(
            ErrorCode.INVALID_EVENT_HANDLER,
            f"unknown event {name!r}; events are {', '.join(map(repr, EVENT_TYPES))}",
            "on",
        )
    return name


def _payload(message: Payload) -> Union[str, bytes, bytearray]:
    if isinstance(message, memoryview):
        return message.tobytes()
    return message  # str, bytes and bytearray are taken as they are by the native module


def _users(users: Iterable[str]) -> List[str]:
    if isinstance(users, str):
        raise TypeError("users must be a list of user ids, not a str")
    return list(users)


class _Batches:
    """Iterates a native receiver one batch at a time. Cancelling a wait loses nothing."""

    def __init__(self, native: Any) -> None:
        self._native = native
        self._buf: Deque[Any] = collections.deque()

    async def _next(self) -> Optional[Any]:
        while not self._buf:
            if not await self._native.wait(BATCH):
                return None
            self._buf.extend(self._native.take(BATCH))
        return self._buf.popleft()

    def close(self) -> None:
        """Stops receiving; iteration ends after what was already received."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return bool(self._native.closed)


class Subscription(_Batches):
    """The messages of one subscribed message channel: ``async for message in sub``.

    Made by :meth:`Client.subscribe`. Iteration ends on :meth:`unsubscribe`, logout or close.
    If the application reads more slowly than messages arrive, the SDK's bounded queue drops
    the excess: the count is added to :attr:`dropped` and logged as a warning.
    """

    def __init__(self, client: "Client", native: Any) -> None:
        super().__init__(native)
        self._client = client
        self.dropped = 0
        """Messages dropped because this subscription's queue was full."""

    @property
    def channel(self) -> str:
        return str(self._native.channel)

    @property
    def timestamp(self) -> int:
        """The server's time of the subscribe's answer, ms since the epoch."""
        return int(self._native.timestamp)

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> MessageEvent:
        # Fast path: a message already taken from the SDK (one coroutine per message, not three).
        buf = self._buf
        while buf:
            ev = buf.popleft()
            if type(ev) is MessageEvent or not isinstance(ev, OverflowEvent):
                return ev  # type: ignore[no-any-return]
            self._overflowed(ev)
        msg = await self.recv()
        if msg is None:
            raise StopAsyncIteration
        return msg

    def _overflowed(self, ev: OverflowEvent) -> None:
        self.dropped += ev.dropped
        logger.warning("subscription %r: %d messages dropped (the queue was full)", self.channel, ev.dropped)

    async def recv(self, timeout: Optional[float] = None) -> Optional[MessageEvent]:
        """The next message, or None once the subscription has ended. With ``timeout``
        (seconds), raises ``TimeoutError`` if no message arrives in time."""
        if timeout is not None:
            return await asyncio.wait_for(self.recv(), timeout)
        while True:
            ev = await self._next()
            if ev is None:
                return None
            if isinstance(ev, OverflowEvent):
                self._overflowed(ev)
                continue
            return ev  # type: ignore[no-any-return]

    async def unsubscribe(self, *, timeout: Optional[float] = None) -> UnsubscribeResponse:
        """Unsubscribes the channel (ends this and every other subscription of it)."""
        return await self._client.unsubscribe(self.channel, timeout=timeout)

    def __repr__(self) -> str:
        return f"<rtm2.Subscription channel={self.channel!r} closed={self.closed}>"


class EventStream(_Batches):
    """Events of a client as an async iterator (``async for ev in client.events()``),
    optionally only some kinds. Ends when the client is closed."""

    def __init__(self, native: Any, kinds: Tuple[type, ...]) -> None:
        super().__init__(native)
        self._kinds = kinds

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> Event:
        # Fast path: an event already taken from the SDK.
        buf, kinds = self._buf, self._kinds
        while buf:
            ev = buf.popleft()
            if not kinds or isinstance(ev, kinds):
                return ev  # type: ignore[no-any-return]
        ev = await self.recv()
        if ev is None:
            raise StopAsyncIteration
        return ev

    async def recv(self, timeout: Optional[float] = None) -> Optional[Event]:
        """The next event, or None once the stream has ended; ``TimeoutError`` after
        ``timeout`` seconds without one."""
        if timeout is not None:
            return await asyncio.wait_for(self.recv(), timeout)
        while True:
            ev = await self._next()
            if ev is None or not self._kinds or isinstance(ev, self._kinds):
                return ev

    async def __aenter__(self) -> "EventStream":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class StreamChannel:
    """A stream channel: join it, publish in topics, subscribe to publishers of topics.

    Made by :meth:`Client.stream_channel`. Topic messages and topic events arrive as client
    events (``"message"`` with ``channel_type == "STREAM"``, and ``"topic"``). As an async
    context manager it leaves the channel on exit if it is joined.
    """

    def __init__(self, native: Any) -> None:
        self._native = native

    @property
    def name(self) -> str:
        return str(self._native.name)

    async def join(
        self,
        token: str = "",
        *,
        with_presence: bool = True,
        with_metadata: bool = False,
        with_lock: bool = False,
        be_quiet: bool = False,
        timeout: Optional[float] = None,
    ) -> JoinResult:
        """Joins with the channel's token ("" in development mode); returns the topics and
        publishers present, and when the server answered (``timestamp``)."""
        return await self._native.join(token, with_presence, with_metadata, with_lock, be_quiet, timeout)  # type: ignore[no-any-return]

    async def leave(self, *, timeout: Optional[float] = None) -> LeaveChannelResponse:
        return await self._native.leave(timeout)  # type: ignore[no-any-return]

    async def join_topic(
        self,
        topic: str,
        *,
        qos: Literal["UNORDERED", "ORDERED"] = "UNORDERED",
        priority: Literal["HIGHEST", "HIGH", "NORMAL", "LOW"] = "NORMAL",
        meta: str = "",
        sync_with_media: bool = False,
        timeout: Optional[float] = None,
    ) -> JoinTopicResponse:
        """Becomes a publisher in ``topic`` (at most 8 per channel)."""
        return await self._native.join_topic(  # type: ignore[no-any-return]
            topic, qos, priority, meta, sync_with_media, timeout
        )

    async def leave_topic(self, topic: str, *, timeout: Optional[float] = None) -> LeaveTopicResponse:
        return await self._native.leave_topic(topic, timeout)  # type: ignore[no-any-return]

    async def publish_topic(
        self,
        topic: str,
        message: Payload,
        *,
        custom_type: str = "",
        send_ts: int = 0,
        timeout: Optional[float] = None,
    ) -> PublishTopicMessageResponse:
        """Publishes in a joined topic: ``str`` is a STRING message, ``bytes`` BINARY."""
        return await self._native.publish_topic(  # type: ignore[no-any-return]
            topic, _payload(message), custom_type, send_ts, timeout
        )

    async def subscribe_topic(
        self, topic: str, users: Iterable[str] = (), *, timeout: Optional[float] = None
    ) -> SubscribeTopicResult:
        """Subscribes to these publishers of ``topic`` (empty: every current one, up to 64; a
        list of more than 128 users raises 11011 CHANNEL_INVALID_USER_LIST)."""
        return await self._native.subscribe_topic(topic, _users(users), timeout)  # type: ignore[no-any-return]

    async def unsubscribe_topic(
        self, topic: str, users: Iterable[str] = (), *, timeout: Optional[float] = None
    ) -> UnsubscribeTopicResponse:
        """Unsubscribes these publishers of ``topic`` (empty: the whole topic; more than 128: 11011)."""
        return await self._native.unsubscribe_topic(  # type: ignore[no-any-return]
            topic, _users(users), timeout
        )

    def subscribed_users(self, topic: str) -> List[str]:
        """The publishers subscribed in ``topic`` (11013 if the topic is not subscribed)."""
        return list(self._native.subscribed_users(topic))

    @property
    def joined_topics(self) -> List[str]:
        return list(self._native.joined_topics())

    @property
    def is_joined(self) -> bool:
        return bool(self._native.is_joined())

    async def renew_token(self, token: str, *, timeout: Optional[float] = None) -> RenewTokenResponse:
        """Replaces the channel's token (``RenewTokenResponse.channel`` is its name)."""
        return await self._native.renew_token(token, timeout)  # type: ignore[no-any-return]

    async def __aenter__(self) -> "StreamChannel":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.is_joined:
            try:
                await self.leave()
            except Exception:  # the channel may be gone with the connection
                logger.debug("leaving stream channel %r on exit failed", self.name, exc_info=True)

    def __repr__(self) -> str:
        return f"<rtm2.StreamChannel name={self.name!r}>"


class Client:
    """An rtm2 client: one user of one app.

    ``endpoint``: None for the endpoint in the ``RTM2_ENDPOINT`` environment variable if it is
    set (an invalid value raises InvalidArgumentError 10014 naming it), else the server
    embedded in this process; ``"embedded"`` for that server (development mode, nothing to
    start; it serves this process only: clients in other processes do not see it), or ``"host:port"`` / ``"tcp://host:port"`` of an ``rtm2 serve``
    (port 1..65535 and a valid host, else InvalidArgumentError 10014 at once). Several servers
    (a cluster's nodes) as a list of str or one str separated by commas: the client logs in on
    the first that answers and, when its server dies, moves to the next one and restores its
    subscriptions, stream channels, topics, presence state and held locks there (see
    docs/CLUSTER.md, "Client failover"); a bad entry or an empty list raises 10014.
    ``**config``: the SDK's tuning parameters, e.g. ``request_timeout_ms=5000``,
    ``receive_own_messages=False``, ``heartbeat_interval_s`` (5..1800), ``presence_timeout_s``
    (5..300), ``event_queue_capacity`` (an unknown key raises InvalidArgumentError 10014; the
    two intervals are clamped into their range, as the server does).

    End-to-end encryption (default: none): ``encryption_mode`` (``"NONE"``, ``"AES_128_GCM"``,
    ``"AES_256_GCM"``, an :class:`rtm2.EncryptionMode` or the number), ``cipher_key`` (a
    non-empty str) and ``salt`` (at most 32 bytes, zero-padded; a str is taken as its UTF-8
    bytes). Message payloads, topic messages and presence state values are encrypted before
    they leave the process; every client of a conversation needs the same three settings, and
    what does not decrypt with them is dropped and counted (:attr:`undecryptable_messages`).
    Invalid settings (a mode without a key, a salt over 32 bytes, an unknown mode) raise
    InvalidArgumentError 10020 INVALID_ENCRYPTION_PARAMETER. The settings are fixed for the
    client's life; they are not tuning parameters (``get_parameters()`` does not show them).

    Use it as ``async with rtm2.Client(...) as client:``; leaving the block logs out and
    closes the client. A client still logged in when the interpreter exits is logged out then
    (an ``atexit`` hook, at most 1 s for all clients), so that others see it leave at once
    rather than after the presence timeout.
    """

    def __init__(
        self,
        app_id: str,
        user_id: str,
        endpoint: Union[str, Sequence[str], None] = None,
        *,
        encryption_mode: EncryptionModeArg = None,
        cipher_key: str = "",
        salt: Union[bytes, bytearray, memoryview, str] = b"",
        **config: Any,
    ) -> None:
        refresh_log_level()
        params = json.dumps(config) if config else None
        if endpoint is not None and not isinstance(endpoint, str):
            endpoint = list(endpoint)
        if isinstance(salt, memoryview):
            salt = salt.tobytes()
        elif salt is None:
            salt = b""
        if cipher_key is None:
            cipher_key = ""
        self._native = _rtm2.NativeClient(app_id, user_id, endpoint, params, encryption_mode, cipher_key, salt)
        self._user_id = user_id
        self._handlers: Dict[str, List[Handler]] = {name: [] for name in EVENT_TYPES}
        self._rx: Any = None
        self._dispatcher: Optional["asyncio.Task[None]"] = None
        self._tasks: Set["asyncio.Future[Any]"] = set()
        self._closed = False
        self._presence = Presence(self, self._native.presence())
        self._storage = Storage(self, self._native.storage())
        self._lock = Locks(self, self._native.lock())
        self._history = History(self, self._native.history())

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> "Client":
        self._ensure_dispatcher()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def login(self, token: str = "", *, timeout: Optional[float] = None) -> LoginResponse:
        """Logs in with an RTM token ("" when the server runs in development mode, like the
        embedded default). Completes when connected."""
        self._ensure_dispatcher()
        return await self._native.login(token, timeout)

    async def logout(self) -> LogoutResponse:
        """Logs out: subscriptions and stream channels end. Never fails (``timestamp`` is the
        client's time when the server could not answer)."""
        return await self._native.logout()

    async def renew_token(self, token: str, *, timeout: Optional[float] = None) -> RenewTokenResponse:
        """Replaces the login token (e.g. on ``token_privilege_will_expire``);
        ``RenewTokenResponse.channel`` is None."""
        return await self._native.renew_token(token, timeout)

    async def close(self) -> None:
        """Logs out and releases the client; idempotent. Handlers see the final events."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._native.closed:
                await self._native.logout()
        finally:
            self._native.close()
            dispatcher, rx = self._dispatcher, self._rx
            if dispatcher is not None and not dispatcher.done() and dispatcher is not _current_task():
                if dispatcher.get_loop() is asyncio.get_running_loop():
                    # The SDK ends the receiver once the client is released; let handlers see
                    # what was queued until then.
                    done, _ = await asyncio.wait({dispatcher}, timeout=1.0)
                    if not done:
                        dispatcher.cancel()
                elif not dispatcher.get_loop().is_closed():
                    dispatcher.get_loop().call_soon_threadsafe(dispatcher.cancel)
            if rx is not None:
                rx.close()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- messaging ---------------------------------------------------------------------------

    async def publish(
        self,
        channel: str,
        message: Payload,
        *,
        channel_type: Literal["MESSAGE", "USER"] = "MESSAGE",
        custom_type: str = "",
        store_in_history: bool = False,
        timeout: Optional[float] = None,
    ) -> PublishResponse:
        """Publishes to a message channel, or to a user with ``channel_type="USER"`` (11033 if
        that user is offline). ``str`` is sent as a STRING message, ``bytes`` as BINARY.
        ``store_in_history=True``: the server also keeps it in the channel's history (a user's:
        the receiver's user channel; see :attr:`history`); to an offline user it is stored and
        the publish raises 11035 (CHANNEL_RECEIVER_OFFLINE_BUT_STORE_SUCCEEDED). The
        :class:`rtm2.PublishResponse`'s ``timestamp`` is the server's time of an acknowledgement
        that covered the publish."""
        self._ensure_dispatcher()
        return await self._native.publish(
            channel, _payload(message), channel_type, custom_type, store_in_history, timeout
        )

    async def subscribe(
        self,
        channel: str,
        *,
        with_message: bool = True,
        with_presence: bool = True,
        with_metadata: bool = False,
        with_lock: bool = False,
        be_quiet: bool = False,
        timeout: Optional[float] = None,
    ) -> Subscription:
        """Subscribes to a message channel; iterate the result for its messages.

        ``with_presence`` / ``with_metadata`` / ``with_lock``: receive the channel's
        ``"presence"``, ``"storage"`` and ``"lock"`` events (client events, not messages of the
        subscription). ``be_quiet``: you are present but hidden (no events about you, not listed
        by ``who_now`` / ``where_now``). The subscription's ``timestamp`` is the server's time of
        its answer."""
        self._ensure_dispatcher()
        native = await self._native.subscribe(
            channel, with_message, with_presence, with_metadata, with_lock, be_quiet, timeout
        )
        return Subscription(self, native)

    async def unsubscribe(self, channel: str, *, timeout: Optional[float] = None) -> UnsubscribeResponse:
        """Unsubscribes (11002 if not subscribed); the channel's subscriptions end."""
        return await self._native.unsubscribe(channel, timeout)

    def stream_channel(self, name: str) -> StreamChannel:
        """The stream channel of this name (10008 for an invalid name)."""
        return StreamChannel(self._native.stream_channel(name))

    @property
    def subscribed_channels(self) -> List[str]:
        return list(self._native.subscribed_channels())

    # -- presence, storage, locks ------------------------------------------------------------

    @property
    def presence(self) -> Presence:
        """The presence service: ``who_now``, ``where_now``, ``set_state``, ``get_state``,
        ``remove_state``."""
        return self._presence

    @property
    def storage(self) -> Storage:
        """The storage service: channel and user metadata."""
        return self._storage

    @property
    def lock(self) -> Locks:
        """The lock service: ``set_lock``, ``acquire_lock``, ``release_lock``, ``revoke_lock``,
        ``get_locks``, ``remove_lock``."""
        return self._lock

    @property
    def history(self) -> History:
        """The history service: ``get_messages`` (messages published with
        ``store_in_history=True``)."""
        return self._history

    # -- state and parameters ----------------------------------------------------------------

    @property
    def user_id(self) -> str:
        return self._user_id

    @property
    def connected_to(self) -> Optional[Tuple[str, str]]:
        """Where the client is connected, or was last: ``(endpoint, node_id)``, e.g.
        ``("tcp://10.0.0.2:9696", "n1")`` (node id ``""`` for a server outside a cluster; a
        client given several endpoints fails over between them). None before the first
        connection."""
        return self._native.connected_to()  # type: ignore[no-any-return]

    @property
    def undecryptable_messages(self) -> int:
        """Messages dropped because they did not decrypt with this client's encryption settings:
        another key, salt or mode, a plain message to an encrypting client or an encrypted one
        to a plain client, or tampered bytes. Such messages are never delivered; 0 when every
        message arrived."""
        return int(self._native.undecryptable_messages())

    @property
    def link_state(self) -> str:
        """``"IDLE"``, ``"CONNECTING"``, ``"CONNECTED"``, ``"DISCONNECTED"``, ``"SUSPENDED"``
        or ``"FAILED"``."""
        return str(self._native.link_state())

    def set_parameters(self, parameters: Union[Mapping[str, Any], str]) -> None:
        """Applies tuning parameters (a dict or a JSON object), all or nothing (10014)."""
        text = parameters if isinstance(parameters, str) else json.dumps(dict(parameters))
        self._native.set_parameters(text)

    def get_parameters(self) -> Dict[str, Any]:
        return json.loads(self._native.get_parameters())  # type: ignore[no-any-return]

    # -- events ------------------------------------------------------------------------------

    def events(self, *names: EventName) -> EventStream:
        """Every event from now on (or only the named kinds) as an async iterator."""
        kinds = tuple(EVENT_TYPES[_event_name(n)] for n in names)
        return EventStream(self._native.events(), kinds)

    @overload
    def on(self, event: EventName) -> Callable[[H], H]: ...

    @overload
    def on(self, event: EventName, handler: H) -> H: ...

    def on(self, event: EventName, handler: Optional[H] = None) -> Union[H, Callable[[H], H]]:
        """Calls ``handler(event)`` for every event of this kind, on the event loop's thread.

        Sync handlers run inline; async ones are started as tasks, in order. An exception in a
        handler is logged (logger ``rtm2``) and never stops the client. Usable as a decorator:
        ``@client.on("message")``.
        """
        name = _event_name(event)

        def register(fn: H) -> H:
            if not callable(fn):
                raise TypeError(f"the {name!r} handler must be callable, got {fn!r}")
            # Copy on write: the dispatcher iterates the current list without copying it.
            self._handlers[name] = self._handlers[name] + [fn]
            self._ensure_dispatcher()
            return fn

        return register if handler is None else register(handler)

    def off(self, event: EventName, handler: Handler) -> None:
        """Removes a handler registered with :meth:`on`."""
        name = _event_name(event)
        handlers = self._handlers[name]
        if handler in handlers:
            handlers = list(handlers)
            handlers.remove(handler)
            self._handlers[name] = handlers  # copy on write (see on())

    def _ensure_dispatcher(self) -> None:
        if self._closed or not any(self._handlers.values()):
            return
        if self._rx is None:
            # From now on events are queued for the handlers, even before a loop runs.
            self._rx = self._native.events()
        if self._dispatcher is None or self._dispatcher.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # started by the next async call
            self._dispatcher = loop.create_task(self._dispatch(self._rx))

    async def _dispatch(self, rx: Any) -> None:
        # The per-event work of _deliver, inlined: this loop runs once per event.
        handlers, name_of = self._handlers, _NAME_OF
        try:
            while await rx.wait(BATCH):
                for ev in rx.take(BATCH):
                    name = name_of.get(type(ev))
                    if name is None:
                        continue
                    # The handler lists are copied on write: iterating one needs no snapshot.
                    for fn in handlers[name]:
                        try:
                            result = fn(ev)
                            if result is not None and inspect.isawaitable(result):
                                self._start_handler_task(result)
                        except Exception:
                            logger.exception("a %r handler of client %r raised", name, self._user_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("the event dispatcher of client %r stopped", self._user_id)

    def _deliver(self, ev: Any) -> None:
        name = _NAME_OF.get(type(ev))
        if name is None:
            return
        for fn in self._handlers[name]:
            try:
                result = fn(ev)
                if result is not None and inspect.isawaitable(result):
                    self._start_handler_task(result)
            except Exception:
                logger.exception("a %r handler of client %r raised", name, self._user_id)

    def _start_handler_task(self, awaitable: Any) -> None:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task: "asyncio.Future[Any]") -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            logger.error("an async handler of client %r raised", self._user_id, exc_info=exc)

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.link_state
        return f"<rtm2.Client user_id={self._user_id!r} {state}>"


def _current_task() -> Optional["asyncio.Task[Any]"]:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None
