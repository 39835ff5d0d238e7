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
import uuid
from typing import Any, AsyncIterator, Callable, List, Optional

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
