"""Process-level behaviour: interpreter exit with open clients, fork(), a slow handler that
blocks the event loop, logging."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any, List

import pytest
import rtm2
from conftest import APP_ID, WAIT, expect, run_script, uid

PRELUDE = f"""
import asyncio, os, sys, threading, time
import rtm2
APP = {APP_ID!r}
"""


def assert_clean(result: Any) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for bad in ("Fatal Python error", "panicked", "Traceback", "Segmentation"):
        assert bad not in out, out


def test_exit_with_an_open_client() -> None:
    code = (
        PRELUDE
        + """
async def main():
    c = rtm2.Client(APP, "exiter")
    c.on("message", lambda ev: None)
    await c.login()
    sub = await c.subscribe("x")
    for i in range(200):
        await c.publish("x", f"m{i}")
    sys.modules["__main__"].keep = (c, sub)   # never closed
asyncio.run(main())
print("main done")
"""
    )
    result = run_script(code)
    assert_clean(result)
    assert "main done" in result.stdout


def test_exit_while_another_thread_is_busy_with_the_sdk() -> None:
    # A daemon thread keeps publishing and receiving while the main thread exits.
    code = (
        PRELUDE
        + """
import logging
logging.basicConfig(level=logging.DEBUG)
started = threading.Event()
async def busy():
    async with rtm2.Client(APP, "busy") as c:
        c.on("message", lambda ev: None)
        await c.login()
        await c.subscribe("y")
        started.set()
        i = 0
        while True:
            try:
                await c.publish("y", f"m{i}")
            except rtm2.LoginError as e:
                # The interpreter's exit hook logged the client out under the thread's feet.
                assert e.code == rtm2.ErrorCode.NOT_LOGIN, e
                return
            i += 1
threading.Thread(target=lambda: asyncio.run(busy()), daemon=True).start()
assert started.wait(10)
time.sleep(0.2)
print("main done")
"""
    )
    for _ in range(3):
        result = run_script(code)
        assert_clean(result)
        assert "main done" in result.stdout


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_a_forked_child_gets_a_clear_error_not_a_hang() -> None:
    code = (
        PRELUDE
        + """
async def parent():
    c = rtm2.Client(APP, "forker")
    await c.login()
    return c
c = asyncio.run(parent())
pid = os.fork()
if pid == 0:
    status = 0
    try:
        asyncio.run(asyncio.wait_for(c.publish("room", "from the child"), 5))
        status = 3
    except rtm2.ClientError as e:
        status = 10 if e.code == rtm2.ErrorCode.NOT_INITIALIZED and "fork" in e.reason else 4
    except BaseException as e:
        print("child:", repr(e), flush=True)
        status = 5
    try:
        rtm2.Client(APP, "child")
        status = 6
    except rtm2.RtmError as e:
        status = status if e.code == rtm2.ErrorCode.NOT_INITIALIZED else 7
    try:
        asyncio.run(c.close())
    except rtm2.RtmError as e:
        status = status if e.code == rtm2.ErrorCode.NOT_INITIALIZED else 8
    del c
    sys.exit(status)   # a normal exit: the inherited objects must not hang or crash it
deadline = time.monotonic() + 30
while True:
    done, st = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    if time.monotonic() > deadline:
        os.kill(pid, 9)
        print("child hung")
        sys.exit(1)
    time.sleep(0.05)
print("child exit", os.waitstatus_to_exitcode(st))
asyncio.run(c.publish("room", "the parent still works"))
asyncio.run(c.close())
print("parent ok")
"""
    )
    result = run_script(code)
    assert "child exit 10" in result.stdout, result.stdout + result.stderr
    assert "parent ok" in result.stdout
    assert_clean(result)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_fork_before_the_first_client_is_fine() -> None:
    code = (
        PRELUDE
        + """
