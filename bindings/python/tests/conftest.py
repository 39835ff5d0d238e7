"""Shared fixtures: `rtm2 serve` processes, clients that are always closed, event helpers.

Every wait is bounded: awaits go through `recv(timeout=...)` / `asyncio.wait_for`, and
pytest-timeout (pyproject.toml) stops any test after 60 s.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable, List, Optional

import pytest
import rtm2

APP_ID = "970CA35de60c44645bbae8a215061b33"
CERT = "5CFd2fd1755d40ecb72977518be15d3b"
WAIT = 10.0

REPO = pathlib.Path(__file__).resolve().parents[3]


def rtm2_bin() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("RTM2_BIN") or REPO / "target" / "debug" / "rtm2")
    if not path.is_absolute():
        path = REPO / path
    if not path.exists():
        pytest.fail(f"the rtm2 binary is missing at {path}: run `cargo build -p rtm2-cli` or set RTM2_BIN")
    return path


_HELP: Optional[str] = None


def serve_supports(flag: str) -> bool:
    """Whether this `rtm2 serve` knows a flag (the CLI grows; tests adapt instead of failing)."""
    global _HELP
    if _HELP is None:
        _HELP = subprocess.run(
            [str(rtm2_bin()), "serve", "--help"], capture_output=True, text=True, timeout=WAIT
        ).stdout
    return flag in _HELP


def unlimited() -> List[str]:
    """Flags that turn the server's per-client rate limits off (the tests publish in bursts)."""
    return ["--no-rate-limits"] if serve_supports("--no-rate-limits") else []


class Server:
    """`rtm2 serve --listen 127.0.0.1:0 ...` (or on the address `listen`), killed at the end."""

    def __init__(self, *args: str, listen: str = "127.0.0.1:0") -> None:
        self.proc = subprocess.Popen(
            [str(rtm2_bin()), "serve", "--listen", listen, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def pump() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        seen: List[str] = []
        while True:
            try:
                line = lines.get(timeout=WAIT)
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"rtm2 serve did not start: {seen}") from None
            if line is None:
                self.proc.wait(WAIT)
                raise RuntimeError(f"rtm2 serve exited: {seen}")
            seen.append(line)
            m = re.search(r"rtm2 server listening on (\S+)", line)
            if m:
                self.address = m.group(1)
                break

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


class Ghost:
    """A user in another process (`rtm2 subscribe ... CHANNEL`), killed with SIGKILL (no
    logout), so that it vanishes the way a crashed or disconnected client does."""

    def __init__(self, args: List[str]) -> None:
        self.proc = subprocess.Popen(
            [str(rtm2_bin()), "subscribe", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.seen: List[str] = []

        def pump() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.put(line)
            self.lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def _wait_for(self, text: str) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"the ghost did not print {text!r} within {WAIT} s: {self.seen}") from None
            if line is None:
                raise RuntimeError(f"the ghost exited before printing {text!r}: {self.seen}")
            self.seen.append(line.rstrip())
            if text in line:
                return

    async def wait_for(self, text: str) -> None:
        """Waits (at most WAIT s) until the ghost prints `text` on stderr (RuntimeError if
        not). The blocking read runs off the event loop, so clients' events keep flowing."""
        await asyncio.to_thread(self._wait_for, text)

    @classmethod
    async def start(cls, endpoint: str, user: str, channel: str, lock: Optional[str] = None) -> "Ghost":
        """`user` of APP_ID (development-mode server) present in `channel` with a 5 s presence
        timeout, holding `lock` of that message channel if given (waiting for it if held)."""
        args = ["--endpoint", endpoint, "--app-id", APP_ID, "--user-id", user, "--presence-timeout", "5"]
        if lock is not None:
            args += ["--acquire-lock", f"{channel}:{lock}"]
        ghost = cls([*args, channel])
        try:
            await ghost.wait_for(f"subscribed to {channel}")
            if lock is not None:
                await ghost.wait_for(f"acquired lock {lock}")
        except BaseException:
            ghost.kill()
            raise
        return ghost

    def kill(self) -> None:
        """SIGKILL: the user's connection vanishes without a logout."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)


@pytest.fixture(scope="session")
def dev_server() -> Any:
    s = Server(*unlimited())
    yield s
    s.stop()


@pytest.fixture(scope="session")
def cert_server() -> Any:
    s = Server("--app-id", APP_ID, "--app-certificate", CERT, "--token-notice-secs", "2", *unlimited())
    yield s
    s.stop()


@pytest.fixture(scope="session")
def fast_server() -> Any:
    """A development-mode server where one second of presence timeouts and lock ttls lasts
    100 ms (a ghost's 5 s presence timeout passes in 0.5 s, a 10 s lock ttl in 1 s)."""
    s = Server("--ttl-unit-ms", "100", *unlimited())
    yield s
    s.stop()


@pytest.fixture
async def ghosts() -> AsyncIterator[Callable[..., Awaitable[Ghost]]]:
    """ghosts(endpoint, user, channel, lock=None): a started Ghost, killed at the end."""
    made: List[Ghost] = []

    async def start(endpoint: str, user: str, channel: str, lock: Optional[str] = None) -> Ghost:
        g = await Ghost.start(endpoint, user, channel, lock)
        made.append(g)
        return g

    yield start
    for g in made:
        g.kill()


@pytest.fixture(params=["embedded", "serve"])
def endpoint(request: Any) -> Optional[str]:
    """Each test using it runs against the embedded server and against `rtm2 serve`."""
    if request.param == "embedded":
        return None
    return str(request.getfixturevalue("dev_server").address)


def uid(prefix: str = "u") -> str:
    """A name no other test uses (the servers are shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., rtm2.Client]]:
    """make_client(user, endpoint=None, **config): a client closed at the end of the test."""
    made: List[rtm2.Client] = []

    def make(user: Optional[str] = None, endpoint: Optional[str] = None, **config: Any) -> rtm2.Client:
        c = rtm2.Client(APP_ID, user or uid(), endpoint, **config)
        made.append(c)
        return c

    yield make
    for c in made:
        await asyncio.wait_for(c.close(), WAIT)


async def expect(stream: rtm2.EventStream, what: str, pred: Callable[[Any], bool], timeout: float = WAIT) -> Any:
    """The first event of `stream` that satisfies `pred`; fails after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = []
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"no {what} within {timeout}s; saw {seen}")
        try:
            ev = await stream.recv(timeout=left)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what} within {timeout}s; saw {seen}") from None
        assert ev is not None, f"the event stream ended while waiting for {what}; saw {seen}"
        if pred(ev):
            return ev
        seen.append(ev)


async def raises(code: rtm2.ErrorCode, awaitable: Any, cls: type = rtm2.RtmError) -> rtm2.RtmError:
    """Awaits and checks that it fails with exactly `code` (and class `cls`)."""
    with pytest.raises(cls) as info:
        await asyncio.wait_for(awaitable, WAIT)
    err = info.value
    assert err.code == code, f"expected {code.name} ({int(code)}), got {err!r}"
    assert err.name == code.name
    return err  # type: ignore[return-value]


def run_script(code: str, timeout: float = 60.0, env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Runs Python code in a fresh interpreter (for exit and fork behaviour)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
