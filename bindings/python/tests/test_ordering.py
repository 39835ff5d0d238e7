"""One publisher's messages reach each subscriber in call order, also when the publisher does
not await each publish (docs/RELIABILITY.md, first claim) — paced and unpaced, through the
asyncio API and the native calls, against the embedded server and `rtm2 serve`."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, List, Optional

import pytest
import rtm2
from conftest import WAIT, uid

# Each mode starts `n` publishes of the payloads "0", "1", ... in call order, without awaiting
# each one before the next, and returns once all of them completed.
Starter = Callable[[rtm2.Client, str, int], Awaitable[None]]


async def unpaced_tasks(pub: rtm2.Client, room: str, n: int) -> None:
    # asyncio.ensure_future in call order: the tasks start in that order on the loop.
    await asyncio.gather(*[asyncio.ensure_future(pub.publish(room, str(i))) for i in range(n)])


async def gathered_hundreds(pub: rtm2.Client, room: str, n: int) -> None:
    for start in range(0, n, 100):
        await asyncio.gather(*[pub.publish(room, str(i)) for i in range(start, min(n, start + 100))])


async def paced_tasks(pub: rtm2.Client, room: str, n: int) -> None:
    # About 500-1,000 publishes per second (the loop sleeps 1 ms between two), none awaited before the next is started.
    started: List["asyncio.Future[None]"] = []
    for i in range(n):
        started.append(asyncio.ensure_future(pub.publish(room, str(i))))
        await asyncio.sleep(0.001)
    await asyncio.gather(*started)


async def native_sync(pub: rtm2.Client, room: str, n: int) -> None:
    # The extension's publish called synchronously in a loop: each call returns its future.
    native: Any = pub._native
    futures = [native.publish(room, str(i), "MESSAGE", "", False, None) for i in range(n)]
    await asyncio.gather(*futures)


MODES = {
    "unpaced_tasks": (unpaced_tasks, 2000),
    "gathered_hundreds": (gathered_hundreds, 2000),
    "paced_tasks": (paced_tasks, 2000),
    "native_sync": (native_sync, 2000),
}


def inversions(got: List[int]) -> int:
    return sum(1 for a, b in zip(got, got[1:]) if b < a)


@pytest.mark.parametrize("mode", list(MODES))
async def test_pipelined_publishes_arrive_in_call_order(make_client, endpoint: Optional[str], mode: str) -> None:
    start, n = MODES[mode]
    pub = make_client(uid("pub"), endpoint)
    subs = [make_client(uid("sub"), endpoint) for _ in range(2)]
    room = uid("room")
    await pub.login()
    streams = []
    for s in subs:
        await s.login()
        streams.append(await s.subscribe(room))

    await asyncio.wait_for(start(pub, room, n), 60)

    for stream in streams:
        got: List[int] = []
        while len(got) < n:
            m = await stream.recv(timeout=WAIT)
            assert m is not None, f"the subscription ended after {len(got)} of {n} messages"
            got.append(int(m.message))
        assert got == list(range(n)), (
            f"{mode}: {inversions(got)} inversions, "
            f"first out of place at {next(i for i, v in enumerate(got) if v != i)}"
        )


class CuttingProxy:
    """A TCP proxy to `rtm2 serve` whose connections the test cuts (both sides aborted)."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.transports: List[asyncio.BaseTransport] = []
        self.cuts = 0

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return "127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection(*self.upstream)
        self.transports += [writer.transport, up_w.transport]

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                w.transport.abort()

        await asyncio.gather(pump(reader, up_w), pump(up_r, writer))

    def cut(self) -> None:
        for t in self.transports:
            t.abort()
        self.transports.clear()
        self.cuts += 1

    async def close(self) -> None:
        self.cut()
        self.server.close()


async def test_pipelined_publishes_keep_call_order_across_connection_cuts(make_client, dev_server: Any) -> None:
    proxy = CuttingProxy(dev_server.address)
    via = await proxy.start()
    try:
        pub = make_client(uid("pub"), via, reconnect_initial_backoff_ms=20)
        sub = make_client(uid("sub"), dev_server.address)
        room = uid("room")
        await pub.login()
        await sub.login()
        links = pub.events("link_state")
        stream = await sub.subscribe(room)
        n = 1500
        started: List["asyncio.Future[None]"] = []
        for i in range(n):
            if i and i % 500 == 0:
                proxy.cut()
            started.append(asyncio.ensure_future(pub.publish(room, str(i))))
            await asyncio.sleep(0.001)
        # Every publish succeeds (resent on resume, run at most once) ...
        await asyncio.wait_for(asyncio.gather(*started), 60)
        # ... and the subscriber gets each exactly once, in call order.
        got: List[int] = []
        while len(got) < n:
            m = await stream.recv(timeout=WAIT)
            assert m is not None
            got.append(int(m.message))
        assert got == list(range(n)), f"{inversions(got)} inversions"
        # The publisher really lost its connection each time.
        states = []
        while (ev := await links.recv(timeout=0.2)) is not None:
            states.append(ev.current)
            if states.count("DISCONNECTED") == proxy.cuts:
                break
        assert states.count("DISCONNECTED") == proxy.cuts == 2, states
    finally:
        await proxy.close()