pid = os.fork()
if pid == 0:
    async def child():
        async with rtm2.Client(APP, "child") as c:
            await c.login()
            sub = await c.subscribe("c")
            await c.publish("c", "hi")
            m = await sub.recv(timeout=5)
            return m.message
    os._exit(0 if asyncio.run(asyncio.wait_for(child(), 10)) == "hi" else 1)
_, st = os.waitpid(pid, 0)
print("child exit", os.waitstatus_to_exitcode(st))
"""
    )
    result = run_script(code)
    assert "child exit 0" in result.stdout, result.stdout + result.stderr


async def test_a_slow_handler_does_not_stall_the_network(make_client, dev_server: Any) -> None:
    # The fastest keepalive (5 s heartbeat, the reference minimum; less is clamped to it): if
    # the SDK's network work waited for the blocked loop, the link could drop.
    c = make_client(endpoint=dev_server.address, heartbeat_interval_s=5, pong_timeout_ms=1500)
    states: List[str] = []
    c.on("link_state", lambda ev: states.append(ev.current))
    room = uid("room")
    n = 200
    finished_at: List[float] = []

    @c.on("message")
    def slow(ev: rtm2.MessageEvent) -> None:
        if ev.message == "block":
            # Blocks the event loop for 3 s while another thread publishes to us.
            t = threading.Thread(target=lambda: finished_at.append(publish(dev_server.address, room, n)))
            t.start()
            time.sleep(3)
            t.join(WAIT)

    await c.login()
    sub = await c.subscribe(room)
    blocked_at = time.monotonic()
    await c.publish(room, "block")
    assert (await sub.recv(timeout=WAIT)).message == "block"  # type: ignore[union-attr]
    # The other thread was done long before the loop was free again.
    assert finished_at and finished_at[0] - blocked_at < 2.5
    got = [(await sub.recv(timeout=WAIT)).message for _ in range(n)]  # type: ignore[union-attr]
    assert got == [f"m{i}" for i in range(n)]
    assert "DISCONNECTED" not in states and c.link_state == "CONNECTED", states


def publish(address: str, room: str, n: int) -> float:
    async def run() -> None:
        async with rtm2.Client(APP_ID, uid("pub"), address) as p:
            await p.login()
            for i in range(n):
                await p.publish(room, f"m{i}")

    asyncio.run(asyncio.wait_for(run(), WAIT))
    return time.monotonic()


async def test_sdk_logs_reach_python_logging(make_client) -> None:
    got = threading.Event()
    records: List[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)
            if "logged in" in record.getMessage():
                got.set()

    log = logging.getLogger("rtm2")
    handler = Catch(level=logging.DEBUG)
    log.addHandler(handler)
    old = log.level
    log.setLevel(logging.DEBUG)
    try:
        c = make_client()  # reads the level
        await c.login()
        assert await asyncio.to_thread(got.wait, WAIT), [r.getMessage() for r in records]
        rec = next(r for r in records if "logged in" in r.getMessage())
        assert rec.name == "rtm2.core.client" and rec.levelno == logging.DEBUG
        assert rec.pathname == "rtm2_core::client"
        assert rec.thread != threading.get_ident(), "delivered by the SDK's log thread, not the loop"
    finally:
        log.setLevel(old)
        log.removeHandler(handler)
        rtm2.refresh_log_level()


def test_no_log_records_below_the_level() -> None:
    code = (
        PRELUDE
        + """
import logging
seen = []
class Catch(logging.Handler):
    def emit(self, record): seen.append(record.levelno)
logging.getLogger("rtm2").addHandler(Catch())
logging.getLogger("rtm2").setLevel(logging.WARNING)
async def main():
    async with rtm2.Client(APP, "quiet") as c:
        await c.login()
        await c.publish("c", "x")
