"""examples/python/chat.py, driven like a person would: type a line, read the screen."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from typing import Any, List

from conftest import REPO, WAIT, uid

CHAT = REPO / "examples" / "python" / "chat.py"


class Chat:
    def __init__(self, *args: str) -> None:
        self.args = args
        self.lines: List[str] = []

    async def start(self) -> "Chat":
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(CHAT),
            *self.args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await self.expect("/quit")  # the banner: logged in and subscribed
        return self

    async def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def expect(self, text: str) -> str:
        assert self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), WAIT)
            assert raw, f"chat.py ended before printing {text!r}; printed {self.lines}"
            line = raw.decode().rstrip("\n")
            self.lines.append(line)
            if text in line:
                return line

    async def quit(self) -> int:
        await self.type("/quit")
        await self.expect("* bye")
        return await asyncio.wait_for(self.proc.wait(), WAIT)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


async def test_chat_with_the_embedded_echo_bot() -> None:
    chat = await Chat("--user", "alice").start()
    try:
        await chat.type("hello there")
        assert await chat.expect("alice: hello there") == "[lobby] alice: hello there"
        assert await chat.expect("echo-bot:") == "[lobby] echo-bot: echo: hello there"
        await chat.type("/dm echo-bot psst")
        assert await chat.expect("[dm]") == "[dm] echo-bot: you said 'psst'"
        await chat.type("/dm nobody hi")
        assert "CHANNEL_RECEIVER_OFFLINE (11033)" in await chat.expect("not sent")
        assert await chat.quit() == 0
    finally:
        chat.kill()


async def test_two_chats_through_rtm2_serve(dev_server: Any) -> None:
    room = uid("room")
    common = ("--endpoint", dev_server.address, "--channel", room)
    alice = await Chat("--user", "alice", *common).start()
    bob = await Chat("--user", "bob", *common).start()
    try:
        await alice.type("hi bob")
        assert await bob.expect("alice:") == f"[{room}] alice: hi bob"
        await bob.type("/dm alice hi alice")
        assert await alice.expect("[dm]") == "[dm] bob: hi alice"
        assert await alice.quit() == 0
        assert await bob.quit() == 0
    finally:
        alice.kill()
        bob.kill()


def test_the_first_program_of_the_docs_runs() -> None:
    doc = (REPO / "docs" / "python.md").read_text()
    section = doc[doc.index("## A first program") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code, "docs/python.md lost its first program"
    result = subprocess.run([sys.executable, "-c", code.group(1)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "link: CONNECTING LOGIN",
        "link: CONNECTED LOGIN_SUCCESS",
        "alice hello text",
        "alice b'\\x00\\x01' ",
        "link: IDLE LOGOUT",
    ]
