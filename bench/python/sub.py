"""One subscriber whose messages are delivered into Python code: rtm2 (bindings/python) or
nats-py. Driven by `rtm2-bench lang --lang py` (scripts/bench --only py), which publishes from
Rust and reads this program's stdout.

    python bench/python/sub.py --system rtm2|nats --addr 127.0.0.1:PORT --messages 200000

Counts every message in user code (a callback, or an ``async for`` loop with ``--api iter``)
and checks its length. Protocol on stdout, one line each:

    ready                      subscribed (the server confirmed); publishing may start
    n COUNT                    every --ack messages: the running count (the publisher's window)
    done {json}                the count reached --messages, or no message came for
                               --idle-timeout seconds: received, bad, dropped, first/last ns

Timestamps are CLOCK_MONOTONIC nanoseconds (time.monotonic_ns), the clock of the harness.
After ``done`` the process waits for stdin to close (so the harness can read its CPU time from
/proc), then exits. It also exits when stdin closes early (the harness went away).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from typing import Any, Callable, Dict

APP_ID = "b3nchb3nchb3nchb3nchb3nchb3nch01"
CHANNEL = "bench"


def out(line: str) -> None:
    os.write(1, (line + "\n").encode())


class Counter:
    """What the subscriber has seen; `on_payload` runs once per delivered message."""

    def __init__(self, expected: int, size: int, ack: int, loop: asyncio.AbstractEventLoop) -> None:
        self.expected = expected
        self.count = 0
        self.bad = 0
        self.dropped = 0
        self.first_ns = 0
        self.last_ns = 0
        self.done = loop.create_future()
        self._size = size
        self._ack = ack  # report the count every `ack` messages (and at the end)

    def make_handler(self) -> Callable[[Any], None]:
        """The per-message code, shared by every variant: count, check the length, report."""
        size, ack, expected = self._size, self._ack, self.expected

        def on_payload(payload: Any) -> None:
            if len(payload) != size:
                self.bad += 1
            c = self.count + 1
            self.count = c
            if c == 1:
                self.first_ns = time.monotonic_ns()
            if c % ack == 0 or c == expected:
                self.last_ns = time.monotonic_ns()
                out(f"n {c}")
                if c >= expected and not self.done.done():
                    self.done.set_result(None)

        return on_payload

    async def watch(self, idle_timeout: float, first_timeout: float) -> None:
        """Ends the run when no message arrived for `idle_timeout` seconds."""
        last, since = -1, time.monotonic()
        while not self.done.done():
            await asyncio.sleep(0.05)
            if self.count != last:
                last, since = self.count, time.monotonic()
            elif time.monotonic() - since > (idle_timeout if self.count else first_timeout):
                if not self.done.done():
                    self.done.set_result(None)

    def result(self) -> Dict[str, Any]:
        return {
            "received": self.count,
            "bad": self.bad,
            "dropped": self.dropped,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
        }


async def run_rtm2(a: argparse.Namespace, c: Counter) -> None:
    import rtm2

    on_payload = c.make_handler()
    client = rtm2.Client(APP_ID, "sub0", a.addr, request_timeout_ms=30000)
    sub = None
    if a.api == "callback":

        def on_message(ev: Any) -> None:
            on_payload(ev.message)

        def on_overflow(ev: Any) -> None:
            c.dropped += ev.dropped

        client.on("message", on_message)
        client.on("overflow", on_overflow)
    await client.login()
    if a.api == "callback":
        # The returned Subscription is not kept: messages come to the "message" handler.
        await client.subscribe(CHANNEL, with_presence=False)
    else:
        sub = await client.subscribe(CHANNEL, with_presence=False)
    out("ready")
    watcher = asyncio.ensure_future(c.watch(a.idle_timeout, a.first_timeout))
    if sub is not None:

        async def iterate() -> None:
            async for m in sub:
                on_payload(m.message)
                if c.done.done():
                    break

        reader = asyncio.ensure_future(iterate())
        await c.done
        reader.cancel()
        c.dropped += sub.dropped
    else:
        await c.done
    watcher.cancel()
    finish(c)
    await client.close()


async def run_nats(a: argparse.Namespace, c: Counter) -> None:
    import nats

    on_payload = c.make_handler()

    async def on_error(e: Exception) -> None:
        # nats-py reports each message it drops as a slow consumer (client side) as an error.
        if type(e).__name__ == "SlowConsumerError":
            c.dropped += 1

    nc = await nats.connect(f"nats://{a.addr}", allow_reconnect=False, error_cb=on_error)
    if a.api == "callback":

        async def cb(msg: Any) -> None:  # nats-py requires a coroutine function
            on_payload(msg.data)

        await nc.subscribe(CHANNEL, cb=cb)
        await nc.flush()
        out("ready")
        watcher = asyncio.ensure_future(c.watch(a.idle_timeout, a.first_timeout))
        await c.done
    else:
        sub = await nc.subscribe(CHANNEL)
        await nc.flush()
        out("ready")
        watcher = asyncio.ensure_future(c.watch(a.idle_timeout, a.first_timeout))

        async def iterate() -> None:
            async for msg in sub.messages:
                on_payload(msg.data)
                if c.done.done():
                    break

        reader = asyncio.ensure_future(iterate())
        await c.done
        reader.cancel()
    watcher.cancel()
    finish(c)
    await nc.close()


_result: Dict[str, Any] = {}


def finish(c: Counter) -> None:
    _result.update(c.result())
    out("done " + json.dumps(_result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", choices=["rtm2", "nats"], required=True)
    p.add_argument("--addr", required=True, help="host:port of the server")
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--payload", type=int, default=128)
    p.add_argument("--api", choices=["callback", "iter"], default="callback")
    p.add_argument("--ack", type=int, default=4096, help="report the count every this many messages")
    p.add_argument("--idle-timeout", type=float, default=10.0)
    p.add_argument("--first-timeout", type=float, default=30.0)
    a = p.parse_args()

    # The harness closing stdin (or dying) ends this process.
    def watch_stdin() -> None:
        sys.stdin.buffer.read()
        os._exit(0 if _result else 3)

    threading.Thread(target=watch_stdin, daemon=True).start()

    async def run() -> None:
        c = Counter(a.messages, a.payload, max(1, a.ack), asyncio.get_running_loop())
        await (run_rtm2 if a.system == "rtm2" else run_nats)(a, c)

    try:
        asyncio.run(run())
    except Exception as e:  # reported, not raised: the harness reads stdout
        out("error " + json.dumps(f"{type(e).__name__}: {e}"))
        sys.stdout.flush()
        os._exit(2)
    # Wait for the harness to read this process's CPU time, then exit.
    threading.Event().wait()


if __name__ == "__main__":
    main()