asyncio.run(main())
time.sleep(0.2)
print("levels", sorted(set(seen)))
assert all(l >= logging.WARNING for l in seen), seen
"""
    )
    result = run_script(code)
    assert_clean(result)


@pytest.mark.parametrize("kept", ["global", "leaked"])
async def test_exit_without_close_logs_out(dev_server, make_client, kept: str) -> None:
    # A program that ends without close(): its user leaves at once (REMOTE_LEAVE), not after
    # the presence timeout (REMOTE_TIMEOUT). "leaked": the client is never freed, so only the
    # exit hook can log it out.
    room, user = uid("exit-room"), uid("exiter")
    watcher = make_client(endpoint=dev_server.address)
    events = watcher.events("presence")
    await watcher.login()
    await watcher.subscribe(room)
    keep = "ctypes.pythonapi.Py_IncRef(ctypes.py_object(c))" if kept == "leaked" else "globals()['c'] = c"
    code = (
        PRELUDE
        + f"""
import ctypes
async def main():
    c = rtm2.Client(APP, {user!r}, {dev_server.address!r})
    await c.login()
    await c.subscribe({room!r})
    {keep}
asyncio.run(main())
print("main done")
"""
    )
    started = time.monotonic()
    result = await asyncio.to_thread(run_script, code)
    assert_clean(result)
    assert time.monotonic() - started < WAIT
    seen: List[str] = []

    def left(ev: Any) -> bool:
        if isinstance(ev, rtm2.PresenceEvent) and ev.publisher == user:
            seen.append(ev.event_type)
        return isinstance(ev, rtm2.PresenceEvent) and ev.publisher == user and ev.event_type == "REMOTE_LEAVE"

    await expect(events, f"REMOTE_LEAVE of {user}", left, timeout=5.0)
    assert "REMOTE_TIMEOUT" not in seen, seen


async def test_a_client_given_no_endpoint_uses_RTM2_ENDPOINT(dev_server, make_client) -> None:
    room = uid("env-room")
    watcher = make_client(endpoint=dev_server.address)
    await watcher.login()
    await watcher.subscribe(room)
    code = (
        PRELUDE
        + f"""
async def main():
    async with rtm2.Client(APP, "from-env") as c:
        await c.login()
        r = await c.presence.who_now({room!r})
        print("users", sorted(u.user_id for u in r.occupants))
asyncio.run(main())
"""
    )
    result = await asyncio.to_thread(run_script, code, 60.0, {"RTM2_ENDPOINT": dev_server.address})
    assert_clean(result)
    assert f"users ['{watcher.user_id}']" in result.stdout, result.stdout + result.stderr
    # An invalid value: client creation fails with 10014, naming the variable.
    code = PRELUDE + """
try:
    rtm2.Client(APP, "bad-env")
except rtm2.RtmError as e:
    print("error", int(e.code), e)
"""
    result = await asyncio.to_thread(run_script, code, 60.0, {"RTM2_ENDPOINT": "tcp:/nowhere"})
    assert_clean(result)
    assert "error 10014" in result.stdout and "RTM2_ENDPOINT" in result.stdout, result.stdout + result.stderr


def test_the_embedded_server_warns_once_that_it_serves_this_process_only() -> None:
    # With logging left unconfigured (Python shows WARNING and above on stderr).
    code = (
        PRELUDE
        + """
import logging
got = threading.Event()
records = []
def catch(record):
    # A filter, not a handler: with no handler configured Python prints WARNING and above.
    if "serves this process only" in record.getMessage():
        records.append((record.name, record.levelname))
        got.set()
    return True
logging.getLogger("rtm2.core.embedded").addFilter(catch)
async def main():
    for user in ("a", "b"):
        async with rtm2.Client(APP, user) as c:
            await c.login()
asyncio.run(main())
assert got.wait(10)
time.sleep(0.2)
print("records", records)
"""
    )
    result = run_script(code, env={"RTM2_ENDPOINT": ""})
    assert_clean(result)
    assert "records [('rtm2.core.embedded', 'WARNING')]" in result.stdout, result.stdout + result.stderr
    assert result.stderr.count("serves this process only") == 1, result.stderr
    assert "RTM2_ENDPOINT" in result.stderr
