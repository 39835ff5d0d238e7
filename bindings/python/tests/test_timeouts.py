"""Per-call timeouts (the operation's RTM timeout code) and asyncio cancellation."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, List

import pytest
import rtm2
from conftest import WAIT, raises, uid
from rtm2 import ErrorCode as E


class MutingProxy:
    """A TCP proxy to `rtm2 serve` that can swallow everything the server sends."""

    def __init__(self, upstream: str) -> None:
        self.host, port = upstream.rsplit(":", 1)
        self.port = int(port)
        self.muted = False
        self.writers: List[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return "127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(self.host, self.port)
        self.writers += [writer, up_w]

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, from_server: bool) -> None:
            try:
                while data := await r.read(65536):
                    if not (from_server and self.muted):
                        w.write(data)
                        await w.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                w.close()

        await asyncio.gather(pump(reader, up_w, False), pump(up_r, writer, True))

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        self.server.close()


async def test_login_timeout_against_a_silent_server(make_client) -> None:
    # A listener that accepts connections (the kernel does) and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        c = make_client(endpoint="127.0.0.1:%d" % silent.getsockname()[1])
        started = time.monotonic()
        err = await raises(E.LOGIN_TIMEOUT, c.login(timeout=0.3), rtm2.RtmTimeoutError)
        assert isinstance(err, TimeoutError) and err.operation == "login"
        assert time.monotonic() - started < 5
        assert c.link_state == "FAILED"
        # `except TimeoutError` catches it too.
        try:
            await c.login(timeout=0.2)
        except TimeoutError as e:
            assert e.code == E.LOGIN_TIMEOUT  # type: ignore[attr-defined]
    finally:
        silent.close()


async def test_per_call_timeouts_use_the_operation_code(make_client, dev_server: Any) -> None:
    proxy = MutingProxy(dev_server.address)
    c = make_client(endpoint=await proxy.start())
    try:
        await c.login()
        room = uid("room")
        sub = await c.subscribe(room)
        proxy.muted = True
        await raises(E.CHANNEL_PUBLISH_MESSAGE_TIMEOUT, c.publish(room, "x", timeout=0.2), rtm2.RtmTimeoutError)
        await raises(E.CHANNEL_SUBSCRIBE_TIMEOUT, c.subscribe(uid("c"), timeout=0.2), rtm2.RtmTimeoutError)
        await raises(E.RENEW_TOKEN_TIMEOUT, c.renew_token("t", timeout=0.2), rtm2.RtmTimeoutError)
        # join has no timeout code of its own: it reports 11007, and is still a timeout.
        await raises(E.CHANNEL_JOIN_FAILED, c.stream_channel(uid("s")).join(timeout=0.2), rtm2.RtmTimeoutError)

        # asyncio cancellation cancels the operation too.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(c.publish(room, "cancelled"), 0.2)
        proxy.muted = False
        # The plain calls work again with the configured timeout.
        await c.publish(room, "after", timeout=WAIT)
        got = []
        while not got or got[-1] != "after":
            m = await sub.recv(timeout=WAIT)
            assert m is not None
            got.append(m.message)
        assert c.link_state == "CONNECTED"
    finally:
        await proxy.close()


async def test_request_timeout_parameter(make_client, dev_server: Any) -> None:
    proxy = MutingProxy(dev_server.address)
    c = make_client(endpoint=await proxy.start(), request_timeout_ms=300)
    try:
        await c.login()
        proxy.muted = True
        started = time.monotonic()
        await raises(E.CHANNEL_PUBLISH_MESSAGE_TIMEOUT, c.publish("c", "x"), rtm2.RtmTimeoutError)
        assert time.monotonic() - started < 5
    finally:
        proxy.muted = False
        await proxy.close()


async def test_service_timeouts_use_the_service_codes(make_client, dev_server: Any) -> None:
    proxy = MutingProxy(dev_server.address)
    c = make_client(endpoint=await proxy.start())
    try:
        await c.login()
        room = uid("room")
        await c.subscribe(room)
        proxy.muted = True
        await raises(E.PRESENCE_OPERATION_TIMEOUT, c.presence.who_now(room, timeout=0.2), rtm2.RtmTimeoutError)
        await raises(E.PRESENCE_OPERATION_TIMEOUT, c.presence.set_state(room, {"a": "b"}, timeout=0.2))
        await raises(E.STORAGE_OPERATION_TIMEOUT, c.storage.get_channel_metadata(room, timeout=0.2))
        await raises(E.STORAGE_OPERATION_TIMEOUT, c.storage.set_user_metadata("", {"a": "b"}, timeout=0.2))
        await raises(E.LOCK_OPERATION_TIMEOUT, c.lock.get_locks(room, timeout=0.2), rtm2.RtmTimeoutError)
        await raises(E.LOCK_OPERATION_TIMEOUT, c.lock.set_lock(room, "l", timeout=0.2))
        proxy.muted = False
        assert [d.name for d in await c.lock.get_locks(room, timeout=WAIT)] == ["l"]
    finally:
        await proxy.close()
